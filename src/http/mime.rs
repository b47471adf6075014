//! The Content-Type a client sees (DESIGN.md pipeline step 8).

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
    let stored = stored.map(str::trim).filter(|t| !t.is_empty());
    let essence = stored
        .map(|t| {
            t.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .unwrap_or_default();
    let base = match stored {
        Some(t) if !UNSPECIFIED_TYPES.contains(&essence.as_str()) => t.to_string(),
        _ => guess(key)
            .map(str::to_string)
            .or_else(|| stored.map(str::to_string))
            .unwrap_or_else(|| DEFAULT_CONTENT_TYPE.to_string()),
    };
    with_charset(base)
}

/// Guesses a type from the key's extension.
fn guess(key: &str) -> Option<&'static str> {
    let name = key.rsplit('/').next().unwrap_or(key);
    let (_, ext) = name.rsplit_once('.')?;
    // Types browsers need right that mime_guess lists differently or not at all.
    match ext.to_ascii_lowercase().as_str() {
        "js" | "mjs" => return Some("text/javascript"),
        "wasm" => return Some("application/wasm"),
        "webmanifest" => return Some("application/manifest+json"),
        "map" => return Some("application/json"),
        _ => {}
    }
    mime_guess::from_ext(ext).first_raw()
}

/// Adds `; charset=utf-8` to textual types that name no charset.
fn with_charset(content_type: String) -> String {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let textual = essence.starts_with("text/")
        || essence == "application/javascript"
        || essence == "application/json"
        || essence == "application/manifest+json";
    if textual && !content_type.to_ascii_lowercase().contains("charset=") {
        format!("{content_type}; charset=utf-8")
    } else {
        content_type
    }
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
        ];
        for (name, stored, key, want) in cases {
            assert_eq!(content_type(*stored, key), *want, "{name}");
        }
    }
}
