//! An HTTP origin's requests: the fields forwarded (stages 4 and 6), and
//! stage 3c, the methods other than GET and HEAD passed through with their
//! bodies streamed, never stored, and invalidating what is stored for their
//! target and their `Location`/`Content-Location` (RFC 9111 section 4.4).

use std::borrow::Cow;
use std::sync::Arc;

use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use bytes::Bytes;
use futures_util::StreamExt;

use super::respond::origin_error_response;
use crate::cache::{Cache, PurgeScope};
use crate::config::HttpOriginConfig;
use crate::origin::http::{connection_tokens, field_text, is_hop_by_hop, outgoing_body};
use crate::site::Site;

/// Longest request target accepted for an HTTP origin, in bytes.
pub(super) const MAX_TARGET_BYTES: usize = 8 * 1024;

/// Request fields the cache decides for itself on a fill (its validators,
/// whole bodies), and `Expect`, which this node answers itself.
const CACHE_OWN_FIELDS: &[&str] = &[
    "if-none-match",
    "if-modified-since",
    "if-match",
    "if-unmodified-since",
    "if-range",
    "range",
    "expect",
    // A fill sends no body: a GET's `Content-Length` forwarded without its
    // bytes made the origin read the next request on the connection as the
    // body, and answer a request hidden in its fields (smuggled into the
    // cache under another key).
    "content-length",
];

/// The fields the origin gets: the client's end-to-end ones (for a cache
/// fill without its conditionals and `Range`), `Via`, and the forwarding
/// fields: `X-Forwarded-For` with the peer, `X-Forwarded-Proto` with the
/// client's scheme, `X-Forwarded-Host`. A peer's own `X-Forwarded-For` and
/// `Forwarded` go on only when it is one of the `trusted` proxies
/// (`--trusted-proxy`, DESIGN.md: only these may set them; Caddy drops them
/// likewise): else the origin would take an address or a scheme a client
/// chose for the client's. `scheme` is the one the trusted hops report
/// (`lookup::request_scheme`), so behind a load balancer that ends TLS the
/// origin hears `https`.
pub(super) fn forward_headers(
    req: &HttpRequest,
    for_cache: bool,
    trusted: &[ipnet::IpNet],
    scheme: crate::website::Protocol,
    node_id: &str,
) -> Vec<(String, String)> {
    let pairs = || {
        req.headers()
            .iter()
            .filter_map(|(n, v)| Some((n.as_str(), field_text(v.as_bytes())?)))
    };
    let tokens = connection_tokens(pairs());
    let mut forward: Vec<(String, String)> = pairs()
        .filter(|(name, _)| !is_hop_by_hop(name, &tokens))
        .filter(|(name, _)| !matches!(*name, "host" | "x-forwarded-proto" | "x-forwarded-host"))
        .filter(|(name, _)| !(for_cache && CACHE_OWN_FIELDS.contains(name)) && *name != "expect")
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect();
    let peer = crate::http::forwarded::peer(req);
    let believed = peer.is_some_and(|ip| crate::http::forwarded::is_trusted(ip, trusted));
    let mut via = String::new();
    let mut forwarded_for = String::new();
    let mut cookie = String::new();
    let mut cdn_loop = Vec::new();
    forward.retain(|(name, value)| match name.as_str() {
        "cdn-loop" => {
            cdn_loop.push(value.clone());
            false
        }
        "via" => {
            via = joined(&via, value);
            false
        }
        // HTTP/2 clients send each cookie as a field of its own; an HTTP/1.1
        // origin wants them as one, joined with `; ` (RFC 9113 section
        // 8.2.3; RFC 6265 section 5.4: one `Cookie` line).
        "cookie" => {
            if !cookie.is_empty() {
                cookie.push_str("; ");
            }
            cookie.push_str(value);
            false
        }
        "x-forwarded-for" => {
            if believed {
                forwarded_for = joined(&forwarded_for, value);
            }
            false
        }
        "forwarded" => believed,
        _ => true,
    });
    let version = match req.version() {
        actix_web::http::Version::HTTP_10 => "1.0",
        actix_web::http::Version::HTTP_2 => "2",
        _ => "1.1",
    };
    if !cookie.is_empty() {
        forward.push(("cookie".into(), cookie));
    }
    forward.push(("via".into(), joined(&via, &format!("{version} s3edge"))));
    // RFC 8586: the CDNs a request has passed, this node last, so an origin
    // that leads back to this node (or to another that forwards here) is
    // answered 508 there instead of looping (`handler::route`).
    let passed = crate::cluster::headers::cdn_loop_ids(cdn_loop.iter().map(String::as_str));
    forward.push((
        "cdn-loop".into(),
        crate::cluster::headers::cdn_loop_value(&passed, node_id),
    ));
    if let Some(peer) = peer {
        forward.push((
            "x-forwarded-for".into(),
            joined(&forwarded_for, &peer.to_string()),
        ));
    }
    forward.push(("x-forwarded-proto".into(), scheme.as_str().into()));
    // HTTP/2 names the host in `:authority`, not `Host`.
    if let Some(host) = super::request_host(req) {
        forward.push(("x-forwarded-host".into(), host.to_string()));
    }
    forward
}

