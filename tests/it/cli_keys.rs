//! `angage tenants|admins|keys` through the real binary, on the configured database.

use std::io::Write;
use std::process::Stdio;

use serde_json::Value;

use crate::helpers::angage_bin;

fn run(dir: &std::path::Path, args: &[&str], stdin: Option<&str>) -> (i32, String, String) {
    let mut child = angage_bin()
        .current_dir(dir)
        .args(args)
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(text.as_bytes()).expect("stdin");
    }
    let out = child.wait_with_output().expect("wait");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

fn json_of(text: &str) -> Value {
    serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("not one JSON object ({e}): {text}"))
}

#[test]
fn tenants_admins_and_keys_from_the_command_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let (code, out, err) = run(d, &["tenants", "create", "acme", "--name", "Acme Inc", "--json"], None);
    assert_eq!(code, 0, "{err}");
    assert_eq!(json_of(&out)["slug"], "acme");
    let (code, _, err) = run(d, &["tenants", "create", "acme", "--name", "again"], None);
    assert_eq!((code, err.trim()), (1, "error: SLUG: tenant `acme` already exists"));

    let (code, out, _) = run(
        d,
        &["admins", "create", "--tenant", "acme", "--email", "ops@acme.example.com", "--json"],
        Some("a long enough password\n"),
    );
    assert_eq!(code, 0);
    assert!(json_of(&out)["password"].is_null(), "a password given on stdin is not echoed");

    let (code, out, err) = run(
        d,
        &[
            "keys",
            "create",
            "--tenant",
            "acme",
            "--name",
            "Sync",
            "--env",
            "test",
            "--grant",
            "orders:read",
            "--grant",
            "inventory:read_write",
            "--per-minute",
            "60",
            "--burst",
            "5",
            "--allow-ip",
            "10.0.0.0/8",
            "--allow-ip",
            "2001:db8::/32",
            "--expires-in-days",
            "30",
            "--json",
        ],
        None,
    );
    assert_eq!(code, 0, "{err}");
    let created = json_of(&out);
    let id = created["id"].as_str().expect("id").to_owned();
    let secret = created["key"].as_str().expect("key").to_owned();
    assert!(secret.starts_with("ak_test_") && secret.len() == 48);
    assert_eq!(created["scope"], "custom");
    assert_eq!(created["grants"]["orders"], "read");
    assert_eq!(created["rate_limits"]["per_minute"], 60);
    assert_eq!(created["ip_allowlist"].as_array().expect("allowlist").len(), 2);

    let (_, out, _) = run(d, &["keys", "list", "--tenant", "acme", "--json"], None);
    assert!(!out.contains(&secret[12..]), "list never shows the secret");
    assert_eq!(json_of(&out).as_array().expect("keys").len(), 1);
    let (_, out, _) = run(d, &["keys", "list", "--tenant", "acme"], None);
    assert!(out.contains("ak_test_") && out.contains("Sync") && out.contains("active"), "{out}");

    let (code, out, _) =
        run(d, &["keys", "rotate", "--tenant", "acme", &id, "--grace", "1h", "--json"], None);
    assert_eq!(code, 0);
    let rotated = json_of(&out);
    assert_ne!(rotated["key"], secret.as_str());
    let (_, out, _) = run(d, &["keys", "show", "--tenant", "acme", &id, "--json"], None);
    assert_eq!(json_of(&out)["status"], "rotating");
    let new_id = rotated["id"].as_str().expect("id");
    let (code, out, _) = run(d, &["keys", "revoke", "--tenant", "acme", new_id, "--json"], None);
    assert_eq!((code, json_of(&out)["status"].as_str()), (0, Some("revoked")));

    for (args, expected) in [
        (
            vec!["keys", "create", "--tenant", "acme", "--name", "x", "--per-minute", "0"],
            "error: --per-minute: must be at least 1",
        ),
        (
            vec!["keys", "create", "--tenant", "acme", "--name", "x", "--allow-ip", "10.0.0.0/40"],
            "error: --allow-ip: `10.0.0.0/40` is not an IP address or CIDR block",
        ),
        (vec!["keys", "create", "--tenant", "nope", "--name", "x"], "error: --tenant: no tenant `nope`"),
        (
            vec!["keys", "show", "--tenant", "acme", "key_doesnotexist"],
            "error: ID: API key key_doesnotexist not found",
        ),
    ] {
        let (code, _, err) = run(d, &args, None);
        assert_eq!(code, 1, "{args:?}");
        assert!(err.trim().starts_with(expected), "{args:?}: {err}");
    }
    let (code, _, err) =
        run(d, &["keys", "create", "--tenant", "acme", "--name", "x", "--grant", "foo:read"], None);
    assert_eq!(code, 2);
    assert!(err.contains("--grant") && err.contains("`foo` is not a module"), "{err}");
}

