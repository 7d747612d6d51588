//! The `webhooks` section of the `/v1` OpenAPI 3.1 document: one entry per event type, its
//! payload schema (the resource as `/v1` returns it) and a sample built from that schema, and
//! the receiver's guide (headers, retries, signature checks in four languages, the tested files
//! of `docs/webhooks/`).

use serde_json::{Map, Value, json};

use angage_store::webhooks::{EVENT_TYPES, TEST_EVENT};

const VERIFY_PY: &str = include_str!("../../../../docs/webhooks/verify.py");
const VERIFY_JS: &str = include_str!("../../../../docs/webhooks/verify.js");
const VERIFY_PHP: &str = include_str!("../../../../docs/webhooks/verify.php");
const VERIFY_RS: &str = include_str!("../../../../docs/webhooks/verify.rs");

/// The schema an event's `data.object` has.
fn object_schema(kind: &str) -> Value {
    let name = match kind.split('.').next() {
        Some("customer") => "Customer",
        Some("product") => "Product",
        Some("order") => "Order",
        Some("invoice") => "Invoice",
        Some("payment") => "Payment",
        Some("inventory") => "InventoryItem",
        Some("api_key") => "KeyView",
        _ => {
            return json!({"type": "object", "properties": {
                "object": {"type": "string", "example": "webhook_test"},
                "endpoint_id": {"type": "string", "example": "we_abc123def456"},
                "message": {"type": "string", "example": "A test event: this endpoint receives and verifies Angage webhooks."}
            }});
        }
    };
    json!({"$ref": format!("#/components/schemas/{name}")})
}

/// A sample value of a schema, from its examples where it has them.
fn sample(schema: &Value, schemas: &Value, depth: usize) -> Value {
    if depth > 6 {
        return Value::Null;
    }
    if let Some(example) = schema.get("example") {
        return example.clone();
    }
    if let Some(name) = schema.get("$ref").and_then(Value::as_str).and_then(|r| r.rsplit('/').next()) {
        return schemas.get(name).map_or(Value::Null, |s| sample(s, schemas, depth + 1));
    }
    for key in ["oneOf", "anyOf", "allOf"] {
        if let Some(first) = schema
            .get(key)
            .and_then(Value::as_array)
            .and_then(|a| a.iter().find(|s| s.get("type").and_then(Value::as_str) != Some("null")))
        {
            return sample(first, schemas, depth + 1);
        }
    }
    let kind = match schema.get("type") {
        Some(Value::Array(kinds)) => kinds.iter().filter_map(Value::as_str).find(|k| *k != "null"),
        Some(Value::String(k)) => Some(k.as_str()),
        _ => None,
    };
    match kind {
        Some("object") => {
            let props = schema.get("properties").and_then(Value::as_object);
            let out: Map<String, Value> = props
                .into_iter()
                .flatten()
                .map(|(k, v)| (k.clone(), sample(v, schemas, depth + 1)))
                .collect();
            Value::Object(out)
        }
        Some("array") => match schema.get("items") {
            Some(items) => json!([sample(items, schemas, depth + 1)]),
            None => json!([]),
        },
        Some("integer") => json!(0),
        Some("number") => json!(0.0),
        Some("boolean") => json!(false),
        Some("string") if schema.get("format").and_then(Value::as_str) == Some("date-time") => {
            json!("2026-11-26T09:17:48.123Z")
        }
        Some("string") => json!("string"),
        _ => Value::Null,
    }
}

fn headers() -> Value {
    json!([
        {"name": "webhook-id", "in": "header", "required": true, "schema": {"type": "string", "example": "evt_abc123def456"},
         "description": "The event's id: the same on every attempt and redelivery. De-duplicate on it."},
        {"name": "webhook-timestamp", "in": "header", "required": true, "schema": {"type": "string", "example": "1795000000"},
         "description": "When this attempt was signed, in Unix seconds. Refuse a delivery far from your clock (5 minutes)."},
        {"name": "webhook-signature", "in": "header", "required": true,
         "schema": {"type": "string", "example": "v1,K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2pj9o9NDN/H/pI4="},
         "description": "`v1,` + base64 HMAC-SHA256 of `{webhook-id}.{webhook-timestamp}.{body}` keyed with the base64-decoded \
                         part of the endpoint's secret after `whsec_`; two space-separated signatures while a rotated-out \
                         secret is in its grace."}
    ])
}

