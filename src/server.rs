//! actix-web wiring: listeners, shared state, and the request handler.
//!
//! The handler reads top to bottom (DESIGN.md "Request pipeline"); each stage
//! either answers or passes on:
//!
//! 1. Site: pick the site by `Host` (exact, longest wildcard, default), else 404.
//! 2. Method: GET and HEAD; other standard methods 405, unknown methods 501.
//! 3. Path to key: percent-decode once, remove dot-segments, add the prefix; 400
//!    for NUL or invalid UTF-8.
//! 4. Website rules (index and error documents, redirects): see `website.rs`.
//! 5. Fetch from the origin (the cache tiers sit here).
//! 6. Response headers from the object's metadata, then the site's `[headers]`.
//! 7. Origin errors: 502 (unreachable, rejected), 504 (timeout), logged with the
//!    site and the S3 error code.
//!
//! Every response body is wrapped so the access log line and the byte counters
//! are written when the body has been sent (or abandoned).

use std::net::{IpAddr, SocketAddr, TcpListener};
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime};

use actix_web::body::{BodySize, BoxBody, MessageBody, SizedStream};
use actix_web::dev::ServerHandle;
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::{Method, StatusCode, Version};
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use bytes::Bytes;
use futures_util::{Stream, StreamExt};

use crate::access_log::{AccessLog, AccessRecord};
use crate::config::{self, ConfigErrors, Endpoint};
use crate::http::{headers, mime};
use crate::metrics::Metrics;
use crate::origin::s3::{BuildError, EmbeddedEndpoint};
use crate::origin::{BodyStream, Fetched, ObjectMeta, ObjectRequest, OriginError};
use crate::site::{Site, Sites};
use crate::website;

/// How long a graceful stop waits for in-flight requests.
pub const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(30);
/// `Allow` for methods other than GET and HEAD.
const ALLOW: &str = "GET, HEAD";
/// Idle keep-alive connections are closed after this long.
const KEEP_ALIVE: Duration = Duration::from_secs(30);
/// A client must send its request head within this long (slowloris guard).
const CLIENT_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Everything `serve` needs, from the command line or a test.
#[derive(Debug, Clone)]
pub struct NodeOptions {
    pub sites_dir: PathBuf,
    pub listen: Vec<SocketAddr>,
    pub admin_listen: SocketAddr,
    pub workers: usize,
    pub access_log: AccessLog,
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// `--embedded-s3`: start the store on this directory even when no site uses it.
    pub embedded_dir: Option<PathBuf>,
    pub embedded_listen: SocketAddr,
    pub embedded_access_key: String,
    pub embedded_secret_key: String,
    pub admin_token: Option<String>,
    pub shutdown_timeout: Duration,
}

impl std::fmt::Debug for AccessLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AccessLog")
    }
}

