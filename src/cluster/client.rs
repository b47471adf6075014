//! Asking another node (a peer that owns an object, or a parent) over its
//! cluster listener: plain HTTP/1.1, the cluster token, `CDN-Loop`. Its
//! answer is mapped back to what the bucket would have said ([`Fetched`],
//! [`OriginError`]), so caching behaves the same whichever tier answered; a
//! node that is down, refuses, times out or fails is a [`PeerError::Down`]
//! and the caller goes on to the next tier.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt as _;
use http::{HeaderMap, Method, StatusCode};
use http_body_util::{BodyExt as _, Empty, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};

use super::wire;
use crate::origin::pools::ThreadPools;
use crate::origin::{BodyStream, Fetched, ObjectMeta, ObjectRequest, OriginError};

/// How long a connection to another node may take (DESIGN.md: 1 s).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// Bodies up to this size are read whole before they are handed on: a node
/// dying mid-body then costs a retry at the next tier, not a cut response.
pub const BUFFER_UP_TO: u64 = 1024 * 1024;
/// How long a connection to another node is kept idle for the next request.
const POOL_IDLE: Duration = Duration::from_secs(30);
/// How long a purge may take on another node.
pub const PURGE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a probe may take, connection included: less than the time
/// between probes.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// What a probe found at a member's cluster listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    /// No connection, or no answer within [`PROBE_TIMEOUT`].
    Down,
    /// It answered; with its `--node-id` when it said it.
    Up { node_id: Option<String> },
    /// It answered 401: it does not take this node's cluster token.
    Refused,
}

/// Why another node did not answer for the object.
#[derive(Debug)]
pub enum PeerError {
    /// Down, timed out, failed (5xx) or broke the protocol: skip it.
    Down(String),
    /// No connection: refused, or not taken within [`CONNECT_TIMEOUT`] (a
    /// node not started yet, or gone): skip it until it takes one.
    Unreachable(String),
    /// It answered for the bucket: the bucket's error, as the bucket gave it.
    Origin(OriginError),
}

/// The HTTP client every request to another node goes through.
/// Why a node did not confirm a purge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PurgeFailure {
    /// No answer, a broken one, or one that says nothing of the purge (a
    /// 5xx, a timeout): sent again until it is confirmed.
    Unreachable(String),
    /// The node answered with this status.
    Refused { status: u16, message: String },
}

impl PurgeFailure {
    /// A refusal that no retry can change: the request itself is wrong for
    /// that node (400, 404, 405, 413...). Not 401 and 403 (a token the
    /// operator may yet fix), 408 and 429 (asked again later), nor 5xx.
    pub fn is_permanent(&self) -> bool {
        matches!(self, PurgeFailure::Refused { status, .. }
            if (400..500).contains(status) && !matches!(status, 401 | 403 | 408 | 429))
    }
}

impl std::fmt::Display for PurgeFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PurgeFailure::Unreachable(reason) => f.write_str(reason),
            PurgeFailure::Refused { status, message } => write!(f, "HTTP {status}: {message}"),
        }
    }
}

pub struct PeerClient {
    /// Object requests, made by the workers: connections kept per worker
    /// thread ([`ThreadPools`]).
    object: ThreadPools<HttpConnector, Empty<Bytes>>,
    /// Purges and probes.
    control: Client<HttpConnector, Full<Bytes>>,
    token: String,
}

fn connector() -> HttpConnector {
    let mut connector = HttpConnector::new();
    connector.set_connect_timeout(Some(CONNECT_TIMEOUT));
    connector.set_nodelay(true);
    connector
}

impl PeerClient {
    pub fn new(token: String) -> PeerClient {
        PeerClient {
            object: ThreadPools::new(connector(), POOL_IDLE),
            control: Client::builder(TokioExecutor::new())
                .pool_idle_timeout(POOL_IDLE)
                .build(connector()),
            token,
        }
    }

