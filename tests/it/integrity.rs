//! Integrity under concurrent writers: every race ends consistent on both databases, the loser
//! hears 409 or 412, never a silent 200; text the store cannot hold is refused by field.

use angage_core::clock::Clock;
use serde_json::{Value, json};

use crate::helpers::{Backend, TestApp, V1, backends, spawn_app};
use crate::race::{count, race};

const TRIALS: usize = 20;
const CLIENTS: usize = 20;

fn stock(v: &Value) -> (i64, i64) {
    (v["on_hand"].as_i64().expect("on_hand"), v["reserved"].as_i64().expect("reserved"))
}

/// A product with `stock` on hand; its SKU.
async fn product(v1: &V1<'_>, trial: usize, stock: i64) -> String {
    let sku = format!("RACE-{trial}");
    let r = v1
        .post(
            "/v1/products",
            json!({"sku": sku, "name": "Race", "unit_price": 100, "currency": "USD", "initial_stock": stock}),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    sku
}

/// A confirmed order of `quantity` units of `sku`; its id.
async fn order(v1: &V1<'_>, sku: &str, quantity: i64) -> String {
    let r = v1
        .post(
            "/v1/orders",
            json!({"customer": "CUST-10001", "lines": [{"product": sku, "quantity": quantity}]}),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    r.body["id"].as_str().expect("id").to_owned()
}

async fn customer(v1: &V1<'_>) {
    let r = v1.post("/v1/customers", json!({"name": "Acme", "email": "ap@acme.example.com"})).await;
    assert_eq!(r.status, 201);
}

fn puts(v1: &V1<'_>, path: &str, body: Value, if_match: Option<&str>) -> Vec<reqwest::RequestBuilder> {
    (0..CLIENTS)
        .map(|_| {
            let r = v1.request(reqwest::Method::PUT, path).json(&body);
            match if_match {
                Some(tag) => r.header("if-match", tag),
                None => r,
            }
        })
        .collect()
}

async fn each_backend(test: impl AsyncFn(Backend, &TestApp, &V1<'_>)) {
    for backend in backends() {
        let app = spawn_app(backend).await;
        let v1 = app.v1().await;
        customer(&v1).await;
        test(backend, &app, &v1).await;
        app.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_ships_once_however_many_fulfil_it() {
    each_backend(async |backend, _, v1| {
        for trial in 0..TRIALS {
            let sku = product(v1, trial, 100).await;
            let id = order(v1, &sku, 5).await;
            let answers =
                race(puts(v1, &format!("/v1/orders/{id}"), json!({"status": "fulfilled"}), None)).await;
            assert_eq!(count(&answers, 200), 1, "{backend:?} trial {trial}: {answers:?}");
            assert_eq!(count(&answers, 409), CLIENTS - 1, "{backend:?} trial {trial}: {answers:?}");
            assert!(
                answers.iter().all(|(s, b)| *s == 200 || b["code"] == "invalid_transition"),
                "{answers:?}"
            );
            assert_eq!(
                stock(&v1.get(&format!("/v1/inventory/{sku}")).await.body),
                (95, 0),
                "{backend:?} trial {trial}"
            );
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_is_cancelled_once_and_reserved_never_goes_negative() {
    each_backend(async |backend, _, v1| {
        for trial in 0..TRIALS {
            let sku = product(v1, trial, 100).await;
            let id = order(v1, &sku, 5).await;
            let answers =
                race(puts(v1, &format!("/v1/orders/{id}"), json!({"status": "cancelled"}), None)).await;
            assert_eq!(count(&answers, 200), 1, "{backend:?} trial {trial}: {answers:?}");
            assert_eq!(
                stock(&v1.get(&format!("/v1/inventory/{sku}")).await.body),
                (100, 0),
                "{backend:?} trial {trial}"
            );
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_adjustments_all_count() {
    each_backend(async |backend, _, v1| {
        for trial in 0..TRIALS {
            let sku = product(v1, trial, 100).await;
            let answers =
                race(puts(v1, &format!("/v1/inventory/{sku}"), json!({"adjustment": 1}), None)).await;
            assert_eq!(count(&answers, 200), CLIENTS, "{backend:?} trial {trial}: {answers:?}");
            assert_eq!(
                stock(&v1.get(&format!("/v1/inventory/{sku}")).await.body),
                (120, 0),
                "{backend:?} trial {trial}"
            );
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stock_count_racing_new_orders_never_leaves_on_hand_below_reserved() {
    each_backend(async |backend, _, v1| {
        for trial in 0..TRIALS {
            let sku = product(v1, trial, 100).await;
            let mut requests: Vec<_> = (0..CLIENTS - 1)
                .map(|_| {
                    v1.request(reqwest::Method::POST, "/v1/orders")
                        .json(&json!({"customer": "CUST-10001", "lines": [{"product": sku, "quantity": 1}]}))
                })
                .collect();
            requests.insert(
                CLIENTS / 2,
                v1.request(reqwest::Method::PUT, &format!("/v1/inventory/{sku}"))
                    .json(&json!({"on_hand": 0})),
            );
            let answers = race(requests).await;
            assert!(answers.iter().all(|(s, _)| matches!(s, 200 | 201 | 409)), "{backend:?}: {answers:?}");
            let (on_hand, reserved) = stock(&v1.get(&format!("/v1/inventory/{sku}")).await.body);
            assert!(
                on_hand >= reserved,
                "{backend:?} trial {trial}: on hand {on_hand} below reserved {reserved}"
            );
            assert_eq!(
                reserved as usize,
                count(&answers, 201),
                "{backend:?} trial {trial}: every reservation is an order"
            );
            let counted = answers[CLIENTS / 2].0 == 200;
            assert_eq!(on_hand, if counted { 0 } else { 100 }, "{backend:?} trial {trial}: {answers:?}");
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_writer_wins_an_etag() {
    each_backend(async |backend, _, v1| {
        for trial in 0..TRIALS {
            let sku = product(v1, trial, 100).await;
            let id = order(v1, &sku, 1).await;
            for path in [
                format!("/v1/products/{sku}"),
                format!("/v1/orders/{id}"),
                format!("/v1/inventory/{sku}"),
                "/v1/customers/CUST-10001".into(),
            ] {
                let tag = v1.get(&path).await.header("etag").expect("etag").to_owned();
                let body = match path.split('/').nth(2) {
                    Some("products") => json!({"name": "Renamed"}),
                    Some("orders") => json!({"notes": "packed"}),
                    Some("inventory") => json!({"adjustment": 1}),
                    _ => json!({"phone": "555-0100"}),
                };
                let answers = race(puts(v1, &path, body, Some(&tag))).await;
                assert_eq!(count(&answers, 200), 1, "{backend:?} trial {trial} {path}: {answers:?}");
                assert_eq!(
                    count(&answers, 412),
                    CLIENTS - 1,
                    "{backend:?} trial {trial} {path}: {answers:?}"
                );
            }
            assert_eq!(
                stock(&v1.get(&format!("/v1/inventory/{sku}")).await.body),
                (101, 1),
                "{backend:?}: one adjustment"
            );
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_with_nul_is_refused_by_field() {
    each_backend(async |backend, _, v1| {
        let r = v1.post("/v1/customers", json!({"name": "Ac\u{0}me", "email": "a@b.example.com"})).await;
        assert_eq!(r.status, 422, "{backend:?}: {:?}", r.body);
        assert_eq!(r.body["errors"][0]["field"], "name", "{backend:?}");
        let r = v1
            .put(
                "/v1/customers/CUST-10001",
                json!({"billing_address": {"street": "x\u{0}", "city": "c", "country": "US"}}),
            )
            .await;
        assert_eq!(
            (r.status, r.body["errors"][0]["field"].as_str()),
            (422, Some("billing_address.street")),
            "{backend:?}"
        );
        assert_eq!(v1.get("/v1/customers?name=a%00b").await.status, 400, "{backend:?}: a query value");
        assert_eq!(v1.get("/v1/customers/CUST%00").await.status, 422, "{backend:?}: a path reference");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idempotency_claim_is_a_lease_of_one_key() {
    each_backend(async |backend, app, v1| {
        use tokio::io::AsyncWriteExt;
        let addr = app.base.trim_start_matches("http://").to_owned();
        let body = json!({"name": "Gone Ltd", "email": "gone@example.com"}).to_string();
        // The client sends the whole request and goes away before the answer.
        let before = app.policy.decided();
        let mut conn = tokio::net::TcpStream::connect(&addr).await.expect("connect");
        let head = format!(
            "POST /v1/customers HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {}\r\nIdempotency-Key: gone-1\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            v1.key(),
            body.len()
        );
        conn.write_all(head.as_bytes()).await.expect("request");
        crate::wait::until(std::time::Duration::from_secs(5), "the request reaches the server", async || {
            (app.policy.decided() > before).then_some(())
        })
        .await;
        drop(conn);
        // The retry within the minute gets the committed answer, or runs cleanly: one customer.
        let post = |key: &str| {
            v1.request(reqwest::Method::POST, "/v1/customers").header("idempotency-key", key).body(body.clone())
                .header("content-type", "application/json")
        };
        let retry = crate::wait::until(std::time::Duration::from_secs(5), "the retry is answered", async || {
            let r = v1.send(post("gone-1")).await;
            (r.status != 409).then_some(r)
        })
        .await;
        assert_eq!(retry.status, 201, "{backend:?}: {:?}", retry.body);
        let listed = v1.get("/v1/customers?name=gone").await.body;
        let data = listed["data"].as_array().expect("data");
        assert_eq!(data.len(), 1, "{backend:?}: written once: {listed}");
        assert_eq!(data[0]["id"], retry.body["id"], "{backend:?}");

        // Another key's request with the same Idempotency-Key is its own request.
        let other_key = app.issue_key("demo", json!({"name": "other"})).await;
        let other = app.with_key(&other_key);
        let theirs = other
            .send(other.request(reqwest::Method::POST, "/v1/customers").header("idempotency-key", "gone-1").json(&json!({"name": "Theirs", "email": "t@example.com"})))
            .await;
        assert_eq!((theirs.status, theirs.header("idempotent-replayed")), (201, None), "{backend:?}: {:?}", theirs.body);
        assert_ne!(theirs.body["id"], retry.body["id"]);

        // A claim left by a request that never finished (a stopped server) blocks retries only
        // for its lease.
        let key_id = {
            let record = match app.state.keys.lookup(&app.state.db, v1.key(), app.clock.now_ms()).await.expect("lookup") {
                angage_store::keys::cache::Lookup::Found(r) => r,
                other => panic!("{other:?}"),
            };
            (record.tenant_id.clone(), record.id.clone())
        };
        let now = app.clock.now_ms();
        sqlx::query(
            "INSERT INTO idempotency_claims (tenant_id, key_id, idem_key, request_hash, status, created_at, lease_until) \
             VALUES ($1, $2, 'stuck-1', 'x', 0, $3, $4)",
        )
        .bind(&key_id.0)
        .bind(&key_id.1)
        .bind(now)
        .bind(now + angage_store::resources::idempotency::LEASE_MS)
        .execute(&app.state.db.pool)
        .await
        .expect("a stuck claim");
        let blocked = v1.send(post("stuck-1")).await;
        assert_eq!((blocked.status, blocked.code()), (409, "idempotency_in_progress"), "{backend:?}");
        app.clock.advance_ms(angage_store::resources::idempotency::LEASE_MS + 1);
        let taken = v1.send(post("stuck-1")).await;
        assert_eq!((taken.status, taken.header("idempotent-replayed")), (201, None), "{backend:?}: {:?}", taken.body);
    })
    .await;
}
