//! Freshness (RFC 9111 section 4.2) from an object's stored metadata and the
//! site's `[cache]` settings. Pure functions.

use std::time::{Duration, SystemTime};

use crate::config::CacheConfig;
use crate::origin::ObjectMeta;

/// How long an entry may be used, and how stale it may be served.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Freshness {
    /// Fresh for this long after it was stored (0: revalidate on every use).
    pub ttl: Duration,
    /// After `ttl`, served stale while one background refresh runs.
    pub stale_while_revalidate: Duration,
    /// After `ttl`, served stale when the origin fails.
    pub stale_if_error: Duration,
}

/// Whether a response may be stored at all (RFC 9111 section 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Storable {
    Yes(Freshness),
    /// `no-store` or `private`: a shared cache must not keep it.
    No,
}

/// The directives of a `Cache-Control` value that a shared cache acts on.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Directives {
    no_store: bool,
    private: bool,
    no_cache: bool,
    must_revalidate: bool,
    max_age: Option<u64>,
    s_maxage: Option<u64>,
    stale_while_revalidate: Option<u64>,
    stale_if_error: Option<u64>,
}

fn parse_directives(value: &str) -> Directives {
    let mut d = Directives::default();
    for part in value.split(',') {
        let (name, arg) = match part.split_once('=') {
            Some((n, a)) => (n.trim(), Some(a.trim().trim_matches('"'))),
            None => (part.trim(), None),
        };
        let seconds = arg.and_then(|a| a.parse::<u64>().ok());
        match name.to_ascii_lowercase().as_str() {
            "no-store" => d.no_store = true,
            // `private="field"` only restricts fields; a bare `private` the whole response.
            "private" if arg.is_none() => d.private = true,
            "no-cache" if arg.is_none() => d.no_cache = true,
            "must-revalidate" | "proxy-revalidate" => d.must_revalidate = true,
            "max-age" => d.max_age = seconds.or(Some(0)),
            "s-maxage" => d.s_maxage = seconds.or(Some(0)),
            "stale-while-revalidate" => d.stale_while_revalidate = seconds,
            "stale-if-error" => d.stale_if_error = seconds,
            _ => {}
        }
    }
    d
}

/// Decides whether and for how long an object may be cached, from its
/// `Cache-Control` (`s-maxage` over `max-age`), else `Expires` relative to its
/// `Date`, or to when it was stored when it has none (RFC 9111 section 4.2.1;
/// an invalid `Expires` means already expired, section 5.3), else the site's
/// `default_ttl`; clamped to `[min_ttl, max_ttl]`.
/// `no-cache` stores with a zero lifetime (revalidated on every use);
/// `must-revalidate` forbids serving it stale.
pub fn storable(meta: &ObjectMeta, site: &CacheConfig, stored_at: SystemTime) -> Storable {
    let d = meta
        .cache_control
        .as_deref()
        .map(parse_directives)
        .unwrap_or_default();
    if d.no_store || d.private {
        return Storable::No;
    }
    let explicit = d
        .s_maxage
        .or(d.max_age)
        .map(Duration::from_secs)
        .or_else(|| {
            meta.expires.as_deref().map(|expires| {
                let date = meta
                    .date
                    .as_deref()
                    .and_then(|d| httpdate::parse_http_date(d).ok())
                    .unwrap_or(stored_at);
                httpdate::parse_http_date(expires)
                    .ok()
                    .and_then(|at| at.duration_since(date).ok())
                    .unwrap_or(Duration::ZERO)
            })
        });
    let ttl = if d.no_cache {
        Duration::ZERO
    } else {
        explicit
            .unwrap_or(site.default_ttl)
            .clamp(site.min_ttl, site.max_ttl.max(site.min_ttl))
    };
    let (swr, sie) = if d.must_revalidate {
        (Duration::ZERO, Duration::ZERO)
    } else {
        (
            d.stale_while_revalidate
                .map(Duration::from_secs)
                .unwrap_or(site.stale_while_revalidate),
            d.stale_if_error
                .map(Duration::from_secs)
                .unwrap_or(site.stale_if_error),
        )
    };
    Storable::Yes(Freshness {
        ttl,
        stale_while_revalidate: if d.no_cache { Duration::ZERO } else { swr },
        stale_if_error: sie,
    })
}

