//! The S3 origin: one aws-sdk-s3 client per site, built once, whose requests
//! go through a connection pool of the thread that makes them, shared by all
//! sites ([`per_thread_pools`]). Errors are classified into
//! [`OriginError`] here, so nothing of S3's XML or `x-amz-*` headers travels further.

use std::sync::LazyLock;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use aws_config::BehaviorVersion;
use aws_credential_types::Credentials;
use aws_sdk_s3::config::{
    retry::RetryConfig, Region, RequestChecksumCalculation, ResponseChecksumValidation,
};
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::operation::RequestId;
use aws_sdk_s3::primitives::ByteStream;
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnectorSettings, SharedHttpClient, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::runtime_components::{
    RuntimeComponents, RuntimeComponentsBuilder,
};
use aws_smithy_types::config_bag::ConfigBag;
use aws_smithy_types::timeout::TimeoutConfig;
use thread_local::ThreadLocal;

use super::{BodyStream, Fetched, ObjectMeta, ObjectRequest, Origin, OriginError};
use crate::config::raw::{RawCondition, RawRedirect, RawRedirectAll, RawRoutingRule, RawWebsite};
use crate::config::{CorsConfig, CredentialsSource, Endpoint, OriginConfig, FALLBACK_REGION};

/// A time the S3 API gives, when an HTTP-date can state it
/// ([`representable`](crate::http::date::representable)): a store may report
/// a file dated before 1970, and the SDK's offset format can reach the year
/// 10000; neither can be written back, so neither is kept.
pub fn stated_time(time: &aws_smithy_types::DateTime) -> Option<SystemTime> {
    SystemTime::try_from(*time)
        .ok()
        .and_then(crate::http::date::representable)
}

/// Attempts per origin request: one retry for throttling and dropped connections,
/// all within the site's `timeout`.
const MAX_ATTEMPTS: u32 = 2;

/// The embedded store's address and credentials, for sites with `endpoint = "embedded"`.
#[derive(Debug, Clone)]
pub struct EmbeddedEndpoint {
    pub url: String,
    pub access_key: String,
    pub secret_key: String,
}

/// Why a site's S3 client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(
        "environment variable `{0}` is not set; export it or change the site's origin credentials"
    )]
    MissingEnv(String),
    #[error("the site uses the embedded store, but it is not running (build with the `embedded` feature)")]
    NoEmbeddedStore,
}

/// A bucket reached with aws-sdk-s3.
///
/// Object reads go through a client of the calling thread's own
/// ([`S3Origin::local`]), each with its own connection pool, for the reason
/// [`super::pools`] gives. The clients share everything else:
/// configuration, credentials and their cache, endpoint resolution.
pub struct S3Origin {
    /// The site's client; its HTTP client is [`per_thread_pools`].
    client: aws_sdk_s3::Client,
    bucket: String,
    description: String,
    /// Longest wait between two body chunks before the transfer counts as stalled.
    body_idle_timeout: Duration,
}

impl S3Origin {
    /// Builds the client for one site. `embedded` is the running embedded store, if any.
    pub async fn build(
        config: &OriginConfig,
        embedded: Option<&EmbeddedEndpoint>,
    ) -> Result<S3Origin, BuildError> {
        let timeouts = TimeoutConfig::builder()
            .connect_timeout(config.timeout)
            .read_timeout(config.timeout)
            .operation_timeout(config.timeout)
            .build();
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .timeout_config(timeouts)
            .retry_config(RetryConfig::standard().with_max_attempts(MAX_ATTEMPTS));
        if let Some(region) = &config.region {
            loader = loader.region(Region::new(region.clone()));
        } else if config.endpoint != Endpoint::Aws {
            loader = loader.region(Region::new(FALLBACK_REGION));
        }
        let mut endpoint_url = None;
        let mut where_ = String::new();
        match &config.endpoint {
            Endpoint::Aws => {}
            Endpoint::Url(url) => {
                endpoint_url = Some(url.clone());
                where_ = format!(" at {url}");
            }
            Endpoint::Embedded => {
                let embedded = embedded.ok_or(BuildError::NoEmbeddedStore)?;
                endpoint_url = Some(embedded.url.clone());
                where_ = " (embedded)".to_string();
                if config.credentials == CredentialsSource::Default {
                    loader = loader.credentials_provider(Credentials::new(
                        embedded.access_key.clone(),
                        embedded.secret_key.clone(),
                        None,
                        None,
                        "s3edge-embedded",
                    ));
                }
            }
        }
        match &config.credentials {
            CredentialsSource::Default => {}
            CredentialsSource::Anonymous => loader = loader.no_credentials(),
            CredentialsSource::Env {
                access_key_id_var,
                secret_access_key_var,
            } => {
                let read = |var: &String| {
                    std::env::var(var).map_err(|_| BuildError::MissingEnv(var.clone()))
                };
                loader = loader.credentials_provider(Credentials::new(
                    read(access_key_id_var)?,
                    read(secret_access_key_var)?,
                    None,
                    None,
                    "s3edge-site-env",
                ));
            }
        }
        let shared = loader.load().await;
        if shared.region().is_none() {
            // No region anywhere in the chain: AWS's global default.
            let shared = shared
                .into_builder()
                .region(Region::new(FALLBACK_REGION))
                .build();
            return Ok(Self::finish(config, &shared, endpoint_url, where_));
        }
        Ok(Self::finish(config, &shared, endpoint_url, where_))
    }

