//! A fault-injecting HTTP proxy between the edge's real aws-sdk-s3 client and the
//! embedded store, so origin faults travel the whole real path: the SDK's
//! parsing and retries, `src/origin/s3.rs`'s classification, the handler.
//!
//! Each request gets its own upstream connection; the request is forwarded byte
//! for byte (the `Host` header unchanged, so SigV4 stays valid) with only a
//! `Connection: close` added, and the answer is copied back until the store
//! closes. Switched to a [`HttpFault`], the proxy answers with that fault instead.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What the proxy does with the next requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpFault {
    /// Forward to the store unchanged.
    None,
    /// Close the listener: connections are refused at the TCP level.
    Refuse,
    /// Read the request, then never answer.
    Stall,
    /// `503 Slow Down` with S3's XML error body (`<Code>SlowDown</Code>`).
    SlowDown,
    /// `500` with S3's XML error body (`<Code>InternalError</Code>`).
    InternalError,
    /// `500` whose body is not XML at all.
    GarbageError,
    /// The store's head (with its `Content-Length`), then only this many body
    /// bytes, then the connection closes.
    ShortBody(usize),
    /// The store's head, this many body bytes, then silence while the fault lasts.
    StallBody(usize),
    /// A 206 whose `Content-Range` is moved one byte on from the one the store sent.
    WrongContentRange,
    /// The same, with the status line turned into `200 OK`.
    WrongContentRangeOn200,
}

/// A marker in every error body the proxy makes up, to look for in the edge's answers.
pub const FAULT_REQUEST_ID: &str = "FAULTPROXYREQ1";
/// The text of [`HttpFault::GarbageError`]'s body.
pub const GARBAGE_BODY: &str = "GARBAGE-FROM-ORIGIN <<<not xml at all & no closing";

struct Shared {
    fault: Mutex<HttpFault>,
    upstream: Mutex<Option<SocketAddr>>,
    /// Requests the proxy received (what the SDK sent, retries included).
    attempts: AtomicUsize,
    /// Their request lines, in order.
    request_lines: Mutex<Vec<String>>,
    /// The status lines of the answers forwarded (after any rewrite).
    status_lines: Mutex<Vec<String>>,
    /// Requests carrying `x-amz-copy-source` (CopyObject, UploadPartCopy).
    copies: AtomicUsize,
    /// Whether the listener is open (false under [`HttpFault::Refuse`]).
    listening: AtomicBool,
}

impl Shared {
    fn fault(&self) -> HttpFault {
        self.fault.lock().unwrap().clone()
    }
}

