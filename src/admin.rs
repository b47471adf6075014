//! The admin listener (`--admin-listen`): the status page, health,
//! readiness, metrics, purge.
//!
//! When `S3EDGE_ADMIN_TOKEN` is set, every endpoint but the probes (`/healthz`,
//! `/readyz`) needs `Authorization: Bearer TOKEN`, compared in constant time.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};

use crate::cache::PurgeScope;
use crate::state::AppState;
use crate::status::{self, PurgeRecord};

/// Environment variable holding the admin token.
pub const ADMIN_TOKEN_ENV: &str = "S3EDGE_ADMIN_TOKEN";

/// A secret token from the environment variable `name`, without the
/// whitespace around it: a Kubernetes Secret made with `--from-file`, or
/// `echo TOKEN | base64`, ends in a newline, which no `Authorization` field
/// can carry (RFC 9110 5.5): the node refused every scrape and purge, and
/// the CLI wrote it into its request head, cutting the request short.
/// `None` when unset or blank.
pub fn token_from_env(name: &str) -> Option<String> {
    let value = std::env::var(name).ok()?;
    let token = value.trim();
    (!token.is_empty()).then(|| token.to_string())
}

/// Registers the admin routes. Another method on a known path is a 405
/// naming the one allowed (RFC 9110 section 15.5.6), not the 404 of an
/// unknown path.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(only("/", READ, reading().to(status_page)))
        .service(only("/status.json", READ, reading().to(status_json)))
        .service(only("/healthz", READ, reading().to(healthz)))
        .service(only("/readyz", READ, reading().to(readyz)))
        .service(only("/metrics", READ, reading().to(metrics)))
        .service(only("/purge", "POST", web::post().to(purge)))
        .configure(crate::releases::admin::configure)
        .default_service(web::to(|| async {
            HttpResponse::NotFound()
                .content_type("text/plain; charset=utf-8")
                .body("not found\n")
        }));
}

/// The methods a reading endpoint answers.
const READ: &str = "GET, HEAD";

/// A route for GET and HEAD (a load balancer's health check may use HEAD;
/// actix-http sends a HEAD answer's head only).
fn reading() -> actix_web::Route {
    web::route().guard(actix_web::guard::Any(actix_web::guard::Get()).or(actix_web::guard::Head()))
}

/// The resource at `path` answering `route`, and 405 with `Allow: allowed`
/// to any other method, after the token check every endpoint but the probes
/// makes (DESIGN.md: 401 without the token).
pub fn only(path: &str, allowed: &'static str, route: actix_web::Route) -> actix_web::Resource {
    let probe = matches!(path, "/healthz" | "/readyz");
    web::resource(path).route(route).default_service(web::to(
        move |req: HttpRequest, state: web::Data<AppState>| async move {
            if !probe {
                if let Some(denied) = check_token(&req, state.admin_token.as_deref()) {
                    return denied;
                }
            }
            HttpResponse::MethodNotAllowed()
                .insert_header((header::ALLOW, allowed))
                .content_type("text/plain; charset=utf-8")
                .body("method not allowed\n")
        },
    ))
}

async fn healthz() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; charset=utf-8")
        .body("ok\n")
}

async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    if state.ready.load(Ordering::Acquire) {
        HttpResponse::Ok()
            .content_type("text/plain; charset=utf-8")
            .body("ready\n")
    } else {
        HttpResponse::ServiceUnavailable()
            .content_type("text/plain; charset=utf-8")
            .body("starting\n")
    }
}

async fn metrics(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    if let Some(denied) = check_token(&req, state.admin_token.as_deref()) {
        return denied;
    }
    state.metrics.node.set(&status::readings::read(&state));
    HttpResponse::Ok()
        .content_type(crate::metrics::CONTENT_TYPE)
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(state.metrics.render() + &crate::acme::metrics::render(&state.acme))
}

