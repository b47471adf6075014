//! The request handler. It reads top to bottom (DESIGN.md "Request pipeline"); each stage
//! either answers or passes on:
//!
//! 1. Site: pick the site by `Host` (exact, longest wildcard, default), else 404;
//!    over TLS, 421 for a host of another site that the connection's
//!    certificate does not cover.
//! 2. Method: GET and HEAD; other standard methods 405, unknown methods 501.
//! 3. Path to key: percent-decode once, remove dot-segments, add the prefix; 400
//!    for NUL or invalid UTF-8.
//! 4. Website rules (index and error documents, redirects): see `website.rs`.
//! 5. Fetch from the origin (the cache tiers sit here).
//! 6. Response headers from the object's metadata, then the site's `[headers]`.
//! 7. Origin errors: 502 (unreachable, rejected), 504 (timeout), logged with the
//!    site and the S3 error code.
//!
//! Every response body is wrapped so the access log line and the byte counters
//! are written when the body has been sent (or abandoned).

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use actix_web::body::BoxBody;
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::{Method, StatusCode, Version};
use actix_web::{web, HttpRequest, HttpResponse};

use crate::access_log::AccessRecord;
use crate::cors;
use crate::http::headers;
use crate::site::Site;
use crate::state::AppState;
use crate::{tls, website};

mod body;
mod cached;
mod encoding;
mod lookup;
mod object;
mod respond;

use body::LoggedBody;
use cached::CacheOutcome;
use lookup::Lookup;
use respond::error_page;

/// Largest header section accepted, in bytes (names and values).
const MAX_HEADER_BYTES: usize = 16 * 1024;
/// Most header fields accepted.
const MAX_HEADER_FIELDS: usize = 100;
/// S3's longest object key, in bytes: a longer path cannot name an object.
const MAX_KEY_BYTES: usize = 1024;

/// The size of the request's header section.
fn request_header_bytes(req: &HttpRequest) -> usize {
    req.headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum()
}

/// `Allow` for methods other than GET and HEAD.
const ALLOW: &str = "GET, HEAD";

/// What the access log and metrics learn while a request is handled.
struct Exchange {
    site: Option<Arc<Site>>,
    /// CORS headers for an allowed cross-origin request.
    cors_headers: Vec<(header::HeaderName, String)>,
    /// The site has CORS, so its answers vary by `Origin`.
    vary_origin: bool,
    /// The representation is compressible: answers vary by `Accept-Encoding`.
    vary_accept_encoding: bool,
    cache: CacheOutcome,
    origin_request_id: Option<String>,
}

/// The edge handler: runs the pipeline, then applies the site's headers and wraps
/// the body for the access log.
pub async fn handle(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let started = Instant::now();
    let mut exchange = Exchange {
        site: None,
        cache: CacheOutcome::Pass,
        origin_request_id: None,
        cors_headers: Vec::new(),
        vary_origin: false,
        vary_accept_encoding: false,
    };
    let mut response = serve(&req, &state, &mut exchange).await;
    if let Some(site) = &exchange.site {
        response.headers_mut().insert(
            header::HeaderName::from_static("cache-status"),
            HeaderValue::from_static(exchange.cache.cache_status()),
        );
        if exchange.vary_accept_encoding {
            headers::add_vary(response.headers_mut(), "Accept-Encoding");
        }
        if exchange.vary_origin {
            crate::cors::apply(response.headers_mut(), &exchange.cors_headers, true);
        }
        headers::apply_site_headers(response.headers_mut(), &site.config.headers);
    }
    let site_name = exchange.site.as_ref().map_or("-", |site| site.name());
    let site_metrics = state.metrics.site(site_name);
    let status = response.status().as_u16();
    // The access log line's text is only built when the log is on.
    let record = state.access_log.is_enabled().then(|| AccessRecord {
        time: SystemTime::now(),
        site: exchange.site.as_ref().map(|s| s.name().to_string()),
        client: client_address(&req, &state.trusted_proxies),
        method: req.method().to_string(),
        path: req
            .uri()
            .path_and_query()
            .map(|p| p.as_str().to_string())
            .unwrap_or_default(),
        protocol: protocol_name(req.version()),
        status,
        bytes: 0,
        duration_ms: Duration::ZERO,
        cache: exchange.cache.as_str(),
        origin_request_id: exchange.origin_request_id,
        complete: true,
    });
    let logged = LoggedBody {
        inner: None,
        site_metrics,
        status,
        head: req.method() == Method::HEAD,
        bytes: 0,
        complete: true,
        record,
        started,
        state: state.into_inner(),
    };
    response.map_body(|_, body| {
        let mut logged = logged;
        logged.inner = Some(body);
        BoxBody::new(logged)
    })
}