/// A running proxy on `127.0.0.1`, on its own thread and runtime.
pub struct FaultProxy {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    stop: Option<tokio::sync::watch::Sender<bool>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FaultProxy {
    /// Starts a proxy with no upstream yet (set it with [`FaultProxy::set_upstream`]).
    pub fn start() -> FaultProxy {
        let shared = Arc::new(Shared {
            fault: Mutex::new(HttpFault::None),
            upstream: Mutex::new(None),
            attempts: AtomicUsize::new(0),
            request_lines: Mutex::new(Vec::new()),
            status_lines: Mutex::new(Vec::new()),
            copies: AtomicUsize::new(0),
            listening: AtomicBool::new(true),
        });
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("proxy bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("proxy addr");
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let thread = {
            let shared = shared.clone();
            std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("proxy runtime");
                runtime.block_on(async move {
                    let listener = TcpListener::from_std(listener).expect("proxy listener");
                    accept_loop(listener, addr, shared, stopped).await;
                });
            })
        };
        FaultProxy {
            addr,
            shared,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn set_upstream(&self, upstream: SocketAddr) {
        *self.shared.upstream.lock().unwrap() = Some(upstream);
    }

    /// Switches the fault for every request from now on; returns once the
    /// listener is closed (under [`HttpFault::Refuse`]) or open (otherwise).
    pub fn set(&self, fault: HttpFault) {
        let listening = fault != HttpFault::Refuse;
        *self.shared.fault.lock().unwrap() = fault;
        for _ in 0..500 {
            if self.shared.listening.load(Ordering::SeqCst) == listening {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("the proxy's listener did not follow the fault");
    }

    /// Back to forwarding.
    pub fn clear(&self) {
        self.set(HttpFault::None);
    }

    /// Requests received since the start or the last [`FaultProxy::reset_counts`].
    pub fn attempts(&self) -> usize {
        self.shared.attempts.load(Ordering::SeqCst)
    }

    /// The request lines received, e.g. `GET /bucket/key?x-id=GetObject HTTP/1.1`.
    /// Requests that copied inside the store (`x-amz-copy-source`).
    pub fn copies(&self) -> usize {
        self.shared.copies.load(Ordering::SeqCst)
    }

    pub fn request_lines(&self) -> Vec<String> {
        self.shared.request_lines.lock().unwrap().clone()
    }

    /// The status lines of the answers forwarded from the store, as the edge got them.
    pub fn status_lines(&self) -> Vec<String> {
        self.shared.status_lines.lock().unwrap().clone()
    }

    pub fn reset_counts(&self) {
        self.shared.attempts.store(0, Ordering::SeqCst);
        self.shared.copies.store(0, Ordering::SeqCst);
        self.shared.request_lines.lock().unwrap().clear();
        self.shared.status_lines.lock().unwrap().clear();
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(true);
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Accepts connections; under [`HttpFault::Refuse`] the listener is closed (so the
/// kernel refuses) and bound again on the same address when the fault ends.
async fn accept_loop(
    listener: TcpListener,
    addr: SocketAddr,
    shared: Arc<Shared>,
    mut stopped: tokio::sync::watch::Receiver<bool>,
) {
    let mut listener = Some(listener);
    loop {
        let refusing = shared.fault() == HttpFault::Refuse;
        if refusing {
            listener = None;
        } else if listener.is_none() {
            listener = TcpListener::bind(addr).await.ok();
        }
        shared.listening.store(listener.is_some(), Ordering::SeqCst);
        let tick = tokio::time::sleep(Duration::from_millis(10));
        match &listener {
            Some(l) => tokio::select! {
                accepted = l.accept() => {
                    if let Ok((stream, _)) = accepted {
                        tokio::spawn(serve_connection(stream, shared.clone()));
                    }
                }
                _ = tick => {}
                _ = stopped.changed() => return,
            },
            None => tokio::select! {
                _ = tick => {}
                _ = stopped.changed() => return,
            },
        }
    }
}

/// Reads up to the end of an HTTP head; returns the head and the bytes after it.
async fn read_head(stream: &mut TcpStream) -> std::io::Result<Option<(Vec<u8>, Vec<u8>)>> {
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = find(&buf, b"\r\n\r\n") {
            let rest = buf.split_off(end + 4);
            return Ok(Some((buf, rest)));
        }
        if buf.len() > 64 * 1024 {
            return Ok(None);
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The value of a header in a head, by case-insensitive name.
fn header_value(head: &str, name: &str) -> Option<String> {
    head.split("\r\n").skip(1).find_map(|line| {
        let (n, v) = line.split_once(':')?;
        n.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().to_string())
    })
}

/// The request head with any `Connection` header replaced by `Connection: close`
/// (not a signed header: SigV4 still verifies).
fn with_connection_close(head: &str) -> String {
    let mut lines: Vec<&str> = head
        .trim_end_matches("\r\n")
        .split("\r\n")
        .filter(|line| {
            !line
                .split_once(':')
                .is_some_and(|(n, _)| n.trim().eq_ignore_ascii_case("connection"))
        })
        .collect();
    lines.push("Connection: close");
    format!("{}\r\n\r\n", lines.join("\r\n"))
}

/// A response head with its `Content-Range: bytes A-B/T` moved to `A+1`-`B+1`/`T+1`:
/// the same length, the wrong bytes.
fn shifted_content_range(head: &str) -> String {
    head.split("\r\n")
        .map(|line| {
            let Some((name, value)) = line.split_once(':') else {
                return line.to_string();
            };
            if !name.trim().eq_ignore_ascii_case("content-range") {
                return line.to_string();
            }
            let parsed = value
                .trim()
                .strip_prefix("bytes ")
                .and_then(|r| r.split_once('/'))
                .and_then(|(range, total)| {
                    let (a, b) = range.split_once('-')?;
                    Some((
                        a.parse::<u64>().ok()?,
                        b.parse::<u64>().ok()?,
                        total.parse::<u64>().ok()?,
                    ))
                });
            match parsed {
                Some((a, b, t)) => format!("{name}: bytes {}-{}/{}", a + 1, b + 1, t + 1),
                None => line.to_string(),
            }
        })
        .collect::<Vec<_>>()
        .join("\r\n")
}

/// A complete made-up answer.
fn canned(status: &str, content_type: &str, body: &str, head_only: bool) -> Vec<u8> {
    let mut answer = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nx-amz-request-id: {FAULT_REQUEST_ID}\r\n\
         x-amz-id-2: fault-proxy-host-id\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    if !head_only {
        answer.extend_from_slice(body.as_bytes());
    }
    answer
}

fn s3_error_xml(code: &str, message: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>{message}</Message>\
         <RequestId>{FAULT_REQUEST_ID}</RequestId><HostId>fault-proxy-host-id</HostId></Error>"
    )
}

/// Waits while `fault` is the proxy's fault (at most a minute).
async fn while_fault(shared: &Shared, fault: &HttpFault) {
    for _ in 0..600 {
        if shared.fault() != *fault {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// One request on one connection.
async fn serve_connection(mut down: TcpStream, shared: Arc<Shared>) -> std::io::Result<()> {
    let Some((head, mut body)) = read_head(&mut down).await? else {
        return Ok(());
    };
    let head = String::from_utf8_lossy(&head).to_string();
    let request_line = head.lines().next().unwrap_or_default().to_string();
    let length: usize = header_value(&head, "content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    while body.len() < length {
        let mut chunk = vec![0u8; length - body.len()];
        let n = down.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        body.extend_from_slice(&chunk[..n]);
    }
    let fault = shared.fault();
    shared.attempts.fetch_add(1, Ordering::SeqCst);
    if header_value(&head, "x-amz-copy-source").is_some() {
        shared.copies.fetch_add(1, Ordering::SeqCst);
    }
    shared
        .request_lines
        .lock()
        .unwrap()
        .push(request_line.clone());
    let head_only = request_line.starts_with("HEAD ");
    match &fault {
        // Accepted just before the listener closed: drop it unanswered.
        HttpFault::Refuse => return Ok(()),
        HttpFault::Stall => {
            while_fault(&shared, &fault).await;
            return Ok(());
        }
        HttpFault::SlowDown => {
            let xml = s3_error_xml("SlowDown", "Please reduce your request rate.");
            let answer = canned("503 Slow Down", "application/xml", &xml, head_only);
            return down.write_all(&answer).await;
        }
        HttpFault::InternalError => {
            let xml = s3_error_xml(
                "InternalError",
                "We encountered an internal error. Please try again.",
            );
            let answer = canned(
                "500 Internal Server Error",
                "application/xml",
                &xml,
                head_only,
            );
            return down.write_all(&answer).await;
        }
        HttpFault::GarbageError => {
            let answer = canned(
                "500 Internal Server Error",
                "text/html",
                GARBAGE_BODY,
                head_only,
            );
            return down.write_all(&answer).await;
        }
        HttpFault::None
        | HttpFault::ShortBody(_)
        | HttpFault::StallBody(_)
        | HttpFault::WrongContentRange
        | HttpFault::WrongContentRangeOn200 => {}
    }
    let Some(upstream) = *shared.upstream.lock().unwrap() else {
        return Ok(());
    };
    let mut up = TcpStream::connect(upstream).await?;
    up.write_all(with_connection_close(&head).as_bytes())
        .await?;
    up.write_all(&body).await?;
    let Some((response_head, rest)) = read_head(&mut up).await? else {
        return Ok(());
    };
    let response_head = String::from_utf8_lossy(&response_head).to_string();
    let response_head = match fault {
        HttpFault::WrongContentRange => shifted_content_range(&response_head),
        HttpFault::WrongContentRangeOn200 => shifted_content_range(&response_head).replacen(
            "HTTP/1.1 206 Partial Content",
            "HTTP/1.1 200 OK",
            1,
        ),
        _ => response_head,
    };
    shared
        .status_lines
        .lock()
        .unwrap()
        .push(response_head.lines().next().unwrap_or_default().to_string());
    down.write_all(response_head.as_bytes()).await?;
    let limit = match fault {
        HttpFault::ShortBody(n) | HttpFault::StallBody(n) => n,
        _ => usize::MAX,
    };
    let mut sent = rest.len().min(limit);
    down.write_all(&rest[..sent]).await?;
    let mut chunk = vec![0u8; 64 * 1024];
    while sent < limit {
        let n = up.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        let keep = n.min(limit - sent);
        down.write_all(&chunk[..keep]).await?;
        sent += keep;
    }
    down.flush().await?;
    if let HttpFault::StallBody(_) = fault {
        while_fault(&shared, &fault).await;
    }
    // Dropping both streams closes them: for ShortBody, before Content-Length bytes.
    Ok(())
}
