//! Shared harness for the edge's integration tests: a node on ephemeral ports with
//! its own embedded S3 store in a temporary directory, an aws-sdk-s3 client to
//! publish objects into it, and a real HTTP client.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_s3::primitives::ByteStream;
use s3edge::access_log::{AccessLog, AccessLogTarget, LogFormat};
use s3edge::origin::embedded::{DEFAULT_ACCESS_KEY, DEFAULT_SECRET_KEY};
use s3edge::server::{NodeOptions, NodeThread, StartError};
use tempfile::TempDir;

pub mod binary;
pub mod fault_proxy;
pub mod h2_frames;
pub mod http_origin;
pub mod pebble;
pub mod pki;

/// An S3 client for an endpoint, with the given keys.
pub fn s3_client(endpoint: &str, access_key: &str, secret_key: &str) -> aws_sdk_s3::Client {
    let config = aws_sdk_s3::config::Builder::new()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .force_path_style(true)
        .credentials_provider(Credentials::new(access_key, secret_key, None, None, "test"))
        .build();
    aws_sdk_s3::Client::from_conf(config)
}

/// Options for a test node: everything on ephemeral loopback ports.
pub fn options(dir: &Path) -> NodeOptions {
    NodeOptions {
        sites_dir: dir.join("sites"),
        listen: vec![loopback()],
        tls_listen: Vec::new(),
        admin_listen: loopback(),
        tcp_congestion: None,
        workers: 2,
        access_log: AccessLog::off(),
        trusted_proxies: Vec::new(),
        embedded_dir: Some(dir.join("buckets")),
        embedded_listen: loopback(),
        embedded_access_key: DEFAULT_ACCESS_KEY.into(),
        embedded_secret_key: DEFAULT_SECRET_KEY.into(),
        admin_token: None,
        shutdown_timeout: Duration::from_secs(5),
        stall_timeout: s3edge::server::STALL_TIMEOUT,
        cache_dir: dir.join("cache"),
        disk_cache_size: 256 << 20,
        memory_cache_size: 64 << 20,
        memory_object_max: 8 << 20,
        website_refresh: Duration::from_millis(300),
        origin_wrapper: None,
        acme: s3edge::acme::AcmeOptions {
            dir: dir.join("acme"),
            ..Default::default()
        },
        cluster: None,
    }
}

pub fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

/// A running edge node with its embedded store.
pub struct Edge {
    pub node: NodeThread,
    pub dir: TempDir,
    pub s3: aws_sdk_s3::Client,
    pub http: reqwest::Client,
}

/// Builds an [`Edge`]: site files first, then options, then start.
pub struct EdgeBuilder {
    dir: TempDir,
    options: NodeOptions,
}

impl EdgeBuilder {
    pub fn new() -> EdgeBuilder {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(dir.path().join("sites")).expect("sites dir");
        std::fs::create_dir_all(dir.path().join("buckets")).expect("buckets dir");
        let options = options(dir.path());
        EdgeBuilder { dir, options }
    }

    /// Adds `sites/NAME.toml`.
    pub fn site(self, name: &str, toml: &str) -> EdgeBuilder {
        std::fs::write(
            self.dir.path().join("sites").join(format!("{name}.toml")),
            toml,
        )
        .expect("write site");
        self
    }

    /// Creates a bucket folder before the store starts.
    pub fn bucket(self, name: &str) -> EdgeBuilder {
        std::fs::create_dir_all(self.dir.path().join("buckets").join(name)).expect("bucket");
        self
    }

    pub fn access_log(mut self, path: &Path, format: LogFormat) -> EdgeBuilder {
        self.options.access_log =
            AccessLog::open(&AccessLogTarget::File(path.to_path_buf()), format).expect("log");
        self
    }

    pub fn with(mut self, change: impl FnOnce(&mut NodeOptions)) -> EdgeBuilder {
        change(&mut self.options);
        self
    }

    pub fn path(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }

