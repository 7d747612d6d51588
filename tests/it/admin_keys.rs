//! The key store and the admin API over HTTP: issue, shown-once, lookup, revoke, rotate,
//! expiry, allowlists, tenant isolation, login throttling, CSRF and the audit log.

use std::net::IpAddr;

use angage_core::clock::Clock;
use angage_core::key::KeyRecord;
use angage_store::keys::cache::Lookup;
use serde_json::json;

use crate::helpers::{AdminSession, TestApp, backends, spawn_app};

const HOUR: i64 = 3_600_000;

async fn lookup(app: &TestApp, secret: &str) -> Lookup {
    app.state.keys.lookup(&app.state.db, secret, app.clock.now_ms()).await.expect("lookup")
}

async fn found(app: &TestApp, secret: &str) -> std::sync::Arc<KeyRecord> {
    match lookup(app, secret).await {
        Lookup::Found(r) => r,
        other => panic!("expected a key, got {other:?}"),
    }
}

/// The key's limits and its tenant's HTTPS switch as the request path sees them: the record
/// from the key cache over its tenant's settings from the settings cache.
async fn effective(app: &TestApp, secret: &str) -> (angage_core::limits::Limits, bool) {
    let record = found(app, secret).await;
    let settings = app
        .state
        .tenant_settings
        .get(&app.state.db, &record.tenant_id, app.clock.now_ms())
        .await
        .expect("tenant settings");
    (record.limits.over(settings.rate_limits.defaults), settings.security.require_https)
}

