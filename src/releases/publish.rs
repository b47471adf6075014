//! `s3edge publish`: a folder becomes a new release.
//!
//! 1. Scan the folder: every file's key (its path with `/`), size and MD5 (the
//!    S3 ETag of a single-part upload).
//! 2. Read the pointer (the live release and its ETag) and list the live
//!    release with its ETags.
//! 3. Upload the files whose MD5 differs from the live release's ETag, copy the
//!    others inside the bucket (CopyObject), several at a time; nothing is
//!    visible yet (no request reads `releases/<new>/` before the switch).
//! 4. Write the manifest, then move the pointer with a conditional write.
//! 5. Tell each `--admin` node to switch (POST /releases/switch).

use std::collections::BTreeMap;
use std::io::{IsTerminal, Read};
use std::path::{Path, PathBuf};

use futures_util::{StreamExt, TryStreamExt};
use md5::{Digest, Md5};
use sha2::Sha256;

use super::bucket::{Pointer, ReleaseBucket, ReleaseError};
use super::notify::switch_nodes;
use super::ReleaseId;

/// Files uploaded or copied at once.
pub const UPLOAD_CONCURRENCY: usize = 16;

/// One file of the folder being published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalFile {
    /// The key inside the release: the path from the folder, with `/`.
    pub key: String,
    pub path: PathBuf,
    pub size: u64,
    pub md5: [u8; 16],
}

impl LocalFile {
    pub fn md5_hex(&self) -> String {
        self.md5.iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// Whether the new release goes live when its files are in place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// Move the pointer and switch the nodes (the default).
    Activate,
    /// `--no-activate`: upload only (see it on a preview host).
    UploadOnly,
}

/// What `publish` was asked to do.
pub struct PublishRequest {
    pub folder: PathBuf,
    pub release: Option<ReleaseId>,
    pub activation: Activation,
    pub admins: Vec<String>,
    /// `--include-hidden`: publish hidden files too (see [`is_hidden`]).
    pub include_hidden: bool,
}

/// What a publish did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishReport {
    pub id: ReleaseId,
    pub previous: Option<String>,
    pub uploaded: usize,
    pub copied: usize,
    /// Files of the previous release that the new one does not have.
    pub deleted: usize,
    /// Hidden files and folders of the folder, left out (see [`is_hidden`]).
    pub hidden: Vec<String>,
    pub bytes_uploaded: u64,
    pub activation: Activation,
    /// Nodes given with `--admin` that did not switch (the pointer has moved:
    /// they switch within `check_every`).
    pub nodes_failed: Vec<String>,
}

/// What a scan found: the files to publish, in key order, and the hidden
/// paths left out.
#[derive(Debug, Default)]
pub struct Scan {
    pub files: Vec<LocalFile>,
    /// Hidden files and folders left out (see [`is_hidden`]), as keys; a
    /// folder counts once.
    pub hidden: Vec<String>,
}

/// Whether a file or folder name is left out of a release unless
/// `--include-hidden` is given: a name starting with `.` (`.git`, `.env`,
/// `.DS_Store`), but for `.well-known` (RFC 8615: security.txt, app links),
/// as Netlify's deploys do; and macOS archive debris (`__MACOSX`).
pub fn is_hidden(name: &str) -> bool {
    (name.starts_with('.') && name != ".well-known") || name == "__MACOSX"
}

