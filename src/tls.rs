//! HTTPS: per-site certificates chosen by SNI, swappable at run time (SIGHUP).
//!
//! - [`load_certified_key`] reads a site's `[tls]` files (PEM chain, PEM key) and
//!   checks that the key belongs to the certificate.
//! - [`SniResolver`] picks the certificate for a ClientHello with the request
//!   router itself ([`HostRouter`]): exact host, then the longest wildcard, then
//!   the `default` site. The chosen site's certificate is presented; when that site
//!   has no `[tls]` (or no site is chosen) the handshake fails with
//!   an `access_denied` alert (what rustls sends when no certificate is resolved).
//! - [`ReloadableResolver`] holds the current [`SniResolver`] behind a lock so a
//!   reload can swap it: new handshakes see the new certificates, established
//!   connections keep theirs.
//! - [`server_config`] is the rustls configuration for the TLS listeners: TLS 1.2
//!   and 1.3 with rustls's safe defaults (aws-lc-rs), ALPN `h2` then `http/1.1`,
//!   no client certificates.
//! - [`session`]: the server name of each TLS connection, and the check that a
//!   request on it is for a host its certificate serves (421 otherwise).

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;

use crate::acme::Acme;
use crate::config::{CertificateSource, SiteConfig};
use crate::site::HostRouter;

pub mod session;

/// ALPN protocols offered by the TLS listeners, in server preference order.
/// `acme-tls/1` is only ever chosen by a CA's TLS-ALPN-01 validation (RFC 8737).
pub const ALPN_PROTOCOLS: [&[u8]; 3] = [b"h2", b"http/1.1", crate::acme::challenge::ACME_TLS_ALPN];

/// Why a site's certificate or key cannot be used. Every message starts with the
/// file it is about.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{}: the {what} file does not exist (relative paths resolve against the working directory)", path.display())]
    Missing { path: PathBuf, what: &'static str },
    #[error("{}: cannot read the {what} file: {source}", path.display())]
    Read {
        path: PathBuf,
        what: &'static str,
        source: io::Error,
    },
    #[error("{}: the {what} file is not valid PEM: {detail}", path.display())]
    Pem {
        path: PathBuf,
        what: &'static str,
        detail: String,
    },
    #[error("{}: no certificate in the file; {hint}", path.display())]
    NoCertificate { path: PathBuf, hint: &'static str },
    #[error("{}: the certificate cannot be used: {detail}", path.display())]
    BadCertificate { path: PathBuf, detail: String },
    #[error("{}: no private key in the file; expected an unencrypted PEM key (`BEGIN PRIVATE KEY` for PKCS#8, or `BEGIN EC PRIVATE KEY`, `BEGIN RSA PRIVATE KEY`)", path.display())]
    NoKey { path: PathBuf },
    #[error("{}: the private key is encrypted; give s3edge an unencrypted copy (`openssl pkey -in KEY -out PLAIN.key`) readable only by its user", path.display())]
    EncryptedKey { path: PathBuf },
    #[error("{}: unsupported private key ({detail}); use RSA (2048 bits or more), ECDSA P-256 or P-384, or Ed25519", path.display())]
    UnsupportedKey { path: PathBuf, detail: String },
    #[error("{}: the private key does not match the certificate in {}", key.display(), cert.display())]
    KeyMismatch { cert: PathBuf, key: PathBuf },
}

/// The crypto provider of every TLS listener: aws-lc-rs (already used by the S3
/// client), with rustls's default cipher suites and key exchange groups.
pub(crate) fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

fn read_file(path: &Path, what: &'static str) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| {
        if source.kind() == io::ErrorKind::NotFound {
            TlsError::Missing {
                path: path.to_path_buf(),
                what,
            }
        } else {
            TlsError::Read {
                path: path.to_path_buf(),
                what,
                source,
            }
        }
    })
}

/// The first byte of a DER `SEQUENCE`: a file starting with it is binary, not PEM.
fn looks_like_der(bytes: &[u8]) -> bool {
    bytes.first() == Some(&0x30)
}

fn pem_error(path: &Path, what: &'static str, error: pem::Error) -> TlsError {
    TlsError::Pem {
        path: path.to_path_buf(),
        what,
        detail: error.to_string(),
    }
}

const CERT: &str = "certificate chain";
const KEY: &str = "private key";

impl TlsError {
    /// The site-file key the problem is about (`tls.cert` or `tls.key`), for a
    /// `FILE: KEY: message` line.
    pub fn config_key(&self) -> &'static str {
        match self {
            TlsError::Missing { what, .. }
            | TlsError::Read { what, .. }
            | TlsError::Pem { what, .. } => {
                if *what == KEY {
                    "tls.key"
                } else {
                    "tls.cert"
                }
            }
            TlsError::NoCertificate { .. } | TlsError::BadCertificate { .. } => "tls.cert",
            TlsError::NoKey { .. }
            | TlsError::EncryptedKey { .. }
            | TlsError::UnsupportedKey { .. }
            | TlsError::KeyMismatch { .. } => "tls.key",
        }
    }
}

