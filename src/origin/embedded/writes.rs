//! Writes: s3s-fs plus the checks and tidying it lacks.

use std::io;
use std::path::PathBuf;

use s3s::dto::*;
use s3s::{s3_error, S3ErrorCode, S3Request, S3Response, S3Result, S3};

use super::sidecar::{storable_key, BucketConfigKind};
use super::store::{internal, Store};

/// Drops `aws-chunked` from a Content-Encoding: it describes the upload's framing, not
/// the object, and S3 does not store it (`aws-chunked,gzip` is stored as `gzip`).
fn without_aws_chunked(encoding: Option<String>) -> Option<String> {
    let encoding = encoding?;
    let kept: Vec<&str> = encoding
        .split(',')
        .map(str::trim)
        .filter(|c| !c.is_empty() && !c.eq_ignore_ascii_case("aws-chunked"))
        .collect();
    (!kept.is_empty()).then(|| kept.join(","))
}

/// Whether a directory holds any file, at any depth.
async fn holds_files(dir: PathBuf) -> io::Result<bool> {
    let mut pending = vec![dir];
    while let Some(dir) = pending.pop() {
        let mut entries = tokio::fs::read_dir(&dir).await?;
        while let Some(entry) = entries.next_entry().await? {
            if entry.file_type().await?.is_dir() {
                pending.push(entry.path());
            } else {
                return Ok(true);
            }
        }
    }
    Ok(false)
}

impl Store {
    pub(super) async fn create_bucket_owned(
        &self,
        req: S3Request<CreateBucketInput>,
    ) -> S3Result<S3Response<CreateBucketOutput>> {
        // One owner: an existing bucket is always "already owned by you" (409).
        self.fs.create_bucket(req).await.map_err(|mut e| {
            if *e.code() == S3ErrorCode::BucketAlreadyExists {
                e.set_code(S3ErrorCode::BucketAlreadyOwnedByYou);
                e.set_message("Your previous request to create the named bucket succeeded and you already own it.");
            }
            e
        })
    }

    /// s3s-fs removes a bucket with all its objects; S3 refuses with `BucketNotEmpty`.
    pub(super) async fn delete_bucket_if_empty(
        &self,
        req: S3Request<DeleteBucketInput>,
    ) -> S3Result<S3Response<DeleteBucketOutput>> {
        let bucket = req.input.bucket.clone();
        self.require_bucket(&bucket).await?;
        let occupied = holds_files(self.files.bucket_dir(&bucket))
            .await
            .map_err(|e| internal("cannot list a bucket", e))?;
        if occupied {
            return Err(s3_error!(
                BucketNotEmpty,
                "The bucket you tried to delete is not empty"
            ));
        }
        let resp = self.fs.delete_bucket(req).await?;
        for kind in BucketConfigKind::ALL {
            self.delete_config(kind, &bucket).await?;
        }
        Ok(resp)
    }

    pub(super) async fn put_object_checked(
        &self,
        mut req: S3Request<PutObjectInput>,
    ) -> S3Result<S3Response<PutObjectOutput>> {
        // s3s-fs would create the bucket's directory on the way.
        Self::require_storable(&req.input.key)?;
        Self::require_redirect_location(req.input.website_redirect_location.as_deref())?;
        self.require_bucket(&req.input.bucket).await?;
        req.input.content_encoding = without_aws_chunked(req.input.content_encoding.take());
        if req.input.if_none_match.is_none() && req.input.if_match.is_none() {
            return self.fs.put_object(req).await;
        }
        // Conditional writes are checked and done one at a time, so of two
        // racing `If-None-Match: *` creates exactly one succeeds.
        let _one_at_a_time = self.conditional_writes.lock().await;
        self.check_write_conditions(&req.input).await?;
        self.fs.put_object(req).await
    }

    /// PutObject's conditions, as AWS S3 evaluates them: `If-None-Match: *`
    /// fails with 412 when the key exists (`If-None-Match: ETAG` when it exists
    /// with that ETag); `If-Match: ETAG` fails with 404 when the key is missing
    /// and 412 when its ETag differs.
    async fn check_write_conditions(&self, input: &PutObjectInput) -> S3Result<()> {
        let (bucket, key) = (&input.bucket, &input.key);
        let current = match self.object_file(bucket, key).await {
            Ok(file) => Some(self.remember_etag(bucket, key, &file).await?),
            Err(e) if *e.code() == S3ErrorCode::NoSuchKey => None,
            Err(e) => return Err(e),
        };
        let matches = |condition: &ETagCondition, etag: &str| match condition {
            ETagCondition::Any => true,
            ETagCondition::ETag(tag) => tag.value() == etag.trim_matches('"'),
        };
        let failed = || {
            s3_error!(
                PreconditionFailed,
                "At least one of the pre-conditions you specified did not hold"
            )
        };
        if let Some(condition) = &input.if_none_match {
            if current
                .as_deref()
                .is_some_and(|etag| matches(condition, etag))
            {
                return Err(failed());
            }
        }
        if let Some(condition) = &input.if_match {
            match current.as_deref() {
                None => return Err(s3_error!(NoSuchKey, "The specified key does not exist.")),
                Some(etag) if !matches(condition, etag) => return Err(failed()),
                Some(_) => {}
            }
        }
        Ok(())
    }

