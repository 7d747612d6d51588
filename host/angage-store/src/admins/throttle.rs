//! Failed-login throttling per account and per client address (sliding window), in memory or,
//! with Redis, shared by every node (N nodes must not give a guesser N times the attempts).
//! An attempt is counted as failed before its password is checked (a parallel burst cannot get
//! past the count) and forgiven when it succeeds. An account is never locked: after
//! `free` failures each further attempt waits twice as long as the last (1 s, 2 s, 4 s ... up to
//! the window), so a guesser gets a handful of tries an hour and the owner gets in after a short
//! wait. An address past its limit is locked for the rest of the window. While Redis cannot be
//! reached, each node throttles on its own.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::shared::Redis;

/// The same rules over Redis sorted sets (a failure's time as its score), atomically.
/// KEYS: account, address; ARGV: now, window, free per account, max per address, this attempt.
/// Returns the milliseconds to wait, or 0 when the attempt was counted.
const BEGIN: &str = r"
local now, window = tonumber(ARGV[1]), tonumber(ARGV[2])
local free, max_ip = tonumber(ARGV[3]), tonumber(ARGV[4])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - window)
local wait = 0
local n = redis.call('ZCARD', KEYS[1])
if n >= free then
  local last = tonumber(redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')[2])
  local extra = math.min(n - free, 20)
  wait = math.max(wait, last + math.min(1000 * 2 ^ extra, window) - now)
end
local m = redis.call('ZCARD', KEYS[2])
if m >= max_ip then
  local at = tonumber(redis.call('ZRANGE', KEYS[2], m - max_ip, m - max_ip, 'WITHSCORES')[2])
  wait = math.max(wait, at + window - now)
end
if wait > 0 then return wait end
redis.call('ZADD', KEYS[1], now, ARGV[5])
redis.call('PEXPIRE', KEYS[1], window)
redis.call('ZADD', KEYS[2], now, ARGV[5])
redis.call('PEXPIRE', KEYS[2], window)
return 0
";

/// An attempt under way: [`LoginThrottle::succeeded`] forgives it.
#[derive(Debug, Clone)]
pub struct Attempt {
    account: String,
    ip: String,
    at: i64,
    id: String,
    shared: bool,
}

/// The throttle a server uses: shared through Redis when configured, else this process's.
pub struct LoginThrottle {
    local: LocalThrottle,
    redis: Option<Redis>,
    begin: ::redis::Script,
}

impl LoginThrottle {
    pub fn new(window_ms: i64, free_per_account: usize, max_per_ip: usize, redis: Option<Redis>) -> Self {
        Self {
            local: LocalThrottle::new(window_ms, free_per_account, max_per_ip),
            redis,
            begin: ::redis::Script::new(BEGIN),
        }
    }

    /// Starts an attempt: `Err` when the account is in its delay or the address is locked;
    /// otherwise the attempt counts as a failure until [`succeeded`](Self::succeeded).
    pub async fn begin(&self, account: &str, ip: &str, now: i64) -> Result<Attempt, Wait> {
        let (account_key, ip_key) = (account_key(account), format!("ip:{ip}"));
        if let Some(redis) = &self.redis {
            let id = format!("{now}-{}", angage_core::ids::random_base62(8));
            let args = [
                now,
                self.local.window_ms,
                i64::try_from(self.local.free_per_account).unwrap_or(i64::MAX),
                i64::try_from(self.local.max_per_ip).unwrap_or(i64::MAX),
            ];
            let keys = [redis.key(&format!("login:{account_key}")), redis.key(&format!("login:{ip_key}"))];
            match redis.script(&self.begin, &keys, &args, &id).await {
                Ok(0) => return Ok(Attempt { account: account_key, ip: ip_key, at: now, id, shared: true }),
                Ok(wait) => return Err(Wait((wait + 999) / 1000)),
                Err(_) => {} // each node on its own until Redis is back
            }
        }
        self.local.begin(&account_key, &ip_key, now)?;
        Ok(Attempt { account: account_key, ip: ip_key, at: now, id: String::new(), shared: false })
    }

    /// The attempt succeeded: it is not a failure, and the account starts over.
    pub async fn succeeded(&self, attempt: &Attempt) {
        if attempt.shared
            && let Some(redis) = &self.redis
        {
            let account = redis.key(&format!("login:{}", attempt.account));
            let ip = redis.key(&format!("login:{}", attempt.ip));
            if let Err(e) = redis.forgive(&account, &ip, &attempt.id).await {
                tracing::warn!(error = %e, "cannot forgive a login attempt in Redis");
            }
            return;
        }
        self.local.succeeded(&attempt.account, &attempt.ip, attempt.at);
    }
}

/// Failure times per account and per address, in this process.
struct LocalThrottle {
    window_ms: i64,
    free_per_account: usize,
    max_per_ip: usize,
    failures: Mutex<HashMap<String, Vec<i64>>>,
}

/// Why an attempt must wait: seconds until it may be made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Wait(pub i64);

impl LocalThrottle {
    fn new(window_ms: i64, free_per_account: usize, max_per_ip: usize) -> Self {
        Self { window_ms, free_per_account, max_per_ip, failures: Mutex::new(HashMap::new()) }
    }

    /// `account` and `ip` are already keys (`acct:...`, `ip:...`).
    fn begin(&self, account: &str, ip: &str, now: i64) -> Result<(), Wait> {
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let (account, ip) = (account.to_owned(), ip.to_owned());
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
    fn succeeded(&self, account: &str, ip: &str, now: i64) {
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        failures.remove(account);
        if let Some(times) = failures.get_mut(ip)
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
        let t = LocalThrottle::new(900_000, 3, 100);
        let (a, ip) = (account_key("a@x.io"), "ip:1.1.1.1");
        for i in 0..3 {
            assert_eq!(t.begin(&a, ip, i), Ok(()), "three free attempts");
        }
        assert_eq!(t.begin(&account_key("A@x.io"), "ip:9.9.9.9", 10), Err(Wait(1)), "then a second's wait");
        assert_eq!(t.begin(&a, ip, 1_002), Ok(()));
        assert_eq!(t.begin(&a, ip, 1_500), Err(Wait(2)), "then two");
        assert_eq!(t.begin(&a, ip, 3_002), Ok(()));
        t.succeeded(&a, ip, 3_002);
        assert_eq!(t.begin(&a, ip, 3_003), Ok(()), "the owner got in: it starts over");
    }

    #[test]
    fn an_address_is_locked_for_the_window_and_a_burst_counts_at_once() {
        let t = LocalThrottle::new(60_000, 100, 5);
        let admitted =
            (0..50).filter(|i| t.begin(&account_key(&format!("u{i}@x.io")), "ip:2.2.2.2", 0).is_ok()).count();
        assert_eq!(admitted, 5, "attempts in flight count before any password is checked");
        assert!(t.begin(&account_key("new@x.io"), "ip:2.2.2.2", 59_999).is_err());
        assert!(t.begin(&account_key("new@x.io"), "ip:2.2.2.2", 60_000).is_ok());
    }
}
