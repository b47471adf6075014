//! The cluster listener (`--cluster-listen`): what other nodes ask of this
//! one (the paths are in `wire.rs`). Every request carries the cluster token
//! (401 otherwise, compared in constant time) and its `CDN-Loop`; a request
//! that has already passed this node answers 508 (RFC 8586) and is logged.
//!
//! An object is read through this node's own cache ([`Cache::fetch`]), so
//! concurrent requests from every node for one key make one request to the
//! bucket (or parent), and what this node stores it serves again.
//!
//! Nothing another node sends can make this node panic: the site and key are
//! looked up, never trusted; header values are read as text or ignored.

use std::ops::ControlFlow::{self, Break, Continue};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use actix_web::body::SizedStream;
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use bytes::Bytes;
use futures_util::Stream;

use super::origin::FROM_NODE;
use super::{headers, wire, Cluster, CACHE_STATUS};
use crate::admin::{self, PurgeRequest};
use crate::cache::{Answer, CacheOutcome, Payload, Request, Want, Wire};
use crate::http::conditional;
use crate::http::range::{self, RangeOutcome};
use crate::origin::{BodyStream, OriginError};
use crate::state::AppState;

/// Longest object key asked for (S3's limit).
use crate::origin::MAX_KEY_BYTES;

/// Registers the cluster routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route(wire::OBJECT_PATH, web::get().to(object))
        .route(wire::PURGE_PATH, web::post().to(purge))
        .route(wire::HELLO_PATH, web::get().to(hello))
        .default_service(web::to(|| async {
            HttpResponse::NotFound()
                .content_type("text/plain; charset=utf-8")
                .body("not found\n")
        }));
}

/// The cluster, and the node ids the request passed; or the answer refusing it.
fn admit(
    req: &HttpRequest,
    state: &AppState,
) -> ControlFlow<HttpResponse, (Arc<Cluster>, Vec<String>)> {
    let Some(cluster) = state.cluster.clone() else {
        return Break(HttpResponse::NotFound().finish());
    };
    if let Some(denied) = admin::check_token(req, Some(cluster.token.as_str())) {
        return Break(denied);
    }
    let values = || {
        req.headers()
            .get_all(wire::CDN_LOOP)
            .filter_map(|v| v.to_str().ok())
    };
    let passed = headers::cdn_loop_ids(values());
    if headers::has_looped(values(), &cluster.node_id) {
        tracing::error!(
            node = cluster.node_id.as_str(),
            cdn_loop = passed.join(", "),
            path = req.path(),
            "cluster: a request came back to this node (CDN-Loop lists it): answering 508; check --peers and --parent for a cycle, and that no other node has the same --node-id"
        );
        return Break(
            HttpResponse::build(StatusCode::LOOP_DETECTED)
                .content_type("text/plain; charset=utf-8")
                .body("loop detected: this node is already in CDN-Loop\n"),
        );
    }
    Continue((cluster, passed))
}

#[derive(serde::Deserialize)]
struct ObjectQuery {
    site: String,
    key: String,
}

/// `GET /cluster/v1/object?site=NAME&key=KEY`.
async fn object(
    req: HttpRequest,
    query: web::Query<ObjectQuery>,
    state: web::Data<AppState>,
) -> HttpResponse {
    let (cluster, passed) = match admit(&req, &state) {
        Continue(admitted) => admitted,
        Break(refused) => return refused,
    };
    if query.key.len() > MAX_KEY_BYTES {
        return HttpResponse::BadRequest().body("key too long\n");
    }
    if let Some(theirs) = req.headers().get(wire::RING).and_then(|v| v.to_str().ok()) {
        let sender = passed.last().map_or("-", String::as_str);
        cluster.compare_ring(req.peer_addr().map(|a| a.ip()), sender, theirs);
    }
    let sites = state.sites();
    let Some(site) = sites.sites.iter().find(|s| s.name() == query.site).cloned() else {
        // Not the bucket's answer: the asking node skips this one.
        return HttpResponse::ServiceUnavailable()
            .body(format!("no site named `{}` on this node\n", query.site));
    };
    let text = |name: header::HeaderName| req.headers().get(name).and_then(|v| v.to_str().ok());
    let spec = range::single_range_spec(text(header::RANGE));
    let want = match &spec {
        Some(spec) => Want::Range {
            spec: spec.clone(),
            if_range: None,
        },
        None => Want::Object,
    };
    let fetch = state.cache.fetch(Request {
        site: &site,
        object_key: &query.key,
        want,
        forward: &[],
        wire: Wire::Memory,
    });
    let answer = FROM_NODE.scope(passed, fetch).await;
    state.metrics.count_lookup(&site, answer.outcome.as_str());
    let preconditions = conditional::Preconditions {
        if_match: None,
        if_none_match: text(header::IF_NONE_MATCH),
        if_modified_since: text(header::IF_MODIFIED_SINCE),
        if_unmodified_since: None,
    };
    respond(answer, &cluster.node_id, spec.as_deref(), &preconditions)
}

