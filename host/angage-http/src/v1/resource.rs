//! The `/v1` handlers, written once for every resource: each resource says what its store
//! calls are (`Create`, `Read`, `Update`, `Delete`) and the generic handlers here do the HTTP:
//! extract, parse, call, answer with the status, `Location` and `ETag` a client expects.

use std::future::Future;

use angage_core::tenant::TenantId;
use angage_core::validate::FieldError;
use angage_store::db::Db;
use angage_store::resources::store::{ListParams, Page, ResourceError};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::Value;

use super::extract::{JsonBody, QueryMap, Tenant, created, expected_version, invalid, single, updated};
use crate::{AppState, Problem};

type Result<T> = std::result::Result<T, ResourceError>;

/// A `/v1` resource: the items its handlers answer with.
pub(crate) trait Resource: Send + Sync + 'static {
    type Item: Serialize + Send + Sync;
    /// The collection, e.g. `/v1/customers`.
    const PATH: &'static str;
    fn version(item: &Self::Item) -> i64;
}

/// `POST` to the collection.
pub(crate) trait Create: Resource {
    type New: Send;
    fn parse_new(body: &Value) -> std::result::Result<Self::New, Vec<FieldError>>;
    fn id(item: &Self::Item) -> &str;
    fn create(
        db: &Db,
        tenant: &TenantId,
        new: Self::New,
        now: i64,
    ) -> impl Future<Output = Result<Self::Item>> + Send;
}

/// `GET` of one item and of the collection.
pub(crate) trait Read: Resource {
    /// The query parameters a list takes besides paging and creation times.
    const FILTERS: &'static [&'static str];
    fn get(db: &Db, tenant: &TenantId, reference: &str) -> impl Future<Output = Result<Self::Item>> + Send;
    fn list(
        db: &Db,
        tenant: &TenantId,
        query: &QueryMap,
        params: &ListParams,
    ) -> impl Future<Output = Result<Page<Self::Item>>> + Send;
}

/// `PUT` of one item.
pub(crate) trait Update: Resource {
    type Change: Send;
    fn parse_change(body: &Value) -> std::result::Result<Self::Change, Vec<FieldError>>;
    fn update(
        db: &Db,
        tenant: &TenantId,
        reference: &str,
        change: Self::Change,
        if_match: Option<i64>,
        now: i64,
    ) -> impl Future<Output = Result<Self::Item>> + Send;
}

/// `DELETE` of one item.
pub(crate) trait Delete: Resource {
    fn delete(
        db: &Db,
        tenant: &TenantId,
        reference: &str,
        if_match: Option<i64>,
        now: i64,
    ) -> impl Future<Output = Result<()>> + Send;
}

pub(crate) async fn create<R: Create>(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    JsonBody(body): JsonBody,
) -> std::result::Result<Response, Problem> {
    let new = R::parse_new(&body).map_err(invalid)?;
    let item = R::create(&state.db, &tenant, new, state.clock.now_ms()).await?;
    Ok(created(&format!("{}/{}", R::PATH, R::id(&item)), R::version(&item), &item))
}

pub(crate) async fn list<R: Read>(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    query: QueryMap,
) -> std::result::Result<Response, Problem> {
    let params = query.list_params(R::FILTERS)?;
    let page = R::list(&state.db, &tenant, &query, &params).await?;
    Ok(axum::Json(page).into_response())
}

/// An item's id or code from the path; text the store could never hold is refused here.
fn reference(Path(reference): Path<String>) -> std::result::Result<String, Problem> {
    if reference.contains('\0') {
        let e = FieldError { field: "id".into(), message: "must not contain NUL characters".into() };
        return Err(invalid(vec![e]));
    }
    Ok(reference)
}

pub(crate) async fn get<R: Read>(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    path: Path<String>,
    headers: HeaderMap,
) -> std::result::Result<Response, Problem> {
    let reference = reference(path)?;
    let item = R::get(&state.db, &tenant, &reference).await?;
    Ok(single(&headers, R::version(&item), &item))
}

pub(crate) async fn update<R: Update>(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    path: Path<String>,
    headers: HeaderMap,
    JsonBody(body): JsonBody,
) -> std::result::Result<Response, Problem> {
    let reference = reference(path)?;
    let change = R::parse_change(&body).map_err(invalid)?;
    let if_match = expected_version(&headers);
    let item = R::update(&state.db, &tenant, &reference, change, if_match, state.clock.now_ms()).await?;
    Ok(updated(R::version(&item), &item))
}

pub(crate) async fn delete<R: Delete>(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    path: Path<String>,
    headers: HeaderMap,
) -> std::result::Result<StatusCode, Problem> {
    let reference = reference(path)?;
    R::delete(&state.db, &tenant, &reference, expected_version(&headers), state.clock.now_ms()).await?;
    Ok(StatusCode::NO_CONTENT)
}
