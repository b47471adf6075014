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
    let bytes: Vec<u8> = percent_encoding::percent_decode_str(path).collect();
    if bytes.contains(&0) {
        return Err(PathError::Nul);
    }
    let decoded = String::from_utf8(bytes).map_err(|_| PathError::InvalidEncoding)?;
    Ok(remove_dot_segments(&decoded)
        .trim_start_matches('/')
        .to_string())
}

/// RFC 3986 section 5.2.4 on an absolute path: `.` segments vanish, `..` removes the
/// previous segment and never climbs above the root. A trailing `.` or `..` leaves
/// a trailing `/`, as the RFC's algorithm does.
fn remove_dot_segments(path: &str) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_paths_become_object_keys() {
        let cases: &[(&str, &str, Result<&str, PathError>)] = &[
            ("the root is the empty key", "/", Ok("")),
            ("a plain file keeps its name", "/css/site.css", Ok("css/site.css")),
            ("a directory keeps its trailing slash", "/docs/", Ok("docs/")),
            ("spaces are decoded once", "/my%20file.txt", Ok("my file.txt")),
            ("a plus sign stays a plus sign", "/a+b.txt", Ok("a+b.txt")),
            ("an encoded slash becomes a slash", "/a%2Fb", Ok("a/b")),
            ("double encoding is decoded only once", "/a%2520b", Ok("a%20b")),
            ("unicode is decoded", "/caf%C3%A9.html", Ok("café.html")),
            ("dot segments are removed", "/a/./b/../c", Ok("a/c")),
            ("dot-dot cannot climb above the root", "/../../etc/passwd", Ok("etc/passwd")),
            ("encoded dot-dot cannot climb either", "/%2e%2e/%2E%2E/secret", Ok("secret")),
            ("a trailing dot-dot leaves a directory", "/a/b/..", Ok("a/")),
            ("an encoded NUL is refused", "/a%00b", Err(PathError::Nul)),
            ("invalid UTF-8 is refused", "/%ff%fe", Err(PathError::InvalidEncoding)),
            ("an overlong encoding is refused", "/%c0%ae%c0%ae/x", Err(PathError::InvalidEncoding)),
            ("a relative path is refused", "a/b", Err(PathError::NotAbsolute)),
            ("backslashes are ordinary key characters", "/a%5cb", Ok("a\\b")),
            ("empty segments are kept as S3 keys keep them", "/a//b", Ok("a//b")),
        ];
        for (name, path, want) in cases {
            let got = path_to_key(path);
            assert_eq!(got.as_deref().map_err(|e| *e), *want, "{name}");
        }
    }
}
