//! GetObject, HeadObject and the listings: s3s-fs plus what it lacks.
//!
//! GET and HEAD run in this order:
//! 1. the key must name a regular file (`NoSuchBucket` / `NoSuchKey` otherwise; s3s-fs
//!    would open a directory, or answer `NoSuchKey` for a missing bucket);
//! 2. preconditions (`preconditions.rs`) may answer 304 or 412;
//! 3. the Range is resolved against the length (s3s-fs seeks before the start for a
//!    suffix longer than the object);
//! 4. s3s-fs answers; `Accept-Ranges` and the default Content-Type are added.

use std::fs::Metadata;
use std::io;
use std::time::SystemTime;

use hyper::header::{HeaderMap, HeaderValue, CACHE_CONTROL, ETAG, EXPIRES, LAST_MODIFIED};
use hyper::http::Extensions;
use hyper::{Method, StatusCode};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use s3s::dto::*;
use s3s::{s3_error, S3Error, S3ErrorCode, S3Request, S3Response, S3Result, S3};

use super::preconditions::{Outcome, Preconditions};
use super::sidecar::storable_key;
use super::store::{internal, Store};

/// Content-Type S3 reports for an object stored without one.
const DEFAULT_CONTENT_TYPE: &str = "binary/octet-stream";

/// Characters kept as they are by `encoding-type=url` (RFC 3986 unreserved, and `/`).
const URL_ENCODING_KEEP: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~')
    .remove(b'/');

/// What a file of a bucket this process may not read (mode 000, another
/// owner's 0600) answers: `AccessDenied`, as S3 answers an object one may not
/// read, with a warning naming the file at most once a minute.
fn unreadable(path: &std::path::Path, e: &io::Error) -> S3Error {
    static WARNED: crate::throttle::Throttle = crate::throttle::Throttle::new();
    if WARNED.ready(std::time::Duration::from_secs(60)) {
        tracing::warn!(
            file = %path.display(),
            error = %e,
            "embedded S3 store: a file it may not read answers AccessDenied (403)"
        );
    }
    s3_error!(AccessDenied, "The object cannot be read.")
}

/// The conditions of a request: parsed by the lenient route (`lenient.rs`) when s3s could
/// not parse the raw headers, else read from them.
fn preconditions_of<T>(req: &S3Request<T>) -> Preconditions {
    req.extensions
        .get::<Preconditions>()
        .cloned()
        .unwrap_or_else(|| Preconditions::from_headers(&req.headers))
}

/// A HeadObject request to s3s-fs for the same object, carrying the caller's identity.
fn head_request<T>(req: &S3Request<T>, bucket: &str, key: &str) -> S3Request<HeadObjectInput> {
    S3Request {
        input: HeadObjectInput {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            ..Default::default()
        },
        method: Method::HEAD,
        uri: req.uri.clone(),
        headers: HeaderMap::new(),
        extensions: Extensions::new(),
        credentials: req.credentials.clone(),
        region: req.region.clone(),
        service: req.service.clone(),
        trailing_headers: None,
    }
}

/// Turns the outcome of the preconditions into the S3 answer: `NotModified` (304, no
/// body, with the validators and caching headers a 200 would carry, RFC 9110 §15.4.5)
/// or `PreconditionFailed` (412).
fn enforce(
    preconditions: &Preconditions,
    head: &HeadObjectOutput,
    last_modified: SystemTime,
) -> S3Result<()> {
    let etag = head.e_tag.as_ref().map_or("", ETag::value);
    match preconditions.evaluate(etag, last_modified) {
        Outcome::Proceed => Ok(()),
        Outcome::PreconditionFailed => Err(s3_error!(
            PreconditionFailed,
            "At least one of the pre-conditions you specified did not hold"
        )),
        Outcome::NotModified => {
            let mut headers = HeaderMap::new();
            if let Some(Ok(v)) = head.e_tag.as_ref().map(ETag::to_http_header) {
                headers.insert(ETAG, v);
            }
            // A file dated outside the years an HTTP-date names gets none.
            let stated = crate::http::date::representable(last_modified);
            if let Some(Ok(v)) =
                stated.map(|t| HeaderValue::from_str(&crate::http::date::format(t)))
            {
                headers.insert(LAST_MODIFIED, v);
            }
            if let Some(Ok(v)) = head.cache_control.as_deref().map(HeaderValue::from_str) {
                headers.insert(CACHE_CONTROL, v);
            }
            if let Some(Ok(v)) = head.expires.as_ref().map(http_date_value) {
                headers.insert(EXPIRES, v);
            }
            let mut err = S3Error::new(S3ErrorCode::NotModified);
            err.set_headers(headers);
            Err(err)
        }
    }
}

fn http_date_value(t: &Timestamp) -> Result<HeaderValue, io::Error> {
    let mut buf = Vec::new();
    t.format(TimestampFormat::HttpDate, &mut buf)
        .map_err(io::Error::other)?;
    HeaderValue::from_bytes(&buf).map_err(io::Error::other)
}

