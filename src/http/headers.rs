//! Response headers from object metadata (pipeline stage 9, docs/ARCHITECTURE.md).
//!
//! Only the representation headers of RFC 9110 section 8 and the caching headers of
//! RFC 9111 are copied from the object; `x-amz-*` headers and user metadata never
//! are. A value that cannot be a header value (control characters, CR, LF) is
//! dropped, never sent.

use actix_web::http::header::{self, HeaderMap, HeaderName, HeaderValue};

use crate::config::HeaderRule;
use crate::origin::ObjectMeta;

/// Sets a header from text, dropping values with characters a header may not hold.
pub fn set_checked(headers: &mut HeaderMap, name: HeaderName, value: &str) {
    if let Ok(value) = HeaderValue::from_str(value) {
        headers.insert(name, value);
    }
}

/// The fields describing an object's representation: Content-Type (already
/// decided, and a header value: `None` when the type could not be one, and
/// is left out), ETag, Last-Modified, Cache-Control, Expires,
/// Content-Encoding, Content-Language, Content-Disposition, Accept-Ranges.
/// A name may come more than once (an HTTP origin's repeated fields): a
/// header map gets each value appended ([`header_map`]).
pub fn representation_fields(
    meta: &ObjectMeta,
    content_type: Option<HeaderValue>,
) -> Vec<(HeaderName, HeaderValue)> {
    let mut fields = Vec::with_capacity(8);
    if let Some(content_type) = content_type {
        fields.push((header::CONTENT_TYPE, content_type));
    }
    let copied = [
        (header::ETAG, meta.etag.as_deref()),
        (header::CACHE_CONTROL, meta.cache_control.as_deref()),
        (header::EXPIRES, meta.expires.as_deref()),
        (header::CONTENT_ENCODING, meta.content_encoding.as_deref()),
        (header::CONTENT_LANGUAGE, meta.content_language.as_deref()),
        (
            header::CONTENT_DISPOSITION,
            meta.content_disposition.as_deref(),
        ),
    ];
    for (name, value) in copied {
        // A value with characters a header may not hold is dropped.
        if let Some(Ok(value)) = value.filter(|v| !v.is_empty()).map(HeaderValue::from_str) {
            fields.push((name, value));
        }
    }
    if meta.is_from_http_origin() {
        // An HTTP origin's answer keeps its own fields as sent: its
        // `Last-Modified` is among them, and its `Date` (RFC 9110 6.6.1).
        if let Some(Ok(date)) = meta.date.as_deref().map(HeaderValue::from_str) {
            fields.push((header::DATE, date));
        }
        for (name, value) in meta.headers.iter().take(crate::origin::MAX_FIELDS) {
            if let (Ok(name), Ok(value)) = (
                header::HeaderName::from_bytes(name.as_bytes()),
                HeaderValue::from_str(value),
            ) {
                fields.push((name, value));
            }
        }
        // The edge answers ranges itself, whatever the origin said.
        fields.retain(|(name, _)| *name != header::ACCEPT_RANGES);
    } else if let Some(modified) = meta.last_modified {
        fields.push((header::LAST_MODIFIED, http_date(modified)));
    }
    fields.push((header::ACCEPT_RANGES, HeaderValue::from_static("bytes")));
    fields
}

/// A header map of `fields` (each value appended), with room for `more`.
pub fn header_map(
    fields: impl IntoIterator<Item = (HeaderName, HeaderValue)>,
    more: usize,
) -> HeaderMap {
    let fields = fields.into_iter();
    let mut map = HeaderMap::with_capacity(fields.size_hint().0 + more);
    for (name, value) in fields {
        map.append(name, value);
    }
    map
}

/// An IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`) as a header value, written
/// straight into the value's buffer.
fn http_date(time: std::time::SystemTime) -> HeaderValue {
    use std::io::Write as _;
    let mut text = [0u8; 29];
    let mut cursor = &mut text[..];
    let _ = write!(
        cursor,
        "{}",
        httpdate::HttpDate::from(crate::http::date::clamp(time))
    );
    let written = 29 - cursor.len();
    HeaderValue::from_bytes(&text[..written])
        .unwrap_or_else(|_| HeaderValue::from_static("Thu, 01 Jan 1970 00:00:00 GMT"))
}

/// Adds a field name to `Vary`, keeping the names already there.
pub fn add_vary(headers: &mut HeaderMap, name: &'static str) {
    add_vary_name(headers, name);
}

