//! The embedded S3 store through real HTTP, real SigV4 and the real aws-sdk-s3 client
//! (with its default request checksums and response validation), plus the AWS CLI.
#![cfg(feature = "embedded")]

mod common;

#[path = "embedded_store/harness.rs"]
mod harness;

#[path = "embedded_store/bucket_config.rs"]
mod bucket_config;
#[path = "embedded_store/conditional.rs"]
mod conditional;
#[path = "embedded_store/conditional_writes.rs"]
mod conditional_writes;
#[path = "embedded_store/errors.rs"]
mod errors;
#[path = "embedded_store/hashing.rs"]
mod hashing;
#[path = "embedded_store/keys.rs"]
mod keys;
#[path = "embedded_store/lifecycle.rs"]
mod lifecycle;
#[path = "embedded_store/objects.rs"]
mod objects;
