//! Stage 6: a fetched object becomes a response. Preconditions (RFC 9110 section
//! 13.2.2) and ranges (section 14) are evaluated here, at the edge, from the
//! object's validators, whether the bytes come from the origin or a cache.

use std::borrow::Cow;

use actix_web::body::SizedStream;
use actix_web::http::header::{self, HeaderMap, HeaderName};
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, HttpResponseBuilder};
use bytes::Bytes;
use futures_util::StreamExt;

use super::body::{select, HeadBody, LengthChecked, Piece};
use super::lookup::Lookup;
use super::respond::error_page;
use crate::cache::{DiskBody, Fetch, Payload, Prepared, Wire};
use crate::compress;
use crate::http::conditional::{self, Outcome, Preconditions, Validators};
use crate::http::range::{self, ByteRange, RangeOutcome};
use crate::http::{headers, mime};
use crate::origin::{BodyStream, ObjectMeta};

/// Fields a response adds to its prepared ones: `Age`, `Cache-Status`.
const PER_RESPONSE_FIELDS: usize = 2;

/// Headers a 304 carries (RFC 9110 section 15.4.5).
const NOT_MODIFIED_HEADERS: &[HeaderName] = &[
    header::AGE,
    header::ETAG,
    header::LAST_MODIFIED,
    header::CACHE_CONTROL,
    header::EXPIRES,
    header::VARY,
    header::CONTENT_LOCATION,
];

/// The request's precondition headers.
pub(super) fn preconditions(req: &HttpRequest) -> PreconditionFields {
    PreconditionFields {
        if_match: joined(req, header::IF_MATCH),
        if_none_match: joined(req, header::IF_NONE_MATCH),
        if_modified_since: joined(req, header::IF_MODIFIED_SINCE),
        if_unmodified_since: joined(req, header::IF_UNMODIFIED_SINCE),
    }
}

/// A field sent on several lines, joined with `, ` (RFC 9110 section 5.3); a
/// list of dates then fails to parse and is ignored, as sections 13.1.3 and
/// 13.1.4 require. Lines that are not text are dropped.
fn joined(req: &HttpRequest, name: HeaderName) -> Option<String> {
    let lines: Vec<&str> = req
        .headers()
        .get_all(name)
        .filter_map(|v| v.to_str().ok())
        .collect();
    (!lines.is_empty()).then(|| lines.join(", "))
}

/// The request's precondition fields, owned.
pub(super) struct PreconditionFields {
    if_match: Option<String>,
    if_none_match: Option<String>,
    if_modified_since: Option<String>,
    if_unmodified_since: Option<String>,
}

impl PreconditionFields {
    pub(super) fn as_preconditions(&self) -> Preconditions<'_> {
        Preconditions {
            if_match: self.if_match.as_deref(),
            if_none_match: self.if_none_match.as_deref(),
            if_modified_since: self.if_modified_since.as_deref(),
            if_unmodified_since: self.if_unmodified_since.as_deref(),
        }
    }
}

/// The request's `Range`, for GET and HEAD only.
pub(super) fn range_header(req: &HttpRequest) -> Option<&str> {
    req.headers()
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
}

/// The object's validators.
pub(super) fn validators(meta: &ObjectMeta) -> Validators<'_> {
    Validators {
        etag: meta.etag.as_deref(),
        last_modified: meta.last_modified,
    }
}

/// Whether the client's `If-Range` lets its `Range` apply to this object.
pub(super) fn if_range_holds(req: &HttpRequest, meta: &ObjectMeta) -> bool {
    let if_range = req
        .headers()
        .get(header::IF_RANGE)
        .map(|v| v.to_str().unwrap_or(""));
    conditional::if_range_allows(if_range, &validators(meta))
}