/// How many times a GetObject is read when its file keeps changing under it.
const READ_ATTEMPTS: usize = 4;

/// Whether two looks at a path found the same file, unchanged.
fn same_file(a: &Metadata, b: &Metadata) -> bool {
    use std::os::unix::fs::MetadataExt;
    (a.dev(), a.ino(), a.len(), a.mtime(), a.mtime_nsec())
        == (b.dev(), b.ino(), b.len(), b.mtime(), b.mtime_nsec())
}

fn modified(meta: &Metadata) -> S3Result<SystemTime> {
    meta.modified()
        .map_err(|e| internal("cannot read a modification time", e))
}

fn url_encode(s: &mut String) {
    *s = utf8_percent_encode(s, URL_ENCODING_KEEP).to_string();
}

fn url_encode_opt(s: Option<&mut String>) {
    if let Some(s) = s {
        url_encode(s);
    }
}

impl Store {
    /// The metadata of the regular file that holds `bucket/key`.
    /// See [`Sidecars::remember_etag`](super::sidecar::Sidecars::remember_etag).
    pub(super) async fn remember_etag(
        &self,
        bucket: &str,
        key: &str,
        file: &Metadata,
    ) -> S3Result<String> {
        self.files
            .remember_etag(bucket, key, file)
            .await
            .map_err(|e| match e.kind() {
                io::ErrorKind::PermissionDenied => {
                    unreadable(&self.files.bucket_dir(bucket).join(key), &e)
                }
                _ => internal("cannot hash an object", e),
            })
    }

    /// `AccessDenied` if this process may not open the object's file.
    async fn require_readable(&self, bucket: &str, key: &str) -> S3Result<()> {
        let path = self.files.bucket_dir(bucket).join(key);
        match tokio::fs::File::open(&path).await {
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied => Err(unreadable(&path, &e)),
            _ => Ok(()),
        }
    }

    pub(super) async fn object_file(&self, bucket: &str, key: &str) -> S3Result<Metadata> {
        let path = self.files.bucket_dir(bucket).join(key);
        let found = if storable_key(key) {
            tokio::fs::metadata(&path).await
        } else {
            Err(io::ErrorKind::NotFound.into())
        };
        match found {
            Ok(meta) if meta.is_file() => Ok(meta),
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied => Err(unreadable(&path, &e)),
            _ => {
                self.require_bucket(bucket).await?;
                Err(s3_error!(NoSuchKey, "The specified key does not exist."))
            }
        }
    }

    /// GetObject, read again (up to [`READ_ATTEMPTS`] times) when the file
    /// was replaced while it was read (see [`Self::get_object_once`]).
    pub(super) async fn get_object_checked(
        &self,
        req: S3Request<GetObjectInput>,
    ) -> S3Result<S3Response<GetObjectOutput>> {
        for _ in 1..READ_ATTEMPTS {
            if let Some(resp) = self.get_object_once(req.clone()).await? {
                return Ok(resp);
            }
        }
        self.get_object_once(req).await?.ok_or_else(|| {
            s3_error!(
                InternalError,
                "The object changed while it was read; please retry."
            )
        })
    }

    /// One GetObject; `None` when the file changed while it was read.
    async fn get_object_once(
        &self,
        mut req: S3Request<GetObjectInput>,
    ) -> S3Result<Option<S3Response<GetObjectOutput>>> {
        let (bucket, key) = (req.input.bucket.clone(), req.input.key.clone());
        let file = self.object_file(&bucket, &key).await?;
        let etag = self.remember_etag(&bucket, &key, &file).await?;
        let preconditions = preconditions_of(&req);
        if !preconditions.is_empty() {
            let head = self
                .fs
                .head_object(head_request(&req, &bucket, &key))
                .await?;
            enforce(&preconditions, &head.output, modified(&file)?)?;
        }
        if let Some(range) = req.input.range.take() {
            let satisfiable = range.check(file.len())?;
            if satisfiable.is_empty() {
                // A suffix range of an empty object selects nothing (RFC 9110 14.1.2).
                return Err(s3s::s3_error!(InvalidRange));
            }
            req.input.range = Some(Range::Int {
                first: satisfiable.start,
                last: Some(satisfiable.end - 1),
            });
        }
        let mut resp = match self.fs.get_object(req).await {
            Ok(resp) => resp,
            // s3s-fs says NoSuchKey for a file it could not open.
            Err(e) if *e.code() == S3ErrorCode::NoSuchKey => {
                self.require_readable(&bucket, &key).await?;
                return Err(e);
            }
            Err(e) => return Err(e),
        };
        // A file replaced while this was read (files copied into the bucket
        // folder during a deploy): the file opened may not be the one the
        // ETag was computed for, and a cache would keep that pair (S3 never
        // sends one version's body with another's ETag). The same file
        // before and after, with its own ETag, is the one that was opened.
        let after = self.object_file(&bucket, &key).await.ok();
        let sent = resp.output.e_tag.as_ref().map(ETag::value);
        if !after.is_some_and(|after| same_file(&after, &file)) || sent != Some(etag.as_str()) {
            return Ok(None);
        }
        let out = &mut resp.output;
        out.accept_ranges = Some("bytes".to_owned());
        out.content_type
            .get_or_insert_with(|| DEFAULT_CONTENT_TYPE.to_owned());
        Ok(Some(resp))
    }