    fn finish(
        config: &OriginConfig,
        shared: &aws_config::SdkConfig,
        endpoint_url: Option<String>,
        where_: String,
    ) -> S3Origin {
        let mut builder = aws_sdk_s3::config::Builder::from(shared)
            .force_path_style(config.path_style)
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .response_checksum_validation(ResponseChecksumValidation::WhenRequired);
        if let Some(url) = endpoint_url {
            builder = builder.endpoint_url(url);
        }
        S3Origin {
            client: aws_sdk_s3::Client::from_conf(builder.http_client(per_thread_pools()).build()),
            bucket: config.bucket.clone(),
            description: format!("s3://{}{where_}", config.bucket),
            body_idle_timeout: config.timeout,
        }
    }

    /// The underlying client (for website and CORS configuration reads).
    pub fn client(&self) -> &aws_sdk_s3::Client {
        &self.client
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }
}

/// The HTTP client of every site's S3 client: each thread that makes a
/// request uses a connection pool of its own (an actix worker's requests
/// never wait on another worker's pool lock, and a connection stays on the
/// thread that opened it), and all sites share it (one pool per thread holds
/// every endpoint's connections, keyed by host). It used to be one client per
/// site per thread: about 160 KiB each (a TLS configuration with its root
/// store, a connector, the SDK's runtime components), which a node with 100
/// sites and 16 workers paid 250 MiB for.
fn per_thread_pools() -> SharedHttpClient {
    static POOLS: LazyLock<SharedHttpClient> = LazyLock::new(|| {
        SharedHttpClient::new(PerThreadPools {
            pools: ThreadLocal::new(),
        })
    });
    POOLS.clone()
}

/// See [`per_thread_pools`].
#[derive(Debug)]
struct PerThreadPools {
    pools: ThreadLocal<SharedHttpClient>,
}

impl PerThreadPools {
    fn here(&self) -> &SharedHttpClient {
        self.pools.get_or(connection_pool)
    }
}

impl HttpClient for PerThreadPools {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        self.here().http_connector(settings, components)
    }

    fn validate_base_client_config(
        &self,
        components: &RuntimeComponentsBuilder,
        cfg: &ConfigBag,
    ) -> Result<(), BoxError> {
        self.here().validate_base_client_config(components, cfg)
    }

    fn validate_final_config(
        &self,
        components: &RuntimeComponents,
        cfg: &ConfigBag,
    ) -> Result<(), BoxError> {
        self.here().validate_final_config(components, cfg)
    }

    fn connector_metadata(
        &self,
    ) -> Option<aws_smithy_runtime_api::client::connector_metadata::ConnectorMetadata> {
        self.here().connector_metadata()
    }
}

