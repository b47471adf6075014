//! The TLS listener's pieces (`src/tls.rs`) over real sockets: an actix-web
//! `HttpServer` bound with `listen_rustls_0_23` and `tls::server_config`, with
//! certificates made here by rcgen and checked from the client side with rustls
//! (which certificate, which ALPN protocol), reqwest (a real HTTP/2 request) and,
//! when the binary exists, `openssl s_client` (old protocol versions refused);
//! and the s3edge binary itself, reloading a renewed certificate on SIGHUP.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::Duration;

use actix_web::dev::ServerHandle;
use actix_web::{web, App, HttpRequest, HttpServer};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, ClientConnection, DigitallySignedStruct, RootCertStore, StreamOwned};
use tempfile::TempDir;

use s3edge::config::{self, SiteConfig};
use s3edge::tls::{self, ReloadableResolver, SniResolver, TlsError};

// ---------------------------------------------------------------------------
// Certificates and site files

/// A throwaway CA and the leaf certificates it signs, as files in a temp dir.
struct Pki {
    dir: TempDir,
    ca: CertifiedIssuer<'static, KeyPair>,
}

/// One leaf certificate: its DER (to compare with what the server presents) and
/// the PEM files a site's `[tls]` names.
struct Leaf {
    der: CertificateDer<'static>,
    cert: PathBuf,
    key: PathBuf,
}

impl Pki {
    fn new() -> Pki {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "s3edge test CA");
        let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        Pki {
            dir: TempDir::new().unwrap(),
            ca,
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn ca_pem(&self) -> String {
        self.ca.pem()
    }

    /// A certificate for `names` signed by the CA, written as `<stem>.pem` (leaf
    /// then CA: a chain) and `<stem>.key` (PKCS#8 ECDSA P-256).
    fn leaf(&self, stem: &str, names: &[&str]) -> Leaf {
        let key = KeyPair::generate().unwrap();
        let mut params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .unwrap();
        params.distinguished_name.push(DnType::CommonName, names[0]);
        let cert = params.signed_by(&key, &self.ca).unwrap();
        let leaf = Leaf {
            der: cert.der().clone(),
            cert: self.path(&format!("{stem}.pem")),
            key: self.path(&format!("{stem}.key")),
        };
        std::fs::write(&leaf.cert, format!("{}{}", cert.pem(), self.ca_pem())).unwrap();
        std::fs::write(&leaf.key, key.serialize_pem()).unwrap();
        leaf
    }

    /// Writes `sites/<name>.toml` files and loads them with the real site loader.
    /// Each entry: (name, hosts, default, certificate).
    fn sites(&self, dir: &str, sites: &[(&str, &[&str], bool, Option<&Leaf>)]) -> Vec<SiteConfig> {
        let dir = self.path(dir);
        std::fs::create_dir_all(&dir).unwrap();
        for (name, hosts, default, leaf) in sites {
            let hosts: Vec<String> = hosts.iter().map(|h| format!("{h:?}")).collect();
            let mut text = format!(
                "hosts = [{}]\ndefault = {default}\n[origin]\nbucket = \"{name}\"\n",
                hosts.join(", ")
            );
            if let Some(leaf) = leaf {
                text.push_str(&format!(
                    "[tls]\ncert = {:?}\nkey = {:?}\n",
                    leaf.cert.display().to_string(),
                    leaf.key.display().to_string()
                ));
            }
            std::fs::write(dir.join(format!("{name}.toml")), text).unwrap();
        }
        config::load_sites(&dir).unwrap_or_else(|e| panic!("site files: {e}"))
    }
}

/// Three sites with certificates (`a.test`, `*.b.test`, and a default site
/// `fallback.test`), one without (`plain.test`).
struct Fixture {
    pki: Pki,
    a: Leaf,
    b: Leaf,
    fallback: Leaf,
    sites: Vec<SiteConfig>,
}

impl Fixture {
    fn new(with_default: bool) -> Fixture {
        let pki = Pki::new();
        let a = pki.leaf("a", &["a.test"]);
        let b = pki.leaf("b", &["*.b.test"]);
        let fallback = pki.leaf("fallback", &["fallback.test"]);
        let sites = pki.sites(
            "sites",
            &[
                ("a", &["a.test"], false, Some(&a)),
                ("b", &["*.b.test"], false, Some(&b)),
                (
                    "fallback",
                    &["fallback.test"],
                    with_default,
                    Some(&fallback),
                ),
                ("plain", &["plain.test"], false, None),
            ],
        );
        Fixture {
            pki,
            a,
            b,
            fallback,
            sites,
        }
    }

