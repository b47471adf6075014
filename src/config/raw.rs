//! The site file exactly as written: serde structs that reject unknown keys.
//! Values that need checking (durations, sizes, hosts, header names) stay strings
//! here and are validated in `validate.rs`, so every problem can be reported at once.

use std::collections::BTreeMap;

use serde::Deserialize;

/// A whole `sites/NAME.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSite {
    #[serde(default)]
    pub hosts: Vec<String>,
    #[serde(default)]
    pub default: bool,
    pub origin: Option<RawOrigin>,
    pub website: Option<RawWebsite>,
    #[serde(default)]
    pub cache: RawCache,
    #[serde(default)]
    pub compression: RawCompression,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    pub cors: Option<RawCors>,
    pub tls: Option<RawTls>,
    pub releases: Option<RawReleases>,
}

/// `[origin]`: where the site's files live.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawOrigin {
    /// An HTTP(S) origin instead of a bucket.
    pub url: Option<String>,
    pub bucket: Option<String>,
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub prefix: Option<String>,
    pub path_style: Option<bool>,
    #[serde(default)]
    pub anonymous: bool,
    pub access_key_id_env: Option<String>,
    pub secret_access_key_env: Option<String>,
    #[serde(default)]
    pub denied_as_missing: bool,
    pub timeout: Option<String>,
}

/// `[website]`: the S3 website configuration.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWebsite {
    #[serde(default)]
    pub from_bucket: bool,
    pub index_document: Option<String>,
    pub error_document: Option<String>,
    #[serde(default)]
    pub spa_fallback: bool,
    pub redirect_all_requests_to: Option<RawRedirectAll>,
    #[serde(default)]
    pub routing_rules: Vec<RawRoutingRule>,
}

/// `redirect_all_requests_to = { host_name = "...", protocol = "https" }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRedirectAll {
    pub host_name: Option<String>,
    pub protocol: Option<String>,
}

/// One `[[website.routing_rules]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRoutingRule {
    pub condition: Option<RawCondition>,
    pub redirect: Option<RawRedirect>,
}

/// A routing rule's `condition`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCondition {
    pub key_prefix_equals: Option<String>,
    pub http_error_code_returned_equals: Option<u16>,
}

/// A routing rule's `redirect`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRedirect {
    pub protocol: Option<String>,
    pub host_name: Option<String>,
    pub replace_key_prefix_with: Option<String>,
    pub replace_key_with: Option<String>,
    pub http_redirect_code: Option<u16>,
}

/// `[cache]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCache {
    pub default_ttl: Option<String>,
    pub min_ttl: Option<String>,
    pub max_ttl: Option<String>,
    pub error_ttl: Option<String>,
    pub stale_while_revalidate: Option<String>,
    pub stale_if_error: Option<String>,
}

/// `[compression]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCompression {
    pub enabled: Option<bool>,
    pub algorithms: Option<Vec<String>>,
    pub min_size: Option<RawSize>,
    pub max_size: Option<RawSize>,
}

/// A size written either as a number of bytes (`1000`) or a string (`"10MiB"`).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum RawSize {
    Bytes(u64),
    Text(String),
}

/// `[cors]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCors {
    #[serde(default)]
    pub from_bucket: bool,
    #[serde(default)]
    pub allowed_origins: Vec<String>,
    #[serde(default)]
    pub allowed_methods: Vec<String>,
    #[serde(default)]
    pub allowed_headers: Vec<String>,
    #[serde(default)]
    pub expose_headers: Vec<String>,
    pub max_age: Option<String>,
}

/// `[tls]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTls {
    /// `true`: certificates from the ACME CA instead of `cert`/`key`.
    #[serde(default)]
    pub acme: bool,
    pub cert: Option<String>,
    pub key: Option<String>,
    #[serde(default)]
    pub redirect_http: bool,
}

/// `[releases]`: atomic deploys from `releases/<id>/` (see `crate::releases`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawReleases {
    pub pointer: Option<String>,
    #[serde(default)]
    pub preview_hosts: Vec<String>,
    pub check_every: Option<String>,
}
