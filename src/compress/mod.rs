//! Compression (pipeline stage 8 and `[compression]`, README "Compression").
//!
//! 1. [`compressible`] (the one check: the site's settings, [`forbids_transform`],
//!    [`is_compressible`], the coding and size window): is the representation
//!    worth encoding, and may the edge transform it at all?
//! 2. [`negotiate`]: which coding does the client accept (RFC 9110 section
//!    12.5.3), among the site's `compression.algorithms`?
//! 3. [`encode`] / [`encode_sized`]: the encoded variant, streamed chunk by
//!    chunk, to be cached under [`variant_etag`].
//!
//! All pure functions except the encoders.

mod compressible;
mod encode;
mod negotiate;

use std::fmt;

pub use compressible::{
    compressible, forbids_transform, is_compressible, Representation, COMPRESSIBLE_TYPES,
    NEVER_COMPRESSED_TYPES,
};
pub use encode::{
    encode, encode_one_answer, encode_sized, encode_stream, EncodeError, Level, BROTLI_QUALITY,
    BROTLI_QUALITY_UNSTORED, BROTLI_WINDOW, FLUSH_AFTER, GZIP_LEVEL,
};
pub use negotiate::{negotiate, Negotiated};

/// A content coding (RFC 9110 section 8.4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ContentCoding {
    Brotli,
    Gzip,
}

impl ContentCoding {
    /// The token used in `Accept-Encoding`, `Content-Encoding` and site files.
    pub fn as_str(self) -> &'static str {
        match self {
            ContentCoding::Brotli => "br",
            ContentCoding::Gzip => "gzip",
        }
    }

    pub fn parse(token: &str) -> Option<ContentCoding> {
        match token {
            "br" => Some(ContentCoding::Brotli),
            "gzip" => Some(ContentCoding::Gzip),
            _ => None,
        }
    }
}

impl fmt::Display for ContentCoding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The ETag of an encoded variant, distinct from the identity representation's
/// (README "Compression"; RFC 9110 section 8.8.3 requires different entity tags
/// for representations that differ), and weak: `"abc"` gives `W/"abc-br"`
/// or `W/"abc-gzip"`. A strong tag promises the same bytes, and a variant
/// compressed as it streams differs in its bytes from one fill (or node) to
/// the next, its flushes following the origin's chunks; CloudFront and
/// nginx weaken a compressed answer's ETag likewise. `If-None-Match`
/// compares weakly, so revalidation is unchanged.
///
/// The result is always a valid `entity-tag`: a missing quote is supplied, and
/// characters an `etagc` may not hold (quotes, spaces, controls) are dropped.
pub fn variant_etag(etag: &str, coding: ContentCoding) -> String {
    let etag = etag.trim();
    let tag = etag.strip_prefix("W/").unwrap_or(etag);
    let tag = tag.strip_prefix('"').unwrap_or(tag);
    let tag = tag.strip_suffix('"').unwrap_or(tag);
    // etagc = %x21 / %x23-7E / obs-text
    let opaque: String = tag
        .chars()
        .filter(|&c| c == '!' || ('#'..='~').contains(&c) || !c.is_ascii())
        .collect();
    format!("W/\"{opaque}-{coding}\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variant_etags_stay_distinct_and_valid() {
        let cases = [
            (
                "a strong tag gets the coding inside its quotes, and is weakened",
                "\"abc\"",
                ContentCoding::Brotli,
                "W/\"abc-br\"",
            ),
            (
                "gzip uses its token",
                "\"abc\"",
                ContentCoding::Gzip,
                "W/\"abc-gzip\"",
            ),
            (
                "a weak tag stays weak",
                "W/\"abc\"",
                ContentCoding::Brotli,
                "W/\"abc-br\"",
            ),
            (
                "an S3 multipart tag keeps its dash",
                "\"9b2cf535f27731c974343645a3985328-3\"",
                ContentCoding::Gzip,
                "W/\"9b2cf535f27731c974343645a3985328-3-gzip\"",
            ),
            (
                "an unquoted tag gets quotes",
                "abc",
                ContentCoding::Brotli,
                "W/\"abc-br\"",
            ),
            (
                "a tag missing its closing quote is repaired",
                "\"abc",
                ContentCoding::Brotli,
                "W/\"abc-br\"",
            ),
            (
                "surrounding whitespace is dropped",
                " \"abc\" ",
                ContentCoding::Gzip,
                "W/\"abc-gzip\"",
            ),
            (
                "inner quotes and spaces are dropped",
                "\"a\"b c\"",
                ContentCoding::Brotli,
                "W/\"abc-br\"",
            ),
            (
                "an empty tag still gives a valid tag",
                "\"\"",
                ContentCoding::Brotli,
                "W/\"-br\"",
            ),
        ];
        for (name, etag, coding, want) in cases {
            assert_eq!(variant_etag(etag, coding), want, "{name}");
        }
    }

    #[test]
    fn codings_keep_their_tokens() {
        for coding in [ContentCoding::Brotli, ContentCoding::Gzip] {
            assert_eq!(ContentCoding::parse(coding.as_str()), Some(coding));
            assert_eq!(coding.to_string(), coding.as_str());
        }
        assert_eq!(ContentCoding::parse("zstd"), None);
    }
}
