//! Failed-login throttling per account and per client IP (in memory, sliding window).

use std::collections::HashMap;
use std::sync::Mutex;

/// Failure times per account and per IP.
pub struct LoginThrottle {
    window_ms: i64,
    max_per_account: usize,
    max_per_ip: usize,
    failures: Mutex<HashMap<String, Vec<i64>>>,
}

impl LoginThrottle {
    pub fn new(window_ms: i64, max_per_account: usize, max_per_ip: usize) -> Self {
        Self { window_ms, max_per_account, max_per_ip, failures: Mutex::new(HashMap::new()) }
    }

    /// `Some(seconds)` to wait when the account or the IP is locked out.
    pub fn locked(&self, account: &str, ip: &str, now: i64) -> Option<i64> {
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let mut wait = None;
        for (key, max) in [
            (format!("acct:{}", account.to_lowercase()), self.max_per_account),
            (format!("ip:{ip}"), self.max_per_ip),
        ] {
            if let Some(times) = failures.get_mut(&key) {
                times.retain(|t| now - t < self.window_ms);
                if times.len() >= max {
                    let until = times[times.len() - max] + self.window_ms;
                    let secs = ((until - now) + 999) / 1000;
                    wait = Some(wait.map_or(secs, |w: i64| w.max(secs)));
                }
            }
        }
        wait
    }

    pub fn failed(&self, account: &str, ip: &str, now: i64) {
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        failures.entry(format!("acct:{}", account.to_lowercase())).or_default().push(now);
        failures.entry(format!("ip:{ip}")).or_default().push(now);
        // Keep memory bounded under a flood of distinct names.
        if failures.len() > 100_000 {
            failures.retain(|_, times| times.iter().any(|t| now - t < self.window_ms));
        }
    }

    pub fn succeeded(&self, account: &str) {
        self.failures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&format!("acct:{}", account.to_lowercase()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locks_after_max_failures_and_unlocks_after_the_window() {
        let t = LoginThrottle::new(60_000, 3, 5);
        for i in 0..3 {
            assert_eq!(t.locked("a@x.io", "1.1.1.1", i), None);
            t.failed("a@x.io", "1.1.1.1", i);
        }
        assert_eq!(t.locked("A@x.io", "9.9.9.9", 10), Some(60));
        assert_eq!(t.locked("a@x.io", "1.1.1.1", 60_002), None);
        // Per IP: five different accounts from one address.
        for i in 0..5 {
            t.failed(&format!("u{i}@x.io"), "2.2.2.2", 100_000);
        }
        assert!(t.locked("new@x.io", "2.2.2.2", 100_001).is_some());
        t.succeeded("a@x.io");
    }
}