    pub fn try_start(self) -> Result<Edge, StartError> {
        let node = NodeThread::spawn(self.options)?;
        let endpoint = format!("http://{}", node.embedded_addr.expect("embedded store"));
        Ok(Edge {
            node,
            dir: self.dir,
            s3: s3_client(&endpoint, DEFAULT_ACCESS_KEY, DEFAULT_SECRET_KEY),
            http: http_client(),
        })
    }

    pub fn start(self) -> Edge {
        self.try_start().expect("node starts")
    }
}

/// Sends `request` to `node` and reads the answer until the node closes the
/// connection; `false` when it was still open after 10 s.
pub async fn exchange(node: SocketAddr, request: String) -> (String, bool) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(node).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer));
    let closed = matches!(read.await, Ok(Ok(_)));
    (String::from_utf8_lossy(&answer).to_string(), closed)
}

/// A client that neither follows redirects nor decompresses, so tests see the
/// edge's answers as they are.
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_gzip()
        .no_brotli()
        .no_deflate()
        .build()
        .expect("client")
}

/// A site file for the embedded store's `bucket`, answering `host`.
pub fn site_toml(host: &str, bucket: &str, extra: &str) -> String {
    format!(
        "hosts = [\"{host}\"]\n[origin]\nbucket = \"{bucket}\"\nendpoint = \"embedded\"\n{extra}"
    )
}

impl Edge {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.node.url())
    }

    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.node.admin_addr)
    }

    /// The admin listener's Prometheus text.
    pub async fn metrics(&self) -> String {
        let response = self.http.get(self.admin_url("/metrics")).send().await;
        response
            .expect("metrics")
            .text()
            .await
            .expect("metrics body")
    }

    /// One series' value from `/metrics` (`name` includes its labels), 0 if absent.
    pub async fn metric(&self, name: &str) -> u64 {
        metric_value(&self.metrics().await, name)
    }

    /// The entries a cache tier (`memory` or `disk`) holds.
    pub async fn cache_entries(&self, tier: &str) -> u64 {
        self.metric(&format!("s3edge_cache_entries{{tier=\"{tier}\"}}"))
            .await
    }

    /// Waits (up to 5 s) until the disk tier holds at least `n` entries: fills
    /// are committed after the response has been sent.
    pub async fn wait_disk_entries(&self, n: u64) {
        let held = self
            .wait_metric("s3edge_cache_entries{tier=\"disk\"}", |held| held >= n)
            .await;
        assert!(held >= n, "the disk tier never held {n} entries");
    }

    /// Reads the series `name` (as [`Edge::metric`]) every 20 ms, up to 5 s,
    /// until `done` holds for it; returns the last reading. Counters of a
    /// response are added once its body has left, after the client has it.
    pub async fn wait_metric(&self, name: &str, done: impl Fn(u64) -> bool) -> u64 {
        let mut value = self.metric(name).await;
        for _ in 0..250 {
            if done(value) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
            value = self.metric(name).await;
        }
        value
    }

    /// GET `path` with `Host: host`.
    pub async fn get(&self, host: &str, path: &str) -> reqwest::Response {
        self.request(reqwest::Method::GET, host, path, &[]).await
    }

    /// A request with extra headers.
    pub async fn request(
        &self,
        method: reqwest::Method,
        host: &str,
        path: &str,
        headers: &[(&str, &str)],
    ) -> reqwest::Response {
        let mut request = self
            .http
            .request(method, self.url(path))
            .header("host", host);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.send().await.expect("request")
    }

    pub async fn create_bucket(&self, bucket: &str) {
        self.s3
            .create_bucket()
            .bucket(bucket)
            .send()
            .await
            .expect("create bucket");
    }

    /// Puts an object; `content_type` None leaves S3's default.
    pub async fn put(
        &self,
        bucket: &str,
        key: &str,
        body: impl Into<Vec<u8>>,
        content_type: Option<&str>,
    ) {
        self.put_with(bucket, key, body, |b| match content_type {
            Some(t) => b.content_type(t),
            None => b,
        })
        .await;
    }

    /// Puts an object, letting the caller set more of its metadata.
    pub async fn put_with(
        &self,
        bucket: &str,
        key: &str,
        body: impl Into<Vec<u8>>,
        change: impl FnOnce(
            aws_sdk_s3::operation::put_object::builders::PutObjectFluentBuilder,
        )
            -> aws_sdk_s3::operation::put_object::builders::PutObjectFluentBuilder,
    ) {
        let request = self
            .s3
            .put_object()
            .bucket(bucket)
            .key(key)
            .body(ByteStream::from(body.into()));
        change(request).send().await.expect("put object");
    }
}