    /// GETs `request` of `site` from the node at `peer`, waiting up to
    /// `timeout` for its answer's head (it may be fetching from the bucket).
    pub async fn get(
        &self,
        peer: SocketAddr,
        site: &str,
        request: &ObjectRequest,
        cdn_loop: &str,
        ring: Option<&str>,
        timeout: Duration,
    ) -> Result<Fetched, PeerError> {
        let uri = format!(
            "http://{peer}{}?site={}&key={}",
            wire::OBJECT_PATH,
            utf8_percent_encode(site, NON_ALPHANUMERIC),
            utf8_percent_encode(&request.key, NON_ALPHANUMERIC)
        );
        let mut builder = http::Request::builder()
            .method(Method::GET)
            .uri(uri)
            .header(
                http::header::AUTHORIZATION,
                format!("Bearer {}", self.token),
            )
            .header(wire::CDN_LOOP, cdn_loop);
        if let Some(ring) = ring {
            builder = builder.header(wire::RING, ring);
        }
        if let Some(range) = &request.range {
            builder = builder.header(http::header::RANGE, range);
        }
        if let Some(etag) = &request.if_none_match {
            builder = builder.header(http::header::IF_NONE_MATCH, etag);
        }
        if let Some(since) = request.if_modified_since {
            builder = builder.header(
                http::header::IF_MODIFIED_SINCE,
                crate::http::date::format(since),
            );
        }
        let http_request = builder
            .body(Empty::new())
            .map_err(|e| PeerError::Down(format!("request: {e}")))?;
        let response =
            match tokio::time::timeout(timeout, self.object.client().request(http_request)).await {
                Err(_) => return Err(PeerError::Down(format!("no answer within {timeout:?}"))),
                Ok(Err(e)) if e.is_connect() => return Err(PeerError::Unreachable(format!("{e}"))),
                Ok(Err(e)) => return Err(PeerError::Down(format!("{e}"))),
                Ok(Ok(response)) => response,
            };
        let (parts, body) = response.into_parts();
        let answer = wire::classify(parts.status, &parts.headers)?;
        match answer {
            wire::Answer::NotModified(meta) => Ok(Fetched::NotModified { meta }),
            wire::Answer::Object(meta) => {
                let stream: BodyStream = Box::pin(body.into_data_stream().map(|chunk| {
                    chunk.map_err(|e| OriginError::Unreachable(format!("peer body: {e}")))
                }));
                let body: BodyStream = if meta.content_length <= BUFFER_UP_TO {
                    let whole = read_whole(stream, meta.content_length, timeout).await?;
                    Box::pin(futures_util::stream::once(async move { Ok(whole) }))
                } else {
                    stream
                };
                Ok(Fetched::Object { meta, body })
            }
        }
    }

    /// A purge's or a probe's request to `path` of the node at `peer`, with
    /// the token.
    fn control_request(
        &self,
        method: Method,
        peer: SocketAddr,
        path: &str,
    ) -> http::request::Builder {
        http::Request::builder()
            .method(method)
            .uri(format!("http://{peer}{path}"))
            .header(
                http::header::AUTHORIZATION,
                format!("Bearer {}", self.token),
            )
    }

    /// POSTs a purge (the admin API's JSON) to the node at `peer`; its
    /// `{"purged": N}`.
    pub async fn purge(
        &self,
        peer: SocketAddr,
        body: Bytes,
        cdn_loop: &str,
    ) -> Result<u64, PurgeFailure> {
        let unreachable = |e: String| PurgeFailure::Unreachable(e);
        let request = self
            .control_request(Method::POST, peer, wire::PURGE_PATH)
            .header(http::header::CONTENT_TYPE, "application/json")
            .header(wire::CDN_LOOP, cdn_loop)
            .body(Full::new(body))
            .map_err(|e| unreachable(format!("request: {e}")))?;
        let exchange = async {
            let response = self
                .control
                .request(request)
                .await
                .map_err(|e| unreachable(e.to_string()))?;
            let status = response.status();
            let body = response
                .into_body()
                .collect()
                .await
                .map_err(|e| unreachable(e.to_string()))?
                .to_bytes();
            if status != StatusCode::OK {
                return Err(PurgeFailure::Refused {
                    status: status.as_u16(),
                    message: String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned(),
                });
            }
            let answer: serde_json::Value =
                serde_json::from_slice(&body).map_err(|e| unreachable(format!("answer: {e}")))?;
            answer
                .get("purged")
                .and_then(serde_json::Value::as_u64)
                .ok_or_else(|| unreachable("answer without `purged`".to_string()))
        };
        tokio::time::timeout(PURGE_TIMEOUT, exchange)
            .await
            .unwrap_or_else(|_| Err(unreachable(format!("no answer within {PURGE_TIMEOUT:?}"))))
    }

