//! Load shedding and the request deadline: past `server.max_in_flight` requests being answered a
//! new one is refused at once (503, `Retry-After`) instead of queueing behind them, and a request
//! still unanswered after `server.request_timeout_seconds` (a slow upload, a stuck dependency)
//! gets 408 and its connection closed.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::AppState;
use crate::problem::Problem;

/// Requests being answered now, across the process.
#[derive(Clone, Default)]
pub struct InFlight(Arc<AtomicUsize>);

/// One request's place among those in flight; given back on drop (also when the client goes).
struct Slot(Arc<AtomicUsize>);

impl InFlight {
    /// How many requests are being answered now.
    pub fn now(&self) -> usize {
        self.0.load(Ordering::Acquire)
    }

    fn enter(&self, max: usize) -> Option<Slot> {
        let taken = self.0.fetch_add(1, Ordering::AcqRel);
        let slot = Slot(self.0.clone());
        (taken < max).then_some(slot)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

pub(crate) async fn layer(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let server = &state.settings.server;
    let Some(_slot) = state.in_flight.enter(server.max_in_flight) else {
        metrics::counter!("angage_requests_shed_total").increment(1);
        return Problem::unavailable(
            "overloaded",
            "The server is answering as many requests as it can; retry shortly",
        )
        .with_header(header::RETRY_AFTER, HeaderValue::from_static("1"))
        .into_response();
    };
    let deadline = Duration::from_secs(server.request_timeout_seconds);
    match tokio::time::timeout(deadline, next.run(req)).await {
        Ok(response) => response,
        Err(_) => {
            metrics::counter!("angage_requests_timed_out_total").increment(1);
            Problem::new(
                StatusCode::REQUEST_TIMEOUT,
                "request_timeout",
                format!("The request was not complete within {} seconds", server.request_timeout_seconds),
            )
            .with_header(header::CONNECTION, HeaderValue::from_static("close"))
            .into_response()
        }
    }
}
