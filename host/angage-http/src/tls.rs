//! HTTPS served by the server itself (`server.tls`): rustls with HTTP/2 and HTTP/1.1 offered by
//! ALPN, the certificate files read again when they change (a renewal applies without a restart;
//! a file that does not load is logged and the serving certificate kept). A connection whose
//! first byte is not a TLS handshake is served as plain HTTP and judged so: a tenant that
//! requires HTTPS refuses it.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

/// How often the certificate files are looked at for a change.
const WATCH_EVERY: Duration = Duration::from_secs(1);

/// The first byte of a TLS record carrying a handshake.
const HANDSHAKE: u8 = 0x16;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("server.tls.cert_file {path}: {reason}")]
    Cert { path: String, reason: String },
    #[error("server.tls.key_file {path}: {reason}")]
    Key { path: String, reason: String },
    #[error("server.tls: the certificate and key do not make a TLS configuration: {0}")]
    Config(String),
}

/// The serving TLS configuration, swapped when the files change.
pub struct Tls {
    config: ArcSwap<ServerConfig>,
    cert: PathBuf,
    key: PathBuf,
}

/// Marks a request that arrived over this server's own TLS.
#[derive(Debug, Clone, Copy)]
pub(crate) struct OverTls;

/// What a connection turned out to be.
pub(crate) enum Accepted {
    Plain(TcpStream),
    Tls { stream: Box<TlsStream<TcpStream>>, h2: bool },
}

impl Tls {
    /// Loads the files named by `server.tls`; `None` when TLS is off.
    pub fn load(settings: &angage_core::config::TlsSettings) -> Result<Option<Arc<Self>>, TlsError> {
        if !settings.enabled() {
            return Ok(None);
        }
        let (cert, key) = (PathBuf::from(&settings.cert_file), PathBuf::from(&settings.key_file));
        let config = server_config(&cert, &key)?;
        Ok(Some(Arc::new(Self { config: ArcSwap::from_pointee(config), cert, key })))
    }

    /// Follows the files: a change that loads replaces the configuration; one that does not is
    /// logged and counted, and the serving one stays. Ends when `self` is the last owner.
    pub fn watch(self: &Arc<Self>) {
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut seen = weak.upgrade().map(|t| t.stamp());
            loop {
                tokio::time::sleep(WATCH_EVERY).await;
                let Some(tls) = weak.upgrade() else { return };
                let now = tls.stamp();
                if Some(&now) == seen.as_ref() {
                    continue;
                }
                seen = Some(now);
                match server_config(&tls.cert, &tls.key) {
                    Ok(config) => {
                        tls.config.store(Arc::new(config));
                        metrics::counter!("angage_tls_reloads_total", "result" => "loaded").increment(1);
                        tracing::info!(cert = %tls.cert.display(), "reloaded the TLS certificate");
                    }
                    Err(e) => {
                        metrics::counter!("angage_tls_reloads_total", "result" => "failed").increment(1);
                        tracing::error!(error = %e, "the changed TLS files do not load; the current certificate stays");
                    }
                }
            }
        });
    }

    /// The files' modification times and sizes, to notice a change.
    fn stamp(&self) -> [(Option<SystemTime>, u64); 2] {
        let of = |p: &Path| std::fs::metadata(p).map_or((None, 0), |m| (m.modified().ok(), m.len()));
        [of(&self.cert), of(&self.key)]
    }

    /// Reads the connection's first byte: a TLS handshake is completed (within `deadline`),
    /// anything else is plain HTTP. `None` when the client sent nothing in time or the
    /// handshake failed.
    pub(crate) async fn accept(&self, stream: TcpStream, deadline: Duration) -> Option<Accepted> {
        let mut first = [0u8; 1];
        let peeked = tokio::time::timeout(deadline, stream.peek(&mut first)).await;
        match peeked {
            Ok(Ok(1)) if first[0] == HANDSHAKE => {}
            Ok(Ok(_)) => return Some(Accepted::Plain(stream)),
            _ => return None,
        }
        let acceptor = TlsAcceptor::from(self.config.load_full());
        match tokio::time::timeout(deadline, acceptor.accept(stream)).await {
            Ok(Ok(tls)) => {
                let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
                Some(Accepted::Tls { stream: Box::new(tls), h2 })
            }
            Ok(Err(e)) => {
                metrics::counter!("angage_tls_handshake_failures_total").increment(1);
                tracing::debug!(error = %e, "TLS handshake failed");
                None
            }
            Err(_) => None,
        }
    }
}

fn server_config(cert: &Path, key: &Path) -> Result<ServerConfig, TlsError> {
    let cert_err = |reason: String| TlsError::Cert { path: cert.display().to_string(), reason };
    let key_err = |reason: String| TlsError::Key { path: key.display().to_string(), reason };
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| cert_err(e.to_string()))?
        .collect::<Result<_, _>>()
        .map_err(|e| cert_err(e.to_string()))?;
    if chain.is_empty() {
        return Err(cert_err("holds no PEM certificate".into()));
    }
    let private = PrivateKeyDer::from_pem_file(key).map_err(|e| key_err(e.to_string()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, private)
        .map_err(|e| TlsError::Config(e.to_string()))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}
