//! How many calls a plugin runs at once. tokio's semaphore takes its waiters' lock on every
//! release; a stage call releases four times per request, so the uncontended path here is one
//! atomic operation each way and only a full count waits.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::Notify;

pub(super) struct Permits {
    max: usize,
    in_use: AtomicUsize,
    waiters: AtomicUsize,
    freed: Notify,
}

/// A call in progress; dropping it frees the slot.
pub(super) struct Permit<'a>(&'a Permits);

impl Permits {
    pub(super) fn new(max: usize) -> Self {
        Self { max, in_use: AtomicUsize::new(0), waiters: AtomicUsize::new(0), freed: Notify::new() }
    }

    pub(super) fn try_acquire(&self) -> Option<Permit<'_>> {
        self.in_use
            .fetch_update(Ordering::Acquire, Ordering::Relaxed, |n| (n < self.max).then_some(n + 1))
            .ok()
            .map(|_| Permit(self))
    }

    /// Waits up to `timeout` for a free slot.
    pub(super) async fn acquire(&self, timeout: Duration) -> Option<Permit<'_>> {
        if let Some(p) = self.try_acquire() {
            return Some(p);
        }
        self.waiters.fetch_add(1, Ordering::SeqCst);
        let waited = tokio::time::timeout(timeout, async {
            loop {
                let freed = self.freed.notified();
                // A slot freed between the failed try and `notified()` must not be missed.
                if let Some(p) = self.try_acquire() {
                    return p;
                }
                freed.await;
            }
        })
        .await;
        self.waiters.fetch_sub(1, Ordering::SeqCst);
        waited.ok()
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        self.0.in_use.fetch_sub(1, Ordering::Release);
        if self.0.waiters.load(Ordering::SeqCst) > 0 {
            self.0.freed.notify_one();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_full_count_waits_for_a_release_or_times_out() {
        let permits = Permits::new(1);
        let first = permits.try_acquire().expect("free");
        assert!(permits.try_acquire().is_none());
        assert!(permits.acquire(Duration::from_millis(20)).await.is_none(), "times out while held");
        let waiter = async { permits.acquire(Duration::from_secs(5)).await.is_some() };
        let release = async {
            tokio::task::yield_now().await;
            drop(first);
        };
        let (got, ()) = tokio::join!(waiter, release);
        assert!(got, "a release wakes the waiter");
        assert!(permits.try_acquire().is_some(), "and its permit was returned");
    }
}
