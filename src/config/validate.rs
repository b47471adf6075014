//! Raw site files to runtime types, collecting every problem with its file and key.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use actix_web::http::header::{HeaderName, HeaderValue};

use super::raw::{self, RawSite, RawSize};
use super::units::{parse_duration, parse_size};
use super::*;
use crate::website::{
    Condition, KeyReplacement, Protocol, Redirect, RedirectAll, RoutingRule, WebsiteConfig,
    MAX_ROUTING_RULES,
};

/// Headers a site may not set with `[headers]`: they describe the connection or the
/// body framing, which the server owns.
const FORBIDDEN_SITE_HEADERS: &[&str] = &[
    "connection",
    "content-length",
    "transfer-encoding",
    "keep-alive",
    "upgrade",
    "te",
    "trailer",
    "proxy-connection",
];

/// Fields a site's `[headers]` may not set: s3edge sets them per response,
/// from the body it sends (a wrong coding or range corrupts what a client
/// decodes).
const SET_PER_RESPONSE: &[&str] = &["content-encoding", "content-range"];

/// Collects problems for one file.
struct Problems<'a> {
    file: &'a Path,
    list: Vec<ConfigProblem>,
}

impl Problems<'_> {
    fn add(&mut self, key: impl Into<String>, message: impl Into<String>) {
        self.list.push(ConfigProblem {
            file: self.file.to_path_buf(),
            key: key.into(),
            message: message.into(),
        });
    }

    fn duration(&mut self, key: &str, value: Option<&String>, default: Duration) -> Duration {
        match value.map(|text| parse_duration(text)) {
            None => default,
            Some(Ok(d)) => d,
            Some(Err(e)) => {
                self.add(key, e);
                default
            }
        }
    }

    fn size(&mut self, key: &str, value: Option<&RawSize>, default: u64) -> u64 {
        match value {
            None => default,
            Some(RawSize::Bytes(n)) => *n,
            Some(RawSize::Text(text)) => parse_size(text).unwrap_or_else(|e| {
                self.add(key, e);
                default
            }),
        }
    }
}

/// Validates a set of site files given as `(path, contents)`. Checks each file alone,
/// then across files (a host claimed twice, several default sites).
pub fn validate_sites(files: &[(PathBuf, String)]) -> Result<Vec<SiteConfig>, ConfigErrors> {
    let mut problems = Vec::new();
    let mut sites = Vec::new();
    for (file, text) in files {
        match validate_site(file, text) {
            Ok(site) => sites.push(site),
            Err(mut more) => problems.append(&mut more),
        }
    }
    let mut owners: HashMap<String, &SiteConfig> = HashMap::new();
    let mut default_owner: Option<&SiteConfig> = None;
    for site in &sites {
        for host in &site.hosts {
            let text = host.to_string();
            if let Some(other) = owners.insert(text.clone(), site) {
                problems.push(ConfigProblem {
                    file: site.file.clone(),
                    key: site.host_key(host),
                    message: format!(
                        "host `{text}` is already claimed by site `{}` ({}); a host may belong to one site only",
                        other.name,
                        other.file.display()
                    ),
                });
            }
        }
        if site.default {
            if let Some(other) = default_owner {
                problems.push(ConfigProblem {
                    file: site.file.clone(),
                    key: "default".into(),
                    message: format!(
                        "site `{}` is already the default site; set `default = true` on one site only",
                        other.name
                    ),
                });
            } else {
                default_owner = Some(site);
            }
        }
    }
    if problems.is_empty() {
        Ok(sites)
    } else {
        Err(ConfigErrors(problems))
    }
}

/// Validates one site file.
pub fn validate_site(file: &Path, text: &str) -> Result<SiteConfig, Vec<ConfigProblem>> {
    let mut p = Problems {
        file,
        list: Vec::new(),
    };
    let name = file
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or_default()
        .to_string();
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        p.add(
            "(file name)",
            "the site's name is its file name, which may hold only letters, digits, `-`, `_` and `.`; rename the file",
        );
    }
    let raw: RawSite = match serde_path_to_error::deserialize(toml::Deserializer::new(text)) {
        Ok(raw) => raw,
        Err(err) => {
            let (key, message) = describe_parse_error(&err, text);
            p.add(key, message);
            return Err(p.list);
        }
    };
    let mut hosts = validate_hosts(&mut p, &raw);
    let listed_hosts = hosts.len();
    let releases = raw
        .releases
        .as_ref()
        .map(|r| validate_releases(&mut p, r, &mut hosts));
    let origin = validate_origin(&mut p, raw.origin.as_ref());
    let http_origin = origin.as_ref().is_some_and(|o| o.http.is_some());
    if http_origin {
        if raw.website.is_some() {
            p.add(
                "website",
                "cannot be used with an HTTP origin (`origin.url`): the S3 website rules apply to buckets; let the origin server answer them",
            );
        }
        if raw.releases.is_some() {
            p.add(
                "releases",
                "cannot be used with an HTTP origin (`origin.url`): releases are folders of a bucket",
            );
        }
    }
    let website = raw.website.as_ref().map(|w| validate_website(&mut p, w));
    let cache = validate_cache(&mut p, &raw.cache, http_origin);
    let compression = validate_compression(&mut p, &raw.compression);
    let headers = validate_headers(&mut p, &raw.headers);
    let cors = raw.cors.as_ref().map(|c| validate_cors(&mut p, c));
    let tls = raw
        .tls
        .as_ref()
        .and_then(|t| validate_tls(&mut p, t, &raw.hosts));
    match origin {
        Some(origin) if p.list.is_empty() => Ok(SiteConfig {
            name,
            file: file.to_path_buf(),
            hosts,
            listed_hosts,
            default: raw.default,
            origin,
            website,
            cache,
            compression,
            headers,
            cors,
            tls,
            releases,
        }),
        _ => Err(p.list),
    }
}