/// A new HTTPS client with a connection pool of its own, built as aws-sdk-s3
/// builds its default one (hyper 1, rustls with aws-lc, an HTTP proxy when the
/// environment names one): the same calls as aws-smithy-runtime's
/// `default_https_client`. `build_with_connector_fn` is public but hidden from
/// aws-smithy-http-client's documentation; Cargo.lock holds its version.
fn connection_pool() -> SharedHttpClient {
    use aws_smithy_http_client::{proxy::ProxyConfig, tls, Builder, ConnectorBuilder};
    Builder::new().build_with_connector_fn(|settings, components| {
        let mut connector = ConnectorBuilder::default().tls_provider(tls::Provider::Rustls(
            tls::rustls_provider::CryptoMode::AwsLc,
        ));
        connector.set_connector_settings(settings.cloned());
        if let Some(components) = components {
            connector.set_sleep_impl(components.sleep_impl());
        }
        connector.set_proxy_config(Some(ProxyConfig::from_env()));
        connector.build()
    })
}

/// Whether S3 cannot name an object `key`: the empty key (the SDK refuses
/// to build the request) or one longer than [`super::MAX_KEY_BYTES`] (the bucket
/// answers `KeyTooLongError`). `GET /` of a site without an index document,
/// or a path just under the limit whose index document (`path/index.html`)
/// or release prefix takes it over, comes here: a 404 like any missing key,
/// not the 502 of a bucket that fails.
fn unnameable(key: &str) -> bool {
    key.is_empty() || key.len() > super::MAX_KEY_BYTES
}

/// What the bucket has at a key it cannot name: nothing.
fn no_object() -> OriginError {
    OriginError::NotFound { request_id: None }
}

#[async_trait]
impl Origin for S3Origin {
    async fn get(&self, request: &ObjectRequest) -> Result<Fetched, OriginError> {
        if unnameable(&request.key) {
            return Err(no_object());
        }
        let mut call = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(&request.key);
        if let Some(range) = &request.range {
            call = call.range(range);
        }
        if let Some(etag) = &request.if_none_match {
            call = call.if_none_match(etag);
        }
        if let Some(since) = request.if_modified_since {
            call = call.if_modified_since(aws_smithy_types::DateTime::from(since));
        }
        let output = match call.send().await {
            Ok(output) => output,
            // A 304 carries the validators and caching headers a 200 would
            // have: the stored response is updated from them (RFC 9111 4.3.4).
            Err(SdkError::ServiceError(service)) if service.raw().status().as_u16() == 304 => {
                return Ok(Fetched::NotModified {
                    meta: not_modified_meta(service.raw().headers()),
                });
            }
            Err(err) => {
                return match classify(err) {
                    Classified::NotModified => Ok(Fetched::NotModified {
                        meta: ObjectMeta::default(),
                    }),
                    Classified::Error(e) => Err(e),
                }
            }
        };
        let meta = ObjectMeta {
            content_length: output.content_length().unwrap_or(0).max(0) as u64,
            content_range: output.content_range().map(str::to_string),
            content_type: output.content_type().map(str::to_string),
            content_encoding: output.content_encoding().map(str::to_string),
            content_language: output.content_language().map(str::to_string),
            content_disposition: output.content_disposition().map(str::to_string),
            cache_control: output.cache_control().map(str::to_string),
            expires: output.expires_string().map(str::to_string),
            date: None,
            etag: output.e_tag().map(str::to_string),
            last_modified: output.last_modified().and_then(stated_time),
            website_redirect_location: output.website_redirect_location().map(str::to_string),
            request_id: output.request_id().map(str::to_string),
            ..ObjectMeta::default()
        };
        let body = body_stream(output.body, self.body_idle_timeout);
        Ok(Fetched::Object { meta, body })
    }