/// [`add_vary`] for any name (or `*`).
fn add_vary_name(headers: &mut HeaderMap, name: &str) {
    // Every Vary line counts (an origin may send several: RFC 9110 5.3
    // makes them one list); the result is one line holding them all.
    let mut lines = headers.get_all(header::VARY).peekable();
    if lines.peek().is_none() {
        set_checked(headers, header::VARY, name);
        return;
    }
    let existing: Vec<&str> = lines
        .filter_map(|line| line.to_str().ok())
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .collect();
    let known = existing
        .iter()
        .flat_map(|line| line.split(','))
        .any(|n| n.trim().eq_ignore_ascii_case(name));
    if known && existing.len() == 1 {
        return;
    }
    let mut value = existing.join(", ");
    if !known {
        if !value.is_empty() {
            value.push_str(", ");
        }
        value.push_str(name);
    }
    set_checked(headers, header::VARY, &value);
}

/// Applies the site's `[headers]`: set each, or remove it when its value is
/// empty. A `Vary` adds its names to those already there (s3edge's own,
/// `Accept-Encoding` and `Origin`, must stay: a cache downstream would hand
/// one client's coding or CORS answer to another), as nginx's `add_header
/// Vary` goes beside `gzip_vary`.
pub fn apply_site_headers(headers: &mut HeaderMap, rules: &[HeaderRule]) {
    for rule in rules {
        match &rule.value {
            Some(value) if rule.name == header::VARY => {
                let names = value.to_str().unwrap_or("");
                for name in names.split(',').map(str::trim).filter(|n| !n.is_empty()) {
                    add_vary_name(headers, name);
                }
            }
            Some(value) => {
                headers.insert(rule.name.clone(), value.clone());
            }
            None => {
                headers.remove(&rule.name);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A site's `Vary` adds its names to s3edge's own; other fields are set
    /// or removed.
    #[test]
    fn a_site_s_vary_adds_to_the_names_s3edge_sets() {
        use crate::config::HeaderRule;
        let rule = |name: &'static str, value: &'static str| HeaderRule {
            name: HeaderName::from_static(name),
            value: (!value.is_empty()).then(|| HeaderValue::from_static(value)),
        };
        let mut headers = HeaderMap::new();
        add_vary(&mut headers, "Accept-Encoding");
        add_vary(&mut headers, "Origin");
        headers.insert(header::SERVER, HeaderValue::from_static("s3edge"));
        let rules = [
            rule("vary", "Cookie, accept-encoding"),
            rule("x-frame-options", "DENY"),
            rule("server", ""),
        ];
        apply_site_headers(&mut headers, &rules);
        assert_eq!(
            headers.get(header::VARY).unwrap(),
            "Accept-Encoding, Origin, Cookie"
        );
        assert_eq!(headers.get("x-frame-options").unwrap(), "DENY");
        assert!(!headers.contains_key(header::SERVER));
        // An origin's Vary lines all stay, joined.
        let mut several = HeaderMap::new();
        several.append(header::VARY, HeaderValue::from_static("Accept-Language"));
        several.append(header::VARY, HeaderValue::from_static("Cookie"));
        apply_site_headers(&mut several, &[rule("vary", "X-Site")]);
        add_vary(&mut several, "Accept-Encoding");
        let lines: Vec<_> = several.get_all(header::VARY).collect();
        assert_eq!(lines, ["Accept-Language, Cookie, X-Site, Accept-Encoding"]);
        // Alone, it is the whole Vary.
        let mut alone = HeaderMap::new();
        apply_site_headers(&mut alone, &rules[..1]);
        assert_eq!(alone.get(header::VARY).unwrap(), "Cookie, accept-encoding");
    }

    /// The representation fields of `meta` with the type `content_type`, as
    /// a response's header map.
    fn representation_headers(meta: &ObjectMeta, content_type: &str) -> HeaderMap {
        header_map(
            representation_fields(meta, HeaderValue::from_str(content_type).ok()),
            0,
        )
    }

    /// However many fields a stored answer holds (a cache file may hold any
    /// number), a client gets at most MAX_FIELDS of them: HTTP/2's header
    /// map panics past 32,768.
    #[test]
    fn a_client_gets_at_most_the_bounded_number_of_an_origin_s_fields() {
        let meta = ObjectMeta {
            from_http_origin: true,
            headers: (0..40_000)
                .map(|i| (format!("x-{i}"), "v".into()))
                .collect(),
            ..ObjectMeta::default()
        };
        let h = representation_headers(&meta, "text/plain");
        let extra = h.keys().filter(|n| n.as_str().starts_with("x-")).count();
        assert_eq!(extra, crate::origin::MAX_FIELDS);
    }

    /// An HTTP origin's repeated field keeps every value; its own
    /// `Accept-Ranges` gives way to the edge's (which answers ranges itself).
    #[test]
    fn an_origin_s_repeated_fields_stay_and_its_accept_ranges_gives_way() {
        let meta = ObjectMeta {
            from_http_origin: true,
            headers: vec![
                ("accept-ranges".into(), "none".into()),
                ("x-a".into(), "1".into()),
                ("x-a".into(), "2".into()),
            ],
            ..ObjectMeta::default()
        };
        let h = representation_headers(&meta, "text/plain");
        let values =
            |name: &str| -> Vec<&str> { h.get_all(name).map(|v| v.to_str().unwrap()).collect() };
        assert_eq!(values("x-a"), ["1", "2"]);
        assert_eq!(values("accept-ranges"), ["bytes"]);
        assert_eq!(values("content-type"), ["text/plain"]);
    }

    #[test]
    fn object_metadata_becomes_representation_headers() {
        let meta = ObjectMeta {
            etag: Some("\"abc\"".into()),
            cache_control: Some("max-age=60".into()),
            last_modified: Some(
                std::time::UNIX_EPOCH + std::time::Duration::from_secs(784_111_777),
            ),
            content_language: Some("en".into()),
            ..ObjectMeta::default()
        };
        let h = representation_headers(&meta, "text/html; charset=utf-8");
        assert_eq!(h.get(header::ETAG).unwrap(), "\"abc\"");
        assert_eq!(h.get(header::CACHE_CONTROL).unwrap(), "max-age=60");
        assert_eq!(
            h.get(header::LAST_MODIFIED).unwrap(),
            "Sun, 06 Nov 1994 08:49:37 GMT"
        );
        assert_eq!(h.get(header::CONTENT_LANGUAGE).unwrap(), "en");
        assert_eq!(h.get(header::ACCEPT_RANGES).unwrap(), "bytes");
        assert!(h.get(header::EXPIRES).is_none());
    }

    #[test]
    fn vary_gains_each_name_once() {
        let mut h = HeaderMap::new();
        add_vary(&mut h, "Accept-Encoding");
        assert_eq!(h.get(header::VARY).unwrap(), "Accept-Encoding");
        add_vary(&mut h, "accept-encoding");
        assert_eq!(h.get(header::VARY).unwrap(), "Accept-Encoding");
        add_vary(&mut h, "Origin");
        assert_eq!(h.get(header::VARY).unwrap(), "Accept-Encoding, Origin");
        let mut empty = HeaderMap::new();
        empty.insert(header::VARY, HeaderValue::from_static(" "));
        add_vary(&mut empty, "Origin");
        assert_eq!(empty.get(header::VARY).unwrap(), "Origin");
    }

    #[test]
    fn dates_far_and_near_format_as_imf_fixdate() {
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(253_402_300_799);
        assert_eq!(http_date(t), "Fri, 31 Dec 9999 23:59:59 GMT");
        assert_eq!(
            http_date(std::time::UNIX_EPOCH),
            "Thu, 01 Jan 1970 00:00:00 GMT"
        );
    }

    #[test]
    fn metadata_with_line_breaks_never_becomes_a_header() {
        let meta = ObjectMeta {
            cache_control: Some("max-age=60\r\nSet-Cookie: evil=1".into()),
            content_disposition: Some("attachment;\nfilename=x".into()),
            ..ObjectMeta::default()
        };
        let h = representation_headers(&meta, "text/plain");
        assert!(h.get(header::CACHE_CONTROL).is_none());
        assert!(h.get(header::CONTENT_DISPOSITION).is_none());
    }

    #[test]
    fn site_headers_set_and_remove() {
        let mut h = HeaderMap::new();
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("max-age=1"));
        let rules = vec![
            HeaderRule {
                name: HeaderName::from_static("x-frame-options"),
                value: Some(HeaderValue::from_static("DENY")),
            },
            HeaderRule {
                name: header::CACHE_CONTROL,
                value: None,
            },
        ];
        apply_site_headers(&mut h, &rules);
        assert_eq!(h.get("x-frame-options").unwrap(), "DENY");
        assert!(h.get(header::CACHE_CONTROL).is_none());
    }
}
