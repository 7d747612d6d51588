//! `/admin/v1/rules`: the tenant's rhai limit rule, edited live, validated, dry-run, versioned.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;

use super::Admin;
use crate::v1::extract::{JsonBody, invalid};
use crate::{AppState, Problem, ProblemBody};
use angage_core::limits::Limits;
use angage_core::validate::{Errors, Input, Need};
use angage_rules::{
    Allowance, Evaluated, RuleError, RuleKey, RuleProblem, RuleRequest, RuleScope, RuleVersion, ScriptError,
};
use angage_store::resources::store::ResourceError;
use angage_store::tenants::audit;

/// The serving rule and the last rejected edit.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct RuleState {
    /// The serving script; null when the tenant has none.
    pub script: Option<String>,
    pub version: Option<i64>,
    pub updated_by: Option<String>,
    pub updated_at: Option<String>,
    /// The file this script lives in, relative to `policies.dir`.
    pub file: String,
    /// The last edit that was rejected (the serving version stayed).
    pub last_error: Option<RuleProblem>,
}

/// Whether a draft compiles and passes the sample dry run.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct Validation {
    pub valid: bool,
    pub errors: Vec<ScriptError>,
}

async fn scope(state: &AppState, admin: &angage_store::admins::AdminCtx) -> Result<RuleScope, Problem> {
    let tenant = angage_store::tenants::by_id(&state.db, &admin.tenant.0).await.map_err(|e| {
        tracing::error!(error = %e, "tenant of an admin");
        Problem::internal()
    })?;
    Ok(RuleScope::Tenant { id: tenant.id, slug: tenant.slug })
}

fn problem(e: RuleError) -> Problem {
    match e {
        RuleError::Rejected(errors) => {
            let detail = errors.first().map(ToString::to_string).unwrap_or_default();
            Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_rule",
                format!("The rule was not accepted: {detail}"),
            )
            .with_script_errors(errors)
        }
        RuleError::NoVersion(v) => Problem::not_found(format!("Rule version {v} not found")),
        RuleError::Db(e) => Problem::from(ResourceError::Db(e)),
        RuleError::File(e) => {
            tracing::error!(error = %e, "writing a rule file");
            Problem::internal()
        }
    }
}

fn script_of(body: &serde_json::Value, need: Need) -> Result<Option<String>, Problem> {
    let mut e = Errors::default();
    let Some(input) = Input::root(body, &mut e) else { return Err(invalid(e.0)) };
    input.known(&["script", "request", "key", "limits", "version"], &mut e);
    let script = input.text("script", need, 64 * 1024, &mut e);
    if e.is_empty() { Ok(script) } else { Err(invalid(e.0)) }
}

/// The tenant's rule
#[utoipa::path(get, path = "/admin/v1/rules", tag = "Rules", operation_id = "getRule",
    responses((status = 200, description = "The serving rule", body = RuleState), (status = "4XX", description = "Problem", body = ProblemBody, content_type = "application/problem+json")))]
pub(super) async fn get(
    State(state): State<AppState>,
    Admin(admin): Admin,
) -> Result<Json<RuleState>, Problem> {
    let scope = scope(&state, &admin).await?;
    let current = state.rules.current(&scope).await.map_err(problem)?;
    Ok(Json(RuleState {
        script: current.as_ref().map(|c| c.body.clone()),
        version: current.as_ref().map(|c| c.version),
        updated_by: current.as_ref().map(|c| c.created_by.clone()),
        updated_at: current.map(|c| c.created_at),
        file: scope.file().display().to_string(),
        last_error: state.rules.problem(&scope),
    }))
}

/// Replace the tenant's rule
///
/// The script must compile and pass a dry run; otherwise 422 `invalid_rule` with each error's
/// line and column, and the serving version stays. Accepted scripts become a new version and are
/// written to the rule file.
#[utoipa::path(put, path = "/admin/v1/rules", tag = "Rules", operation_id = "putRule",
    responses((status = 200, description = "The new version", body = RuleVersion), (status = "4XX", description = "Problem", body = ProblemBody, content_type = "application/problem+json")))]
pub(super) async fn put(
    State(state): State<AppState>,
    Admin(admin): Admin,
    JsonBody(body): JsonBody,
) -> Result<Json<RuleVersion>, Problem> {
    let script = script_of(&body, Need::Required)?.unwrap_or_default();
    let scope = scope(&state, &admin).await?;
    let now = state.clock.now_ms();
    let version = state.rules.save(&scope, &script, &admin.email, None, now).await.map_err(problem)?;
    audit_change(&state, &admin, "rule.updated", json!({"version": version.version}), now).await;
    Ok(Json(version))
}

/// Check a draft
#[utoipa::path(post, path = "/admin/v1/rules/validate", tag = "Rules", operation_id = "validateRule",
    responses((status = 200, description = "Compile and dry-run result", body = Validation), (status = "4XX", description = "Problem", body = ProblemBody, content_type = "application/problem+json")))]
pub(super) async fn validate(
    State(state): State<AppState>,
    Admin(_): Admin,
    JsonBody(body): JsonBody,
) -> Result<Json<Validation>, Problem> {
    let script = script_of(&body, Need::Required)?.unwrap_or_default();
    let errors = state.rules.validate(&script);
    Ok(Json(Validation { valid: errors.is_empty(), errors }))
}

/// Dry-run a draft (or the serving rule) against a sample request and key
///
/// `request` takes `method`, `route` and `time` (RFC 3339); `key` takes `name` and
/// `environment`; `limits` the key's limits before the rule. Returns the limits and cost the
/// rule yields.
#[utoipa::path(post, path = "/admin/v1/rules/dry-run", tag = "Rules", operation_id = "dryRunRule",
    responses((status = 200, description = "What the rule yields", body = Evaluated), (status = "4XX", description = "Problem", body = ProblemBody, content_type = "application/problem+json")))]