/// Reads a PEM certificate chain (server certificate first) and its PEM private key
/// (PKCS#8, SEC1 or PKCS#1; RSA, ECDSA or Ed25519), and checks that they belong
/// together.
pub fn load_certified_key(cert: &Path, key: &Path) -> Result<Arc<CertifiedKey>, TlsError> {
    let cert_bytes = read_file(cert, CERT)?;
    let key_bytes = read_file(key, KEY)?;

    let chain = CertificateDer::pem_slice_iter(&cert_bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error(cert, CERT, e))?;
    if chain.is_empty() {
        let hint = if looks_like_der(&cert_bytes) {
            "it looks like binary DER; convert it with `openssl x509 -inform der -in FILE -out FILE.pem`"
        } else {
            "expected a PEM chain (`-----BEGIN CERTIFICATE-----` blocks), the server certificate first"
        };
        return Err(TlsError::NoCertificate {
            path: cert.to_path_buf(),
            hint,
        });
    }

    let key_der = match PrivateKeyDer::from_pem_slice(&key_bytes) {
        Ok(der) => der,
        Err(pem::Error::NoItemsFound) => {
            let text = String::from_utf8_lossy(&key_bytes);
            return Err(
                if text.contains("ENCRYPTED PRIVATE KEY") || text.contains("Proc-Type: 4,ENCRYPTED")
                {
                    TlsError::EncryptedKey {
                        path: key.to_path_buf(),
                    }
                } else {
                    TlsError::NoKey {
                        path: key.to_path_buf(),
                    }
                },
            );
        }
        Err(e) => return Err(pem_error(key, KEY, e)),
    };

    let provider = provider();
    let signing_key = provider
        .key_provider
        .load_private_key(key_der)
        .map_err(|e| TlsError::UnsupportedKey {
            path: key.to_path_buf(),
            detail: e.to_string(),
        })?;
    let certified = CertifiedKey::new(chain, signing_key);
    match certified.keys_match() {
        // `Unknown`: the key cannot tell its public half; rustls accepts it as well.
        Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {
            Ok(Arc::new(certified))
        }
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => {
            Err(TlsError::KeyMismatch {
                cert: cert.to_path_buf(),
                key: key.to_path_buf(),
            })
        }
        Err(e) => Err(TlsError::BadCertificate {
            path: cert.to_path_buf(),
            detail: e.to_string(),
        }),
    }
}

/// For `s3edge check`: a site with `[tls]` must have a readable certificate chain
/// and a private key that matches it. A site without `[tls]` passes.
pub fn check_site_tls(site: &SiteConfig) -> Result<(), TlsError> {
    match site.tls.as_ref().map(|tls| &tls.certificate) {
        Some(CertificateSource::Files { cert, key }) => load_certified_key(cert, key).map(|_| ()),
        Some(CertificateSource::Acme | CertificateSource::InFront) | None => Ok(()),
    }
}

/// What `s3edge check`, the start and each reload warn of (they are not
/// errors: the site serves, and plain HTTP works): each host of a site whose
/// certificate file does not cover it, which browsers refuse HTTPS for. A
/// wildcard host is checked with a label of its own in front, so only a
/// wildcard certificate covers it. Sites without certificate files: none.
pub fn certificate_warnings(sites: &[SiteConfig]) -> Vec<crate::config::ConfigProblem> {
    let mut warnings = Vec::new();
    for site in sites {
        let Some(CertificateSource::Files { cert, key }) =
            site.tls.as_ref().map(|tls| &tls.certificate)
        else {
            continue;
        };
        let Ok(certificate) = load_certified_key(cert, key) else {
            continue; // an error already, reported by validation
        };
        for host in &site.hosts {
            let (name, probe) = match host {
                crate::config::HostPattern::Exact(name) => (name.clone(), name.clone()),
                crate::config::HostPattern::Wildcard(suffix) => {
                    (format!("*{suffix}"), format!("s3edge-check{suffix}"))
                }
            };
            if !session::covers(&certificate, &probe) {
                warnings.push(crate::config::ConfigProblem {
                    file: site.file.clone(),
                    key: "tls.cert".into(),
                    message: format!(
                        "`{}` does not cover `{name}`, one of the site's hosts: browsers will refuse HTTPS for it; add the name to the certificate, or serve that host from another site",
                        cert.display()
                    ),
                });
            }
        }
    }
    warnings
}

/// A site's certificate, or `None` for a site without `[tls]`.
type Entry = Option<Arc<CertifiedKey>>;

