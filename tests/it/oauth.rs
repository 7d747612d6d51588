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
        assert_eq!(
            meta["grant_types_supported"],
            json!(["client_credentials", "authorization_code", "refresh_token"])
        );
        assert!(meta["token_endpoint"].as_str().is_some_and(|t| t.ends_with("/oauth/token")), "{meta}");
        assert!(meta["scopes_supported"].as_array().is_some_and(|s| s.contains(&json!("customers:read"))));
        app.stop().await;
    }
}

/// An S256 PKCE pair: (verifier, challenge).
fn pkce() -> (String, String) {
    let verifier = angage_core::ids::random_base62(64);
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(<sha2::Sha256 as sha2::Digest>::digest(verifier.as_bytes()));
    (verifier, challenge)
}

/// `GET /oauth/authorize` without following the redirect: its `Location`.
async fn authorize(app: &TestApp, query: &[(&str, &str)]) -> (u16, String) {
    let client =
        reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
    let q: String = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(query).finish();
    let resp = client.get(app.url(&format!("/oauth/authorize?{q}"))).send().await.expect("send");
    let status = resp.status().as_u16();
    let location = resp.headers().get("location").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    (status, location)
}

fn query_of(url: &str) -> std::collections::HashMap<String, String> {
    url::Url::parse(url).expect("url").query_pairs().into_owned().collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authorization_code_with_pkce_refresh_rotation_and_reuse_detection() {
    for backend in backends() {
        let app = spawn_app(backend).await;
        let admin = app.demo_admin().await;
        admin.put("/admin/v1/settings", json!({"security": {"oauth_enabled": true}})).await;
        let redirect = "http://127.0.0.1:9/callback";
        let created = admin
            .post("/admin/v1/oauth-clients", json!({"name": "Reporting app", "scopes": ["customers:read", "orders:read"], "redirect_uris": [redirect]}))
            .await;
        assert_eq!(created.status, 201, "{}", created.text);
        let id = created.body["client_id"].as_str().expect("id").to_owned();
        let secret = created.body["client_secret"].as_str().expect("secret").to_owned();
        let basic = Some((id.as_str(), secret.as_str()));
        let refused = admin.post("/admin/v1/oauth-clients", json!({"name": "X", "scopes": ["customers:read"], "redirect_uris": ["http://evil.example/cb"]})).await;
        assert_eq!(refused.status, 422, "{}", refused.text);

        // What cannot be trusted is shown, never redirected to.
        let (status, _) = authorize(
            &app,
            &[("response_type", "code"), ("client_id", &id), ("redirect_uri", "https://evil.example/cb")],
        )
        .await;
        assert_eq!(status, 400);
        // What the app should hear goes back to it, with its state.
        let (status, location) = authorize(
            &app,
            &[("response_type", "code"), ("client_id", &id), ("redirect_uri", redirect), ("state", "s1")],
        )
        .await;
        assert_eq!(status, 303, "{location}");
        let back = query_of(&location);
        assert_eq!(
            (back["error"].as_str(), back["state"].as_str()),
            ("invalid_request", "s1"),
            "PKCE is required: {location}"
        );
        let (_, challenge) = pkce();
        let (_, location) = authorize(
            &app,
            &[
                ("response_type", "code"),
                ("client_id", &id),
                ("redirect_uri", redirect),
                ("code_challenge", &challenge),
                ("code_challenge_method", "plain"),
            ],
        )
        .await;
        assert_eq!(query_of(&location)["error"], "invalid_request", "S256 only");

        // A request, approved by the tenant's admin.
        let (verifier, challenge) = pkce();
        let start = [
            ("response_type", "code"),
            ("client_id", id.as_str()),
            ("redirect_uri", redirect),
            ("scope", "customers:read"),
            ("state", "xyz"),
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "S256"),
        ];
        let (status, location) = authorize(&app, &start).await;
        assert_eq!(status, 303);
        let request_id =
            location.strip_prefix("/console/#/consent/").expect("the console's consent page").to_owned();
        let shown = admin.get(&format!("/admin/v1/oauth/authorizations/{request_id}")).await;
        assert_eq!(shown.status, 200, "{}", shown.text);
        assert_eq!(
            (shown.body["client_name"].as_str(), &shown.body["scopes"]),
            (Some("Reporting app"), &json!(["customers:read"]))
        );
        let approved =
            admin.post(&format!("/admin/v1/oauth/authorizations/{request_id}/approve"), json!({})).await;
        assert_eq!(approved.status, 200, "{}", approved.text);
        let back = query_of(approved.body["redirect_to"].as_str().expect("redirect_to"));
        assert_eq!(back["state"], "xyz");
        let code = back["code"].clone();
        let again =
            admin.post(&format!("/admin/v1/oauth/authorizations/{request_id}/approve"), json!({})).await;
        assert_eq!(again.status, 409, "decided once");

        // A wrong verifier is refused; the right one buys tokens.
        let exchange = |v: &str| {
            vec![
                ("grant_type", "authorization_code".to_owned()),
                ("code", code.clone()),
                ("redirect_uri", redirect.to_owned()),
                ("code_verifier", v.to_owned()),
            ]
        };
        let form =
            |pairs: &[(&'static str, String)]| pairs.iter().map(|(k, v)| (*k, v.clone())).collect::<Vec<_>>();
        let wrong: Vec<(&str, String)> =
            form(&exchange("not-the-verifier-not-the-verifier-not-the-verifier"));
        let wrong_ref: Vec<(&str, &str)> = wrong.iter().map(|(k, v)| (*k, v.as_str())).collect();
        assert_eq!(error_of(&oauth(&app, "/oauth/token", basic, &wrong_ref).await), (400, "invalid_grant"));
        let right = exchange(&verifier);
        let right_ref: Vec<(&str, &str)> = right.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let (status, _, tokens) = oauth(&app, "/oauth/token", basic, &right_ref).await;
        assert_eq!(status, 200, "{tokens}");
        let access = tokens["access_token"].as_str().expect("access").to_owned();
        let refresh1 = tokens["refresh_token"].as_str().expect("refresh").to_owned();
        assert_eq!(tokens["scope"], "customers:read");
        assert_eq!(app.with_key(&access).get("/v1/customers").await.status, 200);
        assert_eq!(app.with_key(&access).get("/v1/orders").await.status, 403, "only what was approved");

        // Refresh rotates: the new pair works, the old refresh token is spent.
        let (status, _, rotated) = oauth(
            &app,
            "/oauth/token",
            basic,
            &[("grant_type", "refresh_token"), ("refresh_token", &refresh1)],
        )
        .await;
        assert_eq!(status, 200, "{rotated}");
        let access2 = rotated["access_token"].as_str().expect("access").to_owned();
        let refresh2 = rotated["refresh_token"].as_str().expect("refresh").to_owned();
        assert_ne!(refresh1, refresh2);
        assert_eq!(app.with_key(&access2).get("/v1/customers").await.status, 200);
        // The spent one presented again: the whole family is revoked.
        let reuse = oauth(
            &app,
            "/oauth/token",
            basic,
            &[("grant_type", "refresh_token"), ("refresh_token", &refresh1)],
        )
        .await;
        assert_eq!(error_of(&reuse), (400, "invalid_grant"));
        assert_eq!(app.with_key(&access2).get("/v1/customers").await.status, 401);
        assert_eq!(app.with_key(&access).get("/v1/customers").await.status, 401);
        let after = oauth(
            &app,
            "/oauth/token",
            basic,
            &[("grant_type", "refresh_token"), ("refresh_token", &refresh2)],
        )
        .await;
        assert_eq!(error_of(&after), (400, "invalid_grant"));
        // The code presented again is refused too.
        assert_eq!(error_of(&oauth(&app, "/oauth/token", basic, &right_ref).await), (400, "invalid_grant"));

        // A denial tells the app access_denied.
        let (_, location) = authorize(&app, &start).await;
        let request_id = location.strip_prefix("/console/#/consent/").expect("consent").to_owned();
        let denied =
            admin.post(&format!("/admin/v1/oauth/authorizations/{request_id}/deny"), json!({})).await;
        let back = query_of(denied.body["redirect_to"].as_str().expect("redirect_to"));
        assert_eq!((back["error"].as_str(), back["state"].as_str()), ("access_denied", "xyz"));
        // Another tenant's admin cannot see the request.
        let (_, location) = authorize(&app, &start).await;
        let request_id = location.strip_prefix("/console/#/consent/").expect("consent").to_owned();
        let other = app.tenant_admin("other").await;
        assert_eq!(other.get(&format!("/admin/v1/oauth/authorizations/{request_id}")).await.status, 404);

        let meta: Value =
            app.get("/.well-known/oauth-authorization-server").await.json().await.expect("metadata");
        assert_eq!(meta["code_challenge_methods_supported"], json!(["S256"]));
        app.stop().await;
    }
}