/// Names the key of a serde error: the path serde was at, plus the unknown field's name.
fn describe_parse_error(
    err: &serde_path_to_error::Error<toml::de::Error>,
    text: &str,
) -> (String, String) {
    let inner = err.inner();
    let message = inner.message().to_string();
    let mut key = err.path().to_string();
    if key == "." {
        key.clear();
    }
    if let Some(field) = message
        .strip_prefix("unknown field `")
        .and_then(|rest| rest.split('`').next())
    {
        if key.rsplit('.').next() != Some(field) {
            if !key.is_empty() {
                key.push('.');
            }
            key.push_str(field);
        }
        let expected = message
            .split_once(", expected ")
            .map(|(_, e)| format!("; expected {e}"))
            .unwrap_or_default();
        return (
            key,
            format!("unknown key{expected}; remove it or fix its spelling"),
        );
    }
    // toml's message may span lines ("invalid array\nexpected `]`"): one
    // line per problem, so `check`'s output reads (and greps) as a list.
    let message = message
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(": ");
    let at = inner
        .span()
        .map(|span| {
            let before = text.get(..span.start).unwrap_or(text);
            let line = before.matches('\n').count() + 1;
            let column = before.chars().rev().take_while(|&c| c != '\n').count() + 1;
            format!(" at line {line}, column {column}")
        })
        .unwrap_or_default();
    if key.is_empty() {
        key = "(syntax)".into();
    }
    (key, format!("{message}{at}; fix the TOML"))
}

/// Lowercases a host, drops one trailing dot, and checks its characters.
fn normalize_host_pattern(text: &str) -> Result<HostPattern, String> {
    let host = text.trim().to_ascii_lowercase();
    let host = host.strip_suffix('.').unwrap_or(&host);
    let (wildcard, name) = match host.strip_prefix("*.") {
        Some(rest) => (true, rest),
        None => (false, host),
    };
    let valid = !name.is_empty()
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        });
    if !valid {
        return Err(format!(
            "`{text}` is not a host name; write `example.com` or `*.example.com` (no scheme, port or path; punycode for non-ASCII names)"
        ));
    }
    Ok(if wildcard {
        HostPattern::Wildcard(format!(".{name}"))
    } else {
        HostPattern::Exact(name.to_string())
    })
}

fn validate_hosts(p: &mut Problems, raw: &RawSite) -> Vec<HostPattern> {
    let mut hosts = Vec::new();
    for (i, text) in raw.hosts.iter().enumerate() {
        match normalize_host_pattern(text) {
            Ok(host) if hosts.contains(&host) => {
                p.add(format!("hosts[{i}]"), format!("`{text}` is listed twice"))
            }
            Ok(host) => hosts.push(host),
            Err(e) => p.add(format!("hosts[{i}]"), e),
        }
    }
    if raw.hosts.is_empty() && !raw.default {
        p.add(
            "hosts",
            "no hosts; list the host names this site answers, or set `default = true`",
        );
    }
    hosts
}

/// `[releases]`. Preview hosts must be wildcards (their first label is the
/// release id) and are added to the site's hosts when not listed there.
fn validate_releases(
    p: &mut Problems,
    raw: &raw::RawReleases,
    hosts: &mut Vec<HostPattern>,
) -> ReleasesConfig {
    let pointer = raw
        .pointer
        .clone()
        .unwrap_or_else(|| DEFAULT_RELEASE_POINTER.to_string());
    if pointer.is_empty()
        || pointer.starts_with('/')
        || pointer.ends_with('/')
        || pointer.starts_with(crate::releases::RELEASES_DIR)
    {
        p.add(
            "releases.pointer",
            format!(
                "`{pointer}` cannot be the pointer's key; name an object outside `{}`, e.g. `{DEFAULT_RELEASE_POINTER}`",
                crate::releases::RELEASES_DIR
            ),
        );
    }
    let mut preview_hosts = Vec::new();
    for (i, text) in raw.preview_hosts.iter().enumerate() {
        let key = format!("releases.preview_hosts[{i}]");
        match normalize_host_pattern(text) {
            Ok(host @ HostPattern::Wildcard(_)) => {
                if !hosts.contains(&host) {
                    hosts.push(host.clone());
                }
                preview_hosts.push(host);
            }
            Ok(HostPattern::Exact(_)) => p.add(
                key,
                format!("`{text}` is not a wildcard; write `*.preview.example.com` (the first label names the release)"),
            ),
            Err(e) => p.add(key, e),
        }
    }
    let check_every = p.duration(
        "releases.check_every",
        raw.check_every.as_ref(),
        DEFAULT_RELEASE_CHECK_EVERY,
    );
    if check_every < MIN_RELEASE_CHECK_EVERY {
        p.add(
            "releases.check_every",
            format!(
                "{check_every:?} is too short; use at least {MIN_RELEASE_CHECK_EVERY:?} (e.g. `10s`)"
            ),
        );
    }
    ReleasesConfig {
        pointer,
        preview_hosts,
        check_every,
    }
}

