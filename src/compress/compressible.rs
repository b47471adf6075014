//! Which representations are worth compressing (pipeline stage 8, README "Compression").
//!
//! Text-like media types compress to a fraction of their size; formats that are
//! already compressed (PNG, JPEG, WebP, AVIF, WOFF/WOFF2, video, audio, ZIP,
//! gzip, ...) only grow and cost CPU, so they are never on the list.

use std::borrow::Cow;

use crate::config::CompressionConfig;

/// Media types worth compressing. An entry is an exact `type/subtype`,
/// `type/*` (any subtype), or `type/*+suffix` (any subtype with that
/// structured syntax suffix, RFC 6838 section 4.2.8).
pub const COMPRESSIBLE_TYPES: &[&str] = &[
    // HTML, CSS, plain text, CSV, Markdown, `text/javascript`, ...
    "text/*",
    "application/javascript",
    // Legacy names for JavaScript that buckets still carry.
    "application/x-javascript",
    "application/ecmascript",
    "application/json",
    "application/manifest+json",
    "application/*+json",
    "application/xml",
    "application/*+xml",
    "image/svg+xml",
    "application/wasm",
    // TrueType/OpenType are uncompressed containers; WOFF and WOFF2 are not.
    "font/ttf",
    "font/otf",
    "font/collection",
    "application/vnd.ms-fontobject",
    // Their names before RFC 8081, which buckets carry and the extension
    // guess gives (`.otf` is `application/font-sfnt` in mime_guess).
    "application/font-sfnt",
    "application/x-font-ttf",
    "application/x-font-truetype",
    "application/x-font-otf",
    "application/x-font-opentype",
    // Uncompressed bitmaps (favicons are usually BMP inside ICO).
    "image/x-icon",
    "image/vnd.microsoft.icon",
    "image/bmp",
];

/// Exceptions to [`COMPRESSIBLE_TYPES`]: `text/event-stream` must reach the
/// client event by event, which a compressor's buffering would break.
pub const NEVER_COMPRESSED_TYPES: &[&str] = &["text/event-stream"];

/// Whether a `Content-Type` field value names a compressible media type.
/// Parameters (`; charset=utf-8`) are ignored; the comparison is
/// case-insensitive (RFC 9110 section 8.3.1).
pub fn is_compressible(content_type: &str) -> bool {
    // Runs for every response of a site that compresses: the list's entries
    // are compared in place, byte for byte, against the essence in lower
    // case (which allocates only when the type has capitals).
    let essence = content_type.split(';').next().unwrap_or("").trim();
    let essence: Cow<'_, str> = if essence.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(essence.to_ascii_lowercase())
    } else {
        Cow::Borrowed(essence)
    };
    let Some((kind, subtype)) = essence.split_once('/') else {
        return false;
    };
    if kind.is_empty() || subtype.is_empty() {
        return false;
    }
    let listed = |list: &[&str]| list.iter().any(|pattern| matches(pattern, kind, subtype));
    listed(COMPRESSIBLE_TYPES) && !listed(NEVER_COMPRESSED_TYPES)
}

/// Whether one list entry (`text/*`, `application/*+json`, `font/ttf`; in
/// lower case) matches `kind/subtype` (in lower case).
fn matches(pattern: &str, kind: &str, subtype: &str) -> bool {
    let Some(pattern_subtype) = pattern
        .strip_prefix(kind)
        .and_then(|rest| rest.strip_prefix('/'))
    else {
        return false;
    };
    match pattern_subtype.strip_prefix('*') {
        Some("") => true,
        Some(suffix) => subtype.len() > suffix.len() && subtype.ends_with(suffix),
        None => pattern_subtype == subtype,
    }
}

/// The coding and length half of whether the edge should compress a
/// representation (the type half is [`is_compressible`]): it carries no
/// content coding yet (`Content-Encoding` absent, empty or `identity`; an
/// object stored as `gzip` is never encoded twice), and its length lies
/// within `[min, max]` (`compression.min_size` and `compression.max_size`;
/// below `min` the coding overhead eats the gain).
fn uncoded_within(content_encoding: Option<&str>, length: u64, min: u64, max: u64) -> bool {
    let encoded = content_encoding.is_some_and(|value| {
        let value = value.trim();
        !value.is_empty() && !value.eq_ignore_ascii_case("identity")
    });
    !encoded && (min..=max).contains(&length)
}