/// Why the node could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("{0}")]
    Config(#[from] ConfigErrors),
    #[error("site `{site}`: {source}")]
    Origin { site: String, source: BuildError },
    #[cfg(feature = "embedded")]
    #[error("embedded S3 store: {0}")]
    Embedded(#[from] crate::origin::embedded::EmbeddedError),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// State shared by every worker.
pub struct AppState {
    sites: RwLock<Arc<Sites>>,
    pub metrics: Arc<Metrics>,
    pub access_log: AccessLog,
    pub ready: AtomicBool,
    pub admin_token: Option<String>,
    pub trusted_proxies: Vec<ipnet::IpNet>,
}

impl AppState {
    pub fn new(sites: Sites, options: &NodeOptions) -> AppState {
        AppState {
            sites: RwLock::new(Arc::new(sites)),
            metrics: Arc::new(Metrics::default()),
            access_log: options.access_log.clone(),
            ready: AtomicBool::new(false),
            admin_token: options.admin_token.clone(),
            trusted_proxies: options.trusted_proxies.clone(),
        }
    }

    /// The current sites (a reload swaps them whole).
    pub fn sites(&self) -> Arc<Sites> {
        self.sites.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Replaces the sites for new requests.
    pub fn replace_sites(&self, sites: Sites) {
        *self.sites.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(sites);
    }
}

/// A started node: its listeners' addresses and the handles to stop it.
pub struct Node {
    pub http_addrs: Vec<SocketAddr>,
    pub admin_addr: SocketAddr,
    pub state: web::Data<AppState>,
    pub embedded: Option<EmbeddedStore>,
    handles: Vec<ServerHandle>,
    servers: Vec<actix_web::dev::Server>,
}

impl Node {
    /// Loads the sites, starts the embedded store if needed, builds the S3 clients
    /// and binds every listener. Must run inside an actix system; call
    /// [`Node::run`] to serve. Prints one line per listener and per site.
    pub async fn start(options: NodeOptions) -> Result<Node, StartError> {
        let configs = config::load_sites(&options.sites_dir)?;
        let wants_embedded = options.embedded_dir.is_some()
            || configs.iter().any(|c| c.origin.endpoint == Endpoint::Embedded);
        let embedded = if wants_embedded {
            Some(start_embedded(&options)?)
        } else {
            None
        };
        let embedded_endpoint = embedded.as_ref().map(|(_, endpoint)| endpoint.clone());
        let sites = Sites::build(configs, embedded_endpoint.as_ref())
            .await
            .map_err(|(site, source)| StartError::Origin { site, source })?;
        for site in &sites.sites {
            let hosts: Vec<String> = site.config.hosts.iter().map(|h| h.to_string()).collect();
            let mut hosts = hosts.join(", ");
            if site.config.default {
                hosts.push_str(if hosts.is_empty() { "(default)" } else { " (default)" });
            }
            println!(
                "site {}: {} -> {}",
                site.name(),
                hosts,
                site.origin.describe()
            );
        }
        if sites.sites.is_empty() {
            tracing::warn!(dir = %options.sites_dir.display(), "no site files found; every request will get 404");
        }
        let state = web::Data::new(AppState::new(sites, &options));
        Self::bind(options, state, embedded.map(|(store, _)| store))
    }

    fn bind(
        options: NodeOptions,
        state: web::Data<AppState>,
        embedded: Option<EmbeddedStore>,
    ) -> Result<Node, StartError> {
        let mut http_addrs = Vec::new();
        let edge_state = state.clone();
        let mut edge = HttpServer::new(move || {
            App::new()
                .app_data(edge_state.clone())
                .default_service(web::to(handle))
        })
        .workers(options.workers.max(1))
        .keep_alive(KEEP_ALIVE)
        .client_request_timeout(CLIENT_REQUEST_TIMEOUT)
        .shutdown_timeout(options.shutdown_timeout.as_secs())
        .disable_signals();
        for addr in &options.listen {
            let listener = TcpListener::bind(addr).map_err(|source| StartError::Listen {
                addr: *addr,
                source,
            })?;
            let local = listener.local_addr().map_err(|source| StartError::Listen {
                addr: *addr,
                source,
            })?;
            edge = edge
                .listen(listener)
                .map_err(|source| StartError::Listen { addr: local, source })?;
            println!("listening on http://{local}");
            http_addrs.push(local);
        }
        let admin_state = state.clone();
        let listener =
            TcpListener::bind(options.admin_listen).map_err(|source| StartError::Listen {
                addr: options.admin_listen,
                source,
            })?;
        let admin_addr = listener
            .local_addr()
            .map_err(|source| StartError::Listen {
                addr: options.admin_listen,
                source,
            })?;
        let admin = HttpServer::new(move || {
            App::new()
                .app_data(admin_state.clone())
                .configure(crate::admin::configure)
        })
        .workers(1)
        .shutdown_timeout(options.shutdown_timeout.as_secs())
        .disable_signals()
        .listen(listener)
        .map_err(|source| StartError::Listen {
            addr: admin_addr,
            source,
        })?;
        println!("admin listening on http://{admin_addr}");
        let edge = edge.run();
        let admin = admin.run();
        state.ready.store(true, Ordering::Release);
        Ok(Node {
            http_addrs,
            admin_addr,
            state,
            embedded,
            handles: vec![edge.handle(), admin.handle()],
            servers: vec![edge, admin],
        })
    }

    /// Handles that stop the node from elsewhere (signal handlers, tests).
    pub fn handles(&self) -> Vec<ServerHandle> {
        self.handles.clone()
    }

    /// Serves until every listener has stopped.
    pub async fn run(self) -> std::io::Result<()> {
        let Node {
            servers, embedded, ..
        } = self;
        let results = futures_util::future::join_all(servers).await;
        if let Some(store) = embedded {
            stop_embedded(store);
        }
        results.into_iter().collect()
    }
}

/// The embedded S3 store, when the feature is built in.
#[cfg(feature = "embedded")]
pub type EmbeddedStore = crate::origin::embedded::EmbeddedS3;
/// The embedded S3 store, when the feature is built in (here it is not).
#[cfg(not(feature = "embedded"))]
pub type EmbeddedStore = std::convert::Infallible;

/// Starts the embedded store on `--embedded-s3` (default `<sites>/buckets`).
#[cfg(feature = "embedded")]
fn start_embedded(options: &NodeOptions) -> Result<(EmbeddedStore, EmbeddedEndpoint), StartError> {
    use crate::origin::embedded::{EmbeddedConfig, EmbeddedS3};
    let root = options
        .embedded_dir
        .clone()
        .unwrap_or_else(|| options.sites_dir.join("buckets"));
    let store = EmbeddedS3::start(EmbeddedConfig {
        root: root.clone(),
        listen: options.embedded_listen,
        access_key: options.embedded_access_key.clone(),
        secret_key: options.embedded_secret_key.clone(),
    })?;
    println!(
        "embedded S3 store: {} serving buckets from {}",
        store.endpoint(),
        root.display()
    );
    let endpoint = EmbeddedEndpoint {
        url: store.endpoint(),
        access_key: options.embedded_access_key.clone(),
        secret_key: options.embedded_secret_key.clone(),
    };
    Ok((store, endpoint))
}

#[cfg(not(feature = "embedded"))]
fn start_embedded(_: &NodeOptions) -> Result<(EmbeddedStore, EmbeddedEndpoint), StartError> {
    Err(StartError::Origin {
        site: "(embedded)".into(),
        source: BuildError::NoEmbeddedStore,
    })
}

#[cfg(feature = "embedded")]
fn stop_embedded(store: EmbeddedStore) {
    store.shutdown();
}

#[cfg(not(feature = "embedded"))]
fn stop_embedded(store: EmbeddedStore) {
    match store {}
}

/// Stops every server: `graceful` waits for in-flight requests (up to the
/// shutdown timeout), otherwise connections are dropped.
pub async fn stop(handles: &[ServerHandle], graceful: bool) {
    futures_util::future::join_all(handles.iter().map(|h| h.stop(graceful))).await;
}

/// A node running on its own thread with its own actix system (tests, embedding).
pub struct NodeThread {
    pub http_addrs: Vec<SocketAddr>,
    pub admin_addr: SocketAddr,
    pub state: web::Data<AppState>,
    handles: Vec<ServerHandle>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl NodeThread {
    /// Starts a node on a new thread and waits until it listens.
    pub fn spawn(options: NodeOptions) -> Result<NodeThread, StartError> {
        let (tx, rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            actix_rt::System::new().block_on(async move {
                match Node::start(options).await {
                    Ok(node) => {
                        let info = (
                            node.http_addrs.clone(),
                            node.admin_addr,
                            node.state.clone(),
                            node.handles(),
                        );
                        let _ = tx.send(Ok(info));
                        let _ = node.run().await;
                    }
                    Err(e) => {
                        let _ = tx.send(Err(e));
                    }
                }
            })
        });
        match rx.recv() {
            Ok(Ok((http_addrs, admin_addr, state, handles))) => Ok(NodeThread {
                http_addrs,
                admin_addr,
                state,
                handles,
                thread: Some(thread),
            }),
            Ok(Err(e)) => {
                let _ = thread.join();
                Err(e)
            }
            Err(_) => {
                let _ = thread.join();
                Err(StartError::Listen {
                    addr: SocketAddr::from(([0, 0, 0, 0], 0)),
                    source: std::io::Error::other("the node thread ended before it started"),
                })
            }
        }
    }

    /// The first HTTP listener as a base URL, `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.http_addrs[0])
    }

    /// Stops the node and waits for its thread.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if let Some(thread) = self.thread.take() {
            let handles = self.handles.clone();
            let stopper = std::thread::spawn(move || {
                actix_rt::System::new().block_on(stop(&handles, false));
            });
            let _ = stopper.join();
            let _ = thread.join();
        }
    }
}