/// The response for an object: 304 or 412 when a precondition says so, else 200,
/// 206 (single part or `multipart/byteranges`) or 416; HEAD gets the same
/// headers without a body.
pub(super) fn respond(lookup: &Lookup<'_>, key: &str, fetch: Fetch) -> HttpResponse {
    let (req, head) = (lookup.req, lookup.head);
    let Fetch {
        meta,
        payload,
        age,
        entry,
        ..
    } = fetch;
    // A hit clones what its entry's first hit made; anything else makes it
    // and moves it in.
    let memo = entry
        .as_ref()
        .and_then(|e| e.prepared(key, || prepare(&meta, key)));
    let (mut representation, content_type) = match memo {
        Some(prepared) => (
            headers::header_map(prepared.headers.iter().cloned(), PER_RESPONSE_FIELDS),
            Cow::Borrowed(&*prepared.content_type),
        ),
        None => {
            let prepared = prepare(&meta, key);
            (
                headers::header_map(prepared.headers.into_vec(), PER_RESPONSE_FIELDS),
                Cow::Owned(prepared.content_type.into_string()),
            )
        }
    };
    // From the cache: its age there (an upstream node's included); straight
    // from a peer, a parent or an HTTP origin: the age it arrived with.
    if let Some(age) = age.map(|age| age.as_secs()).or(meta.age) {
        representation.insert(header::AGE, header::HeaderValue::from(age));
    }
    if let Some(upstream) = &meta.cache_status {
        // Stage 10 adds this node's own entry after the farther caches'.
        headers::set_checked(&mut representation, crate::cluster::CACHE_STATUS, upstream);
    }
    // An HTTP origin's answer other than 200 (a 404, a 301...) is sent as it
    // is: preconditions and ranges apply to representations.
    if meta.status() != 200 {
        let status = StatusCode::from_u16(meta.status()).unwrap_or(StatusCode::BAD_GATEWAY);
        let len = meta.content_length;
        let mut response = match payload {
            // Passed on as it comes (`ObjectMeta::streamed`), its length unknown.
            Payload::Unsized(_) if head => HttpResponse::build(status).body(no_length()),
            Payload::Unsized(body) => {
                HttpResponse::build(status).body(actix_web::body::BodyStream::new(body))
            }
            _ if head || len == 0 => HttpResponse::build(status).body(HeadBody(len)),
            payload => HttpResponse::build(status)
                .body(SizedStream::new(len, length_checked(payload, len))),
        };
        *response.headers_mut() = representation;
        response.headers_mut().remove(header::ACCEPT_RANGES);
        return response;
    }
    if let Some(answer) = preconditions_answer(req, &meta, &representation) {
        return answer;
    }
    let plan = body_plan(req, &meta, &payload);
    response(
        plan,
        payload,
        representation,
        &content_type,
        head,
        lookup.wire,
    )
}

/// What the response for `meta` served as `key` is made of: its
/// representation headers (`Age` and `Cache-Status` aside) and media type
/// ([`Prepared`], kept with a cache entry for its later hits).
pub(super) fn prepare(meta: &ObjectMeta, key: &str) -> Prepared {
    // Borrowed (stored or static) in the usual cases. Whether it compresses
    // is decided on the type as the bucket rules give it (`compressible_type`);
    // an HTTP origin's type is passed on as sent, or not at all.
    let guessed = mime::ContentType::of(meta.content_type.as_deref(), key);
    let compressible_type = compress::is_compressible(guessed.essence());
    let content_type = match (&meta.content_type, meta.is_from_http_origin()) {
        (Some(sent), true) => mime::ContentType::Stored(sent),
        _ => guessed,
    };
    let type_header = if meta.is_from_http_origin() && meta.content_type.is_none() {
        None
    } else {
        content_type.header_value()
    };
    Prepared {
        key: key.into(),
        headers: headers::representation_fields(meta, type_header).into_boxed_slice(),
        content_type: content_type.as_str().into(),
        compressible_type,
    }
}

/// Whether the type served for `key` is worth compressing: the stored type,
/// or the one guessed from the key when the stored one says nothing (as for
/// a bucket's objects, also for an HTTP origin's answers).
pub(super) fn compressible_type(meta: &ObjectMeta, key: &str) -> bool {
    compress::is_compressible(mime::ContentType::of(meta.content_type.as_deref(), key).essence())
}

/// 304 or 412 when the request's preconditions say so (RFC 9110 section 13.2.2).
fn preconditions_answer(
    req: &HttpRequest,
    meta: &ObjectMeta,
    representation: &HeaderMap,
) -> Option<HttpResponse> {
    match conditional::evaluate(
        conditional::Method::GetOrHead,
        &preconditions(req).as_preconditions(),
        &validators(meta),
    ) {
        Outcome::Proceed => None,
        Outcome::NotModified => Some(not_modified(representation)),
        Outcome::PreconditionFailed => Some(error_page(
            StatusCode::PRECONDITION_FAILED,
            "A precondition of the request does not hold.",
        )),
    }
}

