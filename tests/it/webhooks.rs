//! Webhooks end to end: a real receiver on 127.0.0.1 verifies every delivery's signature; the
//! server's clock is moved instead of waiting out retries; crashes and a second node run the
//! real binary.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use angage_core::clock::Clock;
use serde_json::{Value, json};

use crate::helpers::{AdminSession, Backend, backends, spawn_app, spawn_with, test_settings};
use crate::receiver::{Received, Receiver};

/// Creates an endpoint for `url` (every event unless `events`); returns (id, secret).
async fn endpoint(admin: &AdminSession<'_>, url: &str, events: &[&str]) -> (String, String) {
    let r =
        admin.post("/admin/v1/webhooks", json!({"url": url, "events": events, "description": "tests"})).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let secret = r.body["secret"].as_str().expect("secret").to_owned();
    assert!(secret.starts_with("whsec_") && secret.len() >= 6 + 32, "{secret}");
    (r.body["id"].as_str().expect("id").to_owned(), secret)
}

/// The delivery verifies with `secret`, the way the documentation tells receivers to check it.
fn verifies(delivery: &Received, secret: &str) -> bool {
    let now: i64 = delivery.header("webhook-timestamp").parse().expect("timestamp");
    crate::verify::verify(secret, &delivery.headers, &delivery.body, now).is_ok()
}

