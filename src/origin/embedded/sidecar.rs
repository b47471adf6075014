//! Files the store keeps next to the buckets, never inside them.
//!
//! - s3s-fs 0.14.1 (pinned with `=`, vendored with a patch) keeps each object's
//!   attributes in `<root>/.bucket-{b64(bucket)}.object-{b64(key)}.metadata.json` and its
//!   ETag and checksums in `…​.internal.json` (base64url without padding). A name that
//!   would pass the file system's 255 bytes (a key of about 165 bytes or more) names the
//!   key by its SHA-256 instead: `.bucket-{b64(bucket)}.key-sha256-{hex}.….json`
//!   (`s3s_fs::object_sidecar_name`, vendor/README.md). The store reads and tidies them
//!   where s3s-fs leaves them stale.
//! - The store's own per-bucket configurations live in `<root>/.s3edge-{kind}.{bucket}.json`.
//!   Bucket names cannot start with a dot, so none of these files is ever a bucket, and
//!   s3s-fs lists only directories as buckets.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use md5::{Digest, Md5};
use serde::de::DeserializeOwned;
use serde::Serialize;

/// A per-bucket configuration the store keeps itself (s3s-fs has none).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BucketConfigKind {
    /// `PutBucketWebsite` / `GetBucketWebsite` / `DeleteBucketWebsite`.
    Website,
    /// `PutBucketCors` / `GetBucketCors` / `DeleteBucketCors`.
    Cors,
}

impl BucketConfigKind {
    /// Every kind, to remove them all with their bucket.
    pub(crate) const ALL: [Self; 2] = [Self::Website, Self::Cors];

    fn as_str(self) -> &'static str {
        match self {
            Self::Website => "website",
            Self::Cors => "cors",
        }
    }
}

/// The internal-file field recording the size and modification time an ETag
/// was computed from (only for files put in the directory by hand).
const HASHED_FOR: &str = "s3edge_hashed_for";

/// Paths and small file operations under the store's root directory.
#[derive(Debug)]
pub(crate) struct Sidecars {
    root: PathBuf,
    tmp_counter: AtomicU64,
}

impl Sidecars {
    pub(crate) fn new(root: PathBuf) -> Self {
        Self {
            root,
            tmp_counter: AtomicU64::new(0),
        }
    }

    pub(crate) fn bucket_dir(&self, bucket: &str) -> PathBuf {
        self.root.join(bucket)
    }

    fn config_path(&self, kind: BucketConfigKind, bucket: &str) -> PathBuf {
        self.root
            .join(format!(".s3edge-{}.{bucket}.json", kind.as_str()))
    }

    /// The name is s3s-fs's own (vendored with a patch: names that would pass the
    /// file system's 255 bytes name the key by its SHA-256), so both find the same file.
    fn object_sidecar(&self, bucket: &str, key: &str, suffix: &str) -> PathBuf {
        self.root.join(s3s_fs::object_sidecar_name(
            bucket,
            key,
            &format!(".{suffix}.json"),
        ))
    }

    /// s3s-fs's attributes file (Content-Type, Cache-Control, user metadata, …).
    pub(crate) fn metadata_path(&self, bucket: &str, key: &str) -> PathBuf {
        self.object_sidecar(bucket, key, "metadata")
    }

    /// s3s-fs's internal file (ETag, checksums).
    pub(crate) fn internal_path(&self, bucket: &str, key: &str) -> PathBuf {
        self.object_sidecar(bucket, key, "internal")
    }

    /// Removes both sidecars of a deleted object.
    pub(crate) async fn remove_object_sidecars(&self, bucket: &str, key: &str) -> io::Result<()> {
        remove_if_exists(&self.metadata_path(bucket, key)).await?;
        remove_if_exists(&self.internal_path(bucket, key)).await
    }

    /// The ETag s3s-fs stored for the object, if any.
    pub(crate) async fn stored_etag(&self, bucket: &str, key: &str) -> io::Result<Option<String>> {
        let info: Option<serde_json::Map<String, serde_json::Value>> =
            read_json(&self.internal_path(bucket, key)).await?;
        Ok(info.and_then(|map| map.get("e_tag").and_then(|v| v.as_str()).map(str::to_owned)))
    }