#[test]
fn an_operator_changes_and_removes_admins_from_the_command_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let (code, _, err) = run(
        d,
        &["init", "--tenant", "acme", "--name", "Acme", "--admin-email", "boss@acme.example", "--json"],
        None,
    );
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = run(
        d,
        &[
            "admins",
            "create",
            "--tenant",
            "acme",
            "--email",
            "eve@acme.example",
            "--role",
            "viewer",
            "--json",
        ],
        None,
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(json_of(&out)["role"], "viewer");
    let (code, _, err) = run(
        d,
        &["admins", "create", "--tenant", "acme", "--email", "x@acme.example", "--role", "root"],
        None,
    );
    assert_eq!(code, 2, "a bad flag is a usage error");
    assert!(err.contains("`root` is not a role: use owner, admin or viewer"), "{err}");

    let (code, out, _) = run(d, &["admins", "list", "--tenant", "acme", "--json"], None);
    assert_eq!(code, 0);
    let roles: Vec<(String, String)> = json_of(&out)
        .as_array()
        .expect("list")
        .iter()
        .map(|a| (a["email"].as_str().unwrap_or("").into(), a["role"].as_str().unwrap_or("").into()))
        .collect();
    assert_eq!(
        roles,
        [("boss@acme.example".into(), "owner".into()), ("eve@acme.example".into(), "viewer".into())]
    );

    let (code, out, err) = run(
        d,
        &["admins", "set", "--tenant", "acme", "--email", "eve@acme.example", "--disable", "--json"],
        None,
    );
    assert_eq!(code, 0, "{err}");
    assert!(json_of(&out)["disabled_at"].is_string());
    let (code, _, err) = run(
        d,
        &["admins", "set", "--tenant", "acme", "--email", "boss@acme.example", "--role", "admin"],
        None,
    );
    assert_eq!(
        (code, err.trim()),
        (
            1,
            "error: --email: the tenant's last owner cannot be demoted, disabled or removed; make another owner first"
        )
    );
    let (code, out, err) = run(
        d,
        &["admins", "reset-password", "--tenant", "acme", "--email", "boss@acme.example", "--json"],
        None,
    );
    assert_eq!(code, 0, "{err}");
    assert!(json_of(&out)["password"].as_str().is_some_and(|p| p.len() == 20), "generated and shown once");
    let (code, _, err) =
        run(d, &["admins", "delete", "--tenant", "acme", "--email", "nobody@acme.example"], None);
    assert_eq!((code, err.trim()), (1, "error: --email: no admin nobody@acme.example in this tenant"));
    let (code, _, err) =
        run(d, &["admins", "delete", "--tenant", "acme", "--email", "eve@acme.example"], None);
    assert_eq!(code, 0, "{err}");
}

