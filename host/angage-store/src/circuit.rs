//! The database circuit: after repeated failures to reach the database, work is refused at
//! once for a short while instead of each request waiting out the acquire timeout; then one
//! attempt is let through, and its success closes the circuit.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use crate::failure::is_unavailable;

#[derive(Debug)]
pub(crate) struct Circuit {
    threshold: u32,
    open_for: Duration,
    failures: AtomicU32,
    /// Until when work is refused; `None` while closed.
    open_until: Mutex<Option<Instant>>,
}

impl Circuit {
    pub(crate) fn new(threshold: u32, open_for: Duration) -> Self {
        Self {
            threshold: threshold.max(1),
            open_for,
            failures: AtomicU32::new(0),
            open_until: Mutex::new(None),
        }
    }

    /// `Err` while open. Once the open period ends, callers go through to probe.
    pub(crate) fn check(&self) -> Result<(), sqlx::Error> {
        let open_until = *self.open_until.lock().unwrap_or_else(|p| p.into_inner());
        match open_until {
            Some(until) if Instant::now() < until => Err(sqlx::Error::Io(std::io::Error::new(
                std::io::ErrorKind::NotConnected,
                "the database is unavailable (its circuit is open after repeated failures)",
            ))),
            _ => Ok(()),
        }
    }

    /// Counts an attempt's outcome: a failure to reach the database towards opening, a
    /// success (or a refusal the database itself made) closes.
    pub(crate) fn observe(&self, error: Option<&sqlx::Error>) {
        match error {
            Some(e) if is_unavailable(e) => {
                let failures = self.failures.fetch_add(1, Ordering::AcqRel) + 1;
                if failures >= self.threshold {
                    let mut open = self.open_until.lock().unwrap_or_else(|p| p.into_inner());
                    if open.is_none() {
                        tracing::error!(error = %e, "the database is unreachable; refusing work for a while");
                        metrics::counter!("angage_db_circuit_opened_total").increment(1);
                    }
                    *open = Some(Instant::now() + self.open_for);
                }
            }
            _ => {
                if self.failures.swap(0, Ordering::AcqRel) >= self.threshold {
                    tracing::info!("the database answers again");
                }
                *self.open_until.lock().unwrap_or_else(|p| p.into_inner()) = None;
            }
        }
    }

    pub(crate) fn retry_after_seconds(&self) -> u64 {
        self.open_for.as_secs().max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_the_threshold_and_closes_on_success() {
        let c = Circuit::new(2, Duration::from_secs(60));
        let down = sqlx::Error::PoolTimedOut;
        c.observe(Some(&down));
        assert!(c.check().is_ok(), "one failure is not an outage");
        c.observe(Some(&down));
        assert!(c.check().is_err(), "open after two");
        c.observe(Some(&sqlx::Error::RowNotFound));
        assert!(c.check().is_ok(), "an answer from the database closes it");
    }

    #[test]
    fn an_open_period_ends_with_a_probe() {
        let c = Circuit::new(1, Duration::ZERO);
        c.observe(Some(&sqlx::Error::PoolTimedOut));
        assert!(c.check().is_ok(), "past the open period an attempt goes through");
    }
}