/// `GET /`: the status page. It holds no figure (it reads them from
/// `/status.json` with the token it is given), so without the token it is
/// still the body of the 401 every admin endpoint answers: a browser shows it,
/// and it asks for the token.
async fn status_page(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let status = match check_token(&req, state.admin_token.as_deref()) {
        None => actix_web::http::StatusCode::OK,
        Some(_) => actix_web::http::StatusCode::UNAUTHORIZED,
    };
    let mut response = HttpResponse::build(status);
    if status == actix_web::http::StatusCode::UNAUTHORIZED {
        response.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
    }
    response
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; \
             connect-src 'self'; img-src 'self' data:; base-uri 'none'; frame-ancestors 'none'",
        ))
        .body(status::PAGE)
}

/// `GET /status.json`: what the status page shows.
async fn status_json(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    if let Some(denied) = check_token(&req, state.admin_token.as_deref()) {
        return denied;
    }
    let readings = status::readings::read(&state);
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(status::report::build(&state, &readings))
}

/// `POST /purge`: `{"site": "NAME", "paths": ["/a.html"], "prefixes": ["/blog/"], "all": false}`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PurgeRequest {
    pub site: String,
    #[serde(default)]
    pub paths: Vec<String>,
    #[serde(default)]
    pub prefixes: Vec<String>,
    #[serde(default)]
    pub all: bool,
}

fn json_error(status: actix_web::http::StatusCode, message: &str) -> HttpResponse {
    HttpResponse::build(status).json(serde_json::json!({ "error": message }))
}

/// The object key a purge path names (the site's prefix included; for an
/// HTTP origin, the path and query as a client sends them).
fn purge_key(site: &crate::site::Site, path: &str) -> Option<String> {
    // A full URL (what a browser's address bar shows, what Fastly's purge
    // takes) names its path: it purged nothing, silently.
    let path = match path.split_once("://") {
        Some((scheme, rest))
            if scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https") =>
        {
            rest.find(['/', '?']).map_or("/", |i| &rest[i..])
        }
        _ => path,
    };
    let path = if path.starts_with('/') {
        path.to_string()
    } else {
        format!("/{path}")
    };
    // An HTTP origin's entries are keyed by the request target as sent,
    // query included: a path purges that URL (and its `Vary` selections).
    if site.config.is_http_origin() {
        return Some(path);
    }
    let path = path.split('?').next().unwrap_or("");
    crate::website::path_to_key(path)
        .ok()
        .map(|key| site.object_key(&key))
}

/// Removes entries from every cache tier before answering `{"purged": N}`
/// (N counts every variant removed). Paths name pages as clients request them:
/// `/` and `/dir/` also purge their index document. In a cluster the purge
/// reaches every node first (`cluster/purge.rs`) and the answer adds
/// `"nodes": {"confirmed": [...], "failed": [...]}`.
async fn purge(req: HttpRequest, body: web::Payload, state: web::Data<AppState>) -> HttpResponse {
    use actix_web::http::StatusCode;
    let body = match change_body(&req, body, state.admin_token.as_deref()).await {
        Ok(body) => body,
        Err(refused) => return refused,
    };
    let request: PurgeRequest = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(e) => {
            return json_error(
                StatusCode::BAD_REQUEST,
                &format!("invalid purge request: {e}"),
            )
        }
    };
    let Some(cluster) = state.cluster.clone() else {
        return match purge_locally(&state, &request).await {
            Ok(purged) => HttpResponse::Ok().json(serde_json::json!({ "purged": purged })),
            Err((status, message)) => json_error(status, &message),
        };
    };
    // Checked here first, so a request every node would refuse fails at once.
    if let Err((status, message)) = purge_scope(&state, &request) {
        return json_error(status, &message);
    }
    let state = state.into_inner();
    let reached = crate::cluster::purge::fan_out(&state, &cluster, &request, body).await;
    HttpResponse::Ok().json(reached)
}