impl Drop for NodeThread {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// What the access log and metrics learn while a request is handled.
struct Exchange {
    site: Option<Arc<Site>>,
    cache: &'static str,
    origin_request_id: Option<String>,
}

/// The edge handler: runs the pipeline, then applies the site's headers and wraps
/// the body for the access log.
async fn handle(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let started = Instant::now();
    let mut exchange = Exchange {
        site: None,
        cache: "pass",
        origin_request_id: None,
    };
    let mut response = serve(&req, &state, &mut exchange).await;
    if let Some(site) = &exchange.site {
        headers::apply_site_headers(response.headers_mut(), &site.config.headers);
    }
    let record = AccessRecord {
        time: SystemTime::now(),
        site: exchange.site.as_ref().map(|s| s.name().to_string()),
        client: client_address(&req, &state.trusted_proxies),
        method: req.method().to_string(),
        path: req
            .uri()
            .path_and_query()
            .map(|p| p.as_str().to_string())
            .unwrap_or_default(),
        protocol: protocol_name(req.version()),
        status: response.status().as_u16(),
        bytes: 0,
        duration_ms: Duration::ZERO,
        cache: exchange.cache,
        origin_request_id: exchange.origin_request_id,
        complete: true,
    };
    let logged = LoggedBody {
        inner: None,
        record: Some(record),
        started,
        state: state.into_inner(),
    };
    response.map_body(|_, body| {
        let mut logged = logged;
        logged.inner = Some(body);
        BoxBody::new(logged)
    })
}

/// Stages 1 to 7 of the pipeline.
async fn serve(req: &HttpRequest, state: &AppState, exchange: &mut Exchange) -> HttpResponse {
    // 1. Site.
    let sites = state.sites();
    let Some(site) = sites.route(request_host(req)).cloned() else {
        return error_page(StatusCode::NOT_FOUND, "No site is configured for this host.");
    };
    exchange.site = Some(site.clone());

    // 2. Method.
    let head = match *req.method() {
        Method::GET => false,
        Method::HEAD => true,
        Method::POST
        | Method::PUT
        | Method::DELETE
        | Method::PATCH
        | Method::OPTIONS
        | Method::TRACE
        | Method::CONNECT => {
            let mut response = error_page(
                StatusCode::METHOD_NOT_ALLOWED,
                "This method is not allowed here.",
            );
            response
                .headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static(ALLOW));
            return response;
        }
        _ => {
            return error_page(
                StatusCode::NOT_IMPLEMENTED,
                "This method is not implemented.",
            )
        }
    };