    async fn head(&self, key: &str) -> Result<ObjectMeta, OriginError> {
        if unnameable(key) {
            return Err(no_object());
        }
        let output = match self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(output) => output,
            Err(err) => {
                return Err(match classify(err) {
                    Classified::NotModified => {
                        OriginError::Invalid("304 to an unconditional HEAD".into())
                    }
                    Classified::Error(e) => e,
                })
            }
        };
        Ok(ObjectMeta {
            content_length: output.content_length().unwrap_or(0).max(0) as u64,
            content_type: output.content_type().map(str::to_string),
            content_encoding: output.content_encoding().map(str::to_string),
            cache_control: output.cache_control().map(str::to_string),
            etag: output.e_tag().map(str::to_string),
            last_modified: output.last_modified().and_then(stated_time),
            website_redirect_location: output.website_redirect_location().map(str::to_string),
            request_id: output.request_id().map(str::to_string),
            ..ObjectMeta::default()
        })
    }

    async fn has_objects_under(&self, prefix: &str) -> Result<bool, OriginError> {
        let output = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(prefix)
            .max_keys(1)
            .send()
            .await
            .map_err(|err| match classify(err) {
                Classified::Error(e) => e,
                Classified::NotModified => OriginError::Invalid("304 to a listing".into()),
            })?;
        Ok(output.key_count().unwrap_or(0) > 0 || !output.contents().is_empty())
    }

    async fn website_configuration(&self) -> Result<Option<RawWebsite>, OriginError> {
        let output = match self
            .client
            .get_bucket_website()
            .bucket(&self.bucket)
            .send()
            .await
        {
            Ok(output) => output,
            Err(err) => return missing_configuration(err, "NoSuchWebsiteConfiguration"),
        };
        Ok(Some(RawWebsite {
            from_bucket: false,
            index_document: output.index_document().map(|d| d.suffix().to_string()),
            error_document: output.error_document().map(|d| d.key().to_string()),
            spa_fallback: false,
            redirect_all_requests_to: output.redirect_all_requests_to().map(|r| RawRedirectAll {
                host_name: Some(r.host_name().to_string()),
                protocol: r.protocol().map(|p| p.as_str().to_string()),
            }),
            routing_rules: output
                .routing_rules()
                .iter()
                .map(|rule| RawRoutingRule {
                    condition: rule.condition().map(|c| RawCondition {
                        key_prefix_equals: c.key_prefix_equals().map(str::to_string),
                        // An unparsable code becomes 0 and fails validation by name.
                        http_error_code_returned_equals: c
                            .http_error_code_returned_equals()
                            .map(|code| code.parse().unwrap_or(0)),
                    }),
                    redirect: rule.redirect().map(|r| RawRedirect {
                        protocol: r.protocol().map(|p| p.as_str().to_string()),
                        host_name: r.host_name().map(str::to_string),
                        replace_key_prefix_with: r.replace_key_prefix_with().map(str::to_string),
                        replace_key_with: r.replace_key_with().map(str::to_string),
                        http_redirect_code: r
                            .http_redirect_code()
                            .map(|code| code.parse().unwrap_or(0)),
                    }),
                })
                .collect(),
        }))
    }

    async fn cors_configuration(&self) -> Result<Option<Vec<CorsConfig>>, OriginError> {
        let output = match self
            .client
            .get_bucket_cors()
            .bucket(&self.bucket)
            .send()
            .await
        {
            Ok(output) => output,
            Err(err) => return missing_configuration(err, "NoSuchCORSConfiguration"),
        };
        Ok(Some(
            output
                .cors_rules()
                .iter()
                .map(|rule| CorsConfig {
                    from_bucket: false,
                    allowed_origins: rule.allowed_origins().to_vec(),
                    allowed_methods: rule
                        .allowed_methods()
                        .iter()
                        .map(|m| m.to_ascii_uppercase())
                        .collect(),
                    allowed_headers: rule.allowed_headers().to_vec(),
                    expose_headers: rule.expose_headers().to_vec(),
                    max_age: rule
                        .max_age_seconds()
                        .and_then(|s| u64::try_from(s).ok())
                        .map(Duration::from_secs),
                })
                .collect(),
        ))
    }

    fn describe(&self) -> String {
        self.description.clone()
    }
}

/// Turns the SDK's body into a stream of chunks that fails when the origin stalls
/// for longer than `idle` between two chunks.
fn body_stream(body: ByteStream, idle: Duration) -> BodyStream {
    let stream = futures_util::stream::unfold(Some(body), move |state| async move {
        let mut body = state?;
        match tokio::time::timeout(idle, body.next()).await {
            Err(_) => Some((
                Err(OriginError::Timeout(format!(
                    "no body data for {}",
                    crate::config::units::format_duration(idle)
                ))),
                None,
            )),
            Ok(None) => None,
            Ok(Some(Ok(bytes))) => Some((Ok(bytes), Some(body))),
            Ok(Some(Err(e))) => Some((
                Err(OriginError::Invalid(format!("body interrupted: {e}"))),
                None,
            )),
        }
    });
    Box::pin(stream)
}