/// The answer to another node: the bucket's, as the bucket would give it.
fn respond(
    answer: Answer,
    node_id: &str,
    spec: Option<&str>,
    preconditions: &conditional::Preconditions<'_>,
) -> HttpResponse {
    let outcome = answer.outcome;
    let fetch = match answer.result {
        Ok(fetch) => fetch,
        Err(e) => {
            let status = headers::cache_status(Some(node_id), outcome, None);
            return error_response(&e, &status);
        }
    };
    let conditional =
        preconditions.if_none_match.is_some() || preconditions.if_modified_since.is_some();
    if outcome == CacheOutcome::StaleIfError && conditional {
        // The asking node holds a copy and asks whether it is current: this
        // node could not ask the bucket and serves its own stale copy to its
        // clients. A 304 would tell the asker its copy is current (it showed
        // a revalidation and counted no bucket error, while its clients got
        // a stale copy); the bucket's failure, relayed, lets it serve its own
        // copy as stale-if-error and count the failure as this node does.
        let status = headers::cache_status(Some(node_id), outcome, None);
        let failed = OriginError::Unreachable(
            "the bucket failed; the owner serves its stale copy (stale-if-error)".into(),
        );
        return error_response(&failed, &status);
    }
    let meta = &fetch.meta;
    let status = headers::cache_status(Some(node_id), outcome, meta.cache_status.as_deref());
    let mut fields = wire::meta_headers(meta);
    if let Some(age) = fetch.age.map(|a| a.as_secs()).or(meta.age) {
        fields.push(("age", age.to_string()));
    }
    let build = |code: StatusCode| {
        let mut response = HttpResponse::build(code);
        for (name, value) in &fields {
            if let Ok(value) = HeaderValue::from_str(value) {
                response.insert_header((*name, value));
            }
        }
        if let Ok(value) = HeaderValue::from_str(&status) {
            response.insert_header((CACHE_STATUS, value));
        }
        response
    };
    if spec.is_none() {
        let validators = conditional::Validators {
            etag: meta.etag.as_deref(),
            last_modified: meta.last_modified,
        };
        if matches!(
            conditional::evaluate(conditional::Method::GetOrHead, preconditions, &validators),
            conditional::Outcome::NotModified
        ) {
            return build(StatusCode::NOT_MODIFIED).finish();
        }
    }
    let len = meta.content_length;
    match fetch.payload {
        Payload::Range { body, range, total } => build(StatusCode::PARTIAL_CONTENT)
            .insert_header((header::CONTENT_RANGE, range.content_range(total)))
            .body(SizedStream::new(range.len(), body)),
        Payload::File(file) => {
            let total = file.len();
            match spec.map(|spec| range::evaluate(Some(spec), total)) {
                Some(RangeOutcome::Partial(ranges)) if ranges.len() == 1 => {
                    let r = ranges[0];
                    build(StatusCode::PARTIAL_CONTENT)
                        .insert_header((header::CONTENT_RANGE, r.content_range(total)))
                        .body(SizedStream::new(r.len(), file.stream(r.start, r.end + 1)))
                }
                Some(RangeOutcome::Unsatisfiable) => unsatisfiable(total),
                _ => build(StatusCode::OK).body(SizedStream::new(total, file.stream(0, total))),
            }
        }
        Payload::Stream(body) => match spec.map(|spec| range::evaluate(Some(spec), len)) {
            Some(RangeOutcome::Partial(ranges)) if ranges.len() == 1 => {
                let r = ranges[0];
                build(StatusCode::PARTIAL_CONTENT)
                    .insert_header((header::CONTENT_RANGE, r.content_range(len)))
                    .body(SizedStream::new(r.len(), Cut::new(body, r.start, r.len())))
            }
            Some(RangeOutcome::Unsatisfiable) => unsatisfiable(len),
            _ => build(StatusCode::OK).body(SizedStream::new(len, body)),
        },
        // Not made for `Want::Object` or `Want::Range`; without a length the
        // asking node treats it as a failure and goes on.
        Payload::Unsized(body) => build(StatusCode::OK).streaming(body),
    }
}

fn unsatisfiable(total: u64) -> HttpResponse {
    HttpResponse::RangeNotSatisfiable()
        .insert_header((
            header::CONTENT_RANGE,
            range::unsatisfied_content_range(total),
        ))
        .finish()
}

