//! An HTTP(S) server as a site's origin (`[origin] url = ...`).
//!
//! GETs for the cache ([`Origin::get`]) and every other method passed through
//! ([`HttpOrigin::forward`]) go to `url` with the request's path and query
//! appended, carrying the client's end-to-end header fields (the handler
//! removes the hop-by-hop ones and adds `Via` and `X-Forwarded-For`). The
//! answer's header fields are kept as the origin sent them, hop-by-hop ones
//! removed; its status is kept whatever it is (a 404 or a 301 is an answer,
//! not an error). Only a connection that fails (502), an answer that breaks
//! the protocol (502) or one that does not come within `timeout` (504) are
//! errors. Redirects are passed on to the client, never followed: an origin
//! that redirects in a loop cannot hold a request here.
//!
//! hyper's client is used (rather than reqwest) because the request and
//! response header sections must pass through as they are, in order, and the
//! response must be read status-agnostically; hyper rejects malformed
//! responses and oversized header sections itself.

use std::time::{Duration, Instant, SystemTime};

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::client::legacy::connect::HttpConnector;

use super::pools::ThreadPools;
use super::{BodyStream, Fetched, ObjectMeta, ObjectRequest, Origin, OriginError};
use crate::config::HttpOriginConfig;

/// A request body on its way to the origin.
pub type OutgoingBody = UnsyncBoxBody<Bytes, std::io::Error>;

type Connector = hyper_rustls::HttpsConnector<HttpConnector>;

/// Longest body without `Content-Length` gathered whole before it is passed
/// on, so that it can be stored with its length (the default
/// `--memory-object-max`). A longer one is passed on as it comes, from the
/// bytes gathered so far, and not stored: gathering up to 64 MiB, as
/// before, took 64 MiB of memory per request (eight slow clients of eight
/// such answers: 518 MiB), and a longer body was a 502.
pub const MAX_UNSIZED_BODY: usize = 8 * 1024 * 1024;

/// How long an idle connection to the origin is kept for the next request:
/// less than the usual server keep-alive (5 s for Node and Apache), as a
/// request sent on a connection the server is closing fails, and one with a
/// body cannot be sent again.
const POOL_IDLE: Duration = Duration::from_secs(4);

/// Header fields that describe one connection, never forwarded or stored
/// (RFC 9110 section 7.6.1), besides those the `Connection` field names.
pub const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "proxy-authenticate",
    "proxy-authorization",
];

/// Whether a field is hop-by-hop for a message whose `Connection` field
/// lists `connection_tokens`.
pub fn is_hop_by_hop(name: &str, connection_tokens: &[String]) -> bool {
    HOP_BY_HOP.iter().any(|h| name.eq_ignore_ascii_case(h))
        || connection_tokens
            .iter()
            .any(|t| t.eq_ignore_ascii_case(name))
}

/// The tokens of every `Connection` field in `headers`.
pub fn connection_tokens<'a>(headers: impl Iterator<Item = (&'a str, &'a str)>) -> Vec<String> {
    headers
        .filter(|(name, _)| name.eq_ignore_ascii_case("connection"))
        .flat_map(|(_, value)| value.split(','))
        .map(|t| t.trim().to_ascii_lowercase())
        .filter(|t| !t.is_empty())
        .collect()
}

/// An HTTP(S) server.
pub struct HttpOrigin {
    config: HttpOriginConfig,
    timeout: Duration,
    /// Connections kept per worker thread ([`ThreadPools`]).
    pools: ThreadPools<Connector, OutgoingBody>,
}

/// An answer to a passed-through request: status, header fields (hop-by-hop
/// removed) and the body as it arrives.
pub struct Forwarded {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: BodyStream,
}

