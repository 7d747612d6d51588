//! Signed requests (RFC 9421 with RFC 9530 digests): with the tenant's switch on (or a key
//! that demands it) a request is served only with a fresh, unreplayed Ed25519 signature over its
//! method, URL and body digest; every way of getting that wrong is a clear refusal.

use angage_core::clock::Clock;
use angage_core::signing::{self, Param, SignatureInput};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::{Signer, SigningKey};
use serde_json::json;

use crate::helpers::{Reply, TestApp, backends, spawn_app};

/// What a client signs for one request.
struct Signed<'a> {
    method: &'a str,
    path: &'a str,
    body: Option<&'a str>,
    created: i64,
    key_id: &'a str,
    /// Sign `content-digest` when there is a body.
    cover_digest: bool,
}

/// The three headers a client sends.
fn sign(app: &TestApp, key: &SigningKey, s: &Signed<'_>) -> Vec<(&'static str, String)> {
    let authority = app.base.trim_start_matches("http://");
    let target = signing::target_uri(
        false,
        authority,
        s.path.split('?').next().unwrap_or(""),
        s.path.split_once('?').map(|(_, q)| q),
    );
    let digest = s.body.map(|b| signing::content_digest(b.as_bytes()));
    let mut components = vec!["@method".to_owned(), "@target-uri".to_owned()];
    if digest.is_some() && s.cover_digest {
        components.push("content-digest".to_owned());
    }
    let input = SignatureInput {
        label: "sig1".into(),
        components,
        params: vec![
            ("created".into(), Param::Integer(s.created)),
            ("keyid".into(), Param::String(s.key_id.to_owned())),
            ("alg".into(), Param::String("ed25519".into())),
        ],
    };
    let base = signing::signature_base(&input, |c| match c {
        "@method" => Some(s.method.to_owned()),
        "@target-uri" => Some(target.clone()),
        "content-digest" => digest.clone(),
        _ => None,
    })
    .expect("base");
    let mut headers = vec![
        ("signature-input", format!("sig1={}", input.serialize())),
        ("signature", format!("sig1=:{}:", STANDARD.encode(key.sign(base.as_bytes()).to_bytes()))),
    ];
    if let Some(d) = digest {
        headers.push(("content-digest", d));
    }
    headers
}

