//! Freshness (RFC 9111 section 4.2) from an object's stored metadata and the
//! site's `[cache]` settings. Pure functions.

use std::time::{Duration, SystemTime};

use crate::config::CacheConfig;
use crate::origin::{ObjectMeta, MAX_FIELDS};

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
    public: bool,
    must_understand: bool,
    /// `private="a, b"` and `no-cache="a, b"`: fields not to store or reuse.
    qualified_fields: bool,
    must_revalidate: bool,
    /// Forbids serving stale as `must-revalidate` does, but, unlike it, does
    /// not let an answer to an `Authorization` request be stored (RFC 9111
    /// section 3.5 names only `must-revalidate`, `public` and `s-maxage`).
    proxy_revalidate: bool,
    max_age: Option<u64>,
    s_maxage: Option<u64>,
    stale_while_revalidate: Option<u64>,
    stale_if_error: Option<u64>,
}

/// delta-seconds (RFC 9111 section 1.2.2): digits only; a value too large
/// for 31 bits counts as 2^31. Anything else is invalid.
fn delta_seconds(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(text.parse::<u64>().unwrap_or(1 << 31).min(1 << 31))
}

/// Whether a `Cache-Control` value forbids any shared cache to store the
/// answer: `no-store`, or `private` without field names.
pub fn forbids_storing(cache_control: Option<&str>) -> bool {
    cache_control
        .map(parse_directives)
        .is_some_and(|d| d.no_store || d.private)
}

