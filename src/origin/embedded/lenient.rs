//! GET/HEAD object requests whose headers S3 accepts but s3s 0.14.1 rejects with 400.
//!
//! s3s parses `If-Match` / `If-None-Match` as a single entity-tag, dates as IMF-fixdate
//! only, and `Range` as a single range, and refuses anything else. S3 accepts lists of
//! entity-tags (RFC 9110 §13.1.1), ignores invalid dates (§13.1.3) and serves the whole
//! object for a Range it does not support. s3s checks the signature before it consults a
//! custom route, so this route sees only authenticated requests:
//! 1. `is_match`: a GET/HEAD of an object with such a header;
//! 2. `call`: parses the conditions leniently into a [`Preconditions`] extension, drops
//!    the raw conditional headers (and an unusable Range) with the then-verified
//!    credentials, and hands the request to an in-process s3s service without
//!    authentication over the same store, which reads the extension.

use hyper::header::{
    HeaderMap, HeaderName, AUTHORIZATION, IF_MATCH, IF_MODIFIED_SINCE, IF_NONE_MATCH,
    IF_UNMODIFIED_SINCE, RANGE,
};
use hyper::http::{Extensions, Uri};
use hyper::Method;
use s3s::dto::{ETagCondition, Range, Timestamp, TimestampFormat};
use s3s::path::S3Path;
use s3s::route::S3Route;
use s3s::service::S3Service;
use s3s::{Body, S3Error, S3Request, S3Response, S3Result};

use super::preconditions::Preconditions;

/// Query parameters a GetObject / HeadObject may carry (plus presigned-URL parameters).
fn is_object_read_query(name: &str) -> bool {
    matches!(name, "versionId" | "partNumber" | "x-id")
        || name.starts_with("response-")
        || is_presign_param(name)
}

fn is_presign_param(name: &str) -> bool {
    // Bytes, not `str` slicing: a query name may hold any UTF-8.
    name.len() > 6 && name.as_bytes()[..6].eq_ignore_ascii_case(b"x-amz-")
}

/// Whether s3s would refuse some value of `name` that S3 accepts.
fn s3s_rejects(headers: &HeaderMap, name: &HeaderName) -> bool {
    let values: Vec<_> = headers
        .get_all(name)
        .iter()
        .filter(|v| !v.is_empty())
        .collect();
    match values.as_slice() {
        [] => false,
        [value] => {
            let Ok(text) = value.to_str() else {
                return true;
            };
            if *name == IF_MATCH || *name == IF_NONE_MATCH {
                ETagCondition::parse_http_header(value.as_bytes()).is_err()
            } else if *name == RANGE {
                Range::parse(text).is_err()
            } else {
                Timestamp::parse(TimestampFormat::HttpDate, text).is_err()
            }
        }
        _ => true,
    }
}

const CONDITIONAL: [HeaderName; 4] = [
    IF_MATCH,
    IF_NONE_MATCH,
    IF_MODIFIED_SINCE,
    IF_UNMODIFIED_SINCE,
];

/// The route; `direct` is an s3s service without authentication over the same store,
/// reachable only through this route.
pub(crate) struct LenientRoute {
    pub(crate) direct: S3Service,
}

impl LenientRoute {
    fn is_object_read(method: &Method, uri: &Uri) -> bool {
        if method != Method::GET && method != Method::HEAD {
            return false;
        }
        let query_ok = uri
            .query()
            .unwrap_or("")
            .split('&')
            .filter(|p| !p.is_empty())
            .all(|p| is_object_read_query(p.split('=').next().unwrap_or("")));
        let Ok(path) = percent_encoding::percent_decode_str(uri.path()).decode_utf8() else {
            return false;
        };
        query_ok
            && matches!(
                s3s::path::parse_path_style(&path),
                Ok(S3Path::Object { .. })
            )
    }

    /// The same URI without presigned-URL parameters (already verified).
    fn without_presign(uri: &Uri) -> Result<Uri, hyper::http::Error> {
        let query: Vec<&str> = uri
            .query()
            .unwrap_or("")
            .split('&')
            .filter(|p| !p.is_empty() && !is_presign_param(p.split('=').next().unwrap_or("")))
            .collect();
        let path_and_query = if query.is_empty() {
            uri.path().to_owned()
        } else {
            format!("{}?{}", uri.path(), query.join("&"))
        };
        Uri::builder().path_and_query(path_and_query).build()
    }
}

#[async_trait::async_trait]
impl S3Route for LenientRoute {
    fn is_match(
        &self,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
        _extensions: &mut Extensions,
    ) -> bool {
        let rejected = CONDITIONAL
            .iter()
            .chain([&RANGE])
            .any(|name| s3s_rejects(headers, name));
        rejected && Self::is_object_read(method, uri)
    }

    async fn call(&self, req: S3Request<Body>) -> S3Result<S3Response<Body>> {
        let preconditions = Preconditions::from_headers(&req.headers);
        let mut headers = req.headers;
        for name in &CONDITIONAL {
            headers.remove(name);
        }
        if s3s_rejects(&headers, &RANGE) {
            headers.remove(RANGE);
        }
        headers.remove(AUTHORIZATION);
        for name in ["x-amz-date", "x-amz-content-sha256", "x-amz-security-token"] {
            headers.remove(name);
        }
        let uri = Self::without_presign(&req.uri).map_err(S3Error::internal_error)?;
        let mut inner = hyper::Request::new(req.input);
        *inner.method_mut() = req.method;
        *inner.uri_mut() = uri;
        *inner.headers_mut() = headers;
        inner.extensions_mut().insert(preconditions);
        let resp = self.direct.call(inner).await.map_err(|e| {
            let source: s3s::StdError = e.into();
            S3Error::with_source(s3s::S3ErrorCode::InternalError, source)
        })?;
        let (parts, body) = resp.into_parts();
        let mut out = S3Response::new(body);
        out.status = Some(parts.status);
        out.headers = parts.headers;
        out.extensions = parts.extensions;
        Ok(out)
    }
}
