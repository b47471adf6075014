//! Site files: `sites/NAME.toml`, one per site.
//!
//! Two layers, as in static-web-server: [`raw`] holds serde structs that mirror the
//! file and reject unknown keys; [`validate`] turns them into the runtime types below,
//! collecting every problem as a [`ConfigProblem`] that names the file, the key and
//! the fix.

pub mod raw;
pub mod units;
mod validate;

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use actix_web::http::header::{HeaderName, HeaderValue};

use crate::compress::ContentCoding;
use crate::website::WebsiteConfig;

pub use validate::{validate_sites, validate_website_from};

/// Per-request origin timeout when `origin.timeout` is not set.
pub const DEFAULT_ORIGIN_TIMEOUT: Duration = Duration::from_secs(10);
/// `cache.default_ttl` when unset: freshness for objects without Cache-Control or Expires.
pub const DEFAULT_TTL: Duration = Duration::from_secs(3600);
/// `cache.max_ttl` when unset.
pub const DEFAULT_MAX_TTL: Duration = Duration::from_secs(365 * 86_400);
/// `cache.error_ttl` when unset: how long a 404 or 403 from the bucket is cached.
pub const DEFAULT_ERROR_TTL: Duration = Duration::from_secs(10);
/// `cache.stale_while_revalidate` when unset.
pub const DEFAULT_STALE_WHILE_REVALIDATE: Duration = Duration::from_secs(60);
/// `cache.stale_if_error` when unset.
pub const DEFAULT_STALE_IF_ERROR: Duration = Duration::from_secs(86_400);
/// `compression.min_size` when unset: smaller bodies are not worth compressing.
pub const DEFAULT_COMPRESSION_MIN_SIZE: u64 = 1000;
/// `compression.max_size` when unset.
pub const DEFAULT_COMPRESSION_MAX_SIZE: u64 = 10 << 20;
/// Region used when a site names none and the AWS chain has none either.
pub const FALLBACK_REGION: &str = "us-east-1";

/// One problem in one site file, printed as `FILE: KEY: what is wrong, and how to fix it`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    pub file: PathBuf,
    pub key: String,
    pub message: String,
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}: {}", self.file.display(), self.key, self.message)
    }
}

/// Every problem found in a set of site files.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigErrors(pub Vec<ConfigProblem>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, problem) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{problem}")?;
        }
        Ok(())
    }
}

/// A validated site file.
#[derive(Debug, Clone)]
pub struct SiteConfig {
    /// The file name without `.toml`.
    pub name: String,
    pub file: PathBuf,
    pub hosts: Vec<HostPattern>,
    /// How many of `hosts` the file's `hosts` key lists; the rest are the
    /// preview hosts of `[releases]` that `hosts` does not list.
    pub listed_hosts: usize,
    /// Answers hosts that no other site claims.
    pub default: bool,
    pub origin: OriginConfig,
    /// `None`: keys are served as they are (an asset CDN).
    pub website: Option<WebsiteConfig>,
    pub cache: CacheConfig,
    pub compression: CompressionConfig,
    pub headers: Vec<HeaderRule>,
    pub cors: Option<CorsConfig>,
    pub tls: Option<TlsConfig>,
    /// `None`: the site's files are served from the bucket as they are.
    pub releases: Option<ReleasesConfig>,
}

/// A host a site answers for, already lowercased and without a trailing dot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostPattern {
    Exact(String),
    /// `*.example.com`, stored as the suffix `.example.com`: matches `a.example.com`
    /// and `a.b.example.com`, not `example.com`.
    Wildcard(String),
}

impl HostPattern {
    /// The name, when it is one name (not a wildcard).
    pub fn exact(&self) -> Option<&str> {
        match self {
            HostPattern::Exact(name) => Some(name),
            HostPattern::Wildcard(_) => None,
        }
    }
}

impl fmt::Display for HostPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostPattern::Exact(host) => f.write_str(host),
            HostPattern::Wildcard(suffix) => write!(f, "*{suffix}"),
        }
    }
}

/// Which S3 service the bucket lives in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// AWS S3, with the endpoint resolved from the region.
    Aws,
    /// The store built into this process (`endpoint = "embedded"`).
    Embedded,
    /// Any S3-compatible service (`https://s3.example.net`).
    Url(String),
}

