//! Request path to object key, and the S3 website rules.
//!
//! Pure functions (no I/O) returning outcome enums; the handler performs the lookups
//! they ask for. Behaviour follows the Amazon S3 website endpoint as documented in
//! "Hosting a static website using Amazon S3" (index documents, error documents,
//! redirects, routing rules).

use std::fmt;

/// Most routing rules a site may have (AWS allows 50; we allow more).
pub const MAX_ROUTING_RULES: usize = 1000;

/// The `[website]` section, validated (same rules as PutBucketWebsite).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WebsiteConfig {
    /// Read the configuration from the bucket (GetBucketWebsite) and refresh it.
    pub from_bucket: bool,
    /// Suffix appended to keys that end in `/` (`index.html`): non-empty, no `/`.
    pub index_document: Option<String>,
    /// Key whose body is served for 4xx answers to GET.
    pub error_document: Option<String>,
    /// A 404 GET serves the index document with 200 (not AWS).
    pub spa_fallback: bool,
    /// Every request is redirected there; excludes everything else.
    pub redirect_all: Option<RedirectAll>,
    pub routing_rules: Vec<RoutingRule>,
}

impl WebsiteConfig {
    /// The configuration in force for a site with `from_bucket = true`: each
    /// value the site file sets overrides the bucket's.
    pub fn overriding(&self, bucket: WebsiteConfig) -> WebsiteConfig {
        let file_is_website = self.index_document.is_some() || self.redirect_all.is_some();
        WebsiteConfig {
            from_bucket: true,
            index_document: self.index_document.clone().or(bucket.index_document),
            error_document: self.error_document.clone().or(bucket.error_document),
            spa_fallback: self.spa_fallback,
            redirect_all: if file_is_website {
                self.redirect_all.clone()
            } else {
                bucket.redirect_all
            },
            routing_rules: if self.routing_rules.is_empty() {
                bucket.routing_rules
            } else {
                self.routing_rules.clone()
            },
        }
    }
}

/// `http` or `https` in a redirect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Http,
    Https,
}

impl Protocol {
    pub fn parse(text: &str) -> Option<Protocol> {
        match text {
            "http" => Some(Protocol::Http),
            "https" => Some(Protocol::Https),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Http => "http",
            Protocol::Https => "https",
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `redirect_all_requests_to`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedirectAll {
    pub host_name: String,
    /// `None`: the request's own scheme.
    pub protocol: Option<Protocol>,
}

/// One routing rule: when `condition` holds, answer with `redirect`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutingRule {
    pub condition: Condition,
    pub redirect: Redirect,
}

/// A routing rule's condition; at least one field is set.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Condition {
    pub key_prefix_equals: Option<String>,
    pub http_error_code_returned_equals: Option<u16>,
}

/// How a matched key is rewritten in a redirect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyReplacement {
    /// The key is kept as it is.
    Keep,
    /// The matched `key_prefix_equals` is replaced by this (`""` strips it).
    Prefix(String),
    /// The whole key is replaced by this.
    Key(String),
}

/// A routing rule's redirect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redirect {
    pub protocol: Option<Protocol>,
    pub host_name: Option<String>,
    pub replacement: KeyReplacement,
    /// 301 to 308; 301 when unset.
    pub http_redirect_code: u16,
}

/// Why a request path cannot name an object key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("the path is not valid percent-encoded UTF-8")]
    InvalidEncoding,
    #[error("the path contains a NUL byte")]
    Nul,
    #[error("the path does not start with /")]
    NotAbsolute,
}

/// Turns a request path (without the query string) into an object key, without the
/// site's prefix and without the leading `/`.
///
/// The path is percent-decoded exactly once (`%2F` becomes `/`, `+` stays `+`, as
/// `aws s3 sync` uploads keys), and dot-segments are removed (RFC 3986 section
/// 5.2.4) after decoding, so `%2e%2e` cannot climb above the bucket root.
/// A NUL byte or invalid UTF-8 after decoding is an error (400).
pub fn path_to_key(path: &str) -> Result<String, PathError> {
    if !path.starts_with('/') {
        return Err(PathError::NotAbsolute);
    }
    // Most paths have nothing to decode and no dot-segment: the key is the
    // path itself (one allocation on every request, not six).
    if is_plain_path(path) {
        return Ok(path.trim_start_matches('/').to_string());
    }
    let bytes: Vec<u8> = percent_encoding::percent_decode_str(path).collect();
    if bytes.contains(&0) {
        return Err(PathError::Nul);
    }
    let decoded = String::from_utf8(bytes).map_err(|_| PathError::InvalidEncoding)?;
    Ok(remove_dot_segments(&decoded)
        .trim_start_matches('/')
        .to_string())
}

