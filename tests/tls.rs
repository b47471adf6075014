//! HTTPS end to end: a node (the common `EdgeBuilder`) with a TLS listener and
//! sites whose certificates are made here by rcgen, checked from the client side
//! with rustls (which certificate, which ALPN protocol, which answer), reqwest
//! (a real HTTP/2 request) and, when the binary exists, `openssl s_client` (old
//! protocol versions refused); the certificate resolver on its own; and the
//! s3edge binary itself, reloading a renewed certificate on SIGHUP.
#![cfg(feature = "embedded")]

mod common;

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, ClientConnection, DigitallySignedStruct, RootCertStore, StreamOwned};

use common::pki::{Leaf, Pki};
use common::{Edge, EdgeBuilder};
use s3edge::config::{self, SiteConfig};
use s3edge::site::HostRouter;
use s3edge::tls::session::{self, Authority, TlsConnection};
use s3edge::tls::{self, ReloadableResolver, SniResolver, TlsError};

// ---------------------------------------------------------------------------
// Site files and the node

/// One site: its name (its bucket is [`bucket`] of it), hosts, whether it is the default
/// site, and its certificate.
type SiteSpec<'a> = (&'a str, &'a [&'a str], bool, Option<&'a Leaf>);

/// Writes `<dir>/<name>.toml` for each site and loads them with the real site
/// loader. Each site serves its embedded bucket as a website; a site with a
/// certificate has `redirect_http = true`, so a 200 from it also proves the
/// request was seen as HTTPS.
fn write_sites(dir: &Path, sites: &[SiteSpec<'_>]) -> Vec<SiteConfig> {
    std::fs::create_dir_all(dir).unwrap();
    for (name, hosts, default, leaf) in sites {
        let hosts: Vec<String> = hosts.iter().map(|h| format!("{h:?}")).collect();
        let mut text = format!(
            "hosts = [{}]\ndefault = {default}\n[origin]\nbucket = \"{}\"\nendpoint = \"embedded\"\n\
             [website]\nindex_document = \"index.html\"\n",
            hosts.join(", "),
            bucket(name)
        );
        if let Some(leaf) = leaf {
            text.push_str(&leaf.tls_section());
            text.push_str("redirect_http = true\n");
        }
        std::fs::write(dir.join(format!("{name}.toml")), text).unwrap();
    }
    config::load_sites(dir).unwrap_or_else(|e| panic!("site files: {e}"))
}

/// A node with one TLS listener serving `sites`; each site's bucket holds an
/// `index.html` whose body is [`page`] of the site.
fn node(sites: &[SiteSpec<'_>]) -> Edge {
    let mut builder = EdgeBuilder::new();
    for (name, ..) in sites {
        builder = builder.bucket(&bucket(name));
        let dir = builder.path().join("buckets").join(bucket(name));
        std::fs::write(dir.join("index.html"), page(name)).unwrap();
    }
    write_sites(&builder.path().join("sites"), sites);
    builder
        .with(|o| o.tls_listen = vec![common::loopback()])
        .start()
}

/// A site's bucket (bucket names have at least three characters).
fn bucket(site: &str) -> String {
    format!("site-{site}")
}

/// The body of a site's `index.html`.
fn page(site: &str) -> String {
    format!("the {site} site")
}

/// Three sites with certificates (`a.test`, `*.b.test`, and a default site
/// `fallback.test`), one without (`plain.test`), on a running node.
struct Fixture {
    pki: Pki,
    a: Leaf,
    b: Leaf,
    fallback: Leaf,
    sites: Vec<SiteConfig>,
    edge: Edge,
}

impl Fixture {
    fn new(with_default: bool) -> Fixture {
        let pki = Pki::new();
        let a = pki.leaf("a", &["a.test"]);
        let b = pki.leaf("b", &["*.b.test"]);
        let fallback = pki.leaf("fallback", &["fallback.test"]);
        let edge = node(&[
            ("a", &["a.test"], false, Some(&a)),
            ("b", &["*.b.test"], false, Some(&b)),
            (
                "fallback",
                &["fallback.test"],
                with_default,
                Some(&fallback),
            ),
            ("plain", &["plain.test"], false, None),
        ]);
        let sites = config::load_sites(&edge.dir.path().join("sites")).unwrap();
        Fixture {
            pki,
            a,
            b,
            fallback,
            sites,
            edge,
        }
    }

    /// The node's TLS listener.
    fn addr(&self) -> SocketAddr {
        self.edge.node.https_addrs[0]
    }

    /// The node's certificates, as its TLS listener uses them.
    fn resolver(&self) -> Arc<ReloadableResolver> {
        self.edge.node.state.tls_resolver.clone()
    }
}

// ---------------------------------------------------------------------------
// A rustls client that shows what the server presented

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// How the client checks the server's certificate.
enum Trust<'a> {
    /// Properly: chain to this CA and valid for the name asked for.
    Ca(&'a Pki),
    /// Not at all (to see which certificate an unknown name gets); handshake
    /// signatures are still checked.
    Anything,
}

#[derive(Debug)]
struct AcceptAnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

struct ClientOptions<'a> {
    trust: Trust<'a>,
    alpn: &'a [&'a [u8]],
    versions: &'a [&'static rustls::SupportedProtocolVersion],
    sni: bool,
}