pub(super) async fn dry_run(
    State(state): State<AppState>,
    Admin(admin): Admin,
    JsonBody(body): JsonBody,
) -> Result<Json<Evaluated>, Problem> {
    let scope = scope(&state, &admin).await?;
    let script = match script_of(&body, Need::Optional)? {
        Some(s) => s,
        None => state.rules.current(&scope).await.map_err(problem)?.map(|c| c.body).ok_or_else(|| {
            Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "no_rule",
                "Send `script`: this tenant has no rule yet",
            )
        })?,
    };
    let (request, key, limits) = sample(&state, &admin, &body).await?;
    match state.rules.dry_run(&script, request, key, limits) {
        Ok(limits) => Ok(Json(Evaluated { limits, rule: Some("draft".into()) })),
        Err(e) => Err(problem(RuleError::Rejected(vec![e]))),
    }
}

async fn sample(
    state: &AppState,
    admin: &angage_store::admins::AdminCtx,
    body: &serde_json::Value,
) -> Result<(RuleRequest, RuleKey, Allowance), Problem> {
    let mut e = Errors::default();
    let mut request = angage_rules::sample_request();
    let mut key = angage_rules::sample_key();
    let mut limits = angage_rules::sample_limits();
    let mut conn = state.db.conn().await.map_err(ResourceError::Db)?;
    let settings =
        angage_store::tenants::settings::get(&mut conn, &admin.tenant).await.map_err(ResourceError::Db)?;
    request.timezone = settings.timezone.as_str().into();
    request.time_ms = state.clock.now_ms();
    if let Some(input) = Input::root(body, &mut e) {
        if let Some((method, route, time)) = input.object("request", Need::Optional, &mut e, |i, e| {
            i.known(&["method", "route", "time"], e);
            (
                i.choice("method", Need::Optional, &["GET", "POST", "PUT", "DELETE"], e),
                i.string("route", Need::Optional, 1, 200, e),
                i.string_with(
                    "time",
                    Need::Optional,
                    40,
                    "an RFC 3339 timestamp",
                    |s| angage_core::clock::parse_rfc3339(s).is_some(),
                    e,
                ),
            )
        }) {
            if let Some(m) = method {
                request.operation = if m == "GET" { "read".into() } else { "write".into() };
                request.method = m.into();
            }
            if let Some(r) = route {
                request.module = r.split('/').nth(2).unwrap_or("").into();
                request.path = r.as_str().into();
                request.route = r.into();
            }
            if let Some(t) = time.as_deref().and_then(angage_core::clock::parse_rfc3339) {
                request.time_ms = t;
            }
        }
        if let Some((name, environment)) = input.object("key", Need::Optional, &mut e, |i, e| {
            i.known(&["name", "environment"], e);
            (
                i.string("name", Need::Optional, 1, 100, e),
                i.choice("environment", Need::Optional, &["live", "test"], e),
            )
        }) {
            if let Some(name) = name {
                key.name = name.into();
            }
            if let Some(environment) = environment {
                key.environment = environment.into();
            }
        }
        if let Some(l) = input.object("limits", Need::Optional, &mut e, Limits::parse) {
            limits = Allowance::new(l.over(limits.limits));
        }
    }
    if e.is_empty() { Ok((request, key, limits)) } else { Err(invalid(e.0)) }
}

/// Version history
#[utoipa::path(get, path = "/admin/v1/rules/versions", tag = "Rules", operation_id = "listRuleVersions",
    responses((status = 200, description = "Every accepted version, newest first", body = Vec<RuleVersion>), (status = "4XX", description = "Problem", body = ProblemBody, content_type = "application/problem+json")))]
pub(super) async fn versions(
    State(state): State<AppState>,
    Admin(admin): Admin,
) -> Result<Json<Vec<RuleVersion>>, Problem> {
    let scope = scope(&state, &admin).await?;
    Ok(Json(state.rules.versions(&scope).await.map_err(problem)?))
}

/// Roll back
///
/// Makes an earlier version serve again, as a new version.
#[utoipa::path(post, path = "/admin/v1/rules/rollback", tag = "Rules", operation_id = "rollbackRule",
    responses((status = 200, description = "The new version", body = RuleVersion), (status = "4XX", description = "Problem", body = ProblemBody, content_type = "application/problem+json")))]
pub(super) async fn rollback(
    State(state): State<AppState>,
    Admin(admin): Admin,
    JsonBody(body): JsonBody,
) -> Result<Json<RuleVersion>, Problem> {
    let mut e = Errors::default();
    let Some(input) = Input::root(&body, &mut e) else { return Err(invalid(e.0)) };
    input.known(&["version"], &mut e);
    let version = input.int("version", Need::Required, 1, i64::MAX, &mut e);
    let Some(version) = version.filter(|_| e.is_empty()) else { return Err(invalid(e.0)) };
    let scope = scope(&state, &admin).await?;
    let now = state.clock.now_ms();
    let v = state.rules.rollback(&scope, version, &admin.email, now).await.map_err(problem)?;
    audit_change(&state, &admin, "rule.rolled_back", json!({"to": version, "version": v.version}), now).await;
    Ok(Json(v))
}

async fn audit_change(
    state: &AppState,
    admin: &angage_store::admins::AdminCtx,
    action: &str,
    changes: serde_json::Value,
    now: i64,
) {
    if let Ok(mut conn) = state.db.conn().await
        && let Err(e) = audit::record(
            &mut conn,
            &admin.tenant,
            &admin.email,
            action,
            ("rule", &admin.tenant.0),
            &changes,
            now,
        )
        .await
    {
        tracing::warn!(error = %e, "cannot audit a rule change");
    }
}