fn parse_directives(value: &str) -> Directives {
    let mut d = Directives::default();
    for part in value.split(',') {
        let (name, arg) = match part.split_once('=') {
            Some((n, a)) => (n.trim(), Some(a.trim().trim_matches('"'))),
            None => (part.trim(), None),
        };
        let seconds = arg.and_then(delta_seconds);
        match name.to_ascii_lowercase().as_str() {
            "no-store" => d.no_store = true,
            "public" => d.public = true,
            "must-understand" => d.must_understand = true,
            // `private="field"` only restricts fields; a bare `private` the whole response.
            "private" if arg.is_none() => d.private = true,
            "no-cache" if arg.is_none() => d.no_cache = true,
            "private" | "no-cache" => d.qualified_fields = true,
            "must-revalidate" => d.must_revalidate = true,
            "proxy-revalidate" => d.proxy_revalidate = true,
            // A directive given twice counts once, at its first occurrence
            // (RFC 9111 section 4.2.1): `max-age=2, max-age=600` was fresh
            // for ten minutes.
            "max-age" if d.max_age.is_none() => d.max_age = seconds.or(Some(0)),
            "s-maxage" if d.s_maxage.is_none() => d.s_maxage = seconds.or(Some(0)),
            "stale-while-revalidate" if d.stale_while_revalidate.is_none() => {
                d.stale_while_revalidate = seconds
            }
            "stale-if-error" if d.stale_if_error.is_none() => d.stale_if_error = seconds,
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
/// `no-cache`, `must-revalidate`, `proxy-revalidate` and `s-maxage` (which
/// carries `proxy-revalidate`, RFC 9111 section 5.2.2.10) forbid serving it
/// stale (section 4.2.4), within `stale-if-error` too, as for an HTTP origin.
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
    let no_stale = d.must_revalidate || d.proxy_revalidate || d.s_maxage.is_some() || d.no_cache;
    let (swr, sie) = if no_stale {
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
        stale_while_revalidate: swr,
        stale_if_error: sie,
    })
}

/// Statuses a shared cache may store without explicit freshness (RFC 9110
/// section 15.1, "heuristically cacheable").
pub const HEURISTICALLY_CACHEABLE: &[u16] =
    &[200, 203, 204, 206, 300, 301, 308, 404, 405, 410, 414, 501];

/// Statuses this cache stores at all (with explicit freshness when not
/// heuristically cacheable): final answers whose meaning it understands.
const UNDERSTOOD: &[u16] = &[
    200, 203, 204, 206, 300, 301, 302, 303, 307, 308, 400, 403, 404, 405, 410, 414, 500, 501, 502,
    503, 504,
];

/// Longest heuristic lifetime (RFC 9111 section 4.2.2 leaves the bound to the cache).
const MAX_HEURISTIC: Duration = Duration::from_secs(86_400);

/// What an HTTP origin's answer allows a shared cache (RFC 9111 section 3,
/// RFC 9213): `CDN-Cache-Control` when it has a directive this cache knows,
/// in place of `Cache-Control`; no `no-store`, no unqualified `private`, no
/// `Vary: *`; an `Authorization` request only with `public`, `s-maxage` or
/// `must-revalidate`; a status this cache understands, with explicit
/// freshness, `public`, or a heuristically cacheable status. Freshness is
/// `s-maxage`, `max-age`, `Expires - Date`, else the site's `default_ttl`
/// when set, else 10% of the time since `Last-Modified` (at most a day).
/// `no-cache` stores it to be revalidated on every use; `must-revalidate`,
/// `proxy-revalidate` and `s-maxage` forbid serving it stale. An answer
/// with `Set-Cookie` only when a qualified `no-cache` or `private` names it.
pub fn http_storable(
    meta: &ObjectMeta,
    site: &CacheConfig,
    authorization: bool,
    now: SystemTime,
) -> Storable {
    let status = meta.status();
    let cdn = cdn_directives(meta);
    let d = cdn.unwrap_or_else(|| {
        meta.cache_control
            .as_deref()
            .map(parse_directives)
            .unwrap_or_default()
    });
    let vary_any = meta
        .headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("vary"))
        .any(|(_, v)| v.split(',').any(|n| n.trim() == "*"));
    // `must-understand` stands in for `no-store` when the status is one this
    // cache implements, and forbids storing it otherwise.
    let no_store = if d.must_understand {
        !UNDERSTOOD.contains(&status)
    } else {
        d.no_store
    };
    // A 206 here is a part sent for the whole (stored parts are kept
    // apart, `shared_range`): never stored as the whole.
    if no_store || d.private || vary_any || (100..200).contains(&status) || status == 206 {
        return Storable::No;
    }
    if authorization && !(d.public || d.s_maxage.is_some() || d.must_revalidate) {
        return Storable::No;
    }
    // An answer that sets a cookie is not stored unless the origin names the
    // field not to store (`no-cache="Set-Cookie"`, `private="Set-Cookie"`:
    // then it is stored without it). Replayed from the cache, one visitor's
    // session cookie became every visitor's; nginx's proxy_cache, Varnish's
    // built-in VCL and Fastly do not store such answers either.
    let sets_cookie = meta
        .headers
        .iter()
        .any(|(name, _)| name.eq_ignore_ascii_case("set-cookie"));
    if sets_cookie
        && !qualified_fields(meta.cache_control.as_deref())
            .iter()
            .any(|field| field == "set-cookie")
    {
        return Storable::No;
    }
    let date = meta
        .date
        .as_deref()
        .and_then(crate::http::date::parse_lenient)
        .unwrap_or(now);
    let expires = || {
        meta.expires.as_deref().map(|expires| {
            crate::http::date::parse_lenient(expires)
                .and_then(|at| at.duration_since(date).ok())
                .unwrap_or(Duration::ZERO)
        })
    };
    let explicit = d
        .s_maxage
        .or(d.max_age)
        .map(Duration::from_secs)
        .or_else(|| if cdn.is_some() { None } else { expires() });
    let heuristic_status = HEURISTICALLY_CACHEABLE.contains(&status);
    if explicit.is_none() && !d.public && !heuristic_status {
        return Storable::No;
    }
    let heuristic = || {
        if !site.default_ttl.is_zero() {
            return site.default_ttl;
        }
        meta.last_modified
            .and_then(|modified| date.duration_since(modified).ok())
            .map(|since| (since / 10).min(MAX_HEURISTIC))
            .unwrap_or(Duration::ZERO)
    };
    let ttl = if d.no_cache {
        Duration::ZERO
    } else {
        explicit
            .unwrap_or_else(heuristic)
            .clamp(site.min_ttl, site.max_ttl.max(site.min_ttl))
    };
    let no_stale = d.must_revalidate || d.proxy_revalidate || d.s_maxage.is_some() || d.no_cache;
    let seconds = |s: Option<u64>, default: Duration| s.map(Duration::from_secs).unwrap_or(default);
    Storable::Yes(Freshness {
        ttl,
        stale_while_revalidate: if no_stale {
            Duration::ZERO
        } else {
            seconds(d.stale_while_revalidate, site.stale_while_revalidate)
        },
        stale_if_error: if no_stale {
            Duration::ZERO
        } else {
            seconds(d.stale_if_error, site.stale_if_error)
        },
    })
}

