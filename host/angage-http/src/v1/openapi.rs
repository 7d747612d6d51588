//! The OpenAPI 3.1 document of `/v1`, generated from the handlers' annotations and types, with
//! code samples (cURL, Python, JavaScript, PHP) added to every operation.

use std::sync::OnceLock;

use serde_json::{Value, json};
use utoipa::openapi::security::{
    ApiKey, ApiKeyValue, AuthorizationCode, ClientCredentials, Flow, HttpAuthScheme, HttpBuilder, OAuth2,
    SecurityScheme,
};
use utoipa::{Modify, OpenApi};

use super::{customers, inventory, invoices, orders, payments, products, webhooks_doc};
use crate::ProblemBody;
use angage_store::keys::store::KeyView;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Angage API",
        version = "1.0.0",
        description = "The ERP's public API. Authenticate with an API key: `Authorization: Bearer ak_live_...` \
                       or `X-API-Key: ak_live_...`. Errors are RFC 9457 `application/problem+json` bodies with a stable `code`. \
                       Lists are newest first with cursor pagination (`limit`, `starting_after`). Every POST accepts an \
                       `Idempotency-Key`. Single resources carry an `ETag`; send `If-None-Match` to get 304 and `If-Match` on PUT \
                       to get 412 instead of overwriting someone else's change. Every response carries \
                       `X-RateLimit-Limit`, `X-RateLimit-Remaining` and `X-RateLimit-Reset` (seconds) for the window \
                       closest to its limit, and the IETF `RateLimit-Policy` and `RateLimit` fields; a 429 adds \
                       `Retry-After`. Denials: 401 `missing_credentials`, `invalid_api_key`, `expired_api_key`, \
                       `revoked_api_key`; 403 `insufficient_scope`, `ip_not_allowed`, `https_required`; 408 `request_timeout` \
                       (the request was not complete within the server's deadline); 429 `rate_limited`; 503 \
                       `overloaded` with `Retry-After` when the server sheds load."
    ),
    paths(
        customers::create, customers::list, customers::get, customers::update, customers::delete,
        products::create, products::list, products::get, products::update, products::delete,
        orders::create, orders::list, orders::get, orders::update,
        invoices::create, invoices::list, invoices::get,
        inventory::list, inventory::get, inventory::update,
        payments::create, payments::list, payments::get,
    ),
    components(schemas(ProblemBody, KeyView)),
    modifiers(&Security),
    tags(
        (name = "Customers", description = "The people and companies you sell to"),
        (name = "Products", description = "What you sell"),
        (name = "Orders", description = "Customers' orders; confirming reserves stock"),
        (name = "Invoices", description = "Bills for orders or customers"),
        (name = "Inventory", description = "Stock on hand and reserved, per product"),
        (name = "Payments", description = "Money applied to invoices"),
    )
)]
struct V1Doc;

struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer_key",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("ak_live_... API key")
                    .build(),
            ),
        );
        components.add_security_scheme(
            "api_key_header",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-API-Key"))),
        );
        // OAuth 2.0 access tokens (`at_live_...`), for tenants with OAuth on; relative URLs,
        // resolved against the server the document is read from.
        let scopes = || {
            use utoipa::openapi::security::Scopes;
            angage_core::key::MODULES
                .iter()
                .flat_map(|m| {
                    [
                        (format!("{m}:read"), format!("Read {m}")),
                        (format!("{m}:write"), format!("Create, change and delete {m}")),
                    ]
                })
                .collect::<Scopes>()
        };
        components.add_security_scheme(
            "oauth2",
            SecurityScheme::OAuth2(OAuth2::new([
                Flow::ClientCredentials(ClientCredentials::new("/oauth/token", scopes())),
                Flow::AuthorizationCode(AuthorizationCode::new("/oauth/authorize", "/oauth/token", scopes())),
            ])),
        );
        openapi.security = Some(vec![
            utoipa::openapi::security::SecurityRequirement::new("bearer_key", Vec::<String>::new()),
            utoipa::openapi::security::SecurityRequirement::new("api_key_header", Vec::<String>::new()),
            utoipa::openapi::security::SecurityRequirement::new("oauth2", Vec::<String>::new()),
        ]);
    }
}

/// The served document, serialized once.
pub fn document_text() -> &'static str {
    static TEXT: OnceLock<String> = OnceLock::new();
    TEXT.get_or_init(|| document().to_string())
}

/// The served document (built once).
pub fn document() -> &'static Value {
    static DOC: OnceLock<Value> = OnceLock::new();
    DOC.get_or_init(|| {
        let mut doc = serde_json::to_value(V1Doc::openapi()).unwrap_or_else(|_| json!({}));
        add_code_samples(&mut doc);
        webhooks_doc::add(&mut doc);
        doc
    })
}

const BASE: &str = "http://127.0.0.1:8080";