impl Storable {
    /// The freshness, or none at all (revalidate on every use, never serve
    /// stale) for a response that may not be stored.
    pub fn or_expired(self) -> Freshness {
        match self {
            Storable::Yes(freshness) => freshness,
            Storable::No => Freshness {
                ttl: Duration::ZERO,
                stale_while_revalidate: Duration::ZERO,
                stale_if_error: Duration::ZERO,
            },
        }
    }
}

/// A stored response's metadata updated by a 304 (RFC 9111 section 4.3.4):
/// every field the 304 carries replaces the stored one (validators, caching
/// fields, `Date`); the others, the body's among them, are kept.
pub fn merge_not_modified(stored: &ObjectMeta, not_modified: &ObjectMeta) -> ObjectMeta {
    let mut merged = stored.clone();
    let update = |field: &mut Option<String>, new: &Option<String>| {
        if new.is_some() {
            field.clone_from(new);
        }
    };
    update(&mut merged.cache_control, &not_modified.cache_control);
    update(&mut merged.expires, &not_modified.expires);
    update(&mut merged.date, &not_modified.date);
    update(&mut merged.etag, &not_modified.etag);
    if not_modified.last_modified.is_some() {
        merged.last_modified = not_modified.last_modified;
    }
    merged
}

/// When an answer received at `now` was first stored upstream: `now` less
/// the `Age` a peer or parent node sent (RFC 9111 section 4.2.3), so its
/// age here goes on from the parent's and a child never keeps an object
/// longer than its parent could; `now` for an answer from the bucket.
pub fn stored_at(meta: &ObjectMeta, now: SystemTime) -> SystemTime {
    let upstream = Duration::from_secs(meta.age.unwrap_or(0));
    now.checked_sub(upstream).unwrap_or(now)
}

/// Freshness of a 404 or 403 answer from the bucket: the site's `error_ttl`.
pub fn negative(site: &CacheConfig) -> Freshness {
    Freshness {
        ttl: site.error_ttl,
        stale_while_revalidate: Duration::ZERO,
        stale_if_error: Duration::ZERO,
    }
}

/// Where an entry of this age stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Fresh,
    /// Stale, but within stale-while-revalidate: serve it and refresh it.
    StaleWhileRevalidate,
    /// Stale: revalidate before use (or serve it if the origin fails, while
    /// `within_stale_if_error`).
    Stale {
        within_stale_if_error: bool,
    },
}

impl Freshness {
    pub fn state(&self, age: Duration) -> State {
        if age < self.ttl {
            State::Fresh
        } else if age < self.ttl + self.stale_while_revalidate {
            State::StaleWhileRevalidate
        } else {
            State::Stale {
                within_stale_if_error: age < self.ttl + self.stale_if_error,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(cache_control: Option<&str>, expires: Option<&str>) -> ObjectMeta {
        ObjectMeta {
            cache_control: cache_control.map(str::to_string),
            expires: expires.map(str::to_string),
            ..ObjectMeta::default()
        }
    }

    fn site() -> CacheConfig {
        CacheConfig {
            default_ttl: Duration::from_secs(3600),
            min_ttl: Duration::from_secs(5),
            max_ttl: Duration::from_secs(86_400),
            error_ttl: Duration::from_secs(10),
            stale_while_revalidate: Duration::from_secs(60),
            stale_if_error: Duration::from_secs(600),
        }
    }

    fn ttl(s: Storable) -> Option<u64> {
        match s {
            Storable::Yes(f) => Some(f.ttl.as_secs()),
            Storable::No => None,
        }
    }

    #[test]
    fn freshness_follows_rfc_9111_then_the_site_defaults() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
        let in_an_hour = httpdate::fmt_http_date(now + Duration::from_secs(3600));
        type Case<'a> = (&'a str, Option<&'a str>, Option<&'a str>, Option<u64>);
        let cases: &[Case] = &[
            ("no metadata uses the default ttl", None, None, Some(3600)),
            (
                "max-age sets the lifetime",
                Some("public, max-age=120"),
                None,
                Some(120),
            ),
            (
                "s-maxage wins over max-age for a shared cache",
                Some("max-age=120, s-maxage=300"),
                None,
                Some(300),
            ),
            (
                "max-age wins over Expires",
                Some("max-age=60"),
                Some(&in_an_hour),
                Some(60),
            ),
            (
                "Expires is relative to the time stored",
                None,
                Some(&in_an_hour),
                Some(3600),
            ),
            (
                "an invalid Expires is already expired, then clamped up to min_ttl",
                None,
                Some("0"),
                Some(5),
            ),
            (
                "a lifetime under min_ttl is raised",
                Some("max-age=1"),
                None,
                Some(5),
            ),
            (
                "a lifetime over max_ttl is lowered",
                Some("max-age=99999999"),
                None,
                Some(86_400),
            ),
            ("no-store is never stored", Some("no-store"), None, None),
            (
                "private is never stored",
                Some("private, max-age=600"),
                None,
                None,
            ),
            (
                "private with a field name is stored",
                Some("private=\"set-cookie\", max-age=600"),
                None,
                Some(600),
            ),
            (
                "no-cache is stored but revalidated every time",
                Some("no-cache"),
                None,
                Some(0),
            ),
            (
                "directives are case-insensitive",
                Some("Max-Age=70"),
                None,
                Some(70),
            ),
        ];
        for (name, cc, expires, want) in cases {
            assert_eq!(
                ttl(storable(&meta(*cc, *expires), &site(), now)),
                *want,
                "{name}"
            );
        }
    }

    #[test]
    fn expires_counts_from_the_date_the_origin_sent() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
        let mut m = meta(
            None,
            Some(&httpdate::fmt_http_date(now + Duration::from_secs(600))),
        );
        m.date = Some(httpdate::fmt_http_date(now - Duration::from_secs(60)));
        assert_eq!(ttl(storable(&m, &site(), now)), Some(660));
    }

