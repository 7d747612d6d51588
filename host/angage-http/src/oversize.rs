//! A body whose declared length is over the limit is refused once it has been read off the wire.
//!
//! Answering 413 while the client is still sending closes the socket with unread data, the
//! kernel resets the connection, and most clients then report a broken pipe instead of the
//! answer. Reading and discarding a bounded amount first lets the client finish writing and read
//! the 413; beyond that bound the answer goes out at once and the connection is closed. It sits
//! behind each API's own checks (the `/v1` policy stages, the admin session), so a caller who
//! would be refused anyway is refused first.

use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt;

use crate::{AppState, Problem};

/// How many times the body limit is read and thrown away before a 413 goes out.
const DRAIN_FACTOR: u64 = 16;
/// How long a slow client gets to finish sending what is thrown away.
const DRAIN_TIME: Duration = Duration::from_secs(10);

pub(crate) async fn refuse(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let limit = state.settings.server.body_limit_bytes as u64;
    let declared =
        req.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    // Bodies without a declared length are cut off by the extractors' limit instead.
    let Some(declared) = declared.filter(|&n| n > limit) else {
        return next.run(req).await;
    };
    // A client that waits for `100 Continue` has not sent the body and will not: answer now.
    let waits =
        req.headers().get(header::EXPECT).is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    let bound = limit.saturating_mul(DRAIN_FACTOR);
    let drained = !waits
        && declared <= bound
        && tokio::time::timeout(DRAIN_TIME, discard(req.into_body(), bound)).await.unwrap_or(false);
    let problem = Problem::too_large();
    if drained {
        problem.into_response()
    } else {
        problem.with_header(header::CONNECTION, HeaderValue::from_static("close")).into_response()
    }
}

/// `response` once the request's body (at most `bound` bytes) has been read off the wire, so
/// a client refused while still sending a large body reads the answer instead of a reset;
/// past `bound` or `DRAIN_TIME`, at once and with the connection closed.
pub(crate) async fn after_body(req: Request, bound: u64, response: Response) -> Response {
    let waits =
        req.headers().get(header::EXPECT).is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    let drained =
        !waits && tokio::time::timeout(DRAIN_TIME, discard(req.into_body(), bound)).await.unwrap_or(false);
    let mut response = response;
    if !drained {
        response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

/// Reads the body to its end; false if it errs or runs past `bound` bytes.
async fn discard(mut body: Body, bound: u64) -> bool {
    let mut seen = 0u64;
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else { return false };
        seen += frame.data_ref().map_or(0, |d| d.len() as u64);
        if seen > bound {
            return false;
        }
    }
    true
}