/// One series' value in Prometheus text (`name` includes its labels), 0 if absent.
pub fn metric_value(text: &str, name: &str) -> u64 {
    let prefix = format!("{name} ");
    text.lines()
        .find_map(|l| l.strip_prefix(prefix.as_str()))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// The disk tier's temporary files (fills in progress) under a `--cache-dir`,
/// with their sizes.
pub fn temp_files(cache_dir: &Path) -> Vec<(PathBuf, u64)> {
    std::fs::read_dir(cache_dir.join("v2/tmp"))
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| (e.path(), e.metadata().map(|m| m.len()).unwrap_or(0)))
                .collect()
        })
        .unwrap_or_default()
}

/// Deterministic pseudo-random bytes (xorshift), so big bodies are not all zeros.
pub fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(&state.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// The bytes a gzip body decodes to.
pub fn gunzip(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(data), &mut out).unwrap();
    out
}

pub fn sha256(data: &[u8]) -> String {
    use sha2::Digest;
    format!("{:x}", sha2::Sha256::digest(data))
}

#[allow(unused_imports)]
pub use test_origin::{Fault, TestOrigin, TestOrigins};

/// A test double around a site's real origin: counts calls and injects faults.
mod test_origin {
    use std::collections::HashMap;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use async_trait::async_trait;
    use s3edge::config::raw::RawWebsite;
    use s3edge::origin::{Fetched, ObjectMeta, ObjectRequest, Origin, OriginError};
    use s3edge::site::OriginWrapper;

    /// A fault to inject into every call until cleared.
    #[derive(Debug, Clone)]
    pub enum Fault {
        /// Answer 403 AccessDenied for keys with this prefix.
        DenyPrefix(String),
        /// The origin cannot be reached.
        Refuse,
        /// Sleep this long before answering.
        Stall(Duration),
        /// Send only this many bytes of each body, then end it.
        Truncate(usize),
        /// The bucket answers 500 InternalError.
        ServerError,
        /// A ranged GET is answered with a Content-Range that does not match it.
        WrongContentRange,
    }

    /// Wraps a real origin.
    pub struct TestOrigin {
        inner: Arc<dyn Origin>,
        pub gets: AtomicUsize,
        pub heads: AtomicUsize,
        pub requests: Mutex<Vec<ObjectRequest>>,
        pub faults: Mutex<Vec<Fault>>,
    }

    impl TestOrigin {
        pub fn gets(&self) -> usize {
            self.gets.load(Ordering::SeqCst)
        }

        /// GETs made for one object key.
        pub fn gets_for(&self, key: &str) -> usize {
            self.requests
                .lock()
                .unwrap()
                .iter()
                .filter(|r| r.key == key)
                .count()
        }

        /// The requests made for one object key.
        pub fn requests_for(&self, key: &str) -> Vec<ObjectRequest> {
            self.requests
                .lock()
                .unwrap()
                .iter()
                .filter(|r| r.key == key)
                .cloned()
                .collect()
        }

        pub fn inject(&self, fault: Fault) {
            self.faults.lock().unwrap().push(fault);
        }

        pub fn clear(&self) {
            self.faults.lock().unwrap().clear();
        }

        async fn check(&self, key: &str) -> Result<(), OriginError> {
            let faults = self.faults.lock().unwrap().clone();
            for fault in faults {
                match fault {
                    Fault::DenyPrefix(prefix) if key.starts_with(&prefix) => {
                        return Err(OriginError::Denied { request_id: None })
                    }
                    Fault::DenyPrefix(_) => {}
                    Fault::Refuse => return Err(OriginError::Unreachable("injected".into())),
                    Fault::Stall(d) => tokio::time::sleep(d).await,
                    Fault::Truncate(_) | Fault::WrongContentRange => {}
                    Fault::ServerError => {
                        return Err(OriginError::Rejected {
                            status: 500,
                            code: "InternalError".into(),
                            request_id: None,
                        })
                    }
                }
            }
            Ok(())
        }
    }