/// `CDN-Cache-Control` (RFC 9213): a structured-field dictionary whose
/// directives, when it parses and holds any, replace `Cache-Control`'s; a
/// field that does not parse, or whose known directives have values of the
/// wrong type, is ignored whole.
fn cdn_directives(meta: &ObjectMeta) -> Option<Directives> {
    let value = meta
        .headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("cdn-cache-control"))
        .map(|(_, v)| v.as_str())
        .collect::<Vec<_>>()
        .join(",");
    if value.trim().is_empty() {
        return None;
    }
    for member in value.split(',') {
        let member = member.trim();
        let item = member.split(';').next().unwrap_or("").trim();
        let (key, bare) = match item.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (item, None),
        };
        let key_ok = key
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b == b'*')
            && key
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_-.*".contains(&b));
        if !key_ok {
            return None;
        }
        let takes_seconds = matches!(
            key,
            "max-age" | "s-maxage" | "stale-while-revalidate" | "stale-if-error"
        );
        match bare {
            Some(v)
                if takes_seconds && (v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit())) =>
            {
                return None
            }
            Some(v) if !takes_seconds && !is_bare_item(v) => return None,
            _ => {}
        }
    }
    let d = parse_directives(&value);
    (d != Directives::default()).then_some(d)
}

/// A structured-field bare item (RFC 8941 3.3): an integer or decimal, a
/// string, a token, a byte sequence, a boolean.
fn is_bare_item(v: &str) -> bool {
    let b = v.as_bytes();
    match b.first() {
        None => false,
        Some(b'"') => v.len() >= 2 && v.ends_with('"'),
        Some(b':') => v.len() >= 2 && v.ends_with(':'),
        Some(b'?') => v == "?0" || v == "?1",
        Some(c) if c.is_ascii_digit() || *c == b'-' => {
            v[1..].bytes().all(|c| c.is_ascii_digit() || c == b'.')
        }
        Some(c) if c.is_ascii_alphabetic() || *c == b'*' => v
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~:/".contains(&c)),
        _ => false,
    }
}

/// The fields a `private="..."` or `no-cache="..."` directive names: a
/// shared cache stores the answer without them (RFC 9111 sections 5.2.2.4
/// and 5.2.2.7).
pub fn qualified_fields(cache_control: Option<&str>) -> Vec<String> {
    let Some(value) = cache_control else {
        return Vec::new();
    };
    let mut fields = Vec::new();
    let mut rest = value;
    while let Some(at) = rest.find('=') {
        let name = rest[..at]
            .rsplit(',')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        let after = &rest[at + 1..];
        let (arg, tail) = match after.strip_prefix('"') {
            Some(quoted) => match quoted.split_once('"') {
                Some((arg, tail)) => (arg, tail),
                None => (quoted, ""),
            },
            None => after.split_once(',').unwrap_or((after, "")),
        };
        if name == "private" || name == "no-cache" {
            fields.extend(
                arg.split(',')
                    .map(|f| f.trim().to_ascii_lowercase())
                    .filter(|f| !f.is_empty()),
            );
        }
        rest = tail;
    }
    fields
}