    #[test]
    fn a_304_updates_the_caching_fields_and_freshness_comes_from_the_merge() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
        let stored = ObjectMeta {
            content_length: 42,
            content_type: Some("text/html".into()),
            etag: Some("\"a\"".into()),
            expires: Some(httpdate::fmt_http_date(now - Duration::from_secs(1))),
            ..ObjectMeta::default()
        };
        let not_modified = ObjectMeta {
            expires: Some(httpdate::fmt_http_date(now + Duration::from_secs(3000))),
            ..ObjectMeta::default()
        };
        let merged = merge_not_modified(&stored, &not_modified);
        assert_eq!(merged.content_length, 42, "the body's fields are kept");
        assert_eq!(merged.content_type.as_deref(), Some("text/html"));
        assert_eq!(
            merged.etag.as_deref(),
            Some("\"a\""),
            "absent fields are kept"
        );
        assert_eq!(merged.expires, not_modified.expires);
        assert_eq!(ttl(storable(&merged, &site(), now)), Some(3000));
        let with_cc = ObjectMeta {
            cache_control: Some("max-age=90".into()),
            ..ObjectMeta::default()
        };
        let merged = merge_not_modified(&merged, &with_cc);
        assert_eq!(ttl(storable(&merged, &site(), now)), Some(90));
    }

    #[test]
    fn stale_windows_come_from_the_object_else_the_site() {
        let now = SystemTime::UNIX_EPOCH;
        let Storable::Yes(f) = storable(
            &meta(Some("max-age=10, stale-while-revalidate=30"), None),
            &site(),
            now,
        ) else {
            panic!()
        };
        assert_eq!(f.stale_while_revalidate, Duration::from_secs(30));
        assert_eq!(f.stale_if_error, Duration::from_secs(600));
        assert_eq!(f.state(Duration::from_secs(5)), State::Fresh);
        assert_eq!(
            f.state(Duration::from_secs(20)),
            State::StaleWhileRevalidate
        );
        assert_eq!(
            f.state(Duration::from_secs(100)),
            State::Stale {
                within_stale_if_error: true
            }
        );
        assert_eq!(
            f.state(Duration::from_secs(1000)),
            State::Stale {
                within_stale_if_error: false
            }
        );
        let Storable::Yes(f) = storable(
            &meta(Some("max-age=10, must-revalidate"), None),
            &site(),
            now,
        ) else {
            panic!()
        };
        assert_eq!(
            f.state(Duration::from_secs(11)),
            State::Stale {
                within_stale_if_error: false
            }
        );
    }
}
