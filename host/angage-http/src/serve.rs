//! Serving the router on a listener, with graceful shutdown.

use std::future::Future;
use std::net::SocketAddr;

use super::{AppState, router};

/// A bound TCP listener.
pub type Listener = tokio::net::TcpListener;

/// Serves `state`'s router until `shutdown` resolves and every connection has finished.
pub async fn serve(
    listener: Listener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let service = router(state).into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(listener, service).with_graceful_shutdown(shutdown).await
}
