//! The Content-Type a client sees (DESIGN.md pipeline step 8).

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

fn essence(content_type: &str) -> &str {
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
    // Types browsers need right that mime_guess lists differently or not at all.
    let special = [
        ("js", "text/javascript"),
        ("mjs", "text/javascript"),
        ("wasm", "application/wasm"),
        ("webmanifest", "application/manifest+json"),
        ("map", "application/json"),
    ];
    if let Some((_, t)) = special.iter().find(|(e, _)| ext.eq_ignore_ascii_case(e)) {
        return Some(t);
    }
    mime_guess::from_ext(ext).first_raw()
}

#[cfg(test)]
mod tests {
    use super::*;

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