fn validate_origin(p: &mut Problems, raw: Option<&raw::RawOrigin>) -> Option<OriginConfig> {
    let Some(raw) = raw else {
        p.add(
            "origin",
            "missing section; add `[origin]` with at least `bucket = \"NAME\"`",
        );
        return None;
    };
    if let Some(url) = &raw.url {
        return validate_http_origin(p, raw, url);
    }
    let bucket = raw.bucket.clone().unwrap_or_default();
    if bucket.is_empty() {
        p.add("origin.bucket", "missing; set the bucket's name");
    } else if bucket.contains('/') || bucket.chars().any(|c| c.is_whitespace() || c.is_control()) {
        p.add(
            "origin.bucket",
            format!("`{bucket}` is not a bucket name; write the name only (put key prefixes in `origin.prefix`)"),
        );
    }
    let endpoint = match raw.endpoint.as_deref() {
        None => Endpoint::Aws,
        Some("embedded") => Endpoint::Embedded,
        Some(url) if url.starts_with("http://") || url.starts_with("https://") => {
            Endpoint::Url(url.trim_end_matches('/').to_string())
        }
        Some(other) => {
            p.add(
                "origin.endpoint",
                format!("`{other}` is not an endpoint; write a URL such as `https://s3.eu-west-1.amazonaws.com`, `\"embedded\"`, or omit it for AWS"),
            );
            Endpoint::Aws
        }
    };
    let credentials = match (
        raw.anonymous,
        &raw.access_key_id_env,
        &raw.secret_access_key_env,
    ) {
        (false, None, None) => CredentialsSource::Default,
        (true, None, None) => CredentialsSource::Anonymous,
        (false, Some(id), Some(secret)) => CredentialsSource::Env {
            access_key_id_var: id.clone(),
            secret_access_key_var: secret.clone(),
        },
        (true, _, _) => {
            p.add(
                "origin.anonymous",
                "`anonymous = true` sends unsigned requests and cannot be combined with access_key_id_env / secret_access_key_env; remove one",
            );
            CredentialsSource::Anonymous
        }
        (false, Some(_), None) => {
            p.add(
                "origin.secret_access_key_env",
                "missing; set it together with access_key_id_env",
            );
            CredentialsSource::Default
        }
        (false, None, Some(_)) => {
            p.add(
                "origin.access_key_id_env",
                "missing; set it together with secret_access_key_env",
            );
            CredentialsSource::Default
        }
    };
    let timeout = p.duration(
        "origin.timeout",
        raw.timeout.as_ref(),
        DEFAULT_ORIGIN_TIMEOUT,
    );
    if timeout.is_zero() {
        p.add("origin.timeout", "must be more than zero, e.g. `10s`");
    }
    let path_style = raw.path_style.unwrap_or(endpoint != Endpoint::Aws);
    Some(OriginConfig {
        bucket,
        endpoint,
        region: raw.region.clone().filter(|r| !r.is_empty()),
        prefix: raw.prefix.clone().unwrap_or_default(),
        path_style,
        credentials,
        denied_as_missing: raw.denied_as_missing,
        timeout,
        http: None,
    })
}

fn validate_protocol(p: &mut Problems, key: &str, value: Option<&String>) -> Option<Protocol> {
    let text = value?;
    let protocol = Protocol::parse(text);
    if protocol.is_none() {
        p.add(
            key,
            format!("`{text}` is not a protocol; use \"http\" or \"https\""),
        );
    }
    protocol
}

/// Validates a website configuration read from elsewhere (GetBucketWebsite),
/// reporting problems against `source`.
pub fn validate_website_from(
    source: &Path,
    raw: &raw::RawWebsite,
) -> Result<WebsiteConfig, Vec<ConfigProblem>> {
    let mut p = Problems {
        file: source,
        list: Vec::new(),
    };
    let config = validate_website(&mut p, raw);
    if p.list.is_empty() {
        Ok(config)
    } else {
        Err(p.list)
    }
}

/// The same checks as PutBucketWebsite (InvalidArgument / MalformedXML cases).
fn validate_website(p: &mut Problems, raw: &raw::RawWebsite) -> WebsiteConfig {
    let mut config = WebsiteConfig {
        from_bucket: raw.from_bucket,
        spa_fallback: raw.spa_fallback,
        ..WebsiteConfig::default()
    };
    if let Some(index) = &raw.index_document {
        if index.is_empty() || index.contains('/') {
            p.add(
                "website.index_document",
                format!("`{index}` is not a valid index suffix; it must be non-empty and contain no `/` (e.g. `index.html`)"),
            );
        }
        config.index_document = Some(index.clone());
    }
    if let Some(error) = &raw.error_document {
        if error.is_empty() {
            p.add(
                "website.error_document",
                "empty; name the error page's key (e.g. `error.html`) or remove the key",
            );
        }
        config.error_document = Some(error.clone());
    }
    if let Some(all) = &raw.redirect_all_requests_to {
        if raw.index_document.is_some()
            || raw.error_document.is_some()
            || !raw.routing_rules.is_empty()
            || raw.spa_fallback
        {
            p.add(
                "website.redirect_all_requests_to",
                "cannot be combined with index_document, error_document, routing_rules or spa_fallback (as in S3); remove one",
            );
        }
        let host_name = all.host_name.clone().unwrap_or_default();
        if host_name.is_empty() {
            p.add(
                "website.redirect_all_requests_to.host_name",
                "missing; name the host every request is redirected to",
            );
        }
        let protocol = validate_protocol(
            p,
            "website.redirect_all_requests_to.protocol",
            all.protocol.as_ref(),
        );
        config.redirect_all = Some(RedirectAll {
            host_name,
            protocol,
        });
    } else if raw.index_document.is_none() && !raw.from_bucket {
        p.add(
            "website.index_document",
            "missing; a website needs an index document (e.g. `index_document = \"index.html\"`) unless it sets redirect_all_requests_to or from_bucket",
        );
    }
    if raw.routing_rules.len() > MAX_ROUTING_RULES {
        p.add(
            "website.routing_rules",
            format!(
                "{} rules; at most {MAX_ROUTING_RULES} are allowed",
                raw.routing_rules.len()
            ),
        );
    }
    for (i, rule) in raw.routing_rules.iter().enumerate() {
        if let Some(rule) = validate_rule(p, &format!("website.routing_rules[{i}]"), rule) {
            config.routing_rules.push(rule);
        }
    }
    config
}

