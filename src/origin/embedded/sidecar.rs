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

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use md5::{Digest, Md5};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::watch;

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

/// How a hash in flight ended: the ETag, or why there is none.
type Hashed = Result<String, Arc<io::Error>>;

/// A hash in flight: `None` until it ends.
type Hashing = watch::Receiver<Option<Hashed>>;

/// What a hash is for: the object's internal file, and the file's stamp.
type HashFor = (PathBuf, String);

/// Paths and small file operations under the store's root directory.
#[derive(Debug)]
pub(crate) struct Sidecars {
    root: PathBuf,
    tmp_counter: AtomicU64,
    /// The hashes in flight, by internal file and stamp; each entry lives as
    /// long as its task.
    hashing: Mutex<HashMap<HashFor, Hashing>>,
    /// ETags computed but not recorded (the root is read-only to this process),
    /// by internal file: `(stamp, ETag)`, so a file is hashed once per change.
    unrecorded: Mutex<HashMap<PathBuf, (String, String)>>,
    /// When a failed record was last logged.
    warned: crate::throttle::Throttle,
    /// Files hashed so far (tests count them).
    #[cfg(test)]
    hashes: AtomicU64,
}

/// Removes its hash from the map in flight when its task ends, however it ends.
struct InFlight {
    files: Arc<Sidecars>,
    id: HashFor,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut hashing = self
            .files
            .hashing
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        hashing.remove(&self.id);
    }
}