    // 3. Path to key.
    let key = match website::path_to_key(req.uri().path()) {
        Ok(key) => key,
        Err(e) => {
            return error_page(StatusCode::BAD_REQUEST, &format!("Bad request: {e}."));
        }
    };

    // 4. Website rules: none yet; keys are served as they are.

    // 5. Fetch.
    let request = ObjectRequest::new(site.object_key(&key));
    match fetch(state, &site, &request, exchange).await {
        Ok(Fetched::Object { meta, body }) => object_response(&key, meta, body, head),
        Ok(Fetched::NotModified { .. }) => {
            tracing::warn!(site = site.name(), key = %request.key, "origin answered 304 to an unconditional request");
            error_page(StatusCode::BAD_GATEWAY, "The origin answered unexpectedly.")
        }
        Err(e) => origin_error_response(&site, &request.key, &e),
    }
}

/// One origin request, timed and counted.
async fn fetch(
    state: &AppState,
    site: &Site,
    request: &ObjectRequest,
    exchange: &mut Exchange,
) -> Result<Fetched, OriginError> {
    let started = Instant::now();
    let result = site.origin.get(request).await;
    state.metrics.origin_duration.observe(started.elapsed());
    let outcome = match &result {
        Ok(Fetched::Object { meta, .. }) => {
            exchange.origin_request_id = meta.request_id.clone();
            "ok"
        }
        Ok(Fetched::NotModified { meta }) => {
            exchange.origin_request_id = meta.request_id.clone();
            "not_modified"
        }
        Err(e) => {
            exchange.origin_request_id = e.request_id().map(str::to_string);
            e.outcome()
        }
    };
    state
        .metrics
        .origin_requests
        .inc(&[site.name(), outcome]);
    result
}

