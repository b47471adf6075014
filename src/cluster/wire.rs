//! What travels between nodes on the cluster listener, both ways: the paths,
//! the header fields that carry an object's stored metadata, and how an
//! answer's status maps back to what the bucket said. Pure functions.
//!
//! - `GET /cluster/v1/object?site=NAME&key=KEY` (with `Range`,
//!   `If-None-Match`, `If-Modified-Since` passed on): the object read through
//!   the answering node's cache. 200/206/304 carry the metadata as header
//!   fields; 404, 403, 412 and 416 are the bucket's answers; a 5xx with
//!   [`ORIGIN_ERROR`] is the bucket failing (the asking node does not go to
//!   the bucket itself: it would fail the same way); any other 5xx, a 401 or
//!   a 508 is the node failing (the asking node skips it).
//! - `POST /cluster/v1/purge` (the admin API's JSON): purges this node only.
//! - `GET /cluster/v1/hello`: `{"node_id": ID}`, the answering node's
//!   `--node-id` ([`Hello`]): every other member's probe asks it, so that
//!   two nodes given the same id are found before their requests loop, and
//!   the status page names the members. A node too old to know the path
//!   answers 404: it is up, its id unknown.

use http::{HeaderMap, StatusCode};

use super::client::{meta_from_headers, PeerError};
use crate::origin::{ObjectMeta, OriginError};

pub const OBJECT_PATH: &str = "/cluster/v1/object";
pub const PURGE_PATH: &str = "/cluster/v1/purge";
pub const HELLO_PATH: &str = "/cluster/v1/hello";

/// The answer to [`HELLO_PATH`].
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct Hello {
    pub node_id: String,
}

/// RFC 8586.
pub const CDN_LOOP: &str = "cdn-loop";
/// On a 5xx: the bucket failed (an [`OriginError::outcome`] label).
pub const ORIGIN_ERROR: &str = "x-s3edge-origin-error";
/// With [`ORIGIN_ERROR`]: the error's text.
pub const ORIGIN_ERROR_DETAIL: &str = "x-s3edge-origin-error-detail";
/// The bucket's `Date` (the answering node's own `Date` is when it answered).
pub const ORIGIN_DATE: &str = "x-s3edge-origin-date";
/// `x-amz-website-redirect-location` of the object.
pub const REDIRECT_LOCATION: &str = "x-amz-website-redirect-location";
/// The bucket's request id.
pub const REQUEST_ID: &str = "x-amz-request-id";
/// On a request to a peer: the digest of the members the asking node hashes
/// keys over ([`Ring::digest`](super::ring::Ring::digest)). A node whose own
/// ring differs warns: the two disagree on owners, so each key is fetched
/// and stored more than once.
pub const RING: &str = "x-s3edge-ring";

/// A usable answer from another node.
#[derive(Debug)]
pub enum Answer {
    /// 200 or 206: the metadata; the body follows.
    Object(ObjectMeta),
    /// 304.
    NotModified(ObjectMeta),
}