fn validate_rule(p: &mut Problems, key: &str, raw: &raw::RawRoutingRule) -> Option<RoutingRule> {
    let before = p.list.len();
    let condition = match &raw.condition {
        None => Condition::default(),
        Some(c) => {
            if c.key_prefix_equals.is_none() && c.http_error_code_returned_equals.is_none() {
                p.add(
                    format!("{key}.condition"),
                    "empty; set key_prefix_equals and/or http_error_code_returned_equals, or remove the condition",
                );
            }
            if let Some(code) = c.http_error_code_returned_equals {
                if !(400..=599).contains(&code) {
                    p.add(
                        format!("{key}.condition.http_error_code_returned_equals"),
                        format!("{code} is not an error code; use a 4xx or 5xx status"),
                    );
                }
            }
            Condition {
                key_prefix_equals: c.key_prefix_equals.clone(),
                http_error_code_returned_equals: c.http_error_code_returned_equals,
            }
        }
    };
    let Some(r) = &raw.redirect else {
        p.add(
            format!("{key}.redirect"),
            "missing; every routing rule needs a redirect",
        );
        return None;
    };
    if r.protocol.is_none()
        && r.host_name.is_none()
        && r.replace_key_prefix_with.is_none()
        && r.replace_key_with.is_none()
        && r.http_redirect_code.is_none()
    {
        p.add(
            format!("{key}.redirect"),
            "empty; set at least one of protocol, host_name, replace_key_prefix_with, replace_key_with, http_redirect_code",
        );
    }
    let protocol = validate_protocol(p, &format!("{key}.redirect.protocol"), r.protocol.as_ref());
    let replacement = match (&r.replace_key_prefix_with, &r.replace_key_with) {
        (Some(_), Some(_)) => {
            p.add(
                format!("{key}.redirect"),
                "replace_key_prefix_with and replace_key_with cannot both be set; keep one",
            );
            KeyReplacement::Keep
        }
        (Some(prefix), None) => KeyReplacement::Prefix(prefix.clone()),
        (None, Some(whole)) => KeyReplacement::Key(whole.clone()),
        (None, None) => KeyReplacement::Keep,
    };
    let code = r.http_redirect_code.unwrap_or(301);
    if !(301..=308).contains(&code) {
        p.add(
            format!("{key}.redirect.http_redirect_code"),
            format!("{code} is not a redirect code; use 301 to 308"),
        );
    }
    if p.list.len() > before {
        return None;
    }
    Some(RoutingRule {
        condition,
        redirect: Redirect {
            protocol,
            host_name: r.host_name.clone(),
            replacement,
            http_redirect_code: code,
        },
    })
}

/// `[origin] url = ...`: an HTTP(S) server; every bucket field is refused.
fn validate_http_origin(p: &mut Problems, raw: &raw::RawOrigin, url: &str) -> Option<OriginConfig> {
    let bucket_fields = [
        ("bucket", raw.bucket.is_some()),
        ("endpoint", raw.endpoint.is_some()),
        ("region", raw.region.is_some()),
        ("prefix", raw.prefix.is_some()),
        ("path_style", raw.path_style.is_some()),
        ("anonymous", raw.anonymous),
        ("access_key_id_env", raw.access_key_id_env.is_some()),
        ("secret_access_key_env", raw.secret_access_key_env.is_some()),
        ("denied_as_missing", raw.denied_as_missing),
    ];
    for (field, set) in bucket_fields {
        if set {
            p.add(
                format!("origin.{field}"),
                "cannot be combined with `origin.url`: a site's origin is either a bucket or an HTTP server",
            );
        }
    }
    let timeout = p.duration(
        "origin.timeout",
        raw.timeout.as_ref(),
        DEFAULT_ORIGIN_TIMEOUT,
    );
    if timeout.is_zero() {
        p.add("origin.timeout", "must be more than zero, e.g. `10s`");
    }
    let parsed = url.parse::<actix_web::http::Uri>().ok().and_then(|uri| {
        let scheme = uri.scheme_str()?.to_ascii_lowercase();
        let authority = uri.authority()?.as_str().to_string();
        let usable = (scheme == "http" || scheme == "https")
            && uri.query().is_none()
            && !authority.contains('@')
            && !url.contains('#');
        usable.then(|| HttpOriginConfig {
            scheme,
            authority,
            base_path: uri.path().trim_end_matches('/').to_string(),
        })
    });
    let Some(http) = parsed else {
        p.add(
            "origin.url",
            format!("`{url}` is not an origin URL; write `http://host:port/base` or `https://host/base` (no query, no credentials)"),
        );
        return None;
    };
    Some(OriginConfig {
        bucket: String::new(),
        endpoint: Endpoint::Url(http.url()),
        region: None,
        prefix: String::new(),
        path_style: false,
        credentials: CredentialsSource::Anonymous,
        denied_as_missing: false,
        timeout,
        http: Some(http),
    })
}

fn validate_cache(p: &mut Problems, raw: &raw::RawCache, http_origin: bool) -> CacheConfig {
    let d = if http_origin {
        CacheConfig::http_defaults()
    } else {
        CacheConfig::default()
    };
    let config = CacheConfig {
        default_ttl: p.duration("cache.default_ttl", raw.default_ttl.as_ref(), d.default_ttl),
        min_ttl: p.duration("cache.min_ttl", raw.min_ttl.as_ref(), d.min_ttl),
        max_ttl: p.duration("cache.max_ttl", raw.max_ttl.as_ref(), d.max_ttl),
        error_ttl: p.duration("cache.error_ttl", raw.error_ttl.as_ref(), d.error_ttl),
        stale_while_revalidate: p.duration(
            "cache.stale_while_revalidate",
            raw.stale_while_revalidate.as_ref(),
            d.stale_while_revalidate,
        ),
        stale_if_error: p.duration(
            "cache.stale_if_error",
            raw.stale_if_error.as_ref(),
            d.stale_if_error,
        ),
    };
    if config.min_ttl > config.max_ttl {
        p.add(
            "cache.min_ttl",
            "is larger than cache.max_ttl; lower min_ttl or raise max_ttl",
        );
    }
    config
}

