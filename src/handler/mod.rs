//! The request handler. It reads top to bottom as the pipeline's stages, each
//! either answering (short-circuit) or handing the next stage its input. The
//! numbering is the one in docs/ARCHITECTURE.md and the README:
//!
//! 1. Limits: header sections over 16 KiB or 100 fields get 431. Then the ACME
//!    HTTP-01 validation request for an order this node has open is answered
//!    (`acme/http01.rs`); anything else passes on.
//! 2. Site: pick the site by `Host` (exact, longest wildcard, default), else
//!    404; over TLS, 421 for a host of another site that the connection's
//!    certificate does not cover; a plain-HTTP request to a `redirect_http`
//!    site gets 308 to https. With `[releases]`, the site is then pinned to
//!    one release for the whole request: the live one, or the one a preview
//!    host names (`releases/`).
//! 3. Method: a CORS preflight is answered; GET and HEAD go on; other
//!    standard methods 405, unknown methods 501.
//! 4. Key: percent-decode once, remove dot-segments, add the prefix; 400 for
//!    NUL or invalid UTF-8, 414 for a key longer than S3 allows.
//! 5. Website rules before the lookup (`redirect_all_requests_to`,
//!    prefix routing rules, index documents): see `website.rs`.
//! 6. Read through the cache (`cache::Cache::fetch`): memory, disk, or the
//!    origin, coalesced, revalidated, served stale where allowed.
//! 7. Website rules after a failed read: the directory redirect, routing
//!    rules on errors, SPA fallback, the error document; origin errors give
//!    502 or 504, logged with the site and the S3 error code.
//! 8. Compression: the encoding variant the client accepts, through the cache.
//! 9. The representation: preconditions, ranges, body (`object.rs`).
//! 10. Response headers: `Cache-Status`, `Vary`, CORS, the site's
//!     `[headers]`; the body is wrapped so the access log line and the byte
//!     counters are written when it has been sent (or abandoned).

use std::ops::ControlFlow::{self, Break, Continue};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use actix_web::body::BoxBody;
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::{Method, StatusCode, Version};
use actix_web::{web, HttpRequest, HttpResponse};

use crate::access_log::AccessRecord;
use crate::cache::CacheOutcome;
use crate::cors;
use crate::http::headers;
use crate::site::Site;
use crate::state::AppState;
use crate::{tls, website};

mod body;
mod lookup;
mod object;
mod proxy;
mod respond;
pub mod wire;

use body::LoggedBody;
use lookup::Lookup;
use respond::error_page;

/// Largest header section accepted, in bytes (names and values).
const MAX_HEADER_BYTES: usize = 16 * 1024;
/// Most header fields accepted.
const MAX_HEADER_FIELDS: usize = 100;

/// The size of the request's header section.
fn request_header_bytes(req: &HttpRequest) -> usize {
    req.headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum()
}

/// `Allow` for methods other than GET and HEAD.
const ALLOW: &str = "GET, HEAD";

/// What a stage gives: the answer (`Break`), or the next stage's input.
type Stage<T> = ControlFlow<HttpResponse, T>;

/// What the pipeline produced for one request: the response before stage 10
/// and what the access log and metrics learn.
struct Served {
    response: HttpResponse,
    site: Option<Arc<Site>>,
    /// CORS headers for an allowed cross-origin request, when the site has CORS
    /// (its answers then vary by `Origin`).
    cors: Option<Vec<(header::HeaderName, String)>>,
    /// What stages 5 to 9 did, when they ran.
    delivered: Option<Delivery>,
}

/// What the cache and the origin did, from stages 5 to 9.
struct Delivery {
    /// `None`: no read went through the cache.
    cache: Option<CacheOutcome>,
    request_id: Option<String>,
    vary_accept_encoding: bool,
}

impl Served {
    /// An answer before a site was chosen (stages 1 and 2).
    fn without_site(response: HttpResponse) -> Served {
        Served {
            response,
            site: None,
            cors: None,
            delivered: None,
        }
    }
}

