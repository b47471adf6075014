//! The Content-Type a client sees (pipeline stage 9, docs/ARCHITECTURE.md).

use actix_web::http::header::HeaderValue;

/// Content types that mean "the uploader did not say": S3's default for objects
/// uploaded without one, and the generic binary type.
const UNSPECIFIED_TYPES: &[&str] = &["binary/octet-stream", "application/octet-stream"];

/// The fallback when neither the object nor its extension says what it is.
pub const DEFAULT_CONTENT_TYPE: &str = "application/octet-stream";

/// The Content-Type for an object: the stored one, unless it is missing or one of
/// the unspecified binary types, in which case it is guessed from the key's
/// extension. `charset=utf-8` is added to `text/*` and JavaScript types that name no
/// charset.
pub fn content_type(stored: Option<&str>, key: &str) -> String {
    ContentType::of(stored, key).to_string()
}

/// A decided Content-Type, borrowed where it can be: the stored text or a
/// static one, so that the usual cases allocate nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContentType<'a> {
    Static(&'static str),
    Stored(&'a str),
    Owned(String),
}

impl<'a> ContentType<'a> {
    /// See [`content_type`].
    pub fn of(stored: Option<&'a str>, key: &str) -> ContentType<'a> {
        let stored = stored.map(str::trim).filter(|t| !t.is_empty());
        let base = match stored {
            Some(t) if !is_unspecified(t) => ContentType::Stored(t),
            _ => match (guess(key), stored) {
                (Some(guessed), _) => ContentType::Static(guessed),
                (None, Some(t)) => ContentType::Stored(t),
                (None, None) => ContentType::Static(DEFAULT_CONTENT_TYPE),
            },
        };
        base.with_charset()
    }

    pub fn as_str(&self) -> &str {
        match self {
            ContentType::Static(t) => t,
            ContentType::Stored(t) => t,
            ContentType::Owned(t) => t,
        }
    }

    /// The type without parameters (`text/html` of `text/html; charset=utf-8`).
    pub fn essence(&self) -> &str {
        essence(self.as_str())
    }

    /// As a header value; `None` when the text cannot be one.
    pub fn header_value(&self) -> Option<HeaderValue> {
        match self {
            ContentType::Static(t) => Some(HeaderValue::from_static(t)),
            ContentType::Stored(t) => HeaderValue::from_str(t).ok(),
            ContentType::Owned(t) => HeaderValue::from_str(t).ok(),
        }
    }

    /// Adds `; charset=utf-8` to textual types that name no charset.
    fn with_charset(self) -> ContentType<'a> {
        let essence = self.essence();
        let textual = starts_with_ignore_case(essence, "text/")
            || TEXTUAL_TYPES
                .iter()
                .any(|t| essence.eq_ignore_ascii_case(t));
        if !textual || contains_ignore_case(self.as_str(), "charset=") {
            return self;
        }
        match WITH_CHARSET.iter().find(|(t, _)| *t == self.as_str()) {
            Some((_, with)) => ContentType::Static(with),
            None => ContentType::Owned(format!("{}; charset=utf-8", self.as_str())),
        }
    }
}

impl std::ops::Deref for ContentType<'_> {
    type Target = str;

    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl std::fmt::Display for ContentType<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Non-`text/*` types that get a charset.
const TEXTUAL_TYPES: &[&str] = &[
    "application/javascript",
    "application/json",
    "application/manifest+json",
];

/// Common textual types with their charset, so that adding it allocates nothing.
const WITH_CHARSET: &[(&str, &str)] = &[
    ("text/html", "text/html; charset=utf-8"),
    ("text/css", "text/css; charset=utf-8"),
    ("text/javascript", "text/javascript; charset=utf-8"),
    ("text/plain", "text/plain; charset=utf-8"),
    ("text/markdown", "text/markdown; charset=utf-8"),
    ("text/csv", "text/csv; charset=utf-8"),
    ("text/xml", "text/xml; charset=utf-8"),
    (
        "application/javascript",
        "application/javascript; charset=utf-8",
    ),
    ("application/json", "application/json; charset=utf-8"),
    (
        "application/manifest+json",
        "application/manifest+json; charset=utf-8",
    ),
];

/// A media type without its parameters, trimmed.
pub fn essence(content_type: &str) -> &str {
    content_type.split(';').next().unwrap_or("").trim()
}

/// S3's default or the generic binary type: the uploader did not say.
fn is_unspecified(content_type: &str) -> bool {
    let essence = essence(content_type);
    UNSPECIFIED_TYPES
        .iter()
        .any(|t| essence.eq_ignore_ascii_case(t))
}

fn starts_with_ignore_case(text: &str, prefix: &str) -> bool {
    text.len() >= prefix.len()
        && text.as_bytes()[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes())
}

fn contains_ignore_case(text: &str, needle: &str) -> bool {
    text.as_bytes()
        .windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle.as_bytes()))
}

/// Guesses a type from the key's extension.
fn guess(key: &str) -> Option<&'static str> {
    let name = key.rsplit('/').next().unwrap_or(key);
    let (_, ext) = name.rsplit_once('.')?;
    known(ext).or_else(|| mime_guess::from_ext(ext).first_raw())
}

