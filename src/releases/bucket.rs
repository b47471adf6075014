//! What the `publish`, `rollback` and `releases` commands do in the bucket:
//! list a release with its ETags, upload and copy files into a new one, write
//! its manifest, and move the pointer with a conditional PutObject (If-Match on
//! the ETag it was read with, If-None-Match: * when there is none), so that of
//! two writers one wins and the other learns it.

use std::collections::HashMap;
use std::path::Path;
use std::time::SystemTime;

use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;

use super::{release_dir, ReleaseId, RELEASES_DIR};
use crate::config::SiteConfig;
use crate::origin::s3::{stated_time, EmbeddedEndpoint, S3Origin};

/// Why a release command failed. `is_usage` separates what the operator must
/// fix in the command or the site file (exit 2) from runtime failures (exit 1).
#[derive(Debug, thiserror::Error)]
pub enum ReleaseError {
    #[error("{0}")]
    Usage(String),
    #[error("{action} `{key}` failed: {message}")]
    S3 {
        action: &'static str,
        key: String,
        message: String,
    },
    #[error("another publish or rollback moved the pointer of site `{site}` first (it now names {now}); {what}")]
    PointerMoved {
        site: String,
        now: String,
        what: String,
    },
    #[error("release `{0}` already exists in the bucket; choose another id with --release")]
    Exists(ReleaseId),
    #[error("cannot read `{path}`: {source}")]
    Local {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
}

impl ReleaseError {
    pub fn is_usage(&self) -> bool {
        matches!(self, ReleaseError::Usage(_) | ReleaseError::Exists(_))
    }
}

/// Formats an SDK error with its S3 code and HTTP status.
fn s3_error<E>(action: &'static str, key: &str, err: SdkError<E>) -> ReleaseError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let status = err.raw_response().map(|r| r.status().as_u16());
    let message = match (err.code(), status) {
        (Some(code), Some(status)) => format!(
            "S3 error {code} (HTTP {status}){}",
            err.message().map(|m| format!(": {m}")).unwrap_or_default()
        ),
        // No answer at all (the store down, a wrong endpoint): the cause, not
        // the SDK's whole error structure.
        _ if matches!(
            err,
            SdkError::DispatchFailure(_) | SdkError::TimeoutError(_)
        ) =>
        {
            format!(
                "the bucket could not be reached ({}); check the site's `origin.endpoint`, and that the store is running (for `endpoint = \"embedded\"`, a node serving it on --embedded-s3-listen)",
                root_cause(&err)
            )
        }
        _ => DisplayErrorContext(&err).to_string(),
    };
    ReleaseError::S3 {
        action,
        key: key.to_string(),
        message,
    }
}

/// The innermost error under `err` (`Connection refused (os error 111)`),
/// or `err` itself; "timed out" when that is all there is to say.
fn root_cause(err: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = err;
    while let Some(source) = cause.source() {
        cause = source;
    }
    match cause.to_string() {
        text if text.is_empty() => "timed out".to_string(),
        text => text,
    }
}

/// The pointer's user metadata that holds the releases live before the one
/// it names, most recent first, comma-separated (`x-amz-meta-s3edge-history`):
/// what `rollback` without an id goes back through.
const HISTORY_METADATA: &str = "s3edge-history";

/// How many earlier live releases the pointer remembers (63-byte ids: well
/// within S3's 2 KB of user metadata).
pub const HISTORY_LEN: usize = 20;

/// The pointer as read: the live release and the ETag to write against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pointer {
    /// The pointer's body, trimmed (a release id, unless someone wrote garbage).
    pub names: String,
    pub etag: String,
    /// The releases that were live before, most recent first; `None` for a
    /// pointer written before the history was kept.
    pub history: Option<Vec<ReleaseId>>,
}

impl Pointer {
    /// The release the pointer names, if its body is a release id.
    pub fn release(&self) -> Option<ReleaseId> {
        ReleaseId::parse(&self.names).ok()
    }

    /// The history to write with a pointer that makes another release live
    /// (a publish, a rollback to a named release): the live one first.
    pub fn pushed(&self) -> Vec<ReleaseId> {
        let mut history: Vec<ReleaseId> = self.release().into_iter().collect();
        history.extend(self.history.iter().flatten().cloned());
        history.truncate(HISTORY_LEN);
        history
    }
}

fn parse_history(text: &str) -> Vec<ReleaseId> {
    text.split(',')
        .filter_map(|id| ReleaseId::parse(id.trim()).ok())
        .take(HISTORY_LEN)
        .collect()
}

/// One release found in the bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleaseInfo {
    pub id: ReleaseId,
    /// When its manifest was written (publish writes it before moving the pointer).
    pub created: Option<SystemTime>,
}

/// A site's bucket, seen by the release commands.
pub struct ReleaseBucket {
    client: aws_sdk_s3::Client,
    bucket: String,
    /// `origin.prefix`.
    prefix: String,
    /// The pointer's full key.
    pointer: String,
    site: String,
}

