//! s3edge: a self-hosted CDN edge node for static websites stored in S3 buckets.
//!
//! See the README for the product and docs/ARCHITECTURE.md for the request
//! pipeline, the cache's contract and the seams: `handler/` runs the pipeline,
//! `cache/` owns read-through, `state.rs` is what every worker shares,
//! `server/` runs a node.

pub mod access_log;
pub mod acme;
pub mod admin;
pub mod cache;
pub mod cluster;
pub mod compress;
pub mod config;
pub mod cors;
pub mod handler;
pub mod http;
pub mod metrics;
pub mod origin;
pub mod releases;
pub mod server;
pub mod site;
pub mod state;
pub mod status;
pub mod throttle;
pub mod tls;
pub mod website;
