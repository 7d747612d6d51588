//! The daily-requests chart as server-side SVG: no chart library, no script, no internet.

use std::fmt::Write;

use angage_store::usage::query::DayCount;

const W: f64 = 720.0;
const H: f64 = 220.0;
const PAD_L: f64 = 48.0;
const PAD_B: f64 = 28.0;
const PAD_T: f64 = 12.0;

/// Bars per day, an average line, and axis labels.
pub(crate) fn daily_svg(days: &[DayCount], average: f64) -> String {
    let max = days.iter().map(|d| d.requests).max().unwrap_or(0).max(1) as f64;
    let plot_w = W - PAD_L - 8.0;
    let plot_h = H - PAD_B - PAD_T;
    let slot = plot_w / days.len().max(1) as f64;
    let bar = (slot * 0.7).max(1.0);
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {W} {H}\" role=\"img\" aria-label=\"Requests per day\" \
         font-family=\"system-ui, sans-serif\" font-size=\"11\">"
    );
    for i in 0..=4 {
        let v = max * f64::from(i) / 4.0;
        let y = PAD_T + plot_h - plot_h * f64::from(i) / 4.0;
        let _ = write!(
            svg,
            "<line x1=\"{PAD_L}\" x2=\"{}\" y1=\"{y:.1}\" y2=\"{y:.1}\" stroke=\"#e5e7eb\"/>",
            W - 8.0
        );
        let label = if max < 10.0 { format!("{v:.1}") } else { format!("{}", v.round()) };
        let _ = write!(
            svg,
            "<text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\" fill=\"#6b7280\">{label}</text>",
            PAD_L - 6.0,
            y + 4.0
        );
    }
    for (i, d) in days.iter().enumerate() {
        let h = plot_h * d.requests as f64 / max;
        let x = PAD_L + slot * i as f64 + (slot - bar) / 2.0;
        let y = PAD_T + plot_h - h;
        let _ = write!(
            svg,
            "<rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{bar:.1}\" height=\"{h:.1}\" rx=\"2\" fill=\"#4f46e5\"><title>{}: {}</title></rect>",
            d.date, d.requests
        );
        let every = (days.len() / 7).max(1);
        if i % every == 0 {
            let _ = write!(
                svg,
                "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\" fill=\"#6b7280\">{}</text>",
                x + bar / 2.0,
                H - 8.0,
                &d.date[5..]
            );
        }
    }
    let avg_y = PAD_T + plot_h - plot_h * average / max;
    let _ = write!(
        svg,
        "<line x1=\"{PAD_L}\" x2=\"{}\" y1=\"{avg_y:.1}\" y2=\"{avg_y:.1}\" stroke=\"#f59e0b\" stroke-dasharray=\"4 3\"/>\
         <text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\" fill=\"#b45309\">avg {average}</text></svg>",
        W - 8.0,
        W - 10.0,
        avg_y - 4.0
    );
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_bar_per_day_and_an_average_line() {
        let days: Vec<DayCount> =
            (1..=7).map(|d| DayCount { date: format!("2026-11-0{d}"), requests: d * 10 }).collect();
        let svg = daily_svg(&days, 40.0);
        assert_eq!(svg.matches("<rect").count(), 7);
        assert!(svg.contains("2026-11-07: 70") && svg.contains("avg 40"));
        assert!(!svg.contains("<script"));
    }
}