/// A 200 with the object's headers and its body streamed as it arrives.
fn object_response(key: &str, meta: ObjectMeta, body: BodyStream, head: bool) -> HttpResponse {
    let content_type = mime::content_type(meta.content_type.as_deref(), key);
    let mut response = HttpResponse::Ok();
    for (name, value) in headers::representation_headers(&meta, &content_type) {
        response.insert_header((name, value));
    }
    response.insert_header((header::HeaderName::from_static("cache-status"), "s3edge; fwd=bypass"));
    if head {
        return response.body(HeadBody(meta.content_length));
    }
    let checked = LengthChecked {
        inner: body,
        expected: meta.content_length,
        seen: 0,
    };
    response.body(SizedStream::new(meta.content_length, checked))
}

/// The answer for an origin error, logged with the site and the S3 error code.
fn origin_error_response(site: &Site, key: &str, error: &OriginError) -> HttpResponse {
    let status = StatusCode::from_u16(error.http_status()).unwrap_or(StatusCode::BAD_GATEWAY);
    match error {
        OriginError::NotFound { .. } => {
            error_page(status, "The page you asked for does not exist.")
        }
        OriginError::Denied { .. } if site.config.origin.denied_as_missing => error_page(
            StatusCode::NOT_FOUND,
            "The page you asked for does not exist.",
        ),
        OriginError::Denied { .. } => error_page(status, "You may not see this page."),
        OriginError::PreconditionFailed | OriginError::RangeNotSatisfiable { .. } => {
            error_page(status, "The request's conditions do not hold.")
        }
        OriginError::Rejected { code, .. } => {
            tracing::error!(site = site.name(), key, s3_error = %code, "{error}");
            error_page(status, "The origin refused the request.")
        }
        OriginError::Unreachable(_) | OriginError::Invalid(_) => {
            tracing::error!(site = site.name(), key, "{error}");
            error_page(status, "The origin could not be reached.")
        }
        OriginError::Timeout(_) => {
            tracing::error!(site = site.name(), key, "{error}");
            error_page(status, "The origin did not answer in time.")
        }
    }
}

/// A small HTML page for an error status.
pub fn error_page(status: StatusCode, message: &str) -> HttpResponse {
    let reason = status.canonical_reason().unwrap_or("Error");
    let body = format!(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>{code} {reason}</title></head>\
         <body><h1>{code} {reason}</h1><p>{message}</p></body></html>\n",
        code = status.as_u16(),
    );
    HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(body)
}

/// The request's host: the `Host` header, or the authority of an HTTP/2 request.
fn request_host(req: &HttpRequest) -> Option<&str> {
    req.headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .or_else(|| req.uri().authority().map(|a| a.as_str()))
}