/// Certificates by server name, resolved by the request router's own host
/// matching ([`HostRouter`]: exact host, then the longest wildcard, then the
/// `default` site; the name lowercased, a trailing dot removed), so a
/// ClientHello and a request naming the same host always pick the same site.
pub struct SniResolver {
    router: HostRouter,
    /// `(site, certificate)` in the router's site order.
    sites: Vec<(String, Entry)>,
}

impl SniResolver {
    /// A resolver that knows no certificate: every handshake fails.
    pub fn empty() -> SniResolver {
        SniResolver {
            router: HostRouter::default(),
            sites: Vec::new(),
        }
    }

    /// Loads the certificate of every site with `[tls]`. Sites without `[tls]` still
    /// claim their hosts: a handshake naming one of them fails rather than showing
    /// another site's certificate. Every site whose files cannot be used is reported.
    pub fn from_sites(sites: &[SiteConfig]) -> Result<SniResolver, Vec<(String, TlsError)>> {
        let mut entries = Vec::with_capacity(sites.len());
        let mut errors = Vec::new();
        // Sites sharing one certificate (e.g. a wildcard) load it once.
        let mut loaded: HashMap<(PathBuf, PathBuf), Arc<CertifiedKey>> = HashMap::new();
        for site in sites {
            let entry = match site.tls.as_ref().map(|tls| &tls.certificate) {
                // ACME sites' certificates are looked up in the ACME store.
                None | Some(CertificateSource::Acme | CertificateSource::InFront) => None,
                Some(CertificateSource::Files { cert, key }) => {
                    let files = (cert.clone(), key.clone());
                    if let Some(key) = loaded.get(&files) {
                        Some(Arc::clone(key))
                    } else {
                        match load_certified_key(cert, key) {
                            Ok(key) => {
                                loaded.insert(files, Arc::clone(&key));
                                Some(key)
                            }
                            Err(e) => {
                                errors.push((site.name.clone(), e));
                                None
                            }
                        }
                    }
                }
            };
            entries.push((site.name.clone(), entry));
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(SniResolver {
            router: HostRouter::new(sites.iter().map(|s| (s.hosts.as_slice(), s.default))),
            sites: entries,
        })
    }

    /// How many sites have a certificate. With none, a TLS listener can complete no
    /// handshake.
    pub fn tls_sites(&self) -> usize {
        self.sites
            .iter()
            .filter(|(_, entry)| entry.is_some())
            .count()
    }

    /// The name of the site whose certificate a ClientHello naming `server_name`
    /// gets (`None`: no SNI, as for an IP address), and that certificate; `None`
    /// when no site is chosen.
    pub fn lookup(&self, server_name: Option<&str>) -> Option<(&str, Option<Arc<CertifiedKey>>)> {
        let (site, entry) = self.sites.get(self.router.route(server_name)?)?;
        Some((site, entry.clone()))
    }

    /// `address` (a listener's, for a ClientHello without SNI) when the site
    /// it routes to has a certificate file: else the handshake gets the
    /// default site's, as without the address (a plain-HTTP site listing
    /// the address, as the demo lists 127.0.0.1, must not fail every
    /// handshake on it).
    pub fn address_with_certificate<'a>(&self, address: Option<&'a str>) -> Option<&'a str> {
        let address = address?;
        let index = self.router.route(Some(address))?;
        self.sites
            .get(index)
            .and_then(|(_, entry)| entry.as_ref())
            .map(|_| address)
    }

    /// The name of the site a request's `Host` routes to, by the same rules.
    pub fn site_for_host(&self, host: Option<&str>) -> Option<&str> {
        let (site, _) = self.sites.get(self.router.route(host)?)?;
        Some(site)
    }

    /// Every site that has a certificate, with it (each site once, by name).
    pub fn certificates(&self) -> Vec<(&str, Arc<CertifiedKey>)> {
        let mut found: Vec<(&str, Arc<CertifiedKey>)> = self
            .sites
            .iter()
            .filter_map(|(site, entry)| Some((site.as_str(), Arc::clone(entry.as_ref()?))))
            .collect();
        found.sort_by(|a, b| a.0.cmp(b.0));
        found.dedup_by(|a, b| a.0 == b.0);
        found
    }

    /// The certificate for a ClientHello naming `server_name`, if any.
    pub fn resolve_name(&self, server_name: Option<&str>) -> Option<Arc<CertifiedKey>> {
        self.lookup(server_name).and_then(|(_, entry)| entry)
    }
}

impl fmt::Debug for SniResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SniResolver")
            .field("router", &self.router)
            .field(
                "sites",
                &self
                    .sites
                    .iter()
                    .map(|(site, entry)| (site, entry.is_some()))
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.resolve_name(client_hello.server_name())
    }
}

