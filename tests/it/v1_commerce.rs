//! Products, inventory, orders, invoices and payments over HTTP: the multi-row rules.

use serde_json::json;

use crate::helpers::{V1, backends, spawn_app};

async fn seed(v1: &V1<'_>) {
    assert_eq!(
        v1.post("/v1/customers", json!({"name": "Acme", "email": "ap@acme.example.com"})).await.status,
        201
    );
    for (sku, price, stock) in [("W-1", 1999, 10), ("W-2", 500, 3)] {
        let r = v1.post("/v1/products", json!({"sku": sku, "name": sku, "unit_price": price, "currency": "USD", "initial_stock": stock})).await;
        assert_eq!(r.status, 201, "{:?}", r.body);
        assert!(r.body["id"].as_str().expect("id").starts_with("prod_"));
    }
}

fn stock(item: &serde_json::Value) -> (i64, i64, i64) {
    (
        item["on_hand"].as_i64().expect("on_hand"),
        item["reserved"].as_i64().expect("reserved"),
        item["available"].as_i64().expect("available"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn products_and_inventory() {
    for backend in backends() {
        let app = spawn_app(backend).await;
        let v1 = app.v1().await;
        seed(&v1).await;
        let dup = v1
            .post("/v1/products", json!({"sku": "W-1", "name": "again", "unit_price": 1, "currency": "USD"}))
            .await;
        assert_eq!((dup.status, dup.code()), (409, "sku_taken"));
        let bad = v1.post("/v1/products", json!({"sku": "bad sku!", "name": "", "unit_price": -5, "currency": "usd", "initial_stock": 1.5})).await;
        assert_eq!(bad.status, 422);
        let fields: Vec<&str> = bad.body["errors"]
            .as_array()
            .expect("errors")
            .iter()
            .map(|e| e["field"].as_str().expect("f"))
            .collect();
        assert_eq!(fields, ["sku", "name", "unit_price", "currency", "initial_stock"]);

        let p = v1.get("/v1/products/W-1").await;
        assert_eq!((p.body["unit_price"].as_i64(), p.body["currency"].as_str()), (Some(1999), Some("USD")));
        let renamed = v1.put("/v1/products/W-1", json!({"name": "Widget One", "unit_price": 2099})).await;
        assert_eq!((renamed.status, renamed.body["name"].as_str()), (200, Some("Widget One")));
        assert_eq!(v1.put("/v1/products/W-2", json!({"sku": "W-1"})).await.code(), "sku_taken");

        assert_eq!(stock(&v1.get("/v1/inventory/W-1").await.body), (10, 0, 10));
        let set = v1.put("/v1/inventory/W-1", json!({"on_hand": 25})).await;
        assert_eq!(stock(&set.body), (25, 0, 25));
        let adjusted = v1.put("/v1/inventory/W-1", json!({"adjustment": -5})).await;
        assert_eq!(stock(&adjusted.body), (20, 0, 20));
        let both = v1.put("/v1/inventory/W-1", json!({"on_hand": 1, "adjustment": 1})).await;
        assert_eq!(both.status, 422);
        let negative = v1.put("/v1/inventory/W-1", json!({"on_hand": -1})).await;
        assert_eq!(
            (negative.status, negative.body["errors"][0]["message"].as_str()),
            (422, Some("must not be negative"))
        );
        let stale = v1
            .send(
                v1.request(reqwest::Method::PUT, "/v1/inventory/W-1")
                    .header("if-match", "\"1\"")
                    .json(&json!({"on_hand": 3})),
            )
            .await;
        assert_eq!(stale.status, 412);
        let list = v1.get("/v1/inventory?limit=1").await;
        assert_eq!(
            (list.body["data"].as_array().expect("data").len(), list.body["has_more"].as_bool()),
            (1, Some(true))
        );
        let next = list.body["next_cursor"].as_str().expect("cursor").to_owned();
        let page2 = v1.get(&format!("/v1/inventory?limit=1&starting_after={next}")).await;
        assert_eq!(page2.body["has_more"], false);
        assert_ne!(page2.body["data"][0]["sku"], list.body["data"][0]["sku"]);

        assert_eq!(v1.delete("/v1/products/W-2").await.status, 204);
        assert_eq!(v1.get("/v1/inventory/W-2").await.status, 404);
        app.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_reserve_stock_and_refuse_what_is_not_there() {
    for backend in backends() {
        let app = spawn_app(backend).await;
        let v1 = app.v1().await;
        seed(&v1).await;
        let order = v1
            .post("/v1/orders", json!({"customer": "CUST-10001", "lines": [{"product": "W-1", "quantity": 2}, {"product": "W-2", "quantity": 3, "unit_price": 450}]}))
            .await;
        assert_eq!(order.status, 201, "{:?}", order.body);
        assert_eq!(order.body["code"], "ORD-10001");
        assert_eq!(order.body["status"], "confirmed");
        assert_eq!(order.body["total"], 2 * 1999 + 3 * 450);
        assert_eq!(order.body["lines"][1]["amount"], 1350);
        assert_eq!(stock(&v1.get("/v1/inventory/W-1").await.body), (10, 2, 8));
        assert_eq!(stock(&v1.get("/v1/inventory/W-2").await.body), (3, 3, 0));

        // W-2 is sold out: the whole order is refused and W-1 keeps its stock (one transaction).
        let short = v1.post("/v1/orders", json!({"customer": "CUST-10001", "lines": [{"product": "W-1", "quantity": 1}, {"product": "W-2", "quantity": 1}]})).await;
        assert_eq!((short.status, short.code()), (409, "insufficient_stock"));
        assert!(short.body["detail"].as_str().expect("detail").contains("W-2"), "{:?}", short.body);
        assert_eq!(stock(&v1.get("/v1/inventory/W-1").await.body), (10, 2, 8));
        assert_eq!(v1.get("/v1/orders").await.body["data"].as_array().expect("data").len(), 1);

        let invalid = v1
            .post(
                "/v1/orders",
                json!({"customer": "CUST-404", "lines": [{"product": "NOPE", "quantity": 0}]}),
            )
            .await;
        assert_eq!(invalid.status, 422);
        let empty = v1.post("/v1/orders", json!({"customer": "CUST-10001", "lines": []})).await;
        assert_eq!((empty.status, empty.body["errors"][0]["field"].as_str()), (422, Some("lines")));
        let unknown = v1
            .post(
                "/v1/orders",
                json!({"customer": "CUST-10001", "lines": [{"product": "NOPE", "quantity": 1}]}),
            )
            .await;
        assert_eq!(
            (unknown.status, unknown.body["errors"][0]["field"].as_str()),
            (422, Some("lines[0].product"))
        );

        // A draft holds nothing until confirmed; stock can't drop below what is reserved.
        let draft = v1.post("/v1/orders", json!({"customer": "CUST-10001", "status": "draft", "lines": [{"product": "W-1", "quantity": 8}]})).await;
        assert_eq!(draft.body["status"], "draft");
        assert_eq!(stock(&v1.get("/v1/inventory/W-1").await.body), (10, 2, 8));
        let confirmed = v1.put("/v1/orders/ORD-10002", json!({"status": "confirmed"})).await;
        assert_eq!(confirmed.body["status"], "confirmed");
        assert_eq!(stock(&v1.get("/v1/inventory/W-1").await.body), (10, 10, 0));
        let below = v1.put("/v1/inventory/W-1", json!({"on_hand": 9})).await;
        assert_eq!((below.status, below.code()), (409, "below_reserved"));

        let cancelled = v1.put("/v1/orders/ORD-10002", json!({"status": "cancelled"})).await;
        assert_eq!(cancelled.body["status"], "cancelled");
        assert_eq!(stock(&v1.get("/v1/inventory/W-1").await.body), (10, 2, 8));
        let fulfilled =
            v1.put("/v1/orders/ORD-10001", json!({"status": "fulfilled", "notes": "shipped"})).await;
        assert_eq!(
            (fulfilled.body["status"].as_str(), fulfilled.body["notes"].as_str()),
            (Some("fulfilled"), Some("shipped"))
        );
        assert_eq!(stock(&v1.get("/v1/inventory/W-1").await.body), (8, 0, 8));
        let back = v1.put("/v1/orders/ORD-10001", json!({"status": "confirmed"})).await;
        assert_eq!((back.status, back.code()), (409, "invalid_transition"));

        let by_customer = v1.get("/v1/orders?customer=CUST-10001&status=fulfilled").await;
        assert_eq!(by_customer.body["data"].as_array().expect("data").len(), 1);

        // Referenced rows are not deleted out from under orders.
        let c = v1.delete("/v1/customers/CUST-10001").await;
        assert_eq!((c.status, c.code()), (409, "customer_in_use"));
        let p = v1.delete("/v1/products/W-1").await;
        assert_eq!((p.status, p.code()), (409, "product_in_use"));
        assert_eq!(v1.get("/v1/customers/CUST-10001").await.status, 200);
        app.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invoices_and_payments_move_through_partially_paid_to_paid() {
    for backend in backends() {
        let app = spawn_app(backend).await;
        let v1 = app.v1().await;
        seed(&v1).await;
        v1.post(
            "/v1/orders",
            json!({"customer": "CUST-10001", "lines": [{"product": "W-1", "quantity": 1}]}),
        )
        .await;
        let inv =
            v1.post("/v1/invoices", json!({"order": "ORD-10001", "due_at": "2026-12-31T00:00:00Z"})).await;
        assert_eq!(inv.status, 201, "{:?}", inv.body);
        assert_eq!(
            (inv.body["code"].as_str(), inv.body["amount_due"].as_i64(), inv.body["status"].as_str()),
            (Some("INV-10001"), Some(1999), Some("open"))
        );
        assert_eq!(inv.body["due_at"], "2026-12-31T00:00:00.000Z");
        let again = v1.post("/v1/invoices", json!({"order": "ORD-10001"})).await;
        assert_eq!((again.status, again.code()), (409, "already_invoiced"));
        let mixed = v1.post("/v1/invoices", json!({"order": "ORD-10001", "amount": 5})).await;
        assert_eq!(mixed.status, 422);
        let direct = v1.post("/v1/invoices", json!({"customer": "CUST-10001", "amount": 700, "currency": "EUR", "description": "Consulting"})).await;
        assert_eq!((direct.status, direct.body["code"].as_str()), (201, Some("INV-10002")));
        let incomplete = v1.post("/v1/invoices", json!({"customer": "CUST-10001"})).await;
        let fields: Vec<&str> = incomplete.body["errors"]
            .as_array()
            .expect("errors")
            .iter()
            .map(|e| e["field"].as_str().expect("f"))
            .collect();
        assert_eq!(fields, ["amount", "currency"]);

        let p1 =
            v1.post("/v1/payments", json!({"invoice": "INV-10001", "amount": 999, "method": "card"})).await;
        assert_eq!((p1.status, p1.body["code"].as_str()), (201, Some("PAY-10001")));
        let inv = v1.get("/v1/invoices/INV-10001").await;
        assert_eq!(
            (inv.body["status"].as_str(), inv.body["amount_remaining"].as_i64()),
            (Some("partially_paid"), Some(1000))
        );

        let over = v1.post("/v1/payments", json!({"invoice": "INV-10001", "amount": 1001})).await;
        assert_eq!((over.status, over.code()), (409, "overpayment"));
        assert!(
            over.body["detail"].as_str().expect("detail").contains("1000 USD still due"),
            "{:?}",
            over.body
        );
        let wrong_currency =
            v1.post("/v1/payments", json!({"invoice": "INV-10001", "amount": 1, "currency": "EUR"})).await;
        assert_eq!(wrong_currency.status, 422);
        let p2 = v1
            .post("/v1/payments", json!({"invoice": "INV-10001", "amount": 1000, "reference": "TX-1"}))
            .await;
        assert_eq!(p2.status, 201);
        let inv = v1.get("/v1/invoices/INV-10001").await;
        assert_eq!(
            (inv.body["status"].as_str(), inv.body["amount_paid"].as_i64()),
            (Some("paid"), Some(1999))
        );
        let after = v1.post("/v1/payments", json!({"invoice": "INV-10001", "amount": 1})).await;
        assert_eq!((after.status, after.code()), (409, "invoice_paid"));

        assert_eq!(v1.get("/v1/invoices?status=paid").await.body["data"].as_array().expect("data").len(), 1);
        assert_eq!(
            v1.get("/v1/invoices?status=open&customer=CUST-10001").await.body["data"][0]["code"],
            "INV-10002"
        );
        assert_eq!(
            v1.get("/v1/payments?invoice=INV-10001").await.body["data"].as_array().expect("data").len(),
            2
        );
        assert_eq!(v1.get("/v1/payments/PAY-10002").await.body["reference"], "TX-1");
        assert_eq!(v1.get("/v1/payments/PAY-99999").await.status, 404);
        let c = v1.delete("/v1/customers/CUST-10001").await;
        assert_eq!(c.status, 409);
        app.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_orders_never_oversell() {
    for backend in backends() {
        let app = spawn_app(backend).await;
        let v1 = app.v1().await;
        seed(&v1).await;
        // 10 units of W-1; 16 concurrent orders of 1.
        let mut tasks = Vec::new();
        for _ in 0..16 {
            let req = v1
                .request(reqwest::Method::POST, "/v1/orders")
                .json(&json!({"customer": "CUST-10001", "lines": [{"product": "W-1", "quantity": 1}]}));
            tasks.push(tokio::spawn(async move {
                let resp = req.send().await.expect("send");
                let status = resp.status().as_u16();
                if status >= 500 {
                    eprintln!("{}", resp.text().await.unwrap_or_default());
                }
                status
            }));
        }
        let mut statuses = Vec::new();
        for t in tasks {
            statuses.push(t.await.expect("task"));
        }
        assert_eq!(statuses.iter().filter(|s| **s == 201).count(), 10, "{backend:?}: {statuses:?}");
        assert_eq!(statuses.iter().filter(|s| **s == 409).count(), 6, "{backend:?}: {statuses:?}");
        assert_eq!(stock(&v1.get("/v1/inventory/W-1").await.body), (10, 10, 0));
        app.stop().await;
    }
}
