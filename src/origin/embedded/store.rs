//! The S3 implementation: `s3s_fs::FileSystem`, delegated to, with the fixes an S3
//! website CDN depends on.
//!
//! Reads (`reads.rs`): a directory is not an object; `NoSuchBucket` for a missing bucket;
//! conditional GET/HEAD (304/412); suffix ranges longer than the object; Range on HEAD;
//! `Accept-Ranges`; the default `binary/octet-stream` type; ETag, storage class and
//! `encoding-type=url` in listings.
//! Writes (`writes.rs`): conditional PutObject (If-Match / If-None-Match, 412
//! otherwise) is atomic between writers; no implicit bucket creation; `aws-chunked` is not a stored
//! Content-Encoding; deleted objects lose their metadata; a multipart object keeps no stale
//! checksum; `BucketNotEmpty`; `BucketAlreadyOwnedByYou`; conditional PutObject
//! (`If-None-Match: *`, `If-Match`).
//! Keys (`sidecar::key_fit`): a key with a leading `/` or a `.`/`..` segment would
//! resolve outside its bucket's directory, one with an empty segment (`a//b`) to another
//! key's file, and one with a segment over 255 bytes to no file at all; none is ever
//! found, and writes of them are refused before anything is written.
//! Bucket configurations (`bucket_config.rs`, stored by `sidecar.rs`): website and CORS.

use std::io;
use std::path::Path;
use std::sync::Arc;

use s3s::dto::*;
use s3s::{s3_error, S3Error, S3Request, S3Response, S3Result, S3};
use s3s_fs::FileSystem;

use super::bucket_config::{validate_cors, validate_website};
use super::sidecar::{key_fit, BucketConfigKind, KeyFit, Sidecars};

/// The embedded store; cheap to clone (the state is shared).
#[derive(Debug, Clone)]
pub(crate) struct Store {
    pub(super) fs: Arc<FileSystem>,
    pub(super) files: Arc<Sidecars>,
    /// Held by every conditional PutObject from its check to its rename, so two
    /// writers with the same `If-Match` cannot both succeed (s3s-fs checks,
    /// then writes).
    pub(super) conditional_writes: Arc<tokio::sync::Mutex<()>>,
}

impl Store {
    /// Opens the store on an existing root directory.
    pub(crate) fn open(root: &Path) -> io::Result<Self> {
        let root = root.canonicalize()?;
        let fs = FileSystem::new(&root).map_err(|e| io::Error::other(format!("{e:?}")))?;
        Ok(Self {
            fs: Arc::new(fs),
            files: Arc::new(Sidecars::new(root)),
            conditional_writes: Arc::new(tokio::sync::Mutex::new(())),
        })
    }

    /// Refuses a website redirect location S3 refuses (400 InvalidArgument,
    /// its own message): one that starts with neither `/` nor `http(s)://`.
    pub(super) fn require_redirect_location(location: Option<&str>) -> S3Result<()> {
        match location {
            Some(location) if !crate::website::valid_redirect_location(location) => {
                Err(s3_error!(
                    InvalidArgument,
                    "The website redirect location must have a prefix of 'http://' or 'https://' or '/'"
                ))
            }
            _ => Ok(()),
        }
    }

    /// Refuses a key the store cannot keep as a file of its own in its bucket's
    /// directory, before anything is written.
    pub(super) fn require_storable(key: &str) -> S3Result<()> {
        match key_fit(key) {
            KeyFit::Storable => Ok(()),
            KeyFit::LeavesBucket => Err(s3_error!(
                InvalidArgument,
                "The embedded store does not accept keys with a leading '/' or a '.' or '..' segment"
            )),
            KeyFit::EmptySegment => Err(s3_error!(
                InvalidArgument,
                "The embedded store does not accept keys with an empty segment ('//'): \
                 its file system would read them as another key"
            )),
            // S3 answers KeyTooLongError (400) for a key over 1024 bytes; s3s does too.
            // A key within 1024 bytes whose segment the file system cannot name is too
            // long for this store, and says so, rather than failing as an InternalError.
            KeyFit::SegmentTooLong => Err(s3_error!(
                KeyTooLongError,
                "The embedded store keeps each '/'-separated segment of a key as a file \
                 or folder name, and a name may hold at most 255 bytes"
            )),
        }
    }

