//! Built-in rate limiter: sliding-window counters for the second, burst, minute, hour and day
//! windows, on the host's atomic counters. All windows are charged or none: a request refused
//! by one window uses up no other.
//!
//! Each window keeps a counter per fixed interval; the limit a request meets is the window's
//! limit minus the previous interval's count weighted by how much of it still overlaps the
//! sliding window (Cloudflare's approximation: accurate to a fraction of a request). A past
//! interval's count is read from the host once per instance and kept: it no longer changes.

use std::cell::RefCell;
use std::collections::HashMap;

use angage_plugin_sdk::{
    ChargeResult, CounterOp, Key, Limits, PluginInfo, RateDecision, RateLimiter, Request, WindowState, host,
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

/// Every window's counts. A past interval's count no longer changes (but for requests in
/// flight as it ended, which the approximation tolerates), so this instance asks the host for it
/// once and keeps it: most requests make no call for the previous intervals at all.
fn seen(key_id: &str, ws: &[Window], now: i64) -> Vec<Seen> {
    let past_index = |w: &Window| now.div_euclid(w.ms) - 1;
    let previous: Vec<Option<u64>> = PAST.with(|past| {
        let mut past = past.borrow_mut();
        // One lookup of the key's intervals for all its windows.
        let mut previous: Vec<Option<u64>> = match past.get(key_id) {
            Some(entries) => ws
                .iter()
                .map(|w| {
                    let index = past_index(w);
                    entries
                        .iter()
                        .find(|p| p.name == w.name && p.ms == w.ms && p.index == index)
                        .map(|p| p.count)
                })
                .collect(),
            None => vec![None; ws.len()],
        };
        let missing: Vec<usize> = (0..ws.len()).filter(|&i| previous[i].is_none()).collect();
        if missing.is_empty() {
            return previous;
        }
        let keys: Vec<String> =
            missing.iter().map(|&i| counter_key(key_id, &ws[i], past_index(&ws[i]))).collect();
        let fetched = host::get_counters(&keys);
        if past.len() > PAST_CAPACITY {
            past.clear();
        }
        let entries = past.entry(key_id.to_owned()).or_default();
        for (&i, count) in missing.iter().zip(fetched) {
            let w = &ws[i];
            previous[i] = Some(count);
            entries.retain(|p| !(p.name == w.name && p.ms == w.ms));
            entries.push(PastInterval { name: w.name, ms: w.ms, index: past_index(w), count });
        }
        previous
    });
    let previous = previous.into_iter().map(Option::unwrap_or_default);
    ws.iter()
        .zip(previous)
        .map(|(w, previous)| {
            let elapsed = now.rem_euclid(w.ms) as f64 / w.ms as f64;
            let weight = 1.0 - elapsed;
            Seen {
                weighted_previous: (previous as f64 * weight).floor() as u64,
                previous,
                index: now.div_euclid(w.ms),
            }
        })
        .collect()
}

/// The last past interval this instance read, per window.
struct PastInterval {
    name: &'static str,
    ms: i64,
    index: i64,
    count: u64,
}

/// Past intervals' counts this instance has read, by key id.
type Past = HashMap<String, Vec<PastInterval>>;

/// Enough for this many active keys; beyond it the map starts over.
const PAST_CAPACITY: usize = 50_000;

thread_local! {
    static PAST: RefCell<Past> = RefCell::new(HashMap::new());
}

/// `{key_id}:{window}:{ms}:{index}`, built without the formatting machinery: ten of these per
/// request are a measurable share of the plugin's time.
fn counter_key(key_id: &str, w: &Window, index: i64) -> String {
    let mut key = String::with_capacity(key_id.len() + w.name.len() + 24);
    key.push_str(key_id);
    key.push(':');
    key.push_str(w.name);
    key.push(':');
    push_int(&mut key, w.ms);
    key.push(':');
    push_int(&mut key, index);
    key
}

fn push_int(out: &mut String, n: i64) {
    if n < 0 {
        out.push('-');
    }
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    let mut rest = n.unsigned_abs();
    loop {
        at -= 1;
        digits[at] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    out.extend(digits[at..].iter().map(|&d| char::from(d)));
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

    fn check(key: &Key, _request: &Request, cost: u64, limits: Limits) -> RateDecision {
        let ws = windows(&limits);
        if ws.is_empty() {
            return RateDecision {
                allowed: true,
                windows: Vec::new(),
                denied_window: None,
                retry_after_seconds: None,
            };
        }
        let now = host::now_ms();
        let key_id = &key.id();
        let seen = seen(key_id, &ws, now);
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
    use angage_plugin_sdk::mock::{MockHost, MockKey, MockRequest};

    use super::*;

    fn limits(per_second: Option<u64>, per_minute: Option<u64>, per_day: Option<u64>) -> Limits {
        Limits { per_second, per_minute, per_hour: None, per_day, burst: None, burst_window_seconds: 5 }
    }

    fn check(l: Limits) -> RateDecision {
        SlidingWindow::check(
            &MockKey::new("key_1").build(),
            &MockRequest::new("GET", "/v1/orders").build(),
            1,
            l,
        )
    }

    #[test]
    fn counter_keys_name_key_window_and_interval() {
        let w = Window { name: "minute", ms: 60_000, limit: 1 };
        assert_eq!(counter_key("key_1", &w, 29_000_123), "key_1:minute:60000:29000123");
        assert_eq!(counter_key("key_1", &w, -1), "key_1:minute:60000:-1");
        assert_eq!(counter_key("k", &w, 0), "k:minute:60000:0");
    }

    #[test]
    fn exactly_the_limit_passes_and_the_rest_get_a_retry_after() {
        let host = MockHost::new().with_time_ms(60_000 * 1000);
        host.install();
        let l = limits(None, Some(100), None);
        let passed = (0..150).filter(|_| check(l).allowed).count();
        assert_eq!(passed, 100);
        let refused = check(l);
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
            assert!(check(l).allowed);
        }
        let refused = check(l);
        assert_eq!(refused.denied_window.as_deref(), Some("day"));
        let minute = refused.windows.iter().find(|w| w.name == "minute").expect("minute");
        assert_eq!(minute.remaining, 95, "the refused request did not use the minute window");
    }

    #[test]
    fn a_past_interval_is_read_once() {
        let host = MockHost::new().with_time_ms(3_600_000 * 500);
        host.install();
        let l = limits(Some(100), Some(100), None);
        for _ in 0..5 {
            assert!(check(l).allowed);
        }
        assert_eq!(host.counter_reads(), 1, "one read for both windows, then none");
        host.advance_ms(1_000);
        assert!(check(l).allowed);
        assert_eq!(host.counter_reads(), 2, "a new second: its previous second is read");
    }

    #[test]
    fn the_previous_interval_counts_as_it_slides_out() {
        let host = MockHost::new().with_time_ms(60_000 * 1000);
        host.install();
        let l = limits(None, Some(10), None);
        for _ in 0..10 {
            assert!(check(l).allowed);
        }
        host.advance_ms(60_000 + 30_000);
        // Half of the previous minute's 10 still counts: 5 more fit.
        let passed = (0..10).filter(|_| check(l).allowed).count();
        assert_eq!(passed, 5);
    }
}