    #[async_trait]
    impl Origin for TestOrigin {
        async fn get(&self, request: &ObjectRequest) -> Result<Fetched, OriginError> {
            self.gets.fetch_add(1, Ordering::SeqCst);
            self.requests.lock().unwrap().push(request.clone());
            self.check(&request.key).await?;
            let truncate = self.faults.lock().unwrap().iter().find_map(|f| match f {
                Fault::Truncate(n) => Some(*n),
                _ => None,
            });
            let wrong_range = self
                .faults
                .lock()
                .unwrap()
                .iter()
                .any(|f| matches!(f, Fault::WrongContentRange));
            let fetched = match self.inner.get(request).await? {
                Fetched::Object { mut meta, body } if wrong_range && request.range.is_some() => {
                    meta.content_range = Some(format!(
                        "bytes 1-{}/{}",
                        meta.content_length,
                        meta.content_length + 1000
                    ));
                    Fetched::Object { meta, body }
                }
                other => other,
            };
            match (fetched, truncate) {
                (Fetched::Object { meta, body }, Some(limit)) => {
                    use futures_util::StreamExt;
                    let mut sent = 0usize;
                    let body = body
                        .map(move |chunk| {
                            chunk.map(|bytes| {
                                let keep = bytes.len().min(limit.saturating_sub(sent));
                                sent += keep;
                                bytes.slice(..keep)
                            })
                        })
                        .filter(|chunk| {
                            std::future::ready(!matches!(chunk, Ok(b) if b.is_empty()))
                        });
                    Ok(Fetched::Object {
                        meta,
                        body: Box::pin(body),
                    })
                }
                (fetched, _) => Ok(fetched),
            }
        }

        async fn head(&self, key: &str) -> Result<ObjectMeta, OriginError> {
            self.heads.fetch_add(1, Ordering::SeqCst);
            self.check(key).await?;
            self.inner.head(key).await
        }

        async fn website_configuration(&self) -> Result<Option<RawWebsite>, OriginError> {
            self.inner.website_configuration().await
        }

        async fn has_objects_under(&self, prefix: &str) -> Result<bool, OriginError> {
            self.inner.has_objects_under(prefix).await
        }

        async fn cors_configuration(
            &self,
        ) -> Result<Option<Vec<s3edge::config::CorsConfig>>, OriginError> {
            self.inner.cors_configuration().await
        }

        fn describe(&self) -> String {
            format!("test({})", self.inner.describe())
        }
    }

    /// The test origins of a node, by site name.
    #[derive(Default)]
    pub struct TestOrigins {
        by_site: Mutex<HashMap<String, Arc<TestOrigin>>>,
    }

    impl TestOrigins {
        pub fn site(&self, name: &str) -> Arc<TestOrigin> {
            self.by_site.lock().unwrap()[name].clone()
        }

        /// The wrapper to put in `NodeOptions::origin_wrapper`.
        pub fn wrapper(self: &Arc<Self>) -> OriginWrapper {
            let origins = self.clone();
            Arc::new(move |config, inner| {
                let origin = Arc::new(TestOrigin {
                    inner,
                    gets: AtomicUsize::new(0),
                    heads: AtomicUsize::new(0),
                    requests: Mutex::new(Vec::new()),
                    faults: Mutex::new(Vec::new()),
                });
                origins
                    .by_site
                    .lock()
                    .unwrap()
                    .insert(config.name.clone(), origin.clone());
                origin as Arc<dyn Origin>
            })
        }
    }
}

impl EdgeBuilder {
    /// Wraps every site's origin in a [`TestOrigin`].
    pub fn test_origins(self) -> (EdgeBuilder, std::sync::Arc<TestOrigins>) {
        let origins = std::sync::Arc::new(TestOrigins::default());
        let wrapper = origins.wrapper();
        (self.with(|o| o.origin_wrapper = Some(wrapper)), origins)
    }
}
