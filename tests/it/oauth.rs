//! OAuth 2.0 client credentials end to end: a client made by an admin gets a token at the token
//! endpoint (Basic or form authentication, errors as RFC 6749 §5.2), the token reads what its
//! scope grants and nothing more, is limited and counted per client, introspects (RFC 7662),
//! and stops working when revoked (RFC 7009), expired, its client revoked or the tenant's OAuth
//! switch turned off.

use base64::Engine as _;
use serde_json::{Value, json};

use crate::helpers::{TestApp, backends, spawn_app};

/// A form POST to an OAuth endpoint; `basic` authenticates the client with HTTP Basic.
async fn oauth(
    app: &TestApp,
    path: &str,
    basic: Option<(&str, &str)>,
    form: &[(&str, &str)],
) -> (u16, reqwest::header::HeaderMap, Value) {
    let body: String = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(form).finish();
    let mut req =
        app.http.post(app.url(path)).header("content-type", "application/x-www-form-urlencoded").body(body);
    if let Some((id, secret)) = basic {
        let pair = base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"));
        req = req.header("authorization", format!("Basic {pair}"));
    }
    let resp = req.send().await.expect("send");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let text = resp.text().await.expect("body");
    (status, headers, serde_json::from_str(&text).unwrap_or(Value::Null))
}