/// What an answer's status and header fields say.
pub fn classify(status: StatusCode, headers: &HeaderMap) -> Result<Answer, PeerError> {
    let request_id = || {
        headers
            .get(REQUEST_ID)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    match status.as_u16() {
        200 | 206 => {
            if headers.get(http::header::CONTENT_LENGTH).is_none() {
                return Err(PeerError::Down("answer without Content-Length".into()));
            }
            let meta = meta_from_headers(headers);
            if status == StatusCode::PARTIAL_CONTENT && meta.content_range.is_none() {
                return Err(PeerError::Down("206 without Content-Range".into()));
            }
            Ok(Answer::Object(meta))
        }
        304 => Ok(Answer::NotModified(meta_from_headers(headers))),
        404 => Err(PeerError::Origin(OriginError::NotFound {
            request_id: request_id(),
        })),
        403 => Err(PeerError::Origin(OriginError::Denied {
            request_id: request_id(),
        })),
        412 => Err(PeerError::Origin(OriginError::PreconditionFailed)),
        416 => Err(PeerError::Origin(OriginError::RangeNotSatisfiable {
            total_length: headers
                .get(http::header::CONTENT_RANGE)
                .and_then(|v| v.to_str().ok())
                .and_then(unsatisfied_length),
        })),
        500..=599 => match headers.get(ORIGIN_ERROR).and_then(|v| v.to_str().ok()) {
            Some(outcome) => {
                let detail = headers
                    .get(ORIGIN_ERROR_DETAIL)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_string();
                Err(PeerError::Origin(origin_error(outcome, status, detail)))
            }
            None if status == StatusCode::LOOP_DETECTED => Err(PeerError::Down(
                "HTTP 508: it found this node's id in CDN-Loop (a cycle in --peers and --parent, or two nodes with the same --node-id)"
                    .into(),
            )),
            None => Err(PeerError::Down(format!("HTTP {status}"))),
        },
        _ => Err(PeerError::Down(format!("unexpected HTTP {status}"))),
    }
}

/// The bucket's failure as another node reported it.
fn origin_error(outcome: &str, status: StatusCode, detail: String) -> OriginError {
    let detail = format!("via another node: {detail}");
    match outcome {
        "timeout" => OriginError::Timeout(detail),
        "not_cached" => OriginError::NotCached,
        "unreachable" => OriginError::Unreachable(detail),
        "invalid" => OriginError::Invalid(detail),
        _ => OriginError::Rejected {
            status: status.as_u16(),
            code: detail,
            request_id: None,
        },
    }
}

/// The length in `bytes */LENGTH` (RFC 9110 section 14.4).
fn unsatisfied_length(content_range: &str) -> Option<u64> {
    content_range.trim().strip_prefix("bytes */")?.parse().ok()
}

/// The header fields that carry `meta` to another node (besides
/// `Content-Length`, which the response's body sets).
pub fn meta_headers(meta: &ObjectMeta) -> Vec<(&'static str, String)> {
    let mut fields = Vec::with_capacity(12);
    let copied = [
        ("content-type", &meta.content_type),
        ("content-encoding", &meta.content_encoding),
        ("content-language", &meta.content_language),
        ("content-disposition", &meta.content_disposition),
        ("cache-control", &meta.cache_control),
        ("expires", &meta.expires),
        ("etag", &meta.etag),
        (ORIGIN_DATE, &meta.date),
        (REDIRECT_LOCATION, &meta.website_redirect_location),
        (REQUEST_ID, &meta.request_id),
    ];
    for (name, value) in copied {
        if let Some(value) = value {
            fields.push((name, value.clone()));
        }
    }
    if let Some(modified) = meta.last_modified {
        fields.push(("last-modified", crate::http::date::format(modified)));
    }
    fields
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(fields: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in fields {
            map.insert(*name, value.parse().unwrap());
        }
        map
    }

    fn origin(result: Result<Answer, PeerError>) -> OriginError {
        match result {
            Err(PeerError::Origin(e)) => e,
            other => panic!("not an origin error: {other:?}"),
        }
    }

    fn down(result: Result<Answer, PeerError>) -> bool {
        matches!(result, Err(PeerError::Down(_)))
    }

    #[test]
    fn the_buckets_answers_come_back_as_the_bucket_gave_them() {
        let none = HeaderMap::new();
        assert!(matches!(
            origin(classify(StatusCode::NOT_FOUND, &headers(&[(REQUEST_ID, "R1")]))),
            OriginError::NotFound { request_id: Some(id) } if id == "R1"
        ));
        assert!(matches!(
            origin(classify(StatusCode::FORBIDDEN, &none)),
            OriginError::Denied { .. }
        ));
        assert_eq!(
            origin(classify(StatusCode::PRECONDITION_FAILED, &none)),
            OriginError::PreconditionFailed
        );
        assert_eq!(
            origin(classify(
                StatusCode::RANGE_NOT_SATISFIABLE,
                &headers(&[("content-range", "bytes */1234")])
            )),
            OriginError::RangeNotSatisfiable {
                total_length: Some(1234)
            }
        );
        assert!(matches!(
            origin(classify(
                StatusCode::GATEWAY_TIMEOUT,
                &headers(&[(ORIGIN_ERROR, "timeout")])
            )),
            OriginError::Timeout(_)
        ));
        assert!(matches!(
            origin(classify(
                StatusCode::BAD_GATEWAY,
                &headers(&[(ORIGIN_ERROR, "rejected")])
            )),
            OriginError::Rejected { status: 502, .. }
        ));
    }

    #[test]
    fn a_failing_node_is_skipped_not_believed() {
        let none = HeaderMap::new();
        for status in [500, 502, 503, 508, 401, 400, 421, 302] {
            assert!(
                down(classify(StatusCode::from_u16(status).unwrap(), &none)),
                "{status}"
            );
        }
        // A 508 says what to look for.
        assert!(matches!(
            classify(StatusCode::LOOP_DETECTED, &none),
            Err(PeerError::Down(reason)) if reason.contains("the same --node-id")
        ));
        // 200 without a length, 206 without a range.
        assert!(down(classify(StatusCode::OK, &none)));
        assert!(down(classify(
            StatusCode::PARTIAL_CONTENT,
            &headers(&[("content-length", "10")])
        )));
    }

    #[test]
    fn metadata_travels_whole() {
        let meta = ObjectMeta {
            content_length: 5,
            content_type: Some("text/html".into()),
            cache_control: Some("max-age=60".into()),
            expires: Some("Thu, 01 Jan 2037 00:00:00 GMT".into()),
            date: Some("Thu, 01 Jan 2026 00:00:00 GMT".into()),
            etag: Some("\"abc\"".into()),
            last_modified: Some(
                std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000),
            ),
            website_redirect_location: Some("/elsewhere".into()),
            request_id: Some("REQ".into()),
            ..ObjectMeta::default()
        };
        let mut map = headers(&[
            ("content-length", "5"),
            ("age", "7"),
            ("cache-status", "n1; hit"),
        ]);
        for (name, value) in meta_headers(&meta) {
            map.insert(name, value.parse().unwrap());
        }
        let Answer::Object(back) = classify(StatusCode::OK, &map).unwrap() else {
            panic!("not an object")
        };
        assert_eq!(
            back,
            ObjectMeta {
                age: Some(7),
                cache_status: Some("n1; hit".into()),
                ..meta
            }
        );
    }
}
