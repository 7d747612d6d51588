//! The served OpenAPI document, the docs page, and the check every `/v1` response goes through.

use std::sync::OnceLock;

use serde_json::Value;

use crate::helpers::{Backend, spawn_app};

/// The document as the server serves it (the same for every app of this build).
fn document() -> &'static Value {
    static DOC: OnceLock<Value> = OnceLock::new();
    DOC.get_or_init(|| angage_http::v1::openapi::document().clone())
}

/// Asserts that a response is one the document declares for this operation, and that its JSON
/// body matches the declared schema.
pub(crate) fn check_response(
    method: &str,
    path: &str,
    status: u16,
    headers: &reqwest::header::HeaderMap,
    body: &Value,
) {
    let doc = if path.starts_with("/v1/") {
        document()
    } else if path.starts_with("/admin/v1/") {
        admin_document()
    } else {
        return;
    };
    let Some((template, item)) =
        doc["paths"].as_object().and_then(|paths| paths.iter().find(|(t, _)| matches(t, path)))
    else {
        panic!("{method} {path}: no path of the OpenAPI document matches");
    };
    let Some(op) = item.get(method) else { panic!("{method} {template}: method not documented") };
    let responses = &op["responses"];
    let class = format!("{}XX", status / 100);
    let Some(response) = responses
        .get(status.to_string())
        .or_else(|| responses.get(&class))
        .or_else(|| responses.get("default"))
    else {
        panic!("{method} {template}: status {status} is not documented (body: {body})");
    };
    let Some(content) = response.get("content").and_then(Value::as_object) else {
        assert!(body.is_null(), "{method} {template} {status}: undocumented body {body}");
        return;
    };
    let ct = headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("");
    let Some(media) = content.get(ct.split(';').next().unwrap_or("")) else {
        panic!("{method} {template} {status}: content type {ct} not documented");
    };
    let mut schema = media["schema"].clone();
    if let Some(obj) = schema.as_object_mut() {
        obj.insert("components".into(), doc["components"].clone());
    }
    let validator = jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .build(&schema)
        .unwrap_or_else(|e| panic!("{method} {template}: schema does not compile: {e}"));
    let errors: Vec<String> =
        validator.iter_errors(body).map(|e| format!("{} at {}", e, e.instance_path)).collect();
    assert!(
        errors.is_empty(),
        "{method} {template} {status}: body does not match the document: {errors:?}\n{body}"
    );
}

fn admin_document() -> &'static Value {
    angage_http::admin::openapi::document()
}

fn matches(template: &str, path: &str) -> bool {
    let t: Vec<&str> = template.split('/').collect();
    let p: Vec<&str> = path.split('/').collect();
    t.len() == p.len() && t.iter().zip(&p).all(|(t, p)| (t.starts_with('{') && !p.is_empty()) || t == p)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_is_served_with_security_and_code_samples_for_every_operation() {
    let app = spawn_app(Backend::Sqlite).await;
    let served: Value = app.get("/v1/openapi.json").await.json().await.expect("json");
    assert_eq!(&served, document());
    assert!(served["openapi"].as_str().expect("version").starts_with("3.1"));
    assert_eq!(served["components"]["securitySchemes"]["bearer_key"]["scheme"], "bearer");
    assert_eq!(served["components"]["securitySchemes"]["api_key_header"]["name"], "X-API-Key");

    let expected: &[(&str, &[&str])] = &[
        ("/v1/customers", &["get", "post"]),
        ("/v1/customers/{id}", &["get", "put", "delete"]),
        ("/v1/products", &["get", "post"]),
        ("/v1/products/{id}", &["get", "put", "delete"]),
        ("/v1/orders", &["get", "post"]),
        ("/v1/orders/{id}", &["get", "put"]),
        ("/v1/invoices", &["get", "post"]),
        ("/v1/invoices/{id}", &["get"]),
        ("/v1/inventory", &["get"]),
        ("/v1/inventory/{product}", &["get", "put"]),
        ("/v1/payments", &["get", "post"]),
        ("/v1/payments/{id}", &["get"]),
    ];
    let paths = served["paths"].as_object().expect("paths");
    assert_eq!(paths.len(), expected.len(), "{:?}", paths.keys().collect::<Vec<_>>());
    for (path, methods) in expected {
        let item = paths[*path].as_object().expect("path item");
        let documented: Vec<&str> = item
            .keys()
            .map(String::as_str)
            .filter(|k| ["get", "post", "put", "delete", "patch"].contains(k))
            .collect();
        assert_eq!(documented.len(), methods.len(), "{path}: {documented:?}");
        for method in *methods {
            let samples = item[*method]["x-codeSamples"].as_array().expect("samples");
            let langs: Vec<&str> = samples.iter().map(|s| s["lang"].as_str().expect("lang")).collect();
            assert_eq!(langs, ["cURL", "Python", "JavaScript", "PHP"], "{method} {path}");
            let description = item[*method]["description"].as_str().expect("description");
            assert!(description.contains("```sh\ncurl"), "{method} {path}");
        }
    }
    // The product's own example is the documented request body of POST /v1/customers.
    let curl = paths["/v1/customers"]["post"]["x-codeSamples"][0]["source"].as_str().expect("curl");
    assert!(curl.contains("Acme Corporation") && curl.contains("-X POST"), "{curl}");

    let docs = app.get("/docs").await;
    assert_eq!(docs.status(), 200);
    let html = docs.text().await.expect("html");
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "the docs page must load nothing from the internet"
    );
    assert!(html.contains("/docs/assets/swagger-ui-bundle.js") && html.contains("/docs/assets/start.js"));
    let start = app.get("/docs/assets/start.js").await.text().await.expect("start.js");
    assert!(start.contains("/v1/openapi.json"), "{start}");
    for asset in ["/docs/assets/swagger-ui-bundle.js", "/docs/assets/swagger-ui.css"] {
        let resp = app.get(asset).await;
        assert_eq!(resp.status(), 200, "{asset}");
        assert!(resp.bytes().await.expect("asset").len() > 10_000, "{asset}");
    }
    app.stop().await;
}
