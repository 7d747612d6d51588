//! The console in headless Chromium: log in, generate a key with custom scope and limits, use
//! it, see it in Usage, revoke it, change default limits, save a broken then a valid rule, open
//! the documentation; set up a webhook; turn on "Log all API requests" and search the request
//! log; register a key's signing public key; a screenshot of every screen goes to `target/console-screenshots/` (and to
//! `docs/console/` with `ANGAGE_UPDATE_SCREENSHOTS=1`).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use base64::Engine as _;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

use crate::helpers::{Backend, TestApp, spawn_app};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

async fn browser(profile: &Path) -> Option<(Driver, Client)> {
    if !Path::new(CHROMIUM).exists() || !Path::new(CHROMEDRIVER).exists() {
        crate::helpers::skip(&format!(
            "Chromium or ChromeDriver is not installed ({CHROMIUM}, {CHROMEDRIVER}): skipping the browser tests (CI installs them)"
        ));
        return None;
    }
    let port = free_port();
    let child = Command::new(CHROMEDRIVER)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver");
    let driver = Driver(child);
    let caps = json!({
        "browserName": "chrome",
        "goog:chromeOptions": {
            "binary": CHROMIUM,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                     "--disable-background-networking", "--disable-component-update", "--disable-sync",
                     "--window-size=1280,1000", format!("--user-data-dir={}", profile.display())]
        }
    });
    let caps = caps.as_object().cloned().expect("object");
    let client =
        crate::wait::until(Duration::from_secs(20), "Chromium starts through ChromeDriver", async || {
            let connector = hyper_util::client::legacy::connect::HttpConnector::new();
            ClientBuilder::new(connector)
                .capabilities(caps.clone())
                .connect(&format!("http://127.0.0.1:{port}"))
                .await
                .ok()
        })
        .await;
    Some((driver, client))
}

struct Shots {
    dir: PathBuf,
    docs: Option<PathBuf>,
}

impl Shots {
    fn new() -> Self {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let dir = root.join("target/console-screenshots");
        std::fs::create_dir_all(&dir).expect("screenshot dir");
        let docs = std::env::var("ANGAGE_UPDATE_SCREENSHOTS")
            .ok()
            .filter(|v| v == "1")
            .map(|_| root.join("docs/console"));
        Self { dir, docs }
    }

    async fn take(&self, c: &Client, name: &str) {
        let png = c.screenshot().await.expect("screenshot");
        std::fs::write(self.dir.join(format!("{name}.png")), &png).expect("save screenshot");
        if let Some(docs) = &self.docs {
            std::fs::create_dir_all(docs).expect("docs dir");
            std::fs::write(docs.join(format!("{name}.png")), &png).expect("save docs screenshot");
        }
    }
}

async fn text_of(c: &Client, css: &str) -> String {
    c.wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"))
        .text()
        .await
        .expect("text")
}

/// Waits until the element's text contains `needle`.
async fn wait_text(c: &Client, css: &str, needle: &str) -> String {
    crate::wait::until(Duration::from_secs(10), &format!("{css} shows {needle:?}"), async || {
        let text = c.find(Locator::Css(css)).await.ok()?.text().await.ok()?;
        text.contains(needle).then_some(text)
    })
    .await
}

async fn click(c: &Client, css: &str) {
    c.wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"))
        .click()
        .await
        .expect("click");
}

async fn fill(c: &Client, css: &str, value: &str) {
    let el = c
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"));
    el.clear().await.expect("clear");
    el.send_keys(value).await.expect("type");
}

/// Goes to `path` and logs in there as the demo owner (the console asks first).
async fn log_in_at(c: &Client, app: &TestApp, path: &str) {
    let banner = app.banner.clone().expect("banner");
    c.goto(&app.url(path)).await.expect("goto");
    fill(c, "#email", &banner.admin_email).await;
    fill(c, "#password", &banner.admin_password).await;
    click(c, "#login-submit").await;
}