/// The edge handler: stages 1 to 9, then stage 10.
pub async fn handle(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> HttpResponse {
    let started = Instant::now();
    let served = serve(&req, payload, &state).await;
    finish(req, state, served, started)
}

/// Stage 10: the response headers, the metrics and the access log.
fn finish(
    req: HttpRequest,
    state: web::Data<AppState>,
    served: Served,
    started: Instant,
) -> HttpResponse {
    let Served {
        mut response,
        site,
        cors,
        delivered,
    } = served;
    let looked_up = delivered.as_ref().and_then(|d| d.cache);
    let cache = looked_up.unwrap_or(CacheOutcome::Pass);
    if let Some(site) = &site {
        let name = state.cluster.as_ref().map(|c| c.node_id.as_str());
        let upstream = response
            .headers()
            .get(crate::cluster::CACHE_STATUS)
            .and_then(|v| v.to_str().ok());
        let status = crate::cluster::headers::cache_status(name, cache, upstream);
        if let Ok(value) = HeaderValue::from_str(&status) {
            response
                .headers_mut()
                .insert(crate::cluster::CACHE_STATUS, value);
        }
        if delivered.as_ref().is_some_and(|d| d.vary_accept_encoding) {
            headers::add_vary(response.headers_mut(), "Accept-Encoding");
        }
        if let Some(cors) = &cors {
            crate::cors::apply(response.headers_mut(), cors, true);
        }
        headers::apply_site_headers(response.headers_mut(), &site.config.headers);
        if response.extensions().contains::<ToHttps>() {
            // RFC 6797 section 7.2: not on an answer over plain HTTP. Other
            // answers keep it: one that looks plain here may be https at a
            // load balancer not named by `--trusted-proxy`.
            response
                .headers_mut()
                .remove(header::STRICT_TRANSPORT_SECURITY);
        }
    }
    let site_metrics = match &site {
        Some(site) => state.metrics.of_site(site),
        None => state.metrics.site("-"),
    };
    // One lookup per request, with what its `Cache-Status` says (the reads
    // it made for website rules are not lookups of their own).
    if let (Some(_), Some(outcome)) = (&site, looked_up) {
        site_metrics.lookup(&state.metrics, outcome.as_str());
    }
    let status = response.status().as_u16();
    // The access log line's text is only built when the log is on.
    let record = state.access_log.is_enabled().then(|| AccessRecord {
        time: SystemTime::now(),
        site: site.as_ref().map(|s| s.name().to_string()),
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
        cache: cache.as_str(),
        origin_request_id: delivered.and_then(|d| d.request_id),
        complete: true,
    });
    let sent_from_file = response
        .extensions()
        .get::<actix_http::h1::SendFile>()
        .map(|file| file.sent.clone());
    let logged = LoggedBody {
        inner: None,
        sent_from_file,
        site_metrics,
        status,
        head: req.method() == Method::HEAD,
        bytes: 0,
        complete: true,
        ended: false,
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

/// Stages 1 to 9.
async fn serve(req: &HttpRequest, payload: web::Payload, state: &AppState) -> Served {
    // 1. Limits.
    if let Break(response) = limits(req) {
        return Served::without_site(response);
    }
    // 1b. ACME HTTP-01 validation of a certificate this node is ordering.
    if let Some(response) = crate::acme::http01::answer(req, &state.acme).await {
        return Served::without_site(response);
    }
    // 2. Site.
    let site = match route(req, state) {
        Continue(site) => site,
        Break(response) => return Served::without_site(response),
    };
    // The scheme the client used (through trusted proxies), once: the
    // redirect below, the website rules and an HTTP origin's fields use it.
    let scheme = lookup::request_scheme(req, &state.trusted_proxies);
    // 2a. Plain HTTP to a `redirect_http` site is sent to https: an answer
    // of the site (its `[headers]`, its metrics and log lines).
    if site.config.tls.as_ref().is_some_and(|t| t.redirect_http)
        && scheme == website::Protocol::Http
    {
        let mut response = https_redirect(req, state, &site);
        response.extensions_mut().insert(ToHttps);
        let mut served = Served::without_site(response);
        served.site = Some(site);
        return served;
    }
    // 2b. Release (`[releases]`): the live one, or the one a preview host names.
    let site = match site.release_view(request_host(req)) {
        Ok(view) => view,
        Err(e) => {
            let status = StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::NOT_FOUND);
            let mut served = Served::without_site(error_page(status, &e.to_string()));
            served.site = Some(site);
            return served;
        }
    };
    let answered = |response, cors| Served {
        response,
        site: Some(site.clone()),
        cors,
        delivered: None,
    };
    // 3. Method, and the CORS preflight.
    let cors = match cors_stage(req, &site) {
        Continue(cors) => cors,
        // Only a site with CORS answers a preflight: it varies by `Origin`.
        Break(response) => return answered(response, Some(Vec::new())),
    };
    let http_origin = site.config.is_http_origin();
    let head = match method(req) {
        Continue(head) => head,
        // 3c. An HTTP origin gets the other methods, bodies streamed.
        Break(_) if http_origin => {
            let mut response = Box::pin(proxy::pass_through(
                req,
                payload,
                &site,
                &state.cache,
                proxy::forward_headers(req, false, &state.trusted_proxies, scheme, &state.loop_id),
            ))
            .await;
            if let Some(origin) = &site.config.origin.http {
                let host = request_host(req).unwrap_or("");
                proxy::client_locations(&mut response, origin, scheme.as_str(), host);
            }
            return answered(response, cors);
        }
        Break(response) => return answered(response, cors),
    };
    // 4. Key: for an HTTP origin, the request target as sent (query included).
    let key = match object_key(req, &site) {
        Continue(key) => key,
        Break(response) => return answered(response, cors),
    };
    let forward = if http_origin {
        proxy::forward_headers(req, true, &state.trusted_proxies, scheme, &state.loop_id)
    } else {
        Vec::new()
    };
    // 5 to 9. Website rules around the read through the cache, or the key as
    // it is (an asset CDN); compression; the representation.
    let lookup = Lookup {
        req,
        site: &site,
        cache: &state.cache,
        head,
        info: website::RequestInfo {
            scheme,
            // A request without a host (HTTP/1.0) is named as the site's
            // first host in redirects, as `redirect_http` does.
            host: request_host(req)
                .filter(|host| !host.is_empty())
                .or_else(|| site.first_exact_host())
                .unwrap_or(""),
            raw_path: req.uri().path(),
            query: req.uri().query(),
        },
        forward: &forward,
        wire: wire::wire_of(req),
    };
    let mut delivered = match site.website() {
        Some(config) => lookup::serve_website(&lookup, &config, &key).await,
        None => lookup::serve_key(&lookup, &key).await,
    };
    if let Some(origin) = &site.config.origin.http {
        let info = &lookup.info;
        let scheme = info.scheme.as_str();
        proxy::client_locations(&mut delivered.response, origin, scheme, info.host);
    }
    Served {
        response: delivered.response,
        site: Some(site.clone()),
        cors,
        delivered: Some(Delivery {
            cache: delivered.cache,
            request_id: delivered.request_id,
            vary_accept_encoding: delivered.vary_accept_encoding,
        }),
    }
}

/// Stage 1: oversized header sections are refused (RFC 6585 section 5).
fn limits(req: &HttpRequest) -> Stage<()> {
    if request_header_bytes(req) > MAX_HEADER_BYTES || req.headers().len() > MAX_HEADER_FIELDS {
        return Break(error_page(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "The request's header fields are too large.",
        ));
    }
    Continue(())
}

/// Marks `redirect_http`'s 308, an answer known to go over plain HTTP.
struct ToHttps;

/// Stage 2: the site for the request's host.
fn route(req: &HttpRequest, state: &AppState) -> Stage<Arc<Site>> {
    if let Some(looped) = came_back(req, &state.loop_id) {
        return Break(looped);
    }
    let sites = state.sites();
    let connection = req.conn_data::<tls::session::TlsConnection>();
    // An empty Host is what a client sends for a target without an
    // authority (RFC 9112 3.2): no host, not an invalid one.
    let host = request_host(req).filter(|host| !host.trim().is_empty());
    // One that cannot be a host (`a, b`, `a:abc`, `a b`): 400, as RFC 9112
    // 3.2 requires, not the default site's answer.
    let normalized = match host.map(crate::site::normalized_host) {
        Some(None) => {
            return Break(error_page(
                StatusCode::BAD_REQUEST,
                "The Host header is not a valid host name.",
            ))
        }
        Some(Some(normalized)) => Some(normalized),
        None => None,
    };
    // A request without a host (HTTP/1.0, a load balancer's health check)
    // on a TLS connection goes to the site the client named in SNI, whose
    // certificate it got, as nginx does; else to the default site.
    let by_server_name = match (host, connection.and_then(|c| c.site.as_deref())) {
        (None, Some(name)) => sites.sites.iter().find(|site| site.name() == name),
        _ => None,
    };
    let Some(site) = by_server_name
        .or_else(|| sites.route_normalized(normalized.as_deref()))
        .cloned()
    else {
        return Break(error_page(
            StatusCode::NOT_FOUND,
            "No site is configured for this host.",
        ));
    };
    // Over TLS, a host the connection's certificate was not chosen for and
    // does not cover: 421 (RFC 9110 15.5.20; `tls/session.rs`).
    // (Plain HTTP has no TLS connection data: no resolver is read for it.)
    if connection.is_some()
        && tls::session::authority(&state.tls_resolver.current(), connection, host)
            == tls::session::Authority::Misdirected
    {
        return Break(error_page(
            StatusCode::MISDIRECTED_REQUEST,
            "This host is not served on this connection; open a new connection for it.",
        ));
    }
    Continue(site)
}

const CDN_LOOP: header::HeaderName = header::HeaderName::from_static("cdn-loop");

/// A request whose `CDN-Loop` lists this node (`loop_id`, RFC 8586): it
/// has been here before, so an HTTP origin leads back to this node. 508,
/// and an error logged at most once a minute.
fn came_back(req: &HttpRequest, loop_id: &str) -> Option<HttpResponse> {
    let values = || {
        req.headers()
            .get_all(&CDN_LOOP)
            .filter_map(|v| v.to_str().ok())
    };
    if !crate::cluster::headers::has_looped(values(), loop_id) {
        return None;
    }
    let passed = crate::cluster::headers::cdn_loop_ids(values());
    static LOGGED: crate::throttle::Throttle = crate::throttle::Throttle::new();
    if LOGGED.ready(std::time::Duration::from_secs(60)) {
        tracing::error!(
            node = loop_id,
            cdn_loop = passed.join(", "),
            path = req.path(),
            "a request came back to this node (CDN-Loop lists it): answering 508; check that no site's origin url leads back to this node"
        );
    }
    Some(
        HttpResponse::build(StatusCode::LOOP_DETECTED)
            .content_type("text/plain; charset=utf-8")
            .body("loop detected: this node is already in CDN-Loop\n"),
    )
}

/// Stage 3a: CORS. A preflight is answered here; an allowed cross-origin
/// request gets its headers in stage 10. `Ok(None)` when the site has no CORS.
fn cors_stage(req: &HttpRequest, site: &Site) -> Stage<Option<Vec<(header::HeaderName, String)>>> {
    if site.config.cors.is_none() {
        return Continue(None);
    }
    match cors::evaluate_rules(&site.cors_rules(), req.method().as_str(), req.headers()) {
        cors::Cors::PreflightAllowed(headers) => {
            let mut response = HttpResponse::NoContent().finish();
            cors::apply(response.headers_mut(), &headers, false);
            Break(response)
        }
        cors::Cors::PreflightRefused => Break(error_page(
            StatusCode::FORBIDDEN,
            "This cross-origin request is not allowed.",
        )),
        cors::Cors::Allowed(headers) => Continue(Some(headers)),
        cors::Cors::NotCors | cors::Cors::Refused => Continue(Some(Vec::new())),
    }
}

/// Stage 3b: GET and HEAD go on (`Ok(true)` for HEAD).
fn method(req: &HttpRequest) -> Stage<bool> {
    match *req.method() {
        Method::GET => Continue(false),
        Method::HEAD => Continue(true),
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
            Break(response)
        }
        _ => Break(error_page(
            StatusCode::NOT_IMPLEMENTED,
            "This method is not implemented.",
        )),
    }
}

/// Stage 4: the path as an object key (without the site's prefix); for an
/// HTTP origin, the request target as the client sent it.
fn object_key(req: &HttpRequest, site: &Site) -> Stage<String> {
    if site.config.is_http_origin() {
        let target = match proxy::target(req) {
            Continue(target) => target,
            Break(response) => return Break(response),
        };
        if target.len() > proxy::MAX_TARGET_BYTES {
            return Break(error_page(
                StatusCode::URI_TOO_LONG,
                "The request target is too long.",
            ));
        }
        return Continue(target.to_string());
    }
    let key = match website::path_to_key(req.uri().path()) {
        Ok(key) => key,
        Err(e) => {
            return Break(error_page(
                StatusCode::BAD_REQUEST,
                &format!("Bad request: {e}."),
            ))
        }
    };
    if site.config.origin.prefix.len() + key.len() > crate::origin::MAX_KEY_BYTES {
        return Break(error_page(
            StatusCode::URI_TOO_LONG,
            "The path is longer than any object key can be.",
        ));
    }
    Continue(key)
}

/// 308 to the request's URL on https, on the TLS listener's port unless it is 443.
/// The `https://` URL of this request; a request without a host (HTTP/1.0
/// without `Host`) is sent to the site's first host, as nginx uses its
/// `server_name`: an `https` URI with an empty host is invalid (RFC 9110
/// section 4.2.2). A site of wildcard hosts only has no name to give: 400.
fn https_redirect(req: &HttpRequest, state: &AppState, site: &Site) -> HttpResponse {
    let Some(host) = request_host(req)
        .and_then(crate::site::normalize_host)
        .filter(|host| !host.is_empty())
        .or_else(|| site.first_exact_host().map(str::to_owned))
    else {
        return respond::error_page(
            StatusCode::BAD_REQUEST,
            "Bad request: the request names no host to send it to over HTTPS.",
        );
    };
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
    // HTTP/1.0 predates 308 (RFC 7538): a 1.0 client gets 301, as nginx sends.
    let status = if req.version() < actix_web::http::Version::HTTP_11 {
        301
    } else {
        308
    };
    respond::redirect_response(&website::RedirectTarget {
        status,
        location: website::sanitize_location(&format!("https://{authority}{path}")),
    })
}

/// The request's host: the target's authority (HTTP/2's `:authority`, an
/// HTTP/1.1 request in absolute form, whose `Host` a server ignores: RFC
/// 9112 section 3.2.2), else the `Host` header.
pub(super) fn request_host(req: &HttpRequest) -> Option<&str> {
    req.uri().authority().map(|a| a.as_str()).or_else(|| {
        req.headers()
            .get(header::HOST)
            .and_then(|v| v.to_str().ok())
    })
}

/// The client's address: the peer, or the forwarded address when the peer is a
/// trusted proxy (`http/forwarded.rs`).
/// What counts and logs the requests the HTTP/1 parser refuses before any
/// handler sees them (400 for a malformed head, 431 for one too large, 408
/// for one not sent in time): they went unseen in `s3edge_requests_total`
/// and the access log, where nginx logs them. Counted under site `-`, logged
/// with `-` for what was never parsed. Put in each edge connection's
/// extensions (`server::listeners`).
pub fn refused_hook(state: web::Data<AppState>) -> actix_http::h1::RefusedHook {
    actix_http::h1::RefusedHook(std::sync::Arc::new(
        move |refused: &actix_http::h1::Refused| {
            let status = refused.status.as_u16();
            state.metrics.site("-").response(&state.metrics, status, 0);
            if state.access_log.is_enabled() {
                state.access_log.record(&AccessRecord {
                    time: SystemTime::now(),
                    site: None,
                    client: refused
                        .peer_addr
                        .map_or_else(|| "-".to_string(), |addr| addr.ip().to_string()),
                    method: "-".into(),
                    path: "-".into(),
                    protocol: "-",
                    status,
                    bytes: 0,
                    duration_ms: Duration::ZERO,
                    cache: CacheOutcome::Pass.as_str(),
                    origin_request_id: None,
                    complete: true,
                });
            }
        },
    ))
}

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