    /// Gives a file that was put in its bucket's directory by hand (not through
    /// PutObject, so s3s-fs has no ETag for it) a stored ETag: its MD5, computed
    /// once and again only when the file's size or modification time changes.
    /// Without it s3s-fs hashes the whole file on every GET and HEAD (seconds
    /// for a large file). ETags stored by PutObject are left as they are.
    pub(crate) async fn remember_etag(
        &self,
        bucket: &str,
        key: &str,
        file: &std::fs::Metadata,
    ) -> io::Result<String> {
        let path = self.internal_path(bucket, key);
        let modified = file
            .modified()?
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        let stamp = serde_json::Value::String(format!("{}:{modified}", file.len()));
        let info: Option<serde_json::Map<String, serde_json::Value>> = read_json(&path).await?;
        if let Some(map) = &info {
            let hashed_for = map.get(HASHED_FOR);
            if let Some(etag) = map.get("e_tag").and_then(|v| v.as_str()) {
                if hashed_for.is_none_or(|v| *v == stamp) {
                    return Ok(etag.to_owned());
                }
            }
        }
        let etag = md5_hex(&self.bucket_dir(bucket).join(key)).await?;
        let mut map = serde_json::Map::new();
        map.insert("e_tag".to_owned(), serde_json::Value::String(etag.clone()));
        map.insert(HASHED_FOR.to_owned(), stamp);
        self.write_json(&path, &map).await?;
        Ok(etag)
    }

    /// Replaces the internal file with one holding only `etag` (drops stale checksums).
    pub(crate) async fn reset_internal(
        &self,
        bucket: &str,
        key: &str,
        etag: &str,
    ) -> io::Result<()> {
        let mut map = serde_json::Map::new();
        map.insert(
            "e_tag".to_owned(),
            serde_json::Value::String(etag.to_owned()),
        );
        self.write_json(&self.internal_path(bucket, key), &map)
            .await
    }

    pub(crate) async fn load_config<T: DeserializeOwned>(
        &self,
        kind: BucketConfigKind,
        bucket: &str,
    ) -> io::Result<Option<T>> {
        read_json(&self.config_path(kind, bucket)).await
    }

    pub(crate) async fn save_config<T: Serialize>(
        &self,
        kind: BucketConfigKind,
        bucket: &str,
        value: &T,
    ) -> io::Result<()> {
        self.write_json(&self.config_path(kind, bucket), value)
            .await
    }

    pub(crate) async fn delete_config(
        &self,
        kind: BucketConfigKind,
        bucket: &str,
    ) -> io::Result<()> {
        remove_if_exists(&self.config_path(kind, bucket)).await
    }

    /// Writes JSON to a temporary file beside `path`, then renames it over `path`.
    async fn write_json<T: Serialize>(&self, path: &Path, value: &T) -> io::Result<()> {
        let bytes = serde_json::to_vec_pretty(value).map_err(io::Error::other)?;
        let n = self.tmp_counter.fetch_add(1, Ordering::Relaxed);
        let tmp = self
            .root
            .join(format!(".s3edge-tmp.{}.{n}", std::process::id()));
        tokio::fs::write(&tmp, bytes).await?;
        if let Err(e) = tokio::fs::rename(&tmp, path).await {
            let _ = tokio::fs::remove_file(&tmp).await;
            return Err(e);
        }
        Ok(())
    }
}

