//! The admin API's own OpenAPI document, served at `/admin/v1/openapi.json`.

use std::sync::OnceLock;

use axum::response::Response;
use serde_json::Value;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{admins, auth, keys, oauth_clients, operator, requests, rules, tenant, usage, webhooks};
use crate::ProblemBody;

#[derive(OpenApi)]
#[openapi(
    info(title = "Angage admin API", version = "1.0.0",
         description = "Govern one tenant's API access: keys, default limits, security settings, admins and the audit log. \
                        Authenticate with the console's session cookie (send `X-CSRF-Token` on every change) or an admin \
                        token (`Authorization: Bearer aat_...`). An admin sees and changes only their own tenant. Roles: `owner` (everything, \
                        including admins), `admin` (everything but admins), `viewer` (reads only; a change is 403 \
                        `insufficient_role`). A token acts with the lower of its own role and its admin's. \
                        The `Operator` operations govern the whole cluster, not a tenant: they take only the \
                        operator token (`server.operator_token`) and are off while it is unset."),
    paths(
        auth::login, auth::logout, auth::me,
        keys::create, keys::list, keys::get, keys::update, keys::revoke, keys::rotate,
        tenant::get_settings, tenant::put_settings, tenant::audit, tenant::plugins,
        rules::get, rules::put, rules::validate, rules::dry_run, rules::versions, rules::rollback,
        usage::summary, usage::endpoints, usage::keys, usage::latency, usage::errors, usage::recent, usage::export, usage::chart,
        requests::list, requests::export,
        oauth_clients::create, oauth_clients::list, oauth_clients::get, oauth_clients::update, oauth_clients::rotate, oauth_clients::revoke,
        oauth_clients::pending, oauth_clients::approve, oauth_clients::deny,
        admins::list, admins::get, admins::create, admins::update, admins::delete, admins::reset_password,
        admins::list_tokens, admins::create_token, admins::revoke_token,
        webhooks::event_types, webhooks::create, webhooks::list, webhooks::get, webhooks::update, webhooks::delete,
        webhooks::rotate, webhooks::test, webhooks::list_deliveries, webhooks::get_delivery, webhooks::redeliver,
        operator::list, operator::install, operator::rollback,
    ),
    components(schemas(ProblemBody)),
    modifiers(&Security),
)]
struct AdminDoc;

struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "admin_token",
            SecurityScheme::Http(
                HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("aat_...").build(),
            ),
        );
        components.add_security_scheme(
            "operator_token",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        components.add_security_scheme(
            "session_cookie",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::new(angage_store::admins::sessions::COOKIE))),
        );
        openapi.security = Some(vec![
            utoipa::openapi::security::SecurityRequirement::new("admin_token", Vec::<String>::new()),
            utoipa::openapi::security::SecurityRequirement::new("session_cookie", Vec::<String>::new()),
        ]);
    }
}

pub fn document() -> &'static Value {
    static DOC: OnceLock<Value> = OnceLock::new();
    DOC.get_or_init(|| serde_json::to_value(AdminDoc::openapi()).unwrap_or(Value::Null))
}

pub async fn serve() -> Response {
    static TEXT: OnceLock<String> = OnceLock::new();
    crate::docs::json_document(TEXT.get_or_init(|| document().to_string()))
}