async fn send(
    app: &TestApp,
    secret: &str,
    method: &str,
    path: &str,
    body: Option<&str>,
    headers: &[(&'static str, String)],
) -> Reply {
    let mut req = app.http.request(method.parse().expect("method"), app.url(path)).bearer_auth(secret);
    for (name, value) in headers {
        req = req.header(*name, value);
    }
    if let Some(b) = body {
        req = req.header("content-type", "application/json").body(b.to_owned());
    }
    crate::helpers::send_checked(&app.http, req).await
}

fn refused(reply: &Reply, status: u16, code: &str, says: &str) {
    assert_eq!((reply.status, reply.code()), (status, code), "{}", reply.text);
    let detail = reply.body["detail"].as_str().unwrap_or("");
    assert!(detail.contains(says), "the detail should say {says:?}: {detail}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_requests_are_served_and_every_tampering_is_refused() {
    for backend in backends() {
        let app = spawn_app(backend).await;
        let admin = app.demo_admin().await;
        let limits = json!({"per_second": 1000, "burst": 1000, "per_minute": 1000});
        let signer = SigningKey::from_bytes(&rand::random::<[u8; 32]>());
        let public = STANDARD.encode(signer.verifying_key().to_bytes());
        let created = admin
            .post(
                "/admin/v1/keys",
                json!({"name": "Signed ERP", "signing_public_key": public, "rate_limits": limits}),
            )
            .await;
        assert_eq!(created.status, 201, "{}", created.text);
        assert_eq!(created.body["signing_public_key"], public.as_str());
        let (secret, key_id) = (
            created.body["key"].as_str().expect("secret").to_owned(),
            created.body["id"].as_str().expect("id").to_owned(),
        );
        let bare = app.issue_key("demo", json!({"name": "Unsigned", "rate_limits": limits})).await;

        // Off: unsigned requests go through, for either key.
        assert_eq!(send(&app, &secret, "GET", "/v1/customers", None, &[]).await.status, 200);
        assert_eq!(send(&app, &bare, "GET", "/v1/customers", None, &[]).await.status, 200);
        let on =
            admin.put("/admin/v1/settings", json!({"security": {"validate_request_signatures": true}})).await;
        assert_eq!(on.status, 200, "{}", on.text);

        // On: a key with no public key is told what is missing; an unsigned request what to send.
        refused(
            &send(&app, &bare, "GET", "/v1/customers", None, &[]).await,
            401,
            "signing_key_missing",
            "signing_public_key",
        );
        refused(
            &send(&app, &secret, "GET", "/v1/customers", None, &[]).await,
            401,
            "signature_required",
            "Signature-Input",
        );

        let now = app.clock.now_ms() / 1000;
        let body = r#"{"name": "Signed Customer", "email": "signed@example.com"}"#;
        let post = Signed {
            method: "POST",
            path: "/v1/customers",
            body: Some(body),
            created: now,
            key_id: &key_id,
            cover_digest: true,
        };
        let headers = sign(&app, &signer, &post);
        let ok = send(&app, &secret, "POST", "/v1/customers", Some(body), &headers).await;
        assert_eq!(ok.status, 201, "{}", ok.text);
        assert_eq!(ok.body["name"], "Signed Customer");

        // The same signature again is a replay.
        refused(
            &send(&app, &secret, "POST", "/v1/customers", Some(body), &headers).await,
            401,
            "signature_replayed",
            "already used",
        );

        // A body changed after signing: its digest no longer matches, and nothing is written.
        let fresh = sign(&app, &signer, &Signed { created: now + 1, ..post });
        let changed = body.replace("Signed Customer", "Mallory");
        refused(
            &send(&app, &secret, "POST", "/v1/customers", Some(&changed), &fresh).await,
            400,
            "content_digest_mismatch",
            "does not match",
        );
        // The digest header swapped too: the signature no longer verifies.
        let mut swapped = sign(&app, &signer, &Signed { created: now + 2, ..post });
        for h in &mut swapped {
            if h.0 == "content-digest" {
                h.1 = signing::content_digest(changed.as_bytes());
            }
        }
        refused(
            &send(&app, &secret, "POST", "/v1/customers", Some(&changed), &swapped).await,
            401,
            "invalid_signature",
            "does not verify",
        );
        // Another path than the one signed.
        let elsewhere = sign(&app, &signer, &Signed { created: now + 3, ..post });
        refused(
            &send(&app, &secret, "POST", "/v1/products", Some(body), &elsewhere).await,
            401,
            "invalid_signature",
            "does not verify",
        );
        // Signed too long ago, or in the future.
        let old = sign(&app, &signer, &Signed { created: now - 301, ..post });
        refused(
            &send(&app, &secret, "POST", "/v1/customers", Some(body), &old).await,
            401,
            "invalid_signature",
            "300 seconds",
        );
        let ahead = sign(&app, &signer, &Signed { created: now + 400, ..post });
        refused(
            &send(&app, &secret, "POST", "/v1/customers", Some(body), &ahead).await,
            401,
            "invalid_signature",
            "300 seconds",
        );
        // A body whose digest the signature does not cover.
        let uncovered = sign(&app, &signer, &Signed { created: now + 4, cover_digest: false, ..post });
        refused(
            &send(&app, &secret, "POST", "/v1/customers", Some(body), &uncovered).await,
            401,
            "invalid_signature",
            "content-digest",
        );
        // Another key's id, and another key's signature.
        let misnamed = sign(&app, &signer, &Signed { created: now + 5, key_id: "key_someoneelse", ..post });
        refused(
            &send(&app, &secret, "POST", "/v1/customers", Some(body), &misnamed).await,
            401,
            "invalid_signature",
            "keyid",
        );
        let impostor = SigningKey::from_bytes(&rand::random::<[u8; 32]>());
        let forged = sign(&app, &impostor, &Signed { created: now + 6, ..post });
        refused(
            &send(&app, &secret, "POST", "/v1/customers", Some(body), &forged).await,
            401,
            "invalid_signature",
            "does not verify",
        );
        // Garbage in the headers is a 401 naming the header, not a 500.
        let garbage =
            [("signature-input", "sig1=(\"@method\"".to_owned()), ("signature", "sig1=:AAAA:".to_owned())];
        refused(
            &send(&app, &secret, "GET", "/v1/customers", None, &garbage).await,
            401,
            "invalid_signature",
            "Signature-Input",
        );

        // A signed GET with a query, and a signature within the window after time moves on.
        app.clock.advance_ms(200_000);
        let later = app.clock.now_ms() / 1000;
        let get = Signed {
            method: "GET",
            path: "/v1/customers?limit=5",
            body: None,
            created: later,
            key_id: &key_id,
            cover_digest: true,
        };
        let listed =
            send(&app, &secret, "GET", "/v1/customers?limit=5", None, &sign(&app, &signer, &get)).await;
        assert_eq!(listed.status, 200, "{}", listed.text);
        let names: Vec<&str> =
            listed.body["data"].as_array().expect("data").iter().filter_map(|c| c["name"].as_str()).collect();
        assert_eq!(
            names.iter().filter(|n| **n == "Signed Customer").count(),
            1,
            "one write, none of the refused ones: {names:?}"
        );
        assert!(!names.contains(&"Mallory"));

        // Off again: a key that demands signatures still gets them checked; the others do not.
        admin.put("/admin/v1/settings", json!({"security": {"validate_request_signatures": false}})).await;
        let demand = admin.put(&format!("/admin/v1/keys/{key_id}"), json!({"require_signature": true})).await;
        assert_eq!(
            (demand.status, demand.body["require_signature"].as_bool()),
            (200, Some(true)),
            "{}",
            demand.text
        );
        refused(
            &send(&app, &secret, "GET", "/v1/customers", None, &[]).await,
            401,
            "signature_required",
            "Signature-Input",
        );
        assert_eq!(send(&app, &bare, "GET", "/v1/customers", None, &[]).await.status, 200);
        // A key cannot demand signatures it has no key to check.
        let bare_id = admin.get("/admin/v1/keys?limit=100").await.body["data"]
            .as_array()
            .expect("keys")
            .iter()
            .find(|k| k["name"] == "Unsigned")
            .and_then(|k| k["id"].as_str())
            .expect("the unsigned key")
            .to_owned();
        let refused_demand =
            admin.put(&format!("/admin/v1/keys/{bare_id}"), json!({"require_signature": true})).await;
        assert_eq!(refused_demand.status, 422, "{}", refused_demand.text);
        assert!(refused_demand.text.contains("require_signature"));
        let bad_key =
            admin.put(&format!("/admin/v1/keys/{bare_id}"), json!({"signing_public_key": "not a key"})).await;
        assert_eq!(bad_key.status, 422, "{}", bad_key.text);
        assert!(bad_key.text.contains("signing_public_key"));
        app.stop().await;
    }
}