async fn issue(admin: &AdminSession<'_>, body: serde_json::Value) -> (String, String) {
    let r = admin.post("/admin/v1/keys", body).await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    (r.body["id"].as_str().expect("id").to_owned(), r.body["key"].as_str().expect("key").to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issued_keys_are_shown_once_and_looked_up_by_digest() {
    for backend in backends() {
        let app = spawn_app(backend).await;
        let admin = app.demo_admin().await;
        let r = admin
            .post(
                "/admin/v1/keys",
                json!({"name": "Warehouse sync", "description": "nightly", "environment": "live", "scope": "custom",
                       "grants": {"inventory": "read_write", "products": "read"}, "rate_limits": {"per_minute": 60},
                       "ip_allowlist": ["192.168.1.130/25", "2001:db8::/32"], "expires_in_days": 90}),
            )
            .await;
        assert_eq!(r.status, 201, "{:?}", r.body);
        let secret = r.body["key"].as_str().expect("secret").to_owned();
        let id = r.body["id"].as_str().expect("id").to_owned();
        assert!(secret.starts_with("ak_live_") && secret.len() == 48, "{secret}");
        assert_eq!(r.body["prefix"], format!("{}...", &secret[..12]));
        assert_eq!(r.body["grants"]["inventory"], "read_write");
        assert_eq!(r.body["grants"]["orders"], "none");
        assert_eq!(r.body["ip_allowlist"], json!(["192.168.1.128/25", "2001:db8::/32"]));
        assert_eq!(r.body["created_by"], "admin@demo.local");
        assert_eq!(r.body["expires_at"], "2027-01-31T10:00:00.000Z");

        // The lookup the request path uses returns the principal.
        let record = found(&app, &secret).await;
        assert_eq!(record.id, id);
        assert_eq!(record.tenant_slug, "demo");
        assert_eq!(record.name, "Warehouse sync");
        let (limits, _) = effective(&app, &secret).await;
        assert_eq!(record.limits.per_minute, Some(60));
        assert_eq!(record.limits.per_second, None, "the key's own limits");
        assert_eq!(limits.per_minute, Some(60));
        assert_eq!(limits.per_second, Some(10), "absent limits come from the tenant's defaults");
        assert_eq!(limits.per_day, Some(20000));
        assert!(
            record.ip_allowlist.iter().any(|c| c.contains("192.168.1.200".parse::<IpAddr>().expect("ip")))
        );
        assert!(
            !record.ip_allowlist.iter().any(|c| c.contains("192.168.1.100".parse::<IpAddr>().expect("ip")))
        );
        assert!(
            record.ip_allowlist.iter().any(|c| c.contains("2001:db8:1::5".parse::<IpAddr>().expect("ip")))
        );

        // No later response carries the secret or its digest.
        let digest = app.state.keys.pepper().digest_str(&secret);
        for path in [
            "/admin/v1/keys",
            &format!("/admin/v1/keys/{id}"),
            "/admin/v1/audit",
            "/admin/v1/keys?environment=live",
        ] {
            let r = admin.get(path).await;
            assert_eq!(r.status, 200, "{path}");
            assert!(!r.text.contains(&secret[12..]) && !r.text.contains(&digest), "{path} leaks the secret");
        }
        let listed = admin.get("/admin/v1/keys?environment=live").await;
        assert_eq!(listed.body["data"][0]["id"], id.as_str());
        assert_eq!(listed.body["data"][0]["status"], "active");
        assert_eq!(
            admin.get("/admin/v1/keys?environment=test").await.body["data"].as_array().expect("data").len(),
            1,
            "the quick-start key"
        );

        // Last used is gathered in memory and flushed, not written per request.
        assert!(admin.get(&format!("/admin/v1/keys/{id}")).await.body["last_used_at"].is_null());
        app.state.keys.flush_last_used(&app.state.db).await.expect("flush");
        assert_eq!(
            admin.get(&format!("/admin/v1/keys/{id}")).await.body["last_used_at"],
            "2026-11-02T10:00:00.000Z"
        );
        app.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_keys_are_refused_without_touching_the_database() {
    let app = spawn_app(crate::helpers::Backend::Sqlite).await;
    let admin = app.demo_admin().await;
    let (_, secret) = issue(&admin, json!({"name": "k"})).await;
    let mut typo = secret.clone().into_bytes();
    typo[20] = if typo[20] == b'a' { b'b' } else { b'a' };
    let typo = String::from_utf8(typo).expect("ascii");
    // With the pool closed, any query would fail: a malformed key must not need one.
    app.state.db.close().await;
    for bad in [typo.as_str(), "ak_live_tooshort", "sk_live_whatever", ""] {
        assert!(matches!(lookup(&app, bad).await, Lookup::Malformed(_)), "{bad}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoke_is_immediate_and_rotation_honours_the_grace_period() {
    for backend in backends() {
        let app = spawn_app(backend).await;
        let admin = app.demo_admin().await;
        let (id, secret) = issue(&admin, json!({"name": "to revoke"})).await;
        assert!(found(&app, &secret).await.revoked_at.is_none());
        let r = admin.post(&format!("/admin/v1/keys/{id}/revoke"), json!({})).await;
        assert_eq!((r.status, r.body["status"].as_str()), (200, Some("revoked")));
        assert!(
            found(&app, &secret).await.revoked_at.is_some(),
            "the cached record must not outlive a revoke"
        );
        let again = admin.post(&format!("/admin/v1/keys/{id}/rotate"), json!({})).await;
        assert_eq!((again.status, again.code()), (409, "key_not_active"));

        let (old_id, old_secret) = issue(&admin, json!({"name": "to rotate", "scope": "read_only"})).await;
        let r = admin.post(&format!("/admin/v1/keys/{old_id}/rotate"), json!({"grace": "1h"})).await;
        assert_eq!(r.status, 201, "{:?}", r.body);
        let new_secret = r.body["key"].as_str().expect("new secret").to_owned();
        assert_ne!(new_secret, old_secret);
        assert_eq!(r.body["scope"], "read_only");
        let new_id = r.body["id"].as_str().expect("id").to_owned();
        let old = admin.get(&format!("/admin/v1/keys/{old_id}")).await;
        assert_eq!(
            (old.body["status"].as_str(), old.body["rotated_to"].as_str()),
            (Some("rotating"), Some(new_id.as_str()))
        );
        assert_eq!(old.body["expires_at"], "2026-11-02T11:00:00.000Z");
        assert_eq!(found(&app, &old_secret).await.expires_at, Some(app.clock.now_ms() + HOUR));
        assert_eq!(found(&app, &new_secret).await.expires_at, None);

        app.clock.advance_ms(HOUR);
        assert_eq!(admin.get(&format!("/admin/v1/keys/{old_id}")).await.body["status"], "expired");
        assert_eq!(admin.get(&format!("/admin/v1/keys/{new_id}")).await.body["status"], "active");

        // "now" ends the old secret at once.
        let (now_id, _) = issue(&admin, json!({"name": "rotate now"})).await;
        admin.post(&format!("/admin/v1/keys/{now_id}/rotate"), json!({"grace": "now"})).await;
        assert_eq!(admin.get(&format!("/admin/v1/keys/{now_id}")).await.body["status"], "expired");
        let bad = admin.post(&format!("/admin/v1/keys/{new_id}/rotate"), json!({"grace": "2h"})).await;
        assert_eq!(bad.status, 422);
        app.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_expire_and_settings_apply_to_new_keys() {
    let app = spawn_app(crate::helpers::Backend::Sqlite).await;
    let admin = app.demo_admin().await;
    let settings = admin.get("/admin/v1/settings").await;
    assert_eq!(
        settings.body["rate_limits"],
        json!({"per_second": 10, "per_minute": 100, "per_hour": 2000, "per_day": 20000, "burst": 20, "burst_window_seconds": 5,
               "send_retry_after": true, "send_rate_limit_headers": true})
    );
    let (id, secret) = issue(&admin, json!({"name": "short", "expires_in_days": 1})).await;
    assert_eq!(admin.get(&format!("/admin/v1/keys/{id}")).await.body["status"], "active");
    app.clock.advance_ms(24 * HOUR);
    assert_eq!(admin.get("/admin/v1/me").await.status, 401, "sessions last 12 hours");
    let admin = app.demo_admin().await;
    assert_eq!(admin.get(&format!("/admin/v1/keys/{id}")).await.body["status"], "expired");
    assert!(found(&app, &secret).await.expires_at.is_some_and(|t| t <= app.clock.now_ms()));

    let r = admin.put("/admin/v1/settings", json!({"rate_limits": {"per_minute": 300}, "security": {"default_key_expiration_days": 30, "require_https": true}})).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["rate_limits"]["per_minute"], 300);
    assert_eq!(r.body["rate_limits"]["per_second"], 10, "fields not sent are kept");
    let (limits, require_https) = effective(&app, &secret).await;
    assert_eq!(limits.per_minute, Some(300), "a settings change reaches the request path at once");
    assert!(require_https);
    let (_, with_default) = issue(&admin, json!({"name": "defaulted"})).await;
    assert_eq!(found(&app, &with_default).await.expires_at, Some(app.clock.now_ms() + 30 * 24 * HOUR));
    let (_, never) = issue(&admin, json!({"name": "never", "expires_in_days": 0})).await;
    assert_eq!(found(&app, &never).await.expires_at, None);

    let bad = admin.put("/admin/v1/settings", json!({"rate_limits": {"per_second": 0, "per_minute": "many"}, "security": {"require_https": "yes"}, "colour": 1})).await;
    assert_eq!(bad.status, 422);
    assert_eq!(bad.body["errors"].as_array().expect("errors").len(), 4, "{:?}", bad.body);
    let inverted = admin.put("/admin/v1/settings", json!({"rate_limits": {"per_minute": 5000}})).await;
    assert_eq!(inverted.status, 422);

    let bad_key = admin
        .post("/admin/v1/keys", json!({"environment": "prod", "scope": "all", "ip_allowlist": ["10.0.0.0/33"], "rate_limits": {"per_minute": -1}}))
        .await;
    let fields: Vec<&str> = bad_key.body["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .map(|e| e["field"].as_str().expect("f"))
        .collect();
    assert_eq!(fields, ["name", "environment", "scope", "rate_limits.per_minute", "ip_allowlist[0]"]);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admins_see_and_change_only_their_own_tenant() {
    for backend in backends() {
        let app = spawn_app(backend).await;
        let demo = app.demo_admin().await;
        let globex = app.tenant_admin("globex").await;
        let (id, _) = issue(&demo, json!({"name": "demo key"})).await;
        assert_eq!(globex.get(&format!("/admin/v1/keys/{id}")).await.status, 404);
        assert_eq!(globex.put(&format!("/admin/v1/keys/{id}"), json!({"name": "mine"})).await.status, 404);
        assert_eq!(globex.post(&format!("/admin/v1/keys/{id}/revoke"), json!({})).await.status, 404);
        assert_eq!(globex.post(&format!("/admin/v1/keys/{id}/rotate"), json!({})).await.status, 404);
        assert_eq!(globex.get("/admin/v1/keys").await.body["data"].as_array().expect("data").len(), 0);
        let audit = globex.get("/admin/v1/audit").await.body;
        let mut actions: Vec<&str> =
            audit["data"].as_array().expect("data").iter().filter_map(|e| e["action"].as_str()).collect();
        actions.sort_unstable();
        assert_eq!(actions, ["admin.created", "admin.login"], "only its own admin's creation and login");
        assert_eq!(globex.get("/admin/v1/me").await.body["tenant_slug"], "globex");
        globex.put("/admin/v1/settings", json!({"rate_limits": {"per_second": 1}})).await;
        assert_eq!(demo.get("/admin/v1/settings").await.body["rate_limits"]["per_second"], 10);
        assert_eq!(demo.get(&format!("/admin/v1/keys/{id}")).await.body["name"], "demo key");
        let admins = globex.get("/admin/v1/admins").await;
        assert_eq!(admins.body.as_array().expect("admins").len(), 1);
        assert!(!admins.text.contains("argon2"), "no password hash in responses");
        app.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_logins_are_throttled_per_account_and_per_ip() {
    let app = spawn_app(crate::helpers::Backend::Sqlite).await;
    let banner = app.banner.clone().expect("banner");
    for _ in 0..5 {
        let r = app.try_login(&banner.admin_email, "wrong password").await;
        assert_eq!((r.status, r.code()), (401, "invalid_login"));
    }
    // Past the free attempts each try waits, doubling, but the account is never locked.
    let waiting = app.try_login(&banner.admin_email, &banner.admin_password).await;
    assert_eq!((waiting.status, waiting.code()), (429, "login_throttled"));
    assert_eq!(waiting.header("retry-after"), Some("1"));
    app.clock.advance_ms(1_000);
    assert_eq!(app.try_login(&banner.admin_email, "wrong again").await.status, 401);
    assert_eq!(
        app.try_login(&banner.admin_email, &banner.admin_password).await.header("retry-after"),
        Some("2")
    );
    let unknown = app.try_login("nobody@demo.local", "whatever").await;
    assert_eq!(unknown.status, 401, "an unknown account reads the same as a wrong password");
    app.clock.advance_ms(2_000);
    assert_eq!(
        app.try_login(&banner.admin_email, &banner.admin_password).await.status,
        200,
        "the owner gets in"
    );
    app.clock.advance_ms(15 * 60_000);

    // Per IP: 20 failures across accounts lock the address for everyone.
    for i in 0..20 {
        app.try_login(&format!("user{i}@demo.local"), "nope").await;
    }
    assert_eq!(app.try_login(&banner.admin_email, &banner.admin_password).await.status, 429);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cookie_sessions_need_the_csrf_token_for_changes() {
    let app = spawn_app(crate::helpers::Backend::Sqlite).await;
    let banner = app.banner.clone().expect("banner");
    let login = app.try_login(&banner.admin_email, &banner.admin_password).await;
    let cookie_line = login.header("set-cookie").expect("cookie").to_owned();
    assert!(cookie_line.contains("HttpOnly") && cookie_line.contains("SameSite=Strict"), "{cookie_line}");
    assert!(
        !login.text.contains(&cookie_line.split(';').next().expect("pair")["angage_session=".len()..]),
        "the session token is only in the cookie"
    );
    let admin = app.demo_admin().await;
    let body = json!({"name": "csrf"});
    let no_token = admin
        .send(app.http.post(app.url("/admin/v1/keys")).header("cookie", &admin.cookie).json(&body))
        .await;
    assert_eq!((no_token.status, no_token.code()), (403, "csrf_failed"));
    let wrong = admin
        .send(
            app.http
                .post(app.url("/admin/v1/keys"))
                .header("cookie", &admin.cookie)
                .header("x-csrf-token", "guess")
                .json(&body),
        )
        .await;
    assert_eq!(wrong.status, 403);
    assert_eq!(
        admin.get("/admin/v1/keys?environment=live").await.body["data"].as_array().expect("data").len(),
        0,
        "nothing was created"
    );
    assert_eq!(admin.post("/admin/v1/keys", body.clone()).await.status, 201);

    // Automation uses admin tokens: no cookie, no CSRF.
    let minted = admin.post("/admin/v1/tokens", json!({"name": "ci"})).await;
    assert_eq!(minted.status, 201);
    let token = minted.body["token"].as_str().expect("token").to_owned();
    let by_token = admin.send(app.http.post(app.url("/admin/v1/keys")).bearer_auth(&token).json(&body)).await;
    assert_eq!(by_token.status, 201);
    assert!(!admin.get("/admin/v1/tokens").await.text.contains(&token[8..]));
    let token_id = minted.body["id"].as_str().expect("id").to_owned();
    assert_eq!(
        admin
            .send(admin.request(reqwest::Method::DELETE, &format!("/admin/v1/tokens/{token_id}")))
            .await
            .status,
        204
    );
    let revoked = admin.send(app.http.get(app.url("/admin/v1/keys")).bearer_auth(&token)).await;
    assert_eq!((revoked.status, revoked.code()), (401, "admin_auth_required"));

    // Logging out ends the session.
    assert_eq!(admin.post("/admin/v1/logout", json!({})).await.status, 204);
    assert_eq!(admin.get("/admin/v1/me").await.status, 401);
    assert_eq!(app.http.get(app.url("/admin/v1/keys")).send().await.expect("send").status(), 401);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_change_is_audited() {
    let app = spawn_app(crate::helpers::Backend::Sqlite).await;
    let admin = app.demo_admin().await;
    app.clock.advance_ms(1);
    let (id, _) = issue(&admin, json!({"name": "audited"})).await;
    app.clock.advance_ms(1);
    admin
        .put(&format!("/admin/v1/keys/{id}"), json!({"name": "renamed", "rate_limits": {"per_second": 5}}))
        .await;
    app.clock.advance_ms(1);
    admin.post(&format!("/admin/v1/keys/{id}/rotate"), json!({"grace": "24h"})).await;
    app.clock.advance_ms(1);
    admin.post(&format!("/admin/v1/keys/{id}/revoke"), json!({})).await;
    app.clock.advance_ms(1);
    admin.put("/admin/v1/settings", json!({"security": {"log_all_requests": true}})).await;
    let audit = admin.get("/admin/v1/audit?limit=5").await;
    let actions: Vec<&str> = audit.body["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|e| e["action"].as_str().expect("action"))
        .collect();
    assert_eq!(
        actions,
        ["settings.updated", "api_key.revoked", "api_key.rotated", "api_key.updated", "api_key.created"]
    );
    let update = &audit.body["data"][3];
    assert_eq!(update["actor"], "admin@demo.local");
    assert_eq!(update["changes"]["name"], json!({"from": "audited", "to": "renamed"}));
    assert_eq!(update["changes"]["rate_limits"]["to"]["per_second"], 5);
    app.stop().await;
}