/// The resolver given to the TLS listeners: the current [`SniResolver`], swapped
/// whole by [`ReloadableResolver::replace`]. Each handshake reads it once, so open
/// connections are never affected by a swap.
pub struct ReloadableResolver {
    inner: RwLock<Arc<SniResolver>>,
    /// The certificates of `acme = true` sites and the TLS-ALPN-01 answers.
    acme: std::sync::OnceLock<Arc<Acme>>,
}

impl ReloadableResolver {
    pub fn new(resolver: SniResolver) -> ReloadableResolver {
        ReloadableResolver {
            inner: RwLock::new(Arc::new(resolver)),
            acme: std::sync::OnceLock::new(),
        }
    }

    /// From now on, sites with `acme = true` get their certificates from `acme`.
    pub fn attach_acme(&self, acme: Arc<Acme>) {
        let _ = self.acme.set(acme);
    }

    /// Certificates for new handshakes from now on.
    pub fn replace(&self, new: SniResolver) {
        *self.inner.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(new);
    }

    /// Loads every site's certificate and swaps them in, or, if any site's files
    /// cannot be used, keeps the current ones and returns every problem.
    pub fn reload(&self, sites: &[SiteConfig]) -> Result<(), Vec<(String, TlsError)>> {
        let new = SniResolver::from_sites(sites)?;
        self.replace(new);
        Ok(())
    }

    /// The resolver in use now.
    pub fn current(&self) -> Arc<SniResolver> {
        Arc::clone(&self.inner.read().unwrap_or_else(PoisonError::into_inner))
    }
}

impl fmt::Debug for ReloadableResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ReloadableResolver")
            .field(&*self.current())
            .finish()
    }
}

impl ResolvesServerCert for ReloadableResolver {
    fn resolve(&self, client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.resolve_on(client_hello, None)
    }
}

impl ReloadableResolver {
    /// A TLS-ALPN-01 validation gets its challenge certificate; otherwise the
    /// site chosen by SNI gets its file certificate or, for `acme = true`, the
    /// ACME certificate when it has one for that name. A ClientHello without
    /// SNI is taken as naming `address` (the listener's own IP address, when
    /// it is bound to one), so a site whose host is that address gets its
    /// certificate, as Caddy gives it; the default site's otherwise.
    fn resolve_on(
        &self,
        client_hello: ClientHello<'_>,
        address: Option<&str>,
    ) -> Option<Arc<CertifiedKey>> {
        let acme = self.acme.get();
        let server_name = client_hello.server_name();
        if crate::acme::challenge::is_validation_handshake(&client_hello) {
            return acme?.validation_certificate(server_name);
        }
        let resolver = self.current();
        let name = server_name.or_else(|| resolver.address_with_certificate(address));
        let (site, entry) = resolver.lookup(name)?;
        entry.or_else(|| acme?.certificate(site, name))
    }
}

/// The resolver of one TLS listener: [`ReloadableResolver`], with the
/// listener's IP address standing in for a missing SNI
/// ([`listener_address`]).
#[derive(Debug)]
struct ListenerResolver {
    inner: Arc<ReloadableResolver>,
    address: Option<String>,
}

impl ResolvesServerCert for ListenerResolver {
    fn resolve(&self, client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.inner.resolve_on(client_hello, self.address.as_deref())
    }
}

/// The name a ClientHello without SNI stands for on a listener bound to
/// `addr`: its IP address as a `Host` names it (`192.0.2.1`, `[2001:db8::1]`),
/// or none for a listener on every address (`0.0.0.0`, `[::]`), whose
/// connections' own address the handshake does not see.
pub fn listener_address(addr: std::net::SocketAddr) -> Option<String> {
    match addr.ip() {
        ip if ip.is_unspecified() => None,
        std::net::IpAddr::V4(ip) => Some(ip.to_string()),
        std::net::IpAddr::V6(ip) => Some(format!("[{ip}]")),
    }
}

/// The rustls configuration of the TLS listeners: TLS 1.2 and 1.3 only, rustls's
/// safe default cipher suites and groups (aws-lc-rs), ALPN `h2` then `http/1.1`,
/// no client authentication, certificates from `resolver` (a ClientHello
/// without SNI on a listener bound to one address taken as naming that
/// address: [`listener_address`]).
pub fn server_config(
    resolver: Arc<ReloadableResolver>,
    listen: std::net::SocketAddr,
) -> Result<ServerConfig, rustls::Error> {
    let resolver = Arc::new(ListenerResolver {
        inner: resolver,
        address: listener_address(listen),
    });
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    config.alpn_protocols = ALPN_PROTOCOLS.iter().map(|p| p.to_vec()).collect();
    // The server's order of the safe suites (AEADs, strongest first) wins over
    // the client's, as testssl.sh expects of a server.
    config.ignore_client_order = true;
    Ok(config)
}