/// Reads every file under `folder`, in key order, with its MD5; hidden ones
/// (see [`is_hidden`]) only with `include_hidden`. Symbolic links are
/// followed (as `aws s3 sync` does), but for a link to a folder above it,
/// which would never end.
pub fn scan(folder: &Path, include_hidden: bool) -> Result<Scan, ReleaseError> {
    let meta = std::fs::metadata(folder).map_err(|e| {
        ReleaseError::Usage(format!(
            "cannot publish `{}`: {e}; give the folder holding the site's files",
            folder.display()
        ))
    })?;
    if !meta.is_dir() {
        return Err(ReleaseError::Usage(format!(
            "cannot publish `{}`: not a folder; give the folder holding the site's files",
            folder.display()
        )));
    }
    let local = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ReleaseError::Local { path, source }
    };
    let key_of = |path: &Path| {
        let relative = path.strip_prefix(folder).unwrap_or(path);
        relative
            .components()
            .map(|c| c.as_os_str().to_str())
            .collect::<Option<Vec<_>>>()
            .map(|parts| parts.join("/"))
            .ok_or_else(|| {
                ReleaseError::Usage(format!(
                    "`{}` is not a UTF-8 file name; S3 keys are UTF-8: rename it",
                    path.display()
                ))
            })
    };
    let mut scan = Scan::default();
    // Each folder to read with the real paths of the folders above it: a
    // link to one of them would loop.
    let root = std::fs::canonicalize(folder).map_err(local(folder))?;
    let mut pending = vec![(folder.to_path_buf(), vec![root])];
    while let Some((dir, above)) = pending.pop() {
        for entry in std::fs::read_dir(&dir).map_err(local(&dir))? {
            let entry = entry.map_err(local(&dir))?;
            let path = entry.path();
            if !include_hidden && entry.file_name().to_str().is_some_and(is_hidden) {
                scan.hidden.push(key_of(&path)?);
                continue;
            }
            let meta = std::fs::metadata(&path).map_err(local(&path))?;
            if meta.is_dir() {
                let real = std::fs::canonicalize(&path).map_err(local(&path))?;
                if !above.contains(&real) {
                    let mut chain = above.clone();
                    chain.push(real);
                    pending.push((path, chain));
                }
                continue;
            }
            let key = key_of(&path)?;
            let md5 = file_md5(&path).map_err(local(&path))?;
            scan.files.push(LocalFile {
                key,
                path,
                size: meta.len(),
                md5,
            });
        }
    }
    if scan.files.is_empty() {
        let hidden = match scan.hidden.len() {
            0 => String::new(),
            n => format!(" but {n} hidden (--include-hidden publishes them)"),
        };
        return Err(ReleaseError::Usage(format!(
            "`{}` holds no files{hidden}; a release needs at least one",
            folder.display()
        )));
    }
    scan.files.sort_by(|a, b| a.key.cmp(&b.key));
    scan.hidden.sort();
    Ok(scan)
}

fn file_md5(path: &Path) -> std::io::Result<[u8; 16]> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Md5::new();
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        let n = file.read(&mut buffer)?;
        if n == 0 {
            return Ok(hasher.finalize().into());
        }
        hasher.update(&buffer[..n]);
    }
}

/// A hash of the release's content (keys and MD5s), for its default id.
pub fn content_hash(files: &[LocalFile]) -> Vec<u8> {
    let mut hasher = Sha256::new();
    for file in files {
        hasher.update(file.key.as_bytes());
        hasher.update([0]);
        hasher.update(file.md5);
    }
    hasher.finalize().to_vec()
}

/// What to do with each file: `true` to upload, `false` to copy from the live
/// release (same key, ETag equal to the file's MD5).
pub fn plan(files: &[LocalFile], live: &BTreeMap<String, String>) -> Vec<(usize, Transfer)> {
    files
        .iter()
        .enumerate()
        .map(|(i, file)| {
            let transfer = match live.get(&file.key) {
                Some(etag) if *etag == file.md5_hex() => Transfer::Copy,
                _ => Transfer::Upload,
            };
            (i, transfer)
        })
        .collect()
}

/// How a file reaches the new release.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transfer {
    Upload,
    /// CopyObject from the live release: the bytes are already in the bucket.
    Copy,
}

/// A progress bar on a terminal, nothing otherwise.
fn progress(total: usize) -> indicatif::ProgressBar {
    if !std::io::stdout().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(total as u64);
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} files {msg}",
    ) {
        bar.set_style(style);
    }
    bar
}