/// A bucket configuration read that failed: `Ok(None)` when the bucket simply
/// has none (`absent_code`), the error otherwise.
fn missing_configuration<E, T>(
    err: SdkError<E, HttpResponse>,
    absent_code: &str,
) -> Result<Option<T>, OriginError>
where
    E: ProvideErrorMetadata + RequestId + std::error::Error + Send + Sync + 'static,
{
    match classify(err) {
        Classified::Error(OriginError::Rejected { code, .. }) if code == absent_code => Ok(None),
        Classified::Error(e) => Err(e),
        Classified::NotModified => Err(OriginError::Invalid("304 to a configuration read".into())),
    }
}

/// The header fields of a 304 that update a stored response.
fn not_modified_meta(headers: &aws_smithy_runtime_api::http::Headers) -> ObjectMeta {
    let field = |name: &str| headers.get(name).map(str::to_string);
    ObjectMeta {
        cache_control: field("cache-control"),
        expires: field("expires"),
        date: field("date"),
        etag: field("etag"),
        last_modified: headers
            .get("last-modified")
            .and_then(|v| httpdate::parse_http_date(v).ok()),
        request_id: field("x-amz-request-id"),
        ..ObjectMeta::default()
    }
}

enum Classified {
    NotModified,
    Error(OriginError),
}

/// Maps an SDK error to the edge's view of it.
fn classify<E>(err: SdkError<E, HttpResponse>) -> Classified
where
    E: ProvideErrorMetadata + RequestId + std::error::Error + Send + Sync + 'static,
{
    match err {
        SdkError::TimeoutError(_) => {
            Classified::Error(OriginError::Timeout("no answer in time".into()))
        }
        SdkError::DispatchFailure(failure) => {
            let message = failure
                .as_connector_error()
                .map(|c| error_chain(c))
                .unwrap_or_else(|| "request could not be sent".to_string());
            if failure.is_timeout() {
                Classified::Error(OriginError::Timeout(message))
            } else {
                Classified::Error(OriginError::Unreachable(message))
            }
        }
        SdkError::ResponseError(e) => Classified::Error(OriginError::Invalid(format!(
            "unreadable response: {:?}",
            e
        ))),
        SdkError::ServiceError(service) => {
            let status = service.raw().status().as_u16();
            let code = service.err().code().map(str::to_string);
            let request_id = service.err().request_id().map(str::to_string);
            Classified::from_status(status, code, request_id)
        }
        other => Classified::Error(OriginError::Invalid(error_chain(&other))),
    }
}

impl Classified {
    fn from_status(status: u16, code: Option<String>, request_id: Option<String>) -> Classified {
        let error = match (status, code.as_deref()) {
            (304, _) => return Classified::NotModified,
            (404, Some("NoSuchKey" | "NotFound") | None) => OriginError::NotFound { request_id },
            // A key over 1,024 bytes (one the node made, with a prefix the
            // bucket's own limit may count differently): no such object.
            (400, Some("KeyTooLongError")) => OriginError::NotFound { request_id },
            (403, Some("AccessDenied" | "Forbidden") | None) => OriginError::Denied { request_id },
            (412, _) => OriginError::PreconditionFailed,
            (416, _) => OriginError::RangeNotSatisfiable { total_length: None },
            (status, code) => OriginError::Rejected {
                status,
                code: code.unwrap_or("(none)").to_string(),
                request_id,
            },
        };
        Classified::Error(error)
    }
}