/// An HTTP origin's `Location` and `Content-Location` that name the origin
/// itself, rewritten to name this site as the client asked for it (its
/// scheme and host), as nginx's `proxy_redirect default` does: the origin is
/// asked with its own `Host` (README), so a server that builds absolute
/// redirects from it (nginx's redirect of `/dir` to `/dir/`) would send
/// browsers to an address they may not reach, and show it to them. Only a
/// location under the site file's `url` (a whole path segment of its base
/// path) is rewritten, its rest kept; any other is left as it is.
pub(super) fn client_locations(
    response: &mut HttpResponse,
    origin: &HttpOriginConfig,
    scheme: &str,
    host: &str,
) {
    if host.is_empty() {
        return;
    }
    for name in [header::LOCATION, header::CONTENT_LOCATION] {
        let rewritten = response
            .headers()
            .get(&name)
            .and_then(|v| field_text(v.as_bytes()))
            .and_then(|location| client_location(location, origin, scheme, host))
            .and_then(|location| HeaderValue::from_str(&location).ok());
        if let Some(value) = rewritten {
            response.headers_mut().insert(name, value);
        }
    }
}

/// `location` under the origin's URL, as the same resource under
/// `scheme://host` (see [`client_locations`]).
fn client_location(
    location: &str,
    origin: &HttpOriginConfig,
    scheme: &str,
    host: &str,
) -> Option<String> {
    let rest = under_origin(location, origin)?;
    Some(format!("{scheme}://{host}{rest}"))
}

/// What follows the origin's URL in `location` (its path, query and
/// fragment past the base path, `/` when nothing does): what the client
/// asks for the same resource. `None` when `location` is not under the
/// origin's URL (another scheme, authority, or path segment).
fn under_origin<'a>(location: &'a str, origin: &HttpOriginConfig) -> Option<&'a str> {
    let site = format!("{}://{}", origin.scheme, origin.authority);
    let head = location.get(..site.len())?;
    if !head.eq_ignore_ascii_case(&site) {
        return None;
    }
    let rest = location[site.len()..].strip_prefix(origin.base_path.as_str())?;
    match rest.chars().next() {
        None => Some("/"),
        Some('/' | '?' | '#') => Some(rest),
        Some(_) => None,
    }
}

fn joined(list: &str, item: &str) -> String {
    if list.is_empty() {
        item.to_string()
    } else {
        format!("{list}, {item}")
    }
}

/// The request target (path and query) the origin is asked for and the
/// cache keeps its answer under: the client's, its path without
/// dot-segments ([`normalized_target`]); `Err` is the 400 for a target that
/// hides one.
pub(super) fn target(req: &HttpRequest) -> super::Stage<Cow<'_, str>> {
    let sent = req.uri().path_and_query().map_or("/", |p| p.as_str());
    match normalized_target(sent) {
        Ok(target) => std::ops::ControlFlow::Continue(target),
        Err(e) => std::ops::ControlFlow::Break(super::respond::error_page(
            StatusCode::BAD_REQUEST,
            &format!("Bad request: {e}."),
        )),
    }
}

