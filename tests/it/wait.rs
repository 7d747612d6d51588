//! The one place tests wait: a bounded poll of something observable. Tests never sleep to let
//! time pass (the server's clock is injected); they wait only for another task, process or
//! browser to get somewhere, and fail with `what` when it does not in time.

use std::time::{Duration, Instant};

/// How often a poll looks again.
const EVERY: Duration = Duration::from_millis(20);

/// Polls `check` until it returns `Some`, for at most `within`.
pub(crate) async fn until<T>(within: Duration, what: &str, mut check: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(found) = check().await {
            return found;
        }
        assert!(Instant::now() < deadline, "{what}: not within {within:?}");
        tokio::time::sleep(EVERY).await;
    }
}

/// [`until`] for tests without an async runtime.
pub(crate) fn until_blocking<T>(within: Duration, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(found) = check() {
            return found;
        }
        assert!(Instant::now() < deadline, "{what}: not within {within:?}");
        std::thread::sleep(EVERY);
    }
}
