//! One attempt over HTTP: a client that resolves names itself and refuses forbidden addresses
//! (unless private targets are allowed), never follows a redirect, and gives up after the
//! timeout; the answer's first kilobyte is kept for the delivery log.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use angage_core::config::WebhookSettings;
use angage_store::webhooks::target;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// Bytes of a receiver's answer kept.
pub(crate) const EXCERPT_BYTES: usize = 1024;

/// Resolves with the system resolver, then drops every address a delivery must not reach; a
/// name left with none fails to connect with a message saying why.
struct GuardedResolver {
    allow_private: bool,
}

#[derive(Debug)]
struct Refused(String);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refused {}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow_private = self.allow_private;
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let found: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let allowed: Vec<SocketAddr> =
                found.iter().copied().filter(|a| allow_private || !target::forbidden(a.ip())).collect();
            if allowed.is_empty() {
                let why = match found.first() {
                    Some(a) => format!("{host} resolves to {}, a private or local address", a.ip()),
                    None => format!("{host} does not resolve"),
                };
                return Err(Box::new(Refused(why)) as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(allowed.into_iter()) as Addrs)
        })
    }
}

pub(crate) fn client(settings: &WebhookSettings) -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .dns_resolver(Arc::new(GuardedResolver { allow_private: settings.allow_private_targets }))
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_millis(settings.timeout_ms))
        .connect_timeout(Duration::from_millis(settings.timeout_ms.min(5_000)))
        .user_agent(concat!("Angage-Webhooks/", env!("CARGO_PKG_VERSION")))
        .pool_idle_timeout(Duration::from_secs(30))
        .build()
}

/// What the receiver said, or why it said nothing.
pub(crate) struct Answer {
    pub status: Option<u16>,
    pub excerpt: Option<String>,
    pub error: Option<String>,
}

pub(crate) async fn post(
    client: &reqwest::Client,
    url: &str,
    headers: [(&'static str, String); 3],
    body: String,
    timeout_ms: u64,
) -> Answer {
    let mut request = client.post(url).header(reqwest::header::CONTENT_TYPE, "application/json");
    for (name, value) in headers {
        request = request.header(name, value);
    }
    let mut response = match request.body(body).send().await {
        Ok(r) => r,
        Err(e) => return Answer { status: None, excerpt: None, error: Some(describe(&e, timeout_ms)) },
    };
    let status = response.status().as_u16();
    let mut kept = Vec::new();
    while kept.len() < EXCERPT_BYTES {
        match response.chunk().await {
            Ok(Some(chunk)) => kept.extend_from_slice(&chunk),
            // The status is what counts; a body cut short only shortens the excerpt.
            Ok(None) | Err(_) => break,
        }
    }
    kept.truncate(EXCERPT_BYTES);
    let excerpt = String::from_utf8_lossy(&kept).into_owned();
    let error = (!(200..300).contains(&status)).then(|| format!("the receiver answered {status}"));
    Answer { status: Some(status), excerpt: Some(excerpt), error }
}

/// A transport error in words an admin can act on (no URL: it is in the log's row already).
fn describe(e: &reqwest::Error, timeout_ms: u64) -> String {
    if e.is_timeout() {
        return format!("no answer within {timeout_ms} ms");
    }
    let mut cause: Option<&dyn std::error::Error> = std::error::Error::source(e);
    let mut deepest = None;
    while let Some(c) = cause {
        if let Some(refused) = c.downcast_ref::<Refused>() {
            return format!("refused: {refused}");
        }
        deepest = Some(c);
        cause = c.source();
    }
    let what = if e.is_connect() { "cannot connect" } else { "request failed" };
    match deepest {
        Some(c) => format!("{what}: {c}"),
        None => what.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn settings(allow_private: bool) -> WebhookSettings {
        let defaults = angage_core::config::Settings::default().webhooks;
        WebhookSettings { allow_private_targets: allow_private, timeout_ms: 2_000, ..defaults }
    }

    fn headers() -> [(&'static str, String); 3] {
        [
            ("webhook-id", "evt_1".into()),
            ("webhook-timestamp", "1".into()),
            ("webhook-signature", "v1,x".into()),
        ]
    }

    /// A one-shot server answering `response` to the first request.
    async fn answering(response: &'static str) -> u16 {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        tokio::spawn(async move {
            if let Ok((mut stream, _)) = listener.accept().await {
                let mut buf = [0u8; 4096];
                let _ = stream.read(&mut buf).await;
                let _ = stream.write_all(response.as_bytes()).await;
            }
        });
        port
    }

    #[tokio::test]
    async fn a_name_resolving_to_loopback_is_refused_after_resolution() {
        let port = answering("HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n").await;
        let strict = client(&settings(false)).expect("client");
        let refused =
            post(&strict, &format!("http://localhost:{port}/hook"), headers(), "{}".into(), 2_000).await;
        assert_eq!(refused.status, None);
        let error = refused.error.expect("error");
        assert!(error.starts_with("refused: localhost resolves to"), "{error}");
        let open = client(&settings(true)).expect("client");
        let answered =
            post(&open, &format!("http://localhost:{port}/hook"), headers(), "{}".into(), 2_000).await;
        assert_eq!(answered.status, Some(204), "{:?}", answered.error);
    }

    #[tokio::test]
    async fn a_redirect_is_an_answer_not_a_new_target() {
        let port = answering(
            "HTTP/1.1 302 Found\r\nlocation: http://169.254.169.254/\r\ncontent-length: 5\r\n\r\nmoved",
        )
        .await;
        let open = client(&settings(true)).expect("client");
        let answer =
            post(&open, &format!("http://127.0.0.1:{port}/hook"), headers(), "{}".into(), 2_000).await;
        assert_eq!(answer.status, Some(302));
        assert_eq!(answer.excerpt.as_deref(), Some("moved"));
        assert_eq!(answer.error.as_deref(), Some("the receiver answered 302"));
    }
}