impl<'a> ClientOptions<'a> {
    fn trusting(pki: &'a Pki) -> ClientOptions<'a> {
        ClientOptions {
            trust: Trust::Ca(pki),
            alpn: &[],
            versions: rustls::DEFAULT_VERSIONS,
            sni: true,
        }
    }

    fn trusting_anything() -> ClientOptions<'a> {
        ClientOptions {
            trust: Trust::Anything,
            alpn: &[],
            versions: rustls::DEFAULT_VERSIONS,
            sni: true,
        }
    }
}

type TlsClient = StreamOwned<ClientConnection, TcpStream>;

/// Connects and completes the handshake, or returns the handshake's error.
fn connect(addr: SocketAddr, name: &str, options: &ClientOptions<'_>) -> io::Result<TlsClient> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(options.versions)
        .unwrap();
    let mut config = match options.trust {
        Trust::Ca(pki) => {
            let mut roots = RootCertStore::empty();
            roots.add(pki.ca.der().clone()).unwrap();
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        Trust::Anything => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate(provider())))
            .with_no_client_auth(),
    };
    config.alpn_protocols = options.alpn.iter().map(|p| p.to_vec()).collect();
    config.enable_sni = options.sni;
    let server_name = ServerName::try_from(name.to_owned()).unwrap();
    let connection = ClientConnection::new(Arc::new(config), server_name).unwrap();
    let socket = TcpStream::connect(addr)?;
    socket.set_read_timeout(Some(Duration::from_secs(20)))?;
    let mut stream = StreamOwned::new(connection, socket);
    while stream.conn.is_handshaking() {
        stream.conn.complete_io(&mut stream.sock)?;
    }
    Ok(stream)
}

fn peer_certificate(stream: &TlsClient) -> CertificateDer<'static> {
    stream.conn.peer_certificates().expect("a certificate")[0]
        .clone()
        .into_owned()
}

/// The rustls error behind a failed handshake.
fn handshake_error(error: &io::Error) -> Option<&rustls::Error> {
    error
        .get_ref()
        .and_then(|e| e.downcast_ref::<rustls::Error>())
}

/// One HTTP/1.1 request on an open connection (kept alive); returns the status
/// line and the body.
fn http1_get(stream: &mut TlsClient, host: &str) -> (String, String) {
    exchange(stream, &format!("GET / HTTP/1.1\r\nHost: {host}\r\n\r\n"))
}

/// Sends `request` and reads the response: its status line and body.
fn exchange(stream: &mut TlsClient, request: &str) -> (String, String) {
    stream.write_all(request.as_bytes()).unwrap();
    stream.flush().unwrap();
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        if let Some(end) = find(&received, b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&received[..end]).to_string();
            let length: usize = head
                .lines()
                .find_map(|line| {
                    let (name, value) = line.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse().ok())?
                })
                .expect("a Content-Length");
            while received.len() < end + 4 + length {
                let n = stream.read(&mut buf).unwrap();
                assert!(n > 0, "connection closed mid-body");
                received.extend_from_slice(&buf[..n]);
            }
            let body = String::from_utf8_lossy(&received[end + 4..end + 4 + length]).to_string();
            let status = head.lines().next().unwrap_or("").to_owned();
            return (status, body);
        }
        let n = stream.read(&mut buf).unwrap();
        assert!(n > 0, "connection closed before the response head");
        received.extend_from_slice(&buf[..n]);
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

// ---------------------------------------------------------------------------
// SNI

#[test]
fn sni_picks_the_certificate_of_the_site_that_claims_the_name() {
    let fx = Fixture::new(true);
    let options = ClientOptions::trusting(&fx.pki);

    // Verified against the CA and the name (webpki), and the very certificate.
    for (name, leaf, site) in [
        ("a.test", &fx.a, "a"),
        ("www.b.test", &fx.b, "b"),
        ("fallback.test", &fx.fallback, "fallback"),
    ] {
        let mut stream = connect(fx.addr(), name, &options)
            .unwrap_or_else(|e| panic!("handshake for {name}: {e}"));
        assert_eq!(
            peer_certificate(&stream),
            leaf.der,
            "certificate for {name}"
        );
        // The site's page over HTTP/1.1, seen as HTTPS (no `redirect_http` 308).
        let (status, body) = http1_get(&mut stream, name);
        assert_eq!(status, "HTTP/1.1 200 OK");
        assert_eq!(body, page(site));
    }

    // The site `*.b.test` also claims deeper names, and its certificate is chosen
    // for them (a `*.b.test` certificate does not cover them: that is the
    // operator's business, so this client checks nothing but which one is sent).
    let stream = connect(
        fx.addr(),
        "deep.www.b.test",
        &ClientOptions::trusting_anything(),
    )
    .unwrap();
    assert_eq!(peer_certificate(&stream), fx.b.der);
}

/// Sites without certificates: an exact host, a wildcard and a longer wildcard
/// inside it, then `last`.
fn nested_wildcard_sites(pki: &Pki, last: SiteSpec<'_>) -> Vec<SiteConfig> {
    write_sites(
        &pki.path("sites"),
        &[
            ("exact", &["x.b.test"], false, None),
            ("short", &["*.b.test"], false, None),
            ("long", &["*.y.b.test"], false, None),
            last,
        ],
    )
}