/// `meta` as a shared cache may keep and give others: without `Set-Cookie`
/// (one visitor's session; an answer that sets a cookie is stored only when
/// `no-cache` or `private` names the field, and then without it) and
/// without the fields a qualified `no-cache="..."` or `private="..."` names
/// (RFC 9111 sections 5.2.2.4 and 5.2.2.7). Every entry is stored so (the
/// 200's, a 304's merged fields, a part's, a combined whole), and requests
/// waiting on a fill get it so.
pub fn shareable_meta(meta: &mut ObjectMeta) {
    // A bucket's answers carry no such fields: nothing to parse or copy.
    if meta.headers.is_empty() {
        return;
    }
    let unstored = qualified_fields(meta.cache_control.as_deref());
    meta.headers.retain(|(name, _)| {
        !name.eq_ignore_ascii_case("set-cookie")
            && !unstored.iter().any(|u| u.eq_ignore_ascii_case(name))
    });
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

/// Whether a 304 selects `stored` for update (RFC 9111 section 4.3.4): when
/// it names an ETag, the stored response must have that one (compared
/// strongly when the 304's is strong, weakly when it is weak). A 304 that
/// names none selects the response it answers. An origin that answers 304
/// because `If-Modified-Since` matched while its ETag has changed does not
/// confirm the stored body.
pub fn not_modified_selects(stored: &ObjectMeta, not_modified: &ObjectMeta) -> bool {
    let Some(new) = not_modified.etag.as_deref() else {
        return true;
    };
    let Some(old) = stored.etag.as_deref() else {
        return false;
    };
    new == old
        || if new.trim_start().starts_with("W/") {
            crate::http::conditional::weak_eq(new, old)
        } else {
            crate::http::conditional::strong_eq(new, old)
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
    // An HTTP origin's 304 updates every field it carries but the length.
    if not_modified.status == Some(304) {
        update(&mut merged.content_type, &not_modified.content_type);
        update(&mut merged.content_encoding, &not_modified.content_encoding);
        update(&mut merged.content_language, &not_modified.content_language);
        update(
            &mut merged.content_disposition,
            &not_modified.content_disposition,
        );
        for (name, _) in &not_modified.headers {
            merged
                .headers
                .retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        }
        merged.headers.extend(not_modified.headers.iter().cloned());
        // Each 304 may bring names of its own: the newest MAX_FIELDS stay.
        let excess = merged.headers.len().saturating_sub(MAX_FIELDS);
        merged.headers.drain(..excess);
        merged.age = not_modified.age;
    }
    merged
}

/// When an answer received at `now` was first stored upstream: `now` less
/// the age it arrived with (`ObjectMeta::age`, RFC 9111 section 4.2.3), so its
/// age here goes on from the parent's and a child never keeps an object
/// longer than its parent could; `now` for an answer from the bucket.
pub fn stored_at(meta: &ObjectMeta, now: SystemTime) -> SystemTime {
    // Never before 1970 (the disk tier cannot write it): an `Age` may claim
    // anything.
    let upstream = Duration::from_secs(meta.age.unwrap_or(0));
    let since_epoch = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    SystemTime::UNIX_EPOCH + since_epoch.saturating_sub(upstream)
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
    /// Sums saturate: a header read back from a cache file may hold any
    /// lifetime, and what the network sends is capped long before.
    pub fn state(&self, age: Duration) -> State {
        if age < self.ttl {
            State::Fresh
        } else if age < self.ttl.saturating_add(self.stale_while_revalidate) {
            State::StaleWhileRevalidate
        } else {
            State::Stale {
                within_stale_if_error: age < self.ttl.saturating_add(self.stale_if_error),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 304s that each bring new field names leave the stored answer with at
    /// most MAX_FIELDS of them, the newest.
    #[test]
    fn revalidations_never_grow_the_stored_fields_past_the_bound() {
        let mut stored = ObjectMeta {
            headers: vec![("x-first".into(), "1".into())],
            from_http_origin: true,
            ..ObjectMeta::default()
        };
        for round in 0..300 {
            let not_modified = ObjectMeta {
                status: Some(304),
                headers: (0..97)
                    .map(|i| (format!("x-{round}-{i}"), "v".into()))
                    .collect(),
                ..ObjectMeta::default()
            };
            stored = merge_not_modified(&stored, &not_modified);
            assert!(stored.headers.len() <= MAX_FIELDS, "round {round}");
        }
        assert_eq!(stored.headers.len(), MAX_FIELDS);
        assert_eq!(stored.headers.last().unwrap().0, "x-299-96");
        assert!(!stored.headers.iter().any(|(n, _)| n == "x-first"));
    }

    /// A lifetime read back from a cache file may be anything: the sums
    /// saturate instead of panicking.
    #[test]
    fn any_lifetime_gives_a_state() {
        let f = Freshness {
            ttl: Duration::from_secs(1),
            stale_while_revalidate: Duration::MAX,
            stale_if_error: Duration::MAX,
        };
        assert_eq!(f.state(Duration::ZERO), State::Fresh);
        assert_eq!(f.state(Duration::from_secs(2)), State::StaleWhileRevalidate);
        assert_eq!(
            f.state(Duration::MAX),
            State::Stale {
                within_stale_if_error: false
            }
        );
    }

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
        // `s-maxage` (proxy-revalidate for a shared cache) and `no-cache`
        // forbid every stale answer, within stale-if-error too, as
        // `must-revalidate` does (RFC 9111 sections 4.2.4, 5.2.2.10).
        for cc in [
            "max-age=1000, s-maxage=10",
            "no-cache",
            "max-age=10, proxy-revalidate",
        ] {
            let Storable::Yes(f) = storable(&meta(Some(cc), None), &site(), now) else {
                panic!("{cc}")
            };
            assert_eq!(
                (f.stale_while_revalidate, f.stale_if_error),
                (Duration::ZERO, Duration::ZERO),
                "{cc}"
            );
        }
    }

    #[test]
    fn a_directive_given_twice_counts_at_its_first_occurrence() {
        let now = SystemTime::UNIX_EPOCH;
        for (cc, want) in [
            ("max-age=20, max-age=600", Some(20)),
            ("max-age=600, max-age=20", Some(600)),
            ("s-maxage=50, max-age=9, s-maxage=700", Some(50)),
        ] {
            assert_eq!(
                ttl(storable(&meta(Some(cc), None), &site(), now)),
                want,
                "{cc}"
            );
        }
    }

    fn http(status: u16, headers: &[(&str, &str)]) -> ObjectMeta {
        let mut meta = ObjectMeta {
            status: (status != 200).then_some(status),
            from_http_origin: true,
            ..ObjectMeta::default()
        };
        for (name, value) in headers {
            match *name {
                "cache-control" => meta.cache_control = Some(value.to_string()),
                "expires" => meta.expires = Some(value.to_string()),
                "date" => meta.date = Some(value.to_string()),
                _ => meta.headers.push((name.to_string(), value.to_string())),
            }
        }
        meta
    }

    fn http_ttl(meta: &ObjectMeta, authorization: bool) -> Option<u64> {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
        ttl(http_storable(
            meta,
            &CacheConfig::http_defaults(),
            authorization,
            now,
        ))
    }

    #[test]
    fn an_http_origin_s_answers_are_stored_only_as_rfc_9111_allows() {
        let date = "Sun, 09 Sep 2001 01:46:40 GMT"; // the `now` above
        type Case<'a> = (&'a str, u16, &'a [(&'a str, &'a str)], bool, Option<u64>);
        let cases: &[Case] = &[
            (
                "max-age",
                200,
                &[("cache-control", "max-age=60")],
                false,
                Some(60),
            ),
            (
                "s-maxage first",
                200,
                &[("cache-control", "max-age=1, s-maxage=60")],
                false,
                Some(60),
            ),
            (
                "Expires minus Date",
                200,
                &[("date", date), ("expires", "Sun, 09 Sep 2001 01:47:40 GMT")],
                false,
                Some(60),
            ),
            (
                "no freshness, 200: stored, never fresh",
                200,
                &[],
                false,
                Some(0),
            ),
            ("no freshness, 302: not stored", 302, &[], false, None),
            (
                "an unknown status with max-age",
                599,
                &[("cache-control", "max-age=60")],
                false,
                Some(60),
            ),
            (
                "must-understand, unknown status",
                599,
                &[("cache-control", "max-age=60, no-store, must-understand")],
                false,
                None,
            ),
            (
                "must-understand, known status, beats no-store",
                200,
                &[("cache-control", "max-age=60, no-store, must-understand")],
                false,
                Some(60),
            ),
            (
                "no-store",
                200,
                &[("cache-control", "max-age=60, no-store")],
                false,
                None,
            ),
            (
                "private",
                200,
                &[("cache-control", "max-age=60, private")],
                false,
                None,
            ),
            (
                "private with fields is stored",
                200,
                &[("cache-control", "max-age=60, private=\"x-a\"")],
                false,
                Some(60),
            ),
            (
                "Vary: * on a later line",
                200,
                &[("cache-control", "max-age=60"), ("vary", ""), ("vary", "*")],
                false,
                None,
            ),
            (
                "Authorization without permission",
                200,
                &[("cache-control", "max-age=60")],
                true,
                None,
            ),
            (
                "Authorization with public",
                200,
                &[("cache-control", "public, max-age=60")],
                true,
                Some(60),
            ),
            (
                "Authorization with must-revalidate",
                200,
                &[("cache-control", "max-age=60, must-revalidate")],
                true,
                Some(60),
            ),
            (
                "Authorization with proxy-revalidate only",
                200,
                &[("cache-control", "max-age=60, proxy-revalidate")],
                true,
                None,
            ),
            (
                "a cookie set: not stored",
                200,
                &[
                    ("cache-control", "public, max-age=60"),
                    ("set-cookie", "sid=1"),
                ],
                false,
                None,
            ),
            (
                "a cookie set, named not to store: stored without it",
                200,
                &[
                    ("cache-control", "max-age=60, no-cache=\"Set-Cookie\""),
                    ("set-cookie", "sid=1"),
                ],
                false,
                Some(60),
            ),
            (
                "CDN-Cache-Control wins",
                200,
                &[
                    ("cache-control", "no-store"),
                    ("cdn-cache-control", "max-age=30"),
                ],
                false,
                Some(30),
            ),
            (
                "invalid CDN-Cache-Control is ignored",
                200,
                &[
                    ("cache-control", "no-store"),
                    ("cdn-cache-control", "max-age=\"30\""),
                ],
                false,
                None,
            ),
            (
                "CDN-Cache-Control that does not parse",
                200,
                &[
                    ("cache-control", "max-age=5"),
                    ("cdn-cache-control", "max-age=30, &&&"),
                ],
                false,
                Some(5),
            ),
            (
                "no-cache: stored, revalidated",
                200,
                &[("cache-control", "max-age=60, no-cache")],
                false,
                Some(0),
            ),
            (
                "a huge max-age is 2^31",
                200,
                &[("cache-control", "max-age=99999999999999999999")],
                false,
                Some(1 << 31),
            ),
        ];
        for (name, status, headers, authorization, expected) in cases {
            assert_eq!(
                http_ttl(&http(*status, headers), *authorization),
                *expected,
                "{name}"
            );
        }
    }

    #[test]
    fn qualified_private_and_no_cache_name_fields_not_to_store() {
        assert_eq!(
            qualified_fields(Some("max-age=5, private=\"X-A, x-b\", no-cache=x-c")),
            vec!["x-a", "x-b", "x-c"]
        );
        assert!(qualified_fields(Some("max-age=5, private")).is_empty());
    }
}
