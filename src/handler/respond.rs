//! Building responses: redirects, origin errors, error pages.

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::HttpResponse;

use crate::origin::OriginError;
use crate::site::Site;
use crate::website::RedirectTarget;

/// A redirect with an empty body.
pub(super) fn redirect_response(target: &RedirectTarget) -> HttpResponse {
    let status = StatusCode::from_u16(target.status).unwrap_or(StatusCode::MOVED_PERMANENTLY);
    let mut response = HttpResponse::build(status);
    if let Ok(location) = HeaderValue::from_str(&target.location) {
        response.insert_header((header::LOCATION, location));
    }
    response.finish()
}

/// The answer for an origin error, logged with the site and the S3 error code.
pub(super) fn origin_error_response(site: &Site, key: &str, error: &OriginError) -> HttpResponse {
    let status = StatusCode::from_u16(error.http_status()).unwrap_or(StatusCode::BAD_GATEWAY);
    match error {
        OriginError::NotFound { .. } => {
            error_page(status, "The page you asked for does not exist.")
        }
        OriginError::Denied { .. } if site.config.origin.denied_as_missing => error_page(
            StatusCode::NOT_FOUND,
            "The page you asked for does not exist.",
        ),
        OriginError::Denied { .. } => error_page(status, "You may not see this page."),
        OriginError::PreconditionFailed | OriginError::RangeNotSatisfiable { .. } => {
            error_page(status, "The request's conditions do not hold.")
        }
        OriginError::Rejected { code, .. } => {
            tracing::error!(site = site.name(), key, s3_error = %code, "{error}");
            error_page(status, "The origin refused the request.")
        }
        OriginError::Unreachable(_) | OriginError::Invalid(_) => {
            tracing::error!(site = site.name(), key, "{error}");
            error_page(status, "The origin could not be reached.")
        }
        OriginError::NotCached => error_page(
            status,
            "Nothing usable is stored, and the request asked for a stored answer only.",
        ),
        OriginError::Timeout(_) => {
            tracing::error!(site = site.name(), key, "{error}");
            error_page(status, "The origin did not answer in time.")
        }
    }
}

/// A small HTML page for an error status.
pub fn error_page(status: StatusCode, message: &str) -> HttpResponse {
    let reason = status.canonical_reason().unwrap_or("Error");
    let body = format!(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>{code} {reason}</title></head>\
         <body><h1>{code} {reason}</h1><p>{message}</p></body></html>\n",
        code = status.as_u16(),
    );
    HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(body)
}