    /// `NoSuchBucket` unless the bucket's directory exists.
    pub(super) async fn require_bucket(&self, bucket: &str) -> S3Result<()> {
        match tokio::fs::metadata(self.files.bucket_dir(bucket)).await {
            Ok(meta) if meta.is_dir() => Ok(()),
            _ => Err(s3_error!(
                NoSuchBucket,
                "The specified bucket does not exist"
            )),
        }
    }
}

/// Logs an I/O failure and turns it into `InternalError` (500).
pub(super) fn internal(context: &str, e: io::Error) -> S3Error {
    tracing::error!(error = %e, "embedded S3 store: {context}");
    S3Error::internal_error(e)
}

#[async_trait::async_trait]
impl S3 for Store {
    // Forwarded to s3s-fs unchanged.
    async fn list_buckets(
        &self,
        req: S3Request<ListBucketsInput>,
    ) -> S3Result<S3Response<ListBucketsOutput>> {
        self.fs.list_buckets(req).await
    }

    async fn head_bucket(
        &self,
        req: S3Request<HeadBucketInput>,
    ) -> S3Result<S3Response<HeadBucketOutput>> {
        self.fs.head_bucket(req).await
    }

    async fn get_bucket_location(
        &self,
        req: S3Request<GetBucketLocationInput>,
    ) -> S3Result<S3Response<GetBucketLocationOutput>> {
        self.fs.get_bucket_location(req).await
    }

    async fn upload_part(
        &self,
        req: S3Request<UploadPartInput>,
    ) -> S3Result<S3Response<UploadPartOutput>> {
        self.fs.upload_part(req).await
    }

    async fn upload_part_copy(
        &self,
        req: S3Request<UploadPartCopyInput>,
    ) -> S3Result<S3Response<UploadPartCopyOutput>> {
        self.fs.upload_part_copy(req).await
    }

    async fn list_parts(
        &self,
        req: S3Request<ListPartsInput>,
    ) -> S3Result<S3Response<ListPartsOutput>> {
        self.fs.list_parts(req).await
    }

    async fn abort_multipart_upload(
        &self,
        req: S3Request<AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
        self.fs.abort_multipart_upload(req).await
    }

    async fn create_bucket(
        &self,
        req: S3Request<CreateBucketInput>,
    ) -> S3Result<S3Response<CreateBucketOutput>> {
        self.create_bucket_owned(req).await
    }

    async fn delete_bucket(
        &self,
        req: S3Request<DeleteBucketInput>,
    ) -> S3Result<S3Response<DeleteBucketOutput>> {
        self.delete_bucket_if_empty(req).await
    }

    async fn list_objects(
        &self,
        req: S3Request<ListObjectsInput>,
    ) -> S3Result<S3Response<ListObjectsOutput>> {
        self.list_objects_v1(req).await
    }

    async fn list_objects_v2(
        &self,
        req: S3Request<ListObjectsV2Input>,
    ) -> S3Result<S3Response<ListObjectsV2Output>> {
        self.list_objects_v2_complete(req).await
    }

    async fn get_object(
        &self,
        req: S3Request<GetObjectInput>,
    ) -> S3Result<S3Response<GetObjectOutput>> {
        self.get_object_checked(req).await
    }

    async fn head_object(
        &self,
        req: S3Request<HeadObjectInput>,
    ) -> S3Result<S3Response<HeadObjectOutput>> {
        self.head_object_checked(req).await
    }

    async fn put_object(
        &self,
        req: S3Request<PutObjectInput>,
    ) -> S3Result<S3Response<PutObjectOutput>> {
        self.put_object_checked(req).await
    }

    async fn copy_object(
        &self,
        req: S3Request<CopyObjectInput>,
    ) -> S3Result<S3Response<CopyObjectOutput>> {
        self.copy_object_checked(req).await
    }

    async fn delete_object(
        &self,
        req: S3Request<DeleteObjectInput>,
    ) -> S3Result<S3Response<DeleteObjectOutput>> {
        self.delete_object_with_metadata(req).await
    }

    async fn delete_objects(
        &self,
        req: S3Request<DeleteObjectsInput>,
    ) -> S3Result<S3Response<DeleteObjectsOutput>> {
        self.delete_objects_with_metadata(req).await
    }

    async fn create_multipart_upload(
        &self,
        req: S3Request<CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
        self.create_multipart_upload_checked(req).await
    }