/// The bucket's error, with its status; a failure of the bucket is marked
/// so that the asking node does not take it for this node failing.
fn error_response(e: &OriginError, cache_status: &str) -> HttpResponse {
    let code = StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::BAD_GATEWAY);
    let mut response = HttpResponse::build(code);
    if let Ok(value) = HeaderValue::from_str(cache_status) {
        response.insert_header((CACHE_STATUS, value));
    }
    if let Some(id) = e.request_id().and_then(|id| HeaderValue::from_str(id).ok()) {
        response.insert_header((wire::REQUEST_ID, id));
    }
    match e {
        OriginError::RangeNotSatisfiable {
            total_length: Some(total),
        } => {
            response.insert_header((
                header::CONTENT_RANGE,
                range::unsatisfied_content_range(*total),
            ));
        }
        _ if !e.is_client_error() => {
            let detail: String = e
                .to_string()
                .chars()
                .filter(|c| c.is_ascii_graphic() || *c == ' ')
                .take(300)
                .collect();
            response.insert_header((wire::ORIGIN_ERROR, e.outcome()));
            if let Ok(value) = HeaderValue::from_str(&detail) {
                response.insert_header((wire::ORIGIN_ERROR_DETAIL, value));
            }
        }
        _ => {}
    }
    response.finish()
}

/// `POST /cluster/v1/purge`: the admin API's purge, on this node only.
async fn purge(req: HttpRequest, body: web::Bytes, state: web::Data<AppState>) -> HttpResponse {
    if let Break(refused) = admit(&req, &state) {
        return refused;
    }
    let request: PurgeRequest = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(e) => {
            return HttpResponse::BadRequest()
                .json(serde_json::json!({ "error": format!("invalid purge request: {e}") }))
        }
    };
    // A site this node does not serve holds nothing here to purge: done.
    // (Answered 404, the sender queued it for ever, and every purge queued
    // after it waited behind it: a rolling change of the sites, or an
    // HTTP-origin site its parents do not carry.)
    if !state
        .sites()
        .sites
        .iter()
        .any(|site| site.name() == request.site)
    {
        return HttpResponse::Ok().json(serde_json::json!({ "purged": 0 }));
    }
    match admin::purge_locally(&state, &request).await {
        Ok(purged) => HttpResponse::Ok().json(serde_json::json!({ "purged": purged })),
        Err((status, message)) => {
            HttpResponse::build(status).json(serde_json::json!({ "error": message }))
        }
    }
}

/// `GET /cluster/v1/hello`: this node's id, for the other members' probes.
async fn hello(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    match admit(&req, &state) {
        Continue((cluster, _)) => HttpResponse::Ok().json(wire::Hello {
            node_id: cluster.node_id.clone(),
        }),
        Break(refused) => refused,
    }
}

/// `len` bytes of a body from offset `start`: a range of a cached body that
/// is held in memory, cut as it streams.
struct Cut {
    body: BodyStream,
    skip: u64,
    left: u64,
}

impl Cut {
    fn new(body: BodyStream, start: u64, len: u64) -> Cut {
        Cut {
            body,
            skip: start,
            left: len,
        }
    }
}

impl Stream for Cut {
    type Item = Result<Bytes, OriginError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            if self.left == 0 {
                return Poll::Ready(None);
            }
            let mut chunk = match self.body.as_mut().poll_next(cx) {
                Poll::Ready(Some(Ok(chunk))) => chunk,
                other => return other,
            };
            let len = chunk.len() as u64;
            if self.skip >= len {
                self.skip -= len;
                continue;
            }
            let from = self.skip as usize;
            self.skip = 0;
            let take = (len - from as u64).min(self.left) as usize;
            self.left -= take as u64;
            chunk = chunk.slice(from..from + take);
            return Poll::Ready(Some(Ok(chunk)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt as _;

    #[tokio::test]
    async fn a_range_is_cut_from_a_body_in_chunks() {
        let data: Vec<u8> = (0..100u8).collect();
        for (start, len) in [(0, 100), (0, 1), (9, 2), (10, 30), (95, 5), (99, 1)] {
            let chunks: Vec<Result<Bytes, OriginError>> = data
                .chunks(10)
                .map(|c| Ok(Bytes::copy_from_slice(c)))
                .collect();
            let body: BodyStream = Box::pin(futures_util::stream::iter(chunks));
            let got: Vec<u8> = Cut::new(body, start, len)
                .map(|c| c.unwrap().to_vec())
                .collect::<Vec<_>>()
                .await
                .concat();
            assert_eq!(
                got,
                data[start as usize..(start + len) as usize],
                "{start}+{len}"
            );
        }
    }
}
