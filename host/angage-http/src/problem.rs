//! RFC 9457 problem details: the one error shape every HTTP response uses.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use angage_core::validate::FieldError;

/// An error answer. Boxed so `Result<T, Problem>` stays small on the happy path.
#[derive(Debug, Clone)]
pub struct Problem(Box<ProblemBody>);

/// An RFC 9457 problem: every error answer has this shape, with a stable machine-readable `code`.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = Problem, example = json!({"type":"/docs/problems#not_found","title":"Not Found","status":404,"code":"not_found","detail":"Customer CUST-99999 not found"}))]
pub struct ProblemBody {
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub code: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Per-field validation failures, when the request body was at fault.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
    /// Rhai errors with their line and column, for a rejected rule.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub script_errors: Vec<angage_rules::ScriptError>,
    /// The limit rule that set the limit a 429 hit (`tenants/demo@v3`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    #[serde(skip)]
    #[schema(ignore)]
    pub headers: Vec<(header::HeaderName, HeaderValue)>,
}

impl Problem {
    pub fn new(status: StatusCode, code: &str, detail: impl Into<String>) -> Self {
        Self(Box::new(ProblemBody {
            kind: format!("/docs/problems#{code}"),
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status: status.as_u16(),
            code: code.to_owned(),
            detail: Some(detail.into()),
            errors: Vec::new(),
            script_errors: Vec::new(),
            rule: None,
            headers: Vec::new(),
        }))
    }

    pub fn with_errors(mut self, errors: Vec<FieldError>) -> Self {
        self.0.errors = errors;
        self
    }

    pub fn with_script_errors(mut self, errors: Vec<angage_rules::ScriptError>) -> Self {
        self.0.script_errors = errors;
        self
    }

    pub fn with_rule(mut self, rule: Option<String>) -> Self {
        self.0.rule = rule;
        self
    }

    pub fn with_header(mut self, name: header::HeaderName, value: HeaderValue) -> Self {
        self.0.headers.push((name, value));
        self
    }

    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", detail)
    }

    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "An internal error occurred; it has been logged",
        )
    }

    pub fn too_large() -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "The request body is larger than this server accepts",
        )
    }

    pub fn unavailable(code: &str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, code, detail)
    }

    pub fn status(&self) -> StatusCode {
        StatusCode::from_u16(self.0.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = self.status();
        let problem = *self.0;
        let body = serde_json::to_vec(&problem).unwrap_or_default();
        let mut response = (status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
        for (name, value) in problem.headers {
            headers.append(name, value);
        }
        response.extensions_mut().insert(ProblemCode { code: problem.code, detail: problem.detail });
        response
    }
}

/// Every error answer is problem+json: a rejection axum makes itself (a path that is not UTF-8,
/// a method the route does not take) arrives as plain text and is rewritten here.
pub(crate) async fn problems_only(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let response = next.run(req).await;
    let status = response.status();
    let plain = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_none_or(|v| v.to_str().is_ok_and(|t| t.starts_with("text/plain")));
    if !(status.is_client_error() || status.is_server_error())
        || !plain
        || response.extensions().get::<ProblemCode>().is_some()
    {
        return response;
    }
    let (code, detail) = match status {
        StatusCode::METHOD_NOT_ALLOWED => ("method_not_allowed", "This route does not take that method"),
        StatusCode::NOT_FOUND => ("not_found", "No such route"),
        s if s.is_server_error() => ("internal_error", "An internal error occurred; it has been logged"),
        _ => ("bad_request", "The request could not be read (its path, query or headers)"),
    };
    let mut problem = Problem::new(status, code, detail);
    if let Some(allow) = response.headers().get(header::ALLOW) {
        problem = problem.with_header(header::ALLOW, allow.clone());
    }
    problem.into_response()
}

/// The `code` and `detail` of a problem response, kept in the response extensions for logs and
/// usage events.
#[derive(Debug, Clone)]
pub struct ProblemCode {
    pub code: String,
    pub detail: Option<String>,
}
