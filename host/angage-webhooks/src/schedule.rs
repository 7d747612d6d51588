//! When a failed delivery is tried again: about 5 s, 30 s, 2 min, 10 min, 1 h, 6 h and 24 h after
//! each failure, each delay moved by up to 10% either way so receivers that failed together are
//! not retried together; after the eighth attempt the delivery has failed.

use rand::Rng;

/// Delays after the 1st, 2nd, ... failed attempt, in milliseconds.
pub const DELAYS_MS: [i64; 7] = [5_000, 30_000, 120_000, 600_000, 3_600_000, 21_600_000, 86_400_000];

/// Attempts a delivery gets in all.
pub const MAX_ATTEMPTS: i64 = DELAYS_MS.len() as i64 + 1;

/// When to try again after `attempt` (1-based) failed at `now`; `None`: no more attempts.
pub fn retry_at(attempt: i64, now: i64, rng: &mut impl Rng) -> Option<i64> {
    let index = usize::try_from(attempt.checked_sub(1)?).ok()?;
    let delay = *DELAYS_MS.get(index)?;
    let jitter = delay / 10;
    Some(now + delay + rng.random_range(-jitter..=jitter))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schedule_backs_off_with_jitter_then_gives_up() {
        let mut rng = rand::rng();
        for (i, delay) in DELAYS_MS.iter().enumerate() {
            let at = retry_at(i as i64 + 1, 0, &mut rng).expect("retry");
            assert!((delay * 9 / 10..=delay * 11 / 10).contains(&at), "attempt {}: {at}", i + 1);
        }
        assert_eq!(retry_at(MAX_ATTEMPTS, 0, &mut rng), None);
        assert_eq!(retry_at(0, 0, &mut rng), None);
    }
}