/// How requests to the bucket are signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CredentialsSource {
    /// The standard AWS chain (env, profile, web identity, IMDS); for the embedded
    /// store, its own credentials.
    Default,
    /// Unsigned requests to a public bucket.
    Anonymous,
    /// Static keys read from these environment variables at startup.
    Env {
        access_key_id_var: String,
        secret_access_key_var: String,
    },
}

/// `[origin]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OriginConfig {
    pub bucket: String,
    pub endpoint: Endpoint,
    pub region: Option<String>,
    /// Key prefix inside the bucket, e.g. `public/`.
    pub prefix: String,
    pub path_style: bool,
    pub credentials: CredentialsSource,
    /// Treat a 403 from S3 as a missing key (credentials without s3:ListBucket).
    pub denied_as_missing: bool,
    pub timeout: Duration,
    /// `url`: an HTTP(S) server instead of a bucket (the bucket fields are
    /// then unused and empty).
    pub http: Option<HttpOriginConfig>,
}

/// `[origin] url = "http://host:port/base"`: where an HTTP origin is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpOriginConfig {
    /// `http` or `https`.
    pub scheme: String,
    /// `host:port` (or `host`).
    pub authority: String,
    /// The base path, without a trailing `/` (`""` for the root).
    pub base_path: String,
}

impl HttpOriginConfig {
    /// The URL as written, normalised (`http://10.0.0.5:8080/base`).
    pub fn url(&self) -> String {
        format!("{}://{}{}", self.scheme, self.authority, self.base_path)
    }
}

impl OriginConfig {
    /// Which objects the origin reads, in one line: two sites of one name
    /// whose lines are equal hold the same cache entries (their bucket,
    /// endpoint and prefix, or their URL, are the same).
    pub fn objects(&self) -> String {
        if let Some(http) = &self.http {
            return http.url();
        }
        let endpoint = match &self.endpoint {
            Endpoint::Aws => "aws",
            Endpoint::Embedded => "embedded",
            Endpoint::Url(url) => url.as_str(),
        };
        format!("s3 {endpoint} {}/{}", self.bucket, self.prefix)
    }
}

impl SiteConfig {
    /// The site-file key that names `host`, for an error about it:
    /// `hosts[i]`, or `releases.preview_hosts[i]` for a preview host that
    /// `hosts` does not list.
    pub fn host_key(&self, host: &HostPattern) -> String {
        if let Some(i) = self.hosts[..self.listed_hosts.min(self.hosts.len())]
            .iter()
            .position(|h| h == host)
        {
            return format!("hosts[{i}]");
        }
        self.releases
            .as_ref()
            .and_then(|r| r.preview_hosts.iter().position(|h| h == host))
            .map_or_else(
                || "hosts".into(),
                |i| format!("releases.preview_hosts[{i}]"),
            )
    }

    /// Whether the site's origin is an HTTP server, cached by RFC 9111 rules.
    pub fn is_http_origin(&self) -> bool {
        self.origin.http.is_some()
    }
}

/// `[cache]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheConfig {
    pub default_ttl: Duration,
    pub min_ttl: Duration,
    pub max_ttl: Duration,
    pub error_ttl: Duration,
    pub stale_while_revalidate: Duration,
    pub stale_if_error: Duration,
}

impl CacheConfig {
    /// The defaults for an HTTP origin: nothing beyond what the responses'
    /// own headers allow (RFC 9111), no lifetime limits; a stale response
    /// stands in for an origin that cannot be reached or fails (RFC 9111
    /// 4.2.4 allows it when disconnected) unless its directives forbid it.
    pub fn http_defaults() -> CacheConfig {
        CacheConfig {
            default_ttl: Duration::ZERO,
            min_ttl: Duration::ZERO,
            max_ttl: Duration::MAX,
            error_ttl: Duration::ZERO,
            stale_while_revalidate: Duration::ZERO,
            stale_if_error: DEFAULT_STALE_IF_ERROR,
        }
    }
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            default_ttl: DEFAULT_TTL,
            min_ttl: Duration::ZERO,
            max_ttl: DEFAULT_MAX_TTL,
            error_ttl: DEFAULT_ERROR_TTL,
            stale_while_revalidate: DEFAULT_STALE_WHILE_REVALIDATE,
            stale_if_error: DEFAULT_STALE_IF_ERROR,
        }
    }
}

