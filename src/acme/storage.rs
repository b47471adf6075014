//! Where the ACME account and the certificates are kept: a directory
//! (`--acme-dir`) or, for a ring of nodes, a bucket (see `bucket.rs`).
//!
//! Keys are `/`-separated relative names (`CA/account.json`,
//! `CA/certificates/SITE.json`, `CA/locks/SITE`). The contract every storage
//! keeps:
//! - `store` replaces a value whole: a reader sees the old value or the new one;
//! - `create_new` writes only when the key is absent and says whether it did,
//!   atomically (an `O_EXCL` create; a PutObject with `If-None-Match: *`): of two
//!   nodes racing, exactly one gets `true`. Locks are built on it.

use std::io;
use std::path::{Path, PathBuf};

use async_trait::async_trait;

/// A storage operation that failed.
#[derive(Debug, thiserror::Error)]
#[error("{location}: {detail}")]
pub struct StorageError {
    /// The file or object concerned.
    pub location: String,
    pub detail: String,
}

/// The account and certificate store (see the module doc for the contract).
#[async_trait]
pub trait Storage: Send + Sync {
    /// The value under `key`, or `None` when there is none.
    async fn load(&self, key: &str) -> Result<Option<Vec<u8>>, StorageError>;
    /// Writes `value` under `key`, replacing any value whole.
    async fn store(&self, key: &str, value: &[u8]) -> Result<(), StorageError>;
    /// Writes `value` under `key` only if the key is absent: `true` if written.
    async fn create_new(&self, key: &str, value: &[u8]) -> Result<bool, StorageError>;
    /// Removes `key`; a missing key is not an error.
    async fn delete(&self, key: &str) -> Result<(), StorageError>;
    /// Where the values live, for logs (`.s3edge-acme`, `s3://bucket/prefix`).
    fn describe(&self) -> String;
    /// Whether other nodes may write here too (then the store is re-read for
    /// certificates they obtained).
    fn is_shared(&self) -> bool;
}

/// A local directory. Values are written to a temporary file and renamed, with
/// mode 0600 (they include private keys).
pub struct DirStorage {
    root: PathBuf,
}

impl DirStorage {
    pub fn new(root: PathBuf) -> DirStorage {
        DirStorage { root }
    }

    /// The file of a key; keys are made by s3edge from site and CA names that are
    /// already restricted to safe characters, and `..` is refused anyway.
    fn path(&self, key: &str) -> Result<PathBuf, StorageError> {
        if key
            .split('/')
            .any(|part| part.is_empty() || part == "." || part == "..")
        {
            return Err(StorageError {
                location: key.to_string(),
                detail: "not a storage key".into(),
            });
        }
        Ok(self.root.join(key))
    }

    fn error(path: &Path, action: &str, e: io::Error) -> StorageError {
        StorageError {
            location: path.display().to_string(),
            detail: format!("cannot {action}: {e}"),
        }
    }
}

/// Opens `path` for writing with mode 0600; `exclusive`: fail if it exists.
/// A file already there (a temporary file left by a crash, or one copied in
/// by hand) is made 0600 too: the mode of `open` applies only to a new file.
fn open_private(path: &Path, exclusive: bool) -> io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true);
    if exclusive {
        options.create_new(true);
    } else {
        options.create(true).truncate(true);
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let file = options.open(path)?;
    make_private(&file)?;
    Ok(file)
}

/// Takes group and other access away from an open file.
fn make_private(file: &std::fs::File) -> io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = file.metadata()?.permissions().mode();
        if mode & 0o077 != 0 {
            file.set_permissions(std::fs::Permissions::from_mode(mode & 0o700))?;
        }
    }
    #[cfg(not(unix))]
    let _ = file;
    Ok(())
}

fn create_parent(path: &Path) -> io::Result<()> {
    match path.parent() {
        Some(parent) => std::fs::create_dir_all(parent),
        None => Ok(()),
    }
}

#[async_trait]
impl Storage for DirStorage {
    async fn load(&self, key: &str) -> Result<Option<Vec<u8>>, StorageError> {
        let path = self.path(key)?;
        tokio::task::spawn_blocking(move || {
            use std::io::Read;
            let mut file = match std::fs::File::open(&path) {
                Ok(file) => file,
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(Self::error(&path, "read", e)),
            };
            // Values hold private keys: one that others may read (written by
            // an older version, or copied in) is made 0600 as it is read.
            if let Err(e) = make_private(&file) {
                tracing::warn!(
                    "{}: others may read it and it cannot be made private: {e}",
                    path.display()
                );
            }
            let mut bytes = Vec::new();
            file.read_to_end(&mut bytes)
                .map_err(|e| Self::error(&path, "read", e))?;
            Ok(Some(bytes))
        })
        .await
        .map_err(|e| StorageError {
            location: key.to_string(),
            detail: e.to_string(),
        })?
    }

