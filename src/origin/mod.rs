//! Where objects come from.
//!
//! [`Origin`] is the seam between the edge and a bucket: the S3 origin
//! ([`s3::S3Origin`], over aws-sdk-s3) in production, and test doubles that count
//! calls or inject faults. Contract:
//!
//! - `get` answers with the object's metadata and a body stream, or a typed
//!   [`OriginError`] that already knows its HTTP status.
//! - The body stream yields exactly `meta.content_length` bytes or ends with an
//!   error; a caller that sees fewer bytes must treat the object as incomplete.
//! - Conditional requests (`if_none_match`, `if_modified_since`) may answer
//!   [`Fetched::NotModified`]; range requests answer with `content_range` set.

#[cfg(feature = "embedded")]
pub mod embedded;
pub mod http;
pub mod pools;
pub mod s3;

use std::pin::Pin;
use std::time::SystemTime;

use bytes::Bytes;
use futures_util::Stream;

/// The body of an object as it arrives from the origin.
pub type BodyStream = Pin<Box<dyn Stream<Item = Result<Bytes, OriginError>> + Send>>;

/// What the edge asks the origin for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ObjectRequest {
    /// The full key, the site's prefix included.
    pub key: String,
    /// A `Range` header value for the origin (`bytes=0-99`).
    pub range: Option<String>,
    /// Revalidation: the cached representation's ETag.
    pub if_none_match: Option<String>,
    /// Revalidation: the cached representation's Last-Modified.
    pub if_modified_since: Option<SystemTime>,
    /// An HTTP origin: the query string (without `?`), part of what is asked.
    pub query: Option<String>,
    /// An HTTP origin: the client's end-to-end header fields to forward
    /// (conditional and range fields are the cache's own, above).
    pub headers: Vec<(String, String)>,
}

impl ObjectRequest {
    pub fn new(key: impl Into<String>) -> ObjectRequest {
        ObjectRequest {
            key: key.into(),
            ..ObjectRequest::default()
        }
    }
}

/// The most of an HTTP origin's other header fields ([`ObjectMeta::headers`])
/// an answer keeps, and a client is sent: hyper's client reads at most 100
/// fields per answer, and without a bound each 304 could add its own new
/// names to a stored answer until HTTP/2's header map overflows (it panics
/// past 32,768).
pub const MAX_FIELDS: usize = 100;

/// S3's longest object key, in bytes: a longer path cannot name an object.
pub const MAX_KEY_BYTES: usize = 1024;

/// The object's metadata as stored in the bucket. Only what a client may see, plus
/// what the edge itself needs (redirect location, request id); `x-amz-*` headers
/// and user metadata never reach the client.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ObjectMeta {
    /// Length of the body that follows (of the range, for a ranged GET).
    pub content_length: u64,
    /// `Content-Range` of a ranged GET, as the origin sent it.
    pub content_range: Option<String>,
    pub content_type: Option<String>,
    pub content_encoding: Option<String>,
    pub content_language: Option<String>,
    pub content_disposition: Option<String>,
    pub cache_control: Option<String>,
    /// `Expires`, as the origin sent it (an HTTP-date, or garbage).
    pub expires: Option<String>,
    /// `Date`, as the origin sent it, when known: `Expires` counts from it
    /// (RFC 9111 section 4.2.1).
    #[serde(default)]
    pub date: Option<String>,
    /// `ETag` with its quotes, as the origin sent it.
    pub etag: Option<String>,
    pub last_modified: Option<SystemTime>,
    /// `x-amz-website-redirect-location`.
    pub website_redirect_location: Option<String>,
    /// `x-amz-request-id` of the answer, for the access log.
    pub request_id: Option<String>,
    /// An HTTP origin's status when it is not 200 (a cacheable 404, a 301...).
    #[serde(default)]
    pub status: Option<u16>,
    /// An HTTP origin's other end-to-end header fields, in order (the fields
    /// above are not repeated here; hop-by-hop fields are never kept); at
    /// most [`MAX_FIELDS`] are kept or sent.
    #[serde(default)]
    pub headers: Vec<(String, String)>,
    /// An HTTP origin's answer: its fields are passed on as sent (a
    /// bucket's are chosen by the edge). Its age on arrival is `age`.
    #[serde(default)]
    pub from_http_origin: bool,
    /// Seconds the answer had already spent in caches upstream when it
    /// arrived: the `Age` a peer or parent node sent, or an HTTP origin's
    /// `corrected_initial_age` (RFC 9111 4.2.3); `None` from a bucket.
    /// A stored entry counts its age from then, so a child never keeps an
    /// object longer than its parent could.
    #[serde(default)]
    pub age: Option<u64>,
    /// The `Cache-Status` of the caches upstream (peer, parent), farther
    /// first (RFC 9211); `None` from a bucket.
    #[serde(default)]
    pub cache_status: Option<String>,
    /// An HTTP origin's body of unknown length (no `Content-Length`) that is
    /// passed on as it comes and never stored: an answer that may not be
    /// stored, or an event stream (`src/origin/http.rs`). Never in a cache
    /// file.
    #[serde(skip)]
    pub streamed: bool,
}

impl ObjectMeta {
    /// The status of a whole answer (200 unless an HTTP origin said otherwise).
    pub fn status(&self) -> u16 {
        self.status.unwrap_or(200)
    }