/// A representation as [`compressible`] sees it: whether its media type (as
/// served, after any guess from the key) is worth compressing
/// ([`is_compressible`]), its coding, caching directives and length.
#[derive(Debug, Clone, Copy)]
pub struct Representation<'a> {
    pub compressible_type: bool,
    pub content_encoding: Option<&'a str>,
    pub cache_control: Option<&'a str>,
    pub length: u64,
}

/// The one "is this compressible" check (DESIGN.md pipeline step 7): the site
/// compresses (`compression.enabled` with at least one algorithm), the type
/// is worth it ([`is_compressible`], decided once per cache entry), the
/// object allows transformation (no `no-transform`), and it has no coding yet
/// and a length within the site's window. Answers for a compressible
/// representation vary by `Accept-Encoding`.
pub fn compressible(config: &CompressionConfig, representation: &Representation<'_>) -> bool {
    config.enabled
        && !config.algorithms.is_empty()
        && representation.compressible_type
        && !forbids_transform(representation.cache_control)
        && uncoded_within(
            representation.content_encoding,
            representation.length,
            config.min_size,
            config.max_size,
        )
}

/// Whether a `Cache-Control` field value (of the object or of the request)
/// carries `no-transform`: then an intermediary MUST NOT transform the content
/// (RFC 9111 section 5.2.2.6 and 5.2.1.6, RFC 9110 section 7.7), and a content
/// coding applied by the edge is such a transformation.
pub fn forbids_transform(cache_control: Option<&str>) -> bool {
    cache_control.is_some_and(|value| {
        value.split(',').any(|directive| {
            let name = directive.split('=').next().unwrap_or("").trim();
            name.eq_ignore_ascii_case("no-transform")
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_and_structured_text_types_are_compressible() {
        let cases = [
            "text/html",
            "text/html; charset=utf-8",
            "text/css",
            "text/plain",
            "text/csv",
            "text/javascript",
            "text/markdown; charset=UTF-8",
            "TEXT/HTML",
            "  text/xml  ",
            "application/javascript",
            "application/javascript; charset=utf-8",
            "application/x-javascript",
            "application/json",
            "Application/JSON",
            "Application/LD+JSON; charset=UTF-8",
            "IMAGE/SVG+XML",
            "application/ld+json",
            "application/geo+json",
            "application/manifest+json",
            "application/xml",
            "application/rss+xml",
            "application/atom+xml",
            "application/xhtml+xml",
            "image/svg+xml",
            "application/wasm",
            "font/ttf",
            "font/otf",
            "font/collection",
            "application/vnd.ms-fontobject",
            "application/font-sfnt",
            "application/x-font-ttf",
            "application/x-font-opentype",
            "image/x-icon",
        ];
        for content_type in cases {
            assert!(is_compressible(content_type), "{content_type}");
        }
    }

    #[test]
    fn already_compressed_and_streaming_types_are_not_compressible() {
        let cases = [
            "text/event-stream",
            "text/event-stream; charset=utf-8",
            "Text/Event-Stream",
            "font/woff",
            "font/woff2",
            "image/png",
            "image/jpeg",
            "image/gif",
            "image/webp",
            "image/avif",
            "video/mp4",
            "audio/mpeg",
            "application/zip",
            "application/gzip",
            "application/x-gzip",
            "application/zstd",
            "application/pdf",
            "application/octet-stream",
            "binary/octet-stream",
            "application/+json",
            "application/json-seq-but-not-json",
            "text",
            "text/",
            "/html",
            "",
            "*/*",
        ];
        for content_type in cases {
            assert!(!is_compressible(content_type), "{content_type}");
        }
    }

    #[test]
    fn should_compress_checks_type_coding_and_size_window() {
        let (min, max) = (1000, 10 * 1024 * 1024);
        let should_compress = |content_type: &str, encoding: Option<&str>, length, min, max| {
            is_compressible(content_type) && uncoded_within(encoding, length, min, max)
        };
        let cases: &[(&str, &str, Option<&str>, u64, bool)] = &[
            (
                "a mid-sized HTML page is compressed",
                "text/html",
                None,
                5000,
                true,
            ),
            (
                "the lower bound is inclusive",
                "text/html",
                None,
                1000,
                true,
            ),
            ("the upper bound is inclusive", "text/html", None, max, true),
            (
                "a body below min_size is not compressed",
                "text/html",
                None,
                999,
                false,
            ),
            (
                "a body above max_size is not compressed",
                "text/html",
                None,
                max + 1,
                false,
            ),
            (
                "an empty body is not compressed",
                "text/html",
                None,
                0,
                false,
            ),
            (
                "an identity object is compressed",
                "text/css",
                Some("identity"),
                5000,
                true,
            ),
            (
                "identity is case-insensitive",
                "text/css",
                Some(" Identity "),
                5000,
                true,
            ),
            (
                "an empty Content-Encoding counts as none",
                "text/css",
                Some(""),
                5000,
                true,
            ),
            (
                "a gzip object is never encoded twice",
                "text/css",
                Some("gzip"),
                5000,
                false,
            ),
            (
                "a br object is never encoded twice",
                "application/json",
                Some("br"),
                5000,
                false,
            ),
            (
                "an unknown coding is left alone",
                "text/css",
                Some("zstd"),
                5000,
                false,
            ),
            ("an image is not compressed", "image/png", None, 5000, false),
        ];
        for &(name, content_type, encoding, length, want) in cases {
            assert_eq!(
                should_compress(content_type, encoding, length, min, max),
                want,
                "{name}"
            );
        }
    }

    #[test]
    fn no_transform_forbids_compression() {
        let cases: &[(Option<&str>, bool)] = &[
            (None, false),
            (Some(""), false),
            (Some("max-age=60"), false),
            (Some("no-transform"), true),
            (Some("public, No-Transform, max-age=60"), true),
            (Some("max-age=60 , no-transform"), true),
            (Some("no-transformation"), false),
            (Some("private=\"no-transform\""), false),
        ];
        for &(value, want) in cases {
            assert_eq!(forbids_transform(value), want, "{value:?}");
        }
    }

    #[test]
    fn the_one_check_combines_the_site_settings_no_transform_and_the_representation() {
        let css = Representation {
            compressible_type: is_compressible("text/css"),
            content_encoding: None,
            cache_control: Some("max-age=60"),
            length: 5_000,
        };
        let on = CompressionConfig::default();
        let cases: &[(&str, CompressionConfig, Representation<'_>, bool)] = &[
            ("a stylesheet within the window", on.clone(), css, true),
            (
                "compression turned off for the site",
                CompressionConfig {
                    enabled: false,
                    ..on.clone()
                },
                css,
                false,
            ),
            (
                "no algorithm listed",
                CompressionConfig {
                    algorithms: Vec::new(),
                    ..on.clone()
                },
                css,
                false,
            ),
            (
                "no-transform on the object",
                on.clone(),
                Representation {
                    cache_control: Some("public, no-transform"),
                    ..css
                },
                false,
            ),
            (
                "already gzip",
                on.clone(),
                Representation {
                    content_encoding: Some("gzip"),
                    ..css
                },
                false,
            ),
            (
                "identity is no coding",
                on.clone(),
                Representation {
                    content_encoding: Some("identity"),
                    ..css
                },
                true,
            ),
            (
                "below min_size",
                on.clone(),
                Representation { length: 10, ..css },
                false,
            ),
            (
                "an image",
                on.clone(),
                Representation {
                    compressible_type: is_compressible("image/png"),
                    ..css
                },
                false,
            ),
        ];
        for (name, config, representation, want) in cases {
            assert_eq!(compressible(config, representation), *want, "{name}");
        }
    }
}