    pub(super) async fn head_object_checked(
        &self,
        mut req: S3Request<HeadObjectInput>,
    ) -> S3Result<S3Response<HeadObjectOutput>> {
        let (bucket, key) = (req.input.bucket.clone(), req.input.key.clone());
        let file = self.object_file(&bucket, &key).await?;
        self.remember_etag(&bucket, &key, &file).await?;
        // s3s-fs's HEAD reads the sidecars only: a file made unreadable
        // after its ETag was recorded would answer 200 here and 403 to GET.
        self.require_readable(&bucket, &key).await?;
        let preconditions = preconditions_of(&req);
        let range = req.input.range.take();
        let mut resp = self.fs.head_object(req).await?;
        enforce(&preconditions, &resp.output, modified(&file)?)?;
        let out = &mut resp.output;
        if let Some(range) = range {
            let satisfiable = range.check(file.len())?;
            if satisfiable.is_empty() {
                return Err(s3s::s3_error!(InvalidRange));
            }
            let length = satisfiable.end - satisfiable.start;
            out.content_length = Some(i64::try_from(length).map_err(S3Error::internal_error)?);
            out.content_range = Some(format!(
                "bytes {}-{}/{}",
                satisfiable.start,
                satisfiable.end - 1,
                file.len()
            ));
            resp.status = Some(StatusCode::PARTIAL_CONTENT);
        }
        out.accept_ranges = Some("bytes".to_owned());
        out.content_type
            .get_or_insert_with(|| DEFAULT_CONTENT_TYPE.to_owned());
        Ok(resp)
    }

    pub(super) async fn list_objects_v2_complete(
        &self,
        req: S3Request<ListObjectsV2Input>,
    ) -> S3Result<S3Response<ListObjectsV2Output>> {
        let bucket = req.input.bucket.clone();
        let mut resp = self.fs.list_objects_v2(req).await?;
        let out = &mut resp.output;
        self.complete_entries(&bucket, out.contents.as_deref_mut())
            .await?;
        if out
            .encoding_type
            .as_ref()
            .is_some_and(|e| e.as_str() == EncodingType::URL)
        {
            out.contents
                .iter_mut()
                .flatten()
                .for_each(|o| url_encode_opt(o.key.as_mut()));
            out.common_prefixes
                .iter_mut()
                .flatten()
                .for_each(|p| url_encode_opt(p.prefix.as_mut()));
            url_encode_opt(out.prefix.as_mut());
            url_encode_opt(out.delimiter.as_mut());
            url_encode_opt(out.start_after.as_mut());
        }
        Ok(resp)
    }

    pub(super) async fn list_objects_v1(
        &self,
        req: S3Request<ListObjectsInput>,
    ) -> S3Result<S3Response<ListObjectsOutput>> {
        let bucket = req.input.bucket.clone();
        let marker = req.input.marker.clone();
        let mut resp = self.fs.list_objects(req).await?;
        let out = &mut resp.output;
        out.marker = marker;
        self.complete_entries(&bucket, out.contents.as_deref_mut())
            .await?;
        if out
            .encoding_type
            .as_ref()
            .is_some_and(|e| e.as_str() == EncodingType::URL)
        {
            out.contents
                .iter_mut()
                .flatten()
                .for_each(|o| url_encode_opt(o.key.as_mut()));
            out.common_prefixes
                .iter_mut()
                .flatten()
                .for_each(|p| url_encode_opt(p.prefix.as_mut()));
            url_encode_opt(out.prefix.as_mut());
            url_encode_opt(out.delimiter.as_mut());
            url_encode_opt(out.marker.as_mut());
            url_encode_opt(out.next_marker.as_mut());
        }
        Ok(resp)
    }

    /// Adds what S3 lists and s3s-fs leaves out: each object's ETag and storage class.
    async fn complete_entries(&self, bucket: &str, objects: Option<&mut [Object]>) -> S3Result<()> {
        for object in objects.into_iter().flatten() {
            let Some(key) = object.key.as_deref() else {
                continue;
            };
            let file = self.object_file(bucket, key).await?;
            let etag = self.remember_etag(bucket, key, &file).await?;
            object.e_tag = Some(ETag::Strong(etag));
            object.storage_class = Some(ObjectStorageClass::from_static(
                ObjectStorageClass::STANDARD,
            ));
        }
        Ok(())
    }
}
