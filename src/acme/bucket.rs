//! Shared ACME storage in a bucket, for a ring of nodes: every node reads the
//! same account and certificates, and the order lock is a PutObject with
//! `If-None-Match: *` (a conditional write: of two nodes, exactly one creates
//! the lock object), as Caddy's S3 storage modules do.

use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_s3::primitives::ByteStream;

use super::storage::{Storage, StorageError};
use crate::config::{CredentialsSource, Endpoint, OriginConfig};
use crate::origin::s3::{BuildError, EmbeddedEndpoint, S3Origin};

/// `--acme-bucket-prefix` default.
pub const DEFAULT_PREFIX: &str = "s3edge-acme/";

/// Where the shared storage lives (`--acme-bucket*` flags).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcmeBucket {
    pub bucket: String,
    /// Key prefix inside the bucket (`s3edge-acme/`).
    pub prefix: String,
    pub endpoint: Endpoint,
    pub region: Option<String>,
}

/// Whether `--acme-bucket-endpoint embedded` needs the embedded store started.
pub fn uses_embedded(options: &super::AcmeOptions) -> bool {
    options
        .bucket
        .as_ref()
        .is_some_and(|bucket| bucket.endpoint == Endpoint::Embedded)
}

/// With `--acme-bucket`, opens the bucket as the ACME storage.
pub async fn open_shared(
    options: &mut super::AcmeOptions,
    embedded: Option<&EmbeddedEndpoint>,
) -> Result<(), BuildError> {
    if let Some(bucket) = &options.bucket {
        options.storage = Some(open(bucket, embedded).await?);
    }
    Ok(())
}

/// Opens the bucket storage with the same client settings a site's origin
/// gets: the standard AWS credential chain, or the embedded store's keys.
pub async fn open(
    config: &AcmeBucket,
    embedded: Option<&EmbeddedEndpoint>,
) -> Result<Arc<dyn Storage>, BuildError> {
    let origin = OriginConfig {
        bucket: config.bucket.clone(),
        path_style: config.endpoint != Endpoint::Aws,
        endpoint: config.endpoint.clone(),
        region: config.region.clone(),
        prefix: String::new(),
        credentials: CredentialsSource::Default,
        denied_as_missing: false,
        timeout: crate::config::DEFAULT_ORIGIN_TIMEOUT,
        http: None,
    };
    let origin = S3Origin::build(&origin, embedded).await?;
    Ok(Arc::new(BucketStorage::new(
        origin.client().clone(),
        &config.bucket,
        &config.prefix,
    )))
}

/// The account and certificates as objects under `prefix` in `bucket`.
pub struct BucketStorage {
    client: aws_sdk_s3::Client,
    bucket: String,
    prefix: String,
}

impl BucketStorage {
    pub fn new(client: aws_sdk_s3::Client, bucket: &str, prefix: &str) -> BucketStorage {
        BucketStorage {
            client,
            bucket: bucket.to_string(),
            prefix: prefix.to_string(),
        }
    }

    fn object(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    fn error(&self, key: &str, action: &str, detail: impl std::fmt::Display) -> StorageError {
        StorageError {
            location: format!("s3://{}/{}", self.bucket, self.object(key)),
            detail: format!("{action} failed: {detail}"),
        }
    }
}

/// The HTTP status of a failed S3 call, when the service answered.
fn status<E>(
    error: &aws_sdk_s3::error::SdkError<
        E,
        aws_smithy_runtime_api::client::orchestrator::HttpResponse,
    >,
) -> Option<u16> {
    error.raw_response().map(|r| r.status().as_u16())
}

#[async_trait]
impl Storage for BucketStorage {
    async fn load(&self, key: &str) -> Result<Option<Vec<u8>>, StorageError> {
        let result = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(self.object(key))
            .send()
            .await;
        match result {
            Ok(output) => {
                let body = output
                    .body
                    .collect()
                    .await
                    .map_err(|e| self.error(key, "GetObject", e))?;
                Ok(Some(body.into_bytes().to_vec()))
            }
            Err(e) if status(&e) == Some(404) => Ok(None),
            Err(e) => Err(self.error(key, "GetObject", aws_sdk_s3::error::DisplayErrorContext(e))),
        }
    }

    async fn store(&self, key: &str, value: &[u8]) -> Result<(), StorageError> {
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(self.object(key))
            .body(ByteStream::from(value.to_vec()))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| self.error(key, "PutObject", aws_sdk_s3::error::DisplayErrorContext(e)))
    }

    async fn create_new(&self, key: &str, value: &[u8]) -> Result<bool, StorageError> {
        let result = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(self.object(key))
            .if_none_match("*")
            .body(ByteStream::from(value.to_vec()))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            // 412: the object exists; 409: a concurrent conditional write won.
            Err(e) if matches!(status(&e), Some(412 | 409)) => Ok(false),
            Err(e) => Err(self.error(
                key,
                "PutObject If-None-Match",
                aws_sdk_s3::error::DisplayErrorContext(e),
            )),
        }
    }

    async fn delete(&self, key: &str) -> Result<(), StorageError> {
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(self.object(key))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| {
                self.error(
                    key,
                    "DeleteObject",
                    aws_sdk_s3::error::DisplayErrorContext(e),
                )
            })
    }

    fn describe(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.prefix)
    }

    fn is_shared(&self) -> bool {
        true
    }
}