/// The client's address: the peer, or the forwarded address when the peer is a
/// trusted proxy.
fn client_address(req: &HttpRequest, trusted: &[ipnet::IpNet]) -> String {
    let peer = req.peer_addr().map(|a| a.ip());
    let forwarded = peer
        .filter(|ip| trusted.iter().any(|net| net.contains(ip)))
        .and_then(|_| {
            req.headers()
                .get("x-forwarded-for")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.split(',').next_back())
                .and_then(|v| v.trim().parse::<IpAddr>().ok())
        });
    forwarded
        .or(peer)
        .map(|ip| ip.to_string())
        .unwrap_or_else(|| "-".to_string())
}

fn protocol_name(version: Version) -> &'static str {
    match version {
        Version::HTTP_09 => "HTTP/0.9",
        Version::HTTP_10 => "HTTP/1.0",
        Version::HTTP_2 => "HTTP/2",
        Version::HTTP_3 => "HTTP/3",
        _ => "HTTP/1.1",
    }
}

/// The body of a HEAD response: announces the GET body's length, sends nothing.
struct HeadBody(u64);

impl MessageBody for HeadBody {
    type Error = std::convert::Infallible;

    fn size(&self) -> BodySize {
        BodySize::Sized(self.0)
    }

    fn poll_next(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, Self::Error>>> {
        Poll::Ready(None)
    }
}

/// Passes an origin body on, failing if it ends before or runs past the announced
/// length, so a short body is never presented as complete.
struct LengthChecked {
    inner: BodyStream,
    expected: u64,
    seen: u64,
}

impl Stream for LengthChecked {
    type Item = Result<Bytes, OriginError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        match self.inner.poll_next_unpin(cx) {
            Poll::Ready(Some(Ok(bytes))) => {
                self.seen += bytes.len() as u64;
                if self.seen > self.expected {
                    return Poll::Ready(Some(Err(OriginError::Invalid(format!(
                        "body longer than its Content-Length {}",
                        self.expected
                    )))));
                }
                Poll::Ready(Some(Ok(bytes)))
            }
            Poll::Ready(None) if self.seen < self.expected => {
                Poll::Ready(Some(Err(OriginError::Invalid(format!(
                    "body cut short after {} of {} bytes",
                    self.seen, self.expected
                )))))
            }
            other => other,
        }
    }
}

/// Wraps a response body: counts the bytes sent and, when the body is dropped
/// (sent, failed or abandoned), writes the access log line and the metrics.
struct LoggedBody {
    inner: Option<BoxBody>,
    record: Option<AccessRecord>,
    started: Instant,
    state: Arc<AppState>,
}

impl MessageBody for LoggedBody {
    type Error = Box<dyn std::error::Error>;

    fn size(&self) -> BodySize {
        self.inner.as_ref().map_or(BodySize::None, |b| b.size())
    }

    fn poll_next(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, Self::Error>>> {
        let Some(inner) = self.inner.as_mut() else {
            return Poll::Ready(None);
        };
        match Pin::new(inner).poll_next(cx) {
            Poll::Ready(Some(Ok(bytes))) => {
                if let Some(record) = self.record.as_mut() {
                    record.bytes += bytes.len() as u64;
                }
                Poll::Ready(Some(Ok(bytes)))
            }
            Poll::Ready(Some(Err(e))) => {
                if let Some(record) = self.record.as_mut() {
                    record.complete = false;
                }
                tracing::warn!("response body failed: {e}");
                Poll::Ready(Some(Err(e)))
            }
            other => other,
        }
    }
}

impl Drop for LoggedBody {
    fn drop(&mut self) {
        let Some(mut record) = self.record.take() else {
            return;
        };
        if let (BodySize::Sized(len), false) = (self.size(), record.method == "HEAD") {
            if record.bytes < len {
                record.complete = false;
            }
        }
        record.duration_ms = self.started.elapsed();
        let site = record.site.as_deref().unwrap_or("-");
        let metrics = &self.state.metrics;
        metrics
            .requests
            .inc(&[site, &record.status.to_string()]);
        metrics.response_bytes.add(&[site], record.bytes);
        self.state.access_log.record(&record);
    }
}
