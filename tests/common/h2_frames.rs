//! A raw HTTP/2 client over TLS, frame by frame (RFC 9113 4, 6): for what a
//! client library hides (the server's SETTINGS, GOAWAY) or never does (open
//! more streams than the server allows).

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};

use super::pki::Pki;

pub const DATA: u8 = 0x0;
pub const HEADERS: u8 = 0x1;
pub const RST_STREAM: u8 = 0x3;
pub const SETTINGS: u8 = 0x4;
pub const PING: u8 = 0x6;
pub const GOAWAY: u8 = 0x7;

const ACK: u8 = 0x1;
const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;

pub const SETTINGS_MAX_CONCURRENT_STREAMS: u16 = 0x3;
pub const SETTINGS_INITIAL_WINDOW_SIZE: u16 = 0x4;
/// The error code of a stream the server did not process (RFC 9113 7).
pub const REFUSED_STREAM: u32 = 0x7;

/// One frame as received.
#[derive(Debug)]
pub struct Frame {
    pub kind: u8,
    pub flags: u8,
    pub stream: u32,
    pub payload: Vec<u8>,
}

impl Frame {
    /// The 32-bit word at `at` in the payload (an error code, a stream id).
    pub fn word(&self, at: usize) -> u32 {
        u32::from_be_bytes(self.payload[at..at + 4].try_into().unwrap())
    }

    /// A SETTINGS frame's parameters.
    pub fn settings(&self) -> Vec<(u16, u32)> {
        self.payload
            .chunks_exact(6)
            .map(|p| {
                let value = u32::from_be_bytes([p[2], p[3], p[4], p[5]]);
                (u16::from_be_bytes([p[0], p[1]]), value)
            })
            .collect()
    }
}

/// What the next read brought.
#[derive(Debug)]
pub enum Received {
    Frame(Frame),
    /// The server closed the connection.
    Closed,
    /// Nothing before the deadline.
    TimedOut,
}

/// An HTTP/2 connection (ALPN `h2`) to the edge, trusting `pki`. It
/// acknowledges the server's SETTINGS and answers its PINGs by itself, as
/// every client must (RFC 9113 6.5.3, 6.7), unless told not to.
pub struct RawH2 {
    tls: StreamOwned<ClientConnection, TcpStream>,
    received: Vec<u8>,
    answers_pings: bool,
}

impl RawH2 {
    /// Connects, sends the preface and a SETTINGS frame with `settings`.
    pub fn connect(addr: SocketAddr, host: &str, pki: &Pki, settings: &[(u16, u32)]) -> RawH2 {
        let mut roots = RootCertStore::empty();
        roots.add(pki.ca.der().clone()).unwrap();
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"h2".to_vec()];
        let name = ServerName::try_from(host.to_owned()).unwrap();
        let connection = ClientConnection::new(Arc::new(config), name).unwrap();
        let socket = TcpStream::connect(addr).unwrap();
        let mut tls = StreamOwned::new(connection, socket);
        while tls.conn.is_handshaking() {
            tls.conn.complete_io(&mut tls.sock).unwrap();
        }
        assert_eq!(tls.conn.alpn_protocol(), Some(&b"h2"[..]), "h2 by ALPN");
        let mut client = RawH2 {
            tls,
            received: Vec::new(),
            answers_pings: true,
        };
        let mut payload = Vec::new();
        for (id, value) in settings {
            payload.extend_from_slice(&id.to_be_bytes());
            payload.extend_from_slice(&value.to_be_bytes());
        }
        let mut out = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
        out.extend(frame(SETTINGS, 0, 0, &payload));
        client.send(&out);
        client
    }

    /// From now on, leaves the server's PINGs unanswered (a broken client).
    pub fn ignore_pings(&mut self) {
        self.answers_pings = false;
    }

    /// Writes `bytes` (whole frames) and flushes.
    pub fn send(&mut self, bytes: &[u8]) {
        self.tls.write_all(bytes).unwrap();
        self.tls.flush().unwrap();
    }

    /// A GET for `path` on `stream` (an odd id, above the last one used).
    pub fn get(&mut self, stream: u32, host: &str, path: &str) {
        self.send(&get_frame(stream, host, path));
    }

    /// The next frame other than the SETTINGS and PINGs it answers itself
    /// (a SETTINGS frame is returned as well, after its ACK is sent).
    pub fn next(&mut self, deadline: Instant) -> Received {
        loop {
            if let Some(got) = self.take_frame() {
                match got.kind {
                    SETTINGS if got.flags & ACK == 0 => {
                        self.answer(&frame(SETTINGS, ACK, 0, &[]));
                        return Received::Frame(got);
                    }
                    SETTINGS => continue,
                    PING if got.flags & ACK == 0 => {
                        if self.answers_pings {
                            self.answer(&frame(PING, ACK, 0, &got.payload));
                        }
                        continue;
                    }
                    _ => return Received::Frame(got),
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Received::TimedOut;
            }
            self.tls
                .sock
                .set_read_timeout(Some(left.max(Duration::from_millis(1))))
                .unwrap();
            let mut buf = [0u8; 64 * 1024];
            match self.tls.read(&mut buf) {
                Ok(0) => return Received::Closed,
                Ok(n) => self.received.extend_from_slice(&buf[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) => {}
                Err(_) => return Received::Closed,
            }
        }
    }

    /// Sends an acknowledgement; the server may have closed the connection already.
    fn answer(&mut self, bytes: &[u8]) {
        let _ = self.tls.write_all(bytes).and_then(|()| self.tls.flush());
    }

    fn take_frame(&mut self) -> Option<Frame> {
        if self.received.len() < 9 {
            return None;
        }
        let len =
            u32::from_be_bytes([0, self.received[0], self.received[1], self.received[2]]) as usize;
        if self.received.len() < 9 + len {
            return None;
        }
        let head: Vec<u8> = self.received.drain(..9 + len).collect();
        Some(Frame {
            kind: head[3],
            flags: head[4],
            stream: u32::from_be_bytes(head[5..9].try_into().unwrap()) & 0x7fff_ffff,
            payload: head[9..].to_vec(),
        })
    }
}

/// A frame's bytes.
pub fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = (payload.len() as u32).to_be_bytes()[1..].to_vec();
    out.extend_from_slice(&[kind, flags]);
    out.extend_from_slice(&stream.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// A HEADERS frame (END_STREAM, END_HEADERS) for a GET, each field a literal
/// without indexing (RFC 7541 6.2.2).
pub fn get_frame(stream: u32, host: &str, path: &str) -> Vec<u8> {
    let mut block = Vec::new();
    for (name, value) in [
        (":method", "GET"),
        (":scheme", "https"),
        (":path", path),
        (":authority", host),
    ] {
        assert!(name.len() < 127 && value.len() < 127, "one-byte lengths");
        block.push(0);
        block.push(name.len() as u8);
        block.extend_from_slice(name.as_bytes());
        block.push(value.len() as u8);
        block.extend_from_slice(value.as_bytes());
    }
    frame(HEADERS, END_STREAM | END_HEADERS, stream, &block)
}