    fn resolver(&self) -> Arc<ReloadableResolver> {
        let resolver = SniResolver::from_sites(&self.sites).unwrap_or_else(|errors| {
            panic!("{errors:?}");
        });
        Arc::new(ReloadableResolver::new(resolver))
    }
}

// ---------------------------------------------------------------------------
// The server

/// An actix-web server on 127.0.0.1:0 with the TLS listener only; its one handler
/// echoes what the pipeline would route on.
struct TestServer {
    addr: SocketAddr,
    handle: ServerHandle,
    thread: Option<JoinHandle<()>>,
}

async fn echo(req: HttpRequest) -> String {
    let host = req
        .headers()
        .get("host")
        .and_then(|h| h.to_str().ok())
        .or_else(|| req.uri().authority().map(|a| a.as_str()))
        .unwrap_or("")
        .to_owned();
    format!(
        "host={host} secure={} version={:?}",
        req.app_config().secure(),
        req.version()
    )
}

impl TestServer {
    fn start(resolver: Arc<ReloadableResolver>) -> TestServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let config = tls::server_config(resolver).expect("server config");
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::spawn(move || {
            actix_rt::System::new().block_on(async move {
                let server = HttpServer::new(|| App::new().default_service(web::to(echo)))
                    .workers(1)
                    .disable_signals()
                    .shutdown_timeout(1)
                    .listen_rustls_0_23(listener, config)
                    .unwrap()
                    .run();
                tx.send(server.handle()).unwrap();
                server.await.unwrap();
            });
        });
        let handle = rx.recv_timeout(Duration::from_secs(30)).unwrap();
        TestServer {
            addr,
            handle,
            thread: Some(thread),
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        // The stop command is sent when `stop` is called; the future only waits.
        drop(self.handle.stop(false));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
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
    write!(stream, "GET / HTTP/1.1\r\nHost: {host}\r\n\r\n").unwrap();
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
    let server = TestServer::start(fx.resolver());
    let options = ClientOptions::trusting(&fx.pki);

    // Verified against the CA and the name (webpki), and the very certificate.
    for (name, leaf) in [
        ("a.test", &fx.a),
        ("www.b.test", &fx.b),
        ("fallback.test", &fx.fallback),
    ] {
        let mut stream = connect(server.addr, name, &options)
            .unwrap_or_else(|e| panic!("handshake for {name}: {e}"));
        assert_eq!(
            peer_certificate(&stream),
            leaf.der,
            "certificate for {name}"
        );
        let (status, body) = http1_get(&mut stream, name);
        assert_eq!(status, "HTTP/1.1 200 OK");
        assert_eq!(body, format!("host={name} secure=true version=HTTP/1.1"));
    }

    // The site `*.b.test` also claims deeper names, and its certificate is chosen
    // for them (a `*.b.test` certificate does not cover them: that is the
    // operator's business, so this client checks nothing but which one is sent).
    let stream = connect(
        server.addr,
        "deep.www.b.test",
        &ClientOptions::trusting_anything(),
    )
    .unwrap();
    assert_eq!(peer_certificate(&stream), fx.b.der);
}

#[test]
fn sni_is_matched_without_regard_to_case_or_a_trailing_dot_and_wildcards_never_match_their_bare_domain(
) {
    let pki = Pki::new();
    let sites = pki.sites(
        "sites",
        &[
            ("exact", &["x.b.test"], false, None),
            ("short", &["*.b.test"], false, None),
            ("long", &["*.y.b.test"], false, None),
            ("other", &["b.test.example"], false, None),
        ],
    );
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
fn an_unknown_name_or_no_sni_gets_the_default_sites_certificate() {
    let fx = Fixture::new(true);
    let server = TestServer::start(fx.resolver());

    let stream = connect(
        server.addr,
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
    let mut stream = connect(server.addr, "unknown.test", &options).unwrap();
    assert_eq!(peer_certificate(&stream), fx.fallback.der);
    let (status, _) = http1_get(&mut stream, "fallback.test");
    assert_eq!(status, "HTTP/1.1 200 OK");
}

#[test]
fn without_a_default_site_an_unknown_name_fails_the_handshake_cleanly() {
    let fx = Fixture::new(false);
    let server = TestServer::start(fx.resolver());

    for sni in [true, false] {
        let options = ClientOptions {
            sni,
            ..ClientOptions::trusting_anything()
        };
        let error = connect(server.addr, "unknown.test", &options)
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
    let stream = connect(server.addr, "a.test", &ClientOptions::trusting(&fx.pki)).unwrap();
    assert_eq!(peer_certificate(&stream), fx.a.der);
}

#[test]
fn a_name_claimed_by_a_site_without_tls_fails_the_handshake_instead_of_showing_another_sites_certificate(
) {
    let fx = Fixture::new(true);
    let server = TestServer::start(fx.resolver());
    let error = connect(
        server.addr,
        "plain.test",
        &ClientOptions::trusting_anything(),
    )
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
    let server = TestServer::start(fx.resolver());
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
        let mut stream = connect(server.addr, "a.test", &options).unwrap();
        assert_eq!(
            stream.conn.alpn_protocol(),
            expected,
            "client offered {offered:?}"
        );
        if expected != Some(b"h2") {
            let (status, body) = http1_get(&mut stream, "a.test");
            assert_eq!(status, "HTTP/1.1 200 OK");
            assert!(body.ends_with("version=HTTP/1.1"), "{body}");
        }
    }
}

#[test]
fn reqwest_gets_http2_over_tls_through_alpn_for_each_site() {
    let fx = Fixture::new(true);
    let server = TestServer::start(fx.resolver());
    let client = reqwest::blocking::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(fx.pki.ca_pem().as_bytes()).unwrap())
        .resolve("a.test", server.addr)
        .resolve("www.b.test", server.addr)
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    for host in ["a.test", "www.b.test"] {
        let url = format!("https://{host}:{}/", server.addr.port());
        let response = client.get(&url).send().unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.version(), reqwest::Version::HTTP_2, "{host}");
        let body = response.text().unwrap();
        assert_eq!(
            body,
            format!(
                "host={host}:{} secure=true version=HTTP/2.0",
                server.addr.port()
            )
        );
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
    let server = TestServer::start(fx.resolver());

    // rustls as the client: each of the two supported versions on its own.
    for version in [&rustls::version::TLS12, &rustls::version::TLS13] {
        let options = ClientOptions {
            versions: &[version],
            ..ClientOptions::trusting(&fx.pki)
        };
        let mut stream = connect(server.addr, "a.test", &options).unwrap();
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
        let (ok, text) = openssl_s_client(server.addr, &ca, flag);
        assert!(ok, "openssl s_client {flag} failed:\n{text}");
        assert!(text.contains(version), "{flag}:\n{text}");
        assert!(
            text.contains("Verify return code: 0 (ok)"),
            "{flag}:\n{text}"
        );
    }
    for flag in ["-tls1", "-tls1_1"] {
        let (ok, text) = openssl_s_client(server.addr, &ca, flag);
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
    let server = TestServer::start(Arc::clone(&resolver));
    let options = ClientOptions::trusting(&fx.pki);

    let mut open = connect(server.addr, "a.test", &options).unwrap();
    assert_eq!(peer_certificate(&open), fx.a.der);
    assert_eq!(http1_get(&mut open, "a.test").0, "HTTP/1.1 200 OK");

    // Renew a.test's certificate in place (new key too), as certbot would, and
    // reload.
    let renewed = fx.pki.leaf("a", &["a.test"]);
    assert_ne!(renewed.der, fx.a.der);
    resolver.reload(&fx.sites).unwrap();

    let fresh = connect(server.addr, "a.test", &options).unwrap();
    assert_eq!(
        peer_certificate(&fresh),
        renewed.der,
        "new handshakes get the renewed certificate"
    );
    // The connection opened before the swap still serves requests.
    for _ in 0..3 {
        let (status, body) = http1_get(&mut open, "a.test");
        assert_eq!(status, "HTTP/1.1 200 OK");
        assert_eq!(body, "host=a.test secure=true version=HTTP/1.1");
    }
    assert_eq!(peer_certificate(&open), fx.a.der);

    // `replace` with another set: a site removed by the reload loses its name.
    let only_b = fx
        .pki
        .sites("sites-b", &[("b", &["*.b.test"], false, Some(&fx.b))]);
    resolver.replace(SniResolver::from_sites(&only_b).unwrap());
    let error = connect(server.addr, "a.test", &ClientOptions::trusting_anything())
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
    let server = TestServer::start(resolver);
    let stream = connect(server.addr, "a.test", &ClientOptions::trusting(&fx.pki)).unwrap();
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
    let sites = pki.sites("sites", &[("a", &["a.test"], false, Some(&a))]);
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