impl HttpOrigin {
    pub fn new(config: &HttpOriginConfig, timeout: Duration) -> Result<HttpOrigin, String> {
        let provider = crate::tls::provider();
        let verifier = rustls_platform_verifier::Verifier::new(provider.clone())
            .map_err(|e| format!("the system's trusted roots: {e}"))?;
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .dangerous()
            .with_custom_certificate_verifier(std::sync::Arc::new(verifier))
            .with_no_client_auth();
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(timeout.min(Duration::from_secs(5))));
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        Ok(HttpOrigin {
            config: config.clone(),
            timeout,
            pools: ThreadPools::new(connector, POOL_IDLE),
        })
    }

    /// The URL for a path and query as the client sent them.
    fn url(&self, path_and_query: &str) -> String {
        let path = if path_and_query.starts_with('/') {
            path_and_query.to_string()
        } else {
            format!("/{path_and_query}")
        };
        format!(
            "{}://{}{}{}",
            self.config.scheme, self.config.authority, self.config.base_path, path
        )
    }

    /// Sends one request and waits for its header section.
    async fn send(
        &self,
        method: &str,
        path_and_query: &str,
        headers: &[(String, String)],
        body: OutgoingBody,
        body_sent: Option<tokio::sync::oneshot::Receiver<()>>,
    ) -> Result<(hyper::http::response::Parts, Incoming, Duration), OriginError> {
        let mut builder = hyper::Request::builder()
            .method(method)
            .uri(self.url(path_and_query));
        for (name, value) in headers {
            if name.eq_ignore_ascii_case("host") {
                continue;
            }
            builder = builder.header(name.as_str(), value.as_str());
        }
        builder = builder.header("host", self.config.authority.as_str());
        let request = builder
            .body(body)
            .map_err(|e| OriginError::Invalid(format!("cannot forward the request: {e}")))?;
        let started = Instant::now();
        // The time allowed for the answer counts from the end of the
        // request's body: an upload takes as long as it takes.
        let deadline = async {
            if let Some(sent) = body_sent {
                let _ = sent.await;
            }
            tokio::time::sleep(self.timeout).await;
        };
        let response = tokio::select! {
            response = self.pools.client().request(request) => response,
            () = deadline => {
                return Err(OriginError::Timeout(format!(
                    "no answer from {} within {:?}",
                    self.config.url(),
                    self.timeout
                )))
            }
        };
        let response = response.map_err(|e| {
            if closed_before_answer(&e) {
                OriginError::Unreachable(format!("{CLOSED_BEFORE_ANSWER}: {e}"))
            } else {
                classify(&e)
            }
        })?;
        let (parts, incoming) = response.into_parts();
        Ok((parts, incoming, started.elapsed()))
    }

    /// Passes a request through (any method, its body streamed): the answer
    /// as the origin gave it, hop-by-hop fields removed.
    pub async fn forward(
        &self,
        method: &str,
        path_and_query: &str,
        headers: &[(String, String)],
        body: OutgoingBody,
        body_sent: tokio::sync::oneshot::Receiver<()>,
    ) -> Result<Forwarded, OriginError> {
        let (parts, incoming, _) = self
            .send(method, path_and_query, headers, body, Some(body_sent))
            .await?;
        let tokens = connection_tokens(header_pairs(&parts.headers));
        let headers = header_pairs(&parts.headers)
            .filter(|(name, _)| !is_hop_by_hop(name, &tokens))
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect();
        Ok(Forwarded {
            status: parts.status.as_u16(),
            headers,
            body: body_stream(incoming, self.timeout),
        })
    }

    /// The answer's metadata and body, for the cache.
    async fn fetched(&self, method: &str, request: &ObjectRequest) -> Result<Fetched, OriginError> {
        let mut headers = request.headers.clone();
        if let Some(etag) = &request.if_none_match {
            headers.push(("if-none-match".into(), etag.clone()));
        }
        if let Some(since) = request.if_modified_since {
            headers.push(("if-modified-since".into(), crate::http::date::format(since)));
        }
        if let Some(range) = &request.range {
            headers.push(("range".into(), range.clone()));
        }
        let empty = || {
            Empty::<Bytes>::new()
                .map_err(|never| match never {})
                .boxed_unsync()
        };
        let mut request_time = SystemTime::now();
        let sent = match self
            .send(method, &request.key, &headers, empty(), None)
            .await
        {
            // A kept-alive connection the origin closed as it was reused: a
            // request without a body is sent again, once, on a new one.
            Err(OriginError::Unreachable(reason)) if reason.starts_with(CLOSED_BEFORE_ANSWER) => {
                request_time = SystemTime::now();
                self.send(method, &request.key, &headers, empty(), None)
                    .await
            }
            sent => sent,
        };
        let (parts, incoming, _) = sent?;
        let response_time = SystemTime::now();
        let mut meta = meta_from(&parts.headers, parts.status.as_u16());
        meta.age = Some(initial_age(&meta, request_time, response_time));
        match parts.status.as_u16() {
            304 => return Ok(Fetched::NotModified { meta }),
            416 => {
                let total = meta
                    .content_range
                    .as_deref()
                    .and_then(|r| r.strip_prefix("bytes */"))
                    .and_then(|n| n.trim().parse().ok());
                return Err(OriginError::RangeNotSatisfiable {
                    total_length: total,
                });
            }
            206 if meta.content_range.is_none() => {
                return Err(OriginError::Invalid("206 without Content-Range".into()))
            }
            // A part to a request for the whole: passed on as the origin
            // sent it (a 206 with its Content-Range), never stored; served
            // as a 200, the client took the part for the whole.
            206 if request.range.is_none() => {
                meta.status = Some(206);
                if let Some(range) = meta.content_range.take() {
                    meta.headers.push(("content-range".into(), range));
                }
            }
            206 => meta.status = None,
            _ => {}
        }
        let bodiless = method == "HEAD"
            || matches!(parts.status.as_u16(), 204 | 304)
            || parts.status.as_u16() < 200;
        let body = if bodiless {
            if method != "HEAD" {
                meta.content_length = 0;
            }
            Box::pin(futures_util::stream::empty()) as BodyStream
        } else {
            match parts.headers.get(hyper::header::CONTENT_LENGTH) {
                Some(_) => body_stream(incoming, self.timeout),
                None if passes_as_it_comes(&meta) => {
                    meta.streamed = true;
                    body_stream(incoming, self.timeout)
                }
                None => match gather(body_stream(incoming, self.timeout)).await? {
                    Gathered::Whole(whole) => {
                        meta.content_length = whole.len() as u64;
                        Box::pin(futures_util::stream::iter([Ok(whole)])) as BodyStream
                    }
                    Gathered::Longer(body) => {
                        meta.streamed = true;
                        body
                    }
                },
            }
        };
        Ok(Fetched::Object { meta, body })
    }
}