/// Adds the `webhooks` section and the receiver's guide to the document.
pub(super) fn add(doc: &mut Value) {
    let schemas = doc.pointer("/components/schemas").cloned().unwrap_or(Value::Null);
    let mut hooks = Map::new();
    let all = EVENT_TYPES
        .iter()
        .copied()
        .chain([(TEST_EVENT, "Sent on request from the console or the admin API.")]);
    for (kind, description) in all {
        let object = object_schema(kind);
        let example = json!({
            "id": "evt_abc123def456",
            "type": kind,
            "created_at": "2026-11-26T09:17:48.123Z",
            "tenant": "demo",
            "data": {"object": sample(&object, &schemas, 0)},
        });
        let body = json!({
            "type": "object",
            "required": ["id", "type", "created_at", "tenant", "data"],
            "properties": {
                "id": {"type": "string", "description": "The event id, also in `webhook-id`"},
                "type": {"type": "string", "enum": [kind]},
                "created_at": {"type": "string", "format": "date-time"},
                "tenant": {"type": "string", "description": "The tenant's slug"},
                "data": {"type": "object", "required": ["object"], "properties": {"object": object}},
            },
        });
        hooks.insert(
            kind.to_owned(),
            json!({"post": {
                "operationId": format!("webhook_{}", kind.replace('.', "_")),
                "summary": kind,
                "description": description,
                "tags": ["Webhooks"],
                "parameters": headers(),
                "requestBody": {"required": true, "content": {"application/json": {"schema": body, "example": example}}},
                "responses": {
                    "2XX": {"description": "Received. Any other answer is retried (about 5 s, 30 s, 2 min, 10 min, 1 h, 6 h, 24 h)."},
                    "410": {"description": "Gone: the endpoint is disabled at once."}
                }
            }}),
        );
    }
    doc["webhooks"] = Value::Object(hooks);
    if let Some(tags) = doc.get_mut("tags").and_then(Value::as_array_mut) {
        tags.push(json!({"name": "Webhooks", "description": guide()}));
    }
    if let Some(info) = doc.get_mut("info") {
        let described = info.get("description").and_then(Value::as_str).unwrap_or("").to_owned();
        info["description"] = Value::String(format!("{described}\n\n{}", guide()));
    }
}

fn guide() -> String {
    format!(
        "## Webhooks\n\nAdd endpoints in the console (API Settings → Webhooks), with `POST /admin/v1/webhooks` or \
         `angage webhooks create`. Each event is a `POST` with a JSON body `{{id, type, created_at, tenant, data: {{object}}}}` \
         where `object` is the resource as `/v1` returns it (the catalogue is under **Webhooks** below). Deliveries are \
         at-least-once: de-duplicate on `webhook-id`. Answer 2xx within 10 seconds; anything else is retried about 5 s, \
         30 s, 2 min, 10 min, 1 h, 6 h and 24 h later, then the delivery fails; 410 Gone disables the endpoint at once, \
         and an endpoint failing for three days straight is disabled. Redirects are not followed.\n\n\
         ### Verifying a delivery\n\nCheck `webhook-signature` against the raw body before parsing it. These are the \
         tested files of `docs/webhooks/`.\n\n**Python**\n\n```python\n{VERIFY_PY}```\n\n**JavaScript (Node)**\n\n\
         ```javascript\n{VERIFY_JS}```\n\n**PHP**\n\n```php\n{VERIFY_PHP}```\n\n**Rust** (hmac 0.12, sha2 0.10, base64 0.22)\n\n\
         ```rust\n{VERIFY_RS}```"
    )
}