fn validate_compression(p: &mut Problems, raw: &raw::RawCompression) -> CompressionConfig {
    let d = CompressionConfig::default();
    let mut algorithms = Vec::new();
    for (i, name) in raw.algorithms.iter().flatten().enumerate() {
        match ContentCoding::parse(name) {
            Some(coding) if algorithms.contains(&coding) => p.add(
                format!("compression.algorithms[{i}]"),
                format!("`{name}` is listed twice"),
            ),
            Some(coding) => algorithms.push(coding),
            None => p.add(
                format!("compression.algorithms[{i}]"),
                format!("`{name}` is not supported; use \"br\" and/or \"gzip\""),
            ),
        }
    }
    let config = CompressionConfig {
        enabled: raw.enabled.unwrap_or(d.enabled),
        algorithms: if raw.algorithms.is_some() {
            algorithms
        } else {
            d.algorithms
        },
        min_size: p.size("compression.min_size", raw.min_size.as_ref(), d.min_size),
        max_size: p.size("compression.max_size", raw.max_size.as_ref(), d.max_size),
    };
    if config.min_size > config.max_size {
        p.add(
            "compression.min_size",
            "is larger than compression.max_size; lower min_size or raise max_size",
        );
    }
    config
}

fn validate_headers(
    p: &mut Problems,
    raw: &std::collections::BTreeMap<String, String>,
) -> Vec<HeaderRule> {
    let mut rules = Vec::new();
    for (name, value) in raw {
        let key = format!("headers.\"{name}\"");
        let Ok(header) = HeaderName::from_bytes(name.as_bytes()) else {
            p.add(key, "is not a valid header name");
            continue;
        };
        if FORBIDDEN_SITE_HEADERS.contains(&header.as_str()) {
            p.add(
                key,
                "describes the connection or body framing, which s3edge sets itself; remove it",
            );
            continue;
        }
        if SET_PER_RESPONSE.contains(&header.as_str()) {
            p.add(
                key,
                "describes the body of each response (its coding, the range sent), which s3edge sets itself; remove it",
            );
            continue;
        }
        if let Some(first) = rules.iter().find(|r: &&HeaderRule| r.name == header) {
            p.add(
                key,
                format!(
                    "names the same header as headers.\"{}\" (header names ignore case); keep one",
                    raw.keys()
                        .find(|n| n.eq_ignore_ascii_case(first.name.as_str()))
                        .map_or(first.name.as_str(), String::as_str)
                ),
            );
            continue;
        }
        if header == actix_web::http::header::VARY && value.trim().is_empty() {
            p.add(
                key,
                "is empty; a Vary value adds names to those s3edge sets (Accept-Encoding, Origin) and cannot remove them",
            );
            continue;
        }
        let value = if value.is_empty() {
            None
        } else {
            match HeaderValue::from_str(value) {
                Ok(v) => Some(v),
                Err(_) => {
                    p.add(key, "the value holds characters a header may not contain (control characters or non-ASCII)");
                    continue;
                }
            }
        };
        rules.push(HeaderRule {
            name: header,
            value,
        });
    }
    rules
}

fn validate_cors(p: &mut Problems, raw: &raw::RawCors) -> CorsConfig {
    if !raw.from_bucket && raw.allowed_origins.is_empty() {
        p.add(
            "cors.allowed_origins",
            "empty; list the allowed origins (or `[\"*\"]`), or set `from_bucket = true`",
        );
    }
    // A browser's `Origin` is `scheme://host[:port]`, never with a path: an
    // allowed origin written with one (`https://app.example.com/`) could
    // never match, and CORS would fail with nothing to say why.
    for (i, origin) in raw.allowed_origins.iter().enumerate() {
        if let Some((scheme, rest)) = origin.split_once("://") {
            if let Some(at) = rest.find('/') {
                let (host, path) = rest.split_at(at);
                p.add(
                    format!("cors.allowed_origins[{i}]"),
                    format!(
                        "`{origin}` has a path (`{path}`); a browser's Origin is scheme://host[:port]: write `{scheme}://{host}`"
                    ),
                );
            }
        }
    }
    let mut methods = Vec::new();
    for (i, m) in raw.allowed_methods.iter().enumerate() {
        let upper = m.to_ascii_uppercase();
        if matches!(upper.as_str(), "GET" | "HEAD" | "OPTIONS") {
            methods.push(upper);
        } else {
            p.add(
                format!("cors.allowed_methods[{i}]"),
                format!("`{m}` is not served by s3edge; use GET, HEAD or OPTIONS"),
            );
        }
    }
    if methods.is_empty() {
        methods = vec!["GET".into(), "HEAD".into()];
    }
    let max_age = raw.max_age.as_ref().and_then(|text| {
        parse_duration(text)
            .map_err(|e| p.add("cors.max_age", e))
            .ok()
    });
    CorsConfig {
        from_bucket: raw.from_bucket,
        allowed_origins: raw.allowed_origins.clone(),
        allowed_methods: methods,
        allowed_headers: raw.allowed_headers.clone(),
        expose_headers: raw.expose_headers.clone(),
        max_age,
    }
}

