//! Where a request comes from, judged once: the client's address behind the trusted proxies
//! (`server.trusted_proxies`) and whether it arrived over HTTPS, which earns an HSTS header.

use std::net::{IpAddr, SocketAddr};

use angage_plugin_sdk::cidr::Cidr;
use angage_plugin_sdk::forwarded;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;

use crate::AppState;
use crate::tls::OverTls;

/// The request's client, in its extensions.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Origin {
    /// `None` when a forwarded address could not be read (never the proxy's own).
    pub(crate) ip: Option<IpAddr>,
    pub(crate) https: bool,
}

/// The proxies the host believes, parsed once.
pub struct TrustedProxies(Vec<Cidr>);

impl TrustedProxies {
    pub fn new(entries: &[String]) -> Self {
        // Checked when the configuration loads.
        Self(entries.iter().filter_map(|e| Cidr::parse(e).ok()).collect())
    }

    pub(crate) fn origin(&self, peer: Option<IpAddr>, headers: &HeaderMap, scheme: Option<&str>) -> Origin {
        let values = |name: header::HeaderName| -> Vec<&str> {
            headers.get_all(name).iter().filter_map(|v| v.to_str().ok()).collect()
        };
        let (ip, forwarded_scheme) = forwarded::client(
            peer,
            &values(header::HeaderName::from_static("x-forwarded-for")),
            &values(header::HeaderName::from_static("x-forwarded-proto")),
            |ip| self.0.iter().any(|c| c.contains(*ip)),
        );
        let https = forwarded_scheme.as_deref().or(scheme) == Some("https");
        Origin { ip, https }
    }
}

pub(crate) async fn layer(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let peer = req.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip().to_canonical());
    let mut origin = state.proxies.origin(peer, req.headers(), req.uri().scheme_str());
    // With the server's own TLS, HTTPS is the connection's, whatever a header says.
    if state.tls.is_some() {
        origin.https = req.extensions().get::<OverTls>().is_some();
    }
    req.extensions_mut().insert(origin);
    let mut response = next.run(req).await;
    if origin.https {
        response.headers_mut().insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000; includeSubDomains"),
        );
    }
    response
}
