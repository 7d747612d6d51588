//! `/v1/customers` over HTTP, plus the behaviour every resource shares: lookup by code, 404s,
//! validation, pagination, idempotency, ETags and tenant isolation.

use serde_json::{Value, json};

use crate::helpers::{TestApp, backends, spawn_app};

fn acme() -> Value {
    json!({"name":"Acme Corporation","email":"contact@acmecorp.com","phone":"555-123-4567",
           "billing_address":{"street":"123 Main St","city":"New York","state":"NY","zip":"10001","country":"US"}})
}

async fn each_backend<F, Fut>(test: F)
where
    F: Fn(TestApp) -> Fut,
    Fut: std::future::Future<Output = TestApp>,
{
    for backend in backends() {
        let app = spawn_app(backend).await;
        let app = test(app).await;
        app.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_products_own_example_works_as_written() {
    each_backend(|app| async move {
        let v1 = app.v1().await;
        let r = v1.post("/v1/customers", acme()).await;
        assert_eq!(r.status, 201, "{:?}", r.body);
        let id = r.body["id"].as_str().expect("id").to_owned();
        let tail = id.strip_prefix("cust_").expect("cust_ prefix");
        assert!(
            tail.len() == 12 && tail.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()),
            "{id}"
        );
        assert_eq!(r.body["code"], "CUST-10001");
        assert_eq!(r.body["object"], "customer");
        assert_eq!(r.body["name"], "Acme Corporation");
        assert_eq!(r.body["email"], "contact@acmecorp.com");
        assert_eq!(r.body["phone"], "555-123-4567");
        assert_eq!(r.body["billing_address"], acme()["billing_address"]);
        assert_eq!(r.body["created_at"], "2026-11-02T10:00:00.000Z");
        assert_eq!(r.header("location"), Some(format!("/v1/customers/{id}").as_str()));

        // Codes are sequential per tenant; a row is addressable by id or code.
        let second = v1.post("/v1/customers", json!({"name":"Beta LLC","email":"ap@beta.example.com"})).await;
        assert_eq!(second.body["code"], "CUST-10002");
        assert_eq!(v1.get("/v1/customers/CUST-10001").await.body["id"], id.as_str());
        assert_eq!(v1.get(&format!("/v1/customers/{id}")).await.body["code"], "CUST-10001");

        let missing = v1.get("/v1/customers/CUST-99999").await;
        assert_eq!(missing.status, 404);
        assert_eq!(missing.code(), "not_found");
        assert_eq!(missing.body["detail"], "Customer CUST-99999 not found");
        assert_eq!(missing.header("content-type"), Some("application/problem+json"));
        app
    })
    .await;
}

/// A client uploading an oversized body slowly still finishes its write and reads the 413: the
/// server reads the body off the wire before it answers instead of resetting the connection.
/// The `/v1` API and the admin API's login both behave so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_oversized_upload_reads_its_413() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = spawn_app(crate::helpers::Backend::Sqlite).await;
    let v1 = app.v1().await;
    let authority = app.base.trim_start_matches("http://").to_owned();
    let body_len = 3 * 1024 * 1024;
    let head = |path: &str, extra: &str| {
        format!(
            "POST {path} HTTP/1.1\r\nhost: {authority}\r\nauthorization: Bearer {}\r\n\
             content-type: application/json\r\n{extra}\r\ncontent-length: {body_len}\r\n\r\n",
            v1.key()
        )
    };
    for path in ["/v1/customers", "/admin/v1/login"] {
        let mut socket = tokio::net::TcpStream::connect(&authority).await.expect("connect");
        socket.write_all(head(path, "connection: close").as_bytes()).await.expect("head");
        let chunk = vec![b' '; 64 * 1024];
        for _ in 0..body_len / chunk.len() {
            socket.write_all(&chunk).await.expect("every byte of the body is accepted");
        }
        let mut answer = Vec::new();
        socket.read_to_end(&mut answer).await.expect("the answer is readable");
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.starts_with("HTTP/1.1 413"), "{path}: {answer}");
        assert!(answer.contains("payload_too_large"), "{path}: {answer}");
    }

    // A client that waits for `100 Continue` is answered before it sends a byte of the body.
    let mut socket = tokio::net::TcpStream::connect(&authority).await.expect("connect");
    socket.write_all(head("/v1/customers", "expect: 100-continue").as_bytes()).await.expect("head");
    let mut answer = vec![0; 4096];
    let n = tokio::time::timeout(std::time::Duration::from_secs(10), socket.read(&mut answer))
        .await
        .expect("answered without the body")
        .expect("read");
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.to_ascii_lowercase().contains("connection: close"), "{answer}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_a_specific_4xx_listing_each_field() {
    each_backend(|app| async move {
        let v1 = app.v1().await;
        let r = v1
            .post(
                "/v1/customers",
                json!({"name": 42, "email": "not-an-email", "nickname": "x",
                       "billing_address": {"street": "", "city": "Paris", "country": "XX"}}),
            )
            .await;
        assert_eq!(r.status, 422);
        assert_eq!(r.code(), "validation_failed");
        let fields: Vec<&str> = r.body["errors"]
            .as_array()
            .expect("errors")
            .iter()
            .map(|e| e["field"].as_str().expect("field"))
            .collect();
        assert_eq!(
            fields,
            ["nickname", "name", "email", "billing_address.street", "billing_address.country"]
        );

        let r = v1.post("/v1/customers", json!({})).await;
        assert_eq!(r.status, 422);
        let fields: Vec<&str> = r.body["errors"]
            .as_array()
            .expect("errors")
            .iter()
            .map(|e| e["field"].as_str().expect("field"))
            .collect();
        assert_eq!(fields, ["name", "email"]);

        let r = v1.post("/v1/customers", json!({"name": "x".repeat(201), "email": "a@b.co"})).await;
        assert_eq!(
            (r.status, r.body["errors"][0]["message"].as_str()),
            (422, Some("must be at most 200 characters"))
        );

        let r = v1
            .send(
                v1.request(reqwest::Method::POST, "/v1/customers")
                    .header("content-type", "application/json")
                    .body("{\"name\": "),
            )
            .await;
        assert_eq!((r.status, r.code()), (400, "malformed_json"));
        assert!(r.body["detail"].as_str().expect("detail").contains("line 1"), "{:?}", r.body);

        let r = v1.send(v1.request(reqwest::Method::POST, "/v1/customers").body("name=x")).await;
        assert_eq!((r.status, r.code()), (415, "unsupported_media_type"));

        let huge = json!({"name": "x", "email": "a@b.co", "metadata": {"k": "y".repeat(2 * 1024 * 1024)}});
        // The client finishes sending and reads the answer: no reset while it is still writing.
        for _ in 0..3 {
            let r = v1.post("/v1/customers", huge.clone()).await;
            assert_eq!((r.status, r.code()), (413, "payload_too_large"));
        }

        let r = v1.post("/v1/customers", json!([1, 2])).await;
        assert_eq!((r.status, r.code()), (422, "validation_failed"));

        let r = v1.get("/v1/customers?limit=0").await;
        assert_eq!((r.status, r.code()), (400, "invalid_query"));
        let r = v1.get("/v1/customers?limit=101&created_after=yesterday&colour=red").await;
        assert_eq!(r.body["errors"].as_array().expect("errors").len(), 3, "{:?}", r.body);

        // Nothing was stored by any of that.
        let list = v1.get("/v1/customers").await;
        assert_eq!(list.body["data"].as_array().expect("data").len(), 0);
        app
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_paginate_newest_first_with_filters() {
    each_backend(|app| async move {
        let v1 = app.v1().await;
        for i in 0..25 {
            app.clock.advance_ms(1000);
            let r = v1
                .post(
                    "/v1/customers",
                    json!({"name": format!("Customer {i:02}"), "email": format!("c{i}@example.com")}),
                )
                .await;
            assert_eq!(r.status, 201);
        }
        let mut seen = Vec::new();
        let mut cursor: Option<String> = None;
        let mut pages = 0;
        loop {
            let path = match &cursor {
                Some(c) => format!("/v1/customers?limit=10&starting_after={c}"),
                None => "/v1/customers?limit=10".to_owned(),
            };
            let page = v1.get(&path).await;
            assert_eq!(page.status, 200);
            pages += 1;
            for c in page.body["data"].as_array().expect("data") {
                seen.push(c["name"].as_str().expect("name").to_owned());
            }
            if !page.body["has_more"].as_bool().expect("has_more") {
                assert!(page.body.get("next_cursor").is_none());
                break;
            }
            cursor = Some(page.body["next_cursor"].as_str().expect("cursor").to_owned());
        }
        assert_eq!(pages, 3);
        let expected: Vec<String> = (0..25).rev().map(|i| format!("Customer {i:02}")).collect();
        assert_eq!(seen, expected);

        assert_eq!(v1.get("/v1/customers").await.body["data"].as_array().expect("data").len(), 20);
        let by_email = v1.get("/v1/customers?email=C7@example.com").await;
        assert_eq!(by_email.body["data"][0]["name"], "Customer 07");
        let by_name = v1.get("/v1/customers?name=customer%201").await;
        assert_eq!(by_name.body["data"].as_array().expect("data").len(), 10);
        // created_after is exclusive: T0 + 20 s keeps customers 20..24.
        let recent = v1.get("/v1/customers?created_after=2026-11-02T10:00:20Z").await;
        assert_eq!(recent.body["data"].as_array().expect("data").len(), 5);
        let old = v1.get("/v1/customers?created_before=2026-11-02T10:00:03Z").await;
        assert_eq!(old.body["data"].as_array().expect("data").len(), 2);
        let bad = v1.get("/v1/customers?starting_after=cust_nosuchthing0").await;
        assert_eq!((bad.status, bad.code()), (400, "invalid_query"));
        app
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotent_retries_return_the_first_result() {
    each_backend(|app| async move {
        let v1 = app.v1().await;
        let post = |body: Value, key: &str| {
            v1.request(reqwest::Method::POST, "/v1/customers").header("idempotency-key", key).json(&body)
        };
        let first = v1.send(post(acme(), "key-1")).await;
        assert_eq!(first.status, 201);
        let retry = v1.send(post(acme(), "key-1")).await;
        assert_eq!(retry.status, 201);
        assert_eq!(retry.body, first.body);
        assert_eq!(retry.header("idempotent-replayed"), Some("true"));
        assert_eq!(retry.header("location"), first.header("location"));

        let other = v1.send(post(json!({"name": "Other", "email": "o@example.com"}), "key-1")).await;
        assert_eq!((other.status, other.code()), (422, "idempotency_key_reused"));

        // Only one customer exists; a fresh key creates another.
        assert_eq!(v1.get("/v1/customers").await.body["data"].as_array().expect("data").len(), 1);
        assert_eq!(v1.send(post(acme(), "key-2")).await.body["code"], "CUST-10002");

        // A failed validation is not remembered: the corrected request may reuse the key.
        let bad = v1.send(post(json!({"name": "x"}), "key-3")).await;
        assert_eq!(bad.status, 422);
        assert_eq!(v1.send(post(json!({"name": "x", "email": "x@example.com"}), "key-3")).await.status, 201);

        // Keys are per tenant, and remembered for 24 hours.
        app.create_tenant("other").await;
        assert_eq!(
            app.as_tenant("other")
                .await
                .send(
                    app.as_tenant("other")
                        .await
                        .request(reqwest::Method::POST, "/v1/customers")
                        .header("idempotency-key", "key-1")
                        .json(&acme())
                )
                .await
                .body["code"],
            "CUST-10001"
        );
        app.clock.advance_ms(24 * 3600 * 1000 - 1);
        assert_eq!(v1.send(post(acme(), "key-1")).await.header("idempotent-replayed"), Some("true"));
        app.clock.advance_ms(2);
        let after = v1.send(post(acme(), "key-1")).await;
        assert_eq!((after.status, after.header("idempotent-replayed")), (201, None));
        app
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etags_give_304_and_stale_writes_get_412() {
    each_backend(|app| async move {
        let v1 = app.v1().await;
        let created = v1.post("/v1/customers", acme()).await;
        let tag = created.header("etag").expect("etag").to_owned();
        let get = v1.get("/v1/customers/CUST-10001").await;
        assert_eq!(get.header("etag"), Some(tag.as_str()));
        let cached = v1
            .send(v1.request(reqwest::Method::GET, "/v1/customers/CUST-10001").header("if-none-match", &tag))
            .await;
        assert_eq!(cached.status, 304);

        let put = |tag: &str, body: Value| {
            v1.request(reqwest::Method::PUT, "/v1/customers/CUST-10001").header("if-match", tag).json(&body)
        };
        let updated = v1.send(put(&tag, json!({"phone": "555-000-0000"}))).await;
        assert_eq!(updated.status, 200);
        assert_eq!(updated.body["phone"], "555-000-0000");
        assert_eq!(updated.body["name"], "Acme Corporation", "fields not sent are kept");
        let new_tag = updated.header("etag").expect("etag").to_owned();
        assert_ne!(new_tag, tag);

        let stale = v1.send(put(&tag, json!({"phone": "1"}))).await;
        assert_eq!((stale.status, stale.code()), (412, "precondition_failed"));
        assert_eq!(
            v1.get("/v1/customers/CUST-10001").await.body["phone"],
            "555-000-0000",
            "the stale write changed nothing"
        );
        let stale_delete = v1
            .send(v1.request(reqwest::Method::DELETE, "/v1/customers/CUST-10001").header("if-match", &tag))
            .await;
        assert_eq!(stale_delete.status, 412);
        let fresh = v1
            .send(v1.request(reqwest::Method::GET, "/v1/customers/CUST-10001").header("if-none-match", &tag))
            .await;
        assert_eq!(fresh.status, 200);

        let bad = v1
            .put("/v1/customers/CUST-10001", json!({"email": "nope", "billing_address": {"country": "US"}}))
            .await;
        assert_eq!(bad.status, 422);
        assert_eq!(bad.body["errors"].as_array().expect("errors").len(), 3, "{:?}", bad.body);

        assert_eq!(v1.delete("/v1/customers/CUST-10001").await.status, 204);
        assert_eq!(v1.get("/v1/customers/CUST-10001").await.status, 404);
        assert_eq!(v1.delete("/v1/customers/CUST-10001").await.status, 404);
        app
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenants_never_see_or_change_each_others_rows() {
    each_backend(|app| async move {
        app.create_tenant("globex").await;
        let demo = app.v1().await;
        let globex = app.as_tenant("globex").await;
        let c = demo.post("/v1/customers", acme()).await;
        let id = c.body["id"].as_str().expect("id").to_owned();
        demo.post(
            "/v1/products",
            json!({"sku": "W-1", "name": "Widget", "unit_price": 500, "currency": "USD", "initial_stock": 5}),
        )
        .await;
        let order = demo
            .post(
                "/v1/orders",
                json!({"customer": "CUST-10001", "lines": [{"product": "W-1", "quantity": 1}]}),
            )
            .await;
        assert_eq!(order.status, 201, "{:?}", order.body);
        let invoice = demo.post("/v1/invoices", json!({"order": "ORD-10001"})).await;
        assert_eq!(invoice.status, 201, "{:?}", invoice.body);

        for path in [
            format!("/v1/customers/{id}"),
            "/v1/customers/CUST-10001".into(),
            "/v1/products/W-1".into(),
            "/v1/inventory/W-1".into(),
            "/v1/orders/ORD-10001".into(),
            "/v1/invoices/INV-10001".into(),
        ] {
            assert_eq!(globex.get(&path).await.status, 404, "{path}");
        }
        for list in
            ["/v1/customers", "/v1/products", "/v1/orders", "/v1/invoices", "/v1/inventory", "/v1/payments"]
        {
            assert_eq!(globex.get(list).await.body["data"].as_array().expect("data").len(), 0, "{list}");
        }
        assert_eq!(globex.put(&format!("/v1/customers/{id}"), json!({"name": "Hacked"})).await.status, 404);
        assert_eq!(globex.delete(&format!("/v1/customers/{id}")).await.status, 404);
        assert_eq!(globex.put("/v1/inventory/W-1", json!({"on_hand": 0})).await.status, 404);
        let foreign_order = globex
            .post("/v1/orders", json!({"customer": id, "lines": [{"product": "W-1", "quantity": 1}]}))
            .await;
        assert_eq!(foreign_order.status, 422);
        let foreign_pay = globex.post("/v1/payments", json!({"invoice": "INV-10001", "amount": 1})).await;
        assert_eq!(foreign_pay.status, 422);
        // The other tenant's codes start at their own sequence.
        assert_eq!(globex.post("/v1/customers", acme()).await.body["code"], "CUST-10001");
        assert_eq!(demo.get(&format!("/v1/customers/{id}")).await.body["name"], "Acme Corporation");
        // Without a tenant there is no access at all.
        let anonymous = app.http.get(app.url("/v1/customers")).send().await.expect("send");
        assert_eq!(anonymous.status(), 401);
        app
    })
    .await;
}
