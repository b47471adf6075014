//! Content codings the edge can produce (`[compression]`).

use std::fmt;

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
