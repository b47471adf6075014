//! HTTP/1 protocol implementation.

use bytes::{Bytes, BytesMut};

mod chunked;
mod client;
mod codec;
mod decoder;
mod dispatcher;
mod encoder;
mod expect;
mod payload;
mod service;
mod timer;
mod upgrade;
mod utils;

pub use self::{
    client::{ClientCodec, ClientPayloadCodec},
    codec::Codec,
    dispatcher::Dispatcher,
    expect::ExpectHandler,
    payload::Payload,
    service::{H1Service, H1ServiceHandler},
    upgrade::UpgradeHandler,
    utils::SendResponse,
};

/// How long, in milliseconds, a connection may hold output its client accepts none of; 0: no
/// limit (upstream's behaviour).
static SEND_TIMEOUT_MS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Closes an HTTP/1 connection whose client accepts no byte of what is written to it for
/// `timeout` (`None`: never, the default), as nginx's `send_timeout` and Varnish's
/// `idle_send_timeout` do: a client that stops reading would otherwise hold the connection, its
/// buffers and the response's resources for as long as it stays connected. Process-wide; the
/// HTTP/2 dispatcher applies it to each stream waiting for flow-control window.
pub fn set_send_timeout(timeout: Option<std::time::Duration>) {
    let ms = timeout.map_or(0, |t| u64::try_from(t.as_millis()).unwrap_or(u64::MAX).max(1));
    SEND_TIMEOUT_MS.store(ms, std::sync::atomic::Ordering::Relaxed);
}

/// The limit [`set_send_timeout`] set.
pub fn send_timeout() -> Option<std::time::Duration> {
    match SEND_TIMEOUT_MS.load(std::sync::atomic::Ordering::Relaxed) {
        0 => None,
        ms => Some(std::time::Duration::from_millis(ms)),
    }
}

/// A response body to send straight from a file with `sendfile(2)`.
///
/// Put in a response's extensions by a handler whose body is `len` bytes of `file` from
/// `offset`. On a plain TCP connection (Linux) the HTTP/1 dispatcher then sends those bytes with
/// `sendfile` after the head, and never polls the response body; elsewhere (TLS, HTTP/2, other
/// platforms) the extension is ignored and the body is sent as usual, so the body must hold the
/// same bytes. It is used only when the body's size is exactly `len` and the request was not HEAD.
#[derive(Debug, Clone)]
pub struct SendFile {
    /// The file the bytes come from.
    pub file: std::sync::Arc<std::fs::File>,
    /// Where the bytes start in the file.
    pub offset: u64,
    /// How many bytes to send.
    pub len: u64,
    /// Bytes handed to the socket so far, for the handler's own accounting.
    pub sent: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

/// A request the HTTP/1 dispatcher answered itself, without calling the service: a request
/// head it could not parse (400), one too large for its buffer (431), or a first request head
/// that did not arrive in time (408; reported only when part of it did).
#[derive(Debug, Clone, Copy)]
pub struct Refused {
    /// The status the dispatcher answered with.
    pub status: crate::StatusCode,
    /// The client's address, when the stream has one.
    pub peer_addr: Option<std::net::SocketAddr>,
}

/// Called for each request the HTTP/1 dispatcher refuses on a connection (see [`Refused`]), when
/// put in the connection's extensions by an `on_connect` handler: what the server never sees
/// otherwise, for its access log and metrics.
#[derive(Clone)]
pub struct RefusedHook(pub std::sync::Arc<dyn Fn(&Refused) + Send + Sync>);

impl RefusedHook {
    pub(crate) fn report(
        conn_data: Option<&std::rc::Rc<crate::Extensions>>,
        status: crate::StatusCode,
        peer_addr: Option<std::net::SocketAddr>,
    ) {
        if let Some(hook) = conn_data.and_then(|data| data.get::<RefusedHook>()) {
            (hook.0)(&Refused { status, peer_addr });
        }
    }
}

#[derive(Debug)]
/// Codec message
pub enum Message<T> {
    /// HTTP message.
    Item(T),

    /// Payload chunk.
    Chunk(Option<Bytes>),
}

impl<T> From<T> for Message<T> {
    fn from(item: T) -> Self {
        Message::Item(item)
    }
}

/// Incoming request type
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageType {
    None,
    Payload,
    Stream,
}

const LW: usize = 2 * 1024;
const HW: usize = 32 * 1024;

pub(crate) fn reserve_readbuf(src: &mut BytesMut) {
    let cap = src.capacity();
    if cap < LW {
        src.reserve(HW - cap);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Request;

    impl Message<Request> {
        pub fn message(self) -> Request {
            match self {
                Message::Item(req) => req,
                _ => panic!("error"),
            }
        }

        pub fn chunk(self) -> Bytes {
            match self {
                Message::Chunk(Some(data)) => data,
                _ => panic!("error"),
            }
        }

        pub fn eof(self) -> bool {
            match self {
                Message::Chunk(None) => true,
                Message::Chunk(Some(_)) => false,
                _ => panic!("error"),
            }
        }
    }
}