#[async_trait::async_trait]
impl Origin for HttpOrigin {
    async fn get(&self, request: &ObjectRequest) -> Result<Fetched, OriginError> {
        self.fetched("GET", request).await
    }

    async fn head(&self, key: &str) -> Result<ObjectMeta, OriginError> {
        match self.fetched("HEAD", &ObjectRequest::new(key)).await? {
            Fetched::Object { meta, .. } | Fetched::NotModified { meta } => Ok(meta),
        }
    }

    fn describe(&self) -> String {
        self.config.url()
    }
}

/// How [`HttpOrigin::send`] reports a connection that closed before any
/// answer (a kept-alive connection the origin was closing).
const CLOSED_BEFORE_ANSWER: &str = "the connection closed before any answer";

fn closed_before_answer(error: &hyper_util::client::legacy::Error) -> bool {
    use std::error::Error as _;
    let mut source = error.source();
    while let Some(inner) = source {
        if inner
            .downcast_ref::<hyper::Error>()
            .is_some_and(|e| e.is_incomplete_message())
        {
            return true;
        }
        source = inner.source();
    }
    false
}

/// A hyper error as the origin error the client's status comes from.
fn classify(error: &hyper_util::client::legacy::Error) -> OriginError {
    use std::error::Error as _;
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(inner) = source {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        source = inner.source();
    }
    if error.is_connect() {
        OriginError::Unreachable(text)
    } else {
        OriginError::Invalid(text)
    }
}

