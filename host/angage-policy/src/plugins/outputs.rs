//! What a plugin returns, bounded before the host acts on it: a vendor's plugin is code the
//! host does not control, and what it says reaches responses, headers, metrics and logs.

use angage_core::policy::{RateState, Refusal, WindowState};

use super::bindings::types;

/// Longest denial detail a client is shown.
const MAX_DETAIL: usize = 500;
/// Windows a decision may report (the built-in limiter has five).
const MAX_WINDOWS: usize = 8;
/// Longest wait a refusal may ask for: a day.
const MAX_RETRY_SECONDS: u64 = 86_400;
/// Longest log line a plugin may write.
const MAX_LOG: usize = 2_000;

/// A plugin's denial as the client sees it: a 4xx status (else 403), a code of lowercase
/// letters, digits and `_` (else `denied`), a bounded detail without control characters.
pub(crate) fn denial(d: types::Denial) -> Refusal {
    let status = if (400..500).contains(&d.status) { d.status } else { 403 };
    let code = if is_code(&d.code) { d.code } else { "denied".to_owned() };
    Refusal { status, code, detail: clean(&d.detail, MAX_DETAIL), retry_after: None }
}

fn is_code(code: &str) -> bool {
    (1..=64).contains(&code.len())
        && code.starts_with(|c: char| c.is_ascii_lowercase())
        && code.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// A window name safe in a structured header field: `[A-Za-z0-9_-]{1,32}`, else `window`.
pub(crate) fn window_name(name: &str) -> String {
    let ok = (1..=32).contains(&name.len())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if ok { name.to_owned() } else { "window".to_owned() }
}

/// A limiter's decision: at most 8 windows with safe names, and a wait of at most a day.
pub(crate) fn rate_state(d: types::RateDecision) -> RateState {
    RateState {
        windows: d
            .windows
            .into_iter()
            .take(MAX_WINDOWS)
            .map(|w| WindowState {
                name: window_name(&w.name),
                window_seconds: w.window_seconds,
                limit: w.limit,
                remaining: w.remaining.min(w.limit),
                reset_seconds: w.reset_seconds.min(MAX_RETRY_SECONDS),
            })
            .collect(),
        denied_window: d.denied_window.as_deref().map(window_name),
    }
}

/// The wait a refusal asks for: the plugin's, at least 1 second and at most a day.
pub(crate) fn retry_after(seconds: Option<u64>) -> u64 {
    seconds.unwrap_or(1).clamp(1, MAX_RETRY_SECONDS)
}

/// A metric name a plugin chose, as the host registers it: lowercase letters, digits and `_`,
/// at most 64 characters.
pub(crate) fn metric_name(name: &str) -> String {
    name.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '_' })
        .take(64)
        .collect()
}

/// A plugin's log line: bounded, control characters shown escaped (no forged log lines).
pub(crate) fn log_line(message: &str) -> String {
    clean(message, MAX_LOG)
}

/// At most `max` characters (an ellipsis says more were cut), control characters escaped.
fn clean(text: &str, max: usize) -> String {
    let mut out = String::with_capacity(text.len().min(max));
    let mut shown = 0;
    for c in text.chars() {
        let escaped = c.is_control().then(|| c.escape_default());
        let width = escaped.clone().map_or(1, Iterator::count);
        if shown + width > max {
            out.push('…');
            break;
        }
        shown += width;
        match escaped {
            Some(e) => out.extend(e),
            None => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn window() -> impl Strategy<Value = types::WindowState> {
        (".{0,40}", any::<u64>(), any::<u64>(), any::<u64>(), any::<u64>()).prop_map(
            |(name, window_seconds, limit, remaining, reset_seconds)| types::WindowState {
                name,
                window_seconds,
                limit,
                remaining,
                reset_seconds,
            },
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn a_denial_is_a_bounded_4xx_with_a_plain_code(status in any::<u16>(), code in ".{0,80}", detail in ".{0,2000}") {
            let r = denial(types::Denial { status, code, detail });
            prop_assert!((400..500).contains(&r.status));
            prop_assert!(is_code(&r.code));
            prop_assert!(r.detail.chars().count() <= MAX_DETAIL + 1);
            prop_assert!(!r.detail.chars().any(char::is_control));
        }

        #[test]
        fn a_rate_decision_makes_safe_headers(
            windows in prop::collection::vec(window(), 0..20),
            denied in prop::option::of(".{0,40}"),
            retry in prop::option::of(any::<u64>()),
        ) {
            let s = rate_state(types::RateDecision { allowed: false, windows, denied_window: denied, retry_after_seconds: retry });
            prop_assert!(s.windows.len() <= MAX_WINDOWS);
            for w in &s.windows {
                prop_assert!(axum_free_header_safe(&w.name));
                prop_assert!(w.remaining <= w.limit && w.reset_seconds <= MAX_RETRY_SECONDS);
            }
            prop_assert!(s.denied_window.as_deref().is_none_or(axum_free_header_safe));
            prop_assert!((1..=MAX_RETRY_SECONDS).contains(&retry_after(retry)));
        }

        #[test]
        fn metric_names_and_log_lines_are_bounded(name in ".{0,200}", line in ".{0,5000}") {
            let m = metric_name(&name);
            prop_assert!(m.len() <= 64 && m.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'));
            let l = log_line(&line);
            prop_assert!(!l.contains('\n') && !l.contains('\r'));
            prop_assert!(l.chars().count() <= MAX_LOG + 1);
        }
    }

    /// Nothing a structured header field's quoted name could be broken by.
    fn axum_free_header_safe(name: &str) -> bool {
        !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    }

    #[test]
    fn a_vendors_ordinary_answers_pass_unchanged() {
        let d =
            denial(types::Denial { status: 451, code: "region_blocked".into(), detail: "Not here".into() });
        assert_eq!((d.status, d.code.as_str(), d.detail.as_str()), (451, "region_blocked", "Not here"));
        assert_eq!(window_name("minute"), "minute");
        assert_eq!(window_name("a\";q=1"), "window");
        assert_eq!(log_line("line\nforged"), "line\\nforged");
    }
}