/// What the body of the answer is, from the payload and the request's `Range`
/// (RFC 9110 section 14).
#[derive(Debug, Clone, PartialEq, Eq)]
enum BodyPlan {
    /// Being encoded: no length, no ranges.
    Unsized,
    /// The whole representation, 200.
    Full { total: u64 },
    /// The range the origin already cut, 206.
    Cut { range: ByteRange, total: u64 },
    /// One range, 206.
    Single { range: ByteRange, total: u64 },
    /// Several ranges, 206 `multipart/byteranges`.
    Multipart { ranges: Vec<ByteRange>, total: u64 },
    /// 416 with `Content-Range: bytes */total`.
    Unsatisfiable { total: u64 },
}

fn body_plan(req: &HttpRequest, meta: &ObjectMeta, payload: &Payload) -> BodyPlan {
    match payload {
        Payload::Unsized(_) => return BodyPlan::Unsized,
        Payload::Range { range, total, .. } => {
            return BodyPlan::Cut {
                range: *range,
                total: *total,
            }
        }
        Payload::Stream(_) | Payload::File(_) => {}
    }
    let total = meta.content_length;
    let wanted = if if_range_holds(req, meta) {
        range_header(req)
    } else {
        None
    };
    match range::evaluate(wanted, total) {
        RangeOutcome::Full => BodyPlan::Full { total },
        RangeOutcome::Partial(ranges) if ranges.len() == 1 => BodyPlan::Single {
            range: ranges[0],
            total,
        },
        RangeOutcome::Partial(ranges) => BodyPlan::Multipart { ranges, total },
        RangeOutcome::Unsatisfiable => BodyPlan::Unsatisfiable { total },
    }
}

/// The answer for a plan, its body taken from `payload` and sent by `wire`.
fn response(
    plan: BodyPlan,
    payload: Payload,
    representation: HeaderMap,
    content_type: &str,
    head: bool,
    wire: Wire,
) -> HttpResponse {
    match plan {
        BodyPlan::Unsized => {
            let mut response = with_headers(HttpResponse::Ok(), &representation);
            if head {
                return response.body(no_length());
            }
            response.body(actix_web::body::BodyStream::new(payload.into_stream()))
        }
        BodyPlan::Full { total } => {
            let mut response = if head {
                HttpResponse::Ok().body(HeadBody(total))
            } else {
                let file = send_from_file(&payload, 0, total, wire);
                let mut response = HttpResponse::Ok()
                    .body(SizedStream::new(total, length_checked(payload, total)));
                if let Some(file) = file {
                    response.extensions_mut().insert(file);
                }
                response
            };
            // The headers move in whole: no copy of each value.
            *response.headers_mut() = representation;
            response
        }
        BodyPlan::Cut { range, total } => {
            let source = Source::Cut(length_checked(payload, range.len()));
            single_part(&representation, source, range, total, head, wire)
        }
        BodyPlan::Single { range, total } => single_part(
            &representation,
            Source::of(payload, total),
            range,
            total,
            head,
            wire,
        ),
        BodyPlan::Multipart { ranges, total } => multipart(
            &representation,
            content_type,
            Source::of(payload, total),
            ranges,
            total,
            head,
        ),
        BodyPlan::Unsatisfiable { total } => {
            let mut response = error_page(
                StatusCode::RANGE_NOT_SATISFIABLE,
                "The requested range is not within the object.",
            );
            headers::set_checked(
                response.headers_mut(),
                header::CONTENT_RANGE,
                &range::unsatisfied_content_range(total),
            );
            response.headers_mut().insert(
                header::ACCEPT_RANGES,
                header::HeaderValue::from_static("bytes"),
            );
            response
        }
    }
}

/// The payload's bytes, failing if they end before or run past `len`.
fn length_checked(payload: Payload, len: u64) -> LengthChecked {
    LengthChecked::new(payload.into_stream(), len)
}

/// Copies headers into a response builder.
fn with_headers(mut builder: HttpResponseBuilder, headers: &HeaderMap) -> HttpResponseBuilder {
    for (name, value) in headers {
        builder.append_header((name.clone(), value.clone()));
    }
    builder
}

/// 304 with the headers a 200 would have had that describe the cache state.
fn not_modified(representation: &HeaderMap) -> HttpResponse {
    let mut response = HttpResponse::NotModified();
    for name in NOT_MODIFIED_HEADERS {
        if let Some(value) = representation.get(name) {
            response.insert_header((name.clone(), value.clone()));
        }
    }
    response.finish()
}

/// Where the bytes of a partial answer come from.
enum Source {
    /// The whole object as a stream: ranges are cut out of it as it passes.
    Whole(LengthChecked),
    /// Only the requested range, already cut by the origin.
    Cut(LengthChecked),
    /// The whole object in its cache file: each range is read on its own.
    File(std::sync::Arc<crate::cache::DiskBody>),
}