/// A path that decoding and dot-segment removal leave as it is: no `%`, no
/// NUL, no `.` or `..` segment.
fn is_plain_path(path: &str) -> bool {
    !path.bytes().any(|b| b == b'%' || b == 0)
        && !path
            .split('/')
            .any(|segment| segment == "." || segment == "..")
}

/// RFC 3986 section 5.2.4 on an absolute path: `.` segments vanish, `..` removes the
/// previous segment and never climbs above the root. A trailing `.` or `..` leaves
/// a trailing `/`, as the RFC's algorithm does.
pub(crate) fn remove_dot_segments(path: &str) -> String {
    let mut output: Vec<&str> = Vec::new();
    let segments: Vec<&str> = path.split('/').skip(1).collect();
    let last = segments.len().saturating_sub(1);
    let mut trailing_slash = false;
    for (i, segment) in segments.iter().enumerate() {
        match *segment {
            "." => trailing_slash = i == last,
            ".." => {
                output.pop();
                trailing_slash = i == last;
            }
            other => {
                output.push(other);
                trailing_slash = false;
            }
        }
    }
    let mut result = String::with_capacity(path.len());
    for segment in &output {
        result.push('/');
        result.push_str(segment);
    }
    if trailing_slash || result.is_empty() {
        result.push('/');
    }
    result
}

/// What the request looks like, for building redirects.
#[derive(Debug, Clone, Copy)]
pub struct RequestInfo<'a> {
    /// The scheme the client used (as seen through trusted proxies).
    pub scheme: Protocol,
    /// The request's host, as the client sent it (port included).
    pub host: &'a str,
    /// The path as received, still percent-encoded.
    pub raw_path: &'a str,
    /// The query string without `?`, when there is one.
    pub query: Option<&'a str>,
}

/// A redirect answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedirectTarget {
    pub status: u16,
    pub location: String,
}

/// What to do before any lookup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// Answer with this redirect now.
    Redirect(RedirectTarget),
    /// Look up this key (the index document appended for `/` and `dir/`).
    Lookup { key: String },
}

/// Status of the redirect a missing `dir` gets when `dir/<index>` exists.
pub const IMPLICIT_REDIRECT_STATUS: u16 = 302;
/// Status of `redirect_all_requests_to` and of `x-amz-website-redirect-location`.
pub const PERMANENT_REDIRECT_STATUS: u16 = 301;

impl RoutingRule {
    /// Rules without an error-code condition are checked before the lookup
    /// (AWS: "KeyPrefixEquals" alone redirects whether or not the object exists).
    fn applies_before_lookup(&self) -> bool {
        self.condition.http_error_code_returned_equals.is_none()
    }

    fn prefix(&self) -> &str {
        self.condition.key_prefix_equals.as_deref().unwrap_or("")
    }
}

/// Plans a request for `key` (from [`path_to_key`], without the site's prefix).
///
/// - `redirect_all_requests_to` answers every request with a 301 to
///   `protocol://host_name/original-path?query` (AWS: "RedirectAllRequestsTo").
/// - Routing rules whose only condition is `key_prefix_equals` are checked in
///   order, first match wins, before the lookup; they are not applied to the
///   bucket root, whose key is empty before the index is added.
/// - Otherwise the key is looked up, with the index document suffix appended to
///   the root and to keys ending in `/` (AWS: "Index document support").
pub fn plan(config: &WebsiteConfig, key: &str, request: &RequestInfo<'_>) -> Plan {
    if let Some(all) = &config.redirect_all {
        let scheme = all.protocol.unwrap_or(request.scheme);
        let mut location = format!("{scheme}://{}{}", all.host_name, request.raw_path);
        if let Some(query) = request.query {
            location.push('?');
            location.push_str(query);
        }
        return Plan::Redirect(RedirectTarget {
            status: PERMANENT_REDIRECT_STATUS,
            location: sanitize_location(&location),
        });
    }
    if !key.is_empty() {
        let matched = config
            .routing_rules
            .iter()
            .filter(|rule| rule.applies_before_lookup())
            .find(|rule| key.starts_with(rule.prefix()));
        if let Some(rule) = matched {
            return Plan::Redirect(rule_redirect(rule, key, request));
        }
    }
    let index = config.index_document.as_deref().unwrap_or("");
    if key.is_empty() || key.ends_with('/') {
        Plan::Lookup {
            key: format!("{key}{index}"),
        }
    } else {
        Plan::Lookup {
            key: key.to_string(),
        }
    }
}

