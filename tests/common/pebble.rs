//! Debian's `pebble` ACME test CA and `pebble-challtestsrv` (its DNS server,
//! answering 127.0.0.1 for every name) as child processes on loopback.
//!
//! Pebble validates HTTP-01 on `http_port` and TLS-ALPN-01 on `tls_port` of
//! 127.0.0.1: the edge's listeners. Its own HTTPS certificate is made here
//! with rcgen (the package ships none); the test CA's root is written to
//! `ca_root` for `--acme-ca-root`.

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};

pub use super::binary::free_port;

/// What a pebble run is configured with.
#[derive(Clone)]
pub struct PebbleConfig {
    /// Where pebble validates HTTP-01 (the edge's plain listener).
    pub http_port: u16,
    /// Where pebble validates TLS-ALPN-01 (the edge's TLS listener).
    pub tls_port: u16,
    /// Lifetime of issued certificates, in seconds (pebble's default: 5 years).
    pub validity_seconds: Option<u64>,
    /// Names pebble refuses to issue for.
    pub blocklist: Vec<String>,
}

pub struct Pebble {
    config: PebbleConfig,
    dir: PathBuf,
    listen: u16,
    management: u16,
    dns: u16,
    pebble: Option<Child>,
    dns_server: Option<Child>,
    /// PEM root of pebble's own HTTPS (for `--acme-ca-root`).
    pub ca_root: PathBuf,
    ca_pem: String,
}

fn wait_for_port(port: u16, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(SocketAddr::from(([127, 0, 0, 1], port))).is_err() {
        assert!(
            Instant::now() < deadline,
            "{what} did not start listening on {port}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A CA and a leaf for 127.0.0.1/localhost, as pebble's HTTPS certificate.
fn https_certificate(dir: &Path) -> String {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(DnType::CommonName, "pebble https test root");
    let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
    let key = KeyPair::generate().unwrap();
    let mut leaf =
        CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
    leaf.distinguished_name
        .push(DnType::CommonName, "localhost");
    let cert = leaf.signed_by(&key, &ca).unwrap();
    std::fs::write(dir.join("pebble.pem"), cert.pem()).unwrap();
    std::fs::write(dir.join("pebble.key"), key.serialize_pem()).unwrap();
    std::fs::write(dir.join("root.pem"), ca.pem()).unwrap();
    ca.pem()
}

impl Pebble {
    /// Starts pebble-challtestsrv and pebble, and waits until both listen.
    pub fn start(dir: &Path, config: PebbleConfig) -> Pebble {
        let dir = dir.join("pebble");
        std::fs::create_dir_all(&dir).unwrap();
        let ca_pem = https_certificate(&dir);
        let mut pebble = Pebble {
            config,
            ca_root: dir.join("root.pem"),
            dir,
            listen: free_port(),
            management: free_port(),
            dns: free_port(),
            pebble: None,
            dns_server: None,
            ca_pem,
        };
        pebble.start_dns();
        pebble.start_ca();
        pebble
    }

    fn start_dns(&mut self) {
        let management = free_port();
        let child = Command::new("pebble-challtestsrv")
            .args(["-dns01", &format!("127.0.0.1:{}", self.dns)])
            .args(["-http01", "", "-https01", "", "-tlsalpn01", ""])
            .args(["-management", &format!("127.0.0.1:{management}")])
            .args(["-defaultIPv4", "127.0.0.1", "-defaultIPv6", ""])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("pebble-challtestsrv runs (apt-get install pebble)");
        self.dns_server = Some(child);
        wait_for_port(management, "pebble-challtestsrv");
    }

    fn start_ca(&mut self) {
        let mut pebble = serde_json::json!({
            "listenAddress": format!("127.0.0.1:{}", self.listen),
            "managementListenAddress": format!("127.0.0.1:{}", self.management),
            "certificate": self.dir.join("pebble.pem"),
            "privateKey": self.dir.join("pebble.key"),
            "httpPort": self.config.http_port,
            "tlsPort": self.config.tls_port,
            "ocspResponderURL": "",
            "externalAccountBindingRequired": false,
            "domainBlocklist": self.config.blocklist,
        });
        if let Some(seconds) = self.config.validity_seconds {
            pebble["certificateValidityPeriod"] = seconds.into();
        }
        let file = self.dir.join("pebble-config.json");
        std::fs::write(&file, serde_json::json!({ "pebble": pebble }).to_string()).unwrap();
        let log = std::fs::File::create(self.dir.join("pebble.log")).unwrap();
        let child = Command::new("pebble")
            .arg("-config")
            .arg(&file)
            .args(["-dnsserver", &format!("127.0.0.1:{}", self.dns)])
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env("PEBBLE_WFE_NONCEREJECT", "0")
            .env("PEBBLE_AUTHZREUSE", "0")
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("pebble runs (apt-get install pebble)");
        self.pebble = Some(child);
        wait_for_port(self.listen, "pebble");
    }

    /// The ACME directory URL.
    pub fn directory(&self) -> String {
        format!("https://127.0.0.1:{}/dir", self.listen)
    }

    /// Stops the CA (the DNS server keeps running): orders fail from now on.
    pub fn stop_ca(&mut self) {
        if let Some(mut child) = self.pebble.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the CA again on the same ports, with a new state (pebble keeps
    /// nothing: accounts and roots are new).
    pub fn restart_ca(&mut self) {
        self.stop_ca();
        self.start_ca();
    }

    /// The root that signs the certificates pebble issues now (it changes on
    /// every start), as PEM, from the management interface.
    pub async fn issuing_root(&self) -> String {
        let client = reqwest::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(self.ca_pem.as_bytes()).unwrap())
            .build()
            .unwrap();
        client
            .get(format!("https://127.0.0.1:{}/roots/0", self.management))
            .send()
            .await
            .expect("pebble management answers")
            .text()
            .await
            .unwrap()
    }

    /// Pebble's log, for assertion messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("pebble.log")).unwrap_or_default()
    }
}

impl Drop for Pebble {
    fn drop(&mut self) {
        self.stop_ca();
        if let Some(mut child) = self.dns_server.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
