//! HTTPS served by the server itself: a certificate made in the test, HTTP/2 and HTTP/1.1 by
//! ALPN, "Require HTTPS only" judged from the connection (plain HTTP on the same port is
//! refused with a problem naming the setting), and a renewed certificate served without a
//! restart while a broken one is never picked up.

use std::sync::Arc;
use std::time::Duration;

use angage_core::clock::Clock;
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::json;

use crate::helpers::{Backend, TestApp, TestDb, spawn_with, test_settings};

/// A self-signed certificate for 127.0.0.1: (certificate PEM, key PEM, certificate DER).
fn certificate(name: &str) -> (String, String, Vec<u8>) {
    let mut params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).expect("params");
    params.subject_alt_names.push(rcgen::SanType::IpAddress("127.0.0.1".parse().expect("ip")));
    params.distinguished_name.push(rcgen::DnType::CommonName, name);
    let key = rcgen::KeyPair::generate().expect("key pair");
    let cert = params.self_signed(&key).expect("self-signed");
    (cert.pem(), key.serialize_pem(), cert.der().to_vec())
}

/// What one request over TLS saw.
struct Seen {
    alpn: Option<Vec<u8>>,
    server_cert: Vec<u8>,
    status: u16,
    hsts: bool,
    body: String,
}

/// One request over TLS trusting `trusted`, offering `alpn`.
async fn over_tls(
    app: &TestApp,
    trusted: &[u8],
    alpn: &[u8],
    path: &str,
    key: Option<&str>,
) -> Result<Seen, String> {
    over_tls_with(app, trusted, alpn, path, key, &[]).await
}