/// `[compression]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompressionConfig {
    pub enabled: bool,
    /// Server preference when the client ranks codings equally.
    pub algorithms: Vec<ContentCoding>,
    pub min_size: u64,
    pub max_size: u64,
}

impl Default for CompressionConfig {
    fn default() -> Self {
        CompressionConfig {
            enabled: true,
            algorithms: vec![ContentCoding::Brotli, ContentCoding::Gzip],
            min_size: DEFAULT_COMPRESSION_MIN_SIZE,
            max_size: DEFAULT_COMPRESSION_MAX_SIZE,
        }
    }
}

/// One `[headers]` entry: set `name` to `value`, or remove it when `value` is `None`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderRule {
    pub name: HeaderName,
    pub value: Option<HeaderValue>,
}

/// `[cors]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorsConfig {
    pub from_bucket: bool,
    pub allowed_origins: Vec<String>,
    pub allowed_methods: Vec<String>,
    pub allowed_headers: Vec<String>,
    pub expose_headers: Vec<String>,
    pub max_age: Option<Duration>,
}

/// `[tls]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsConfig {
    pub certificate: CertificateSource,
    pub redirect_http: bool,
}

/// Where a site's certificate comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertificateSource {
    /// `cert` and `key`: PEM files read at start and on SIGHUP.
    Files { cert: PathBuf, key: PathBuf },
    /// `acme = true`: obtained and renewed from the ACME CA (`src/acme/`).
    Acme,
    /// Neither: only `redirect_http`, TLS being terminated in front of the
    /// node (a load balancer, nginx: `deploy/nginx`), which tells it the
    /// scheme (`--trusted-proxy`). The node has no certificate for the site.
    InFront,
}

/// `releases.pointer` when unset: the key (after `origin.prefix`) naming the live release.
pub const DEFAULT_RELEASE_POINTER: &str = "_releases/live";
/// `releases.check_every` when unset: how often nodes re-read the pointer.
pub const DEFAULT_RELEASE_CHECK_EVERY: Duration = Duration::from_secs(10);
/// Shortest `releases.check_every` accepted (each check is one conditional GET).
pub const MIN_RELEASE_CHECK_EVERY: Duration = Duration::from_millis(100);

/// `[releases]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleasesConfig {
    /// Key (after `origin.prefix`) whose body is the live release's id.
    pub pointer: String,
    /// Wildcard hosts whose first label names the release to serve
    /// (`<id>.preview.example.com`); also routed to the site.
    pub preview_hosts: Vec<HostPattern>,
    /// How often nodes re-read the pointer (a conditional GET).
    pub check_every: Duration,
}

/// What `s3edge check`, the start and each reload warn of, in valid site
/// files: things that are not errors (the node serves) but that fail for
/// some or all requests. A bucket name S3 refuses; a host the site's
/// certificate does not cover ([`crate::tls::certificate_warnings`]).
pub fn warnings(sites: &[SiteConfig]) -> Vec<ConfigProblem> {
    let mut warnings: Vec<ConfigProblem> = sites
        .iter()
        .filter(|site| site.origin.http.is_none() && !valid_bucket_name(&site.origin.bucket))
        .map(|site| ConfigProblem {
            file: site.file.clone(),
            key: "origin.bucket".into(),
            message: format!(
                "`{}` is not a bucket name S3 accepts (3 to 63 lowercase letters, digits, dots and hyphens, beginning and ending with a letter or digit); most stores, the embedded one among them, refuse it, and AWS only for buckets made before 2018 in us-east-1",
                site.origin.bucket
            ),
        })
        .collect();
    warnings.extend(crate::tls::certificate_warnings(sites));
    warnings
}