/// The site and the scope a purge request names on this node, or the
/// status and message refusing it.
fn purge_scope(
    state: &AppState,
    request: &PurgeRequest,
) -> Result<(Arc<crate::site::Site>, PurgeScope), (actix_web::http::StatusCode, String)> {
    use actix_web::http::StatusCode;
    if request.paths.is_empty() && request.prefixes.is_empty() && !request.all {
        return Err((
            StatusCode::BAD_REQUEST,
            "nothing to purge: give paths, prefixes or \"all\": true".to_string(),
        ));
    }
    let sites = state.sites();
    let Some(site) = sites.sites.iter().find(|s| s.name() == request.site) else {
        return Err((
            StatusCode::NOT_FOUND,
            format!("no site named `{}`", request.site),
        ));
    };
    let index = site.website().and_then(|w| w.index_document.clone());
    let mut keys = Vec::new();
    for path in &request.paths {
        let Some(key) = purge_key(site, path) else {
            return Err((
                StatusCode::BAD_REQUEST,
                format!("`{path}` is not a valid path"),
            ));
        };
        if let Some(index) = index
            .as_deref()
            .filter(|_| key.is_empty() || key.ends_with('/'))
        {
            keys.push(format!("{key}{index}"));
        }
        keys.push(key);
    }
    let mut prefixes = Vec::new();
    for prefix in &request.prefixes {
        let Some(key) = purge_key(site, prefix) else {
            return Err((
                StatusCode::BAD_REQUEST,
                format!("`{prefix}` is not a valid prefix"),
            ));
        };
        prefixes.push(key);
    }
    if request.all {
        prefixes.push(site.config.origin.prefix.clone());
    }
    Ok((site.clone(), PurgeScope { keys, prefixes }))
}

/// Purges this node's tiers only and records the purge (log, status page);
/// the entries removed, or the status and message refusing the request.
pub async fn purge_locally(
    state: &AppState,
    request: &PurgeRequest,
) -> Result<u64, (actix_web::http::StatusCode, String)> {
    let (site, scope) = purge_scope(state, request)?;
    // The purge is a barrier (cache/barrier.rs): it answers once no later
    // request can get what it removed. Its file removals block.
    let purged = state
        .cache
        .purge_off_thread(site.name(), scope)
        .await
        .map_err(|e| {
            (
                actix_web::http::StatusCode::INTERNAL_SERVER_ERROR,
                format!("the purge did not run: {e}"),
            )
        })?;
    tracing::info!(site = site.name(), purged, "purge");
    state.metrics.purges.record(PurgeRecord {
        time: std::time::SystemTime::now(),
        site: request.site.clone(),
        paths: request.paths.clone(),
        prefixes: request.prefixes.clone(),
        all: request.all,
        purged,
    });
    Ok(purged)
}

/// The largest body `POST /purge` and `POST /releases/switch` take.
const CHANGE_BODY_MAX: usize = 256 * 1024;

/// The body of a request that changes something, read only after
/// [`check_change`] let it through: a client without the token learns
/// nothing from the body's size. Over [`CHANGE_BODY_MAX`] it is a JSON 413
/// (RFC 9110 section 15.5.14), refused from `Content-Length` before a byte
/// of it is read when the client declares it.
pub async fn change_body(
    req: &HttpRequest,
    payload: web::Payload,
    token: Option<&str>,
) -> Result<web::Bytes, HttpResponse> {
    use actix_web::http::StatusCode;
    if let Some(denied) = check_change(req, token) {
        return Err(denied);
    }
    let too_large = || {
        json_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!(
                "the request body is larger than {} KiB",
                CHANGE_BODY_MAX / 1024
            ),
        )
    };
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|length| length > CHANGE_BODY_MAX as u64) {
        return Err(too_large());
    }
    match payload.to_bytes_limited(CHANGE_BODY_MAX).await {
        Ok(Ok(body)) => Ok(body),
        Ok(Err(e)) => Err(json_error(
            StatusCode::BAD_REQUEST,
            &format!("the request body could not be read: {e}"),
        )),
        Err(_) => Err(too_large()),
    }
}

