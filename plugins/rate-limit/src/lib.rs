//! Built-in rate limiter: sliding-window counters for the second, burst, minute, hour and day
//! windows, on the host's atomic counters. All windows are charged or none: a request refused
//! by one window uses up no other.
//!
//! Each window keeps a counter per fixed interval; the limit a request meets is the window's
//! limit minus the previous interval's count weighted by how much of it still overlaps the
//! sliding window (Cloudflare's approximation: accurate to a fraction of a request).

use angage_plugin_sdk::{
    ChargeResult, CounterOp, Limits, PluginInfo, RateDecision, RateLimiter, RateRequest, WindowState, host,
};

pub struct SlidingWindow;

/// A window to enforce: name, length and limit.
struct Window {
    name: &'static str,
    ms: i64,
    limit: u64,
}

fn windows(limits: &Limits) -> Vec<Window> {
    let mut out = Vec::with_capacity(5);
    let mut add = |name, secs: u64, limit: Option<u64>| {
        if let Some(limit) = limit {
            out.push(Window { name, ms: (secs.max(1) * 1000) as i64, limit });
        }
    };
    add("second", 1, limits.per_second);
    add("burst", limits.burst_window_seconds, limits.burst);
    add("minute", 60, limits.per_minute);
    add("hour", 3600, limits.per_hour);
    add("day", 86_400, limits.per_day);
    out
}

/// The counts a window sees now: previous interval (weighted) and current interval.
struct Seen {
    weighted_previous: u64,
    previous: u64,
    index: i64,
}

fn seen(key_id: &str, w: &Window, now: i64) -> Seen {
    let index = now.div_euclid(w.ms);
    let elapsed = now.rem_euclid(w.ms) as f64 / w.ms as f64;
    let previous = host::get_counter(&counter_key(key_id, w, index - 1));
    let weight = 1.0 - elapsed;
    Seen { weighted_previous: (previous as f64 * weight).floor() as u64, previous, index }
}

fn counter_key(key_id: &str, w: &Window, index: i64) -> String {
    format!("{key_id}:{}:{}:{index}", w.name, w.ms)
}

/// Seconds until `cost` more fits in this window, given its current counts.
fn retry_after(w: &Window, s: &Seen, current: u64, cost: u64, now: i64) -> u64 {
    let start = s.index * w.ms;
    let ms_until = if current + cost <= w.limit && s.previous > 0 {
        // Still this interval: wait until the previous interval's weight has fallen enough.
        let weight_needed = (w.limit - current - cost) as f64 / s.previous as f64;
        let at = start + (w.ms as f64 * (1.0 - weight_needed)).ceil() as i64;
        at - now
    } else if current == 0 || cost > w.limit {
        w.ms
    } else {
        // Next interval: this interval's count becomes the weighted previous one.
        let fraction = (1.0 - (w.limit.saturating_sub(cost)) as f64 / current as f64).max(0.0);
        start + w.ms + (w.ms as f64 * fraction).ceil() as i64 - now
    };
    (ms_until.max(1) as u64).div_ceil(1000)
}

impl RateLimiter for SlidingWindow {
    fn info() -> PluginInfo {
        PluginInfo { name: "rate-limit".into(), version: env!("CARGO_PKG_VERSION").into() }
    }

