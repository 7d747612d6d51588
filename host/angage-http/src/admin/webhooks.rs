//! `/admin/v1/webhooks`: endpoints (create, list, show, change, delete, rotate the secret), test
//! sends, the delivery log and redelivery.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use super::Admin;
use crate::v1::extract::{JsonBody, QueryMap, invalid};
use crate::{AppState, Problem, ProblemBody};
use angage_store::keys::Grace;
use angage_store::resources::store::Page;
use angage_store::webhooks::EVENT_TYPES;
use angage_store::webhooks::deliveries::{self, Delivery, DeliveryDetail};
use angage_store::webhooks::endpoints::{self, Endpoint, EndpointUpdate, EndpointWithSecret, NewEndpoint};

/// One event type of the catalogue.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct EventType {
    #[schema(example = "order.created")]
    pub r#type: &'static str,
    pub description: &'static str,
}

/// The event types an endpoint may subscribe to.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct EventTypes {
    pub data: Vec<EventType>,
}

/// List event types
///
/// Every type an endpoint may subscribe to (`webhook.test` is sent only on request). The payload
/// of each is in the `/v1` OpenAPI document's `webhooks` section.
#[utoipa::path(get, path = "/admin/v1/webhooks/event-types", tag = "Webhooks", operation_id = "listWebhookEventTypes",
    responses((status = 200, description = "The catalogue", body = EventTypes)))]
pub(super) async fn event_types(Admin(_): Admin) -> Json<EventTypes> {
    Json(EventTypes {
        data: EVENT_TYPES.iter().map(|(t, d)| EventType { r#type: t, description: d }).collect(),
    })
}

/// Create an endpoint
///
/// The response carries the signing secret in `secret`: it is shown this once.
#[utoipa::path(post, path = "/admin/v1/webhooks", tag = "Webhooks", operation_id = "createWebhookEndpoint", request_body = NewEndpoint,
    responses((status = 201, description = "Created", body = EndpointWithSecret), (status = "4XX", description = "Problem", body = ProblemBody, content_type = "application/problem+json")))]
pub(super) async fn create(
    State(state): State<AppState>,
    Admin(admin): Admin,
    JsonBody(body): JsonBody,
) -> Result<Response, Problem> {
    let new = NewEndpoint::parse(&body, &state.settings.webhooks).map_err(invalid)?;
    let created =
        endpoints::create(&state.db, &state.sealer, &admin.tenant, new, state.clock.now_ms()).await?;
    Ok((StatusCode::CREATED, Json(created)).into_response())
}

/// List endpoints
#[utoipa::path(get, path = "/admin/v1/webhooks", tag = "Webhooks", operation_id = "listWebhookEndpoints",
    params(("limit" = Option<i64>, Query), ("starting_after" = Option<String>, Query)),
    responses((status = 200, description = "Endpoints, newest first; never their secrets", body = Page<Endpoint>), (status = "4XX", description = "Problem", body = ProblemBody, content_type = "application/problem+json")))]
pub(super) async fn list(
    State(state): State<AppState>,
    Admin(admin): Admin,
    query: QueryMap,
) -> Result<Json<Page<Endpoint>>, Problem> {
    let params = query.list_params(&[])?;
    Ok(Json(endpoints::list(&state.db, &admin.tenant, &params, state.clock.now_ms()).await?))
}

/// Show an endpoint
#[utoipa::path(get, path = "/admin/v1/webhooks/{id}", tag = "Webhooks", operation_id = "getWebhookEndpoint", params(("id" = String, Path)),
    responses((status = 200, description = "The endpoint", body = Endpoint), (status = "4XX", description = "Problem", body = ProblemBody, content_type = "application/problem+json")))]
pub(super) async fn get(
    State(state): State<AppState>,
    Admin(admin): Admin,
    Path(id): Path<String>,
) -> Result<Json<Endpoint>, Problem> {
    Ok(Json(endpoints::get(&state.db, &admin.tenant, &id, state.clock.now_ms()).await?))
}

/// Change an endpoint
///
/// URL, description, event types, or `enabled` (enabling an endpoint the platform disabled
/// clears why, and its deliveries still pending go out again).
#[utoipa::path(put, path = "/admin/v1/webhooks/{id}", tag = "Webhooks", operation_id = "updateWebhookEndpoint", params(("id" = String, Path)), request_body = EndpointUpdate,
    responses((status = 200, description = "The changed endpoint", body = Endpoint), (status = "4XX", description = "Problem", body = ProblemBody, content_type = "application/problem+json")))]
pub(super) async fn update(
    State(state): State<AppState>,
    Admin(admin): Admin,
    Path(id): Path<String>,
    JsonBody(body): JsonBody,
) -> Result<Json<Endpoint>, Problem> {
    let change = EndpointUpdate::parse(&body, &state.settings.webhooks).map_err(invalid)?;
    Ok(Json(endpoints::update(&state.db, &admin.tenant, &id, change, state.clock.now_ms()).await?))
}

/// Delete an endpoint
///
/// With its deliveries; nothing more is sent to it.
#[utoipa::path(delete, path = "/admin/v1/webhooks/{id}", tag = "Webhooks", operation_id = "deleteWebhookEndpoint", params(("id" = String, Path)),
    responses((status = 204, description = "Deleted"), (status = "4XX", description = "Problem", body = ProblemBody, content_type = "application/problem+json")))]