    async fn complete_multipart_upload(
        &self,
        req: S3Request<CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
        self.complete_multipart_upload_clean(req).await
    }

    async fn put_bucket_website(
        &self,
        req: S3Request<PutBucketWebsiteInput>,
    ) -> S3Result<S3Response<PutBucketWebsiteOutput>> {
        let input = req.input;
        self.require_bucket(&input.bucket).await?;
        validate_website(&input.website_configuration)?;
        self.save_config(
            BucketConfigKind::Website,
            &input.bucket,
            &input.website_configuration,
        )
        .await?;
        Ok(S3Response::new(PutBucketWebsiteOutput::default()))
    }

    async fn get_bucket_website(
        &self,
        req: S3Request<GetBucketWebsiteInput>,
    ) -> S3Result<S3Response<GetBucketWebsiteOutput>> {
        let bucket = &req.input.bucket;
        self.require_bucket(bucket).await?;
        let config: WebsiteConfiguration = self
            .load_config(BucketConfigKind::Website, bucket)
            .await?
            .ok_or_else(|| {
                s3_error!(
                    NoSuchWebsiteConfiguration,
                    "The specified bucket does not have a website configuration"
                )
            })?;
        Ok(S3Response::new(GetBucketWebsiteOutput {
            error_document: config.error_document,
            index_document: config.index_document,
            redirect_all_requests_to: config.redirect_all_requests_to,
            routing_rules: config.routing_rules,
        }))
    }

    async fn delete_bucket_website(
        &self,
        req: S3Request<DeleteBucketWebsiteInput>,
    ) -> S3Result<S3Response<DeleteBucketWebsiteOutput>> {
        self.require_bucket(&req.input.bucket).await?;
        self.delete_config(BucketConfigKind::Website, &req.input.bucket)
            .await?;
        Ok(S3Response::new(DeleteBucketWebsiteOutput::default()))
    }

    async fn put_bucket_cors(
        &self,
        req: S3Request<PutBucketCorsInput>,
    ) -> S3Result<S3Response<PutBucketCorsOutput>> {
        let input = req.input;
        self.require_bucket(&input.bucket).await?;
        validate_cors(&input.cors_configuration)?;
        self.save_config(
            BucketConfigKind::Cors,
            &input.bucket,
            &input.cors_configuration,
        )
        .await?;
        Ok(S3Response::new(PutBucketCorsOutput::default()))
    }

    async fn get_bucket_cors(
        &self,
        req: S3Request<GetBucketCorsInput>,
    ) -> S3Result<S3Response<GetBucketCorsOutput>> {
        let bucket = &req.input.bucket;
        self.require_bucket(bucket).await?;
        let config: CORSConfiguration = self
            .load_config(BucketConfigKind::Cors, bucket)
            .await?
            .ok_or_else(|| {
                s3_error!(
                    NoSuchCORSConfiguration,
                    "The CORS configuration does not exist"
                )
            })?;
        Ok(S3Response::new(GetBucketCorsOutput {
            cors_rules: Some(config.cors_rules),
        }))
    }

    async fn delete_bucket_cors(
        &self,
        req: S3Request<DeleteBucketCorsInput>,
    ) -> S3Result<S3Response<DeleteBucketCorsOutput>> {
        self.require_bucket(&req.input.bucket).await?;
        self.delete_config(BucketConfigKind::Cors, &req.input.bucket)
            .await?;
        Ok(S3Response::new(DeleteBucketCorsOutput::default()))
    }
}

impl Store {
    async fn load_config<T: serde::de::DeserializeOwned>(
        &self,
        kind: BucketConfigKind,
        bucket: &str,
    ) -> S3Result<Option<T>> {
        self.files
            .load_config(kind, bucket)
            .await
            .map_err(|e| internal("cannot read a bucket configuration", e))
    }

    async fn save_config<T: serde::Serialize>(
        &self,
        kind: BucketConfigKind,
        bucket: &str,
        value: &T,
    ) -> S3Result<()> {
        self.files
            .save_config(kind, bucket, value)
            .await
            .map_err(|e| internal("cannot write a bucket configuration", e))
    }

    pub(super) async fn delete_config(&self, kind: BucketConfigKind, bucket: &str) -> S3Result<()> {
        self.files
            .delete_config(kind, bucket)
            .await
            .map_err(|e| internal("cannot delete a bucket configuration", e))
    }
}