fn validate_tls(p: &mut Problems, raw: &raw::RawTls, hosts: &[String]) -> Option<TlsConfig> {
    if raw.acme {
        return validate_acme(p, raw, hosts);
    }
    // Only `redirect_http`: the certificate is in front of the node.
    if raw.redirect_http && raw.cert.is_none() && raw.key.is_none() {
        return Some(TlsConfig {
            certificate: CertificateSource::InFront,
            redirect_http: true,
        });
    }
    let mut file = |key: &str, value: &Option<String>, what: &str| -> Option<PathBuf> {
        let Some(path) = value else {
            p.add(key, format!("missing; name the {what} file (PEM)"));
            return None;
        };
        let path = PathBuf::from(path);
        if !path.is_file() {
            p.add(
                key,
                format!("`{}` does not exist or is not a file (relative paths resolve against the working directory)", path.display()),
            );
            return None;
        }
        Some(path)
    };
    let cert = file("tls.cert", &raw.cert, "certificate chain");
    let key = file("tls.key", &raw.key, "private key");
    if let (Some(cert), Some(key)) = (&cert, &key) {
        if let Err(e) = crate::tls::load_certified_key(cert, key) {
            p.add(
                "tls",
                format!("{e}; fix the PEM files or point cert and key at a matching pair"),
            );
            return None;
        }
    }
    Some(TlsConfig {
        certificate: CertificateSource::Files {
            cert: cert?,
            key: key?,
        },
        redirect_http: raw.redirect_http,
    })
}