/// The types of the usual web extensions without mime_guess's case-insensitive
/// search (a few percent of a small hit's CPU); any other extension goes to it.
fn known(ext: &str) -> Option<&'static str> {
    let mut buffer = [0u8; 11];
    let lower = buffer.get_mut(..ext.len())?;
    lower.copy_from_slice(ext.as_bytes());
    lower.make_ascii_lowercase();
    Some(match &*lower {
        // Types browsers need right that mime_guess lists differently or not at all.
        b"js" | b"mjs" => "text/javascript",
        b"wasm" => "application/wasm",
        b"webmanifest" => "application/manifest+json",
        b"map" => "application/json",
        // The same as mime_guess (a test checks each).
        b"html" | b"htm" => "text/html",
        b"css" => "text/css",
        b"json" => "application/json",
        b"txt" => "text/plain",
        b"xml" => "text/xml",
        b"svg" => "image/svg+xml",
        b"png" => "image/png",
        b"jpg" | b"jpeg" => "image/jpeg",
        b"gif" => "image/gif",
        b"webp" => "image/webp",
        b"avif" => "image/avif",
        b"ico" => "image/x-icon",
        b"woff" => "application/font-woff",
        b"woff2" => "font/woff2",
        b"ttf" => "font/ttf",
        b"otf" => "application/font-sfnt",
        b"pdf" => "application/pdf",
        b"zip" => "application/zip",
        b"mp4" => "video/mp4",
        b"webm" => "video/webm",
        b"mp3" => "audio/mpeg",
        b"bin" => "application/octet-stream",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_extensions_agree_with_mime_guess() {
        let exts = [
            "html", "htm", "css", "json", "txt", "xml", "svg", "png", "jpg", "jpeg", "gif", "webp",
            "avif", "ico", "woff", "woff2", "ttf", "otf", "pdf", "zip", "mp4", "webm", "mp3",
            "bin",
        ];
        for ext in exts {
            assert_eq!(known(ext), mime_guess::from_ext(ext).first_raw(), "{ext}");
            let upper = ext.to_ascii_uppercase();
            assert_eq!(known(&upper), known(ext), "{upper}");
        }
        assert_eq!(known("toolongextension"), None);
        assert_eq!(known("doc"), None);
        assert_eq!(guess("a.doc"), mime_guess::from_ext("doc").first_raw());
    }

    #[test]
    fn content_types_follow_the_object_then_the_extension() {
        let cases: &[(&str, Option<&str>, &str, &str)] = &[
            (
                "a stored type is kept",
                Some("image/png"),
                "a.jpg",
                "image/png",
            ),
            (
                "S3's default is replaced by a guess",
                Some("binary/octet-stream"),
                "a.css",
                "text/css; charset=utf-8",
            ),
            (
                "the generic binary type is replaced",
                Some("application/octet-stream"),
                "a.svg",
                "image/svg+xml",
            ),
            (
                "no type at all is guessed",
                None,
                "dir/page.html",
                "text/html; charset=utf-8",
            ),
            (
                "JavaScript gets a charset",
                None,
                "app.js",
                "text/javascript; charset=utf-8",
            ),
            (
                "stored JavaScript gets a charset",
                Some("application/javascript"),
                "app",
                "application/javascript; charset=utf-8",
            ),
            (
                "a stored charset is kept",
                Some("text/plain; charset=iso-8859-1"),
                "a.txt",
                "text/plain; charset=iso-8859-1",
            ),
            (
                "an unknown extension stays binary",
                Some("binary/octet-stream"),
                "a.zzz",
                "binary/octet-stream",
            ),
            (
                "no extension and no type is binary",
                None,
                "LICENSE",
                "application/octet-stream",
            ),
            (
                "wasm is typed for streaming compilation",
                None,
                "m.wasm",
                "application/wasm",
            ),
            (
                "JSON gets a charset",
                None,
                "data.json",
                "application/json; charset=utf-8",
            ),
            (
                "the extension is case-insensitive",
                None,
                "PHOTO.JPG",
                "image/jpeg",
            ),
            (
                "a dot in a directory is not an extension",
                None,
                "v1.2/README",
                "application/octet-stream",
            ),
            (
                "a stored charset in capitals is kept",
                Some("Text/HTML; Charset=UTF-8"),
                "a.html",
                "Text/HTML; Charset=UTF-8",
            ),
            (
                "an uncommon text type gets a charset too",
                Some("text/x-custom"),
                "a",
                "text/x-custom; charset=utf-8",
            ),
            (
                "S3's default in capitals is replaced",
                Some("Binary/Octet-Stream"),
                "a.JS",
                "text/javascript; charset=utf-8",
            ),
        ];
        for (name, stored, key, want) in cases {
            assert_eq!(content_type(*stored, key), *want, "{name}");
            let decided = ContentType::of(*stored, key);
            assert_eq!(decided.header_value().unwrap(), *want, "{name}");
            assert_eq!(decided.essence(), want.split(';').next().unwrap(), "{name}");
        }
    }
}
