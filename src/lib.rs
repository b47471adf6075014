//! s3edge: a self-hosted CDN edge node for static websites stored in S3 buckets.
//!
//! See DESIGN.md for the contract; `server.rs` for the request pipeline.

pub mod access_log;
pub mod admin;
pub mod cache;
pub mod compress;
pub mod config;
pub mod cors;
pub mod handler;
pub mod http;
pub mod metrics;
pub mod origin;
pub mod server;
pub mod site;
pub mod status;
pub mod tls;
pub mod website;