#[test]
fn webhook_endpoints_from_the_command_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    assert_eq!(run(d, &["tenants", "create", "acme", "--name", "Acme Inc"], None).0, 0);
    let (code, out, err) = run(
        d,
        &[
            "webhooks",
            "create",
            "--tenant",
            "acme",
            "--url",
            "https://erp.example.com/hooks",
            "--event",
            "order.created",
            "--event",
            "invoice.paid",
            "--description",
            "Warehouse",
            "--json",
        ],
        None,
    );
    assert_eq!(code, 0, "{err}");
    let created = json_of(&out);
    let id = created["id"].as_str().expect("id").to_owned();
    let secret = created["secret"].as_str().expect("secret").to_owned();
    assert!(id.starts_with("we_") && secret.starts_with("whsec_"), "{out}");
    assert_eq!(created["events"], serde_json::json!(["invoice.paid", "order.created"]));

    // Bad input: one line naming the flag, nothing stored.
    let (code, _, err) =
        run(d, &["webhooks", "create", "--tenant", "acme", "--url", "http://erp.example.com/hooks"], None);
    assert_eq!(code, 1);
    assert!(err.trim().starts_with("error: --url: must use https://"), "{err}");
    let (code, _, err) = run(
        d,
        &[
            "webhooks",
            "create",
            "--tenant",
            "acme",
            "--url",
            "https://erp.example.com/",
            "--event",
            "order.shipped",
        ],
        None,
    );
    assert_eq!(code, 1);
    assert!(err.contains("--event: unknown event type \"order.shipped\""), "{err}");

    let (code, out, _) = run(d, &["webhooks", "list", "--tenant", "acme", "--json"], None);
    assert_eq!(code, 0);
    let listed = json_of(&out);
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "{out}");
    assert!(!out.contains(&secret), "a list never shows a secret");
    let (code, out, _) = run(d, &["webhooks", "disable", "--tenant", "acme", &id, "--json"], None);
    assert_eq!((code, json_of(&out)["enabled"].as_bool()), (0, Some(false)));
    let (code, out, _) = run(d, &["webhooks", "enable", "--tenant", "acme", &id, "--json"], None);
    assert_eq!((code, json_of(&out)["enabled"].as_bool()), (0, Some(true)));
    let (code, out, _) =
        run(d, &["webhooks", "rotate-secret", "--tenant", "acme", &id, "--grace", "1h", "--json"], None);
    assert_eq!(code, 0);
    let rotated = json_of(&out);
    assert_ne!(rotated["secret"], secret.as_str());
    assert!(rotated["previous_secret_expires_at"].is_string());
    let (code, out, _) = run(d, &["webhooks", "show", "--tenant", "acme", &id], None);
    assert_eq!(code, 0);
    assert!(out.contains("https://erp.example.com/hooks") && out.contains("old secret:"), "{out}");
    let (code, out, _) = run(d, &["webhooks", "deliveries", "--tenant", "acme", &id, "--json"], None);
    assert_eq!((code, out.trim()), (0, "[]"));
    let (code, _, err) = run(d, &["webhooks", "show", "--tenant", "acme", "we_nothere"], None);
    assert_eq!((code, err.trim()), (1, "error: ID: Webhook endpoint we_nothere not found"));
    let (code, out, _) = run(d, &["webhooks", "delete", "--tenant", "acme", &id], None);
    assert_eq!(code, 0, "{out}");
    let (code, out, _) = run(d, &["webhooks", "list", "--tenant", "acme", "--json"], None);
    assert_eq!((code, out.trim()), (0, "[]"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oauth_clients_from_the_command_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    assert_eq!(run(d, &["tenants", "create", "acme", "--name", "Acme Inc"], None).0, 0);
    let (code, out, err) = run(
        d,
        &[
            "oauth-clients",
            "create",
            "--tenant",
            "acme",
            "--name",
            "Robot",
            "--scope",
            "customers:read",
            "--scope",
            "orders:write",
            "--json",
        ],
        None,
    );
    assert_eq!(code, 0, "{err}");
    let created = json_of(&out);
    let id = created["client_id"].as_str().expect("client_id").to_owned();
    let secret = created["client_secret"].as_str().expect("client_secret").to_owned();
    assert!(id.starts_with("oc_") && secret.starts_with("cs_"), "{out}");
    assert_eq!(created["scopes"], serde_json::json!(["customers:read", "orders:read", "orders:write"]));

    // Bad input: one line naming the flag, nothing stored.
    let (code, _, err) =
        run(d, &["oauth-clients", "create", "--tenant", "acme", "--name", "X", "--scope", "all"], None);
    assert_eq!(code, 1);
    assert!(err.trim().starts_with("error: --scope: `all` is not a scope"), "{err}");
    let (code, out, _) = run(d, &["oauth-clients", "list", "--tenant", "acme", "--json"], None);
    assert_eq!(code, 0);
    let listed = json_of(&out);
    assert_eq!(listed.as_array().map(Vec::len), Some(1));
    assert!(!out.contains(&secret), "a list never shows the secret");

    // The printed secret is the client's: the token endpoint's grant accepts it.
    let settings = angage_core::config::DatabaseSettings {
        url: format!("sqlite://{}", d.join("data/angage.db").display()),
        ..angage_core::config::Settings::default().database
    };
    let db = angage_store::db::Db::connect(&settings).await.expect("db");
    let pepper = angage_store::keys::Pepper::resolve("", "development", &d.join("data")).expect("pepper");
    let tenant = angage_store::tenants::by_slug(&db, "acme").await.expect("tenant");
    let mut on = angage_core::settings::TenantSettings::default();
    on.security.oauth_enabled = true;
    let mut conn = db.pool.acquire().await.expect("conn");
    angage_store::tenants::settings::write(
        &mut conn,
        &angage_core::tenant::TenantId(tenant.id),
        &on,
        0,
        false,
    )
    .await
    .expect("oauth on");
    drop(conn);
    let credentials = angage_store::oauth::tokens::Credentials { client_id: &id, secret: &secret };
    let issued =
        angage_store::oauth::tokens::issue(&db, &pepper, &credentials, Some("customers:read"), None, 0)
            .await
            .expect("a token for the printed secret");
    assert_eq!(issued.scope, "customers:read");

    let (code, out, _) = run(d, &["oauth-clients", "revoke", "--tenant", "acme", &id, "--json"], None);
    assert_eq!((code, json_of(&out)["status"].as_str()), (0, Some("revoked")));
    let refused = angage_store::oauth::tokens::issue(&db, &pepper, &credentials, None, None, 0).await;
    assert!(matches!(refused, Err(angage_store::oauth::tokens::TokenError::InvalidClient(_))));
}
