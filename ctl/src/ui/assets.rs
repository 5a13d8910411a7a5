//! The dashboard's stylesheet and script, compiled into labctl (`include_str!`): no build step,
//! nothing fetched from elsewhere. Their URLs carry the labctl version, so a browser may keep
//! them for an hour without ever mixing two versions.

use axum::extract::Path;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

/// Light and dark colours (from `prefers-color-scheme`), layout for laptop and phone.
const CSS: &str = include_str!("assets/ui.css");
/// Relative times, confirmations, the node and fact filters and the job page's live stream.
const JS: &str = include_str!("assets/ui.js");

/// `GET /assets/{file}`.
pub async fn get(Path(file): Path<String>) -> Response {
    let (body, kind) = match file.as_str() {
        "ui.css" => (CSS, "text/css; charset=utf-8"),
        "ui.js" => (JS, "text/javascript; charset=utf-8"),
        _ => return super::server::error_page(StatusCode::NOT_FOUND, "no such file"),
    };
    let mut r = body.into_response();
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, max-age=3600"),
    );
    r
}