/// For a key that was not found and does not end in `/`: the key whose existence
/// turns the 404 into a 302 to `path/` (AWS: a request for `/dir` when only
/// `dir/index.html` exists).
pub fn directory_index_key(config: &WebsiteConfig, key: &str) -> Option<String> {
    let index = config.index_document.as_deref()?;
    (!key.is_empty() && !key.ends_with('/')).then(|| format!("{key}/{index}"))
}

/// The implicit redirect to the directory `key`: a root-relative `Location`
/// of the key plus `/`, keeping the query string.
pub fn directory_redirect(key: &str, request: &RequestInfo<'_>) -> RedirectTarget {
    // From the key, not the path as sent: `//evil.com/..%2Fdocs` is the key
    // `docs`, and its path plus `/` a Location a browser reads as another
    // site's (`//evil.com/...`).
    let mut location = format!("{}/", root_path(key));
    if let Some(query) = request.query {
        location.push('?');
        location.push_str(query);
    }
    RedirectTarget {
        status: IMPLICIT_REDIRECT_STATUS,
        location: sanitize_location(&location),
    }
}

/// After the lookup of `key` failed with `status` (404 or 403): the first routing
/// rule whose `http_error_code_returned_equals` is `status` and whose prefix (if
/// any) matches the key looked up, checked before the error document.
pub fn redirect_on_error(
    config: &WebsiteConfig,
    key: &str,
    status: u16,
    request: &RequestInfo<'_>,
) -> Option<RedirectTarget> {
    config
        .routing_rules
        .iter()
        .filter(|rule| rule.condition.http_error_code_returned_equals == Some(status))
        .find(|rule| key.starts_with(rule.prefix()))
        .map(|rule| rule_redirect(rule, key, request))
}

/// The redirect of a matched rule. The Location is absolute when the rule sets a
/// protocol or a host or replaces the key, as AWS answers; otherwise it is the
/// key as a root-relative path.
fn rule_redirect(rule: &RoutingRule, key: &str, request: &RequestInfo<'_>) -> RedirectTarget {
    let redirect = &rule.redirect;
    let new_key = match &redirect.replacement {
        KeyReplacement::Keep => key.to_string(),
        KeyReplacement::Prefix(with) => {
            format!("{with}{}", &key[rule.prefix().len().min(key.len())..])
        }
        KeyReplacement::Key(with) => with.clone(),
    };
    let absolute = redirect.protocol.is_some()
        || redirect.host_name.is_some()
        || redirect.replacement != KeyReplacement::Keep;
    let host = redirect.host_name.as_deref().unwrap_or(request.host);
    // No host to name (a request without one to a site of wildcards only):
    // root-relative, which the client resolves against the host it used.
    let mut location = if absolute && !host.is_empty() {
        let scheme = redirect.protocol.unwrap_or(request.scheme);
        format!("{scheme}://{host}/{}", encode_key_path(&new_key))
    } else {
        root_path(&new_key)
    };
    // The query goes along, as with the other redirects here (S3 drops it,
    // and with it a campaign's `utm_` fields; Netlify keeps it).
    if let Some(query) = request.query {
        location.push('?');
        location.push_str(query);
    }
    RedirectTarget {
        status: redirect.http_redirect_code,
        location: sanitize_location(&location),
    }
}

/// Characters percent-encoded when a key becomes a URL path: controls, space,
/// and the characters that would end or change the path.
const KEY_PATH_SET: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'`')
    .add(b'{')
    .add(b'}')
    .add(b'\\')
    .add(b'^')
    .add(b'|');

/// A key as a URL path (without the leading `/`).
pub fn encode_key_path(key: &str) -> String {
    percent_encoding::utf8_percent_encode(key, KEY_PATH_SET).to_string()
}

/// A key as a root-relative Location: `/` and the encoded key, a leading `/`
/// of the key as `%2F`, so that it never starts with `//`, which a browser
/// reads as a URL of another host (`//evil.com/x`).
pub fn root_path(key: &str) -> String {
    let path = encode_key_path(key);
    match path.strip_prefix('/') {
        Some(rest) => format!("/%2F{rest}"),
        None => format!("/{path}"),
    }
}

