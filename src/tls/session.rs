//! The server name each TLS connection asked for (SNI), kept with the
//! connection, and whether a request on that connection may be answered there.
//!
//! RFC 9110 section 15.5.20: 421 Misdirected Request "indicates that the request
//! was directed at a server that is unable or unwilling to produce an
//! authoritative response for the target URI". Over TLS the certificate was
//! chosen for the site the ClientHello named; a request whose `Host` belongs to
//! another site, and which that certificate does not cover, would otherwise be
//! answered under a certificate that does not vouch for its host (domain
//! fronting across sites). A client that gets 421 may retry on a new connection
//! (RFC 9110 15.5.20; browsers do, e.g. after HTTP/2 connection reuse, RFC 9113
//! section 9.1.1). A certificate that covers both hosts (one certificate for
//! several sites) is fine, and so is a request on a connection without SNI,
//! whose certificate was not chosen by name at all.

use std::any::Any;
use std::fmt;
use std::sync::Arc;

use actix_tls::accept::rustls_0_23::TlsStream;
use actix_web::dev::Extensions;
use actix_web::rt::net::TcpStream;
use rustls::client::verify_server_name;
use rustls::pki_types::ServerName;
use rustls::server::ParsedCertificate;
use rustls::sign::CertifiedKey;

use super::{ReloadableResolver, SniResolver};
use crate::site::normalize_host;

/// What a TLS connection's handshake asked for and got; in the connection's
/// extensions (`HttpRequest::conn_data`) for every request on it. Plain HTTP
/// connections have none.
#[derive(Clone)]
pub struct TlsConnection {
    /// The SNI name, as rustls read it (`None`: the client sent none).
    pub server_name: Option<String>,
    /// The site whose certificate the name chose.
    pub site: Option<String>,
    /// That certificate.
    pub certificate: Option<Arc<CertifiedKey>>,
}

impl TlsConnection {
    /// What a ClientHello naming `server_name` gets from `resolver`.
    pub fn chosen(resolver: &SniResolver, server_name: Option<&str>) -> TlsConnection {
        TlsConnection::chosen_on(resolver, server_name, None)
    }

    /// [`TlsConnection::chosen`] on a listener bound to `address`, which a
    /// ClientHello without SNI is taken to name (the connection still has no
    /// server name: its `Host` alone picks the site).
    pub fn chosen_on(
        resolver: &SniResolver,
        server_name: Option<&str>,
        address: Option<&str>,
    ) -> TlsConnection {
        let name = server_name.or_else(|| resolver.address_with_certificate(address));
        let (site, certificate) = match resolver.lookup(name) {
            Some((site, certificate)) => (Some(site.to_string()), certificate),
            None => (None, None),
        };
        TlsConnection {
            server_name: server_name.map(str::to_owned),
            site,
            certificate,
        }
    }
}

impl fmt::Debug for TlsConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsConnection")
            .field("server_name", &self.server_name)
            .field("site", &self.site)
            .field("certificate", &self.certificate.is_some())
            .finish()
    }
}

/// `HttpServer::on_connect` for the edge listeners: records what the handshake
/// of a TLS connection chose (the resolver in force is the one it used).
/// `tls_bound`: the TLS listeners bound to one address.
pub fn on_connect(
    resolver: &ReloadableResolver,
    connection: &dyn Any,
    extensions: &mut Extensions,
    tls_bound: Option<&Vec<std::net::SocketAddr>>,
) {
    if let Some(stream) = connection.downcast_ref::<TlsStream<TcpStream>>() {
        let (tcp, session) = stream.get_ref();
        let server_name = session.server_name();
        // Without SNI, on a listener bound to one address, the handshake
        // took the address for the name (`tls::listener_address`).
        let address = match server_name {
            Some(_) => None,
            None => tcp
                .local_addr()
                .ok()
                .filter(|local| tls_bound.is_some_and(|bound| bound.contains(local)))
                .and_then(crate::tls::listener_address),
        };
        extensions.insert(TlsConnection::chosen_on(
            &resolver.current(),
            server_name,
            address.as_deref(),
        ));
    }
}

/// Whether a request may be answered on the connection it came on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Authority {
    /// Plain HTTP: no certificate vouches for anything.
    NotTls,
    /// A TLS connection without SNI: its certificate was not chosen by name, so
    /// the `Host` alone picks the site (as for `https://192.0.2.1/`).
    NoServerName,
    /// The `Host` routes to the site whose certificate the connection has.
    SameSite,
    /// Another site, but the connection's certificate is valid for the `Host`.
    Covered,
    /// Another site, and the certificate is not valid for the `Host`: 421.
    Misdirected,
}

/// Decides [`Authority`] for a request with `host` (the raw `Host` value) on
/// `connection` (`None`: plain HTTP); `resolver` (the one in force) routes the
/// host by the request router's rules.
pub fn authority(
    resolver: &SniResolver,
    connection: Option<&TlsConnection>,
    host: Option<&str>,
) -> Authority {
    let Some(connection) = connection else {
        return Authority::NotTls;
    };
    if connection.server_name.is_none() {
        return Authority::NoServerName;
    }
    // No host: the request is for the site SNI chose (see `handler::route`).
    let Some(host) = host else {
        return Authority::SameSite;
    };
    let host_site = resolver.site_for_host(Some(host));
    if host_site.is_some() && host_site == connection.site.as_deref() {
        return Authority::SameSite;
    }
    match (&connection.certificate, normalize_host(host)) {
        (Some(certificate), Some(host)) if covers(certificate, &host) => Authority::Covered,
        _ => Authority::Misdirected,
    }
}

/// Whether the certificate (its end entity) is valid for `host`, a normalised
/// host name or `[IPv6]` literal, by the rules a client checks it with
/// (RFC 6125 as webpki implements it: a wildcard covers one label).
pub fn covers(certificate: &CertifiedKey, host: &str) -> bool {
    let Some(end_entity) = certificate.cert.first() else {
        return false;
    };
    let Ok(parsed) = ParsedCertificate::try_from(end_entity) else {
        return false;
    };
    let name = host.trim_start_matches('[').trim_end_matches(']');
    match ServerName::try_from(name) {
        Ok(name) => verify_server_name(&parsed, &name).is_ok(),
        Err(_) => false,
    }
}