fn add_code_samples(doc: &mut Value) {
    let schemas = doc.pointer("/components/schemas").cloned().unwrap_or(Value::Null);
    let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) else { return };
    for (path, item) in paths.iter_mut() {
        let Some(item) = item.as_object_mut() else { continue };
        for (method, op) in item.iter_mut() {
            let example = request_example(op, &schemas);
            let url = format!("{BASE}{}", sample_path(path));
            let samples = samples(&method.to_uppercase(), &url, example.as_ref());
            let markdown: String = samples
                .iter()
                .map(|(lang, fence, src)| format!("\n\n**{lang}**\n\n```{fence}\n{src}\n```"))
                .collect();
            let described = op.get("description").and_then(Value::as_str).unwrap_or("").to_owned();
            op["description"] = Value::String(format!("{described}{markdown}"));
            op["x-codeSamples"] = samples
                .into_iter()
                .map(|(lang, _, source)| json!({"lang": lang, "source": source}))
                .collect();
            // Every operation passes the policy pipeline and the store: say what that can answer.
            if let Some(mut unavailable) = op.pointer("/responses/4XX").cloned() {
                unavailable["description"] = Value::from(
                    "`policy_unavailable` (a policy plugin failed), `database_unavailable`, or `overloaded` \
                     (shed under load, with `Retry-After`); retry later",
                );
                op["responses"]["5XX"] = unavailable;
            }
        }
    }
}

/// A realistic reference for each path parameter.
fn sample_path(path: &str) -> String {
    let id = match path.split('/').nth(2) {
        Some("products") => "WIDGET-BLUE",
        Some("orders") => "ORD-10001",
        Some("invoices") => "INV-10001",
        Some("payments") => "PAY-10001",
        _ => "CUST-10001",
    };
    path.replace("{id}", id).replace("{product}", "WIDGET-BLUE")
}

fn request_example(op: &Value, schemas: &Value) -> Option<Value> {
    let schema = op.pointer("/requestBody/content/application~1json/schema")?;
    if let Some(example) = schema.get("example") {
        return Some(example.clone());
    }
    let name = schema.get("$ref")?.as_str()?.rsplit('/').next()?;
    schemas.get(name)?.get("example").cloned()
}

fn samples(method: &str, url: &str, body: Option<&Value>) -> Vec<(&'static str, &'static str, String)> {
    let key = "ak_test_YOUR_KEY";
    let json_text = body.map(|b| serde_json::to_string_pretty(b).unwrap_or_default());
    let curl = match &json_text {
        Some(j) => format!(
            "curl -X {method} '{url}' \\\n  -H 'Authorization: Bearer {key}' \\\n  -H 'Content-Type: application/json' \\\n  -d '{}'",
            j.replace('\'', "'\\''")
        ),
        None => format!("curl -X {method} '{url}' \\\n  -H 'Authorization: Bearer {key}'"),
    };
    let python = match &json_text {
        Some(j) => format!(
            "import requests\n\nresp = requests.request(\n    \"{method}\",\n    \"{url}\",\n    headers={{\"Authorization\": \"Bearer {key}\"}},\n    json={},\n)\nprint(resp.status_code, resp.json())",
            j.replace("null", "None").replace("true", "True").replace("false", "False")
        ),
        None => format!(
            "import requests\n\nresp = requests.request(\"{method}\", \"{url}\", headers={{\"Authorization\": \"Bearer {key}\"}})\nprint(resp.status_code, resp.text)"
        ),
    };
    let js = match &json_text {
        Some(j) => format!(
            "const resp = await fetch(\"{url}\", {{\n  method: \"{method}\",\n  headers: {{ Authorization: \"Bearer {key}\", \"Content-Type\": \"application/json\" }},\n  body: JSON.stringify({j}),\n}});\nconsole.log(resp.status, await resp.json());"
        ),
        None => format!(
            "const resp = await fetch(\"{url}\", {{\n  method: \"{method}\",\n  headers: {{ Authorization: \"Bearer {key}\" }},\n}});\nconsole.log(resp.status, await resp.text());"
        ),
    };
    let php_body = json_text
        .as_ref()
        .map(|j| format!("curl_setopt($ch, CURLOPT_POSTFIELDS, '{}');\n", j.replace('\'', "\\'")))
        .unwrap_or_default();
    let php = format!(
        "<?php\n$ch = curl_init('{url}');\ncurl_setopt($ch, CURLOPT_CUSTOMREQUEST, '{method}');\ncurl_setopt($ch, CURLOPT_HTTPHEADER, ['Authorization: Bearer {key}', 'Content-Type: application/json']);\n{php_body}curl_setopt($ch, CURLOPT_RETURNTRANSFER, true);\n$response = curl_exec($ch);\necho curl_getinfo($ch, CURLINFO_HTTP_CODE), ' ', $response;"
    );
    vec![
        ("cURL", "sh", curl),
        ("Python", "python", python),
        ("JavaScript", "javascript", js),
        ("PHP", "php", php),
    ]
}