async fn read_json<T: DeserializeOwned>(path: &Path) -> io::Result<Option<T>> {
    match tokio::fs::read(path).await {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(io::Error::other),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

async fn remove_if_exists(path: &Path) -> io::Result<()> {
    match tokio::fs::remove_file(path).await {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// The longest name of a file or directory (`NAME_MAX` of ext4, XFS, btrfs, APFS: bytes).
const SEGMENT_MAX: usize = 255;

/// Whether the store can keep a key as the file `<bucket>/<key>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyFit {
    /// The key is the path of a file inside its bucket's directory, and no other key's.
    Storable,
    /// A leading `/`, a `.` or `..` segment, or a NUL byte would resolve elsewhere
    /// (another bucket, the store's own files, or outside the root).
    LeavesBucket,
    /// An empty segment (`a//b`): the file system reads it as `a/b`, so the key would
    /// be another key's file (S3 keeps them apart). A trailing `/` (a folder marker)
    /// is not one.
    EmptySegment,
    /// A segment longer than a file name may be ([`SEGMENT_MAX`] bytes).
    SegmentTooLong,
}

/// Where `key` stands; see [`KeyFit`].
pub(crate) fn key_fit(key: &str) -> KeyFit {
    let segments = key.strip_suffix('/').unwrap_or(key).split('/');
    if key.starts_with('/') || key.contains('\0') || key.split('/').any(|s| s == "." || s == "..") {
        KeyFit::LeavesBucket
    } else if segments.clone().any(str::is_empty) {
        KeyFit::EmptySegment
    } else if segments.clone().any(|s| s.len() > SEGMENT_MAX) {
        KeyFit::SegmentTooLong
    } else {
        KeyFit::Storable
    }
}

/// Whether the store reads and writes `key`: any other key is never found, and
/// never written (it would be another file, or none).
pub(crate) fn storable_key(key: &str) -> bool {
    key_fit(key) == KeyFit::Storable
}

/// MD5 hex of a file: the ETag of a single-part object whose internal file is missing.
pub(crate) async fn md5_hex(path: &Path) -> io::Result<String> {
    // One blocking task with large reads: a large file is hashed at disk speed,
    // not at the pace of one thread-pool round trip per small read.
    let path = path.to_path_buf();
    tokio::task::spawn_blocking(move || {
        use std::io::Read;
        let mut file = std::fs::File::open(&path)?;
        let mut hasher = Md5::new();
        let mut buf = vec![0; 1 << 20];
        loop {
            let n = file.read(&mut buf)?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
        }
        Ok(hasher
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect())
    })
    .await
    .map_err(io::Error::other)?
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::{key_fit, storable_key, KeyFit, Sidecars};

    #[test]
    fn keys_that_would_leave_their_bucket_directory_are_not_storable() {
        for key in [
            "index.html",
            "a/b/c.css",
            "folder/",
            "..a/b..",
            ".well-known/x",
            "a b+c",
        ] {
            assert!(storable_key(key), "{key}");
        }
        for key in [
            "../other/x",
            "a/../b",
            "./a",
            "a/.",
            "/etc/passwd",
            "a/..",
            "nul\0byte",
        ] {
            assert!(!storable_key(key), "{key}");
        }
    }

    #[test]
    fn keys_with_an_empty_or_overlong_segment_are_not_storable() {
        let long = "x".repeat(256);
        let longest = &long[1..];
        let (in_folder, as_folder) = (format!("blog/{long}"), format!("{long}/index.html"));
        let deep = format!("{longest}/{longest}/{longest}");
        let cases = [
            ("a//b", KeyFit::EmptySegment),
            ("dir//", KeyFit::EmptySegment),
            ("a/b//", KeyFit::EmptySegment),
            (in_folder.as_str(), KeyFit::SegmentTooLong),
            (as_folder.as_str(), KeyFit::SegmentTooLong),
            (longest, KeyFit::Storable),
            (deep.as_str(), KeyFit::Storable),
            ("dir/", KeyFit::Storable),
            ("/a//b", KeyFit::LeavesBucket),
        ];
        for (key, fit) in cases {
            assert_eq!(key_fit(key), fit, "{key}");
        }
    }

    /// The base64url part of an object's sidecar name that stands for `s`, as a key.
    fn b64url(s: &str) -> String {
        let files = Sidecars::new(PathBuf::from("/root"));
        let name = files.internal_path("b", s);
        let name = name
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        let rest = name.strip_prefix(".bucket-Yg.object-").unwrap_or_default();
        rest.strip_suffix(".internal.json")
            .unwrap_or_default()
            .to_owned()
    }

    #[test]
    fn object_sidecar_names_use_unpadded_base64url_like_s3s_fs() {
        assert_eq!(b64url("demo"), "ZGVtbw");
        assert_eq!(b64url("a?>b"), "YT8-Yg");
        assert_eq!(b64url("??~"), "Pz9-");
        assert_eq!(b64url("???"), "Pz8_");
    }

    #[test]
    fn sidecar_names_too_long_for_a_file_name_name_the_key_by_its_sha256() {
        let files = Sidecars::new(PathBuf::from("/root"));
        let name = |key: &str| {
            let path = files.metadata_path("blog", key);
            path.file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default()
                .to_owned()
        };
        // 164 bytes of key: 219 base64 characters, a name of 255 bytes.
        let longest_plain = name(&"k".repeat(164));
        assert_eq!(longest_plain.len(), 255);
        assert!(longest_plain.starts_with(".bucket-YmxvZw.object-a2tr"));
        // The SHA-256 of 165 'k's: `printf 'k%.0s' $(seq 165) | sha256sum`.
        assert_eq!(
            name(&"k".repeat(165)),
            ".bucket-YmxvZw.key-sha256-e489c1c3a7566fcd46cce21a1287dcd8d829a60f485dcedd19e0195e78228086.metadata.json"
        );
        let longest_key = name(&"k".repeat(1024));
        assert!(longest_key.len() <= 255, "{longest_key}");
        assert_ne!(name(&"k".repeat(1024)), name(&"k".repeat(1023)));
    }
}