/// [`over_tls`] with extra request headers.
async fn over_tls_with(
    app: &TestApp,
    trusted: &[u8],
    alpn: &[u8],
    path: &str,
    key: Option<&str>,
    extra: &[(&str, String)],
) -> Result<Seen, String> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from(trusted.to_vec())).map_err(|e| e.to_string())?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![alpn.to_vec()];
    let addr = app.base.trim_start_matches("http://").to_owned();
    let tcp = tokio::net::TcpStream::connect(&addr).await.map_err(|e| e.to_string())?;
    let name = ServerName::try_from("127.0.0.1").map_err(|e| e.to_string())?.to_owned();
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .map_err(|e| e.to_string())?;
    let (_, session) = tls.get_ref();
    let alpn_seen = session.alpn_protocol().map(<[u8]>::to_vec);
    let server_cert =
        session.peer_certificates().and_then(|c| c.first()).map(|c| c.to_vec()).unwrap_or_default();
    let mut req = hyper::Request::get(format!("https://{addr}{path}"));
    if alpn == b"http/1.1" {
        req = req.header("host", &addr);
    }
    if let Some(k) = key {
        req = req.header("authorization", format!("Bearer {k}"));
    }
    for (name, value) in extra {
        req = req.header(*name, value);
    }
    let req = req.body(Empty::<Bytes>::new()).map_err(|e| e.to_string())?;
    let resp = if alpn == b"h2" {
        let (mut send, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        send.send_request(req).await.map_err(|e| e.to_string())?
    } else {
        let (mut send, conn) =
            hyper::client::conn::http1::handshake(TokioIo::new(tls)).await.map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        send.send_request(req).await.map_err(|e| e.to_string())?
    };
    let status = resp.status().as_u16();
    let hsts = resp.headers().contains_key("strict-transport-security");
    let body = resp.into_body().collect().await.map_err(|e| e.to_string())?.to_bytes();
    Ok(Seen { alpn: alpn_seen, server_cert, status, hsts, body: String::from_utf8_lossy(&body).into_owned() })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_is_served_by_alpn_required_by_the_connection_and_renewed_without_a_restart() {
    let db = TestDb::new(Backend::Sqlite).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let (cert_file, key_file) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let (cert_pem, key_pem, first_der) = certificate("first");
    std::fs::write(&cert_file, &cert_pem).expect("cert");
    std::fs::write(&key_file, &key_pem).expect("key");
    let mut settings = test_settings(&db);
    settings.server.tls.cert_file = cert_file.display().to_string();
    settings.server.tls.key_file = key_file.display().to_string();
    let app = spawn_with(db, settings).await;
    let key = app.v1().await.key().to_owned();

    // HTTP/2 and HTTP/1.1, each as the client offered it; HTTPS earns HSTS.
    let h2 = over_tls(&app, &first_der, b"h2", "/v1/customers", Some(&key)).await.expect("h2");
    assert_eq!((h2.alpn.as_deref(), h2.status, h2.hsts), (Some(&b"h2"[..]), 200, true), "{}", h2.body);
    let h1 = over_tls(&app, &first_der, b"http/1.1", "/v1/customers", Some(&key)).await.expect("http/1.1");
    assert_eq!((h1.alpn.as_deref(), h1.status, h1.hsts), (Some(&b"http/1.1"[..]), 200, true), "{}", h1.body);
    assert_eq!(h1.server_cert, first_der);

    // A tenant that requires HTTPS: plain HTTP on the same port is refused, naming the setting,
    // even when a header claims HTTPS; TLS is served.
    let admin = app.demo_admin().await;
    let on = admin.put("/admin/v1/settings", json!({"security": {"require_https": true}})).await;
    assert_eq!(on.status, 200, "{}", on.text);
    let plain = app
        .http
        .get(app.url("/v1/customers"))
        .bearer_auth(&key)
        .header("x-forwarded-proto", "https")
        .send()
        .await
        .expect("plain");
    assert_eq!(plain.status(), 403);
    let problem: serde_json::Value = plain.json().await.expect("problem");
    assert_eq!(problem["code"], "https_required");
    assert!(problem["detail"].as_str().is_some_and(|d| d.contains("Require HTTPS only")), "{problem}");
    assert!(problem.get("data").is_none(), "no data over plain HTTP: {problem}");
    let secure = over_tls(&app, &first_der, b"h2", "/v1/customers", Some(&key)).await.expect("h2");
    assert_eq!(secure.status, 200, "{}", secure.body);

    // Over HTTP/2 (no Host header, an `:authority`), discovery says https and a signed request
    // verifies against its https URL.
    let meta =
        over_tls(&app, &first_der, b"h2", "/.well-known/oauth-authorization-server", None).await.expect("h2");
    let issuer = format!("\"issuer\":\"https://{}\"", app.base.trim_start_matches("http://"));
    assert!(meta.body.contains(&issuer), "{}", meta.body);
    let signer = ed25519_dalek::SigningKey::from_bytes(&rand::random::<[u8; 32]>());
    let public = angage_core::signing::encode_public_key(&signer.verifying_key().to_bytes());
    let created = admin
        .post(
            "/admin/v1/keys",
            json!({"name": "signed", "signing_public_key": public, "require_signature": true}),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    let (signed_key, key_id) = (
        created.body["key"].as_str().expect("key").to_owned(),
        created.body["id"].as_str().expect("id").to_owned(),
    );
    let input = angage_core::signing::SignatureInput {
        label: "sig1".into(),
        components: vec!["@method".into(), "@target-uri".into()],
        params: vec![
            ("created".into(), angage_core::signing::Param::Integer(app.clock.now_ms() / 1000)),
            ("keyid".into(), angage_core::signing::Param::String(key_id)),
        ],
    };
    let target = format!("https://{}/v1/customers", app.base.trim_start_matches("http://"));
    let base = angage_core::signing::signature_base(&input, |c| match c {
        "@method" => Some("GET".into()),
        "@target-uri" => Some(target.clone()),
        _ => None,
    })
    .expect("base");
    let signature = {
        use base64::Engine as _;
        use ed25519_dalek::Signer as _;
        base64::engine::general_purpose::STANDARD.encode(signer.sign(base.as_bytes()).to_bytes())
    };
    let headers = [
        ("signature-input", format!("sig1={}", input.serialize())),
        ("signature", format!("sig1=:{signature}:")),
    ];
    let signed = over_tls_with(&app, &first_der, b"h2", "/v1/customers", Some(&signed_key), &headers)
        .await
        .expect("h2");
    assert_eq!(signed.status, 200, "{}", signed.body);

    // A broken renewal is not picked up: the first certificate is still served.
    std::fs::write(&cert_file, "-----BEGIN CERTIFICATE-----\nnot a certificate\n-----END CERTIFICATE-----\n")
        .expect("break");
    crate::wait::until(Duration::from_secs(10), "the broken certificate to be noticed", async || {
        let metrics = app.get("/metrics").await.text().await.ok()?;
        metrics.contains("angage_tls_reloads_total{result=\"failed\"}").then_some(())
    })
    .await;
    let still = over_tls(&app, &first_der, b"h2", "/healthz", None).await.expect("still served");
    assert_eq!((still.status, still.server_cert == first_der), (200, true));

    // A renewal is served without a restart.
    let (cert_pem, key_pem, second_der) = certificate("second");
    std::fs::write(&key_file, &key_pem).expect("key");
    std::fs::write(&cert_file, &cert_pem).expect("cert");
    let renewed =
        crate::wait::until(Duration::from_secs(10), "the renewed certificate to be served", async || {
            over_tls(&app, &second_der, b"h2", "/healthz", None)
                .await
                .ok()
                .filter(|s| s.server_cert == second_der)
        })
        .await;
    assert_eq!(renewed.status, 200);
    assert!(
        over_tls(&app, &first_der, b"h2", "/healthz", None).await.is_err(),
        "the old certificate is gone"
    );
    app.stop().await;
}