#[test]
fn sni_is_matched_without_regard_to_case_or_a_trailing_dot_and_wildcards_never_match_their_bare_domain(
) {
    let pki = Pki::new();
    let sites = nested_wildcard_sites(&pki, ("other", &["b.test.example"], false, None));
    let resolver = SniResolver::from_sites(&sites).unwrap();
    let site = |name: Option<&str>| resolver.lookup(name).map(|(site, _)| site.to_owned());
    assert_eq!(site(Some("x.b.test")).as_deref(), Some("exact"));
    assert_eq!(site(Some("X.B.Test.")).as_deref(), Some("exact"));
    assert_eq!(site(Some("z.b.test")).as_deref(), Some("short"));
    assert_eq!(site(Some("z.x.b.test")).as_deref(), Some("short"));
    assert_eq!(site(Some("z.y.b.test")).as_deref(), Some("long"));
    assert_eq!(site(Some("a.z.y.b.test")).as_deref(), Some("long"));
    assert_eq!(site(Some("y.b.test")).as_deref(), Some("short"));
    assert_eq!(site(Some("b.test")), None, "*.b.test does not match b.test");
    assert_eq!(site(Some("xb.test")), None);
    assert_eq!(site(None), None, "no SNI and no default site");
    assert_eq!(resolver.tls_sites(), 0);
}

#[test]
fn a_server_name_picks_the_same_site_as_the_same_host_would_for_every_name() {
    let pki = Pki::new();
    let sites = nested_wildcard_sites(&pki, ("fallback", &["fallback.test"], true, None));
    let resolver = SniResolver::from_sites(&sites).unwrap();
    let router = HostRouter::new(sites.iter().map(|s| (s.hosts.as_slice(), s.default)));
    let names = [
        "x.b.test",
        "X.B.TEST",
        "x.b.test.",
        "x.b.test..",
        "x.b.test:443",
        "a.b.test",
        "a.y.b.test",
        "deep.a.y.b.test",
        "b.test",
        "fallback.test",
        "unknown.test",
        "a b",
        "",
    ];
    for name in names {
        let by_sni = resolver.lookup(Some(name)).map(|(site, _)| site.to_owned());
        let by_host = router
            .route(Some(name))
            .map(|index| sites[index].name.clone());
        assert_eq!(by_sni, by_host, "{name:?}");
    }
}

#[test]
fn sni_names_are_normalised_like_hosts_in_real_handshakes() {
    // rustls clients send the name lowercased and without the trailing dot; the
    // openssl binary sends it as given.
    if !openssl_available() {
        eprintln!("SKIPPED: no openssl binary to send an SNI name as typed");
        return;
    }
    let fx = Fixture::new(true);
    let ca = fx.pki.path("ca.pem");
    std::fs::write(&ca, fx.pki.ca_pem()).unwrap();
    for (name, subject) in [
        ("A.TEST", "a.test"),
        ("a.test.", "a.test"),
        ("WWW.B.Test.", "*.b.test"),
        ("a.www.b.test", "*.b.test"),
    ] {
        let output = Command::new("openssl")
            .args(["s_client", "-connect", &fx.addr().to_string()])
            .args(["-servername", name, "-showcerts"])
            .stdin(Stdio::null())
            .output()
            .expect("openssl runs");
        let text = String::from_utf8_lossy(&output.stdout);
        assert!(
            text.lines()
                .any(|l| l.starts_with(" 0 s:") && l.ends_with(subject)),
            "SNI {name:?} should get the certificate of {subject}:\n{text}"
        );
    }
}

