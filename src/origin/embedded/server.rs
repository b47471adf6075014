//! The store's HTTP server: an accept loop on its own thread and tokio runtime,
//! HTTP/1.1 with keep-alive through hyper, and a graceful stop.

use std::io;
use std::net::SocketAddr;
use std::sync::mpsc::SyncSender;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::header::{HeaderMap, HeaderValue, CONTENT_ENCODING};
use hyper::server::conn::http1;
use hyper::service::{service_fn, Service};
use hyper::Request;
use hyper_util::rt::{TokioIo, TokioTimer};
use s3s::auth::{S3Auth, SecretKey, SimpleAuth};
use s3s::service::{S3Service, S3ServiceBuilder};
use s3s::{s3_error, S3Result};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::{debug, warn};

use super::lenient::LenientRoute;
use super::store::Store;

/// Worker threads of the store's own runtime.
const WORKER_THREADS: usize = 2;
/// How long a stop waits for in-flight requests before closing their connections.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// Pause after a failed `accept` (e.g. out of file descriptors) before trying again.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// `SimpleAuth` on the configured key pair, answering `InvalidAccessKeyId` (403) for an
/// unknown access key as S3 does (`SimpleAuth` alone answers `NotSignedUp`).
struct StoreAuth(SimpleAuth);

#[async_trait::async_trait]
impl S3Auth for StoreAuth {
    async fn get_secret_key(&self, access_key: &str) -> S3Result<SecretKey> {
        self.0.lookup(access_key).cloned().ok_or_else(|| {
            s3_error!(
                InvalidAccessKeyId,
                "The AWS Access Key Id you provided does not exist in our records."
            )
        })
    }
}

/// The s3s service: path-style addressing (no virtual-host parser), SigV4 on the given
/// key pair, and the lenient route for headers s3s alone would refuse.
pub(super) fn build_service(store: Store, access_key: &str, secret_key: &str) -> S3Service {
    let direct = S3ServiceBuilder::new(store.clone()).build();
    let mut builder = S3ServiceBuilder::new(store);
    builder.set_auth(StoreAuth(SimpleAuth::from_single(access_key, secret_key)));
    builder.set_route(LenientRoute { direct });
    builder.build()
}

/// The server thread's body: builds the runtime, reports readiness (or the failure)
/// through `ready`, serves until `stop` changes or its sender is dropped, then stops.
pub(super) fn run(
    listener: std::net::TcpListener,
    service: S3Service,
    stop: watch::Receiver<bool>,
    ready: SyncSender<io::Result<()>>,
) {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(WORKER_THREADS)
        .thread_name("s3edge-embedded-s3-worker")
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    runtime.block_on(async move {
        let listener = match TcpListener::from_std(listener) {
            Ok(listener) => listener,
            Err(e) => {
                let _ = ready.send(Err(e));
                return;
            }
        };
        let _ = ready.send(Ok(()));
        serve(listener, service, stop).await;
    });
    runtime.shutdown_timeout(SHUTDOWN_GRACE);
}

async fn serve(listener: TcpListener, service: S3Service, mut stop: watch::Receiver<bool>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    connections.spawn(serve_connection(stream, peer, service.clone(), stop.clone()));
                }
                Err(e) => {
                    warn!(error = %e, "embedded S3 store: accept failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    // Refuse new connections from here on; let the open ones finish their request.
    drop(listener);
    let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        warn!("embedded S3 store: closing connections still busy after {SHUTDOWN_GRACE:?}");
        connections.abort_all();
    }
}

/// aws-sdk-s3 sends `Content-Encoding: aws-chunked` for a streaming upload as a second
/// field line beside the object's own encoding, and s3s refuses a repeated header. One line
/// with the values joined by commas means the same (RFC 9110 §5.3) and signs the same
/// (SigV4 joins repeated headers with commas), so the request reaches s3s as one line.
fn merge_content_encoding(headers: &mut HeaderMap) {
    if headers.get_all(CONTENT_ENCODING).iter().nth(1).is_none() {
        return;
    }
    let joined: Vec<&[u8]> = headers
        .get_all(CONTENT_ENCODING)
        .iter()
        .map(|v| v.as_bytes().trim_ascii())
        .collect();
    if let Ok(value) = HeaderValue::from_bytes(&joined.join(&b","[..])) {
        headers.insert(CONTENT_ENCODING, value);
    }
}

/// A request id unique within the process: S3-style, 16 upper-case hex digits.
fn next_request_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("{:016X}", n ^ 0x5_3ED6_E000_0000)
}

async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    service: S3Service,
    mut stop: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .keep_alive(true)
        .serve_connection(
            TokioIo::new(stream),
            service_fn(move |mut req: Request<Incoming>| {
                merge_content_encoding(req.headers_mut());
                let response = Service::call(&service, req);
                async move {
                    let mut response = response.await?;
                    // Every answer carries a request id, as S3's do, for access logs.
                    if let Ok(id) = HeaderValue::from_str(&next_request_id()) {
                        response.headers_mut().insert("x-amz-request-id", id);
                    }
                    Ok::<_, s3s::HttpError>(response)
                }
            }),
        );
    tokio::pin!(conn);
    let result = tokio::select! {
        result = conn.as_mut() => result,
        _ = stop.changed() => {
            // Finishes the request in flight, if any, then closes; idle ones close at once.
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = result {
        debug!(%peer, error = %e, "embedded S3 store: connection ended with an error");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_content_encoding_lines_become_one_comma_joined_line() {
        let mut headers = HeaderMap::new();
        headers.append(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        headers.append(CONTENT_ENCODING, HeaderValue::from_static(" aws-chunked"));
        merge_content_encoding(&mut headers);
        let values: Vec<_> = headers.get_all(CONTENT_ENCODING).iter().collect();
        assert_eq!(values, [HeaderValue::from_static("gzip,aws-chunked")]);
    }
}