/// Characters percent-encoded in a Location taken from configuration or object
/// metadata: controls (CR, LF), space and non-ASCII; `%` is left alone so values
/// that are already encoded stay as they are.
const LOCATION_SET: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'<')
    .add(b'>')
    .add(b'`')
    .add(b'{')
    .add(b'}')
    .add(b'\\')
    .add(b'^')
    .add(b'|');

/// Makes a Location value safe for a header: no raw CR, LF, space or non-ASCII.
/// Whether `location` may be an object's `x-amz-website-redirect-location`:
/// S3 takes only a value that starts with `/`, `http://` or `https://`
/// (PutObject refuses any other with 400), so a `javascript:` or
/// `data:` value never becomes a redirect.
pub fn valid_redirect_location(location: &str) -> bool {
    let lower = |n: usize| location.get(..n).map(str::to_ascii_lowercase);
    location.starts_with('/')
        || lower(7).as_deref() == Some("http://")
        || lower(8).as_deref() == Some("https://")
}

pub fn sanitize_location(location: &str) -> String {
    percent_encoding::utf8_percent_encode(location, LOCATION_SET).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_locations_s3_would_store_are_redirects() {
        for valid in ["/", "/a b", "http://x", "HTTPS://x/y"] {
            assert!(valid_redirect_location(valid), "{valid}");
        }
        for invalid in [
            "",
            "javascript:alert(1)",
            "data:,x",
            "a.html",
            "http:/x",
            "ht",
        ] {
            assert!(!valid_redirect_location(invalid), "{invalid}");
        }
    }

    #[test]
    fn request_paths_become_object_keys() {
        let cases: &[(&str, &str, Result<&str, PathError>)] = &[
            ("the root is the empty key", "/", Ok("")),
            (
                "a plain file keeps its name",
                "/css/site.css",
                Ok("css/site.css"),
            ),
            (
                "a directory keeps its trailing slash",
                "/docs/",
                Ok("docs/"),
            ),
            (
                "spaces are decoded once",
                "/my%20file.txt",
                Ok("my file.txt"),
            ),
            ("a plus sign stays a plus sign", "/a+b.txt", Ok("a+b.txt")),
            ("an encoded slash becomes a slash", "/a%2Fb", Ok("a/b")),
            (
                "double encoding is decoded only once",
                "/a%2520b",
                Ok("a%20b"),
            ),
            ("unicode is decoded", "/caf%C3%A9.html", Ok("café.html")),
            ("dot segments are removed", "/a/./b/../c", Ok("a/c")),
            (
                "dot-dot cannot climb above the root",
                "/../../etc/passwd",
                Ok("etc/passwd"),
            ),
            (
                "encoded dot-dot cannot climb either",
                "/%2e%2e/%2E%2E/secret",
                Ok("secret"),
            ),
            ("a trailing dot-dot leaves a directory", "/a/b/..", Ok("a/")),
            ("an encoded NUL is refused", "/a%00b", Err(PathError::Nul)),
            (
                "invalid UTF-8 is refused",
                "/%ff%fe",
                Err(PathError::InvalidEncoding),
            ),
            (
                "an overlong encoding is refused",
                "/%c0%ae%c0%ae/x",
                Err(PathError::InvalidEncoding),
            ),
            (
                "a relative path is refused",
                "a/b",
                Err(PathError::NotAbsolute),
            ),
            (
                "backslashes are ordinary key characters",
                "/a%5cb",
                Ok("a\\b"),
            ),
            (
                "empty segments are kept as S3 keys keep them",
                "/a//b",
                Ok("a//b"),
            ),
        ];
        for (name, path, want) in cases {
            let got = path_to_key(path);
            assert_eq!(got.as_deref().map_err(|e| *e), *want, "{name}");
        }
    }

    /// The plain-path shortcut answers as decoding and dot-segment removal
    /// would: every path over a small alphabet (slashes, dots, `%2e`, `%2F`,
    /// letters), up to five tokens long.
    #[test]
    fn the_plain_path_shortcut_agrees_with_the_whole_algorithm() {
        let tokens = ["/", ".", "..", "a", "b.c", "%2e", "%2F", "%41", "..."];
        let mut paths = vec![String::from("/")];
        let mut frontier = paths.clone();
        for _ in 0..5 {
            let next: Vec<String> = frontier
                .iter()
                .flat_map(|p| tokens.iter().map(move |t| format!("{p}{t}")))
                .collect();
            paths.extend(next.iter().cloned());
            frontier = next;
        }
        let mut plain = 0;
        for path in &paths {
            let bytes: Vec<u8> = percent_encoding::percent_decode_str(path).collect();
            let decoded = String::from_utf8(bytes).unwrap();
            let whole = remove_dot_segments(&decoded)
                .trim_start_matches('/')
                .to_string();
            assert_eq!(path_to_key(path).unwrap(), whole, "{path}");
            if is_plain_path(path) {
                plain += 1;
            }
        }
        // Both branches were taken.
        assert!(
            plain > 100 && plain < paths.len(),
            "{plain} of {}",
            paths.len()
        );
    }

    fn request() -> RequestInfo<'static> {
        RequestInfo {
            scheme: Protocol::Http,
            host: "example.com:8080",
            raw_path: "/docs/a%20b.html",
            query: Some("x=1"),
        }
    }

    fn rule(prefix: Option<&str>, code: Option<u16>, redirect: Redirect) -> RoutingRule {
        RoutingRule {
            condition: Condition {
                key_prefix_equals: prefix.map(str::to_string),
                http_error_code_returned_equals: code,
            },
            redirect,
        }
    }

    fn redirect(
        protocol: Option<Protocol>,
        host: Option<&str>,
        replacement: KeyReplacement,
        code: u16,
    ) -> Redirect {
        Redirect {
            protocol,
            host_name: host.map(str::to_string),
            replacement,
            http_redirect_code: code,
        }
    }

    fn site() -> WebsiteConfig {
        WebsiteConfig {
            index_document: Some("index.html".into()),
            error_document: Some("error.html".into()),
            routing_rules: vec![
                rule(
                    Some("old/"),
                    None,
                    redirect(None, None, KeyReplacement::Prefix("new/".into()), 301),
                ),
                rule(
                    Some("docs/"),
                    Some(404),
                    redirect(
                        Some(Protocol::Https),
                        Some("docs.example.com"),
                        KeyReplacement::Prefix("".into()),
                        302,
                    ),
                ),
                rule(
                    Some("moved/"),
                    None,
                    redirect(None, None, KeyReplacement::Keep, 307),
                ),
                rule(
                    None,
                    Some(403),
                    redirect(None, None, KeyReplacement::Key("login.html".into()), 303),
                ),
            ],
            ..WebsiteConfig::default()
        }
    }

    fn redirect_to(status: u16, location: &str) -> Plan {
        Plan::Redirect(RedirectTarget {
            status,
            location: location.into(),
        })
    }

    fn lookup(key: &str) -> Plan {
        Plan::Lookup { key: key.into() }
    }

    #[test]
    fn requests_are_planned_as_the_s3_website_endpoint_does() {
        let cases: &[(&str, &str, Plan)] = &[
            (
                "the root serves the index document",
                "",
                lookup("index.html"),
            ),
            (
                "a directory serves its index document",
                "docs/",
                lookup("docs/index.html"),
            ),
            (
                "a nested directory serves its index document",
                "a/b/",
                lookup("a/b/index.html"),
            ),
            (
                "a file is looked up as it is",
                "a/page.html",
                lookup("a/page.html"),
            ),
            (
                "a directory without its slash is looked up as a key first",
                "docs",
                lookup("docs"),
            ),
            (
                "a prefix rule fires before the lookup and replaces the prefix",
                "old/page.html",
                redirect_to(301, "http://example.com:8080/new/page.html?x=1"),
            ),
            (
                "a prefix rule with only a code keeps a relative location",
                "moved/x.html",
                redirect_to(307, "/moved/x.html?x=1"),
            ),
            (
                "an error-code rule does not fire before the lookup",
                "docs/a.html",
                lookup("docs/a.html"),
            ),
        ];
        let config = site();
        for (name, key, want) in cases {
            assert_eq!(plan(&config, key, &request()), *want, "{name}");
        }
    }

    /// A rule's redirect keeps the request's query (S3 drops it: a
    /// campaign's `utm_` fields were lost on every moved page).
    #[test]
    fn a_rule_redirect_keeps_the_query_and_adds_none_without_one() {
        let config = site();
        let bare = RequestInfo {
            query: None,
            ..request()
        };
        assert_eq!(
            plan(&config, "moved/x.html", &bare),
            redirect_to(307, "/moved/x.html")
        );
        let campaign = RequestInfo {
            query: Some("utm_source=mail&utm_campaign=winter"),
            ..request()
        };
        assert_eq!(
            plan(&config, "old/a.html", &campaign),
            redirect_to(
                301,
                "http://example.com:8080/new/a.html?utm_source=mail&utm_campaign=winter"
            )
        );
    }

    #[test]
    fn prefix_rules_are_not_applied_to_the_bucket_root() {
        let mut config = site();
        config.routing_rules = vec![rule(
            None,
            None,
            redirect(None, Some("elsewhere.com"), KeyReplacement::Keep, 301),
        )];
        assert_eq!(plan(&config, "", &request()), lookup("index.html"));
        assert_eq!(
            plan(&config, "a", &request()),
            redirect_to(301, "http://elsewhere.com/a?x=1")
        );
    }

    #[test]
    fn redirect_all_requests_keeps_the_path_and_query() {
        let config = WebsiteConfig {
            redirect_all: Some(RedirectAll {
                host_name: "new.example.com".into(),
                protocol: Some(Protocol::Https),
            }),
            ..WebsiteConfig::default()
        };
        assert_eq!(
            plan(&config, "docs/a b.html", &request()),
            redirect_to(301, "https://new.example.com/docs/a%20b.html?x=1")
        );
        let config = WebsiteConfig {
            redirect_all: Some(RedirectAll {
                host_name: "new.example.com".into(),
                protocol: None,
            }),
            ..WebsiteConfig::default()
        };
        assert_eq!(
            plan(
                &config,
                "",
                &RequestInfo {
                    raw_path: "/",
                    query: None,
                    ..request()
                }
            ),
            redirect_to(301, "http://new.example.com/")
        );
    }

    #[test]
    fn error_rules_fire_after_a_failed_lookup_with_their_code() {
        let config = site();
        let cases: &[(&str, &str, u16, Option<RedirectTarget>)] = &[
            (
                "a 404 under the prefix redirects with the prefix stripped",
                "docs/a.html",
                404,
                Some(RedirectTarget {
                    status: 302,
                    location: "https://docs.example.com/a.html?x=1".into(),
                }),
            ),
            (
                "the key looked up includes the index document",
                "docs/index.html",
                404,
                Some(RedirectTarget {
                    status: 302,
                    location: "https://docs.example.com/index.html?x=1".into(),
                }),
            ),
            (
                "a 404 outside the prefix does not match",
                "blog/a.html",
                404,
                None,
            ),
            (
                "a 403 rule without a prefix matches every key",
                "secret/x",
                403,
                Some(RedirectTarget {
                    status: 303,
                    location: "http://example.com:8080/login.html?x=1".into(),
                }),
            ),
            (
                "a 403 does not match a 404 rule",
                "docs/a.html",
                403,
                Some(RedirectTarget {
                    status: 303,
                    location: "http://example.com:8080/login.html?x=1".into(),
                }),
            ),
        ];
        for (name, key, status, want) in cases {
            assert_eq!(
                redirect_on_error(&config, key, *status, &request()),
                *want,
                "{name}"
            );
        }
    }

    #[test]
    fn a_missing_directory_without_its_slash_tries_the_index() {
        let config = site();
        assert_eq!(
            directory_index_key(&config, "docs").as_deref(),
            Some("docs/index.html")
        );
        assert_eq!(directory_index_key(&config, "docs/"), None);
        assert_eq!(directory_index_key(&config, ""), None);
        let target = directory_redirect(
            "docs",
            &RequestInfo {
                raw_path: "/docs",
                ..request()
            },
        );
        assert_eq!(
            target,
            RedirectTarget {
                status: 302,
                location: "/docs/?x=1".into()
            }
        );
    }

    #[test]
    fn a_root_relative_location_never_starts_with_two_slashes() {
        assert_eq!(root_path("docs"), "/docs");
        assert_eq!(root_path("/evil.example/x"), "/%2Fevil.example/x");
        assert_eq!(root_path("a b?"), "/a%20b%3F");
        let target = directory_redirect("/evil.example", &request());
        assert!(
            target.location.starts_with("/%2Fevil.example/"),
            "{target:?}"
        );
    }

    #[test]
    fn locations_never_carry_raw_line_breaks_or_spaces() {
        assert_eq!(
            sanitize_location("/a b\r\nSet-Cookie: x"),
            "/a%20b%0D%0ASet-Cookie:%20x"
        );
        assert_eq!(
            sanitize_location("https://ex.com/caf\u{e9}"),
            "https://ex.com/caf%C3%A9"
        );
        assert_eq!(
            sanitize_location("/already%20encoded"),
            "/already%20encoded"
        );
        assert_eq!(encode_key_path("a b/c?d#e%f"), "a%20b/c%3Fd%23e%25f");
    }
}