    async fn store(&self, key: &str, value: &[u8]) -> Result<(), StorageError> {
        use std::io::Write;
        let path = self.path(key)?;
        let value = value.to_vec();
        tokio::task::spawn_blocking(move || {
            create_parent(&path).map_err(|e| Self::error(&path, "create the directory of", e))?;
            let temporary = path.with_extension("tmp");
            let mut file = open_private(&temporary, false)
                .map_err(|e| Self::error(&temporary, "create", e))?;
            file.write_all(&value)
                .and_then(|()| file.sync_all())
                .map_err(|e| Self::error(&temporary, "write", e))?;
            std::fs::rename(&temporary, &path).map_err(|e| Self::error(&path, "replace", e))
        })
        .await
        .map_err(|e| StorageError {
            location: key.to_string(),
            detail: e.to_string(),
        })?
    }

    async fn create_new(&self, key: &str, value: &[u8]) -> Result<bool, StorageError> {
        use std::io::Write;
        let path = self.path(key)?;
        let value = value.to_vec();
        tokio::task::spawn_blocking(move || {
            create_parent(&path).map_err(|e| Self::error(&path, "create the directory of", e))?;
            match open_private(&path, true) {
                Ok(mut file) => {
                    file.write_all(&value)
                        .map_err(|e| Self::error(&path, "write", e))?;
                    Ok(true)
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
                Err(e) => Err(Self::error(&path, "create", e)),
            }
        })
        .await
        .map_err(|e| StorageError {
            location: key.to_string(),
            detail: e.to_string(),
        })?
    }

    async fn delete(&self, key: &str) -> Result<(), StorageError> {
        let path = self.path(key)?;
        match tokio::fs::remove_file(&path).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Self::error(&path, "remove", e)),
        }
    }

    fn describe(&self) -> String {
        self.root.display().to_string()
    }

    fn is_shared(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_directory_stores_whole_values_and_creates_a_key_only_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let storage = DirStorage::new(dir.path().join("acme"));
        assert_eq!(storage.load("ca/account.json").await.expect("load"), None);
        storage
            .store("ca/account.json", b"one")
            .await
            .expect("store");
        storage
            .store("ca/account.json", b"two")
            .await
            .expect("store");
        assert_eq!(
            storage
                .load("ca/account.json")
                .await
                .expect("load")
                .as_deref(),
            Some(&b"two"[..])
        );
        assert!(storage
            .create_new("ca/locks/site", b"a")
            .await
            .expect("create"));
        assert!(!storage
            .create_new("ca/locks/site", b"b")
            .await
            .expect("create"));
        storage.delete("ca/locks/site").await.expect("delete");
        storage
            .delete("ca/locks/site")
            .await
            .expect("a missing key deletes fine");
        assert!(storage
            .create_new("ca/locks/site", b"c")
            .await
            .expect("create"));
        assert!(storage.load("../escape").await.is_err(), "`..` is refused");
        #[cfg(unix)]
        assert_eq!(
            mode_of(&dir.path().join("acme/ca/account.json")),
            0o600,
            "values hold private keys"
        );
    }

    /// A file's permission bits.
    #[cfg(unix)]
    fn mode_of(path: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(path)
            .expect("metadata")
            .permissions()
            .mode()
            & 0o777
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn files_others_may_read_are_made_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("acme");
        std::fs::create_dir_all(root.join("ca/certificates")).expect("mkdir");
        let mode = |name: &str| mode_of(&root.join(name));
        let loose = |name: &str| {
            std::fs::write(root.join(name), b"old").expect("write");
            std::fs::set_permissions(root.join(name), std::fs::Permissions::from_mode(0o644))
                .expect("chmod");
        };
        let storage = DirStorage::new(root.clone());
        // A value copied in, or written by an older version, as 0644.
        loose("ca/account.json");
        assert_eq!(
            storage
                .load("ca/account.json")
                .await
                .expect("load")
                .as_deref(),
            Some(&b"old"[..])
        );
        assert_eq!(mode("ca/account.json"), 0o600);
        // A temporary file a crash left behind, as 0644: the stored value
        // renamed from it must not keep that mode.
        loose("ca/certificates/site.tmp");
        storage
            .store("ca/certificates/site.json", b"new")
            .await
            .expect("store");
        assert_eq!(mode("ca/certificates/site.json"), 0o600);
    }
}