    pub(super) async fn create_multipart_upload_checked(
        &self,
        mut req: S3Request<CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
        Self::require_storable(&req.input.key)?;
        Self::require_redirect_location(req.input.website_redirect_location.as_deref())?;
        self.require_bucket(&req.input.bucket).await?;
        req.input.content_encoding = without_aws_chunked(req.input.content_encoding.take());
        self.fs.create_multipart_upload(req).await
    }

    /// s3s-fs merges the new ETag into the internal file of any object the upload
    /// replaces, so that object's checksums would be served with the new bytes (and fail
    /// the SDK's response validation). Keep only the new ETag.
    pub(super) async fn complete_multipart_upload_clean(
        &self,
        req: S3Request<CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
        let (bucket, key) = (req.input.bucket.clone(), req.input.key.clone());
        let resp = self.fs.complete_multipart_upload(req).await?;
        let etag = self
            .files
            .stored_etag(&bucket, &key)
            .await
            .map_err(|e| internal("cannot read a multipart ETag", e))?;
        if let Some(etag) = etag {
            self.files
                .reset_internal(&bucket, &key, &etag)
                .await
                .map_err(|e| internal("cannot write a multipart ETag", e))?;
        }
        Ok(resp)
    }

    /// With the default `MetadataDirective: COPY` and a source without an attributes
    /// file, s3s-fs leaves the destination's old attributes in place; drop them.
    pub(super) async fn copy_object_checked(
        &self,
        req: S3Request<CopyObjectInput>,
    ) -> S3Result<S3Response<CopyObjectOutput>> {
        let replace = req
            .input
            .metadata_directive
            .as_ref()
            .is_some_and(|d| d.as_str() == MetadataDirective::REPLACE);
        let source = match &req.input.copy_source {
            CopySource::Bucket { bucket, key, .. } => Some((bucket.to_string(), key.to_string())),
            _ => None,
        };
        let (bucket, key) = (req.input.bucket.clone(), req.input.key.clone());
        Self::require_storable(&key)?;
        Self::require_redirect_location(req.input.website_redirect_location.as_deref())?;
        if source
            .as_ref()
            .is_some_and(|(_, src_key)| !storable_key(src_key))
        {
            return Err(s3_error!(NoSuchKey, "The specified key does not exist."));
        }
        let resp = self.fs.copy_object(req).await?;
        if let Some((src_bucket, src_key)) = source {
            let same = src_bucket == bucket && src_key == key;
            let src_has_metadata =
                tokio::fs::try_exists(self.files.metadata_path(&src_bucket, &src_key))
                    .await
                    .map_err(|e| internal("cannot read object metadata", e))?;
            if !replace && !same && !src_has_metadata {
                let stale = self.files.metadata_path(&bucket, &key);
                if let Err(e) = tokio::fs::remove_file(stale).await {
                    if e.kind() != io::ErrorKind::NotFound {
                        return Err(internal("cannot remove stale object metadata", e));
                    }
                }
            }
        }
        Ok(resp)
    }

    /// s3s-fs deletes the object's file and leaves its attributes and ETag behind.
    pub(super) async fn delete_object_with_metadata(
        &self,
        req: S3Request<DeleteObjectInput>,
    ) -> S3Result<S3Response<DeleteObjectOutput>> {
        let (bucket, key) = (req.input.bucket.clone(), req.input.key.clone());
        Self::require_storable(&key)?;
        let resp = self.fs.delete_object(req).await?;
        self.forget_object(&bucket, &key).await?;
        Ok(resp)
    }

    pub(super) async fn delete_objects_with_metadata(
        &self,
        req: S3Request<DeleteObjectsInput>,
    ) -> S3Result<S3Response<DeleteObjectsOutput>> {
        let bucket = req.input.bucket.clone();
        for object in &req.input.delete.objects {
            Self::require_storable(&object.key)?;
        }
        self.require_bucket(&bucket).await?;
        let resp = self.fs.delete_objects(req).await?;
        for deleted in resp.output.deleted.iter().flatten() {
            if let Some(key) = &deleted.key {
                self.forget_object(&bucket, key).await?;
            }
        }
        Ok(resp)
    }

    async fn forget_object(&self, bucket: &str, key: &str) -> S3Result<()> {
        let still_there = tokio::fs::try_exists(self.files.bucket_dir(bucket).join(key))
            .await
            .unwrap_or(true);
        if key.ends_with('/') || still_there {
            return Ok(());
        }
        self.files
            .remove_object_sidecars(bucket, key)
            .await
            .map_err(|e| internal("cannot remove object metadata", e))
    }
}

#[cfg(test)]
mod tests {
    use super::without_aws_chunked;

    #[test]
    fn aws_chunked_is_not_a_stored_content_encoding() {
        let cases = [
            (None, None),
            (Some("aws-chunked"), None),
            (Some("gzip"), Some("gzip")),
            (Some("aws-chunked,gzip"), Some("gzip")),
            (Some("gzip, aws-chunked"), Some("gzip")),
            (Some("br,gzip"), Some("br,gzip")),
        ];
        for (given, stored) in cases {
            assert_eq!(
                without_aws_chunked(given.map(str::to_owned)).as_deref(),
                stored,
                "{given:?}"
            );
        }
    }
}