impl ReleaseBucket {
    /// The bucket of a site with `[releases]`, with the same client settings as
    /// the node's origin (`origin/s3.rs`).
    pub async fn open(
        site: &SiteConfig,
        embedded: Option<&EmbeddedEndpoint>,
    ) -> Result<ReleaseBucket, ReleaseError> {
        let Some(releases) = &site.releases else {
            return Err(ReleaseError::Usage(format!(
                "{}: site `{}` has no [releases] section; add one (pointer, preview_hosts, check_every) to publish releases",
                site.file.display(),
                site.name
            )));
        };
        let origin = S3Origin::build(&site.origin, embedded)
            .await
            .map_err(|e| ReleaseError::Usage(format!("site `{}`: {e}", site.name)))?;
        // The node's per-request timeout would cut long uploads short: keep
        // the connect and stall timeouts, drop the whole-operation one.
        let timeouts = aws_smithy_types::timeout::TimeoutConfig::builder()
            .connect_timeout(site.origin.timeout)
            .read_timeout(site.origin.timeout)
            .build();
        let config = origin
            .client()
            .config()
            .to_builder()
            .timeout_config(timeouts)
            .build();
        Ok(ReleaseBucket {
            client: aws_sdk_s3::Client::from_conf(config),
            bucket: site.origin.bucket.clone(),
            prefix: site.origin.prefix.clone(),
            pointer: format!("{}{}", site.origin.prefix, releases.pointer),
            site: site.name.clone(),
        })
    }

    pub fn site(&self) -> &str {
        &self.site
    }

    fn dir(&self, id: &ReleaseId) -> String {
        format!("{}{}", self.prefix, release_dir(id))
    }

    fn manifest_key(&self, id: &ReleaseId) -> String {
        format!("{}{RELEASES_DIR}{id}.json", self.prefix)
    }

    /// Reads the pointer; `None` when no release has been made live.
    pub async fn pointer(&self) -> Result<Option<Pointer>, ReleaseError> {
        let output = match self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(&self.pointer)
            .send()
            .await
        {
            Ok(output) => output,
            Err(err) if err.as_service_error().is_some_and(|e| e.is_no_such_key()) => {
                return Ok(None)
            }
            Err(err) => return Err(s3_error("reading the pointer", &self.pointer, err)),
        };
        let etag = output.e_tag().unwrap_or_default().to_string();
        let history = output
            .metadata()
            .and_then(|m| m.get(HISTORY_METADATA))
            .map(|text| parse_history(text));
        let body = output.body.collect().await.map_err(|e| ReleaseError::S3 {
            action: "reading the pointer",
            key: self.pointer.clone(),
            message: e.to_string(),
        })?;
        let names = String::from_utf8_lossy(&body.into_bytes())
            .trim()
            .to_string();
        Ok(Some(Pointer {
            names,
            etag,
            history,
        }))
    }

    /// The files of a release: key (inside the release) to ETag without quotes.
    pub async fn files(&self, id: &ReleaseId) -> Result<HashMap<String, String>, ReleaseError> {
        let dir = self.dir(id);
        let mut files = HashMap::new();
        let mut token = None;
        loop {
            let output = self
                .client
                .list_objects_v2()
                .bucket(&self.bucket)
                .prefix(&dir)
                .set_continuation_token(token.take())
                .send()
                .await
                .map_err(|e| s3_error("listing", &dir, e))?;
            for object in output.contents() {
                if let Some(key) = object.key().and_then(|k| k.strip_prefix(dir.as_str())) {
                    let etag = object.e_tag().unwrap_or_default().trim_matches('"');
                    files.insert(key.to_string(), etag.to_string());
                }
            }
            match output.next_continuation_token() {
                Some(next) if output.is_truncated() == Some(true) => token = Some(next.to_string()),
                _ => return Ok(files),
            }
        }
    }

    /// Whether release `id` has any file.
    pub async fn exists(&self, id: &ReleaseId) -> Result<bool, ReleaseError> {
        let dir = self.dir(id);
        let output = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(&dir)
            .max_keys(1)
            .send()
            .await
            .map_err(|e| s3_error("listing", &dir, e))?;
        Ok(!output.contents().is_empty())
    }