/// A header field's value as text, byte for byte: any UTF-8 (RFC 9110 5.5's
/// obs-text, which `HeaderValue::to_str` refuses: a raw UTF-8 cookie, a
/// `filename="résumé.pdf"`), so that it passes on unchanged. A value that is
/// not UTF-8 (Latin-1) is `None`, and dropped. A header value holds no CR,
/// LF or NUL, so neither does the text, and `HeaderValue::from_str` takes it
/// back as it was.
pub fn field_text(value: &[u8]) -> Option<&str> {
    std::str::from_utf8(value).ok()
}

fn header_pairs(headers: &hyper::HeaderMap) -> impl Iterator<Item = (&str, &str)> {
    headers
        .iter()
        .filter_map(|(name, value)| Some((name.as_str(), field_text(value.as_bytes())?)))
}

/// The fields an answer's metadata keeps: the typed ones, then every other
/// end-to-end field in order (`Age` goes to `age`).
pub fn meta_from(headers: &hyper::HeaderMap, status: u16) -> ObjectMeta {
    let tokens = connection_tokens(header_pairs(headers));
    let mut meta = ObjectMeta {
        status: (status != 200).then_some(status),
        ..ObjectMeta::default()
    };
    let mut last_modified = None;
    let mut age = None;
    for (name, value) in header_pairs(headers) {
        if is_hop_by_hop(name, &tokens) {
            continue;
        }
        let value = value.to_string();
        let join = |field: &mut Option<String>, value: String| {
            *field = Some(match field.take() {
                Some(before) => format!("{before}, {value}"),
                None => value,
            });
        };
        match name {
            "content-length" => meta.content_length = value.trim().parse().unwrap_or(0),
            "content-range" => meta.content_range = Some(value),
            "content-type" => meta.content_type = Some(value),
            "content-encoding" => meta.content_encoding = Some(value),
            "content-language" => meta.content_language = Some(value),
            "content-disposition" => meta.content_disposition = Some(value),
            "cache-control" => join(&mut meta.cache_control, value),
            // Several lines make one invalid value (RFC 9111 5.3).
            "expires" => join(&mut meta.expires, value),
            "date" => meta.date = Some(value),
            "etag" => meta.etag = Some(value),
            // The first line's first member (RFC 9111 5.1 allows no list).
            "age" if age.is_none() => age = Some(value.split(',').next().unwrap_or("").to_string()),
            "age" => {}
            "last-modified" => {
                last_modified = Some(value.clone());
                meta.headers.push((name.to_string(), value));
            }
            _ => meta.headers.push((name.to_string(), value)),
        }
    }
    // A parseable Last-Modified is typed (validators, heuristics); the
    // field itself is kept as sent.
    meta.last_modified = last_modified.and_then(|v| crate::http::date::parse_lenient(&v));
    // `Content-Range` makes a partial answer only of a 206; on another status
    // it is one more field.
    if status != 206 {
        if let Some(range) = meta.content_range.take() {
            meta.headers.push(("content-range".into(), range));
        }
    }
    meta.age = age.as_deref().and_then(parse_age);
    meta.from_http_origin = true;
    meta
}

/// `Age` (RFC 9111 section 5.1): delta-seconds; anything else is ignored.
pub fn parse_age(value: &str) -> Option<u64> {
    let value = value.trim();
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // Overflow: the largest value (RFC 9111 section 1.2.2).
    Some(value.parse().unwrap_or(1 << 31).min(1 << 31))
}

/// How old the answer already was on arrival (RFC 9111 section 4.2.3): the
/// larger of the age by the clocks (`Date`) and the `Age` it carried plus
/// the time the request took.
fn initial_age(meta: &ObjectMeta, request_time: SystemTime, response_time: SystemTime) -> u64 {
    let date = meta
        .date
        .as_deref()
        .and_then(crate::http::date::parse_lenient);
    let apparent = date
        .and_then(|d| response_time.duration_since(d).ok())
        .unwrap_or_default()
        .as_secs();
    let delay = response_time
        .duration_since(request_time)
        .unwrap_or_default()
        .as_secs();
    let corrected = meta.age.unwrap_or(0).saturating_add(delay);
    apparent.max(corrected)
}