/// What `s3edge check` alone warns of: a site's credentials variable that is
/// not set in check's own environment. `serve` refuses to start such a
/// site (and says why); `check` may run elsewhere (CI, another user), so it
/// is a warning, not an error.
pub fn environment_warnings(sites: &[SiteConfig]) -> Vec<ConfigProblem> {
    let mut warnings = Vec::new();
    for site in sites {
        let CredentialsSource::Env {
            access_key_id_var,
            secret_access_key_var,
        } = &site.origin.credentials
        else {
            continue;
        };
        for (key, var) in [
            ("origin.access_key_id_env", access_key_id_var),
            ("origin.secret_access_key_env", secret_access_key_var),
        ] {
            if std::env::var_os(var).is_none() {
                warnings.push(ConfigProblem {
                    file: site.file.clone(),
                    key: key.into(),
                    message: format!(
                        "environment variable `{var}` is not set here; `serve` refuses to start the site without it"
                    ),
                });
            }
        }
    }
    warnings
}

/// S3's rules for a new bucket's name (AWS "Bucket naming rules"): 3 to 63
/// characters of lowercase letters, digits, `.` and `-`, beginning and ending
/// with a letter or digit, no `..`, not an IPv4 address.
pub fn valid_bucket_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    (3..=63).contains(&bytes.len())
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'.' || *b == b'-')
        && bytes[0].is_ascii_alphanumeric()
        && bytes[bytes.len() - 1].is_ascii_alphanumeric()
        && !name.contains("..")
        && name.parse::<std::net::Ipv4Addr>().is_err()
}

/// Reads and validates every `*.toml` file in `dir`, in name order; hidden
/// files (`.name.toml`: macOS's `._a.toml`, an editor's lock or swap file)
/// are not sites, as a shell's `*.toml` and nginx's `include` skip them.
pub fn load_sites(dir: &Path) -> Result<Vec<SiteConfig>, ConfigErrors> {
    let entries = std::fs::read_dir(dir).map_err(|e| {
        ConfigErrors(vec![ConfigProblem {
            file: dir.to_path_buf(),
            key: "(directory)".into(),
            message: format!("cannot read the sites directory: {e}; create it or pass --sites DIR"),
        }])
    })?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "toml") && path.is_file())
        .filter(|path| {
            !path
                .file_name()
                .is_some_and(|name| name.as_encoded_bytes().starts_with(b"."))
        })
        .collect();
    files.sort();
    let mut problems = Vec::new();
    let mut texts = Vec::new();
    for file in files {
        match std::fs::read_to_string(&file) {
            Ok(text) => texts.push((file, text)),
            Err(e) => problems.push(ConfigProblem {
                file,
                key: "(file)".into(),
                message: format!(
                    "cannot read: {e}; check the file's permissions and encoding (UTF-8)"
                ),
            }),
        }
    }
    match validate_sites(&texts) {
        Ok(sites) if problems.is_empty() => Ok(sites),
        Ok(_) => Err(ConfigErrors(problems)),
        Err(ConfigErrors(more)) => {
            problems.extend(more);
            Err(ConfigErrors(problems))
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn bucket_names_follow_s3_s_rules() {
        for good in ["abc", "my-site.example.com", "a1b", &"x".repeat(63)] {
            assert!(super::valid_bucket_name(good), "{good}");
        }
        for bad in [
            "ab",
            "My_Blog",
            "-abc",
            "abc-",
            "a..b",
            "192.168.1.1",
            &"x".repeat(64),
            "b",
        ] {
            assert!(!super::valid_bucket_name(bad), "{bad}");
        }
    }

    /// A hidden `*.toml` (macOS's `._a.toml` beside `a.toml`, not TOML at
    /// all) is not a site: it neither fails the set nor adds one.
    #[test]
    fn hidden_toml_files_are_not_sites() {
        let dir = tempfile::tempdir().unwrap();
        let site = "hosts = [\"a.example\"]\n[origin]\nbucket = \"abc\"\n";
        std::fs::write(dir.path().join("a.toml"), site).unwrap();
        std::fs::write(dir.path().join("._a.toml"), b"\x00\x05\x16\x07 binary").unwrap();
        std::fs::write(dir.path().join(".b.toml"), site).unwrap();
        let sites = super::load_sites(dir.path()).expect("the hidden files are skipped");
        assert_eq!(sites.len(), 1);
        assert_eq!(sites[0].name, "a");
    }
}
