//! Stages 4 and 5: fetching what the client asked for, with the S3 website rules
//! around the lookup (index documents, implicit directory redirects, routing rules
//! on errors, SPA fallback, error documents).

use std::time::Instant;

use futures_util::StreamExt;

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse};

use super::body::LengthChecked;
use super::cached::{CacheOutcome, Fetcher};
use super::encoding;
use super::object::{self, Fetch};
use super::respond::{error_page, origin_error_response, redirect_response};
use super::Exchange;
use crate::cache::EntryKind;
use crate::http::range;
use crate::origin::{Fetched, ObjectMeta, ObjectRequest, OriginError};
use crate::site::Site;
use crate::website::{self, RedirectTarget, RequestInfo, WebsiteConfig};

/// What one request needs while it runs through the lookup stages.
pub(super) struct Lookup<'a> {
    pub req: &'a HttpRequest,
    pub site: &'a Site,
    pub fetcher: Fetcher,
    pub head: bool,
    pub info: RequestInfo<'a>,
}

impl Lookup<'_> {
    /// Does `object_key` exist? The cache answers when it can, else an origin
    /// HEAD; an origin that fails (rather than answering 404 or 403) is an error:
    /// the key may well exist.
    async fn origin_exists(
        &self,
        object_key: &str,
        exchange: &mut Exchange,
    ) -> Result<bool, OriginError> {
        if let Some(entry) = self.fetcher.cached(object_key).await {
            return Ok(entry.kind == EntryKind::Object);
        }
        let started = Instant::now();
        let result = self.site.origin.head(object_key).await;
        let outcome = match &result {
            Ok(_) => "ok",
            Err(e) => e.outcome(),
        };
        self.fetcher.count_origin(started, outcome);
        match result {
            Ok(meta) => {
                exchange.origin_request_id = meta.request_id;
                Ok(true)
            }
            Err(OriginError::NotFound { .. } | OriginError::Denied { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Fetches `key` (without the site's prefix) for the client's request, through
    /// the cache. A single valid `Range` on an object that is not cached is
    /// forwarded so a range of a large object costs only its bytes (the origin's
    /// `Content-Range` is checked before its bytes are used), and the whole object
    /// then fills the cache in the background when it fits.
    pub async fn fetch(
        &self,
        key: &str,
        ranges: bool,
        exchange: &mut Exchange,
    ) -> Result<Fetch, OriginError> {
        let object_key = self.site.object_key(key);
        let spec = if ranges {
            range::single_range_spec(object::range_header(self.req))
        } else {
            None
        };
        let cached = match spec {
            Some(spec) => match self.fetcher.cached(&object_key).await {
                Some(entry) => Some(entry),
                None => {
                    if let Some(fetch) = self.fetch_range(&object_key, &spec, exchange).await? {
                        return Ok(fetch);
                    }
                    None
                }
            },
            None => None,
        };
        let answer = match cached {
            Some(entry) => self.fetcher.fetch_from(&object_key, Some(entry)).await,
            None => self.fetcher.fetch(&object_key).await,
        };
        exchange.cache = answer.outcome;
        if answer.request_id.is_some() {
            exchange.origin_request_id = answer.request_id;
        }
        answer.result
    }

    /// A ranged GET to the origin. `Ok(None)` when the whole object is needed
    /// instead (the origin cannot satisfy the range, or If-Range does not hold).
    async fn fetch_range(
        &self,
        object_key: &str,
        spec: &str,
        exchange: &mut Exchange,
    ) -> Result<Option<Fetch>, OriginError> {
        let request = ObjectRequest {
            range: Some(spec.to_string()),
            ..ObjectRequest::new(object_key)
        };
        let (result, request_id) = self.fetcher.origin_get(&request).await;
        exchange.origin_request_id = request_id;
        exchange.cache = CacheOutcome::Pass;
        match result {
            Ok(Fetched::Object { meta, body }) => match checked_origin_range(spec, &meta)? {
                // The origin ignored the range: the edge cuts it.
                None => Ok(Some(Fetch {
                    meta,
                    body,
                    origin_range: None,
                    age: None,
                    length_unknown: false,
                    file: None,
                })),
                Some((range, total)) if object::if_range_holds(self.req, &meta) => {
                    if self.fetcher.cache.can_store(total) {
                        self.fill_in_background(object_key);
                    }
                    Ok(Some(Fetch {
                        meta,
                        body,
                        origin_range: Some((range, total)),
                        age: None,
                        length_unknown: false,
                        file: None,
                    }))
                }
                // If-Range does not hold: the client gets the whole object.
                Some(_) => Ok(None),
            },
            Ok(Fetched::NotModified { .. }) => {
                Err(OriginError::Invalid("304 to an unconditional GET".into()))
            }
            // Unsatisfiable at the origin: the edge answers 416 from the full
            // object's length (or ignores the range for an empty object).
            Err(OriginError::RangeNotSatisfiable { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Stage 7: swaps a compressible representation for the variant the client
    /// accepts, and marks the answer as varying by `Accept-Encoding`.
    pub async fn encode(&self, key: &str, fetch: Fetch, exchange: &mut Exchange) -> Fetch {
        let config = &self.site.config.compression;
        if fetch.origin_range.is_some() || !encoding::compressible(config, key, &fetch.meta) {
            return fetch;
        }
        exchange.vary_accept_encoding = true;
        match encoding::chosen_coding(self.req, config) {
            Some(coding) => {
                encoding::variant(&self.fetcher, &self.site.object_key(key), fetch, coding).await
            }
            None => fetch,
        }
    }

    /// Fills the cache with the whole object, detached from this request.
    fn fill_in_background(&self, object_key: &str) {
        let fetcher = self.fetcher.clone();
        let object_key = object_key.to_string();
        tokio::spawn(async move {
            if let Ok(fetch) = fetcher.fetch(&object_key).await.result {
                let mut body = fetch.body;
                while body.next().await.is_some() {}
            }
        });
    }
}

/// Checks an origin's answer to a forwarded range: `Ok(None)` when it sent the
/// whole object (200), the range and complete length when its 206 matches the
/// spec, an error when it does not.
fn checked_origin_range(
    spec: &str,
    meta: &ObjectMeta,
) -> Result<Option<(range::ByteRange, u64)>, OriginError> {
    let Some(content_range) = &meta.content_range else {
        return Ok(None);
    };
    match range::parse_content_range(content_range) {
        Some((r, total))
            if range::spec_selects(spec, r, total) && r.len() == meta.content_length =>
        {
            Ok(Some((r, total)))
        }
        _ => Err(OriginError::Invalid(format!(
            "Content-Range `{content_range}` does not answer `{spec}`"
        ))),
    }
}

/// Serves `key` as an asset CDN does: the key as it is, no website rules.
pub(super) async fn serve_key(
    lookup: &Lookup<'_>,
    key: &str,
    exchange: &mut Exchange,
) -> HttpResponse {
    match lookup.fetch(key, true, exchange).await {
        Ok(fetch) => {
            let fetch = lookup.encode(key, fetch, exchange).await;
            object::respond(lookup.req, key, fetch, lookup.head)
        }
        Err(e) => missing_or_error(lookup, key, &e),
    }
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

/// Serves a request with the S3 website rules.
pub(super) async fn serve_website(
    lookup: &Lookup<'_>,
    config: &WebsiteConfig,
    key: &str,
    exchange: &mut Exchange,
) -> HttpResponse {
    let lookup_key = match website::plan(config, key, &lookup.info) {
        website::Plan::Redirect(target) => return redirect_response(&target),
        website::Plan::Lookup { key } => key,
    };
    let error = match lookup.fetch(&lookup_key, true, exchange).await {
        Ok(fetch) => {
            if let Some(location) = fetch.meta.website_redirect_location.as_deref() {
                return object_redirect(location);
            }
            let fetch = lookup.encode(&lookup_key, fetch, exchange).await;
            return object::respond(lookup.req, &lookup_key, fetch, lookup.head);
        }
        Err(error) => error,
    };
    let Some(status) = client_status(lookup.site, &error) else {
        return missing_or_error(lookup, &lookup_key, &error);
    };
    // `/dir` with no object `dir` but an object `dir/<index>`: 302 to `/dir/`.
    if status == 404 {
        if let Some(index_key) = website::directory_index_key(config, &lookup_key) {
            let index_object = lookup.site.object_key(&index_key);
            match lookup.origin_exists(&index_object, exchange).await {
                Ok(true) => {
                    return redirect_response(&website::directory_redirect(&lookup.info));
                }
                Ok(false) => {}
                Err(e) => return missing_or_error(lookup, &index_key, &e),
            }
        }
    }
    if let Some(target) = website::redirect_on_error(config, &lookup_key, status, &lookup.info) {
        return redirect_response(&target);
    }
    if status == 404 && config.spa_fallback && !lookup.head {
        if let Some(response) = spa_fallback(lookup, config, exchange).await {
            return response;
        }
    }
    error_document(lookup, config, status, exchange).await
}

/// `x-amz-website-redirect-location` on an object: 301 to it, never its bytes.
fn object_redirect(location: &str) -> HttpResponse {
    redirect_response(&RedirectTarget {
        status: website::PERMANENT_REDIRECT_STATUS,
        location: website::sanitize_location(location),
    })
}

/// SPA fallback: the root index document with 200 and `Cache-Control: no-cache`.
async fn spa_fallback(
    lookup: &Lookup<'_>,
    config: &WebsiteConfig,
    exchange: &mut Exchange,
) -> Option<HttpResponse> {
    let index = config.index_document.as_deref()?;
    let fetch = lookup.fetch(index, false, exchange).await.ok()?;
    let mut response = body_with_status(lookup, index, fetch, StatusCode::OK);
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    Some(response)
}

/// The error document's body and type with the original status, for GET; the
/// status alone (with the built-in page's headers) for HEAD. A missing error
/// document gives the built-in page.
async fn error_document(
    lookup: &Lookup<'_>,
    config: &WebsiteConfig,
    status: u16,
    exchange: &mut Exchange,
) -> HttpResponse {
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::NOT_FOUND);
    let builtin = || match status {
        403 => error_page(code, "You may not see this page."),
        _ => error_page(code, "The page you asked for does not exist."),
    };
    let Some(document) = config.error_document.as_deref().filter(|_| !lookup.head) else {
        return builtin();
    };
    match lookup.fetch(document, false, exchange).await {
        Ok(fetch) => {
            if let Some(location) = fetch.meta.website_redirect_location.as_deref() {
                return object_redirect(location);
            }
            // The error document's body is compressed like any other page.
            let fetch = lookup.encode(document, fetch, exchange).await;
            body_with_status(lookup, document, fetch, code)
        }
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
    let content_type = crate::http::mime::content_type(fetch.meta.content_type.as_deref(), key);
    let mut response = HttpResponse::build(status);
    response.insert_header((header::CONTENT_TYPE, content_type));
    if status != StatusCode::OK {
        response.insert_header((header::CACHE_CONTROL, "no-store"));
    }
    if let Some(coding) = fetch.meta.content_encoding.as_deref() {
        response.insert_header((header::CONTENT_ENCODING, coding.to_string()));
    }
    let length = fetch.meta.content_length;
    if fetch.length_unknown {
        if lookup.head {
            return response.finish();
        }
        return response.body(actix_web::body::BodyStream::new(fetch.body));
    }
    if lookup.head {
        return response.body(super::body::HeadBody(length));
    }
    let body = LengthChecked {
        inner: fetch.body,
        expected: length,
        seen: 0,
    };
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