/// [`check_token`] for a request that changes something (`POST /purge`,
/// `POST /releases/switch`), after refusing one a browser sent from another
/// site's page: the admin listener is on loopback and usually without a
/// token, so any web page its operator opens could otherwise POST to it
/// (a `no-cors` fetch or a form needs no preflight) and purge every site.
/// As Go's `http.CrossOriginProtection` does: 403 when `Sec-Fetch-Site` is
/// there and says neither `same-origin` nor `none`, or, without it, when an
/// `Origin` is there and names another host than `Host`. curl, the CLI and
/// the nodes of a cluster send neither.
pub fn check_change(req: &HttpRequest, token: Option<&str>) -> Option<HttpResponse> {
    let field = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
    let cross_site = match field("sec-fetch-site") {
        Some(site) => !matches!(site, "same-origin" | "none"),
        None => field("origin").is_some_and(|origin| {
            let host = origin.split_once("://").map_or(origin, |(_, rest)| rest);
            !field("host").is_some_and(|own| own.eq_ignore_ascii_case(host))
        }),
    };
    if cross_site {
        return Some(
            HttpResponse::Forbidden()
                .content_type("text/plain; charset=utf-8")
                .body("cross-origin requests from a browser may not change anything here\n"),
        );
    }
    // DNS rebinding: a page of evil.example whose name then resolves to
    // 127.0.0.1 is same-origin with a token-less listener on loopback. Such
    // a listener takes changes only from requests that name it by address
    // or as localhost, as the CLI, curl and scripts do.
    if token.is_none()
        && req.app_config().local_addr().ip().is_loopback()
        && field("host").is_some_and(|host| !names_this_machine(host))
    {
        return Some(
            HttpResponse::Forbidden()
                .content_type("text/plain; charset=utf-8")
                .body("a token-less admin listener on loopback takes changes only from requests to an IP address or localhost; set S3EDGE_ADMIN_TOKEN to reach it by another name\n"),
        );
    }
    check_token(req, token)
}

/// Whether a `Host` value names the machine itself: an IP address, or
/// `localhost` (and `*.localhost`, RFC 6761), with or without a port.
fn names_this_machine(host: &str) -> bool {
    if host.starts_with('[') {
        // An IPv6 literal: `[::1]:9090`.
        return true;
    }
    let name = host.rsplit_once(':').map_or(host, |(name, _)| name);
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    name.parse::<std::net::Ipv4Addr>().is_ok()
        || name == "localhost"
        || name.ends_with(".localhost")
}

/// `None` when the request may proceed; a 401 otherwise.
pub fn check_token(req: &HttpRequest, token: Option<&str>) -> Option<HttpResponse> {
    let token = token?;
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer_credentials)
        .unwrap_or("");
    if constant_time_eq(presented.as_bytes(), token.as_bytes()) {
        None
    } else {
        Some(
            HttpResponse::Unauthorized()
                .insert_header((header::WWW_AUTHENTICATE, "Bearer"))
                .content_type("text/plain; charset=utf-8")
                .body("missing or wrong bearer token\n"),
        )
    }
}

/// The token of an `Authorization: Bearer TOKEN` value; the scheme's name is
/// case-insensitive (RFC 9110 section 11.1), so `bearer` and `BEARER` do too.
fn bearer_credentials(value: &str) -> Option<&str> {
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim_start_matches(' '))
}

/// Compares two byte strings in time that depends only on their lengths.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = a.len() ^ b.len();
    for i in 0..a.len().max(b.len()) {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0xff);
        diff |= usize::from(x ^ y);
    }
    diff == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_machine_is_named_by_address_or_localhost() {
        for ours in [
            "127.0.0.1:9090",
            "127.0.0.1",
            "[::1]:9090",
            "localhost:9090",
            "LOCALHOST",
            "a.localhost:1",
            "10.0.0.5:9090",
        ] {
            assert!(names_this_machine(ours), "{ours}");
        }
        for other in [
            "evil.example:9090",
            "evil.example",
            "localhost.evil.example",
            "127.0.0.1.nip.io:9090",
        ] {
            assert!(!names_this_machine(other), "{other}");
        }
    }

    #[test]
    fn tokens_compare_equal_only_when_identical() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secret2"));
        assert!(!constant_time_eq(b"", b"x"));
        assert!(constant_time_eq(b"", b""));
    }
}