/// `target` with the dot-segments of its path removed (RFC 3986 section
/// 5.2.4), `%2E` counted as the dot it encodes (section 6.2.2.2), never
/// climbing above the root: the origin is asked for a path under the site
/// file's `url`, never beside it (`/../private` would leave its base path,
/// and be cached as the site's). The query is kept as sent. A segment that
/// hides a dot-segment behind an encoded slash or backslash (`..%2F`,
/// `..%5C`), a backslash or a path parameter (`..;`) is refused: servers
/// differ in whether they split there, so no rewriting of it is safe
/// (nginx refuses `..%2F` above the root likewise). A path that does not
/// start with `/` is refused too: HTTP/1's parser never lets one through,
/// but an HTTP/2 `:path` of `../private` (malformed, RFC 9113 section
/// 8.3.1) was passed on untouched and joined to the base path as
/// `/base/../private`, which the origin resolved beside it. `*` (`OPTIONS *`)
/// is refused with them, as nginx refuses it.
pub(super) fn normalized_target(target: &str) -> Result<Cow<'_, str>, &'static str> {
    let (path, query) = target.split_at(target.find('?').unwrap_or(target.len()));
    if !path.starts_with('/') {
        return Err("the request target is not a path from the root");
    }
    // Most targets have no dot, `%` or backslash: nothing to remove.
    if !path.bytes().any(|b| matches!(b, b'.' | b'%' | b'\\')) {
        return Ok(Cow::Borrowed(target));
    }
    let mut dotted = false;
    let mut segments: Vec<&str> = Vec::new();
    for segment in path.split('/') {
        let decoded: Vec<u8> = percent_encoding::percent_decode_str(segment).collect();
        match String::from_utf8_lossy(&decoded).as_ref() {
            "." => {
                segments.push(".");
                dotted = true;
            }
            ".." => {
                segments.push("..");
                dotted = true;
            }
            other if other.split(['/', '\\', ';']).any(|p| p == "." || p == "..") => {
                return Err("the path hides a dot-segment");
            }
            _ => segments.push(segment),
        }
    }
    if !dotted {
        return Ok(Cow::Borrowed(target));
    }
    let path = crate::website::remove_dot_segments(&segments.join("/"));
    Ok(Cow::Owned(format!("{path}{query}")))
}

/// Whether `method` is safe (the IANA method registry: RFC 9110 9.2.1, and
/// WebDAV's PROPFIND, REPORT and SEARCH): its answer invalidates nothing
/// (RFC 9111 4.4 invalidates after unsafe methods, and methods whose safety
/// is unknown). A CORS preflight (OPTIONS) must not drop what it precedes.
fn is_safe(method: &Method) -> bool {
    matches!(
        method.as_str(),
        "GET" | "HEAD" | "OPTIONS" | "TRACE" | "PROPFIND" | "REPORT" | "SEARCH"
    )
}