    /// Probes the node at `peer` (`GET /cluster/v1/hello`, [`PROBE_TIMEOUT`]
    /// in all): down when it takes no connection or gives no answer, up
    /// otherwise, with its node id when it says it (a node too old to know
    /// the path is up with none); refused when it does not take this node's
    /// token.
    pub fn probe(&self, peer: SocketAddr) -> impl std::future::Future<Output = Probe> + Send {
        let control = self.control.clone();
        let request = self
            .control_request(Method::GET, peer, wire::HELLO_PATH)
            .body(Full::new(Bytes::new()));
        async move {
            let Ok(request) = request else {
                return Probe::Down;
            };
            let exchange = async {
                let response = control.request(request).await.ok()?;
                let status = response.status();
                if status == StatusCode::UNAUTHORIZED {
                    return Some(Probe::Refused);
                }
                let body = response.into_body().collect().await.ok()?.to_bytes();
                let node_id = match status {
                    StatusCode::OK => serde_json::from_slice::<wire::Hello>(&body)
                        .ok()
                        .map(|hello| hello.node_id),
                    _ => None,
                };
                Some(Probe::Up { node_id })
            };
            tokio::time::timeout(PROBE_TIMEOUT, exchange)
                .await
                .ok()
                .flatten()
                .unwrap_or(Probe::Down)
        }
    }
}

/// Reads a body of `len` bytes whole; a short, long or stalled body is the
/// node failing.
async fn read_whole(
    mut stream: BodyStream,
    len: u64,
    timeout: Duration,
) -> Result<Bytes, PeerError> {
    let read = async {
        let mut whole = bytes::BytesMut::with_capacity(len as usize);
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| PeerError::Down(e.to_string()))?;
            whole.extend_from_slice(&chunk);
            if whole.len() as u64 > len {
                return Err(PeerError::Down(format!("body longer than {len} bytes")));
            }
        }
        if (whole.len() as u64) < len {
            return Err(PeerError::Down(format!(
                "body cut at {} of {len} bytes",
                whole.len()
            )));
        }
        Ok(whole.freeze())
    };
    tokio::time::timeout(timeout, read)
        .await
        .unwrap_or_else(|_| Err(PeerError::Down(format!("body not read within {timeout:?}"))))
}

/// `ObjectMeta` from the header fields of a node's answer.
pub fn meta_from_headers(headers: &HeaderMap) -> ObjectMeta {
    let field = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    ObjectMeta {
        content_length: field("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0),
        content_range: field("content-range"),
        content_type: field("content-type"),
        content_encoding: field("content-encoding"),
        content_language: field("content-language"),
        content_disposition: field("content-disposition"),
        cache_control: field("cache-control"),
        expires: field("expires"),
        date: field(wire::ORIGIN_DATE),
        etag: field("etag"),
        last_modified: field("last-modified").and_then(|v| httpdate::parse_http_date(&v).ok()),
        website_redirect_location: field(wire::REDIRECT_LOCATION),
        request_id: field(wire::REQUEST_ID),
        age: field("age").and_then(|v| v.trim().parse().ok()),
        cache_status: field("cache-status"),
        ..ObjectMeta::default()
    }
}