#[test]
fn a_request_for_another_sites_host_than_the_server_name_gets_421_unless_the_certificate_covers_it()
{
    let fx = Fixture::new(true);
    let trusting = ClientOptions::trusting(&fx.pki);

    // SNI a.test (a's certificate), Host of site b: 421, and the connection
    // still serves a.test afterwards.
    let mut stream = connect(fx.addr(), "a.test", &trusting).unwrap();
    let (status, _) = http1_get(&mut stream, "www.b.test");
    assert_eq!(status, "HTTP/1.1 421 Misdirected Request");
    let (status, body) = http1_get(&mut stream, "a.test");
    assert_eq!((status.as_str(), body), ("HTTP/1.1 200 OK", page("a")));

    // An unknown name gets the default site's certificate; it does not make
    // the connection good for another site's host either.
    let mut stream = connect(
        fx.addr(),
        "unknown.test",
        &ClientOptions::trusting_anything(),
    )
    .unwrap();
    assert_eq!(peer_certificate(&stream), fx.fallback.der);
    assert_eq!(
        http1_get(&mut stream, "a.test").0,
        "HTTP/1.1 421 Misdirected Request"
    );
    // ... while a host the default site answers is fine.
    let (status, body) = http1_get(&mut stream, "another-unknown.test");
    assert_eq!(
        (status.as_str(), body),
        ("HTTP/1.1 200 OK", page("fallback"))
    );

    // No Host at all (HTTP/1.0, a load balancer's health check): the site
    // SNI chose answers, not the default site, and not with a 421.
    let mut stream = connect(fx.addr(), "a.test", &trusting).unwrap();
    let (status, body) = exchange(&mut stream, "GET / HTTP/1.0\r\n\r\n");
    assert_eq!((status.as_str(), body), ("HTTP/1.0 200 OK", page("a")));

    // Without SNI the certificate was not chosen by name: the Host decides.
    let options = ClientOptions {
        sni: false,
        ..ClientOptions::trusting_anything()
    };
    let mut stream = connect(fx.addr(), "a.test", &options).unwrap();
    let (status, body) = http1_get(&mut stream, "a.test");
    assert_eq!((status.as_str(), body), ("HTTP/1.1 200 OK", page("a")));

    // Plain HTTP has no certificate to be misdirected by.
    let plain = std::net::TcpStream::connect(fx.edge.node.http_addrs[0]).unwrap();
    let mut plain = io::BufReader::new(plain);
    write!(
        plain.get_mut(),
        "GET / HTTP/1.1\r\nHost: www.b.test\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    plain.read_to_string(&mut answer).unwrap();
    assert!(
        answer.starts_with("HTTP/1.1 308"),
        "b has redirect_http: {answer}"
    );
}

#[test]
fn one_certificate_for_two_sites_serves_both_on_one_connection() {
    let pki = Pki::new();
    let shared = pki.leaf("cd", &["c.test", "d.test"]);
    let own = pki.leaf("e", &["e.test"]);
    let edge = node(&[
        ("c", &["c.test"], false, Some(&shared)),
        ("d", &["d.test"], false, Some(&shared)),
        ("e", &["e.test"], false, Some(&own)),
    ]);
    let addr = edge.node.https_addrs[0];
    let mut stream = connect(addr, "c.test", &ClientOptions::trusting(&pki)).unwrap();
    for (host, site) in [("c.test", "c"), ("d.test", "d"), ("c.test", "c")] {
        let (status, body) = http1_get(&mut stream, host);
        assert_eq!(
            (status.as_str(), body),
            ("HTTP/1.1 200 OK", page(site)),
            "{host}"
        );
    }
    assert_eq!(
        http1_get(&mut stream, "e.test").0,
        "HTTP/1.1 421 Misdirected Request",
        "c and d's certificate does not cover e.test"
    );
}

#[test]
fn the_misdirection_check_follows_the_site_the_name_chose_and_the_certificate() {
    let fx = Fixture::new(true);
    let resolver = fx.resolver().current();
    let tls = |name: &str| Some(TlsConnection::chosen(&resolver, Some(name)));
    let no_sni = Some(TlsConnection::chosen(&resolver, None));
    let cases: [(&str, Option<TlsConnection>, Option<&str>, Authority); 9] = [
        ("plain HTTP", None, Some("www.b.test"), Authority::NotTls),
        ("no SNI", no_sni, Some("a.test"), Authority::NoServerName),
        (
            "the same host",
            tls("a.test"),
            Some("a.test"),
            Authority::SameSite,
        ),
        (
            "a port and case do not matter",
            tls("a.test"),
            Some("A.test:8443"),
            Authority::SameSite,
        ),
        (
            "another name of the same wildcard site",
            tls("x.b.test"),
            Some("y.b.test"),
            Authority::SameSite,
        ),
        (
            "another site's host",
            tls("a.test"),
            Some("www.b.test"),
            Authority::Misdirected,
        ),
        (
            "the default site's certificate for another site",
            tls("unknown.test"),
            Some("a.test"),
            Authority::Misdirected,
        ),
        (
            "no Host at all goes to the site SNI named",
            tls("a.test"),
            None,
            Authority::SameSite,
        ),
        (
            "a host the default site answers, on its certificate",
            tls("unknown.test"),
            Some("other.test"),
            Authority::SameSite,
        ),
    ];
    for (name, connection, host, want) in cases {
        assert_eq!(
            session::authority(&resolver, connection.as_ref(), host),
            want,
            "{name}"
        );
    }
    // Coverage is the certificate's, as a client checks it: `*.b.test` covers
    // one label only.
    let b = resolver.resolve_name(Some("x.b.test")).unwrap();
    assert!(session::covers(&b, "x.b.test"));
    assert!(!session::covers(&b, "a.x.b.test"));
    assert!(!session::covers(&b, "b.test"));
}

#[test]
fn an_unknown_name_or_no_sni_gets_the_default_sites_certificate() {
    let fx = Fixture::new(true);

    let stream = connect(
        fx.addr(),
        "unknown.test",
        &ClientOptions::trusting_anything(),
    )
    .expect("the default site's certificate");
    assert_eq!(peer_certificate(&stream), fx.fallback.der);

    // A client that sends no SNI (as for https://127.0.0.1/) gets it too.
    let options = ClientOptions {
        sni: false,
        ..ClientOptions::trusting_anything()
    };
    let mut stream = connect(fx.addr(), "unknown.test", &options).unwrap();
    assert_eq!(peer_certificate(&stream), fx.fallback.der);
    let (status, _) = http1_get(&mut stream, "fallback.test");
    assert_eq!(status, "HTTP/1.1 200 OK");
}

/// A site whose host is the listener's IP address gets its own certificate
/// on a connection without SNI (clients send none for an IP address, RFC
/// 6066 section 3), not the default site's, as Caddy does; names still get
/// theirs.
#[test]
fn a_connection_without_sni_gets_the_certificate_of_the_listener_s_address() {
    let pki = Pki::new();
    let ip = pki.leaf("ip", &["127.0.0.1"]);
    let named = pki.leaf("named", &["named.test"]);
    let edge = node(&[
        ("ip", &["127.0.0.1"], false, Some(&ip)),
        ("named", &["named.test"], true, Some(&named)),
    ]);
    let addr = edge.node.https_addrs[0];
    let options = ClientOptions {
        sni: false,
        ..ClientOptions::trusting(&pki)
    };
    let mut stream = connect(addr, "127.0.0.1", &options).expect("the IP site's certificate");
    assert_eq!(peer_certificate(&stream), ip.der);
    let (status, body) = http1_get(&mut stream, "127.0.0.1");
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert!(body.contains(&page("ip")), "{body}");
    let stream = connect(addr, "named.test", &ClientOptions::trusting(&pki)).unwrap();
    assert_eq!(peer_certificate(&stream), named.der);

    // A site listing the address without a certificate of its own (plain
    // HTTP, as the demo lists 127.0.0.1): the default site's, as before.
    let plain = node(&[
        ("plainip", &["127.0.0.1"], false, None),
        ("named", &["named.test"], true, Some(&named)),
    ]);
    let addr = plain.node.https_addrs[0];
    let mut stream = connect(
        addr,
        "127.0.0.1",
        &ClientOptions {
            sni: false,
            ..ClientOptions::trusting_anything()
        },
    )
    .expect("the default site's certificate");
    assert_eq!(peer_certificate(&stream), named.der);
    let (status, _) = http1_get(&mut stream, "named.test");
    assert_eq!(status, "HTTP/1.1 200 OK");
}

#[test]
fn without_a_default_site_an_unknown_name_fails_the_handshake_cleanly() {
    let fx = Fixture::new(false);

    for sni in [true, false] {
        let options = ClientOptions {
            sni,
            ..ClientOptions::trusting_anything()
        };
        let error = connect(fx.addr(), "unknown.test", &options)
            .expect_err("no certificate for an unknown name");
        assert_eq!(
            handshake_error(&error),
            Some(&rustls::Error::AlertReceived(
                rustls::AlertDescription::AccessDenied
            )),
            "sni={sni}: {error}"
        );
    }

    // The listener is unharmed.
    let stream = connect(fx.addr(), "a.test", &ClientOptions::trusting(&fx.pki)).unwrap();
    assert_eq!(peer_certificate(&stream), fx.a.der);
}

#[test]
fn a_name_claimed_by_a_site_without_tls_fails_the_handshake_instead_of_showing_another_sites_certificate(
) {
    let fx = Fixture::new(true);
    let error = connect(fx.addr(), "plain.test", &ClientOptions::trusting_anything())
        .expect_err("plain.test has no certificate");
    assert_eq!(
        handshake_error(&error),
        Some(&rustls::Error::AlertReceived(
            rustls::AlertDescription::AccessDenied
        )),
    );
}

// ---------------------------------------------------------------------------
// ALPN and HTTP/2

#[test]
fn alpn_negotiates_h2_first_and_http_1_1_for_clients_without_h2() {
    let fx = Fixture::new(true);
    // (what the client offers, what the server must pick)
    type Case = (&'static [&'static [u8]], Option<&'static [u8]>);
    let cases: [Case; 4] = [
        (&[b"h2", b"http/1.1"], Some(b"h2")),
        (&[b"http/1.1", b"h2"], Some(b"h2")),
        (&[b"http/1.1"], Some(b"http/1.1")),
        (&[], None),
    ];
    for (offered, expected) in cases {
        let options = ClientOptions {
            alpn: offered,
            ..ClientOptions::trusting(&fx.pki)
        };
        let mut stream = connect(fx.addr(), "a.test", &options).unwrap();
        assert_eq!(
            stream.conn.alpn_protocol(),
            expected,
            "client offered {offered:?}"
        );
        if expected != Some(b"h2") {
            let (status, body) = http1_get(&mut stream, "a.test");
            assert_eq!(status, "HTTP/1.1 200 OK");
            assert_eq!(body, page("a"));
        }
    }
}

#[test]
fn reqwest_gets_http2_over_tls_through_alpn_for_each_site() {
    let fx = Fixture::new(true);
    let client = reqwest::blocking::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(fx.pki.reqwest_root())
        .resolve("a.test", fx.addr())
        .resolve("www.b.test", fx.addr())
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    for (host, site) in [("a.test", "a"), ("www.b.test", "b")] {
        // The site picked by the HTTP/2 `:authority` (with its port), seen as
        // HTTPS (no `redirect_http` 308).
        let url = format!("https://{host}:{}/", fx.addr().port());
        let response = client.get(&url).send().unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.version(), reqwest::Version::HTTP_2, "{host}");
        assert_eq!(response.text().unwrap(), page(site));
    }
}

