//! Puts the caller's tenant into the request extensions for the `/v1` handlers.

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;

use super::AppState;
use crate::resources::store::TenantId;

/// Test harness stand-in until the authentication stage fills the tenant: when the app was built
/// with `test_tenant_header`, `X-Test-Tenant: <slug>` selects the tenant. Production builds leave
/// it off, so a request without credentials reaches no tenant and is refused.
pub async fn resolve(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    if state.test_tenant_header
        && let Some(slug) = req.headers().get("x-test-tenant").and_then(|v| v.to_str().ok())
    {
        let row: Option<(String,)> = sqlx::query_as("SELECT id FROM tenants WHERE slug = $1")
            .bind(slug)
            .fetch_optional(&state.db.pool)
            .await
            .ok()
            .flatten();
        if let Some((id,)) = row {
            req.extensions_mut().insert(TenantId(id));
        }
    }
    next.run(req).await
}