/// `acme = true`: certificates are ordered for the site's exact hosts, so
/// `cert`/`key` must be absent and no host may be a wildcard (a wildcard
/// certificate needs the DNS-01 challenge, which s3edge does not answer).
fn validate_acme(p: &mut Problems, raw: &raw::RawTls, hosts: &[String]) -> Option<TlsConfig> {
    let before = p.list.len();
    for (key, value) in [("tls.cert", &raw.cert), ("tls.key", &raw.key)] {
        if value.is_some() {
            p.add(
                key,
                "cannot be combined with `acme = true`; remove cert and key to let s3edge obtain the certificate, or remove `acme = true` to serve these files",
            );
        }
    }
    for (i, host) in hosts.iter().enumerate() {
        if host.trim().starts_with("*.") {
            p.add(
                format!("hosts[{i}]"),
                format!("`{host}` is a wildcard, and `acme = true` cannot obtain wildcard certificates (they need the DNS-01 challenge); list the exact names, or give a wildcard certificate with tls.cert and tls.key"),
            );
        }
        let bare = host.trim().trim_start_matches('[').trim_end_matches(']');
        if bare.parse::<std::net::IpAddr>().is_ok() {
            p.add(
                format!("hosts[{i}]"),
                format!("`{host}` is an IP address, and `acme = true` orders certificates for names only (Let's Encrypt refuses IP addresses, and the whole order with them); move it to a site with tls.cert and tls.key, or without [tls]"),
            );
        }
    }
    if hosts.is_empty() {
        p.add(
            "tls.acme",
            "the site lists no hosts to order a certificate for; list its host names in `hosts`",
        );
    }
    (p.list.len() == before).then_some(TlsConfig {
        certificate: CertificateSource::Acme,
        redirect_http: raw.redirect_http,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str) -> Result<SiteConfig, Vec<String>> {
        validate_site(Path::new("sites/x.toml"), text)
            .map_err(|problems| problems.iter().map(|p| p.to_string()).collect())
    }

    const MINIMAL: &str = "hosts = [\"example.com\"]\n[origin]\nbucket = \"b\"\n";

    #[test]
    fn a_minimal_site_gets_every_default() {
        let site = check(MINIMAL).expect("valid");
        assert_eq!(site.name, "x");
        assert_eq!(site.hosts, vec![HostPattern::Exact("example.com".into())]);
        assert_eq!(site.origin.endpoint, Endpoint::Aws);
        assert!(!site.origin.path_style);
        assert_eq!(site.origin.timeout, DEFAULT_ORIGIN_TIMEOUT);
        assert_eq!(site.cache, CacheConfig::default());
        assert_eq!(site.compression, CompressionConfig::default());
        assert!(site.website.is_none());
    }

    /// `redirect_http` alone: TLS ends in front of the node (deploy/nginx),
    /// so no certificate files are asked for; `[tls]` with nothing still
    /// wants them.
    #[test]
    fn redirect_http_alone_needs_no_certificate_here() {
        let site =
            check("hosts = [\"a\"]\n[origin]\nbucket = \"b\"\n[tls]\nredirect_http = true\n")
                .expect("valid");
        let tls = site.tls.expect("tls");
        assert_eq!(tls.certificate, CertificateSource::InFront);
        assert!(tls.redirect_http);
        let problems = check("hosts = [\"a\"]\n[origin]\nbucket = \"b\"\n[tls]\n")
            .unwrap_err()
            .join("\n");
        assert!(problems.contains("tls.cert: missing"), "{problems}");
    }

    #[test]
    fn hosts_are_lowercased_and_lose_their_trailing_dot() {
        let site = check(
            "hosts = [\"WWW.Example.COM.\", \"*.Preview.example.com\"]\n[origin]\nbucket = \"b\"\n",
        )
        .expect("valid");
        assert_eq!(
            site.hosts,
            vec![
                HostPattern::Exact("www.example.com".into()),
                HostPattern::Wildcard(".preview.example.com".into())
            ]
        );
    }

    #[test]
    fn each_broken_key_is_named_with_a_fix() {
        let cases: &[(&str, &str, &str)] = &[
            ("an unknown key names its full path", "hosts=[\"a\"]\n[origin]\nbucket=\"b\"\nbukcet=\"c\"\n", "sites/x.toml: origin.bukcet: unknown key"),
            ("an unknown top-level key is named", "hosts=[\"a\"]\nhostz=[]\n[origin]\nbucket=\"b\"\n", "sites/x.toml: hostz: unknown key"),
            ("a missing origin section", "hosts=[\"a\"]\n", "sites/x.toml: origin: missing section"),
            ("a missing bucket", "hosts=[\"a\"]\n[origin]\nregion=\"x\"\n", "sites/x.toml: origin.bucket: missing"),
            ("a bad duration", "hosts=[\"a\"]\n[origin]\nbucket=\"b\"\ntimeout=\"10 parsecs\"\n", "sites/x.toml: origin.timeout: `10 parsecs` has unknown unit"),
            ("a bad size", "hosts=[\"a\"]\n[origin]\nbucket=\"b\"\n[compression]\nmax_size=\"big\"\n", "sites/x.toml: compression.max_size: `big` is not a size"),
            ("a host with a port", "hosts=[\"a.com:80\"]\n[origin]\nbucket=\"b\"\n", "sites/x.toml: hosts[0]: `a.com:80` is not a host name"),
            ("no hosts and not default", "[origin]\nbucket=\"b\"\n", "sites/x.toml: hosts: no hosts"),
            ("a wrong type", "hosts=\"a\"\n[origin]\nbucket=\"b\"\n", "sites/x.toml: hosts: invalid type"),
            ("broken TOML", "hosts=[\"a\"\n", "sites/x.toml: "),
            ("half the static keys", "hosts=[\"a\"]\n[origin]\nbucket=\"b\"\naccess_key_id_env=\"K\"\n", "origin.secret_access_key_env: missing"),
            ("a bad endpoint", "hosts=[\"a\"]\n[origin]\nbucket=\"b\"\nendpoint=\"s3.example.com\"\n", "origin.endpoint: `s3.example.com` is not an endpoint"),
            ("an unknown algorithm", "hosts=[\"a\"]\n[origin]\nbucket=\"b\"\n[compression]\nalgorithms=[\"zstd\"]\n", "compression.algorithms[0]: `zstd` is not supported"),
            ("a CORS origin with a path", "hosts=[\"a\"]\n[origin]\nbucket=\"b\"\n[cors]\nallowed_origins=[\"https://*.a.test\", \"https://app.a.test/\"]\n", "sites/x.toml: cors.allowed_origins[1]: `https://app.a.test/` has a path (`/`); a browser's Origin is scheme://host[:port]: write `https://app.a.test`"),
            ("a coding set per response", "hosts=[\"a\"]\n[origin]\nbucket=\"b\"\n[headers]\n\"Content-Encoding\"=\"gzip\"\n", "headers.\"Content-Encoding\": describes the body of each response"),
            ("one header twice in two cases", "hosts=[\"a\"]\n[origin]\nbucket=\"b\"\n[headers]\n\"X-Frame-Options\"=\"DENY\"\n\"x-frame-options\"=\"SAMEORIGIN\"\n", "headers.\"x-frame-options\": names the same header as headers.\"X-Frame-Options\""),
            ("an empty Vary", "hosts=[\"a\"]\n[origin]\nbucket=\"b\"\n[headers]\n\"Vary\"=\"\"\n", "headers.\"Vary\": is empty; a Vary value adds names"),
            ("a hop-by-hop header", "hosts=[\"a\"]\n[origin]\nbucket=\"b\"\n[headers]\n\"Connection\"=\"close\"\n", "headers.\"Connection\": describes the connection"),
            ("a missing certificate", "hosts=[\"a\"]\n[origin]\nbucket=\"b\"\n[tls]\ncert=\"/nonexistent.pem\"\nkey=\"/nonexistent.key\"\n", "tls.cert: `/nonexistent.pem` does not exist"),
            ("acme with a wildcard host", "hosts=[\"a.com\", \"*.a.com\"]\n[origin]\nbucket=\"b\"\n[tls]\nacme=true\n", "sites/x.toml: hosts[1]: `*.a.com` is a wildcard, and `acme = true` cannot obtain wildcard certificates (they need the DNS-01 challenge); list the exact names"),
            ("acme with an IP address host", "hosts=[\"a.com\", \"127.0.0.2\", \"[::1]\"]\n[origin]\nbucket=\"b\"\n[tls]\nacme=true\n", "sites/x.toml: hosts[1]: `127.0.0.2` is an IP address, and `acme = true` orders certificates for names only"),
            ("acme with an IPv6 host", "hosts=[\"a.com\", \"[::1]\"]\n[origin]\nbucket=\"b\"\n[tls]\nacme=true\n", "sites/x.toml: hosts[1]: `[::1]` is an IP address"),
            ("acme with a certificate file", "hosts=[\"a.com\"]\n[origin]\nbucket=\"b\"\n[tls]\nacme=true\ncert=\"c.pem\"\n", "sites/x.toml: tls.cert: cannot be combined with `acme = true`; remove cert and key"),
            ("acme with a key file", "hosts=[\"a.com\"]\n[origin]\nbucket=\"b\"\n[tls]\nacme=true\nkey=\"c.key\"\n", "sites/x.toml: tls.key: cannot be combined with `acme = true`"),
            ("acme on a default site without hosts", "default=true\n[origin]\nbucket=\"b\"\n[tls]\nacme=true\n", "sites/x.toml: tls.acme: the site lists no hosts"),
            ("website without an index", "hosts=[\"a\"]\n[origin]\nbucket=\"b\"\n[website]\nerror_document=\"e.html\"\n", "website.index_document: missing"),
            ("index with a slash", "hosts=[\"a\"]\n[origin]\nbucket=\"b\"\n[website]\nindex_document=\"a/index.html\"\n", "website.index_document: `a/index.html` is not a valid index suffix"),
            ("redirect-all with an index", "hosts=[\"a\"]\n[origin]\nbucket=\"b\"\n[website]\nindex_document=\"i.html\"\nredirect_all_requests_to={host_name=\"x.com\"}\n", "website.redirect_all_requests_to: cannot be combined"),
            ("both key replacements", "hosts=[\"a\"]\n[origin]\nbucket=\"b\"\n[website]\nindex_document=\"i.html\"\n[[website.routing_rules]]\ncondition={key_prefix_equals=\"a/\"}\nredirect={replace_key_prefix_with=\"b/\",replace_key_with=\"c\"}\n", "website.routing_rules[0].redirect: replace_key_prefix_with and replace_key_with cannot both be set"),
            ("an empty condition", "hosts=[\"a\"]\n[origin]\nbucket=\"b\"\n[website]\nindex_document=\"i.html\"\n[[website.routing_rules]]\ncondition={}\nredirect={host_name=\"x\"}\n", "website.routing_rules[0].condition: empty"),
            ("a preview host that is not a wildcard", "hosts=[\"a\"]\n[origin]\nbucket=\"b\"\n[releases]\npreview_hosts=[\"preview.a\"]\n", "sites/x.toml: releases.preview_hosts[0]: `preview.a` is not a wildcard"),
            ("a pointer inside the releases", "hosts=[\"a\"]\n[origin]\nbucket=\"b\"\n[releases]\npointer=\"releases/live\"\n", "sites/x.toml: releases.pointer: `releases/live` cannot be the pointer's key"),
            ("a bad check interval", "hosts=[\"a\"]\n[origin]\nbucket=\"b\"\n[releases]\ncheck_every=\"1ms\"\n", "sites/x.toml: releases.check_every: 1ms is too short"),
            ("an unknown releases key", "hosts=[\"a\"]\n[origin]\nbucket=\"b\"\n[releases]\npointr=\"x\"\n", "sites/x.toml: releases.pointr: unknown key"),
            ("an empty redirect", "hosts=[\"a\"]\n[origin]\nbucket=\"b\"\n[website]\nindex_document=\"i.html\"\n[[website.routing_rules]]\ncondition={key_prefix_equals=\"a\"}\nredirect={}\n", "website.routing_rules[0].redirect: empty"),
            ("a bad protocol", "hosts=[\"a\"]\n[origin]\nbucket=\"b\"\n[website]\nindex_document=\"i.html\"\n[[website.routing_rules]]\nredirect={protocol=\"ftp\"}\n", "website.routing_rules[0].redirect.protocol: `ftp` is not a protocol"),
            ("a bad redirect code", "hosts=[\"a\"]\n[origin]\nbucket=\"b\"\n[website]\nindex_document=\"i.html\"\n[[website.routing_rules]]\nredirect={http_redirect_code=300}\n", "website.routing_rules[0].redirect.http_redirect_code: 300 is not a redirect code"),
        ];
        for (name, text, want) in cases {
            let problems = check(text).expect_err(name);
            assert!(
                problems.iter().any(|p| p.contains(want)),
                "{name}: wanted `{want}` in {problems:#?}"
            );
        }
    }

    #[test]
    fn every_problem_in_a_file_is_reported_at_once() {
        let problems = check(
            "hosts=[\"a:1\"]\n[origin]\nbucket=\"\"\ntimeout=\"x\"\n[cache]\nmax_ttl=\"1q\"\n",
        )
        .expect_err("invalid");
        assert_eq!(problems.len(), 4, "{problems:#?}");
    }

    #[test]
    fn a_host_claimed_by_two_sites_is_an_error_on_the_second() {
        let files = vec![
            (PathBuf::from("sites/a.toml"), MINIMAL.to_string()),
            (PathBuf::from("sites/b.toml"), MINIMAL.to_string()),
        ];
        let errors = validate_sites(&files).expect_err("duplicate");
        assert_eq!(errors.0.len(), 1);
        assert!(errors.0[0].to_string().starts_with(
            "sites/b.toml: hosts[0]: host `example.com` is already claimed by site `a`"
        ));
    }

    #[test]
    fn a_preview_host_claimed_by_another_site_names_the_releases_key() {
        let a = "hosts=[\"x.example\", \"*.preview.example\"]\n[origin]\nbucket=\"b\"\n";
        let b = "hosts=[\"b.example\"]\n[origin]\nbucket=\"b\"\n[releases]\npreview_hosts=[\"*.other.example\", \"*.preview.example\"]\n";
        let files = vec![
            (PathBuf::from("sites/a.toml"), a.to_string()),
            (PathBuf::from("sites/b.toml"), b.to_string()),
        ];
        let errors = validate_sites(&files).expect_err("duplicate");
        assert_eq!(errors.0.len(), 1, "{errors:?}");
        assert!(
            errors.0[0].to_string().starts_with(
                "sites/b.toml: releases.preview_hosts[1]: host `*.preview.example` is already claimed by site `a`"
            ),
            "{}",
            errors.0[0]
        );
    }

    #[test]
    fn two_default_sites_are_an_error() {
        let a = "default = true\n[origin]\nbucket=\"b\"\n".to_string();
        let files = vec![
            (PathBuf::from("sites/a.toml"), a.clone()),
            (PathBuf::from("sites/b.toml"), a),
        ];
        let errors = validate_sites(&files).expect_err("two defaults");
        assert!(errors.0[0]
            .to_string()
            .contains("default: site `a` is already the default"));
    }

    #[test]
    fn endpoint_settings_imply_path_style() {
        let site =
            check("hosts=[\"a\"]\n[origin]\nbucket=\"b\"\nendpoint=\"http://127.0.0.1:3900/\"\n")
                .expect("valid");
        assert_eq!(
            site.origin.endpoint,
            Endpoint::Url("http://127.0.0.1:3900".into())
        );
        assert!(site.origin.path_style);
        let site = check(
            "hosts=[\"a\"]\n[origin]\nbucket=\"b\"\nendpoint=\"embedded\"\npath_style=false\n",
        )
        .expect("valid");
        assert!(!site.origin.path_style);
    }
}