// ---------------------------------------------------------------------------
// Protocol versions

/// Runs `openssl s_client` against the listener with one protocol flag; returns
/// (success, everything it printed).
fn openssl_s_client(addr: SocketAddr, ca: &Path, flag: &str) -> (bool, String) {
    let output = Command::new("openssl")
        .args(["s_client", "-connect", &addr.to_string()])
        .args(["-servername", "a.test", "-CAfile"])
        .arg(ca)
        .args(["-verify_return_error", flag])
        // OpenSSL 3 refuses TLS 1.0 and 1.1 itself at its default security level:
        // lower it so the old version really is offered and the server is tested.
        .args(["-cipher", "DEFAULT:@SECLEVEL=0"])
        .stdin(Stdio::null())
        .output()
        .expect("openssl runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

fn openssl_available() -> bool {
    Command::new("openssl")
        .arg("version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[test]
fn tls_1_0_and_1_1_are_refused_while_tls_1_2_and_1_3_are_accepted() {
    let fx = Fixture::new(true);

    // rustls as the client: each of the two supported versions on its own.
    for version in [&rustls::version::TLS12, &rustls::version::TLS13] {
        let options = ClientOptions {
            versions: &[version],
            ..ClientOptions::trusting(&fx.pki)
        };
        let mut stream = connect(fx.addr(), "a.test", &options).unwrap();
        assert_eq!(stream.conn.protocol_version(), Some(version.version));
        let (status, _) = http1_get(&mut stream, "a.test");
        assert_eq!(status, "HTTP/1.1 200 OK");
    }

    // rustls cannot speak TLS 1.0 or 1.1 as a client: use the openssl binary.
    if !openssl_available() {
        eprintln!("SKIPPED: no openssl binary; TLS 1.0/1.1 refusal not checked from a client");
        return;
    }
    let ca = fx.pki.path("ca.pem");
    std::fs::write(&ca, fx.pki.ca_pem()).unwrap();
    for (flag, version) in [("-tls1_2", "TLSv1.2"), ("-tls1_3", "TLSv1.3")] {
        let (ok, text) = openssl_s_client(fx.addr(), &ca, flag);
        assert!(ok, "openssl s_client {flag} failed:\n{text}");
        assert!(text.contains(version), "{flag}:\n{text}");
        assert!(
            text.contains("Verify return code: 0 (ok)"),
            "{flag}:\n{text}"
        );
    }
    for flag in ["-tls1", "-tls1_1"] {
        let (ok, text) = openssl_s_client(fx.addr(), &ca, flag);
        assert!(!ok, "openssl s_client {flag} succeeded:\n{text}");
        // Refused by the server, not by the client: it answered the ClientHello
        // with a fatal alert (rustls sends protocol_version, or handshake_failure
        // when nothing in an old ClientHello is acceptable), and no cipher was
        // agreed.
        assert!(
            text.contains("alert protocol version") || text.contains("alert handshake failure"),
            "{flag} was not refused by the server with an alert:\n{text}"
        );
        assert!(text.contains("Cipher is (NONE)"), "{flag}:\n{text}");
        eprintln!(
            "openssl s_client {flag}: {}",
            text.lines().find(|l| l.contains("alert")).unwrap_or("")
        );
    }
}

// ---------------------------------------------------------------------------
// Reload

#[test]
fn replacing_the_resolver_swaps_the_certificate_for_new_handshakes_while_an_open_connection_keeps_working(
) {
    let fx = Fixture::new(true);
    let resolver = fx.resolver();
    let options = ClientOptions::trusting(&fx.pki);

    let mut open = connect(fx.addr(), "a.test", &options).unwrap();
    assert_eq!(peer_certificate(&open), fx.a.der);
    assert_eq!(http1_get(&mut open, "a.test").0, "HTTP/1.1 200 OK");

    // Renew a.test's certificate in place (new key too), as certbot would, and
    // reload.
    let renewed = fx.pki.leaf("a", &["a.test"]);
    assert_ne!(renewed.der, fx.a.der);
    resolver.reload(&fx.sites).unwrap();

    let fresh = connect(fx.addr(), "a.test", &options).unwrap();
    assert_eq!(
        peer_certificate(&fresh),
        renewed.der,
        "new handshakes get the renewed certificate"
    );
    // The connection opened before the swap still serves requests.
    for _ in 0..3 {
        let (status, body) = http1_get(&mut open, "a.test");
        assert_eq!(status, "HTTP/1.1 200 OK");
        assert_eq!(body, page("a"));
    }
    assert_eq!(peer_certificate(&open), fx.a.der);

    // `replace` with another set: a site removed by the reload loses its name.
    let only_b = write_sites(
        &fx.pki.path("sites-b"),
        &[("b", &["*.b.test"], false, Some(&fx.b))],
    );
    resolver.replace(SniResolver::from_sites(&only_b).unwrap());
    let error = connect(fx.addr(), "a.test", &ClientOptions::trusting_anything())
        .expect_err("a.test is gone");
    assert!(handshake_error(&error).is_some(), "{error}");
    assert_eq!(http1_get(&mut open, "a.test").0, "HTTP/1.1 200 OK");
}

#[test]
fn a_reload_with_a_broken_certificate_keeps_the_current_certificates_and_names_every_broken_site() {
    let fx = Fixture::new(true);
    let resolver = fx.resolver();
    let before = resolver.current();

    // Break two sites after their files were validated.
    std::fs::remove_file(&fx.a.key).unwrap();
    std::fs::write(&fx.b.cert, "not a certificate\n").unwrap();
    let errors = resolver.reload(&fx.sites).expect_err("the reload fails");
    let mut named: Vec<(String, String)> = errors
        .iter()
        .map(|(site, e)| (site.clone(), e.to_string()))
        .collect();
    named.sort();
    assert_eq!(named.len(), 2, "{named:?}");
    assert_eq!(named[0].0, "a");
    assert!(
        named[0].1.starts_with(&fx.a.key.display().to_string()),
        "{named:?}"
    );
    assert_eq!(named[1].0, "b");
    assert!(
        named[1].1.starts_with(&fx.b.cert.display().to_string()),
        "{named:?}"
    );

    assert!(
        Arc::ptr_eq(&before, &resolver.current()),
        "the old set is kept"
    );
    let stream = connect(fx.addr(), "a.test", &ClientOptions::trusting(&fx.pki)).unwrap();
    assert_eq!(peer_certificate(&stream), fx.a.der);
}

// ---------------------------------------------------------------------------
// Loading and checking certificate files

#[test]
fn a_key_that_does_not_match_its_certificate_is_an_error_naming_both_files() {
    let pki = Pki::new();
    let a = pki.leaf("a", &["a.test"]);
    let b = pki.leaf("b", &["b.test"]);
    let error = tls::load_certified_key(&a.cert, &b.key).expect_err("a mismatch");
    assert!(matches!(error, TlsError::KeyMismatch { .. }), "{error:?}");
    assert_eq!(error.config_key(), "tls.key");
    assert_eq!(
        error.to_string(),
        format!(
            "{}: the private key does not match the certificate in {}",
            b.key.display(),
            a.cert.display()
        )
    );

    // `check` sees the same through the site file.
    let sites = write_sites(&pki.path("sites"), &[("a", &["a.test"], false, Some(&a))]);
    std::fs::copy(&b.key, &a.key).unwrap();
    let error = tls::check_site_tls(&sites[0]).expect_err("a mismatch");
    assert!(matches!(error, TlsError::KeyMismatch { .. }), "{error:?}");
}

#[test]
fn a_missing_certificate_or_key_file_is_an_error_naming_it() {
    let pki = Pki::new();
    let a = pki.leaf("a", &["a.test"]);
    let missing = pki.path("certs/nope.pem");

    let error = tls::load_certified_key(&missing, &a.key).unwrap_err();
    assert!(matches!(error, TlsError::Missing { .. }), "{error:?}");
    assert_eq!(error.config_key(), "tls.cert");
    assert_eq!(
        error.to_string(),
        format!(
            "{}: the certificate chain file does not exist (relative paths resolve against the working directory)",
            missing.display()
        )
    );
    let error = tls::load_certified_key(&a.cert, &missing).unwrap_err();
    assert_eq!(error.config_key(), "tls.key");
    assert!(
        error.to_string().starts_with(&format!(
            "{}: the private key file does not exist",
            missing.display()
        )),
        "{error}"
    );
}

#[test]
fn a_file_without_a_certificate_or_without_a_usable_key_is_an_error_naming_it() {
    let pki = Pki::new();
    let a = pki.leaf("a", &["a.test"]);

    // Certificate and key swapped.
    let error = tls::load_certified_key(&a.key, &a.cert).unwrap_err();
    assert!(matches!(error, TlsError::NoCertificate { .. }), "{error:?}");
    assert!(error
        .to_string()
        .starts_with(&format!("{}: no certificate in the file", a.key.display())));
    let error = tls::load_certified_key(&a.cert, &a.cert).unwrap_err();
    assert!(matches!(error, TlsError::NoKey { .. }), "{error:?}");
    assert!(error
        .to_string()
        .starts_with(&format!("{}: no private key in the file", a.cert.display())));

    // A PEM block cut short.
    let truncated = pki.path("truncated.pem");
    std::fs::write(&truncated, "-----BEGIN CERTIFICATE-----\nMIIB\n").unwrap();
    let error = tls::load_certified_key(&truncated, &a.key).unwrap_err();
    assert!(matches!(error, TlsError::Pem { .. }), "{error:?}");
    assert_eq!(error.config_key(), "tls.cert");
    assert!(
        error.to_string().starts_with(&format!(
            "{}: the certificate chain file is not valid PEM",
            truncated.display()
        )),
        "{error}"
    );

    // A DER certificate gets a hint to convert it.
    let der = pki.path("a.der");
    std::fs::write(&der, &a.der).unwrap();
    let error = tls::load_certified_key(&der, &a.key).unwrap_err();
    assert!(
        error.to_string().contains("openssl x509 -inform der"),
        "{error}"
    );

    // An encrypted key is named as such.
    let encrypted = pki.path("encrypted.key");
    std::fs::write(
        &encrypted,
        "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n",
    )
    .unwrap();
    let error = tls::load_certified_key(&a.cert, &encrypted).unwrap_err();
    assert!(matches!(error, TlsError::EncryptedKey { .. }), "{error:?}");
    assert!(error
        .to_string()
        .starts_with(&encrypted.display().to_string()));

    // A key section whose content is not a key the provider can use.
    let garbage = pki.path("garbage.key");
    std::fs::write(
        &garbage,
        "-----BEGIN PRIVATE KEY-----\nAAAAAAAA\n-----END PRIVATE KEY-----\n",
    )
    .unwrap();
    let error = tls::load_certified_key(&a.cert, &garbage).unwrap_err();
    assert!(
        matches!(error, TlsError::UnsupportedKey { .. }),
        "{error:?}"
    );
    assert!(error
        .to_string()
        .starts_with(&garbage.display().to_string()));
}

#[test]
fn check_site_tls_passes_a_good_site_and_a_site_without_tls() {
    let fx = Fixture::new(true);
    for site in &fx.sites {
        tls::check_site_tls(site).unwrap_or_else(|e| panic!("{}: {e}", site.name));
    }
    assert_eq!(SniResolver::from_sites(&fx.sites).unwrap().tls_sites(), 3);
}

#[test]
fn rsa_keys_in_pkcs8_and_pkcs1_and_ec_keys_in_sec1_are_accepted() {
    if !openssl_available() {
        eprintln!("SKIPPED: no openssl binary to make RSA and SEC1 keys (rcgen cannot make RSA keys with ring)");
        return;
    }
    let pki = Pki::new();
    let run = |args: &[&str]| {
        let output = Command::new("openssl")
            .args(args)
            .current_dir(pki.dir.path())
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    };
    // RSA, PKCS#8 (`BEGIN PRIVATE KEY`), self-signed.
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "rsa.key",
        "-out",
        "rsa.pem",
        "-days",
        "1",
        "-subj",
        "/CN=rsa.test",
        "-addext",
        "subjectAltName=DNS:rsa.test",
    ]);
    // The same key as PKCS#1 (`BEGIN RSA PRIVATE KEY`).
    run(&["rsa", "-in", "rsa.key", "-traditional", "-out", "rsa1.key"]);
    // ECDSA P-384 as SEC1 (`BEGIN EC PRIVATE KEY`).
    run(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-384",
        "-nodes",
        "-keyout",
        "ec8.key",
        "-out",
        "ec.pem",
        "-days",
        "1",
        "-subj",
        "/CN=ec.test",
    ]);
    run(&["ec", "-in", "ec8.key", "-out", "ec.key"]);

    for (cert, key, header) in [
        ("rsa.pem", "rsa.key", "BEGIN PRIVATE KEY"),
        ("rsa.pem", "rsa1.key", "BEGIN RSA PRIVATE KEY"),
        ("ec.pem", "ec.key", "BEGIN EC PRIVATE KEY"),
    ] {
        let (cert, key) = (pki.path(cert), pki.path(key));
        let text = std::fs::read_to_string(&key).unwrap();
        assert!(text.contains(header), "{}: {text}", key.display());
        tls::load_certified_key(&cert, &key)
            .unwrap_or_else(|e| panic!("{} with {}: {e}", cert.display(), key.display()));
    }
    // And a mismatch across algorithms is still a mismatch.
    let error = tls::load_certified_key(&pki.path("rsa.pem"), &pki.path("ec.key")).unwrap_err();
    assert!(matches!(error, TlsError::KeyMismatch { .. }), "{error:?}");
}

// ---------------------------------------------------------------------------
// The binary: a certificate renewed on disk is picked up by SIGHUP

#[test]
fn sighup_to_the_binary_swaps_a_renewed_certificate_for_new_connections_and_keeps_open_ones() {
    use std::io::BufRead;
    let pki = Pki::new();
    let old = pki.leaf("old", &["renew.test"]);
    let sites = pki.path("sites");
    std::fs::create_dir_all(sites.join("buckets/renew")).unwrap();
    std::fs::write(sites.join("buckets/renew/index.html"), "hello").unwrap();
    // The site names fixed paths; renewal rewrites the files behind them.
    let (cert, key) = (pki.path("live.pem"), pki.path("live.key"));
    std::fs::copy(&old.cert, &cert).unwrap();
    std::fs::copy(&old.key, &key).unwrap();
    std::fs::write(
        sites.join("renew.toml"),
        format!(
            "hosts = [\"renew.test\"]\ndefault = true\n[origin]\nbucket = \"renew\"\n\
             endpoint = \"embedded\"\n[website]\nindex_document = \"index.html\"\n[tls]\ncert = {:?}\nkey = {:?}\n",
            cert.display().to_string(),
            key.display().to_string()
        ),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_s3edge"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--tls-listen",
            "127.0.0.1:0",
        ])
        .args([
            "--admin-listen",
            "127.0.0.1:0",
            "--embedded-s3-listen",
            "127.0.0.1:0",
        ])
        .args(["--access-log", "off", "--cache-dir"])
        .arg(pki.path("cache"))
        .arg("--sites")
        .arg(&sites)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Start-up lines are the process log, on stderr.
    let mut lines = io::BufReader::new(child.stderr.take().unwrap()).lines();
    let https: SocketAddr = loop {
        let line = lines.next().expect("startup line").unwrap();
        if let Some((_, addr)) = line.split_once("listening on https://") {
            break addr.trim().parse().unwrap();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    let trusting = ClientOptions::trusting(&pki);

    let mut open = connect(https, "renew.test", &trusting).unwrap();
    assert_eq!(peer_certificate(&open), old.der);
    let first = http1_get(&mut open, "renew.test");
    assert_eq!(first, ("HTTP/1.1 200 OK".to_string(), "hello".to_string()));

    let new = pki.leaf("new", &["renew.test"]);
    std::fs::copy(&new.cert, &cert).unwrap();
    std::fs::copy(&new.key, &key).unwrap();
    let status = Command::new("kill")
        .args(["-HUP", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let mut swapped = false;
    for _ in 0..200 {
        let stream = connect(https, "renew.test", &trusting).unwrap();
        if peer_certificate(&stream) == new.der {
            swapped = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    // The connection opened before the reload still works, on the old one.
    let still_open = http1_get(&mut open, "renew.test").0;
    let _ = child.kill();
    let _ = child.wait();
    assert!(swapped, "new connections get the renewed certificate");
    assert_eq!(peer_certificate(&open), old.der);
    assert!(still_open.contains("200"), "{still_open}");
}
