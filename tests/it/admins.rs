//! Admins who must lose access do: roles (owner, admin, viewer), disabling and removal that end
//! sessions and stop tokens at once, owners' password resets, expiring tokens that act no
//! higher than their admin, logins in the audit log, and e-mails unique per tenant only.

use serde_json::{Value, json};

use crate::helpers::{ADMIN_PASSWORD, AdminSession, Reply, TestApp, backends, send_checked, spawn_app};

/// The demo tenant's id, as its owner sees it.
async fn demo_tenant(owner: &AdminSession<'_>) -> String {
    owner.get("/admin/v1/me").await.body["tenant_id"].as_str().expect("tenant id").to_owned()
}

/// A request with an admin token.
async fn with_token(
    app: &TestApp,
    token: &str,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> Reply {
    let mut req = app.http.request(method, app.url(path)).bearer_auth(token);
    if let Some(body) = body {
        req = req.json(&body);
    }
    send_checked(&app.http, req).await
}

fn actions(audit: &Value) -> Vec<(String, String)> {
    audit["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|e| {
            (e["action"].as_str().unwrap_or("").to_owned(), e["actor"].as_str().unwrap_or("").to_owned())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_reads_everything_and_changes_nothing() {
    for backend in backends() {
        let app = spawn_app(backend).await;
        let owner = app.demo_admin().await;
        let created = owner
            .post(
                "/admin/v1/admins",
                json!({"email": "auditor@demo.local", "role": "viewer", "password": ADMIN_PASSWORD}),
            )
            .await;
        assert_eq!(created.status, 201, "{:?}", created.body);
        assert_eq!(created.body["role"], "viewer");
        let viewer = app.login("auditor@demo.local", ADMIN_PASSWORD).await;
        assert_eq!(viewer.get("/admin/v1/me").await.body["role"], "viewer");
        for path in
            ["/admin/v1/keys", "/admin/v1/settings", "/admin/v1/audit", "/admin/v1/usage", "/admin/v1/admins"]
        {
            assert_eq!(viewer.get(path).await.status, 200, "{path}");
        }
        let writes = [
            viewer.post("/admin/v1/keys", json!({"name": "sneaky"})).await,
            viewer.put("/admin/v1/settings", json!({"rate_limits": {"per_second": 1000}})).await,
            viewer.put("/admin/v1/rules", json!({"script": "#{}"})).await,
            viewer.post("/admin/v1/admins", json!({"email": "friend@demo.local"})).await,
            viewer.post("/admin/v1/tokens", json!({"name": "mine"})).await,
        ];
        for reply in &writes {
            assert_eq!((reply.status, reply.code()), (403, "insufficient_role"), "{:?}", reply.body);
        }
        assert_eq!(viewer.post("/admin/v1/rules/validate", json!({"script": "#{}"})).await.status, 200);
        assert_eq!(
            owner.get("/admin/v1/keys").await.body["data"].as_array().map(Vec::len),
            Some(1),
            "no key made"
        );
        assert_eq!(viewer.post("/admin/v1/logout", json!({})).await.status, 204);
        app.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disabled_admin_loses_sessions_and_tokens_at_once() {
    for backend in backends() {
        let app = spawn_app(backend).await;
        let owner = app.demo_admin().await;
        let tenant = demo_tenant(&owner).await;
        app.add_admin(&tenant, "leaver@demo.local", angage_store::admins::Role::Admin).await;
        let leaver = app.login("leaver@demo.local", ADMIN_PASSWORD).await;
        let minted = leaver.post("/admin/v1/tokens", json!({"name": "laptop"})).await;
        assert_eq!(minted.status, 201, "{:?}", minted.body);
        let token = minted.body["token"].as_str().expect("token").to_owned();
        assert_eq!(with_token(&app, &token, reqwest::Method::GET, "/admin/v1/keys", None).await.status, 200);

        let disabled = owner.put("/admin/v1/admins/leaver@demo.local", json!({"disabled": true})).await;
        assert_eq!(disabled.status, 200, "{:?}", disabled.body);
        assert!(disabled.body["disabled_at"].is_string());
        assert_eq!(leaver.get("/admin/v1/me").await.status, 401, "the session ended at once");
        assert_eq!(with_token(&app, &token, reqwest::Method::GET, "/admin/v1/keys", None).await.status, 401);
        assert_eq!(app.try_login("leaver@demo.local", ADMIN_PASSWORD).await.status, 401);

        owner.put("/admin/v1/admins/leaver@demo.local", json!({"disabled": false})).await;
        let back = app.login("leaver@demo.local", ADMIN_PASSWORD).await;
        assert_eq!(back.get("/admin/v1/me").await.status, 200, "enabled again");
        assert_eq!(owner.delete("/admin/v1/admins/leaver@demo.local").await.status, 204);
        assert_eq!(back.get("/admin/v1/me").await.status, 401, "removed: the new session ended too");
        assert_eq!(with_token(&app, &token, reqwest::Method::GET, "/admin/v1/keys", None).await.status, 401);
        assert_eq!(owner.get("/admin/v1/admins/leaver@demo.local").await.status, 404);

        let owner_email = owner.get("/admin/v1/me").await.body["email"].as_str().expect("email").to_owned();
        let audit = actions(&owner.get("/admin/v1/audit?limit=100").await.body);
        for action in ["admin.updated", "admin.deleted"] {
            assert!(
                audit.contains(&(action.into(), owner_email.clone())),
                "{action} by the owner: {audit:?}"
            );
        }
        app.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_owners_manage_admins_and_a_tenant_keeps_an_owner() {
    for backend in backends() {
        let app = spawn_app(backend).await;
        let owner = app.demo_admin().await;
        let tenant = demo_tenant(&owner).await;
        app.add_admin(&tenant, "ops@demo.local", angage_store::admins::Role::Admin).await;
        let ops = app.login("ops@demo.local", ADMIN_PASSWORD).await;
        for reply in [
            ops.post("/admin/v1/admins", json!({"email": "crony@demo.local", "role": "owner"})).await,
            ops.put("/admin/v1/admins/ops@demo.local", json!({"role": "owner"})).await,
            ops.post("/admin/v1/admins/ops@demo.local/password", json!({})).await,
        ] {
            assert_eq!((reply.status, reply.code()), (403, "insufficient_role"), "{:?}", reply.body);
        }
        assert_eq!(ops.post("/admin/v1/keys", json!({"name": "work"})).await.status, 201, "an admin governs");

        let me = owner.get("/admin/v1/me").await.body;
        let owner_path = format!("/admin/v1/admins/{}", me["id"].as_str().expect("id"));
        let last = owner.put(&owner_path, json!({"role": "admin"})).await;
        assert_eq!((last.status, last.code()), (409, "last_owner"));
        assert_eq!(owner.put(&owner_path, json!({"disabled": true})).await.status, 409);
        assert_eq!(owner.delete(&owner_path).await.status, 409);
        let promoted = owner.put("/admin/v1/admins/ops@demo.local", json!({"role": "owner"})).await;
        assert_eq!(promoted.body["role"], "owner");
        assert_eq!(
            owner.put(&owner_path, json!({"role": "viewer"})).await.status,
            200,
            "another owner remains"
        );
        assert_eq!(owner.post("/admin/v1/keys", json!({"name": "x"})).await.code(), "insufficient_role");
        app.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_expire_record_their_use_and_act_no_higher_than_their_admin() {
    let app = spawn_app(crate::helpers::Backend::Sqlite).await;
    let owner = app.demo_admin().await;
    let tenant = demo_tenant(&owner).await;
    app.add_admin(&tenant, "ci@demo.local", angage_store::admins::Role::Admin).await;
    let ci = app.login("ci@demo.local", ADMIN_PASSWORD).await;
    let above = ci.post("/admin/v1/tokens", json!({"name": "root", "role": "owner"})).await;
    assert_eq!((above.status, above.code()), (403, "insufficient_role"));
    let forever = ci.post("/admin/v1/tokens", json!({"name": "forever", "expires_in_days": 4000})).await;
    assert_eq!(forever.status, 422);

    let minted = ci.post("/admin/v1/tokens", json!({"name": "dashboards", "role": "viewer"})).await;
    assert_eq!(minted.status, 201, "{:?}", minted.body);
    let expires = minted.body["expires_at"].as_str().expect("every token expires").to_owned();
    assert!(expires.starts_with("2027-01-31"), "90 days by default: {expires}");
    let token = minted.body["token"].as_str().expect("token").to_owned();
    assert_eq!(with_token(&app, &token, reqwest::Method::GET, "/admin/v1/keys", None).await.status, 200);
    let write =
        with_token(&app, &token, reqwest::Method::POST, "/admin/v1/keys", Some(json!({"name": "k"}))).await;
    assert_eq!((write.status, write.code()), (403, "insufficient_role"), "a viewer token only reads");
    let listed = owner.get("/admin/v1/tokens").await.body;
    let view = listed.as_array().and_then(|l| l.iter().find(|t| t["name"] == "dashboards")).expect("listed");
    assert!(view["last_used_at"].is_string(), "its use is recorded: {view}");
    assert_eq!(view["role"], "viewer");
    assert!(view.get("token").is_none(), "never its secret");

    // The admin demoted to viewer: an admin-role token of theirs reads only too.
    let working = ci.post("/admin/v1/tokens", json!({"name": "deploy"})).await.body["token"]
        .as_str()
        .expect("token")
        .to_owned();
    owner.put("/admin/v1/admins/ci@demo.local", json!({"role": "viewer"})).await;
    let demoted =
        with_token(&app, &working, reqwest::Method::POST, "/admin/v1/keys", Some(json!({"name": "k"}))).await;
    assert_eq!(demoted.code(), "insufficient_role");

    app.clock.advance_ms(91 * 86_400_000);
    assert_eq!(
        with_token(&app, &token, reqwest::Method::GET, "/admin/v1/keys", None).await.status,
        401,
        "expired"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_owner_resets_a_password_and_the_old_sessions_end() {
    let app = spawn_app(crate::helpers::Backend::Sqlite).await;
    let owner = app.demo_admin().await;
    let tenant = demo_tenant(&owner).await;
    app.add_admin(&tenant, "forgot@demo.local", angage_store::admins::Role::Admin).await;
    let before = app.login("forgot@demo.local", ADMIN_PASSWORD).await;
    let reset = owner.post("/admin/v1/admins/forgot@demo.local/password", json!({})).await;
    assert_eq!(reset.status, 200, "{:?}", reset.body);
    let password = reset.body["generated_password"].as_str().expect("generated, shown once").to_owned();
    assert_eq!(before.get("/admin/v1/me").await.status, 401, "the old session ended");
    assert_eq!(app.try_login("forgot@demo.local", ADMIN_PASSWORD).await.status, 401);
    assert_eq!(app.login("forgot@demo.local", &password).await.get("/admin/v1/me").await.status, 200);
    let audit = owner.get("/admin/v1/audit?limit=100").await;
    assert!(!audit.text.contains(&password), "no password in the audit log");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logins_and_new_admins_are_audited_with_who_acted() {
    for backend in backends() {
        let app = spawn_app(backend).await;
        let owner = app.demo_admin().await;
        let me = owner.get("/admin/v1/me").await.body;
        let owner_email = me["email"].as_str().expect("email").to_owned();
        assert_eq!(app.try_login(&owner_email, "not the password").await.status, 401);
        owner.post("/admin/v1/admins", json!({"email": "new@demo.local"})).await;
        let audit = owner.get("/admin/v1/audit?limit=100").await.body;
        let entries = actions(&audit);
        assert!(entries.contains(&("admin.login".into(), owner_email.clone())), "{entries:?}");
        assert!(entries.contains(&("admin.login_failed".into(), owner_email.clone())), "{entries:?}");
        assert!(
            entries.contains(&("admin.created".into(), owner_email.clone())),
            "not `system`: {entries:?}"
        );
        let failed =
            audit["data"].as_array().and_then(|d| d.iter().find(|e| e["action"] == "admin.login_failed"));
        assert_eq!(failed.map(|e| e["changes"]["ip"].clone()), Some(json!("127.0.0.1")));
        app.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_email_is_unique_per_tenant_and_says_nothing_about_others() {
    let app = spawn_app(crate::helpers::Backend::Sqlite).await;
    let owner = app.demo_admin().await;
    let globex = app.tenant_admin("globex").await;
    let shared = "pat@contractor.example";
    let again = owner.post("/admin/v1/admins", json!({"email": "admin@globex.example.com"})).await;
    assert_eq!(again.status, 201, "another tenant's admin is not revealed: {:?}", again.body);
    assert_eq!(
        owner.post("/admin/v1/admins", json!({"email": "admin@globex.example.com"})).await.status,
        409
    );

    for admin in [&owner, &globex] {
        let r = admin.post("/admin/v1/admins", json!({"email": shared, "password": ADMIN_PASSWORD})).await;
        assert_eq!(r.status, 201, "{:?}", r.body);
    }
    let ambiguous = app.try_login(shared, ADMIN_PASSWORD).await;
    assert_eq!((ambiguous.status, ambiguous.code()), (409, "tenant_required"), "{:?}", ambiguous.body);
    let chosen = send_checked(
        &app.http,
        app.http
            .post(app.url("/admin/v1/login"))
            .json(&json!({"email": shared, "password": ADMIN_PASSWORD, "tenant": "globex"})),
    )
    .await;
    assert_eq!(chosen.status, 200, "{:?}", chosen.body);
    assert_eq!(chosen.body["admin"]["tenant_slug"], "globex");
    // A different password in one tenant: the login finds the account it opens.
    let demo_pat = owner.get(&format!("/admin/v1/admins/{shared}")).await.body;
    let reset = owner
        .post(&format!("/admin/v1/admins/{}/password", demo_pat["id"].as_str().expect("id")), json!({}))
        .await;
    let demo_password = reset.body["generated_password"].as_str().expect("password").to_owned();
    let pat = app.login(shared, &demo_password).await;
    assert_eq!(pat.get("/admin/v1/me").await.body["tenant_slug"], "demo");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upgrade_keeps_every_admin_and_makes_the_first_one_owner() {
    use angage_store::db::MIGRATOR;
    for backend in backends() {
        let db = crate::helpers::TestDb::new(backend).await;
        let settings = crate::helpers::test_settings(&db);
        let store = angage_store::db::Db::connect(&settings.database).await.expect("connect");
        let mut before = sqlx::migrate::Migrator::new(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../migrations"),
        )
        .await
        .expect("migrations");
        let upto =
            before.migrations.iter().position(|m| m.description.contains("admin roles")).expect("0008");
        before.migrations = before.migrations[..upto].to_vec().into();
        before.run(&store.pool).await.expect("the schema before roles");
        let mut conn = store.conn().await.expect("conn");
        for sql in [
            "INSERT INTO tenants (id, slug, name, created_at) VALUES ('ten_a', 'a', 'A', 1)",
            "INSERT INTO admin_users (id, tenant_id, email, password_hash, created_at) VALUES ('adm_1', 'ten_a', 'first@a.example', 'x', 10)",
            "INSERT INTO admin_users (id, tenant_id, email, password_hash, created_at) VALUES ('adm_2', 'ten_a', 'second@a.example', 'x', 20)",
            "INSERT INTO admin_sessions (digest, admin_id, csrf_token, created_at, expires_at) VALUES ('d1', 'adm_2', 'c', 20, 99999999999999)",
            "INSERT INTO admin_tokens (id, admin_id, tenant_id, name, digest, display_prefix, created_at) VALUES ('tok_1', 'adm_2', 'ten_a', 'ci', 'dg', 'aat_x...', 30)",
        ] {
            sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&mut *conn).await.expect(sql);
        }
        drop(conn);
        MIGRATOR.run(&store.pool).await.expect("upgrade");
        let mut conn = store.conn().await.expect("conn");
        let roles: Vec<(String, String)> = sqlx::query_as("SELECT id, role FROM admin_users ORDER BY id")
            .fetch_all(&mut *conn)
            .await
            .expect("roles");
        assert_eq!(
            roles,
            [("adm_1".into(), "owner".into()), ("adm_2".into(), "admin".into())],
            "{backend:?}"
        );
        let (sessions,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM admin_sessions")
            .fetch_one(&mut *conn)
            .await
            .expect("sessions");
        assert_eq!(sessions, 1, "sessions kept");
        let (role, expires): (String, i64) = sqlx::query_as("SELECT role, expires_at FROM admin_tokens")
            .fetch_one(&mut *conn)
            .await
            .expect("token");
        assert_eq!(
            (role.as_str(), expires),
            ("admin", 30 + 31_536_000_000),
            "a token that never expired now does"
        );
        drop(conn);
        store.close().await;
    }
}
