//! The HTTP-01 answer (RFC 8555 section 8.3): the handler's first stage.

use actix_web::http::Method;
use actix_web::{HttpRequest, HttpResponse};

use super::challenge::http01_token;
use super::Acme;

/// Answers `GET /.well-known/acme-challenge/TOKEN` with the key authorization
/// while the order for TOKEN is open (on any host: the CA names the host being
/// validated, which may not be routed yet). Any other request, including one
/// for a token this node does not know, passes on to the site, so a bucket may
/// still serve challenge files of its own.
pub async fn answer(req: &HttpRequest, acme: &Acme) -> Option<HttpResponse> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return None;
    }
    let token = http01_token(req.path())?;
    let key_authorization = acme.http01(token).await?;
    Some(
        HttpResponse::Ok()
            .content_type("application/octet-stream")
            .insert_header(("Cache-Control", "no-store"))
            .body(key_authorization),
    )
}
