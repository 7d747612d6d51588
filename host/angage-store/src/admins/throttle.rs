//! Failed-login throttling per account and per client address (in memory, sliding window).
//! An attempt is counted as failed before its password is checked (a parallel burst cannot get
//! past the count) and forgiven when it succeeds. An account is never locked: after
//! `free` failures each further attempt waits twice as long as the last (1 s, 2 s, 4 s ... up to
//! the window), so a guesser gets a handful of tries an hour and the owner gets in after a short
//! wait. An address past its limit is locked for the rest of the window.

use std::collections::HashMap;
use std::sync::Mutex;

/// Failure times per account and per address.
pub struct LoginThrottle {
    window_ms: i64,
    free_per_account: usize,
    max_per_ip: usize,
    failures: Mutex<HashMap<String, Vec<i64>>>,
}

/// Why an attempt must wait: seconds until it may be made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Wait(pub i64);

impl LoginThrottle {
    pub fn new(window_ms: i64, free_per_account: usize, max_per_ip: usize) -> Self {
        Self { window_ms, free_per_account, max_per_ip, failures: Mutex::new(HashMap::new()) }
    }

    /// Starts an attempt: `Err` when the account is in its delay or the address is locked;
    /// otherwise the attempt counts as a failure until [`succeeded`](Self::succeeded).
    pub fn begin(&self, account: &str, ip: &str, now: i64) -> Result<(), Wait> {
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let (account, ip) = (account_key(account), format!("ip:{ip}"));
        let mut wait = 0;
        if let Some(times) = failures.get_mut(&account) {
            times.retain(|t| now - t < self.window_ms);
            if let (Some(last), Some(extra)) = (times.last(), times.len().checked_sub(self.free_per_account))
            {
                let delay = (1000i64 << extra.min(20)).min(self.window_ms);
                wait = wait.max(last + delay - now);
            }
        }
        if let Some(times) = failures.get_mut(&ip) {
            times.retain(|t| now - t < self.window_ms);
            if times.len() >= self.max_per_ip {
                wait = wait.max(times[times.len() - self.max_per_ip] + self.window_ms - now);
            }
        }
        if wait > 0 {
            return Err(Wait((wait + 999) / 1000));
        }
        failures.entry(account).or_default().push(now);
        failures.entry(ip).or_default().push(now);
        // Keep memory bounded under a flood of distinct names.
        if failures.len() > 100_000 {
            failures.retain(|_, times| times.iter().any(|t| now - t < self.window_ms));
        }
        Ok(())
    }

    /// The attempt begun at `now` succeeded: it is not a failure, and the account starts over.
    pub fn succeeded(&self, account: &str, ip: &str, now: i64) {
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        failures.remove(&account_key(account));
        if let Some(times) = failures.get_mut(&format!("ip:{ip}"))
            && let Some(at) = times.iter().rposition(|t| *t == now)
        {
            times.remove(at);
        }
    }
}

fn account_key(account: &str) -> String {
    format!("acct:{}", account.trim().to_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_cost_ever_longer_waits_and_a_success_starts_over() {
        let t = LoginThrottle::new(900_000, 3, 100);
        for i in 0..3 {
            assert_eq!(t.begin("a@x.io", "1.1.1.1", i), Ok(()), "three free attempts");
        }
        assert_eq!(t.begin("A@x.io", "9.9.9.9", 10), Err(Wait(1)), "then a second's wait");
        assert_eq!(t.begin("a@x.io", "1.1.1.1", 1_002), Ok(()));
        assert_eq!(t.begin("a@x.io", "1.1.1.1", 1_500), Err(Wait(2)), "then two");
        assert_eq!(t.begin("a@x.io", "1.1.1.1", 3_002), Ok(()));
        t.succeeded("a@x.io", "1.1.1.1", 3_002);
        assert_eq!(t.begin("a@x.io", "1.1.1.1", 3_003), Ok(()), "the owner got in: it starts over");
    }

    #[test]
    fn an_address_is_locked_for_the_window_and_a_burst_counts_at_once() {
        let t = LoginThrottle::new(60_000, 100, 5);
        let admitted = (0..50).filter(|i| t.begin(&format!("u{i}@x.io"), "2.2.2.2", 0).is_ok()).count();
        assert_eq!(admitted, 5, "attempts in flight count before any password is checked");
        assert!(t.begin("new@x.io", "2.2.2.2", 59_999).is_err());
        assert!(t.begin("new@x.io", "2.2.2.2", 60_000).is_ok());
    }
}
