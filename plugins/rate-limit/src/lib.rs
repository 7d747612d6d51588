//! Built-in rate limiter: sliding-window counters for the second, burst, minute, hour and day
//! windows, on the host's atomic counters. All windows are charged or none: a request refused
//! by one window uses up no other.
//!
//! Each window keeps a counter per fixed interval; the limit a request meets is the window's
//! limit minus the previous interval's count weighted by how much of it still overlaps the
//! sliding window (Cloudflare's approximation: accurate to a fraction of a request).
//!
//! An instance keeps, per key, each window's current interval with its counter op (the counter's
//! name is built once an interval) and the previous interval's count, read from the host once:
//! a past interval no longer changes. Most requests make one host call, the charge itself.

use std::cell::RefCell;
use std::collections::HashMap;

use angage_plugin_sdk::{
    ChargeResult, CounterOp, Key, Limits, PluginInfo, RateDecision, RateLimiter, Request, WindowState, host,
};

pub struct SlidingWindow;

/// A window to enforce: name, length and limit.
#[derive(Clone, Copy)]
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

/// What this instance keeps about one key: per window it enforces, the interval it charges now
/// and the previous interval's count; `ops[i]` is window `i`'s charge, handed to the host as is.
#[derive(Default)]
struct Tracked {
    windows: Vec<Interval>,
    ops: Vec<CounterOp>,
}

/// A window's current interval.
struct Interval {
    window: Window,
    index: i64,
    previous: u64,
}

/// Keys this instance has charged, by key id.
type Keys = HashMap<String, Tracked>;

/// Enough for this many active keys; beyond it the map starts over.
const KEYS_CAPACITY: usize = 50_000;

thread_local! {
    static KEYS: RefCell<Keys> = RefCell::new(HashMap::new());
}

impl Tracked {
    /// Brings the windows up to `now` for these limits: a window that moved to a new interval
    /// gets its counter's name and, in one host call for all of them, its previous count.
    fn advance(&mut self, key_id: &str, ws: &[Window], now: i64) {
        let same_shape = self.windows.len() == ws.len()
            && self.windows.iter().zip(ws).all(|(t, w)| t.window.name == w.name && t.window.ms == w.ms);
        if !same_shape {
            self.windows =
                ws.iter().map(|&window| Interval { window, index: i64::MIN, previous: 0 }).collect();
            self.ops =
                ws.iter().map(|_| CounterOp { key: String::new(), cost: 0, limit: 0, ttl_ms: 0 }).collect();
        }
        let mut moved = Vec::new();
        for (i, (t, w)) in self.windows.iter_mut().zip(ws).enumerate() {
            t.window.limit = w.limit;
            let index = now.div_euclid(w.ms);
            if t.index != index {
                t.index = index;
                write_counter_key(&mut self.ops[i].key, key_id, w, index);
                moved.push(i);
            }
        }
        if moved.is_empty() {
            return;
        }
        let past: Vec<String> = moved
            .iter()
            .map(|&i| counter_key(key_id, &self.windows[i].window, self.windows[i].index - 1))
            .collect();
        for (&i, count) in moved.iter().zip(host::get_counters(&past)) {
            self.windows[i].previous = count;
        }
    }
}

/// The previous interval's count, weighted by how much of it the sliding window still covers.
fn weighted_previous(t: &Interval, now: i64) -> u64 {
    let elapsed = now.rem_euclid(t.window.ms) as f64 / t.window.ms as f64;
    (t.previous as f64 * (1.0 - elapsed)).floor() as u64
}

/// `{key_id}:{window}:{ms}:{index}`, built without the formatting machinery.
fn counter_key(key_id: &str, w: &Window, index: i64) -> String {
    let mut key = String::new();
    write_counter_key(&mut key, key_id, w, index);
    key
}

/// `counter_key` into `out`, reusing its buffer.
fn write_counter_key(out: &mut String, key_id: &str, w: &Window, index: i64) {
    out.clear();
    out.reserve(key_id.len() + w.name.len() + 24);
    out.push_str(key_id);
    out.push(':');
    out.push_str(w.name);
    out.push(':');
    push_int(out, w.ms);
    out.push(':');
    push_int(out, index);
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
fn retry_after(t: &Interval, current: u64, cost: u64, now: i64) -> u64 {
    let w = &t.window;
    let start = t.index * w.ms;
    let ms_until = if current + cost <= w.limit && t.previous > 0 {
        // Still this interval: wait until the previous interval's weight has fallen enough.
        let weight_needed = (w.limit - current - cost) as f64 / t.previous as f64;
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
        let key_id = key.id();
        KEYS.with(|keys| {
            let mut keys = keys.borrow_mut();
            let mut tracked = keys.remove(&key_id).unwrap_or_default();
            if keys.len() >= KEYS_CAPACITY {
                keys.clear();
            }
            tracked.advance(&key_id, &ws, now);
            let decision = decide(&mut tracked, cost, now);
            keys.insert(key_id, tracked);
            decision
        })
    }
}

/// Charges every window of `tracked` with `cost`, all or none, and describes the windows after.
fn decide(tracked: &mut Tracked, cost: u64, now: i64) -> RateDecision {
    for (t, op) in tracked.windows.iter().zip(tracked.ops.iter_mut()) {
        op.cost = cost;
        op.limit = t.window.limit.saturating_sub(weighted_previous(t, now));
        op.ttl_ms = (2 * t.window.ms) as u64;
    }
    let (allowed, values, denied) = match host::check_and_increment(&tracked.ops) {
        ChargeResult::Charged(values) => (true, values, None),
        ChargeResult::Refused(r) => (false, r.values, Some(r.index as usize)),
    };
    let windows = tracked
        .windows
        .iter()
        .zip(&tracked.ops)
        .zip(&values)
        .map(|((t, op), current)| {
            let w = &t.window;
            let reset_ms = (t.index + 1) * w.ms - now;
            WindowState {
                name: w.name.into(),
                window_seconds: (w.ms / 1000) as u64,
                limit: w.limit,
                // What the charge left: the op's limit already takes the previous interval off.
                remaining: op.limit.saturating_sub(*current),
                reset_seconds: ((reset_ms.max(1)) as u64).div_ceil(1000),
            }
        })
        .collect();
    let refused = denied.and_then(|i| Some((tracked.windows.get(i)?, *values.get(i)?)));
    RateDecision {
        allowed,
        windows,
        denied_window: refused.map(|(t, _)| t.window.name.to_owned()),
        retry_after_seconds: refused.map(|(t, current)| retry_after(t, current, cost, now)),
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
    fn new_limits_keep_what_was_charged() {
        let host = MockHost::new().with_time_ms(86_400_000 * 100);
        host.install();
        for _ in 0..3 {
            assert!(check(limits(None, Some(10), None)).allowed);
        }
        // A rule (or an admin) adds a day window: the minute still holds the first three.
        let d = check(limits(None, Some(10), Some(100)));
        let remaining: Vec<(String, u64)> = d.windows.iter().map(|w| (w.name.clone(), w.remaining)).collect();
        assert_eq!(remaining, [("minute".to_owned(), 6), ("day".to_owned(), 99)]);
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