    fn check(request: RateRequest) -> RateDecision {
        let now = host::now_ms();
        let key_id = &request.principal.key_id;
        let cost = request.cost;
        let ws = windows(&request.limits);
        let seen: Vec<Seen> = ws.iter().map(|w| seen(key_id, w, now)).collect();
        let ops: Vec<CounterOp> = ws
            .iter()
            .zip(&seen)
            .map(|(w, s)| CounterOp {
                key: counter_key(key_id, w, s.index),
                cost,
                limit: w.limit.saturating_sub(s.weighted_previous),
                ttl_ms: (2 * w.ms) as u64,
            })
            .collect();
        let (allowed, values, denied) = match host::check_and_increment(&ops) {
            ChargeResult::Charged(values) => (true, values, None),
            ChargeResult::Refused(r) => (false, r.values, Some(r.index as usize)),
        };
        let windows: Vec<WindowState> = ws
            .iter()
            .zip(&seen)
            .zip(&values)
            .map(|((w, s), current)| {
                let used = s.weighted_previous + current;
                let reset_ms = (s.index + 1) * w.ms - now;
                WindowState {
                    name: w.name.into(),
                    window_seconds: (w.ms / 1000) as u64,
                    limit: w.limit,
                    remaining: w.limit.saturating_sub(used),
                    reset_seconds: ((reset_ms.max(1)) as u64).div_ceil(1000),
                }
            })
            .collect();
        let retry = denied.map(|i| retry_after(&ws[i], &seen[i], values[i], cost, now));
        RateDecision {
            allowed,
            windows,
            denied_window: denied.map(|i| ws[i].name.to_owned()),
            retry_after_seconds: retry,
        }
    }
}

angage_plugin_sdk::export_rate_limiter!(SlidingWindow);

#[cfg(test)]
mod tests {
    use angage_plugin_sdk::mock::MockHost;
    use angage_plugin_sdk::{Operation, Principal, RequestInfo};

    use super::*;

    fn limits(per_second: Option<u64>, per_minute: Option<u64>, per_day: Option<u64>) -> Limits {
        Limits { per_second, per_minute, per_hour: None, per_day, burst: None, burst_window_seconds: 5 }
    }

    fn request(l: Limits) -> RateRequest {
        let principal = Principal {
            key_id: "key_1".into(),
            tenant_id: "t".into(),
            tenant: "demo".into(),
            environment: "live".into(),
            app_name: "a".into(),
            grants: vec![],
            limits: l,
        };
        let req = RequestInfo {
            method: "GET".into(),
            route: "/v1/orders".into(),
            path: "/v1/orders".into(),
            module: "orders".into(),
            operation: Operation::Read,
            headers: vec![],
            client_ip: "127.0.0.1".into(),
            scheme: "http".into(),
            time_ms: 0,
        };
        RateRequest { principal, request: req, cost: 1, limits: l }
    }

    #[test]
    fn exactly_the_limit_passes_and_the_rest_get_a_retry_after() {
        let host = MockHost::new().with_time_ms(60_000 * 1000);
        host.install();
        let l = limits(None, Some(100), None);
        let passed = (0..150).filter(|_| SlidingWindow::check(request(l)).allowed).count();
        assert_eq!(passed, 100);
        let refused = SlidingWindow::check(request(l));
        assert_eq!(refused.denied_window.as_deref(), Some("minute"));
        assert_eq!(refused.windows[0].remaining, 0);
        // All 100 were used at the very start of the interval: they stop counting as the next
        // interval slides past them, so one request fits about 0.6 s into the next minute.
        assert_eq!(refused.retry_after_seconds, Some(61));
    }

    #[test]
    fn a_refusal_by_one_window_charges_no_other() {
        let host = MockHost::new().with_time_ms(86_400_000 * 100);
        host.install();
        let l = limits(Some(1000), Some(100), Some(5));
        for _ in 0..5 {
            assert!(SlidingWindow::check(request(l)).allowed);
        }
        let refused = SlidingWindow::check(request(l));
        assert_eq!(refused.denied_window.as_deref(), Some("day"));
        let minute = refused.windows.iter().find(|w| w.name == "minute").expect("minute");
        assert_eq!(minute.remaining, 95, "the refused request did not use the minute window");
    }

    #[test]
    fn the_previous_interval_counts_as_it_slides_out() {
        let host = MockHost::new().with_time_ms(60_000 * 1000);
        host.install();
        let l = limits(None, Some(10), None);
        for _ in 0..10 {
            assert!(SlidingWindow::check(request(l)).allowed);
        }
        host.advance_ms(60_000 + 30_000);
        // Half of the previous minute's 10 still counts: 5 more fit.
        let passed = (0..10).filter(|_| SlidingWindow::check(request(l)).allowed).count();
        assert_eq!(passed, 5);
    }
}