    /// Whether this is an HTTP origin's answer, whose fields are passed on
    /// as sent (a bucket's are chosen by the edge).
    pub fn is_from_http_origin(&self) -> bool {
        self.from_http_origin
    }

    /// The value of an extra header field (`headers`), by name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A successful answer.
pub enum Fetched {
    /// 200 or 206, with a body of `meta.content_length` bytes.
    Object { meta: ObjectMeta, body: BodyStream },
    /// 304 to a conditional request: the cached copy is still valid.
    NotModified { meta: ObjectMeta },
}

/// Why the origin could not supply the object, each with its HTTP status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OriginError {
    /// NoSuchKey (404).
    #[error("no such key")]
    NotFound { request_id: Option<String> },
    /// AccessDenied (403): a private object, or a missing key when the
    /// credentials lack s3:ListBucket.
    #[error("access denied")]
    Denied { request_id: Option<String> },
    /// 412 to a conditional request.
    #[error("precondition failed")]
    PreconditionFailed,
    /// 416 to a ranged request; the object's length when known.
    #[error("range not satisfiable")]
    RangeNotSatisfiable { total_length: Option<u64> },
    /// The bucket answered with an error that is the node's problem, not the
    /// client's: bad credentials, a missing bucket, a 5xx (502).
    #[error("S3 error {code} (HTTP {status}){}", request_id.as_deref().map(|id| format!(", request id {id}")).unwrap_or_default())]
    Rejected {
        status: u16,
        code: String,
        request_id: Option<String>,
    },
    /// No connection could be made, or it broke (502).
    #[error("origin unreachable: {0}")]
    Unreachable(String),
    /// No answer in time (504).
    #[error("origin timed out: {0}")]
    Timeout(String),
    /// `Cache-Control: only-if-cached` and nothing usable stored (504, RFC
    /// 9111 section 5.2.1.7): the client's choice, not the origin's failure.
    #[error("only-if-cached, and nothing usable is stored")]
    NotCached,
    /// The origin's answer broke the protocol: a body cut short, a wrong length,
    /// a Content-Range that does not match the request (502).
    #[error("invalid answer from the origin: {0}")]
    Invalid(String),
}

impl OriginError {
    /// The status the client gets for this error.
    pub fn http_status(&self) -> u16 {
        match self {
            OriginError::NotFound { .. } => 404,
            OriginError::Denied { .. } => 403,
            OriginError::PreconditionFailed => 412,
            OriginError::RangeNotSatisfiable { .. } => 416,
            OriginError::Rejected { .. }
            | OriginError::Unreachable(_)
            | OriginError::Invalid(_) => 502,
            OriginError::Timeout(_) | OriginError::NotCached => 504,
        }
    }

    /// A short label for metrics and logs.
    pub fn outcome(&self) -> &'static str {
        match self {
            OriginError::NotFound { .. } => "not_found",
            OriginError::Denied { .. } => "denied",
            OriginError::PreconditionFailed => "precondition_failed",
            OriginError::RangeNotSatisfiable { .. } => "range_not_satisfiable",
            OriginError::Rejected { .. } => "rejected",
            OriginError::Unreachable(_) => "unreachable",
            OriginError::Timeout(_) => "timeout",
            OriginError::Invalid(_) => "invalid",
            OriginError::NotCached => "not_cached",
        }
    }

    /// True when the bucket itself answered that the key is missing or private
    /// (a client error), as opposed to the origin failing.
    pub fn is_client_error(&self) -> bool {
        self.http_status() < 500
    }

    pub fn request_id(&self) -> Option<&str> {
        match self {
            OriginError::NotFound { request_id }
            | OriginError::Denied { request_id }
            | OriginError::Rejected { request_id, .. } => request_id.as_deref(),
            _ => None,
        }
    }
}

/// A bucket holding a site's objects.
#[async_trait::async_trait]
pub trait Origin: Send + Sync + 'static {
    /// GET the object (or the requested range of it).
    async fn get(&self, request: &ObjectRequest) -> Result<Fetched, OriginError>;

    /// HEAD the object: its metadata only (`content_length` is the object's size).
    /// Used to test whether a key exists without transferring it.
    async fn head(&self, key: &str) -> Result<ObjectMeta, OriginError>;

    /// The bucket's website configuration (GetBucketWebsite), as the raw form
    /// of a `[website]` section; `Ok(None)` when the bucket has none.
    async fn website_configuration(
        &self,
    ) -> Result<Option<crate::config::raw::RawWebsite>, OriginError> {
        Ok(None)
    }

    /// The bucket's CORS rules (GetBucketCors); `Ok(None)` when it has none.
    async fn cors_configuration(
        &self,
    ) -> Result<Option<Vec<crate::config::CorsConfig>>, OriginError> {
        Ok(None)
    }

    /// Whether any object's key starts with `prefix` (ListObjectsV2, one key).
    /// Used to refuse switching to a release that has no files.
    async fn has_objects_under(&self, prefix: &str) -> Result<bool, OriginError> {
        Err(OriginError::Invalid(format!(
            "this origin cannot list keys (asked for `{prefix}`)"
        )))
    }

    /// A short description for startup lines, e.g. `s3://demo (embedded)`.
    fn describe(&self) -> String;
}