fn error_of(answer: &(u16, reqwest::header::HeaderMap, Value)) -> (u16, &str) {
    (answer.0, answer.2["error"].as_str().unwrap_or(""))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_credentials_tokens_are_scoped_limited_counted_and_end_when_they_should() {
    for backend in backends() {
        let app = spawn_app(backend).await;
        let admin = app.demo_admin().await;
        let created = admin
            .post(
                "/admin/v1/oauth-clients",
                json!({"name": "Warehouse robot", "scopes": ["customers:read", "orders:write"], "environments": ["live"],
                       "rate_limits": {"per_second": 100, "burst": 100, "per_minute": 5}}),
            )
            .await;
        assert_eq!(created.status, 201, "{}", created.text);
        let id = created.body["client_id"].as_str().expect("client_id").to_owned();
        let secret = created.body["client_secret"].as_str().expect("client_secret").to_owned();
        assert_eq!(created.body["scopes"], json!(["customers:read", "orders:read", "orders:write"]));
        let listed = admin.get("/admin/v1/oauth-clients").await;
        assert!(!listed.text.contains(&secret), "a list never shows the secret");
        let basic = Some((id.as_str(), secret.as_str()));
        let grant = [("grant_type", "client_credentials")];

        // The tenant's switch is off: no token.
        assert_eq!(error_of(&oauth(&app, "/oauth/token", basic, &grant).await), (400, "unauthorized_client"));
        let on = admin
            .put(
                "/admin/v1/settings",
                json!({"security": {"oauth_enabled": true, "oauth_token_ttl_minutes": 60}}),
            )
            .await;
        assert_eq!(on.status, 200, "{}", on.text);

        // Client authentication and request errors, each as RFC 6749 §5.2 names it.
        let wrong = oauth(&app, "/oauth/token", Some((&id, "cs_wrong")), &grant).await;
        assert_eq!(error_of(&wrong), (401, "invalid_client"));
        assert!(wrong.1.contains_key("www-authenticate"));
        assert_eq!(error_of(&oauth(&app, "/oauth/token", None, &grant).await), (401, "invalid_client"));
        let beyond = [("grant_type", "client_credentials"), ("scope", "customers:write")];
        assert_eq!(error_of(&oauth(&app, "/oauth/token", basic, &beyond).await), (400, "invalid_scope"));
        let nonsense = [("grant_type", "client_credentials"), ("scope", "everything")];
        assert_eq!(error_of(&oauth(&app, "/oauth/token", basic, &nonsense).await), (400, "invalid_scope"));
        let password = [("grant_type", "password")];
        assert_eq!(
            error_of(&oauth(&app, "/oauth/token", basic, &password).await),
            (400, "unsupported_grant_type")
        );
        let test_env = [("grant_type", "client_credentials"), ("environment", "test")];
        assert_eq!(
            error_of(&oauth(&app, "/oauth/token", basic, &test_env).await),
            (400, "unauthorized_client")
        );

        // A token for customers:read, by form authentication.
        let form = [
            ("grant_type", "client_credentials"),
            ("scope", "customers:read"),
            ("client_id", &id),
            ("client_secret", &secret),
        ];
        let (status, headers, issued) = oauth(&app, "/oauth/token", None, &form).await;
        assert_eq!(status, 200, "{issued}");
        assert_eq!(
            (issued["token_type"].as_str(), issued["expires_in"].as_i64(), issued["scope"].as_str()),
            (Some("Bearer"), Some(3600), Some("customers:read"))
        );
        assert_eq!(headers.get("cache-control").and_then(|v| v.to_str().ok()), Some("no-store"));
        let token = issued["access_token"].as_str().expect("token").to_owned();
        assert!(token.starts_with("at_live_"), "{token}");

        // Granted read: 200; ungranted write: 403; counted per client.
        let client = app.with_key(&token);
        assert_eq!(client.get("/v1/customers").await.status, 200);
        let write = client.post("/v1/customers", json!({"name": "Nope", "email": "nope@example.com"})).await;
        assert_eq!(write.status, 403, "{}", write.text);
        let ungranted = client.get("/v1/orders").await;
        assert_eq!(ungranted.status, 403, "{}", ungranted.text);

        // Introspection: active, with its scope and client.
        let (status, _, active) = oauth(&app, "/oauth/introspect", basic, &[("token", &token)]).await;
        assert_eq!(status, 200);
        assert_eq!(
            (active["active"].as_bool(), active["scope"].as_str(), active["client_id"].as_str()),
            (Some(true), Some("customers:read"), Some(id.as_str()))
        );

        // The client's own limit: five a minute (refusals before the limiter are not charged).
        for _ in 0..4 {
            assert_eq!(client.get("/v1/customers").await.status, 200);
        }
        let limited = client.get("/v1/customers").await;
        assert_eq!(limited.status, 429, "{}", limited.text);
        app.clock.advance_ms(61_000);

        // The request log and usage know the client.
        app.state.usage.flush().await;
        let log = admin.get(&format!("/admin/v1/requests?client_id={id}&limit=100")).await;
        assert_eq!(log.status, 200, "{}", log.text);
        assert_eq!(log.body["data"].as_array().expect("data").len(), 8, "{}", log.text);
        assert!(!log.text.contains(&token), "a token never reaches the log");

        // Revoked (RFC 7009): refused at once; introspection says inactive.
        let (status, _, _) = oauth(&app, "/oauth/revoke", basic, &[("token", &token)]).await;
        assert_eq!(status, 200);
        let revoked = client.get("/v1/customers").await;
        assert_eq!((revoked.status, revoked.code()), (401, "revoked_token"), "{}", revoked.text);
        let (_, _, inactive) = oauth(&app, "/oauth/introspect", basic, &[("token", &token)]).await;
        assert_eq!(inactive, json!({"active": false}));
        // An unknown token revokes without error.
        assert_eq!(oauth(&app, "/oauth/revoke", basic, &[("token", "at_live_nothing")]).await.0, 200);

        // Expired on the clock: refused, inactive.
        let (_, _, second) = oauth(&app, "/oauth/token", basic, &grant).await;
        let second = second["access_token"].as_str().expect("token").to_owned();
        assert_eq!(app.with_key(&second).get("/v1/customers").await.status, 200);
        app.clock.advance_ms(61 * 60_000);
        let expired = app.with_key(&second).get("/v1/customers").await;
        assert_eq!((expired.status, expired.code()), (401, "expired_token"), "{}", expired.text);
        let (_, _, gone) = oauth(&app, "/oauth/introspect", basic, &[("token", &second)]).await;
        assert_eq!(gone["active"], false);

        // OAuth off: a live token is refused too.
        let (_, _, third) = oauth(&app, "/oauth/token", basic, &grant).await;
        let third = third["access_token"].as_str().expect("token").to_owned();
        assert_eq!(app.with_key(&third).get("/v1/customers").await.status, 200);
        admin.put("/admin/v1/settings", json!({"security": {"oauth_enabled": false}})).await;
        let off = app.with_key(&third).get("/v1/customers").await;
        assert_eq!((off.status, off.code()), (401, "oauth_disabled"), "{}", off.text);
        admin.put("/admin/v1/settings", json!({"security": {"oauth_enabled": true}})).await;
        assert_eq!(app.with_key(&third).get("/v1/customers").await.status, 200);

        // The client revoked: its tokens and its secret stop at once.
        let gone = admin.post(&format!("/admin/v1/oauth-clients/{id}/revoke"), json!({})).await;
        assert_eq!((gone.status, gone.body["status"].as_str()), (200, Some("revoked")), "{}", gone.text);
        assert_eq!(app.with_key(&third).get("/v1/customers").await.status, 401);
        assert_eq!(error_of(&oauth(&app, "/oauth/token", basic, &grant).await), (401, "invalid_client"));

        // Discovery names what is implemented.
        let meta: Value =
            app.get("/.well-known/oauth-authorization-server").await.json().await.expect("metadata");
        assert_eq!(meta["grant_types_supported"], json!(["client_credentials"]));
        assert!(meta["token_endpoint"].as_str().is_some_and(|t| t.ends_with("/oauth/token")), "{meta}");
        assert!(meta["scopes_supported"].as_array().is_some_and(|s| s.contains(&json!("customers:read"))));
        app.stop().await;
    }
}