    /// Every release, newest first (by manifest time, then by id).
    pub async fn releases(&self) -> Result<Vec<ReleaseInfo>, ReleaseError> {
        let dir = format!("{}{RELEASES_DIR}", self.prefix);
        let mut found: HashMap<ReleaseId, Option<SystemTime>> = HashMap::new();
        let mut token = None;
        loop {
            let output = self
                .client
                .list_objects_v2()
                .bucket(&self.bucket)
                .prefix(&dir)
                .delimiter("/")
                .set_continuation_token(token.take())
                .send()
                .await
                .map_err(|e| s3_error("listing", &dir, e))?;
            for common in output.common_prefixes() {
                let id = common
                    .prefix()
                    .and_then(|p| p.strip_prefix(dir.as_str()))
                    .and_then(|p| p.strip_suffix('/'))
                    .and_then(|p| ReleaseId::parse(p).ok());
                if let Some(id) = id {
                    found.entry(id).or_insert(None);
                }
            }
            for object in output.contents() {
                let manifest = object
                    .key()
                    .and_then(|k| k.strip_prefix(dir.as_str()))
                    .and_then(|k| k.strip_suffix(".json"))
                    .and_then(|k| ReleaseId::parse(k).ok());
                if let Some(id) = manifest {
                    // `time` panics on a date past the year 9999.
                    let created = object.last_modified().and_then(stated_time);
                    found.insert(id, created);
                }
            }
            match output.next_continuation_token() {
                Some(next) if output.is_truncated() == Some(true) => token = Some(next.to_string()),
                _ => break,
            }
        }
        let mut releases: Vec<ReleaseInfo> = found
            .into_iter()
            .map(|(id, created)| ReleaseInfo { id, created })
            .collect();
        releases.sort_by(|a, b| b.created.cmp(&a.created).then_with(|| b.id.cmp(&a.id)));
        Ok(releases)
    }

    /// Uploads a local file as `key` of release `id`, with its MD5 checked by the store.
    pub async fn upload(
        &self,
        id: &ReleaseId,
        key: &str,
        path: &Path,
        md5: &[u8; 16],
    ) -> Result<(), ReleaseError> {
        let full = format!("{}{key}", self.dir(id));
        let body = ByteStream::from_path(path)
            .await
            .map_err(|e| ReleaseError::Local {
                path: path.to_path_buf(),
                source: std::io::Error::other(e),
            })?;
        let content_type = mime_guess::from_path(key).first_or_octet_stream();
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(&full)
            .content_type(content_type.essence_str())
            .content_md5(aws_smithy_types::base64::encode(md5))
            .body(body)
            .send()
            .await
            .map_err(|e| s3_error("uploading", &full, e))?;
        Ok(())
    }

    /// Copies `key` from release `from` into release `to`, inside the bucket.
    pub async fn copy(
        &self,
        from: &ReleaseId,
        to: &ReleaseId,
        key: &str,
    ) -> Result<(), ReleaseError> {
        let source_key = format!("{}{key}", self.dir(from));
        let target = format!("{}{key}", self.dir(to));
        let source = format!(
            "{}/{}",
            self.bucket,
            percent_encoding::utf8_percent_encode(&source_key, COPY_SOURCE)
        );
        self.client
            .copy_object()
            .bucket(&self.bucket)
            .key(&target)
            .copy_source(source)
            .send()
            .await
            .map_err(|e| s3_error("copying", &source_key, e))?;
        Ok(())
    }

    /// Writes release `id`'s manifest (`releases/<id>.json`, outside the
    /// served folder): its time orders `s3edge releases`.
    pub async fn write_manifest(
        &self,
        id: &ReleaseId,
        manifest: &serde_json::Value,
    ) -> Result<(), ReleaseError> {
        let key = self.manifest_key(id);
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(&key)
            .content_type("application/json")
            .body(ByteStream::from(manifest.to_string().into_bytes()))
            .send()
            .await
            .map_err(|e| s3_error("writing the manifest", &key, e))?;
        Ok(())
    }

    /// Makes `to` live if the pointer is still `expected` (If-Match on its ETag;
    /// If-None-Match: * when there was none), with `history` (the releases
    /// live before it, most recent first). 412 means someone else moved it.
    pub async fn move_pointer(
        &self,
        to: &ReleaseId,
        expected: Option<&Pointer>,
        history: &[ReleaseId],
    ) -> Result<(), ReleaseError> {
        let history: Vec<&str> = history
            .iter()
            .take(HISTORY_LEN)
            .map(ReleaseId::as_str)
            .collect();
        let mut put = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(&self.pointer)
            .content_type("text/plain; charset=utf-8")
            .cache_control("no-cache")
            .metadata(HISTORY_METADATA, history.join(","))
            .body(ByteStream::from(format!("{to}\n").into_bytes()));
        put = match expected {
            Some(pointer) => put.if_match(&pointer.etag),
            None => put.if_none_match("*"),
        };
        match put.send().await {
            Ok(_) => Ok(()),
            Err(err)
                if err
                    .raw_response()
                    .is_some_and(|r| matches!(r.status().as_u16(), 412 | 409)) =>
            {
                let now = match self.pointer().await {
                    Ok(Some(pointer)) => format!("`{}`", pointer.names),
                    Ok(None) => "nothing".to_string(),
                    Err(e) => format!("an unknown release ({e})"),
                };
                Err(ReleaseError::PointerMoved {
                    site: self.site.clone(),
                    now,
                    what: format!("release `{to}` was not made live"),
                })
            }
            Err(err) => Err(s3_error("writing the pointer", &self.pointer, err)),
        }
    }
}

/// What CopyObject's `x-amz-copy-source` must percent-encode in a key: all but
/// the unreserved characters and `/` (RFC 3986 section 2.3).
const COPY_SOURCE: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'/');
