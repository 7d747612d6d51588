//! `/docs`: interactive API documentation served from assets embedded in the binary (no CDN),
//! and `/v1/openapi.json`.

use axum::http::header;
use axum::response::{Html, IntoResponse, Response};

use super::v1::openapi;

const SWAGGER_JS: &[u8] = include_bytes!("../assets/vendor/swagger-ui/swagger-ui-bundle.js");
const SWAGGER_CSS: &[u8] = include_bytes!("../assets/vendor/swagger-ui/swagger-ui.css");

pub(crate) async fn openapi_json() -> Response {
    json_document(openapi::document_text())
}

/// A static JSON document (the OpenAPI files).
pub(crate) fn json_document(text: &'static str) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], text).into_response()
}

pub(crate) async fn page() -> Html<&'static str> {
    Html(
        r##"<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>Angage API documentation</title>
  <link rel="stylesheet" href="/docs/assets/swagger-ui.css">
  <style>body{margin:0} .topbar{display:none}</style>
</head>
<body>
  <div id="docs"></div>
  <script src="/docs/assets/swagger-ui-bundle.js"></script>
  <script>
    window.ui = SwaggerUIBundle({
      url: "/v1/openapi.json",
      dom_id: "#docs",
      deepLinking: true,
      persistAuthorization: false,
      tryItOutEnabled: true
    });
  </script>
</body>
</html>"##,
    )
}

const CACHE: &str = "public, max-age=86400";

pub(crate) async fn swagger_js() -> Response {
    ([(header::CONTENT_TYPE, "application/javascript"), (header::CACHE_CONTROL, CACHE)], SWAGGER_JS)
        .into_response()
}

pub(crate) async fn swagger_css() -> Response {
    ([(header::CONTENT_TYPE, "text/css"), (header::CACHE_CONTROL, CACHE)], SWAGGER_CSS).into_response()
}