pub(super) async fn delete(
    State(state): State<AppState>,
    Admin(admin): Admin,
    Path(id): Path<String>,
) -> Result<StatusCode, Problem> {
    endpoints::delete(&state.db, &admin.tenant, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Body of a secret rotation (its OpenAPI schema; parsing goes through `Input`).
#[derive(Debug, ToSchema)]
#[expect(dead_code, reason = "the OpenAPI schema of the body")]
#[schema(example = json!({"grace": "24h"}))]
pub(super) struct RotateSecret {
    /// How long the old secret keeps signing too: `now`, `1h`, `24h` or `7d` (default `24h`).
    pub grace: Option<Grace>,
}

/// Rotate the signing secret
///
/// A new secret (shown once). During the grace every delivery carries two signatures, one per
/// secret, so receivers can switch without missing one.
#[utoipa::path(post, path = "/admin/v1/webhooks/{id}/rotate-secret", tag = "Webhooks", operation_id = "rotateWebhookSecret", params(("id" = String, Path)), request_body = RotateSecret,
    responses((status = 201, description = "The endpoint and its new secret", body = EndpointWithSecret), (status = "4XX", description = "Problem", body = ProblemBody, content_type = "application/problem+json")))]
pub(super) async fn rotate(
    State(state): State<AppState>,
    Admin(admin): Admin,
    Path(id): Path<String>,
    JsonBody(body): JsonBody,
) -> Result<Response, Problem> {
    let grace = super::keys::grace_of(&body)?;
    let rotated =
        endpoints::rotate(&state.db, &state.sealer, &admin.tenant, &id, grace.millis(), state.clock.now_ms())
            .await?;
    Ok((StatusCode::CREATED, Json(rotated)).into_response())
}

/// Send a test event
///
/// Queues a `webhook.test` event for this endpoint alone; the delivery log shows how it went.
#[utoipa::path(post, path = "/admin/v1/webhooks/{id}/test", tag = "Webhooks", operation_id = "testWebhookEndpoint", params(("id" = String, Path)),
    responses((status = 202, description = "Queued", body = Delivery), (status = "4XX", description = "Problem", body = ProblemBody, content_type = "application/problem+json")))]
pub(super) async fn test(
    State(state): State<AppState>,
    Admin(admin): Admin,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    let delivery = deliveries::send_test(&state.db, &admin.tenant, &id, state.clock.now_ms()).await?;
    Ok((StatusCode::ACCEPTED, Json(delivery)).into_response())
}

/// List deliveries
///
/// Newest first, each with its last attempt: HTTP status, latency, the start of the answer.
#[utoipa::path(get, path = "/admin/v1/webhooks/{id}/deliveries", tag = "Webhooks", operation_id = "listWebhookDeliveries",
    params(("id" = String, Path), ("state" = Option<String>, Query, description = "pending, delivered or failed"), ("limit" = Option<i64>, Query), ("starting_after" = Option<String>, Query)),
    responses((status = 200, description = "Deliveries", body = Page<Delivery>), (status = "4XX", description = "Problem", body = ProblemBody, content_type = "application/problem+json")))]
pub(super) async fn list_deliveries(
    State(state): State<AppState>,
    Admin(admin): Admin,
    Path(id): Path<String>,
    query: QueryMap,
) -> Result<Json<Page<Delivery>>, Problem> {
    let params = query.list_params(&["state"])?;
    let wanted = query.get("state");
    if let Some(s) = &wanted
        && !deliveries::STATES.contains(&s.as_str())
    {
        return Err(Problem::new(
            StatusCode::BAD_REQUEST,
            "invalid_query",
            "state must be pending, delivered or failed",
        ));
    }
    Ok(Json(deliveries::list(&state.db, &admin.tenant, &id, wanted.as_deref(), &params).await?))
}

/// Show a delivery
///
/// With every attempt, oldest first.
#[utoipa::path(get, path = "/admin/v1/webhooks/{id}/deliveries/{delivery}", tag = "Webhooks", operation_id = "getWebhookDelivery",
    params(("id" = String, Path), ("delivery" = String, Path)),
    responses((status = 200, description = "The delivery", body = DeliveryDetail), (status = "4XX", description = "Problem", body = ProblemBody, content_type = "application/problem+json")))]
pub(super) async fn get_delivery(
    State(state): State<AppState>,
    Admin(admin): Admin,
    Path((id, delivery)): Path<(String, String)>,
) -> Result<Json<DeliveryDetail>, Problem> {
    Ok(Json(deliveries::get(&state.db, &admin.tenant, &id, &delivery).await?))
}

/// Redeliver
///
/// Sends the delivery's event again as a new delivery, with the same `webhook-id`.
#[utoipa::path(post, path = "/admin/v1/webhooks/{id}/deliveries/{delivery}/redeliver", tag = "Webhooks", operation_id = "redeliverWebhook",
    params(("id" = String, Path), ("delivery" = String, Path)),
    responses((status = 202, description = "Queued", body = Delivery), (status = "4XX", description = "Problem", body = ProblemBody, content_type = "application/problem+json")))]
pub(super) async fn redeliver(
    State(state): State<AppState>,
    Admin(admin): Admin,
    Path((id, delivery)): Path<(String, String)>,
) -> Result<Response, Problem> {
    let again = deliveries::redeliver(&state.db, &admin.tenant, &id, &delivery, state.clock.now_ms()).await?;
    Ok((StatusCode::ACCEPTED, Json(again)).into_response())
}