/// Stage 3c: passes a request with a method other than GET and HEAD to the
/// origin, its body streamed as it arrives, and the answer back as it comes;
/// a non-error answer to an unsafe method invalidates the target and its `Location` and
/// `Content-Location` when they are on this site. `headers` are the fields
/// the origin gets ([`forward_headers`]).
pub(super) async fn pass_through(
    req: &HttpRequest,
    payload: web::Payload,
    site: &Arc<Site>,
    cache: &Arc<Cache>,
    headers: Vec<(String, String)>,
) -> HttpResponse {
    if matches!(*req.method(), Method::CONNECT | Method::TRACE) {
        return super::respond::error_page(
            StatusCode::METHOD_NOT_ALLOWED,
            "This method is not allowed here.",
        );
    }
    let Some(origin) = site.http_origin.clone() else {
        return super::respond::error_page(
            StatusCode::METHOD_NOT_ALLOWED,
            "This method is not allowed here.",
        );
    };
    let target = match target(req) {
        std::ops::ControlFlow::Continue(target) => target.into_owned(),
        std::ops::ControlFlow::Break(response) => return response,
    };
    // actix's payload lives on this worker thread; hyper's body must be
    // `Send`: a bounded channel carries the chunks across, so an upload
    // streams with at most a few chunks in memory.
    let (sender, receiver) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    let (body_sent, sent) = tokio::sync::oneshot::channel();
    // The status the client's own body earned, when it failed: 400 when it
    // could not be read as its framing says (a broken chunk, an HTTP/2 body
    // longer or shorter than its `content-length`, a client gone before its
    // `Content-Length` was sent), 408 when it stopped arriving for the stall
    // timeout (`--stall-timeout`, nginx's `client_body_timeout`). The
    // origin's failure is then the client's, not a 502 and an error on the
    // log that any client could fill.
    let refused = Arc::new(std::sync::atomic::AtomicU16::new(0));
    let body_refused = refused.clone();
    actix_web::rt::spawn(async move {
        let mut payload = payload;
        loop {
            let next = match actix_http::h1::send_timeout() {
                Some(limit) => tokio::time::timeout(limit, payload.next())
                    .await
                    .unwrap_or_else(|_| {
                        body_refused.store(408, std::sync::atomic::Ordering::Release);
                        Some(Err(actix_web::error::PayloadError::Incomplete(None)))
                    }),
                None => payload.next().await,
            };
            let Some(chunk) = next else { break };
            if chunk.is_err() {
                let _ = body_refused.compare_exchange(
                    0,
                    400,
                    std::sync::atomic::Ordering::AcqRel,
                    std::sync::atomic::Ordering::Acquire,
                );
            }
            let chunk = chunk.map_err(|e| std::io::Error::other(e.to_string()));
            let failed = chunk.is_err();
            if sender.send(chunk).await.is_err() || failed {
                break;
            }
        }
        let _ = body_sent.send(());
    });
    let body = outgoing_body(tokio_stream_of(receiver));
    let method = req.method().as_str().to_string();
    let started = std::time::Instant::now();
    let forwarded = match origin.forward(&method, &target, &headers, body, sent).await {
        Ok(forwarded) => {
            cache.count_passed(site, started, Ok(forwarded.status));
            forwarded
        }
        Err(e) => {
            let (status, message) = match refused.load(std::sync::atomic::Ordering::Acquire) {
                0 => {
                    cache.count_passed(site, started, Err(&e));
                    return origin_error_response(site, &target, &e);
                }
                408 => (
                    StatusCode::REQUEST_TIMEOUT,
                    "The request body stopped arriving.",
                ),
                _ => (
                    StatusCode::BAD_REQUEST,
                    "Bad request: the request body is malformed or was cut short.",
                ),
            };
            tracing::debug!(site = site.name(), target, "the client's body failed: {e}");
            // The rest of the body is not waited for (RFC 9110 15.5.9).
            let mut response = super::respond::error_page(status, message);
            response
                .head_mut()
                .set_connection_type(actix_web::http::ConnectionType::Close);
            return response;
        }
    };
    if (200..400).contains(&forwarded.status) && !is_safe(req.method()) {
        let mut keys = vec![target.clone()];
        let host = super::request_host(req).unwrap_or("");
        let origin_url = site.config.origin.http.as_ref();
        for (name, value) in &forwarded.headers {
            if name.eq_ignore_ascii_case("location")
                || name.eq_ignore_ascii_case("content-location")
            {
                let local = same_site_target(value, &target, host, origin_url);
                if let Some(local) = local.as_deref().and_then(|t| normalized_target(t).ok()) {
                    keys.push(local.into_owned());
                }
            }
        }
        invalidate(cache, site, keys).await;
    }
    let status = StatusCode::from_u16(forwarded.status).unwrap_or(StatusCode::BAD_GATEWAY);
    let mut response = HttpResponse::build(status);
    for (name, value) in &forwarded.headers {
        if name.eq_ignore_ascii_case("content-length") {
            continue;
        }
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            response.append_header((name, value));
        }
    }
    let length = forwarded
        .headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse::<u64>().ok());
    match length {
        Some(len) if req.method() == Method::HEAD => response.body(super::body::HeadBody(len)),
        Some(len) => response.body(actix_web::body::SizedStream::new(
            len,
            super::body::LengthChecked::new(forwarded.body, len),
        )),
        None => response.streaming(forwarded.body),
    }
}

/// A `Location` or `Content-Location` on the request's own host (or
/// relative), as a request target; `None` for another host (RFC 9111 4.4:
/// only URIs with the same origin are invalidated). One under the `origin`'s
/// own URL is this site too: the origin is asked with its own `Host`, so an
/// application builds its absolute redirects from that, and the client gets
/// them rewritten to this site ([`client_locations`]).
///
/// A relative reference without a leading `/` (`t3?x`, `../y`, `?q`) is
/// resolved against `request`, the target the answer is for (RFC 3986
/// section 5.2; the caller removes dot-segments).
fn same_site_target(
    value: &str,
    request: &str,
    host: &str,
    origin: Option<&HttpOriginConfig>,
) -> Option<String> {
    let value = percent_encoded(value.trim());
    let value = value.split('#').next().unwrap_or_default();
    if !value.starts_with('/') && !has_scheme(value) {
        let path = request.split('?').next().unwrap_or_default();
        return Some(if value.is_empty() {
            request.to_string()
        } else if value.starts_with('?') {
            format!("{path}{value}")
        } else {
            let directory = &path[..path.rfind('/').map_or(0, |at| at + 1)];
            format!("{directory}{value}")
        });
    }
    if let Some(rest) = origin.and_then(|origin| under_origin(value, origin)) {
        return Some(if rest.starts_with('/') {
            rest.to_string()
        } else {
            format!("/{rest}")
        });
    }
    if value.starts_with('/') && !value.starts_with("//") {
        return Some(value.to_string());
    }
    let uri = value.parse::<actix_web::http::Uri>().ok()?;
    let authority = uri.authority()?.as_str();
    if !authority.eq_ignore_ascii_case(host) {
        return None;
    }
    Some(uri.path_and_query().map_or("/", |p| p.as_str()).to_string())
}

