//! Stages 5 to 9: the website rules around a read through the cache, then the
//! encoding variant and the representation (docs/ARCHITECTURE.md, "Request
//! pipeline"). Each function returns what it delivered: the response, what
//! the cache did, the origin's request id, whether the answer varies by
//! `Accept-Encoding`.

use std::sync::Arc;

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::{StatusCode, Version};
use actix_web::{HttpRequest, HttpResponse};

use super::body::{HeadBody, LengthChecked};
use super::object;
use super::respond::{error_page, origin_error_response, redirect_response};
use crate::cache::{Answer, Cache, CacheOutcome, Fetch, Payload, Request, Want, Wire};
use crate::compress::{self, ContentCoding};
use crate::config::CompressionConfig;
use crate::http::{mime, range};
use crate::origin::{ObjectMeta, OriginError};
use crate::site::Site;
use crate::website::{self, RedirectTarget, RequestInfo, WebsiteConfig};

/// What one request needs while it runs through stages 5 to 9.
pub(super) struct Lookup<'a> {
    pub req: &'a HttpRequest,
    pub site: &'a Arc<Site>,
    pub cache: &'a Arc<Cache>,
    pub head: bool,
    pub info: RequestInfo<'a>,
    /// An HTTP origin's site: the end-to-end fields forwarded (`proxy.rs`).
    pub forward: &'a [(String, String)],
    /// How the client's connection takes a body (`wire::wire_of`).
    pub wire: Wire,
}

/// What stages 5 to 9 delivered.
pub(super) struct Delivered {
    pub response: HttpResponse,
    /// What the cache did for the request (see [`CacheOutcome::rank`]);
    /// `None` when no read went through the cache (a redirect before the
    /// lookup): no lookup to count.
    pub cache: Option<CacheOutcome>,
    pub request_id: Option<String>,
    /// The representation is compressible: answers vary by `Accept-Encoding`.
    pub vary_accept_encoding: bool,
}

/// What the reads of one request did.
struct Trace {
    cache: Option<CacheOutcome>,
    request_id: Option<String>,
    vary_accept_encoding: bool,
}

impl Trace {
    fn new() -> Trace {
        Trace {
            cache: None,
            request_id: None,
            vary_accept_encoding: false,
        }
    }

    /// Notes an answer and hands over its result.
    fn note(&mut self, answer: Answer) -> Result<Fetch, OriginError> {
        self.noted(answer.outcome, answer.request_id);
        answer.result
    }

    /// Keeps the outcome of the read that went farthest (the latest among
    /// equals): a hit on the error document after the missing page's miss
    /// leaves the request a miss.
    fn noted(&mut self, outcome: CacheOutcome, request_id: Option<String>) {
        if self.cache.is_none_or(|kept| outcome.rank() >= kept.rank()) {
            self.cache = Some(outcome);
        }
        if request_id.is_some() {
            self.request_id = request_id;
        }
    }

    fn deliver(self, response: HttpResponse) -> Delivered {
        Delivered {
            response,
            cache: self.cache,
            request_id: self.request_id,
            vary_accept_encoding: self.vary_accept_encoding,
        }
    }
}

