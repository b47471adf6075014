//! Picks the site for a request's `Host`.

use std::borrow::Cow;
use std::collections::HashMap;

use crate::config::HostPattern;

/// Maps hosts to site indexes: exact match, then the longest wildcard, then the
/// default site.
#[derive(Debug, Clone, Default)]
pub struct HostRouter {
    exact: HashMap<String, usize>,
    /// `(suffix, site)`, longest suffix first.
    wildcards: Vec<(String, usize)>,
    default: Option<usize>,
}

impl HostRouter {
    /// Builds the router from each site's host patterns and default flag, in site order.
    pub fn new<'a>(sites: impl IntoIterator<Item = (&'a [HostPattern], bool)>) -> HostRouter {
        let mut router = HostRouter::default();
        for (index, (hosts, is_default)) in sites.into_iter().enumerate() {
            for host in hosts {
                match host {
                    HostPattern::Exact(name) => {
                        router.exact.insert(name.clone(), index);
                    }
                    HostPattern::Wildcard(suffix) => router.wildcards.push((suffix.clone(), index)),
                }
            }
            if is_default && router.default.is_none() {
                router.default = Some(index);
            }
        }
        router
            .wildcards
            .sort_by(|a, b| b.0.len().cmp(&a.0.len()).then_with(|| a.0.cmp(&b.0)));
        router
    }

    /// The site for a raw `Host` header value (or HTTP/2 `:authority`), if any.
    pub fn route(&self, host: Option<&str>) -> Option<usize> {
        self.route_normalized(host.and_then(normalized_host).as_deref())
    }

    /// [`HostRouter::route`] for a host already normalized
    /// ([`normalized_host`]).
    pub fn route_normalized(&self, host: Option<&str>) -> Option<usize> {
        let found = host.and_then(|host| {
            self.exact.get(host).copied().or_else(|| {
                self.wildcards
                    .iter()
                    .find(|(suffix, _)| {
                        host.len() > suffix.len() && host.ends_with(suffix.as_str())
                    })
                    .map(|(_, index)| *index)
            })
        });
        found.or(self.default)
    }
}

/// Lowercases a `Host` value, strips the port and one trailing dot. IPv6 literals
/// keep their brackets. Returns `None` for values that cannot be a host.
pub fn normalize_host(raw: &str) -> Option<String> {
    normalized_host(raw).map(Cow::into_owned)
}

/// [`normalize_host`], borrowed when the host is already in lower case (on
/// every request: no allocation). `None` for a value that is no host.
pub fn normalized_host(raw: &str) -> Option<Cow<'_, str>> {
    let raw = raw.trim();
    // A port is digits of at most 65535, or nothing (`host:`, RFC 3986).
    let port_ok = |port: &str| {
        port.bytes().all(|b| b.is_ascii_digit()) && (port.is_empty() || port.parse::<u16>().is_ok())
    };
    let host = if raw.starts_with('[') {
        let end = raw.find(']')?;
        let rest = &raw[end + 1..];
        if !(rest.is_empty() || rest.strip_prefix(':').is_some_and(port_ok)) {
            return None;
        }
        // An IPv6 address between the brackets (`[zz]` is no host).
        raw[1..end].parse::<std::net::Ipv6Addr>().ok()?;
        &raw[..=end]
    } else {
        match raw.rsplit_once(':') {
            Some((host, port)) if port_ok(port) => host,
            Some(_) => return None,
            None => raw,
        }
    };
    let host = host.strip_suffix('.').unwrap_or(host);
    // Colons and brackets only in an IPv6 literal (`a:80:80` is no host).
    let literal = host.starts_with('[');
    if host.is_empty()
        || !host.bytes().all(|b| {
            b.is_ascii_alphanumeric()
                || matches!(b, b'.' | b'-' | b'_')
                || (literal && matches!(b, b'[' | b']' | b':'))
        })
    {
        return None;
    }
    if host.bytes().any(|b| b.is_ascii_uppercase()) {
        Some(Cow::Owned(host.to_ascii_lowercase()))
    } else {
        Some(Cow::Borrowed(host))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn router() -> HostRouter {
        let a = [
            HostPattern::Exact("example.com".into()),
            HostPattern::Wildcard(".example.com".into()),
        ];
        let b = [HostPattern::Wildcard(".preview.example.com".into())];
        let c = [HostPattern::Exact("other.org".into())];
        HostRouter::new([(&a[..], false), (&b[..], false), (&c[..], true)])
    }

    #[test]
    fn hosts_route_to_the_right_site() {
        let r = router();
        let cases: &[(&str, Option<&str>, Option<usize>)] = &[
            ("an exact host", Some("example.com"), Some(0)),
            ("a port is stripped", Some("example.com:8080"), Some(0)),
            ("case does not matter", Some("EXAMPLE.com"), Some(0)),
            ("a trailing dot is removed", Some("example.com."), Some(0)),
            (
                "a wildcard matches one label",
                Some("www.example.com"),
                Some(0),
            ),
            (
                "a wildcard matches several labels",
                Some("a.b.example.com"),
                Some(0),
            ),
            (
                "the longest wildcard wins",
                Some("pr-1.preview.example.com"),
                Some(1),
            ),
            (
                "a wildcard's own suffix is not matched by it",
                Some("preview.example.com"),
                Some(0),
            ),
            (
                "an unknown host goes to the default site",
                Some("unknown.net"),
                Some(2),
            ),
            ("no host goes to the default site", None, Some(2)),
            ("garbage goes to the default site", Some("a b/c"), Some(2)),
            ("an IPv6 literal", Some("[::1]:8080"), Some(2)),
            (
                "a suffix without the dot is not a match",
                Some("badexample.com"),
                Some(2),
            ),
        ];
        for (name, host, want) in cases {
            assert_eq!(r.route(*host), *want, "{name}");
        }
    }

    /// What the handler answers 400 (RFC 9112 3.2): values that are no host.
    #[test]
    fn values_that_are_no_host_are_told_apart() {
        for good in [
            "example.com",
            "EXAMPLE.com.:80",
            "10.0.0.1:8080",
            "[::1]",
            "[::1]:443",
            "a_b.example",
            "a.test:",
            "a.test:65535",
        ] {
            assert!(normalized_host(good).is_some(), "{good}");
        }
        for bad in [
            "a.test, b.test",
            "a.test:abc",
            "a.test:80:80",
            "a b",
            "a/b",
            "[::1",
            "[::1]x",
            "a:b:c",
            "",
            ".",
            "[zz]",
            "a.test:99999",
            "[::1]:70000",
        ] {
            assert!(normalized_host(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn without_a_default_site_unknown_hosts_match_nothing() {
        let a = [HostPattern::Exact("example.com".into())];
        let r = HostRouter::new([(&a[..], false)]);
        assert_eq!(r.route(Some("nope.com")), None);
        assert_eq!(r.route(None), None);
    }

    #[test]
    fn hosts_normalize_like_a_browser_sends_them() {
        let cases: &[(&str, Option<&str>)] = &[
            ("WWW.Example.com:443", Some("www.example.com")),
            ("example.com.", Some("example.com")),
            ("[::1]:8080", Some("[::1]")),
            ("[::1]", Some("[::1]")),
            ("[::1]x", None),
            ("exa mple.com", None),
            ("example.com:http", None),
            ("", None),
        ];
        for (raw, want) in cases {
            assert_eq!(normalize_host(raw).as_deref(), *want, "{raw}");
        }
    }
}