/// An error and its sources on one line, for logs.
fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        let part = s.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::super::pools::{self, tests::Workers};
    use super::*;

    #[test]
    fn s3_error_codes_map_to_edge_statuses() {
        let cases: &[(&str, u16, Option<&str>, u16)] = &[
            ("a missing key is a 404", 404, Some("NoSuchKey"), 404),
            (
                "a key too long is a missing key",
                400,
                Some("KeyTooLongError"),
                404,
            ),
            ("a HEAD 404 without a code is a 404", 404, None, 404),
            (
                "a HEAD 404 with the generic code is a 404",
                404,
                Some("NotFound"),
                404,
            ),
            (
                "a missing bucket is the node's problem",
                404,
                Some("NoSuchBucket"),
                502,
            ),
            ("a private object is a 403", 403, Some("AccessDenied"), 403),
            (
                "a wrong secret is the node's problem",
                403,
                Some("SignatureDoesNotMatch"),
                502,
            ),
            (
                "an unknown key id is the node's problem",
                403,
                Some("InvalidAccessKeyId"),
                502,
            ),
            ("a throttled bucket is a 502", 503, Some("SlowDown"), 502),
            (
                "an internal error is a 502",
                500,
                Some("InternalError"),
                502,
            ),
            (
                "a failed precondition passes through",
                412,
                Some("PreconditionFailed"),
                412,
            ),
            (
                "an unsatisfiable range passes through",
                416,
                Some("InvalidRange"),
                416,
            ),
        ];
        for (name, status, code, want) in cases {
            match Classified::from_status(*status, code.map(str::to_string), None) {
                Classified::Error(e) => assert_eq!(e.http_status(), *want, "{name}"),
                Classified::NotModified => panic!("{name}: not modified"),
            }
        }
        assert!(matches!(
            Classified::from_status(304, None, None),
            Classified::NotModified
        ));
    }

    /// An S3 origin at `addr` (anonymous, path-style) and two workers that
    /// GET an object from it on each turn.
    /// A site of bucket `bucket`, path-style and anonymous, at `addr`.
    fn site_config(addr: std::net::SocketAddr, bucket: &str) -> OriginConfig {
        OriginConfig {
            bucket: bucket.into(),
            endpoint: Endpoint::Url(format!("http://{addr}")),
            region: Some(FALLBACK_REGION.into()),
            prefix: String::new(),
            path_style: true,
            credentials: CredentialsSource::Anonymous,
            denied_as_missing: false,
            timeout: Duration::from_secs(10),
            http: None,
        }
    }

    fn workers_asking(addr: std::net::SocketAddr) -> Workers {
        let config = site_config(addr, "site");
        let setup = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let origin = Arc::new(setup.block_on(S3Origin::build(&config, None)).unwrap());
        Workers::start(move |worker| {
            let origin = origin.clone();
            async move {
                let request = ObjectRequest::new(format!("page-{worker}.html"));
                let body = match origin.get(&request).await {
                    Ok(Fetched::Object { body, .. }) => body,
                    Ok(_) => panic!("not an object"),
                    Err(e) => panic!("worker {worker}: {e}"),
                };
                let chunks: Vec<_> = futures_util::StreamExt::collect::<Vec<_>>(body).await;
                assert_eq!(chunks.len(), 1, "one chunk of the 2-byte body");
            }
        })
    }

    #[test]
    fn each_worker_thread_asks_on_its_own_connections() {
        pools::tests::each_worker_asks_on_its_own_connections(workers_asking);
    }

    /// Sites share a thread's pool: two sites on one endpoint, asked in
    /// turn on one thread, use one connection. With a pool per site per
    /// thread (each ~160 KiB: 100 sites and 16 workers held 250 MiB) they
    /// used one each.
    #[test]
    fn sites_on_one_thread_share_its_connections() {
        let (addr, served) = pools::tests::counting_origin();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let mut sites = Vec::new();
            for bucket in ["site-a", "site-b"] {
                let config = site_config(addr, bucket);
                sites.push(S3Origin::build(&config, None).await.unwrap());
            }
            for _round in 0..2 {
                for site in &sites {
                    let request = ObjectRequest::new("page.html".to_string());
                    let Ok(Fetched::Object { body, .. }) = site.get(&request).await else {
                        panic!("{} did not get the object", site.bucket());
                    };
                    let chunks: Vec<_> = futures_util::StreamExt::collect::<Vec<_>>(body).await;
                    assert_eq!(chunks.len(), 1, "one chunk of the 2-byte body");
                }
            }
        });
        assert_eq!(*served.lock().unwrap(), vec![4], "requests per connection");
    }

    #[test]
    fn a_busy_worker_does_not_stall_another_workers_origin_requests() {
        pools::tests::a_busy_worker_does_not_stall_another(workers_asking);
    }
}