impl Lookup<'_> {
    /// Stage 6: `key` (without the site's prefix) through the cache. With
    /// `ranges`, a single valid `Range` is forwarded when the object is not
    /// cached (see [`Want::Range`]).
    async fn fetch(&self, key: &str, ranges: bool) -> Answer {
        let object_key = self.site.object_key(key);
        let spec = ranges
            .then(|| range::single_range_spec(object::range_header(self.req)))
            .flatten();
        let want = match spec {
            Some(spec) => Want::Range {
                spec,
                if_range: self
                    .req
                    .headers()
                    .get(header::IF_RANGE)
                    .map(|v| v.to_str().unwrap_or("").to_string()),
            },
            None => Want::Object,
        };
        self.cache
            .fetch(Request {
                site: self.site,
                object_key: &object_key,
                want,
                forward: self.forward,
                wire: self.wire,
            })
            .await
    }

    /// Stage 8: swaps a compressible representation for the variant the
    /// client accepts (through the cache), and marks the answer as varying by
    /// `Accept-Encoding`.
    async fn encode(
        &self,
        key: &str,
        fetch: Fetch,
        trace: &mut Trace,
    ) -> Result<Fetch, OriginError> {
        let config = &self.site.config.compression;
        let whole = matches!(fetch.payload, Payload::Stream(_) | Payload::File(_));
        // An HTTP origin's answer is compressed only when it is a 200 that
        // does not vary already, but for `Accept-Encoding`: its variants are
        // keyed by the target alone.
        let varies = self.site.config.is_http_origin()
            && (fetch.meta.status() != 200 || varies_beyond_encoding(&fetch.meta));
        if varies || !compressible(config, key, &fetch) {
            return Ok(fetch);
        }
        // Every answer for a compressible representation varies by
        // `Accept-Encoding`: a range of it (from the origin, served as the
        // identity's) too.
        trace.vary_accept_encoding = true;
        if !whole {
            return Ok(fetch);
        }
        let Some(coding) = chosen_coding(self.req, config) else {
            return Ok(fetch);
        };
        let object_key = self.site.object_key(key);
        let answer = self
            .cache
            .fetch(Request {
                site: self.site,
                object_key: &object_key,
                want: Want::Variant {
                    identity: Box::new(fetch),
                    coding,
                },
                forward: self.forward,
                wire: self.wire,
            })
            .await;
        answer.result
    }

    /// Stage 7's directory probe: does `object_key` exist? An origin that
    /// fails (rather than answering 404 or 403) is an error: the key may well
    /// exist.
    async fn exists(&self, object_key: &str, trace: &mut Trace) -> Result<bool, OriginError> {
        let answer = self
            .cache
            .fetch(Request {
                site: self.site,
                object_key,
                want: Want::Exists,
                forward: &[],
                wire: Wire::Memory,
            })
            .await;
        trace.noted(answer.outcome, answer.request_id);
        match answer.result {
            Ok(_) => Ok(true),
            Err(OriginError::NotFound { .. } | OriginError::Denied { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }
}

/// Whether answers for this representation vary by `Accept-Encoding`
/// (`compress::compressible`, with the type served for `key`, decided once
/// per entry: [`object::prepare`]).
fn compressible(config: &CompressionConfig, key: &str, fetch: &Fetch) -> bool {
    let meta = &fetch.meta;
    let compressible_type = match fetch.prepared(key, || object::prepare(meta, key)) {
        Some(prepared) => prepared.compressible_type,
        None => object::compressible_type(meta, key),
    };
    compress::compressible(
        config,
        &compress::Representation {
            compressible_type,
            content_encoding: meta.content_encoding.as_deref(),
            cache_control: meta.cache_control.as_deref(),
            // The representation's, not a range's.
            length: match &fetch.payload {
                Payload::Range { total, .. } => *total,
                _ => meta.content_length,
            },
        },
    )
}

/// Whether an HTTP origin's answer varies by a field other than
/// `Accept-Encoding`. One that varies by that alone (nginx's `gzip_vary`,
/// which it adds even to the uncoded answers it sends a proxy) is compressed
/// as any other: a content coding does not change what the representation
/// is (RFC 9110 section 8.4), so a variant made from the uncoded answer
/// serves every client that accepts its coding. An answer the origin coded
/// itself is not compressed again (`compressible`).
fn varies_beyond_encoding(meta: &ObjectMeta) -> bool {
    crate::cache::vary_names(meta)
        .iter()
        .any(|name| name != "accept-encoding")
}

/// The coding the client gets, if any: none for ranges and HTTP/1.0
/// (ranges are served from the identity representation, as CloudFront does).
fn chosen_coding(req: &HttpRequest, config: &CompressionConfig) -> Option<ContentCoding> {
    if object::range_header(req).is_some() {
        return None;
    }
    let lines: Vec<&str> = req
        .headers()
        .get_all(header::ACCEPT_ENCODING)
        .filter_map(|v| v.to_str().ok())
        .collect();
    let accept = (!lines.is_empty()).then(|| lines.join(", "));
    let http10 = req.version() < Version::HTTP_11;
    compress::negotiate(accept.as_deref(), &config.algorithms, http10).coding()
}

/// Serves `key` as an asset CDN does: the key as it is, no website rules.
pub(super) async fn serve_key(lookup: &Lookup<'_>, key: &str) -> Delivered {
    let mut trace = Trace::new();
    let fetched = trace.note(lookup.fetch(key, true).await);
    let encoded = match fetched {
        Ok(fetch) => lookup.encode(key, fetch, &mut trace).await,
        Err(e) => Err(e),
    };
    let response = match encoded {
        Ok(fetch) => object::respond(lookup, key, fetch),
        Err(e) => missing_or_error(lookup, key, &e),
    };
    trace.deliver(response)
}

/// The answer for an origin error without website rules: the small built-in page.
fn missing_or_error(lookup: &Lookup<'_>, key: &str, error: &OriginError) -> HttpResponse {
    origin_error_response(lookup.site, &lookup.site.object_key(key), error)
}

/// The status a failed lookup has for the website rules: 404 or 403 (403 becomes
/// 404 with `denied_as_missing`); `None` for origin failures.
fn client_status(site: &Site, error: &OriginError) -> Option<u16> {
    match error {
        OriginError::NotFound { .. } => Some(404),
        OriginError::Denied { .. } if site.config.origin.denied_as_missing => Some(404),
        OriginError::Denied { .. } => Some(403),
        _ => None,
    }
}

/// Serves a request with the S3 website rules: stage 5 (redirects before the
/// lookup), 6 (the read), 7 (the rules after a failed read), 8 and 9.
pub(super) async fn serve_website(
    lookup: &Lookup<'_>,
    config: &WebsiteConfig,
    key: &str,
) -> Delivered {
    let mut trace = Trace::new();
    let response = website_response(lookup, config, key, &mut trace).await;
    trace.deliver(response)
}

async fn website_response(
    lookup: &Lookup<'_>,
    config: &WebsiteConfig,
    key: &str,
    trace: &mut Trace,
) -> HttpResponse {
    // 5. Redirects decided before the lookup.
    let lookup_key = match website::plan(config, key, &lookup.info) {
        website::Plan::Redirect(target) => return redirect_response(&target),
        website::Plan::Lookup { key } => key,
    };
    // 6. The read.
    let error = match trace.note(lookup.fetch(&lookup_key, true).await) {
        Ok(fetch) => {
            if let Some(location) = redirect_of(&fetch) {
                return object_redirect(location);
            }
            // 8 and 9.
            return match lookup.encode(&lookup_key, fetch, trace).await {
                Ok(fetch) => object::respond(lookup, &lookup_key, fetch),
                Err(e) => missing_or_error(lookup, &lookup_key, &e),
            };
        }
        Err(error) => error,
    };
    // 7. The rules after a failed read.
    let Some(status) = client_status(lookup.site, &error) else {
        return missing_or_error(lookup, &lookup_key, &error);
    };
    // `/dir` with no object `dir` but an object `dir/<index>`: 302 to `/dir/`.
    if status == 404 {
        if let Some(index_key) = website::directory_index_key(config, &lookup_key) {
            let index_object = lookup.site.object_key(&index_key);
            match Box::pin(lookup.exists(&index_object, trace)).await {
                Ok(true) => {
                    return redirect_response(&website::directory_redirect(
                        &lookup_key,
                        &lookup.info,
                    ));
                }
                Ok(false) => {}
                Err(e) => return missing_or_error(lookup, &index_key, &e),
            }
        }
    }
    if let Some(target) = website::redirect_on_error(config, &lookup_key, status, &lookup.info) {
        return redirect_response(&target);
    }
    if status == 404 && config.spa_fallback {
        if let Some(response) = Box::pin(spa_fallback(lookup, config, trace)).await {
            return response;
        }
    }
    // The rules after a failed read are boxed: a hit's future stays small.
    Box::pin(error_document(lookup, config, status, trace)).await
}

/// An object's `x-amz-website-redirect-location`, when it is one S3 would
/// have stored (a bucket of another store may keep any value: a `javascript:`
/// one is no redirect, the object is served).
fn redirect_of(fetch: &Fetch) -> Option<&str> {
    let location = fetch.meta.website_redirect_location.as_deref()?;
    if website::valid_redirect_location(location) {
        return Some(location);
    }
    tracing::debug!(
        location,
        "ignoring an object's website redirect location S3 would refuse"
    );
    None
}

/// `x-amz-website-redirect-location` on an object: 301 to it, never its bytes.
fn object_redirect(location: &str) -> HttpResponse {
    redirect_response(&RedirectTarget {
        status: website::PERMANENT_REDIRECT_STATUS,
        location: website::sanitize_location(location),
    })
}

/// SPA fallback: the root index document as `/` serves it (compressed, with
/// its validators, so a deep link's conditional request gets a 304; HEAD as
/// GET), with `Cache-Control: no-cache` so a browser asks again each time.
/// Every deep link of a single-page app comes here: before, each one sent
/// the page whole and uncompressed, with nothing to revalidate it by.
async fn spa_fallback(
    lookup: &Lookup<'_>,
    config: &WebsiteConfig,
    trace: &mut Trace,
) -> Option<HttpResponse> {
    let index = config.index_document.as_deref()?;
    let fetch = trace.note(lookup.fetch(index, false).await).ok()?;
    let fetch = lookup.encode(index, fetch, trace).await.ok()?;
    let mut response = object::respond(lookup, index, fetch);
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    Some(response)
}

/// The error document's body and type with the original status (for HEAD,
/// the same header fields without the body, as RFC 9110 section 9.3.2 asks:
/// it had the built-in page's length, and a status of its own when the
/// document redirects). A missing error document gives the built-in page.
async fn error_document(
    lookup: &Lookup<'_>,
    config: &WebsiteConfig,
    status: u16,
    trace: &mut Trace,
) -> HttpResponse {
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::NOT_FOUND);
    let builtin = || match status {
        403 => error_page(code, "You may not see this page."),
        _ => error_page(code, "The page you asked for does not exist."),
    };
    let Some(document) = config.error_document.as_deref() else {
        return builtin();
    };
    let fetched = match trace.note(lookup.fetch(document, false).await) {
        Ok(fetch) => {
            if let Some(location) = redirect_of(&fetch) {
                return object_redirect(location);
            }
            // The error document's body is compressed like any other page.
            lookup.encode(document, fetch, trace).await
        }
        Err(e) => Err(e),
    };
    match fetched {
        Ok(fetch) => body_with_status(lookup, document, fetch, code),
        Err(e) if e.is_client_error() => builtin(),
        Err(e) => missing_or_error(lookup, document, &e),
    }
}

/// An object's body and Content-Type with a chosen status; the request's
/// conditional and range headers do not apply.
fn body_with_status(
    lookup: &Lookup<'_>,
    key: &str,
    fetch: Fetch,
    status: StatusCode,
) -> HttpResponse {
    let content_type = mime::content_type(fetch.meta.content_type.as_deref(), key);
    let mut response = HttpResponse::build(status);
    response.insert_header((header::CONTENT_TYPE, content_type));
    if status != StatusCode::OK {
        response.insert_header((header::CACHE_CONTROL, "no-store"));
    }
    if let Some(coding) = fetch.meta.content_encoding.as_deref() {
        response.insert_header((header::CONTENT_ENCODING, coding.to_string()));
    }
    let length = fetch.meta.content_length;
    if let Payload::Unsized(body) = fetch.payload {
        if lookup.head {
            return response.body(object::no_length());
        }
        return response.body(actix_web::body::BodyStream::new(body));
    }
    if lookup.head {
        return response.body(HeadBody(length));
    }
    let body = LengthChecked::new(fetch.payload.into_stream(), length);
    response.body(actix_web::body::SizedStream::new(length, body))
}

/// The scheme the client used: https on a TLS listener, or what a trusted proxy
/// says in `X-Forwarded-Proto` / `Forwarded: proto=`.
pub(super) fn request_scheme(req: &HttpRequest, trusted: &[ipnet::IpNet]) -> website::Protocol {
    match crate::http::forwarded::from_request(req, trusted).scheme {
        crate::http::forwarded::Scheme::Https => website::Protocol::Https,
        crate::http::forwarded::Scheme::Http => website::Protocol::Http,
    }
}