/// The body as a stream; a pause longer than `timeout` ends it with an error.
fn body_stream(incoming: Incoming, timeout: Duration) -> BodyStream {
    let frames = futures_util::stream::unfold(Some(incoming), move |state| async move {
        let mut incoming = state?;
        loop {
            match tokio::time::timeout(timeout, incoming.frame()).await {
                Err(_) => {
                    return Some((
                        Err(OriginError::Timeout(
                            "the origin stopped sending the body".into(),
                        )),
                        None,
                    ))
                }
                Ok(None) => return None,
                Ok(Some(Err(e))) => {
                    return Some((
                        Err(OriginError::Invalid(format!("the body broke off: {e}"))),
                        None,
                    ))
                }
                Ok(Some(Ok(frame))) => {
                    if let Ok(data) = frame.into_data() {
                        if !data.is_empty() {
                            return Some((Ok(data), Some(incoming)));
                        }
                    }
                }
            }
        }
    });
    Box::pin(frames)
}

/// Whether a body without a length goes to the client as it comes rather
/// than gathered: an answer no cache may store (`no-store`, unqualified
/// `private`), which gathering would only delay, and an event stream (`text/event-stream`), whose
/// events are the point and which never ends by itself. Others are gathered
/// so that they can be stored with their length.
fn passes_as_it_comes(meta: &ObjectMeta) -> bool {
    let event_stream = meta
        .content_type
        .as_deref()
        .is_some_and(|t| crate::http::mime::essence(t).eq_ignore_ascii_case("text/event-stream"));
    event_stream || crate::cache::policy::forbids_storing(meta.cache_control.as_deref())
}

/// A body without a length, as [`gather`] found it.
enum Gathered {
    /// All of it, up to [`MAX_UNSIZED_BODY`].
    Whole(Bytes),
    /// Longer: the bytes gathered, then the rest as it comes.
    Longer(BodyStream),
}

/// Gathers a body without a length, up to [`MAX_UNSIZED_BODY`].
async fn gather(mut body: BodyStream) -> Result<Gathered, OriginError> {
    let mut whole = BytesMut::new();
    while let Some(chunk) = body.next().await {
        let chunk = chunk?;
        if whole.len() + chunk.len() > MAX_UNSIZED_BODY {
            let gathered = futures_util::stream::iter([Ok(whole.freeze()), Ok(chunk)]);
            return Ok(Gathered::Longer(Box::pin(gathered.chain(body))));
        }
        whole.extend_from_slice(&chunk);
    }
    Ok(Gathered::Whole(whole.freeze()))
}

/// A request body from a stream of chunks (a client's upload, relayed).
pub fn outgoing_body(
    chunks: impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static,
) -> OutgoingBody {
    BodyExt::boxed_unsync(StreamBody::new(chunks.map(|c| c.map(Frame::data))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn age_is_delta_seconds_or_ignored() {
        assert_eq!(parse_age("30"), Some(30));
        assert_eq!(parse_age(" 30 "), Some(30));
        assert_eq!(parse_age("-30"), None);
        assert_eq!(parse_age("30.5"), None);
        assert_eq!(parse_age("abc"), None);
        assert_eq!(parse_age(""), None);
        assert_eq!(parse_age("99999999999999999999999"), Some(1 << 31));
    }

    #[test]
    fn hop_by_hop_fields_and_those_connection_names_are_dropped() {
        let mut headers = hyper::HeaderMap::new();
        headers.insert("connection", "close, x-private".parse().unwrap());
        headers.insert("x-private", "1".parse().unwrap());
        headers.insert("x-public", "2".parse().unwrap());
        headers.insert("keep-alive", "timeout=5".parse().unwrap());
        headers.insert("age", "12".parse().unwrap());
        headers.insert("content-length", "5".parse().unwrap());
        let meta = meta_from(&headers, 404);
        assert_eq!(meta.status, Some(404));
        assert_eq!(meta.content_length, 5);
        assert_eq!(meta.age, Some(12));
        assert_eq!(
            meta.headers,
            vec![("x-public".to_string(), "2".to_string())]
        );
    }
}