impl Source {
    /// The source of a whole representation of `total` bytes.
    fn of(payload: Payload, total: u64) -> Source {
        match payload {
            Payload::File(file) => Source::File(file),
            other => Source::Whole(length_checked(other, total)),
        }
    }

    /// The bytes of `pieces` (literals and ranges, ranges in ascending order).
    fn select(self, pieces: Vec<Piece>) -> BodyStream {
        match self {
            Source::Whole(body) => select(body, pieces),
            Source::Cut(body) => Box::pin(body),
            Source::File(file) => {
                let parts = pieces.into_iter().map(move |piece| match piece {
                    Piece::Literal(bytes) => {
                        let once: BodyStream = Box::pin(futures_util::stream::once(async move {
                            Ok::<_, crate::origin::OriginError>(bytes)
                        }));
                        once
                    }
                    Piece::Range { start, end } => file.stream(start, end + 1),
                });
                Box::pin(futures_util::stream::iter(parts).flatten())
            }
        }
    }
}

/// 206 with one part.
fn single_part(
    representation: &HeaderMap,
    source: Source,
    range: ByteRange,
    total: u64,
    head: bool,
    wire: Wire,
) -> HttpResponse {
    let mut response = with_headers(HttpResponse::PartialContent(), representation);
    response.insert_header((header::CONTENT_RANGE, range.content_range(total)));
    if head {
        return response.body(HeadBody(range.len()));
    }
    let file = match &source {
        Source::File(file) => send_file(file, range.start, range.end + 1, wire),
        _ => None,
    };
    let stream = source.select(vec![Piece::Range {
        start: range.start,
        end: range.end,
    }]);
    let mut response = response.body(SizedStream::new(range.len(), stream));
    if let Some(file) = file {
        response.extensions_mut().insert(file);
    }
    response
}

/// A body in a disk-tier file, bytes `start..end`: the HTTP/1 dispatcher
/// sends it with `sendfile` on a plain TCP connection (no copy through
/// s3edge's memory) when `wire` takes a span that long from a file, and
/// polls the body stream otherwise.
fn send_from_file(
    payload: &Payload,
    start: u64,
    end: u64,
    wire: Wire,
) -> Option<actix_http::h1::SendFile> {
    match payload {
        Payload::File(file) => send_file(file, start, end, wire),
        _ => None,
    }
}

/// `start..end` of `file` for `sendfile`, when `wire` takes a span that long
/// from a file ([`Wire::sends_from_file`]; otherwise it streams from the
/// file's blocks).
fn send_file(
    file: &DiskBody,
    start: u64,
    end: u64,
    wire: Wire,
) -> Option<actix_http::h1::SendFile> {
    wire.sends_from_file(end.saturating_sub(start))
        .then(|| file.send_file(start, end))
}

/// 206 `multipart/byteranges`. Parts are sent in ascending order so the object
/// streams through once (RFC 9110 section 15.3.7.2 lets a server coalesce and
/// reorder; overlapping ranges were already coalesced).
fn multipart(
    representation: &HeaderMap,
    content_type: &str,
    source: Source,
    mut ranges: Vec<ByteRange>,
    total: u64,
    head: bool,
) -> HttpResponse {
    ranges.sort_by_key(|r| r.start);
    let layout = range::multipart_layout(&ranges, total, content_type, range::random_boundary());
    let mut response = with_headers(HttpResponse::PartialContent(), representation);
    response.insert_header((header::CONTENT_TYPE, layout.content_type.clone()));
    if head {
        return response.body(HeadBody(layout.content_length));
    }
    let mut pieces = Vec::with_capacity(layout.parts.len() * 2 + 1);
    for (part_header, range) in layout.parts {
        pieces.push(Piece::Literal(Bytes::from(part_header)));
        pieces.push(Piece::Range {
            start: range.start,
            end: range.end,
        });
    }
    pieces.push(Piece::Literal(Bytes::from(layout.trailer)));
    response.body(SizedStream::new(
        layout.content_length,
        source.select(pieces),
    ))
}

/// The body of a HEAD answer whose GET has no known length: empty, and sent
/// as GET's would be (no `Content-Length`, rather than `Content-Length: 0`).
pub(super) fn no_length() -> actix_web::body::BodyStream<
    futures_util::stream::Empty<Result<Bytes, crate::origin::OriginError>>,
> {
    actix_web::body::BodyStream::new(futures_util::stream::empty())
}