/// Whether a URI reference starts with a scheme (RFC 3986 section 3.1:
/// a letter, then letters, digits, `+`, `-`, `.`, up to a `:`).
fn has_scheme(reference: &str) -> bool {
    let Some((scheme, _)) = reference.split_once(':') else {
        return false;
    };
    let mut chars = scheme.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
}

/// `location` with its non-ASCII bytes (raw UTF-8, which origins send for
/// `/café`) percent-encoded, as a browser encodes them when it follows it:
/// the request target the cache keeps such a resource under.
fn percent_encoded(location: &str) -> std::borrow::Cow<'_, str> {
    percent_encoding::utf8_percent_encode(location, percent_encoding::CONTROLS).into()
}

/// Removes what is stored for `keys` (all their `Vary` selections), behind
/// the purge barrier like any purge.
pub(super) async fn invalidate(cache: &Arc<Cache>, site: &Site, keys: Vec<String>) {
    let scope = PurgeScope {
        keys,
        prefixes: Vec::new(),
    };
    let _ = cache.purge_off_thread(site.name(), scope).await;
}

/// A stream of a channel's items.
fn tokio_stream_of<T: Send + 'static>(
    receiver: tokio::sync::mpsc::Receiver<T>,
) -> impl futures_util::Stream<Item = T> + Send + 'static {
    futures_util::stream::unfold(receiver, |mut receiver| async move {
        receiver.recv().await.map(|item| (item, receiver))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fill_never_forwards_a_content_length_it_sends_no_body_for() {
        let req = actix_web::test::TestRequest::get()
            .uri("/f.html")
            .insert_header(("content-length", "48"))
            .insert_header(("x-app", "1"))
            .insert_header(("cdn-loop", "cdn-a, cdn-b; v=2"))
            .to_http_request();
        let filled = forward_headers(&req, true, &[], crate::website::Protocol::Http, "n1");
        let cdn_loop: Vec<_> = filled.iter().filter(|(n, _)| n == "cdn-loop").collect();
        assert_eq!(
            cdn_loop,
            [&("cdn-loop".to_string(), "cdn-a, cdn-b, n1".to_string())],
            "the client's CDN-Loop, then this node"
        );
        assert!(
            !filled.iter().any(|(n, _)| n == "content-length"),
            "{filled:?}"
        );
        assert!(filled.iter().any(|(n, _)| n == "x-app"));
        let passed = forward_headers(&req, false, &[], crate::website::Protocol::Http, "n1");
        assert!(passed.iter().any(|(n, _)| n == "content-length"));
    }

    #[test]
    fn dot_segments_are_removed_and_hidden_ones_refused() {
        let normalized = |t: &str| normalized_target(t).map(Cow::into_owned);
        for plain in ["/", "/a/b.css?x=../y", "/caf%C3%A9/v1.2/", "/a..b/..."] {
            assert!(
                matches!(normalized_target(plain), Ok(Cow::Borrowed(_))),
                "{plain}"
            );
        }
        assert_eq!(normalized("/../x").unwrap(), "/x");
        assert_eq!(normalized("/a/%2e/b/%2E%2e/c?q").unwrap(), "/a/c?q");
        assert_eq!(normalized("/a/b/..").unwrap(), "/a/");
        assert_eq!(normalized("/a%2Fb/./c").unwrap(), "/a%2Fb/c");
        for hidden in [
            "/..%2Fx",
            "/a/.%5cx",
            "/..\\x",
            "/..;x/y",
            "/x/.;/y",
            "../x",
            "%2e%2e/x",
            "x/../../y",
            "*",
            "",
            "?q",
        ] {
            assert!(normalized(hidden).is_err(), "{hidden}");
        }
    }

    fn same_site_target_of(
        value: &str,
        host: &str,
        origin: Option<&HttpOriginConfig>,
    ) -> Option<String> {
        same_site_target(value, "/dir/page?x=1", host, origin)
    }

    #[test]
    fn relative_references_are_resolved_against_the_request() {
        for (location, expected) in [
            ("t3?h=1", "/dir/t3?h=1"),
            ("../up", "/dir/../up"),
            ("?q=2", "/dir/page?q=2"),
            ("", "/dir/page?x=1"),
            ("sub/x#frag", "/dir/sub/x"),
            ("a:b/c", "/dir/a:b/c"),
        ] {
            let resolved = same_site_target_of(location, "h", None);
            if location == "a:b/c" {
                // A scheme `a`: another URI altogether.
                assert_eq!(resolved, None, "{location}");
            } else {
                assert_eq!(resolved.as_deref(), Some(expected), "{location}");
            }
        }
        assert_eq!(
            normalized_target(&same_site_target_of("../up", "h", None).unwrap()).unwrap(),
            "/up"
        );
    }

    #[test]
    fn only_locations_on_the_same_host_are_invalidated() {
        assert_eq!(same_site_target_of("/a?b", "h", None), Some("/a?b".into()));
        assert_eq!(
            same_site_target_of("http://h/x", "h", None),
            Some("/x".into())
        );
        assert_eq!(same_site_target_of("http://other/x", "h", None), None);
        assert_eq!(same_site_target_of("//other/x", "h", None), None);
        assert_eq!(
            same_site_target_of("/caf\u{e9}/men\u{fc}?q=\u{e9}", "h", None),
            Some("/caf%C3%A9/men%C3%BC?q=%C3%A9".into())
        );
        assert_eq!(
            same_site_target_of("http://h/caf\u{e9}", "h", None),
            Some("/caf%C3%A9".into())
        );
    }

    #[test]
    fn locations_under_the_origin_s_own_url_are_the_site_s() {
        let origin = |base: &str| HttpOriginConfig {
            scheme: "http".into(),
            authority: "10.0.0.5:8080".into(),
            base_path: base.into(),
        };
        for (location, base, expected) in [
            ("http://10.0.0.5:8080/item?id=7", "", Some("/item?id=7")),
            ("HTTP://10.0.0.5:8080/item#top", "", Some("/item")),
            ("http://10.0.0.5:8080", "", Some("/")),
            ("http://10.0.0.5:8080?q", "", Some("/?q")),
            ("http://10.0.0.5:8080/app/x", "/app", Some("/x")),
            ("http://10.0.0.5:8080/app", "/app", Some("/")),
            ("http://10.0.0.5:8080/apple", "/app", None),
            ("https://10.0.0.5:8080/x", "", None),
            ("http://10.0.0.5:80801/x", "", None),
            ("/relative#f", "", Some("/relative")),
            ("http://h/x", "", Some("/x")),
        ] {
            assert_eq!(
                same_site_target(location, "/r/p?q", "h", Some(&origin(base))).as_deref(),
                expected,
                "{location} under {base:?}"
            );
        }
    }

    #[test]
    fn locations_under_the_origin_s_url_name_the_site_as_the_client_asked() {
        let origin = |base: &str| HttpOriginConfig {
            scheme: "http".into(),
            authority: "10.0.0.5:8080".into(),
            base_path: base.into(),
        };
        let rewrite = |location: &str, base: &str| {
            client_location(location, &origin(base), "https", "www.example.com")
        };
        for (location, base, expected) in [
            (
                "http://10.0.0.5:8080/dir/",
                "",
                Some("https://www.example.com/dir/"),
            ),
            (
                "HTTP://10.0.0.5:8080/a?b=1",
                "",
                Some("https://www.example.com/a?b=1"),
            ),
            ("http://10.0.0.5:8080", "", Some("https://www.example.com/")),
            (
                "http://10.0.0.5:8080/app/x",
                "/app",
                Some("https://www.example.com/x"),
            ),
            (
                "http://10.0.0.5:8080/app",
                "/app",
                Some("https://www.example.com/"),
            ),
            ("http://10.0.0.5:8080/apple", "/app", None),
            ("http://10.0.0.5:80801/x", "", None),
            ("https://10.0.0.5:8080/x", "", None),
            ("http://elsewhere.example/x", "", None),
            ("/relative", "", None),
        ] {
            assert_eq!(
                rewrite(location, base).as_deref(),
                expected,
                "{location} under {base:?}"
            );
        }
    }
}