async fn deliveries(admin: &AdminSession<'_>, endpoint: &str) -> Vec<Value> {
    let r = admin.get(&format!("/admin/v1/webhooks/{endpoint}/deliveries?limit=100")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.body["data"].as_array().expect("data").clone()
}

/// Waits until the endpoint's newest delivery has made `attempts` attempts; returns it.
async fn attempted(admin: &AdminSession<'_>, endpoint: &str, attempts: i64) -> Value {
    crate::wait::until(Duration::from_secs(15), &format!("a delivery with {attempts} attempts"), async || {
        let list = deliveries(admin, endpoint).await;
        list.first().filter(|d| d["attempts"] == attempts).cloned()
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_type_fires_with_the_resource_as_v1_returns_it() {
    for backend in backends() {
        let receiver = Receiver::start().await;
        let db = crate::helpers::TestDb::new(backend).await;
        let mut settings = test_settings(&db);
        // The janitor (which announces expiring keys) runs every second.
        settings.keys.last_used_flush_seconds = 1;
        let app = spawn_with(db, settings).await;
        let admin = app.demo_admin().await;
        let (id, secret) = endpoint(&admin, &receiver.url(), &[]).await;
        let v1 = app.v1().await;
        let mut expected: Vec<(&str, Value)> = Vec::new();

        let customer = v1.post("/v1/customers", json!({"name": "Acme", "email": "ap@acme.test"})).await;
        expected.push(("customer.created", customer.body.clone()));
        let cust = customer.body["id"].as_str().expect("id").to_owned();
        let updated = v1.put(&format!("/v1/customers/{cust}"), json!({"name": "Acme Corp"})).await;
        expected.push(("customer.updated", updated.body.clone()));
        let widget = v1
            .post(
                "/v1/products",
                json!({"sku": "W-1", "name": "Widget", "unit_price": 500, "currency": "USD", "initial_stock": 10}),
            )
            .await;
        expected.push(("product.created", widget.body.clone()));
        let renamed = v1.put("/v1/products/W-1", json!({"name": "Blue widget"})).await;
        expected.push(("product.updated", renamed.body.clone()));
        let stock = v1.put("/v1/inventory/W-1", json!({"low_stock_threshold": 5})).await;
        assert_eq!(
            (stock.status, stock.body["low_stock_threshold"].as_i64()),
            (200, Some(5)),
            "{}",
            stock.text
        );
        expected.push(("inventory.updated", stock.body.clone()));
        // Six of ten reserved: four available, below the threshold of five.
        let order = v1
            .post("/v1/orders", json!({"customer": cust, "lines": [{"product": "W-1", "quantity": 6}]}))
            .await;
        assert_eq!(order.status, 201, "{}", order.text);
        expected.push(("order.created", order.body.clone()));
        let low = v1.get("/v1/inventory/W-1").await;
        assert_eq!(low.body["available"], 4);
        expected.push(("inventory.low", low.body.clone()));
        let noted = v1.put("/v1/orders/ORD-10001", json!({"notes": "rush"})).await;
        expected.push(("order.updated", noted.body.clone()));
        let fulfilled = v1.put("/v1/orders/ORD-10001", json!({"status": "fulfilled"})).await;
        expected.push(("order.fulfilled", fulfilled.body.clone()));
        let second = v1
            .post("/v1/orders", json!({"customer": cust, "lines": [{"product": "W-1", "quantity": 1}]}))
            .await;
        assert_eq!(second.status, 201, "{}", second.text);
        let cancelled = v1.put("/v1/orders/ORD-10002", json!({"status": "cancelled"})).await;
        expected.push(("order.cancelled", cancelled.body.clone()));
        let invoice = v1.post("/v1/invoices", json!({"order": "ORD-10001"})).await;
        assert_eq!(invoice.status, 201, "{}", invoice.text);
        expected.push(("invoice.created", invoice.body.clone()));
        let part = v1.post("/v1/payments", json!({"invoice": "INV-10001", "amount": 1000})).await;
        assert_eq!(part.status, 201, "{}", part.text);
        expected.push(("payment.created", part.body.clone()));
        expected.push(("invoice.partially_paid", v1.get("/v1/invoices/INV-10001").await.body));
        let rest = v1.post("/v1/payments", json!({"invoice": "INV-10001", "amount": 2000})).await;
        assert_eq!(rest.status, 201, "{}", rest.text);
        expected.push(("invoice.paid", v1.get("/v1/invoices/INV-10001").await.body));
        let gone = v1.post("/v1/customers", json!({"name": "Gone", "email": "gone@acme.test"})).await;
        let gone_id = gone.body["id"].as_str().expect("id").to_owned();
        assert_eq!(v1.delete(&format!("/v1/customers/{gone_id}")).await.status, 204);
        expected.push(("customer.deleted", gone.body.clone()));
        let spare = v1
            .post(
                "/v1/products",
                json!({"sku": "SPARE", "name": "Spare", "unit_price": 1, "currency": "USD"}),
            )
            .await;
        assert_eq!(v1.delete("/v1/products/SPARE").await.status, 204);
        expected.push(("product.deleted", spare.body.clone()));

        let key = admin.post("/admin/v1/keys", json!({"name": "hooks", "environment": "test"})).await;
        assert_eq!(key.status, 201, "{}", key.text);
        let key_id = key.body["id"].as_str().expect("id").to_owned();
        let rotated = admin.post(&format!("/admin/v1/keys/{key_id}/rotate"), json!({"grace": "now"})).await;
        assert_eq!(rotated.status, 201, "{}", rotated.text);
        let new_key = rotated.body["id"].as_str().expect("id").to_owned();
        let revoked = admin.post(&format!("/admin/v1/keys/{new_key}/revoke"), json!({})).await;
        assert_eq!(revoked.status, 200);
        let expiring = admin
            .post("/admin/v1/keys", json!({"name": "short", "environment": "test", "expires_in_days": 3}))
            .await;
        assert_eq!(expiring.status, 201, "{}", expiring.text);

        let mut all = HashMap::<String, Vec<Received>>::new();
        crate::wait::until(Duration::from_secs(20), "every event type arrives", async || {
            all.clear();
            for r in receiver.received() {
                all.entry(r.json["type"].as_str().unwrap_or("").to_owned()).or_default().push(r);
            }
            angage_store::webhooks::EVENT_TYPES.iter().all(|(t, _)| all.contains_key(*t)).then_some(())
        })
        .await;
        for received in receiver.received() {
            assert!(verifies(&received, &secret), "{:?}", received.json["type"]);
            assert_eq!(received.header("webhook-id"), received.json["id"].as_str().expect("id"));
            assert!(received.json["id"].as_str().expect("id").starts_with("evt_"));
            assert_eq!(received.json["tenant"], "demo");
            assert_eq!(received.header("content-type"), "application/json");
        }
        // The object is the resource exactly as /v1 returned it at that moment.
        for (kind, object) in &expected {
            let objects: Vec<&Value> = all[*kind].iter().map(|r| &r.json["data"]["object"]).collect();
            assert!(objects.contains(&object), "{kind}: {object} not among {objects:?}");
        }
        let key_event = |kind: &str, id: &Value| {
            all[kind].iter().map(|r| r.json["data"]["object"].clone()).find(|o| o["id"] == *id)
        };
        assert!(key_event("api_key.created", &key.body["id"]).is_some());
        assert!(key_event("api_key.rotated", &rotated.body["id"]).is_some(), "the object is the new key");
        let revoked = key_event("api_key.revoked", &rotated.body["id"]).expect("revoked");
        assert_eq!(revoked["status"], "revoked");
        assert!(key_event("api_key.expiring", &expiring.body["id"]).is_some());
        for r in receiver.received() {
            let text = String::from_utf8_lossy(&r.body).into_owned();
            assert!(!text.contains(key.body["key"].as_str().expect("secret")), "never a key's secret");
        }
        assert_eq!(all["api_key.expiring"].len(), 1, "announced once");
        // The log shows each delivery with its answer.
        let log = deliveries(&admin, &id).await;
        assert!(log.iter().all(|d| d["state"] == "delivered" && d["last_status"] == 200), "{log:?}");
        app.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_failing_twice_gets_the_delivery_on_the_third_attempt() {
    let receiver = Receiver::start().await;
    receiver.answer_next(&[500, 503]);
    let app = spawn_app(Backend::Sqlite).await;
    let admin = app.demo_admin().await;
    let (id, secret) = endpoint(&admin, &receiver.url(), &["customer.created"]).await;
    let v1 = app.v1().await;
    assert_eq!(v1.post("/v1/customers", json!({"name": "A", "email": "a@x.test"})).await.status, 201);
    assert_eq!(
        v1.post(
            "/v1/products",
            json!({"sku": "NOT-SUBSCRIBED", "name": "n", "unit_price": 1, "currency": "USD"})
        )
        .await
        .status,
        201
    );
    let first = attempted(&admin, &id, 1).await;
    assert_eq!((first["state"].as_str(), first["last_status"].as_i64()), (Some("pending"), Some(500)));
    // About 5 s later (jitter: 4.5 to 5.5 s); nothing is retried before that.
    let next =
        angage_core::clock::parse_rfc3339(first["next_attempt_at"].as_str().expect("next")).expect("time");
    assert!((4_500..=5_500).contains(&(next - app.clock.now_ms())), "{first}");
    app.clock.advance_ms(4_000);
    // A test send to another endpoint makes the worker claim at this time; ours is not due yet.
    let witness = Receiver::start().await;
    let (other, _) = endpoint(&admin, &witness.url(), &["inventory.low"]).await;
    assert_eq!(admin.post(&format!("/admin/v1/webhooks/{other}/test"), json!({})).await.status, 202);
    witness.wait_for(1).await;
    assert_eq!(receiver.received().len(), 1, "not due yet");
    app.clock.advance_ms(2_000);
    let second = attempted(&admin, &id, 2).await;
    assert_eq!(second["last_status"], 503);
    let next =
        angage_core::clock::parse_rfc3339(second["next_attempt_at"].as_str().expect("next")).expect("time");
    assert!((27_000..=33_000).contains(&(next - app.clock.now_ms())), "about 30 s: {second}");
    app.clock.advance_ms(34_000);
    let third = attempted(&admin, &id, 3).await;
    assert_eq!((third["state"].as_str(), third["last_status"].as_i64()), (Some("delivered"), Some(200)));
    assert_eq!(third["next_attempt_at"], Value::Null);
    let got = receiver.received();
    assert_eq!(got.len(), 3);
    let ids: HashSet<&str> = got.iter().map(|r| r.header("webhook-id")).collect();
    assert_eq!(ids.len(), 1, "one event, one webhook-id on every attempt");
    assert!(got.iter().all(|r| r.json["type"] == "customer.created" && verifies(r, &secret)));
    let stamps: Vec<i64> = got.iter().map(|r| r.header("webhook-timestamp").parse().expect("ts")).collect();
    assert!(stamps[0] < stamps[1] && stamps[1] < stamps[2], "each attempt is signed when sent: {stamps:?}");
    let detail =
        admin.get(&format!("/admin/v1/webhooks/{id}/deliveries/{}", third["id"].as_str().expect("id"))).await;
    let statuses: Vec<i64> = detail.body["attempts_log"]
        .as_array()
        .expect("log")
        .iter()
        .filter_map(|a| a["status"].as_i64())
        .collect();
    assert_eq!(statuses, [500, 503, 200]);
    assert!(
        detail.body["attempts_log"][0]["response_excerpt"]
            .as_str()
            .expect("excerpt")
            .contains("answered 500")
    );
    let endpoint = admin.get(&format!("/admin/v1/webhooks/{id}")).await;
    assert_eq!(endpoint.body["failing_since"], Value::Null, "a success ends the failing run");
    // The recorder is the test process's (every test server shares it): names, not counts.
    let metrics = app.get("/metrics").await.text().await.expect("metrics");
    for name in [
        "angage_webhook_deliveries_total{outcome=\"retrying\"}",
        "angage_webhook_deliveries_total{outcome=\"delivered\"}",
        "angage_webhook_attempt_seconds_count",
        "angage_webhook_delivery_lag_seconds_count",
        "angage_webhook_queue_depth",
        "angage_webhook_oldest_pending_seconds",
    ] {
        assert!(metrics.lines().any(|l| l.starts_with(name)), "{name} in\n{metrics}");
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gone_disables_at_once_and_three_days_of_failures_disable_too() {
    let receiver = Receiver::start().await;
    receiver.answer_next(&[410]);
    let app = spawn_app(Backend::Sqlite).await;
    let admin = app.demo_admin().await;
    let (gone, _) = endpoint(&admin, &receiver.url(), &[]).await;
    assert_eq!(admin.post(&format!("/admin/v1/webhooks/{gone}/test"), json!({})).await.status, 202);
    let failed = attempted(&admin, &gone, 1).await;
    assert_eq!((failed["state"].as_str(), failed["last_status"].as_i64()), (Some("failed"), Some(410)));
    let shown = admin.get(&format!("/admin/v1/webhooks/{gone}")).await.body;
    assert_eq!(shown["enabled"], false);
    assert!(shown["disabled_reason"].as_str().expect("reason").contains("410"), "{shown}");
    // A disabled endpoint gets no new deliveries; enabling it clears the reason.
    let v1 = app.v1().await;
    assert_eq!(v1.post("/v1/customers", json!({"name": "A", "email": "a@x.test"})).await.status, 201);
    assert_eq!(deliveries(&admin, &gone).await.len(), 1);
    // A test send is what an admin asked for: it goes out even to a disabled endpoint.
    assert_eq!(admin.post(&format!("/admin/v1/webhooks/{gone}/test"), json!({})).await.status, 202);
    assert_eq!(receiver.wait_for(2).await[1].json["type"], "webhook.test");
    let still = admin.get(&format!("/admin/v1/webhooks/{gone}")).await.body;
    assert_eq!(still["enabled"], false, "a test send does not enable it");
    let enabled = admin.put(&format!("/admin/v1/webhooks/{gone}"), json!({"enabled": true})).await;
    assert_eq!(
        (enabled.body["enabled"].as_bool(), &enabled.body["disabled_reason"]),
        (Some(true), &Value::Null)
    );
    assert_eq!(admin.delete(&format!("/admin/v1/webhooks/{gone}")).await.status, 204);

    receiver.answer_next(&[500; 3]);
    let (flaky, _) = endpoint(&admin, &receiver.url(), &[]).await;
    assert_eq!(admin.post(&format!("/admin/v1/webhooks/{flaky}/test"), json!({})).await.status, 202);
    attempted(&admin, &flaky, 1).await;
    let failing = admin.get(&format!("/admin/v1/webhooks/{flaky}")).await.body;
    assert!(failing["failing_since"].is_string() && failing["enabled"] == true, "{failing}");
    app.clock.advance_ms(3 * 24 * 3_600_000);
    let admin = app.demo_admin().await;
    assert_eq!(admin.post(&format!("/admin/v1/webhooks/{flaky}/test"), json!({})).await.status, 202);
    let off = crate::wait::until(Duration::from_secs(15), "three days of failures disable", async || {
        let e = admin.get(&format!("/admin/v1/webhooks/{flaky}")).await.body;
        (e["enabled"] == false).then_some(e)
    })
    .await;
    assert!(off["disabled_reason"].as_str().expect("reason").contains("three days"), "{off}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_and_plain_http_targets_are_refused_unless_switched_on() {
    let db = crate::helpers::TestDb::new(Backend::Sqlite).await;
    let mut settings = test_settings(&db);
    settings.webhooks.allow_private_targets = false;
    settings.webhooks.allow_insecure_urls = false;
    let app = spawn_with(db, settings).await;
    let admin = app.demo_admin().await;
    for (url, says) in [
        ("https://127.0.0.1:9/hook", "allow_private_targets"),
        ("https://10.0.0.8/hook", "allow_private_targets"),
        ("https://169.254.169.254/latest/meta-data", "allow_private_targets"),
        ("https://[::1]/hook", "allow_private_targets"),
        ("https://localhost/hook", "allow_private_targets"),
        ("http://hooks.example.com/erp", "https"),
        ("ftp://hooks.example.com/erp", "https"),
        ("hooks.example.com", "absolute URL"),
    ] {
        let r = admin.post("/admin/v1/webhooks", json!({"url": url})).await;
        assert_eq!((r.status, r.code()), (422, "validation_failed"), "{url}: {}", r.text);
        assert_eq!(r.body["errors"][0]["field"], "url", "{url}");
        assert!(
            r.body["errors"][0]["message"].as_str().expect("message").contains(says),
            "{url}: {}",
            r.text
        );
    }
    let bad_event = admin
        .post("/admin/v1/webhooks", json!({"url": "https://hooks.example.com/", "events": ["order.shipped"]}))
        .await;
    assert_eq!(bad_event.status, 422);
    assert!(bad_event.text.contains("order.shipped"), "{}", bad_event.text);
    let fine = admin.post("/admin/v1/webhooks", json!({"url": "https://hooks.example.com/erp"})).await;
    assert_eq!(fine.status, 201, "{}", fine.text);
    let id = fine.body["id"].as_str().expect("id");
    let moved = admin.put(&format!("/admin/v1/webhooks/{id}"), json!({"url": "https://192.168.1.10/"})).await;
    assert_eq!(moved.status, 422, "a change is checked too");
    let listed = admin.get("/admin/v1/webhooks").await;
    assert!(!listed.text.contains(fine.body["secret"].as_str().expect("secret")), "never a secret in a list");
    assert!(listed.body["data"][0]["secret_hint"].as_str().expect("hint").starts_with("whsec_…"));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_secret_signs_beside_the_new_one_during_the_grace() {
    let receiver = Receiver::start().await;
    let app = spawn_app(Backend::Sqlite).await;
    let admin = app.demo_admin().await;
    let (id, old) = endpoint(&admin, &receiver.url(), &[]).await;
    let rotated = admin.post(&format!("/admin/v1/webhooks/{id}/rotate-secret"), json!({"grace": "1h"})).await;
    assert_eq!(rotated.status, 201, "{}", rotated.text);
    let new = rotated.body["secret"].as_str().expect("secret").to_owned();
    assert_ne!(new, old);
    assert!(rotated.body["previous_secret_expires_at"].is_string());
    assert_eq!(admin.post(&format!("/admin/v1/webhooks/{id}/test"), json!({})).await.status, 202);
    let during = receiver.wait_for(1).await.remove(0);
    assert_eq!(during.header("webhook-signature").split(' ').count(), 2);
    assert!(verifies(&during, &old) && verifies(&during, &new), "both secrets verify during the grace");
    app.clock.advance_ms(3_600_001);
    assert_eq!(admin.post(&format!("/admin/v1/webhooks/{id}/test"), json!({})).await.status, 202);
    let after = receiver.wait_for(2).await.remove(1);
    assert_eq!(after.header("webhook-signature").split(' ').count(), 1);
    assert!(verifies(&after, &new) && !verifies(&after, &old), "only the new one after it");
    // A redelivery is the same event (same webhook-id), signed anew.
    let log = deliveries(&admin, &id).await;
    let first = log.last().expect("first delivery")["id"].as_str().expect("id").to_owned();
    let again = admin.post(&format!("/admin/v1/webhooks/{id}/deliveries/{first}/redeliver"), json!({})).await;
    assert_eq!(again.status, 202, "{}", again.text);
    let redelivered = receiver.wait_for(3).await.remove(2);
    assert_eq!(redelivered.header("webhook-id"), during.header("webhook-id"));
    assert!(verifies(&redelivered, &new));
    app.stop().await;
}

/// A server's configuration for the binary tests: a local receiver allowed, short timeouts.
fn binary_config(dir: &std::path::Path, database_url: &str) -> std::path::PathBuf {
    let config = dir.join("hooks.toml");
    std::fs::write(
        &config,
        format!(
            "[database]\nurl = \"{database_url}\"\n[keys]\npepper = \"webhook-nodes-share-this-pepper-0123456\"\n\
             [webhooks]\nallow_insecure_urls = true\nallow_private_targets = true\ntimeout_ms = 1500\n"
        ),
    )
    .expect("config");
    config
}

async fn binary_admin(
    http: &reqwest::Client,
    node: &crate::helpers::BinaryServer,
    session: &(String, String),
    method: reqwest::Method,
    path: &str,
    body: Value,
) -> (u16, Value) {
    let r = http
        .request(method, format!("http://{}{path}", node.addr))
        .header("cookie", &session.0)
        .header("x-csrf-token", &session.1)
        .json(&body)
        .send()
        .await
        .expect("admin request");
    (r.status().as_u16(), r.json().await.unwrap_or_default())
}

/// An endpoint for `receiver`, subscribed to `customer.created`, made through a binary server's
/// admin API; the created endpoint with its secret.
async fn binary_endpoint(
    http: &reqwest::Client,
    node: &crate::helpers::BinaryServer,
    who: &(String, String),
    receiver: &Receiver,
) -> Value {
    let s = crate::helpers::binary_session(http, node, who).await;
    let body = json!({"url": receiver.url(), "events": ["customer.created"]});
    let (status, created) =
        binary_admin(http, node, &s, reqwest::Method::POST, "/admin/v1/webhooks", body).await;
    assert_eq!(status, 201, "{created}");
    created
}

/// A full-scope test key for the demo tenant, issued by the CLI.
fn cli_key(dir: &std::path::Path, config: &std::path::Path) -> String {
    let out = crate::helpers::angage_bin()
        .current_dir(dir)
        .args(["keys", "create", "--tenant", "demo", "--name", "hooks", "--env", "test", "--json"])
        .args(["--per-second", "100000", "--per-minute", "1000000", "--burst", "100000"])
        .args(["--config", config.to_str().expect("path")])
        .output()
        .expect("angage");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let issued: Value = serde_json::from_slice(&out.stdout).expect("json");
    issued["key"].as_str().expect("key").to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_killed_before_the_delivery_delivers_after_its_restart() {
    let receiver = Receiver::start().await;
    // The first attempt never gets an answer: the server is killed while it waits.
    receiver.answer_next(&[0]);
    let dir = tempfile::tempdir().expect("dir");
    let url = format!("sqlite://{}", dir.path().join("angage.db").display());
    let config = binary_config(dir.path(), &url);
    let args = ["--config", config.to_str().expect("path")];
    let server = crate::helpers::start_binary_with(dir.path(), &args);
    let who = crate::helpers::admin_credentials(&server);
    let http = reqwest::Client::new();
    let created = binary_endpoint(&http, &server, &who, &receiver).await;
    let (endpoint, secret) =
        (created["id"].as_str().expect("id").to_owned(), created["secret"].as_str().expect("s").to_owned());
    let key = cli_key(dir.path(), &config);
    let r = http
        .post(format!("http://{}/v1/customers", server.addr))
        .bearer_auth(&key)
        .json(&json!({"name": "Durable", "email": "d@x.test"}))
        .send()
        .await
        .expect("create");
    assert_eq!(r.status(), 201);
    receiver.wait_for(1).await;
    tokio::task::spawn_blocking(move || server.kill()).await.expect("kill");

    let server = crate::helpers::start_binary_with(dir.path(), &args);
    let got = receiver.wait_for(2).await;
    assert_eq!(got[0].header("webhook-id"), got[1].header("webhook-id"), "the same event, again");
    assert_eq!(got[1].json["data"]["object"]["name"], "Durable");
    assert!(verifies(&got[1], &secret));
    let s = crate::helpers::binary_session(&http, &server, &who).await;
    let log = crate::wait::until(Duration::from_secs(10), "the delivery is recorded", async || {
        let (_, list) = binary_admin(
            &http,
            &server,
            &s,
            reqwest::Method::GET,
            &format!("/admin/v1/webhooks/{endpoint}/deliveries"),
            Value::Null,
        )
        .await;
        (list["data"][0]["state"] == "delivered").then_some(list)
    })
    .await;
    assert_eq!(log["data"].as_array().expect("data").len(), 1);
    tokio::task::spawn_blocking(move || server.sigterm_and_wait()).await.expect("stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_on_one_postgres_deliver_each_event_exactly_once() {
    if crate::helpers::postgres_admin_url().is_none() {
        crate::helpers::skip("ANGAGE_TEST_POSTGRES_URL is not set: skipping the two-node webhook test");
        return;
    }
    let receiver = Receiver::start().await;
    let db = crate::helpers::TestDb::new(Backend::Postgres).await;
    let dirs = [tempfile::tempdir().expect("dir"), tempfile::tempdir().expect("dir")];
    let config = binary_config(dirs[0].path(), &db.url);
    let args = ["--config", config.to_str().expect("path")];
    let a = crate::helpers::start_binary_with(dirs[0].path(), &args);
    let who = crate::helpers::admin_credentials(&a);
    let b = crate::helpers::start_binary_with(dirs[1].path(), &args);
    let http = reqwest::Client::new();
    let created = binary_endpoint(&http, &a, &who, &receiver).await;
    let key = cli_key(dirs[0].path(), &config);
    const EVENTS: usize = 60;
    let writes = (0..EVENTS).map(|i| {
        let (http, key) = (http.clone(), key.clone());
        let node = if i % 2 == 0 { a.addr.clone() } else { b.addr.clone() };
        async move {
            let r = http
                .post(format!("http://{node}/v1/customers"))
                .bearer_auth(&key)
                .json(&json!({"name": format!("C{i}"), "email": format!("c{i}@x.test")}))
                .send()
                .await
                .expect("create");
            assert_eq!(r.status(), 201);
        }
    });
    futures_util::future::join_all(writes).await;
    receiver.wait_for(EVENTS).await;
    // Both nodes have had time to send anything twice: each waits on the other's commits.
    let endpoint_id = created["id"].as_str().expect("id").to_owned();
    crate::wait::until(Duration::from_secs(10), "every delivery is recorded once", async || {
        let (_, list) = binary_admin(
            &http,
            &b,
            &crate::helpers::binary_session(&http, &b, &who).await,
            reqwest::Method::GET,
            &format!("/admin/v1/webhooks/{endpoint_id}/deliveries?limit=100"),
            Value::Null,
        )
        .await;
        let data = list["data"].as_array().cloned().unwrap_or_default();
        (data.len() == EVENTS && data.iter().all(|d| d["state"] == "delivered" && d["attempts"] == 1))
            .then_some(())
    })
    .await;
    let got = receiver.received();
    let ids: HashSet<&str> = got.iter().map(|r| r.header("webhook-id")).collect();
    assert_eq!((got.len(), ids.len()), (EVENTS, EVENTS), "each event exactly once");
    tokio::task::spawn_blocking(move || (a.sigterm_and_wait().0, b.sigterm_and_wait().0))
        .await
        .expect("stop");
}
