//! How a response body reaches a client's socket ([`Wire`]): by the kernel
//! from a cache file (`sendfile`, plain HTTP/1 only), or copied from
//! s3edge's memory.
//!
//! Which is faster depends on the connection's TCP congestion control.
//! BBR paces a connection's sends with a timer, and on loopback it paced
//! `sendfile` hardest: there copies of 4 and 64 MiB bodies went 1.16 times
//! as fast as `sendfile`, and `sendfile` won up to 512 KiB, past which it
//! fell off a cliff on one host (`SEND_FROM_FILE_MAX`).
//! CUBIC and Reno (the Linux default) send as fast as the window allows:
//! there `sendfile` beat the copies at every size measured, 1.1 to 1.6
//! times (docs/PERFORMANCE.md, 2026-11-29 and 2026-12-01). So each plain
//! connection's congestion control is read once, when it is accepted (a
//! connection inherits its listener's, `--tcp-congestion`), and decides.

use std::any::Any;

use actix_web::dev::Extensions;
use actix_web::http::Version;
use actix_web::rt::net::TcpStream;
use actix_web::HttpRequest;

use crate::cache::Wire;

/// `HttpServer::on_connect` for the edge listeners: a plain TCP connection
/// gets the [`Wire`] its HTTP/1 responses go by, from its congestion control
/// ([`Wire::File`] unless it paces, [`Wire::PacedFile`]); a TLS connection
/// gets none (from memory). A connection whose congestion control cannot be
/// read is taken as paced: `sendfile` for small bodies only, which never
/// lost by much either way.
pub fn on_connect(connection: &dyn Any, extensions: &mut Extensions) {
    let Some(stream) = connection.downcast_ref::<TcpStream>() else {
        return;
    };
    let unpaced = rustix::net::sockopt::tcp_congestion(stream).is_ok_and(|name| !paces(&name));
    extensions.insert(if unpaced { Wire::File } else { Wire::PacedFile });
}

/// Whether the congestion control named `name` paces a connection's sends
/// itself (Linux's `bbr`, and the `bbr2`/`bbr3` of patched kernels).
fn paces(name: &str) -> bool {
    name.starts_with("bbr")
}

/// How a response to `req` reaches its client: a file by `sendfile` on a
/// plain HTTP/1 connection (the HTTP/1 dispatcher's `SendFile`), for every
/// size or small ones only as its congestion control decided when it was
/// accepted; else from memory (TLS encrypts every byte in s3edge anyway;
/// HTTP/2 frames them).
pub(super) fn wire_of(req: &HttpRequest) -> Wire {
    match req.version() {
        Version::HTTP_10 | Version::HTTP_11 => {
            req.conn_data::<Wire>().copied().unwrap_or(Wire::Memory)
        }
        _ => Wire::Memory,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_bbr_paces() {
        assert!(paces("bbr"));
        assert!(paces("bbr3"));
        for name in ["cubic", "reno", "dctcp", "westwood", ""] {
            assert!(!paces(name), "{name}");
        }
    }
}