/// Stages 1 to 7 of the pipeline.
async fn serve(req: &HttpRequest, state: &AppState, exchange: &mut Exchange) -> HttpResponse {
    // 0. Request limits: oversized header sections are refused (RFC 6585 5).
    if request_header_bytes(req) > MAX_HEADER_BYTES || req.headers().len() > MAX_HEADER_FIELDS {
        return error_page(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "The request's header fields are too large.",
        );
    }

    // 1. Site.
    let sites = state.sites();
    let Some(site) = sites.route(request_host(req)).cloned() else {
        return error_page(
            StatusCode::NOT_FOUND,
            "No site is configured for this host.",
        );
    };
    // 1a. Over TLS, a host the connection's certificate was not chosen for and
    // does not cover: 421 (RFC 9110 15.5.20; `tls/session.rs`).
    if tls::session::authority(
        &state.tls_resolver.current(),
        req.conn_data::<tls::session::TlsConnection>(),
        request_host(req),
    ) == tls::session::Authority::Misdirected
    {
        return error_page(
            StatusCode::MISDIRECTED_REQUEST,
            "This host is not served on this connection; open a new connection for it.",
        );
    }
    exchange.site = Some(site.clone());

    // 1b. HTTPS only: plain-HTTP requests get 308 to the same URL on https.
    if site.config.tls.as_ref().is_some_and(|t| t.redirect_http)
        && lookup::request_scheme(req, &state.trusted_proxies) == website::Protocol::Http
    {
        return https_redirect(req, state);
    }

    // 2. CORS preflight, then the method.
    let cors_rules = site.cors_rules();
    if site.config.cors.is_some() {
        exchange.vary_origin = true;
        match cors::evaluate_rules(&cors_rules, req.method().as_str(), req.headers()) {
            cors::Cors::PreflightAllowed(headers) => {
                let mut response = HttpResponse::NoContent().finish();
                cors::apply(response.headers_mut(), &headers, false);
                return response;
            }
            cors::Cors::PreflightRefused => {
                return error_page(
                    StatusCode::FORBIDDEN,
                    "This cross-origin request is not allowed.",
                );
            }
            cors::Cors::Allowed(headers) => exchange.cors_headers = headers,
            cors::Cors::NotCors | cors::Cors::Refused => {}
        }
    }
    let head = match *req.method() {
        Method::GET => false,
        Method::HEAD => true,
        Method::POST
        | Method::PUT
        | Method::DELETE
        | Method::PATCH
        | Method::OPTIONS
        | Method::TRACE
        | Method::CONNECT => {
            let mut response = error_page(
                StatusCode::METHOD_NOT_ALLOWED,
                "This method is not allowed here.",
            );
            response
                .headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static(ALLOW));
            return response;
        }
        _ => {
            return error_page(
                StatusCode::NOT_IMPLEMENTED,
                "This method is not implemented.",
            )
        }
    };

    // 3. Path to key.
    let key = match website::path_to_key(req.uri().path()) {
        Ok(key) => key,
        Err(e) => {
            return error_page(StatusCode::BAD_REQUEST, &format!("Bad request: {e}."));
        }
    };
    if site.config.origin.prefix.len() + key.len() > MAX_KEY_BYTES {
        return error_page(
            StatusCode::URI_TOO_LONG,
            "The path is longer than any object key can be.",
        );
    }
    let host = request_host(req).unwrap_or("");
    let lookup = Lookup {
        req,
        site: &site,
        fetcher: cached::Fetcher {
            cache: state.cache.clone(),
            metrics: state.metrics.clone(),
            site: site.clone(),
        },
        head,
        info: website::RequestInfo {
            scheme: lookup::request_scheme(req, &state.trusted_proxies),
            host,
            raw_path: req.uri().path(),
            query: req.uri().query(),
        },
    };

    // 4. Website rules around the lookup, or the key as it is (an asset CDN).
    // 5. Fetch, then 6. preconditions, ranges and headers (`object.rs`).
    match site.website() {
        Some(config) => lookup::serve_website(&lookup, &config, &key, exchange).await,
        None => lookup::serve_key(&lookup, &key, exchange).await,
    }
}

/// 308 to the request's URL on https, on the TLS listener's port unless it is 443.
fn https_redirect(req: &HttpRequest, state: &AppState) -> HttpResponse {
    let host = request_host(req)
        .and_then(crate::site::normalize_host)
        .unwrap_or_default();
    let port = state.https_port.load(std::sync::atomic::Ordering::Relaxed);
    let authority = if port == 443 {
        host
    } else {
        format!("{host}:{port}")
    };
    let path = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    respond::redirect_response(&website::RedirectTarget {
        status: 308,
        location: website::sanitize_location(&format!("https://{authority}{path}")),
    })
}

/// The request's host: the `Host` header, or the authority of an HTTP/2 request.
fn request_host(req: &HttpRequest) -> Option<&str> {
    req.headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .or_else(|| req.uri().authority().map(|a| a.as_str()))
}

/// The client's address: the peer, or the forwarded address when the peer is a
/// trusted proxy (`http/forwarded.rs`).
fn client_address(req: &HttpRequest, trusted: &[ipnet::IpNet]) -> String {
    crate::http::forwarded::from_request(req, trusted)
        .address
        .map_or_else(|| "-".to_string(), |ip| ip.to_string())
}

fn protocol_name(version: Version) -> &'static str {
    match version {
        Version::HTTP_09 => "HTTP/0.9",
        Version::HTTP_10 => "HTTP/1.0",
        Version::HTTP_2 => "HTTP/2",
        Version::HTTP_3 => "HTTP/3",
        _ => "HTTP/1.1",
    }
}
