//! A store in a temporary directory and an aws-sdk-s3 client for it.

pub use std::net::{SocketAddr, TcpListener, TcpStream};
pub use std::path::Path;
pub use std::time::{Duration, SystemTime};

pub use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
pub use aws_sdk_s3::operation::get_object::builders::GetObjectFluentBuilder;
pub use aws_sdk_s3::primitives::{ByteStream, DateTime};
pub use aws_sdk_s3::types::{
    ChecksumMode, CompletedMultipartUpload, CompletedPart, Condition, CorsConfiguration, CorsRule,
    Delete, ErrorDocument, IndexDocument, ObjectIdentifier, Protocol, Redirect,
    RedirectAllRequestsTo, RoutingRule, WebsiteConfiguration,
};
pub use aws_sdk_s3::Client;
pub use md5::{Digest, Md5};
pub use s3edge::origin::embedded::{
    EmbeddedConfig, EmbeddedError, EmbeddedS3, DEFAULT_ACCESS_KEY, DEFAULT_SECRET_KEY,
};
pub use sha2::Sha256;

pub const BUCKET: &str = "site";

/// A store in a temporary directory, and a client signed with its credentials.
pub struct Harness {
    pub root: tempfile::TempDir,
    pub store: EmbeddedS3,
    pub s3: Client,
}

pub fn config(root: &Path, listen: SocketAddr) -> EmbeddedConfig {
    EmbeddedConfig {
        root: root.to_path_buf(),
        listen,
        access_key: DEFAULT_ACCESS_KEY.to_owned(),
        secret_key: DEFAULT_SECRET_KEY.to_owned(),
    }
}

/// An S3 client for an endpoint, with the given keys (the shared test client).
pub fn client(endpoint: &str, access_key: &str, secret_key: &str) -> Client {
    crate::common::s3_client(endpoint, access_key, secret_key)
}

pub async fn harness() -> Harness {
    let root = tempfile::tempdir().expect("tempdir");
    let store = EmbeddedS3::start(config(root.path(), "127.0.0.1:0".parse().expect("addr")))
        .expect("store starts");
    let s3 = client(&store.endpoint(), DEFAULT_ACCESS_KEY, DEFAULT_SECRET_KEY);
    s3.create_bucket()
        .bucket(BUCKET)
        .send()
        .await
        .expect("create bucket");
    Harness { root, store, s3 }
}

pub fn md5_hex(bytes: &[u8]) -> String {
    hex(&Md5::digest(bytes))
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn status<E>(err: &SdkError<E, aws_smithy_runtime_api::http::Response>) -> u16 {
    err.raw_response().map(|r| r.status().as_u16()).unwrap_or(0)
}

impl Harness {
    pub async fn put(&self, key: &str, body: &[u8]) -> String {
        let out = self
            .s3
            .put_object()
            .bucket(BUCKET)
            .key(key)
            .body(ByteStream::from(body.to_vec()))
            .send()
            .await
            .expect("put object");
        out.e_tag().expect("etag").to_owned()
    }

    /// The bytes of an object that must exist.
    pub async fn body(&self, key: &str) -> Vec<u8> {
        let got = self.s3.get_object().bucket(BUCKET).key(key).send().await;
        let got = got.unwrap_or_else(|e| panic!("get {key}: {e:?}"));
        got.body
            .collect()
            .await
            .expect("body")
            .into_bytes()
            .to_vec()
    }

    pub async fn get_status(
        &self,
        key: &str,
        with: impl FnOnce(GetObjectFluentBuilder) -> GetObjectFluentBuilder,
    ) -> u16 {
        match with(self.s3.get_object().bucket(BUCKET).key(key))
            .send()
            .await
        {
            Ok(out) => {
                out.body.collect().await.expect("body");
                200
            }
            Err(err) => status(&err),
        }
    }
}