impl Sidecars {
    pub(crate) fn new(root: PathBuf) -> Self {
        Self {
            root,
            tmp_counter: AtomicU64::new(0),
            hashing: Mutex::new(HashMap::new()),
            unrecorded: Mutex::new(HashMap::new()),
            warned: crate::throttle::Throttle::new(),
            #[cfg(test)]
            hashes: AtomicU64::new(0),
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
    ///
    /// The hash runs in a task of its own, shared by every request for the same
    /// file and stamp: a request that gives up (the edge's timeout drops it)
    /// leaves the hash running, and a later request finds its ETag stored.
    pub(crate) async fn remember_etag(
        self: &Arc<Self>,
        bucket: &str,
        key: &str,
        file: &std::fs::Metadata,
    ) -> io::Result<String> {
        let path = self.internal_path(bucket, key);
        let stamp = hashed_for(file)?;
        // In memory (a directory this process cannot write) before the file.
        if let Some(etag) = self.unrecorded_etag(&path, &stamp) {
            return Ok(etag);
        }
        if let Some(etag) = recorded_etag(&path, &stamp, changed_at(file)).await? {
            return Ok(etag);
        }
        let mut done = self.hash_in_flight(self.bucket_dir(bucket).join(key), path, stamp);
        let outcome = done
            .wait_for(Option::is_some)
            .await
            .ok()
            .and_then(|outcome| outcome.clone());
        match outcome {
            Some(Ok(etag)) => Ok(etag),
            Some(Err(e)) => Err(io::Error::new(e.kind(), e.to_string())),
            None => Err(io::Error::other(
                "the hash of the object stopped unfinished",
            )),
        }
    }

    /// The hash of `object` for `stamp` in flight, started if there is none.
    fn hash_in_flight(
        self: &Arc<Self>,
        object: PathBuf,
        internal: PathBuf,
        stamp: String,
    ) -> Hashing {
        let mut hashing = self.hashing.lock().unwrap_or_else(PoisonError::into_inner);
        let id = (internal, stamp);
        if let Some(done) = hashing.get(&id) {
            return done.clone();
        }
        let (tx, rx) = watch::channel(None);
        hashing.insert(id.clone(), rx.clone());
        // Spawned with the map locked, so the entry is in it before the task can
        // remove it; the guard removes it however the task ends.
        let in_flight = InFlight {
            files: Arc::clone(self),
            id,
        };
        tokio::spawn(async move {
            let (internal, stamp) = &in_flight.id;
            let outcome = in_flight
                .files
                .hash_and_record(&object, internal, stamp)
                .await;
            tx.send_replace(Some(outcome.map_err(Arc::new)));
            drop(in_flight);
        });
        rx
    }

    /// The ETag computed for `stamp` that could not be recorded, if any.
    fn unrecorded_etag(&self, internal: &Path, stamp: &str) -> Option<String> {
        let unrecorded = self
            .unrecorded
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        match unrecorded.get(internal) {
            Some((hashed_for, etag)) if hashed_for == stamp => Some(etag.clone()),
            _ => None,
        }
    }

    /// Hashes `object` and records its ETag for `stamp`, unless the file changed
    /// meanwhile: the hash may be of neither version, so it is an error (500)
    /// and the next request hashes the file as it is then.
    ///
    /// A record that cannot be written (a bucket directory shipped read-only,
    /// as in a container image or a mounted volume) costs speed, not the
    /// answer: the ETag is kept in memory and a warning says why, at most once
    /// a minute. s3s-fs, finding no record, hashes the file itself on each read.
    async fn hash_and_record(
        &self,
        object: &Path,
        internal: &Path,
        stamp: &str,
    ) -> io::Result<String> {
        // A hash that ended between the caller's look and this task's start.
        let changed = changed_at(&tokio::fs::metadata(object).await?);
        if let Some(etag) = recorded_etag(internal, stamp, changed).await? {
            return Ok(etag);
        }
        #[cfg(test)]
        self.hashes.fetch_add(1, Ordering::Relaxed);
        let etag = md5_hex(object).await?;
        if hashed_for(&tokio::fs::metadata(object).await?)? != stamp {
            return Err(io::Error::other(
                "the file changed while it was being hashed",
            ));
        }
        let mut map = serde_json::Map::new();
        map.insert("e_tag".to_owned(), serde_json::Value::String(etag.clone()));
        map.insert(
            HASHED_FOR.to_owned(),
            serde_json::Value::String(stamp.to_owned()),
        );
        if let Err(e) = self.write_json(internal, &map).await {
            self.warn_unrecorded(object, &e);
            let mut unrecorded = self
                .unrecorded
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            unrecorded.insert(internal.to_path_buf(), (stamp.to_owned(), etag.clone()));
        }
        Ok(etag)
    }

    fn warn_unrecorded(&self, object: &Path, e: &io::Error) {
        if self.warned.ready(std::time::Duration::from_secs(60)) {
            tracing::warn!(
                "embedded store: cannot record the ETag of {} in {} ({e}); every read \
                 of a file put there by hand hashes it whole: let this process write \
                 that directory",
                object.display(),
                self.root.display()
            );
        }
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

/// The stamp of an ETag computed from a file: its size, modification time,
/// inode and change time. Size and modification time alone did not tell
/// apart two versions written within one tick of the file system's clock
/// (a few ms) and renamed into place one after the other, as a deploy's
/// copy does: the second was sent with the first's ETag.
fn hashed_for(file: &std::fs::Metadata) -> io::Result<String> {
    use std::os::unix::fs::MetadataExt;
    let modified = file
        .modified()?
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    Ok(format!(
        "{}:{modified}:{}:{}.{}",
        file.len(),
        file.ino(),
        file.ctime(),
        file.ctime_nsec()
    ))
}

/// The ETag the internal file holds for a file of `stamp` last changed at
/// `changed` (its ctime, seconds and nanoseconds): one computed from the
/// file as it is now, or one stored by a write through S3 (PutObject, a
/// copy, a multipart upload: no stamp) that the file has not changed since.
/// Such a record was trusted whatever became of the file, so a file
/// replaced by hand after an upload (rsync, `mv`, `cp` over it) kept the
/// upload's ETag for ever, and a cache revalidating it got 304s and served
/// the old body. A rename or a write sets the file's ctime, whatever its
/// mtime: a record older than that is not the file's.
async fn recorded_etag(
    internal: &Path,
    stamp: &str,
    changed: (i64, i64),
) -> io::Result<Option<String>> {
    use std::os::unix::fs::MetadataExt;
    let info: Option<serde_json::Map<String, serde_json::Value>> = read_json(internal).await?;
    let Some(map) = info else {
        return Ok(None);
    };
    let current = match map.get(HASHED_FOR) {
        Some(hashed_for) => hashed_for.as_str() == Some(stamp),
        None => match tokio::fs::metadata(internal).await {
            Ok(record) => (record.mtime(), record.mtime_nsec()) >= changed,
            Err(e) if e.kind() == io::ErrorKind::NotFound => false,
            Err(e) => return Err(e),
        },
    };
    let etag = map.get("e_tag").and_then(|v| v.as_str());
    Ok(etag.filter(|_| current).map(str::to_owned))
}

/// A file's change time, as [`recorded_etag`] compares it.
fn changed_at(file: &std::fs::Metadata) -> (i64, i64) {
    use std::os::unix::fs::MetadataExt;
    (file.ctime(), file.ctime_nsec())
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
    use std::sync::atomic::Ordering;
    use std::sync::{Arc, PoisonError};
    use std::time::{Duration, Instant};

    use md5::{Digest, Md5};

    use super::{changed_at, hashed_for, key_fit, recorded_etag, storable_key, KeyFit, Sidecars};

    /// A store root holding the bucket `b` with `body` as its object `key`,
    /// written there by hand (no internal file).
    fn by_hand(key: &str, body: &[u8]) -> (tempfile::TempDir, Arc<Sidecars>) {
        let root = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(root.path().join("b")).expect("bucket");
        std::fs::write(root.path().join("b").join(key), body).expect("object");
        let files = Arc::new(Sidecars::new(root.path().to_path_buf()));
        (root, files)
    }

    fn md5_of(body: &[u8]) -> String {
        Md5::digest(body)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// [`by_hand`] with the object `big.bin`, whose MD5 takes a while (64 MiB:
    /// tens of milliseconds or more); also its metadata and its MD5.
    fn large_by_hand() -> (tempfile::TempDir, Arc<Sidecars>, std::fs::Metadata, String) {
        let body = (0..=250u8).collect::<Vec<u8>>().repeat((64 << 20) / 251);
        let (root, files) = by_hand("big.bin", &body);
        let file = std::fs::metadata(root.path().join("b/big.bin")).expect("stat");
        (root, files, file, md5_of(&body))
    }

    fn in_flight(files: &Sidecars) -> usize {
        files
            .hashing
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Waits (up to 30 s) until no hash is in flight.
    async fn settled(files: &Sidecars) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while in_flight(files) > 0 {
            assert!(Instant::now() < deadline, "a hash is still in flight");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_first_requests_for_a_file_share_one_hash() {
        let (_root, files, file, expected) = large_by_hand();
        let requests: Vec<_> = (0..8)
            .map(|_| {
                let (files, file) = (Arc::clone(&files), file.clone());
                tokio::spawn(async move { files.remember_etag("b", "big.bin", &file).await })
            })
            .collect();
        for request in requests {
            let etag = request.await.expect("request task").expect("etag");
            assert_eq!(etag, expected);
        }
        assert_eq!(files.hashes.load(Ordering::Relaxed), 1);
        settled(&files).await;
        // Stored: the next request hashes nothing.
        let etag = files.remember_etag("b", "big.bin", &file).await;
        assert_eq!(etag.expect("etag"), expected);
        assert_eq!(files.hashes.load(Ordering::Relaxed), 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_hash_whose_request_gave_up_is_finished_and_stored() {
        let (_root, files, file, expected) = large_by_hand();
        let mut request = Box::pin(files.remember_etag("b", "big.bin", &file));
        // The request gives up once its hash has started.
        while in_flight(&files) == 0 {
            let early = tokio::time::timeout(Duration::from_millis(1), request.as_mut()).await;
            assert!(early.is_err(), "the hash ended before its request gave up");
        }
        drop(request);
        settled(&files).await;
        let stamp = hashed_for(&file).expect("stamp");
        let stored = recorded_etag(
            &files.internal_path("b", "big.bin"),
            &stamp,
            changed_at(&file),
        )
        .await;
        assert_eq!(stored.expect("read"), Some(expected.clone()));
        let etag = files.remember_etag("b", "big.bin", &file).await;
        assert_eq!(etag.expect("etag"), expected);
        assert_eq!(files.hashes.load(Ordering::Relaxed), 1);
    }

    /// A record written by an upload (no stamp) is trusted while the file
    /// has not changed since it: no hash. Once the file is replaced by hand,
    /// the file is hashed.
    #[tokio::test]
    async fn an_upload_s_record_holds_until_the_file_changes_after_it() {
        let (root, files) = by_hand("up.txt", b"uploaded");
        let object = root.path().join("b/up.txt");
        let internal = files.internal_path("b", "up.txt");
        std::fs::create_dir_all(internal.parent().unwrap()).expect("dir");
        std::thread::sleep(Duration::from_millis(20));
        std::fs::write(&internal, br#"{"e_tag":"as-uploaded"}"#).expect("record");
        let file = std::fs::metadata(&object).expect("stat");
        let etag = files.remember_etag("b", "up.txt", &file).await;
        assert_eq!(etag.expect("etag"), "as-uploaded");
        assert_eq!(files.hashes.load(Ordering::Relaxed), 0, "not hashed");
        std::thread::sleep(Duration::from_millis(20));
        let aside = root.path().join("b/.up.txt.new");
        std::fs::write(&aside, b"by hand").expect("write");
        std::fs::rename(&aside, &object).expect("rename");
        let file = std::fs::metadata(&object).expect("stat");
        let etag = files.remember_etag("b", "up.txt", &file).await;
        assert_eq!(etag.expect("etag"), md5_of(b"by hand"));
    }

    /// Two versions of one size and one modification time (written within
    /// one tick of the clock), the second renamed over the first: each is
    /// hashed for itself, never given the other's ETag.
    #[tokio::test]
    async fn a_version_renamed_in_within_one_clock_tick_gets_its_own_etag() {
        let (root, files) = by_hand("page.html", b"version A");
        let object = root.path().join("b/page.html");
        let when = std::time::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let set = |path: &std::path::Path| {
            let file = std::fs::File::options()
                .write(true)
                .open(path)
                .expect("open");
            file.set_modified(when).expect("set mtime");
        };
        set(&object);
        let first = std::fs::metadata(&object).expect("stat");
        let etag = files.remember_etag("b", "page.html", &first).await;
        assert_eq!(etag.expect("etag"), md5_of(b"version A"));
        let aside = root.path().join("b/.page.html.new");
        std::fs::write(&aside, b"version B").expect("write");
        set(&aside);
        std::fs::rename(&aside, &object).expect("rename");
        let second = std::fs::metadata(&object).expect("stat");
        assert_eq!(
            (second.len(), second.modified().unwrap()),
            (first.len(), first.modified().unwrap())
        );
        let etag = files.remember_etag("b", "page.html", &second).await;
        assert_eq!(etag.expect("etag"), md5_of(b"version B"));
    }

    #[tokio::test]
    async fn a_file_changed_since_it_was_looked_at_records_no_etag() {
        let (root, files) = by_hand("page.html", b"old");
        let object = root.path().join("b/page.html");
        let looked_at = std::fs::metadata(&object).expect("stat");
        let later = looked_at.modified().expect("mtime") + Duration::from_secs(5);
        let changed = std::fs::File::options().write(true).open(&object);
        let changed = changed.expect("open");
        std::io::Write::write_all(&mut &changed, b"new").expect("write");
        changed.set_modified(later).expect("set mtime");
        let stale = files.remember_etag("b", "page.html", &looked_at).await;
        assert!(stale.is_err(), "{stale:?}");
        settled(&files).await;
        let internal = files.internal_path("b", "page.html");
        assert!(!internal.exists(), "an ETag was recorded");
        let now = std::fs::metadata(&object).expect("stat");
        let etag = files.remember_etag("b", "page.html", &now).await;
        assert_eq!(etag.expect("etag"), md5_of(b"new"));
    }

    #[tokio::test]
    async fn an_etag_that_cannot_be_recorded_is_still_given_and_hashed_once() {
        let (root, files) = by_hand("page.html", b"hello");
        // Directories where the record's temporary files would go: writing
        // them fails for every user, root included (a read-only store root,
        // as the container image ships, fails the same call for its non-root
        // user).
        for n in 0..8 {
            let tmp = format!(".s3edge-tmp.{}.{n}", std::process::id());
            std::fs::create_dir(root.path().join(tmp)).expect("directory in the way");
        }
        let file = std::fs::metadata(root.path().join("b/page.html")).expect("stat");
        for _ in 0..3 {
            let etag = files.remember_etag("b", "page.html", &file).await;
            assert_eq!(etag.expect("etag"), md5_of(b"hello"));
            settled(&files).await;
        }
        assert_eq!(files.hashes.load(Ordering::Relaxed), 1);
        assert!(!files.internal_path("b", "page.html").exists());
    }

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