async fn open(c: &Client, app: &TestApp, route: &str, ready: &str) {
    c.goto(&app.url(&format!("/console#/{route}"))).await.expect("goto");
    c.wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css(ready))
        .await
        .unwrap_or_else(|e| panic!("{route}: {ready}: {e}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_runs_the_api_settings_page_in_a_real_browser() {
    let profile = tempfile::tempdir().expect("profile");
    let Some((_driver, c)) = browser(profile.path()).await else { return };
    let app = spawn_app(Backend::Sqlite).await;
    let shots = Shots::new();
    let banner = app.banner.clone().expect("banner");

    // Log in.
    c.goto(&app.url("/console")).await.expect("goto");
    fill(&c, "#email", &banner.admin_email).await;
    fill(&c, "#password", "wrong password").await;
    click(&c, "#login-submit").await;
    wait_text(&c, "#login-error", "incorrect").await;
    shots.take(&c, "login").await;
    fill(&c, "#password", &banner.admin_password).await;
    click(&c, "#login-submit").await;
    assert_eq!(text_of(&c, "#api-status").await, "Operational");
    shots.take(&c, "dashboard").await;

    // Generate a key with custom scope and limits, and read it from the shown-once panel.
    open(&c, &app, "keys", "#generate").await;
    click(&c, "#generate").await;
    fill(&c, "#k-name", "Warehouse sync").await;
    fill(&c, "#k-description", "Nightly stock sync").await;
    c.find(Locator::Css("#k-scope")).await.expect("scope").select_by_value("custom").await.expect("custom");
    click(&c, "input[name=grant-customers][value=read_write]").await;
    click(&c, "input[name=grant-inventory][value=read]").await;
    fill(&c, "#k-minute", "50").await;
    fill(&c, "#k-ips", "127.0.0.0/8").await;
    shots.take(&c, "generate-key").await;
    click(&c, "#k-submit").await;
    let secret = text_of(&c, "#new-key").await;
    assert!(secret.starts_with("ak_live_") && secret.len() == 48, "{secret}");
    assert!(text_of(&c, "#secret-panel").await.contains("won't be shown again"));
    assert!(text_of(&c, "#quick-curl").await.contains(&secret));
    shots.take(&c, "key-created").await;
    let stored: Vec<String> = serde_json::from_value(
        c.execute(
            "return Object.keys(localStorage).concat(Object.keys(sessionStorage)).concat([document.cookie]);",
            vec![],
        )
        .await
        .expect("storage"),
    )
    .expect("strings");
    assert!(
        stored.iter().all(|s| !s.contains(&secret[12..])),
        "the secret is never stored client-side: {stored:?}"
    );

    // Use it for real.
    let v1 = app.with_key(&secret);
    let used = v1.get("/v1/customers").await;
    assert_eq!(used.status, 200);
    assert_eq!(
        used.header("x-ratelimit-limit"),
        Some("10"),
        "per second is the tenant default; per minute 50 is the key's"
    );
    assert_eq!(
        v1.post("/v1/orders", json!({"customer": "x", "lines": []})).await.status,
        403,
        "no grant on orders"
    );
    app.state.usage.flush().await;

    // See it in Usage.
    open(&c, &app, "usage", "#u-total").await;
    wait_text(&c, "main", "GET /customers").await;
    wait_text(&c, "main", "Warehouse sync").await;
    shots.take(&c, "usage").await;

    // Revoke it (after confirming) and see the next request refused.
    open(&c, &app, "keys", "[data-revoke]").await;
    let id: String = c
        .find(Locator::XPath("//tr[td[1]='Warehouse sync']"))
        .await
        .expect("row")
        .attr("data-key")
        .await
        .expect("attr")
        .expect("id");
    click(&c, &format!("button[data-revoke='{id}']")).await;
    c.accept_alert().await.expect("confirm");
    wait_text(&c, &format!("tr[data-key='{id}']"), "revoked").await;
    shots.take(&c, "keys").await;
    let refused = v1.get("/v1/customers").await;
    assert_eq!((refused.status, refused.code()), (401, "revoked_api_key"));

    // Change the default limits.
    open(&c, &app, "limits", "#l-minute").await;
    fill(&c, "#l-minute", "150").await;
    click(&c, "#limits-save").await;
    wait_text(&c, "#limits-form", "Defaults saved").await;
    shots.take(&c, "rate-limits").await;
    let admin = app.demo_admin().await;
    assert_eq!(admin.get("/admin/v1/settings").await.body["rate_limits"]["per_minute"], 150);
    // Per-key limits: the quick-start key gets its own minute and day limits.
    let quick = admin.get("/admin/v1/keys?environment=test").await.body["data"][0]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    click(&c, &format!("button[data-edit-limits='{quick}']")).await;
    c.send_alert_text("40, , 900").await.expect("type limits");
    c.accept_alert().await.expect("ok");
    wait_text(&c, "main", "40").await;
    let limits = admin.get(&format!("/admin/v1/keys/{quick}")).await.body["rate_limits"].clone();
    assert_eq!(
        (limits["per_minute"].as_i64(), limits["per_hour"].as_i64(), limits["per_day"].as_i64()),
        (Some(40), None, Some(900))
    );

    // A rule with a syntax error shows its line; a valid one is saved.
    open(&c, &app, "rules", "#rule-editor").await;
    fill(&c, "#rule-editor", "fn rule(request, key, limits) {\n    limits.per_minute = ;\n    limits\n}")
        .await;
    click(&c, "#rule-save").await;
    wait_text(&c, "#rule-result", "Line 2").await;
    shots.take(&c, "rules-error").await;
    fill(&c, "#rule-editor", "fn rule(request, key, limits) {\n    if key.environment == \"test\" { limits.per_second = 5; }\n    limits\n}").await;
    click(&c, "#rule-save").await;
    wait_text(&c, "#rule-result", "Saved as version 1").await;
    shots.take(&c, "rules").await;

    // The other screens.
    for (route, ready, name) in [
        ("errors", "#e-total", "errors"),
        ("auth", "#auth-form", "authentication"),
        ("plugins", "table", "plugins"),
        ("docs", "#docs-link", "api-documentation"),
    ] {
        open(&c, &app, route, ready).await;
        shots.take(&c, name).await;
    }
    click(&c, "#docs-link").await;
    c.wait()
        .at_most(Duration::from_secs(15))
        .for_element(Locator::Css(".swagger-ui .info"))
        .await
        .expect("Swagger UI renders offline");
    shots.take(&c, "docs").await;

    // Phone width stays usable.
    c.set_window_size(390, 844).await.expect("resize");
    open(&c, &app, "dashboard", "#usage-total").await;
    shots.take(&c, "dashboard-phone").await;

    // Logging out ends the session.
    click(&c, "#logout").await;
    c.wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css("#login-form"))
        .await
        .expect("back to login");
    c.close().await.expect("close");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_sets_up_a_webhook_in_a_real_browser() {
    let profile = tempfile::tempdir().expect("profile");
    let Some((_driver, c)) = browser(profile.path()).await else { return };
    let receiver = crate::receiver::Receiver::start().await;
    let app = spawn_app(Backend::Sqlite).await;
    let shots = Shots::new();

    // Log in; no endpoint yet.
    log_in_at(&c, &app, "/console").await;
    assert_eq!(text_of(&c, "#webhook-count").await, "0");

    // Add an endpoint for order.created and read its secret from the shown-once panel.
    open(&c, &app, "webhooks", "#wh-new").await;
    click(&c, "#wh-new").await;
    fill(&c, "#wh-url", &receiver.url()).await;
    fill(&c, "#wh-description", "Order sync").await;
    click(&c, "input[name=wh-event][value='order.created']").await;
    click(&c, "#wh-submit").await;
    let secret = text_of(&c, "#wh-secret").await;
    assert!(secret.starts_with("whsec_") && secret.len() > 20, "{secret}");
    assert!(text_of(&c, "#wh-secret-panel").await.contains("won't be shown again"));
    shots.take(&c, "webhook-created").await;
    let stored: Vec<String> = serde_json::from_value(
        c.execute(
            "return [].concat(...Object.entries(localStorage), ...Object.entries(sessionStorage), \
             [document.cookie]);",
            vec![],
        )
        .await
        .expect("storage"),
    )
    .expect("strings");
    assert!(
        stored.iter().all(|s| !s.contains(&secret["whsec_".len()..])),
        "the secret is never stored client-side: {stored:?}"
    );

    // Away and back: the secret is gone, the endpoint is listed.
    open(&c, &app, "dashboard", "#webhook-count").await;
    assert_eq!(text_of(&c, "#webhook-count").await, "1");
    open(&c, &app, "webhooks", "tr[data-endpoint]").await;
    assert!(!c.source().await.expect("source").contains(&secret), "the secret is shown once");
    let row = text_of(&c, "tr[data-endpoint]").await;
    assert!(
        row.contains(&receiver.url()) && row.contains("order.created") && row.contains("enabled"),
        "{row}"
    );
    shots.take(&c, "webhooks").await;

    // Send a test event: it arrives signed, and the delivery log shows it delivered.
    let id: String = c
        .find(Locator::Css("tr[data-endpoint]"))
        .await
        .expect("row")
        .attr("data-endpoint")
        .await
        .expect("attr")
        .expect("id");
    assert!(id.starts_with("we_"), "{id}");
    click(&c, &format!("button[data-test='{id}']")).await;
    let got = receiver.wait_for(1).await;
    let hit = &got[0];
    assert_eq!(hit.json["type"], "webhook.test", "{:?}", hit.json);
    assert!(!hit.header("webhook-id").is_empty(), "{:?}", hit.headers);
    assert_eq!(hit.json["id"].as_str(), Some(hit.header("webhook-id")), "{:?}", hit.json);
    assert!(hit.header("webhook-timestamp").parse::<i64>().is_ok(), "{:?}", hit.headers);
    assert!(hit.header("webhook-signature").starts_with("v1,"), "{:?}", hit.headers);
    wait_text(&c, "#wh-deliveries", "delivered").await;
    wait_text(&c, "#wh-deliveries", "200").await;
    assert_eq!(text_of(&c, "#wh-deliveries tr[data-delivery] td:nth-child(4)").await, "200");
    assert!(text_of(&c, "#wh-deliveries tr[data-delivery]").await.contains("webhook.test"));
    shots.take(&c, "webhook-deliveries").await;

    c.close().await.expect("close");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_searches_the_request_log_in_a_real_browser() {
    let profile = tempfile::tempdir().expect("profile");
    let Some((_driver, c)) = browser(profile.path()).await else { return };
    let app = spawn_app(Backend::Sqlite).await;
    let shots = Shots::new();

    // Log in; until "Log all API requests" is on, the log says it keeps errors and a sample.
    log_in_at(&c, &app, "/console").await;
    wait_text(&c, "#api-status", "Operational").await;
    open(&c, &app, "requests", "#rl-mode").await;
    wait_text(&c, "#rl-mode", "Only errors").await;

    // Turn it on where the setting lives; its help says what it does.
    open(&c, &app, "auth", "#a-log").await;
    wait_text(&c, "#auth-form", "every /v1 request is kept in the Request log").await;
    click(&c, "#a-log").await;
    click(&c, "#auth-save").await;
    wait_text(&c, "#auth-form", "Security settings saved").await;
    let admin = app.demo_admin().await;
    assert_eq!(admin.get("/admin/v1/settings").await.body["security"]["log_all_requests"], true);

    // A few requests with a key, one of them a 404 with a request id of its own.
    let limits = json!({"per_second": 1000, "burst": 1000, "per_minute": 1000});
    let key = app.issue_key("demo", json!({"name": "Order sync", "rate_limits": limits})).await;
    let v1 = app.with_key(&key);
    for _ in 0..3 {
        assert_eq!(v1.get("/v1/customers").await.status, 200);
    }
    let missing = v1
        .send(
            v1.request(reqwest::Method::GET, "/v1/customers/CUST-99999")
                .header("x-request-id", "rl-missing-7f3a9c"),
        )
        .await;
    assert_eq!(missing.status, 404);
    app.state.usage.flush().await;

    // The log shows all four.
    open(&c, &app, "requests", "#rl-table tr[data-request]").await;
    wait_text(&c, "#rl-mode", "Every /v1 request is kept").await;
    let rows = c.find_all(Locator::Css("#rl-table tr[data-request]")).await.expect("rows");
    assert_eq!(rows.len(), 4);
    assert!(text_of(&c, "#rl-table").await.contains("Order sync"));

    // Filtered by status 404: exactly that request, and the export carries the filter.
    fill(&c, "#rl-status", "404").await;
    click(&c, "#rl-apply").await;
    let only = crate::wait::until(Duration::from_secs(10), "the log shows only the 404", async || {
        let rows = c.find_all(Locator::Css("#rl-table tr[data-request]")).await.ok()?;
        if rows.len() != 1 {
            return None;
        }
        rows[0].text().await.ok()
    })
    .await;
    assert!(
        ["404", "/v1/customers/CUST-99999", "rl-missing-7f3a9c", "Order sync"]
            .iter()
            .all(|s| only.contains(s)),
        "{only}"
    );
    shots.take(&c, "request-log").await;
    let href = c
        .find(Locator::Css("#rl-export"))
        .await
        .expect("export link")
        .attr("href")
        .await
        .expect("attr")
        .expect("href");
    assert!(href.contains("/admin/v1/requests/export.csv?") && href.contains("status=404"), "{href}");
    let csv = admin.get(href.trim_start_matches(&app.base)).await;
    assert_eq!((csv.status, csv.text.lines().count()), (200, 2), "{}", csv.text);
    assert!(csv.text.contains("rl-missing-7f3a9c"), "{}", csv.text);

    // A filter the API refuses shows its reason.
    fill(&c, "#rl-status", "teapot").await;
    click(&c, "#rl-apply").await;
    wait_text(&c, "#rl-msg", "status must be a status code").await;

    c.close().await.expect("close");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_registers_a_signing_key_in_a_real_browser() {
    let profile = tempfile::tempdir().expect("profile");
    let Some((_driver, c)) = browser(profile.path()).await else { return };
    let app = spawn_app(Backend::Sqlite).await;
    let shots = Shots::new();
    // A fresh Ed25519 key pair (32 random bytes as its seed); the console gets the public half.
    let seed: [u8; 32] = angage_core::ids::random_base62(32).as_bytes().try_into().expect("32 bytes");
    let signing = ed25519_dalek::SigningKey::from_bytes(&seed);
    let public = base64::engine::general_purpose::STANDARD.encode(signing.verifying_key().to_bytes());

    log_in_at(&c, &app, "/console").await;
    wait_text(&c, "#api-status", "Operational").await;

    // Text that is no public key: the form shows the API's field error and nothing is issued.
    open(&c, &app, "keys", "#generate").await;
    click(&c, "#generate").await;
    fill(&c, "#k-name", "Partner feed").await;
    fill(&c, "#k-signing-key", "not a public key").await;
    click(&c, "#k-require-signature").await;
    wait_text(&c, "#key-form", "Requests must then carry RFC 9421 signatures").await;
    click(&c, "#k-submit").await;
    wait_text(&c, "#k-errors", "signing_public_key: ").await;
    shots.take(&c, "key-signing-error").await;
    assert!(c.find(Locator::Css("#new-key")).await.is_err(), "no key is issued");

    // The public key in base64, signed requests required: issued, marked, and so in the API.
    fill(&c, "#k-signing-key", &public).await;
    click(&c, "#k-submit").await;
    assert!(text_of(&c, "#new-key").await.starts_with("ak_live_"));
    let id: String = c
        .find(Locator::XPath("//tr[td[1]='Partner feed']"))
        .await
        .expect("row")
        .attr("data-key")
        .await
        .expect("attr")
        .expect("id");
    wait_text(&c, &format!("tr[data-key='{id}'] .signed"), "signed").await;
    let admin = app.demo_admin().await;
    let key = admin.get(&format!("/admin/v1/keys/{id}")).await.body;
    assert_eq!(
        (key["signing_public_key"].as_str(), key["require_signature"].as_bool()),
        (Some(public.as_str()), Some(true)),
        "{key}"
    );

    // Editing with the key field left empty keeps the key; "Remove signing key" drops it.
    click(&c, &format!("button[data-edit-key='{id}']")).await;
    wait_text(&c, "#ke-signing-current", &public).await;
    click(&c, "#ke-require-signature").await;
    click(&c, "#ke-submit").await;
    wait_text(&c, "#keys-msg", "saved").await;
    let key = admin.get(&format!("/admin/v1/keys/{id}")).await.body;
    assert_eq!(
        (key["signing_public_key"].as_str(), key["require_signature"].as_bool()),
        (Some(public.as_str()), Some(false)),
        "{key}"
    );
    click(&c, &format!("button[data-edit-key='{id}']")).await;
    click(&c, "#ke-remove-signing-key").await;
    click(&c, "#ke-submit").await;
    wait_text(&c, "#keys-msg", "saved").await;
    let key = admin.get(&format!("/admin/v1/keys/{id}")).await.body;
    assert_eq!(
        (key["signing_public_key"].as_str(), key["require_signature"].as_bool()),
        (None, Some(false)),
        "{key}"
    );
    assert!(c.find(Locator::Css(&format!("tr[data-key='{id}'] .signed"))).await.is_err(), "no marker");

    c.close().await.expect("close");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_approves_an_app_on_the_consent_page_in_a_real_browser() {
    let profile = tempfile::tempdir().expect("profile");
    let Some((_driver, c)) = browser(profile.path()).await else { return };
    let app = spawn_app(Backend::Sqlite).await;
    let admin = app.demo_admin().await;
    admin.put("/admin/v1/settings", json!({"security": {"oauth_enabled": true}})).await;
    let callback = crate::receiver::Receiver::start().await;
    let created = admin
        .post(
            "/admin/v1/oauth-clients",
            json!({"name": "Reporting app", "scopes": ["customers:read", "orders:read"], "redirect_uris": [callback.url()]}),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    let (id, secret) = (
        created.body["client_id"].as_str().expect("id").to_owned(),
        created.body["client_secret"].as_str().expect("secret").to_owned(),
    );
    let verifier = angage_core::ids::random_base62(64);
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(<sha2::Sha256 as sha2::Digest>::digest(verifier.as_bytes()));
    let query: String = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs([
            ("response_type", "code"),
            ("client_id", id.as_str()),
            ("redirect_uri", callback.url().as_str()),
            ("scope", "customers:read"),
            ("state", "st-42"),
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "S256"),
        ])
        .finish();

    // The app sends the admin to the authorization endpoint; the console asks them to log in,
    // then shows the app and what it asks for.
    log_in_at(&c, &app, &format!("/oauth/authorize?{query}")).await;
    wait_text(&c, "#consent-app", "Reporting app").await;
    let scopes = text_of(&c, "#consent-scopes").await;
    assert!(scopes.contains("customers:read") && !scopes.contains("orders"), "{scopes}");
    assert_eq!(text_of(&c, "#consent-redirect").await, callback.url());
    click(&c, "#consent-approve").await;

    // The browser lands on the app's callback with a code and the app's state.
    let landed =
        crate::wait::until(Duration::from_secs(10), "the browser reaches the callback", async || {
            callback.received().into_iter().find(|r| r.uri.starts_with("/hook?"))
        })
        .await;
    let back: std::collections::HashMap<String, String> =
        url::form_urlencoded::parse(landed.uri.trim_start_matches("/hook?").as_bytes())
            .into_owned()
            .collect();
    assert_eq!(back.get("state").map(String::as_str), Some("st-42"));
    let code = back.get("code").expect("a code").clone();

    // The app exchanges it: a wrong verifier is refused, the right one gets tokens that read
    // what was approved.
    let exchange = |v: &str| {
        app.http
            .post(app.url("/oauth/token"))
            .basic_auth(&id, Some(&secret))
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", code.as_str()),
                ("redirect_uri", callback.url().as_str()),
                ("code_verifier", v),
            ])
            .send()
    };
    let wrong = exchange("a-verifier-that-does-not-match-the-challenge-at-all-0123").await.expect("send");
    assert_eq!(wrong.status(), 400);
    let wrong: serde_json::Value = wrong.json().await.expect("json");
    assert_eq!(wrong["error"], "invalid_grant");
    let tokens: serde_json::Value = exchange(&verifier).await.expect("send").json().await.expect("json");
    let access = tokens["access_token"].as_str().unwrap_or_else(|| panic!("{tokens}"));
    assert!(tokens["refresh_token"].as_str().is_some_and(|r| r.starts_with("rt_")), "{tokens}");
    assert_eq!(app.with_key(access).get("/v1/customers").await.status, 200);
    assert_eq!(app.with_key(access).get("/v1/orders").await.status, 403);
    c.close().await.expect("close");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_turns_oauth_on_and_manages_a_client_in_a_real_browser() {
    let profile = tempfile::tempdir().expect("profile");
    let Some((_driver, c)) = browser(profile.path()).await else { return };
    let app = spawn_app(Backend::Sqlite).await;
    log_in_at(&c, &app, "/console#/auth").await;

    // The switch and the token lifetime, saved from the Authentication screen.
    click(&c, "#a-oauth").await;
    c.find(Locator::Css("#a-token-ttl option[value='30']"))
        .await
        .expect("30 minutes")
        .click()
        .await
        .expect("select");
    click(&c, "#auth-save").await;
    wait_text(&c, "#auth-form", "Security settings saved").await;
    let admin = app.demo_admin().await;
    let security = admin.get("/admin/v1/settings").await.body["security"].clone();
    assert_eq!(
        (security["oauth_enabled"].as_bool(), security["oauth_token_ttl_minutes"].as_i64()),
        (Some(true), Some(30))
    );

    // A client with customers:read, its secret shown once.
    open(&c, &app, "oauth-clients", "#oc-form").await;
    wait_text(&c, "#oc-mode", "OAuth 2.0 is on").await;
    fill(&c, "#oc-name", "Warehouse robot").await;
    click(&c, "#oc-scope-customers-read").await;
    click(&c, "#oc-create").await;
    let id = text_of(&c, "#oc-client-id").await;
    let secret = text_of(&c, "#oc-client-secret").await;
    assert!(id.starts_with("oc_") && secret.starts_with("cs_"), "{id} {secret}");
    wait_text(&c, "#oc-table", "customers:read").await;

    // The credentials work at the token endpoint, for 30 minutes, and the token reads customers.
    let token_for = async || -> serde_json::Value {
        app.http
            .post(app.url("/oauth/token"))
            .basic_auth(&id, Some(&secret))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .expect("token")
            .json()
            .await
            .expect("json")
    };
    let issued = token_for().await;
    assert_eq!(issued["expires_in"], 1800, "{issued}");
    let token = issued["access_token"].as_str().expect("token").to_owned();
    assert_eq!(app.with_key(&token).get("/v1/customers").await.status, 200);

    // Revoked from the console: the token stops at once.
    click(&c, &format!("button[data-revoke-client='{id}']")).await;
    c.accept_alert().await.expect("confirm");
    wait_text(&c, &format!("tr[data-client='{id}']"), "revoked").await;
    assert_eq!(app.with_key(&token).get("/v1/customers").await.status, 401);
    c.close().await.expect("close");
    app.stop().await;
}