/// Runs a publish.
pub async fn publish(
    bucket: &ReleaseBucket,
    request: PublishRequest,
) -> Result<PublishReport, ReleaseError> {
    let folder = request.folder.clone();
    let include_hidden = request.include_hidden;
    let Scan { files, hidden } = tokio::task::spawn_blocking(move || scan(&folder, include_hidden))
        .await
        .map_err(|e| ReleaseError::Usage(format!("scanning the folder failed: {e}")))??;
    let pointer = bucket.pointer().await?;
    let live = pointer.as_ref().and_then(|p| p.release());
    let live_files: BTreeMap<String, String> = match &live {
        Some(id) => bucket.files(id).await?.into_iter().collect(),
        None => BTreeMap::new(),
    };
    let id = match request.release {
        Some(id) => id,
        None => ReleaseId::generate(time::OffsetDateTime::now_utc(), &content_hash(&files)),
    };
    if bucket.exists(&id).await? {
        return Err(ReleaseError::Exists(id));
    }
    let transfers = plan(&files, &live_files);
    let bar = progress(files.len());
    let uploaded = transfers
        .iter()
        .filter(|(_, t)| *t == Transfer::Upload)
        .count();
    let bytes_uploaded = transfers
        .iter()
        .filter(|(_, t)| *t == Transfer::Upload)
        .map(|(i, _)| files[*i].size)
        .sum();
    futures_util::stream::iter(transfers.iter().map(|(i, transfer)| {
        let file = &files[*i];
        let (id, live, bar) = (&id, &live, &bar);
        async move {
            match (transfer, live) {
                (Transfer::Copy, Some(from)) => bucket.copy(from, id, &file.key).await?,
                _ => bucket.upload(id, &file.key, &file.path, &file.md5).await?,
            }
            bar.inc(1);
            Ok::<(), ReleaseError>(())
        }
    }))
    .buffer_unordered(UPLOAD_CONCURRENCY)
    .try_collect::<Vec<()>>()
    .await?;
    bar.finish_and_clear();
    let keys: std::collections::BTreeSet<&str> = files.iter().map(|f| f.key.as_str()).collect();
    let deleted = live_files
        .keys()
        .filter(|k| !keys.contains(k.as_str()))
        .count();
    let manifest = serde_json::json!({
        "id": id.as_str(),
        "created": time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default(),
        "files": files.len(),
        "bytes": files.iter().map(|f| f.size).sum::<u64>(),
        "previous": live.as_ref().map(|l| l.as_str()),
    });
    bucket.write_manifest(&id, &manifest).await?;
    let mut report = PublishReport {
        id: id.clone(),
        previous: pointer.as_ref().map(|p| p.names.clone()),
        uploaded,
        copied: files.len() - uploaded,
        deleted,
        hidden,
        bytes_uploaded,
        activation: request.activation,
        nodes_failed: Vec::new(),
    };
    if request.activation == Activation::UploadOnly {
        return Ok(report);
    }
    let history = pointer.as_ref().map(Pointer::pushed).unwrap_or_default();
    bucket
        .move_pointer(&id, pointer.as_ref(), &history)
        .await
        .map_err(|e| match e {
            ReleaseError::PointerMoved { site, now, .. } => ReleaseError::PointerMoved {
                what: format!(
                    "release `{id}` is uploaded but not live; run publish again, or `s3edge rollback --site {site} {id}` to make it live"
                ),
                site,
                now,
            },
            other => other,
        })?;
    report.nodes_failed = switch_nodes(&request.admins, bucket.site(), &id).await;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(key: &str, body: &[u8]) -> LocalFile {
        LocalFile {
            key: key.into(),
            path: PathBuf::from(key),
            size: body.len() as u64,
            md5: Md5::digest(body).into(),
        }
    }

    #[test]
    fn unchanged_files_are_copied_and_the_rest_uploaded() {
        let files = vec![
            file("a.html", b"same"),
            file("b.css", b"new"),
            file("c.js", b"added"),
        ];
        let live: BTreeMap<String, String> = [
            ("a.html".to_string(), files[0].md5_hex()),
            ("b.css".to_string(), file("b.css", b"old").md5_hex()),
            ("gone.txt".to_string(), "abc".to_string()),
        ]
        .into_iter()
        .collect();
        let plan: Vec<Transfer> = plan(&files, &live).into_iter().map(|(_, t)| t).collect();
        assert_eq!(
            plan,
            vec![Transfer::Copy, Transfer::Upload, Transfer::Upload]
        );
    }

    #[test]
    fn a_multipart_etag_never_matches_so_the_file_is_uploaded() {
        let files = vec![file("big.bin", b"x")];
        let live: BTreeMap<String, String> =
            [("big.bin".to_string(), format!("{}-2", files[0].md5_hex()))]
                .into_iter()
                .collect();
        assert_eq!(plan(&files, &live)[0].1, Transfer::Upload);
    }

    #[test]
    fn the_content_hash_changes_with_a_key_or_a_byte() {
        let a = content_hash(&[file("a", b"1")]);
        assert_ne!(a, content_hash(&[file("b", b"1")]));
        assert_ne!(a, content_hash(&[file("a", b"2")]));
        assert_eq!(a, content_hash(&[file("a", b"1")]));
    }

    #[test]
    fn a_missing_folder_and_an_empty_one_are_usage_errors() {
        let missing = scan(Path::new("/nonexistent/s3edge-publish"), false).unwrap_err();
        assert!(missing.is_usage(), "{missing}");
        assert!(missing.to_string().contains("cannot publish"), "{missing}");
        let empty = tempfile::tempdir().expect("tempdir");
        let err = scan(empty.path(), false).unwrap_err();
        assert!(err.to_string().contains("holds no files"), "{err}");
        std::fs::write(empty.path().join(".env"), b"SECRET=1").expect("write");
        let err = scan(empty.path(), false).unwrap_err();
        assert!(
            err.to_string()
                .contains("holds no files but 1 hidden (--include-hidden publishes them)"),
            "{err}"
        );
    }

    #[test]
    fn scanned_keys_use_slashes_and_come_in_order() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(dir.path().join("css")).expect("dir");
        std::fs::write(dir.path().join("index.html"), b"<h1>hi</h1>").expect("write");
        std::fs::write(dir.path().join("css/site.css"), b"body{}").expect("write");
        let files = scan(dir.path(), false).expect("scan").files;
        let keys: Vec<&str> = files.iter().map(|f| f.key.as_str()).collect();
        assert_eq!(keys, vec!["css/site.css", "index.html"]);
        assert_eq!(files[1].md5_hex(), "8097d38e49cc85c6e16e47e447a12142");
        assert_eq!(files[1].size, 11);
    }

    fn keys(scan: &Scan) -> Vec<&str> {
        scan.files.iter().map(|f| f.key.as_str()).collect()
    }

    /// A site folder that is also a working copy (`.git`), or holds an
    /// editor's or the OS's files, must not put them on the web: they are
    /// left out and named, unless asked for; `.well-known` is the site's.
    #[test]
    fn hidden_files_are_left_out_but_well_known() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        for folder in [".git/objects", ".well-known", "css/.sass-cache", "__MACOSX"] {
            std::fs::create_dir_all(root.join(folder)).expect("dir");
        }
        for file in [
            "index.html",
            ".env",
            ".git/config",
            ".git/objects/ab",
            ".well-known/security.txt",
            "css/site.css",
            "css/.DS_Store",
            "css/.sass-cache/x",
            "__MACOSX/._index.html",
        ] {
            std::fs::write(root.join(file), file).expect("write");
        }
        let scan_default = scan(root, false).expect("scan");
        assert_eq!(
            keys(&scan_default),
            vec![".well-known/security.txt", "css/site.css", "index.html"]
        );
        assert_eq!(
            scan_default.hidden,
            vec![
                ".env",
                ".git",
                "__MACOSX",
                "css/.DS_Store",
                "css/.sass-cache"
            ]
        );
        let everything = scan(root, true).expect("scan");
        assert_eq!(everything.files.len(), 9);
        assert!(everything.hidden.is_empty());
    }

    /// A link back to an ancestor folder is not followed (it never ends); a
    /// link to a file or to another folder is.
    #[cfg(unix)]
    #[test]
    fn a_link_to_an_ancestor_is_followed_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        std::fs::create_dir_all(root.join("docs")).expect("dir");
        std::fs::write(root.join("docs/a.html"), b"a").expect("write");
        std::os::unix::fs::symlink(root, root.join("docs/up")).expect("symlink");
        std::fs::write(root.join("shared.css"), b"x").expect("write");
        std::os::unix::fs::symlink(root.join("shared.css"), root.join("docs/linked.css"))
            .expect("symlink");
        std::os::unix::fs::symlink(root.join("docs"), root.join("manual")).expect("symlink");
        let found = scan(root, false).expect("scan");
        assert_eq!(
            keys(&found),
            vec![
                "docs/a.html",
                "docs/linked.css",
                "manual/a.html",
                "manual/linked.css",
                "shared.css"
            ]
        );
    }
}
