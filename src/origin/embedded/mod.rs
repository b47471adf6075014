//! The embedded S3-compatible store (`--embedded-s3 DIR`, `origin.endpoint = "embedded"`).
//!
//! Buckets are the sub-folders of a root directory. The store speaks real S3 REST with
//! real SigV4 checks, so the edge reaches it through the same aws-sdk-s3 client as a
//! remote bucket, and `aws s3 sync ./public s3://demo --endpoint-url http://127.0.0.1:9000`
//! publishes to it.
//!
//! 1. [`EmbeddedS3::start`] binds the listener on the caller's thread (a busy port is
//!    reported at once), then serves on a dedicated thread with its own runtime
//!    (`server.rs`), whether or not the caller runs inside tokio or actix.
//! 2. Each request goes through s3s: path-style addressing, SigV4 on the configured key
//!    pair, and a route for headers s3s alone would refuse (`lenient.rs`).
//! 3. The operations run on `s3s_fs::FileSystem`, with the fixes listed in `store.rs`:
//!    conditional GET/HEAD (`preconditions.rs`), website and CORS configurations
//!    (`bucket_config.rs`, stored beside the buckets by `sidecar.rs`).

mod bucket_config;
mod lenient;
mod preconditions;
mod reads;
mod server;
mod sidecar;
mod store;
mod writes;

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::thread::JoinHandle;

use tokio::sync::watch;

/// Development access key used when `S3EDGE_EMBEDDED_ACCESS_KEY` / `S3EDGE_EMBEDDED_SECRET_KEY`
/// are unset. Documented in the README; never use it on a shared machine.
pub const DEFAULT_ACCESS_KEY: &str = "s3edge-dev";
/// Development secret key paired with [`DEFAULT_ACCESS_KEY`].
pub const DEFAULT_SECRET_KEY: &str = "s3edge-dev-secret";

/// How to run the embedded store.
#[derive(Debug, Clone)]
pub struct EmbeddedConfig {
    /// Directory whose sub-folders are the buckets; created if missing.
    pub root: PathBuf,
    /// Address to listen on, e.g. `127.0.0.1:9000`; port 0 picks a free port.
    pub listen: SocketAddr,
    /// Access key clients sign with.
    pub access_key: String,
    /// Secret key clients sign with.
    pub secret_key: String,
}

/// Why the embedded store could not start. Each message tells the operator what to fix.
#[derive(Debug, thiserror::Error)]
pub enum EmbeddedError {
    /// The root directory cannot be created or opened.
    #[error(
        "embedded S3 store: cannot use {} as its root directory: {source}; \
         give --embedded-s3 a directory that s3edge may create, read and write",
        path.display()
    )]
    Root {
        /// The configured root.
        path: PathBuf,
        /// The underlying failure.
        source: io::Error,
    },
    /// The listen address cannot be bound.
    #[error(
        "embedded S3 store: cannot listen on {addr}: {source}; \
         another process may hold the port: stop it or choose another address"
    )]
    Bind {
        /// The configured address.
        addr: SocketAddr,
        /// The underlying failure.
        source: io::Error,
    },
    /// An empty access key or secret key.
    #[error(
        "embedded S3 store: the access key and the secret key must not be empty; \
         set S3EDGE_EMBEDDED_ACCESS_KEY and S3EDGE_EMBEDDED_SECRET_KEY, \
         or unset both to use the development defaults"
    )]
    Credentials,
    /// The server thread or its runtime could not start.
    #[error("embedded S3 store: cannot start its server thread: {source}")]
    Runtime {
        /// The underlying failure.
        source: io::Error,
    },
}

/// A running embedded store. Dropping it stops it, as [`EmbeddedS3::shutdown`] does.
#[derive(Debug)]
pub struct EmbeddedS3 {
    local_addr: SocketAddr,
    stop: Option<watch::Sender<bool>>,
    thread: Option<JoinHandle<()>>,
}

impl EmbeddedS3 {
    /// Binds the listener synchronously (so a busy port is reported at once), then serves
    /// on a dedicated OS thread running its own multi-thread tokio runtime (2 worker
    /// threads), so it works whether the caller is inside a tokio/actix runtime or not.
    pub fn start(config: EmbeddedConfig) -> Result<EmbeddedS3, EmbeddedError> {
        if config.access_key.is_empty() || config.secret_key.is_empty() {
            return Err(EmbeddedError::Credentials);
        }
        let root_error = |source| EmbeddedError::Root {
            path: config.root.clone(),
            source,
        };
        std::fs::create_dir_all(&config.root).map_err(root_error)?;
        let store = store::Store::open(&config.root).map_err(root_error)?;

        let bind_error = |source| EmbeddedError::Bind {
            addr: config.listen,
            source,
        };
        let listener = std::net::TcpListener::bind(config.listen).map_err(bind_error)?;
        listener.set_nonblocking(true).map_err(bind_error)?;
        let local_addr = listener.local_addr().map_err(bind_error)?;

        let service = server::build_service(store, &config.access_key, &config.secret_key);
        let (stop, stop_rx) = watch::channel(false);
        let (ready_tx, ready_rx) = std::sync::mpsc::sync_channel(1);
        let thread = std::thread::Builder::new()
            .name("s3edge-embedded-s3".to_owned())
            .spawn(move || server::run(listener, service, stop_rx, ready_tx))
            .map_err(|source| EmbeddedError::Runtime { source })?;
        let started = ready_rx
            .recv()
            .unwrap_or_else(|_| Err(io::Error::other("the server thread exited while starting")));
        if let Err(source) = started {
            let _ = thread.join();
            return Err(EmbeddedError::Runtime { source });
        }
        // The node's start-up line names it (`embedded S3 store: URL serving ...`).
        tracing::debug!(
            endpoint = %format!("http://{local_addr}"),
            root = %config.root.display(),
            "embedded S3 store listening"
        );
        Ok(EmbeddedS3 {
            local_addr,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// The address the store listens on (the real port when 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The endpoint URL for S3 clients: `"http://127.0.0.1:PORT"`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.local_addr)
    }

    /// Stops accepting and closes connections; after it returns, connecting to the port is
    /// refused. A request in flight gets a few seconds to finish. Blocks the calling thread
    /// until the server thread has exited.
    pub fn shutdown(mut self) {
        self.stop_and_join();
    }

    fn stop_and_join(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(true);
        }
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                tracing::error!("embedded S3 store: the server thread panicked");
            }
            tracing::info!(addr = %self.local_addr, "embedded S3 store stopped");
        }
    }
}

impl Drop for EmbeddedS3 {
    fn drop(&mut self) {
        self.stop_and_join();
    }
}
