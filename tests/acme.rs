//! Automatic certificates end to end against Debian's `pebble` ACME test CA
//! (and `pebble-challtestsrv` as its DNS, every name on 127.0.0.1): each
//! challenge type, reuse after a restart, renewal without dropping
//! connections, a failing CA, and a name without a certificate failing alone.
#![cfg(feature = "embedded")]

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use common::binary::Binary;
use common::pebble::{free_port, Pebble, PebbleConfig};
use common::{site_toml, Edge, EdgeBuilder};
use s3edge::acme::challenge::ChallengeKind;
use s3edge::acme::AcmeOptions;

/// An acme site for `host` over the embedded bucket `bucket`.
fn acme_site(host: &str, bucket: &str) -> String {
    site_toml(host, bucket, "[tls]\nacme = true\n")
}

/// Ports for the edge's plain and TLS listeners, known before pebble starts.
struct Ports {
    http: u16,
    tls: u16,
}

impl Ports {
    fn new() -> Ports {
        Ports {
            http: free_port(),
            tls: free_port(),
        }
    }

    fn tls_addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.tls))
    }

    fn pebble(&self, validity_seconds: Option<u64>, blocklist: &[&str]) -> PebbleConfig {
        PebbleConfig {
            http_port: self.http,
            tls_port: self.tls,
            validity_seconds,
            blocklist: blocklist.iter().map(|s| s.to_string()).collect(),
        }
    }
}

/// ACME options for a node talking to `pebble`, retrying quickly.
fn acme_options(pebble: &Pebble, dir: &Path, challenges: &[ChallengeKind]) -> AcmeOptions {
    AcmeOptions {
        directory: pebble.directory(),
        ca_root: Some(pebble.ca_root.clone()),
        dir: dir.to_path_buf(),
        challenges: challenges.to_vec(),
        retry_min: Duration::from_millis(300),
        retry_max: Duration::from_secs(2),
        node_name: "test-node".into(),
        ..AcmeOptions::default()
    }
}

/// Starts a node with `sites` (name, host) on the fixed ports, one page each.
async fn start_node(ports: &Ports, acme: AcmeOptions, sites: &[(&str, &str)]) -> Edge {
    let mut builder = EdgeBuilder::new();
    for (name, host) in sites {
        builder = builder.site(name, &acme_site(host, name));
    }
    let (http, tls) = (ports.http, ports.tls);
    let edge = builder
        .with(move |o| {
            o.listen = vec![SocketAddr::from(([127, 0, 0, 1], http))];
            o.tls_listen = vec![SocketAddr::from(([127, 0, 0, 1], tls))];
            o.acme = acme;
        })
        .start();
    for (name, host) in sites {
        edge.create_bucket(name).await;
        edge.put(
            name,
            "page.html",
            format!("page of {host}"),
            Some("text/html"),
        )
        .await;
    }
    edge
}

/// Waits until `done` holds, or fails with `what` and `context` after `limit`.
async fn wait_until(
    what: &str,
    limit: Duration,
    mut done: impl FnMut() -> bool,
    context: impl Fn() -> String,
) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {}",
            context()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A client trusting pebble's issuing root `root_pem`, reaching `host` at `tls`.
fn https_client(root_pem: &str, host: &str, tls: SocketAddr) -> reqwest::Client {
    reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(root_pem.as_bytes()).unwrap())
        .resolve(host, tls)
        .tls_info(true)
        .build()
        .unwrap()
}

/// GET https://HOST/page.html: the body and the serial of the certificate the
/// connection was made with.
async fn fetch(
    client: &reqwest::Client,
    host: &str,
    port: u16,
) -> Result<(String, String), reqwest::Error> {
    let response = client
        .get(format!("https://{host}:{port}/page.html"))
        .send()
        .await?;
    let certificate = response
        .extensions()
        .get::<reqwest::tls::TlsInfo>()
        .and_then(|info| info.peer_certificate())
        .expect("TLS info")
        .to_vec();
    let (_, parsed) = x509_parser::parse_x509_certificate(&certificate).unwrap();
    let serial = parsed.raw_serial_as_string().replace(':', "");
    assert_eq!(response.status(), 200);
    Ok((response.text().await?, serial))
}

/// Pebble, and a node with `sites` (name, host) obtaining certificates from it.
struct Scenario {
    ports: Ports,
    pebble: Pebble,
    edge: Edge,
    state: actix_web::web::Data<s3edge::server::AppState>,
    _work: tempfile::TempDir,
}

impl Scenario {
    async fn start(
        pebble: PebbleConfigFn,
        challenges: &[ChallengeKind],
        sites: &[(&str, &str)],
    ) -> Scenario {
        let ports = Ports::new();
        let work = tempfile::tempdir().unwrap();
        let pebble = Pebble::start(work.path(), pebble(&ports));
        let acme = acme_options(&pebble, &work.path().join("acme"), challenges);
        let edge = start_node(&ports, acme, sites).await;
        let state = edge.node.state.clone();
        Scenario {
            ports,
            pebble,
            edge,
            state,
            _work: work,
        }
    }

    /// Waits for `site`'s certificate and returns its serial.
    async fn certificate(&self, site: &str) -> String {
        wait_until(
            &format!("a certificate for {site}"),
            Duration::from_secs(60),
            || self.state.acme.serial(site).is_some(),
            || self.pebble.log(),
        )
        .await;
        self.state.acme.serial(site).unwrap()
    }

    /// Waits until `count` ACME attempts have failed.
    async fn failures(&self, count: u64) {
        wait_until(
            &format!("{count} failed ACME attempts"),
            Duration::from_secs(30),
            || self.state.acme.failures() >= count,
            || self.pebble.log(),
        )
        .await;
    }

    /// A client for `host` trusting `root`.
    fn client(&self, root: &str, host: &str) -> reqwest::Client {
        https_client(root, host, self.ports.tls_addr())
    }

    async fn fetch(
        &self,
        client: &reqwest::Client,
        host: &str,
    ) -> Result<(String, String), reqwest::Error> {
        fetch(client, host, self.ports.tls).await
    }
}

/// Pebble's settings for the node's ports.
type PebbleConfigFn = fn(&Ports) -> PebbleConfig;

#[tokio::test]
async fn tls_alpn_01_obtains_a_certificate_browsers_accept_and_its_expiry_is_exported() {
    let run = Scenario::start(
        |p| p.pebble(None, &[]),
        &[ChallengeKind::TlsAlpn01],
        &[("alpha", "alpha.example.com")],
    )
    .await;
    let serial = run.certificate("alpha").await;
    let root = run.pebble.issuing_root().await;
    let client = run.client(&root, "alpha.example.com");
    let (body, seen) = run
        .fetch(&client, "alpha.example.com")
        .await
        .expect("https works");
    assert_eq!(body, "page of alpha.example.com");
    assert_eq!(seen, serial);
    assert_eq!(run.state.acme.orders(), 1);
    assert!(
        run.state.acme.challenges_answered(ChallengeKind::TlsAlpn01) >= 1,
        "validated over TLS-ALPN-01"
    );
    assert_eq!(run.state.acme.challenges_answered(ChallengeKind::Http01), 0);

    let expiry = run
        .edge
        .metric("s3edge_certificate_expiry_seconds{site=\"alpha\"}")
        .await;
    // Seconds left (the metric the alert rules watch).
    assert!(
        expiry > 86_400,
        "expiry in {expiry} s is in pebble's default lifetime (years)"
    );
    assert_eq!(run.edge.metric("s3edge_acme_orders_total").await, 1);
    let ca = run
        .pebble
        .directory()
        .replace("https://", "")
        .replace([':', '/'], "-");
    let stored = run
        ._work
        .path()
        .join(format!("acme/{ca}/certificates/alpha.json"));
    assert!(
        stored.is_file(),
        "{} holds the certificate",
        stored.display()
    );
}

#[tokio::test]
async fn a_renewal_swaps_the_certificate_and_open_connections_keep_working() {
    // 12-second certificates: renewal at two thirds of the lifetime, 8 s.
    let run = Scenario::start(
        |p| p.pebble(Some(12), &[]),
        &[ChallengeKind::TlsAlpn01],
        &[("renew", "renew.example.com")],
    )
    .await;
    let first = run.certificate("renew").await;
    let root = run.pebble.issuing_root().await;
    let open = run.client(&root, "renew.example.com");
    let (_, seen) = run.fetch(&open, "renew.example.com").await.unwrap();
    assert_eq!(seen, first);

    let started = Instant::now();
    let state = run.state.clone();
    wait_until(
        "the renewal",
        Duration::from_secs(30),
        || state.acme.serial("renew").is_some_and(|s| s != first),
        || run.pebble.log(),
    )
    .await;
    let renewed_after = started.elapsed();
    let second = state.acme.serial("renew").unwrap();
    assert_eq!(state.acme.orders(), 2);
    assert_eq!(state.acme.failures(), 0);

    // The connection opened before the swap is still up, on the old certificate.
    let (body, seen) = run
        .fetch(&open, "renew.example.com")
        .await
        .expect("open connection survives");
    assert_eq!(body, "page of renew.example.com");
    assert_eq!(seen, first, "the open connection keeps its certificate");
    // A new connection gets the new one.
    let fresh = run.client(&root, "renew.example.com");
    let (_, seen) = run.fetch(&fresh, "renew.example.com").await.unwrap();
    assert_eq!(seen, second);
    println!("renewed {renewed_after:?} after the first check (12 s certificates)");
}

#[tokio::test]
async fn a_failing_ca_leaves_the_old_certificate_in_service_and_is_retried_until_it_recovers() {
    let mut run = Scenario::start(
        |p| p.pebble(Some(12), &[]),
        &[ChallengeKind::TlsAlpn01],
        &[("steady", "steady.example.com")],
    )
    .await;
    let first = run.certificate("steady").await;
    let old_root = run.pebble.issuing_root().await;
    let expiry_series = "s3edge_certificate_expiry_seconds{site=\"steady\"}";
    let expiry = run.edge.metric(expiry_series).await;

    run.pebble.stop_ca();
    run.failures(2).await;
    let state = run.state.clone();
    let fresh = run.client(&old_root, "steady.example.com");
    let (body, seen) = run
        .fetch(&fresh, "steady.example.com")
        .await
        .expect("the old certificate still serves new connections");
    assert_eq!(body, "page of steady.example.com");
    assert_eq!(seen, first);
    // Seconds left: the same certificate, a little later.
    assert!(expiry.abs_diff(run.edge.metric(expiry_series).await) <= 120);
    assert!(run.edge.metric("s3edge_acme_failures_total").await >= 2);

    // The CA comes back (with new state: the account must be registered again).
    run.pebble.restart_ca();
    wait_until(
        "a renewal after the CA recovered",
        Duration::from_secs(60),
        || state.acme.serial("steady").is_some_and(|s| s != first),
        || run.pebble.log(),
    )
    .await;
    let new_root = run.pebble.issuing_root().await;
    let client = run.client(&new_root, "steady.example.com");
    let (_, seen) = run.fetch(&client, "steady.example.com").await.unwrap();
    assert_eq!(Some(seen), state.acme.serial("steady"));
}

#[tokio::test]
async fn the_handshake_fails_only_for_the_name_that_has_no_certificate() {
    // Pebble refuses `refused.example.com`: that site never gets a certificate.
    let run = Scenario::start(
        |p| p.pebble(None, &["refused.example.com"]),
        &[ChallengeKind::TlsAlpn01, ChallengeKind::Http01],
        &[
            ("good", "good.example.com"),
            ("refused", "refused.example.com"),
        ],
    )
    .await;
    run.certificate("good").await;
    run.failures(1).await;
    let state = run.state.clone();
    assert_eq!(state.acme.serial("refused"), None);

    let root = run.pebble.issuing_root().await;
    let good = run.client(&root, "good.example.com");
    let refused = run.client(&root, "refused.example.com");
    let error = run
        .fetch(&refused, "refused.example.com")
        .await
        .expect_err("no certificate for refused.example.com: the handshake fails");
    assert!(
        error.is_connect(),
        "a handshake failure, not an HTTP error: {error:?}"
    );
    let (body, _) = run
        .fetch(&good, "good.example.com")
        .await
        .expect("good still works");
    assert_eq!(body, "page of good.example.com");
    // The refused site still answers over plain HTTP.
    let plain = run.edge.get("refused.example.com", "/page.html").await;
    assert_eq!(plain.status(), 200);

    // A site added by a reload gets its certificate without a restart.
    std::fs::write(
        run.edge.dir.path().join("sites/added.toml"),
        acme_site("added.example.com", "added"),
    )
    .unwrap();
    run.edge.create_bucket("added").await;
    run.edge
        .put(
            "added",
            "page.html",
            "page of added.example.com",
            Some("text/html"),
        )
        .await;
    s3edge::server::reload(&state).await.expect("reload");
    run.certificate("added").await;
    let added = run.client(&root, "added.example.com");
    let (body, _) = run
        .fetch(&added, "added.example.com")
        .await
        .expect("added works");
    assert_eq!(body, "page of added.example.com");
    run.fetch(&refused, "refused.example.com")
        .await
        .expect_err("refused still has none");
}

/// The binary as an operator runs it: `--acme-*` flags, HTTP-01 on the plain
/// listener, and a restart that serves the stored certificate with no new
/// order (the CA is even down by then).
#[tokio::test]
async fn http_01_and_a_restart_that_reuses_the_stored_certificate_without_a_new_order() {
    let ports = Ports::new();
    let work = tempfile::tempdir().unwrap();
    let mut pebble = Pebble::start(work.path(), ports.pebble(None, &[]));
    let sites = work.path().join("sites");
    std::fs::create_dir_all(sites.join("buckets/www")).unwrap();
    std::fs::write(sites.join("www.toml"), acme_site("www.example.com", "www")).unwrap();
    std::fs::write(
        sites.join("buckets/www/page.html"),
        "page of www.example.com",
    )
    .unwrap();
    let listen = format!("127.0.0.1:{}", ports.http);
    let tls_listen = format!("127.0.0.1:{}", ports.tls);
    let directory = pebble.directory();
    let ca_root = pebble.ca_root.display().to_string();
    let acme_dir = work.path().join("acme").display().to_string();
    let args = [
        "--sites",
        "sites",
        "--listen",
        &listen,
        "--tls-listen",
        &tls_listen,
        "--admin-listen",
        "127.0.0.1:0",
        "--embedded-s3-listen",
        "127.0.0.1:0",
        "--cache-dir",
        "cache",
        "--acme-directory",
        &directory,
        "--acme-ca-root",
        &ca_root,
        "--acme-dir",
        &acme_dir,
        "--acme-email",
        "ops@example.com",
        "--acme-challenge",
        "http-01",
    ];
    let metrics = |admin: String| async move {
        reqwest::get(format!("{admin}/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    };
    let expiry_line = |text: &str| {
        text.lines()
            .find(|l| l.starts_with("s3edge_certificate_expiry_seconds{site=\"www\"}"))
            .map(str::to_string)
    };

    let mut first = Binary::serve(&args, &[], work.path());
    let deadline = Instant::now() + Duration::from_secs(60);
    let line = loop {
        if let Some(line) = expiry_line(&metrics(first.admin.clone()).await) {
            break line;
        }
        assert!(
            Instant::now() < deadline,
            "no certificate: {}\n{}",
            first.stderr(),
            pebble.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(metrics(first.admin.clone())
        .await
        .contains("s3edge_acme_orders_total 1"));
    assert!(
        first
            .stderr()
            .lines()
            .any(|l| l.contains("certificate obtained") && l.contains("http-01")),
        "validated over HTTP-01: {}",
        first.stderr()
    );
    let root = pebble.issuing_root().await;
    let client = https_client(&root, "www.example.com", ports.tls_addr());
    let (body, serial) = fetch(&client, "www.example.com", ports.tls)
        .await
        .expect("https works");
    assert_eq!(body, "page of www.example.com");
    // The CA goes down: after the restart only the stored certificate can serve.
    drop(client);
    pebble.stop_ca();
    // Let the runtime close the dropped client's connection before blocking.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let code = first.stop();
    assert_eq!(code, Some(0), "{}", first.stderr());
    let second = Binary::serve(&args, &[], work.path());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = metrics(second.admin.clone()).await;
        if expiry_line(&text).is_some() {
            // Seconds left: the same certificate, a little later.
            let seconds = |l: &str| -> u64 { l.rsplit(' ').next().unwrap().parse().unwrap() };
            let now = expiry_line(&text).unwrap();
            assert!(
                seconds(&now).abs_diff(seconds(&line)) <= 120,
                "the same certificate: {line} then {now}"
            );
            assert!(
                text.contains("s3edge_acme_orders_total 0"),
                "no new order: {text}"
            );
            assert!(
                text.contains("s3edge_acme_failures_total 0"),
                "the CA was not needed: {text}"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the stored certificate was not reused: {}",
            second.stderr()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let client = https_client(&root, "www.example.com", ports.tls_addr());
    let (_, again) = fetch(&client, "www.example.com", ports.tls)
        .await
        .expect("https after restart");
    assert_eq!(again, serial);
}

/// Two nodes share the ACME storage in a bucket of the first node's embedded
/// store: one takes the order lock (a conditional PutObject) and orders, the
/// other waits and serves the same certificate. The CA validates HTTP-01 on
/// the first node only; the answer is shared, so either node may order.
/// Two nodes sharing the `--acme-bucket` (in the first one's embedded
/// store) and serving the site `shared.example.com`, each on its own
/// listeners; `blocklist` names pebble refuses.
struct SharedPair {
    pebble: Pebble,
    first: Edge,
    second: Edge,
    first_ports: Ports,
    second_ports: Ports,
    client: aws_sdk_s3::Client,
    _work: tempfile::TempDir,
}

async fn shared_pair(blocklist: &[&str]) -> SharedPair {
    use s3edge::acme::bucket::{AcmeBucket, BucketStorage};
    use s3edge::config::Endpoint;
    let first_ports = Ports::new();
    let second_ports = Ports::new();
    let work = tempfile::tempdir().unwrap();
    let pebble = Pebble::start(work.path(), first_ports.pebble(None, blocklist));
    let quick = |o: &mut AcmeOptions, name: &str| {
        o.shared_poll = Duration::from_millis(200);
        o.node_name = name.into();
    };

    let mut first_acme = acme_options(
        &pebble,
        &work.path().join("unused-1"),
        &[ChallengeKind::Http01],
    );
    first_acme.bucket = Some(AcmeBucket {
        bucket: "acme-shared".into(),
        prefix: "edge/acme/".into(),
        endpoint: Endpoint::Embedded,
        region: None,
    });
    quick(&mut first_acme, "node-1");
    let (http, tls) = (first_ports.http, first_ports.tls);
    let first = EdgeBuilder::new()
        .site("shared", &acme_site("shared.example.com", "shared"))
        .bucket("acme-shared")
        .with(move |o| {
            o.listen = vec![SocketAddr::from(([127, 0, 0, 1], http))];
            o.tls_listen = vec![SocketAddr::from(([127, 0, 0, 1], tls))];
            o.acme = first_acme;
        })
        .start();
    let store = format!("http://{}", first.node.embedded_addr.unwrap());
    let client = common::s3_client(
        &store,
        s3edge::origin::embedded::DEFAULT_ACCESS_KEY,
        s3edge::origin::embedded::DEFAULT_SECRET_KEY,
    );
    let mut second_acme = acme_options(
        &pebble,
        &work.path().join("unused-2"),
        &[ChallengeKind::Http01],
    );
    second_acme.storage = Some(std::sync::Arc::new(BucketStorage::new(
        client.clone(),
        "acme-shared",
        "edge/acme/",
    )));
    quick(&mut second_acme, "node-2");
    let second = start_node(&second_ports, second_acme, &[]).await;
    // The second node's copy of the site, on its own listeners.
    std::fs::write(
        second.dir.path().join("sites/shared.toml"),
        acme_site("shared.example.com", "shared"),
    )
    .unwrap();
    second.create_bucket("shared").await;
    second
        .put(
            "shared",
            "page.html",
            "page of shared.example.com",
            Some("text/html"),
        )
        .await;
    s3edge::server::reload(&second.node.state)
        .await
        .expect("reload");
    first.create_bucket("shared").await;
    first
        .put(
            "shared",
            "page.html",
            "page of shared.example.com",
            Some("text/html"),
        )
        .await;

    SharedPair {
        pebble,
        first,
        second,
        first_ports,
        second_ports,
        client,
        _work: work,
    }
}

#[tokio::test]
async fn two_nodes_sharing_a_bucket_order_once_and_serve_the_same_certificate() {
    let SharedPair {
        pebble,
        first,
        second,
        first_ports,
        second_ports,
        client,
        _work,
    } = shared_pair(&[]).await;
    let (a, b) = (first.node.state.clone(), second.node.state.clone());
    wait_until(
        "both nodes serving a certificate",
        Duration::from_secs(60),
        || a.acme.serial("shared").is_some() && b.acme.serial("shared").is_some(),
        || pebble.log(),
    )
    .await;
    assert_eq!(
        a.acme.serial("shared"),
        b.acme.serial("shared"),
        "the same certificate"
    );
    assert_eq!(
        a.acme.orders() + b.acme.orders(),
        1,
        "one order for the ring"
    );
    let objects = client
        .list_objects_v2()
        .bucket("acme-shared")
        .prefix("edge/acme/")
        .send()
        .await
        .unwrap();
    let keys: Vec<String> = objects
        .contents()
        .iter()
        .filter_map(|o| o.key().map(str::to_string))
        .collect();
    assert!(
        keys.iter()
            .any(|k| k.ends_with("/certificates/shared.json")),
        "{keys:?}"
    );
    assert!(
        keys.iter().any(|k| k.ends_with("/account.json")),
        "{keys:?}"
    );
    // The embedded store holds the private keys as --acme-dir does: its
    // owner's only.
    let stored = files_under(&first.dir.path().join("buckets/acme-shared/edge/acme"));
    assert!(stored.len() >= 2, "{stored:?}");
    for file in &stored {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{} is {mode:o}", file.display());
    }

    let root = pebble.issuing_root().await;
    for ports in [&first_ports, &second_ports] {
        let https = https_client(&root, "shared.example.com", ports.tls_addr());
        let (body, serial) = fetch(&https, "shared.example.com", ports.tls)
            .await
            .expect("https works");
        assert_eq!(body, "page of shared.example.com");
        assert_eq!(Some(serial), a.acme.serial("shared"));
    }
}

/// Every regular file under `dir`, at any depth.
fn files_under(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(files_under(&path));
        } else {
            files.push(path);
        }
    }
    files
}

/// The storage folder of the CA at `directory` inside an `--acme-dir`.
fn ca_folder(directory: &str) -> String {
    directory.replace("https://", "").replace([':', '/'], "-")
}

/// A CA that accepts connections and never answers: an order waits on it
/// forever, with the site's order lock held.
fn silent_ca() -> (String, std::thread::JoinHandle<()>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let directory = format!("https://{}/dir", listener.local_addr().unwrap());
    let thread = std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming() {
            match stream {
                Ok(stream) => held.push(stream),
                Err(_) => return,
            }
        }
    });
    (directory, thread)
}

/// A node stopped (SIGTERM) while its order is in flight removes its order
/// lock on the way out, and the lock names the node by its `--node-id`.
#[tokio::test]
async fn a_node_stopped_mid_order_releases_its_lock_which_names_it_by_node_id() {
    let work = tempfile::tempdir().unwrap();
    let sites = work.path().join("sites");
    std::fs::create_dir_all(sites.join("buckets/www")).unwrap();
    std::fs::write(sites.join("www.toml"), acme_site("www.example.com", "www")).unwrap();
    let (directory, _ca) = silent_ca();
    let acme_dir = work.path().join("acme");
    let acme_dir_arg = acme_dir.display().to_string();
    let args = [
        "--sites",
        "sites",
        "--listen",
        "127.0.0.1:0",
        "--tls-listen",
        "127.0.0.1:0",
        "--admin-listen",
        "127.0.0.1:0",
        "--embedded-s3-listen",
        "127.0.0.1:0",
        "--cache-dir",
        "cache",
        "--acme-directory",
        &directory,
        "--acme-dir",
        &acme_dir_arg,
        "--node-id",
        "edge-7",
    ];
    let mut node = Binary::serve(&args, &[], work.path());
    let lock = acme_dir.join(format!("{}/locks/www", ca_folder(&directory)));
    let deadline = Instant::now() + Duration::from_secs(10);
    while !lock.is_file() {
        assert!(
            Instant::now() < deadline,
            "no order lock at {}: {}",
            lock.display(),
            node.stderr()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let record: serde_json::Value = serde_json::from_slice(&std::fs::read(&lock).unwrap()).unwrap();
    assert_eq!(record["holder"], "edge-7", "{record}");
    assert_eq!(node.stop(), Some(0), "{}", node.stderr());
    assert!(
        !lock.exists(),
        "a clean stop leaves no lock to wait out: {}",
        std::fs::read_to_string(&lock).unwrap_or_default()
    );
}

/// Waits up to `limit` for `site`'s certificate.
async fn wait_for_certificate(
    state: &s3edge::server::AppState,
    site: &str,
    limit: Duration,
    pebble: &Pebble,
) {
    wait_until(
        &format!("a certificate for {site}"),
        limit,
        || state.acme.serial(site).is_some(),
        || pebble.log(),
    )
    .await;
}

/// A node killed mid-order (SIGKILL: nothing runs on the way out) left its
/// order lock in its `--acme-dir`, valid for 10 more minutes; started again,
/// it takes the lock over at once and obtains the certificate.
#[tokio::test]
async fn a_restart_after_a_kill_mid_order_takes_over_the_lock_it_left() {
    let ports = Ports::new();
    let work = tempfile::tempdir().unwrap();
    let pebble = Pebble::start(work.path(), ports.pebble(None, &[]));
    let acme_dir = work.path().join("acme");
    let locks = acme_dir.join(format!("{}/locks", ca_folder(&pebble.directory())));
    std::fs::create_dir_all(&locks).unwrap();
    let expires = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 600;
    // As the killed process left it (its name then: no $HOSTNAME under systemd).
    std::fs::write(
        locks.join("theta"),
        format!("{{\"holder\":\"s3edge\",\"expires\":{expires}}}"),
    )
    .unwrap();
    let mut acme = acme_options(&pebble, &acme_dir, &[ChallengeKind::TlsAlpn01]);
    acme.shared_poll = Duration::from_secs(60);
    let edge = start_node(&ports, acme, &[("theta", "theta.example.com")]).await;
    let state = edge.node.state.clone();
    wait_for_certificate(&state, "theta", Duration::from_secs(20), &pebble).await;
    assert_eq!(state.acme.orders(), 1);
    let root = pebble.issuing_root().await;
    let client = https_client(&root, "theta.example.com", ports.tls_addr());
    let (body, _) = fetch(&client, "theta.example.com", ports.tls)
        .await
        .expect("https works");
    assert_eq!(body, "page of theta.example.com");
}

/// The CA forgets every account (pebble restarted): the next order registers
/// a new account at once and goes on, with no failure and no retry delay
/// (a minute here, up to an hour in production).
#[tokio::test]
async fn an_account_the_ca_forgot_is_registered_again_at_once_and_the_order_goes_on() {
    let ports = Ports::new();
    let work = tempfile::tempdir().unwrap();
    let mut pebble = Pebble::start(work.path(), ports.pebble(None, &[]));
    let mut acme = acme_options(
        &pebble,
        &work.path().join("acme"),
        &[ChallengeKind::TlsAlpn01],
    );
    acme.retry_min = Duration::from_secs(60);
    acme.retry_max = Duration::from_secs(60);
    let edge = start_node(&ports, acme, &[("one", "one.example.com")]).await;
    let state = edge.node.state.clone();
    wait_for_certificate(&state, "one", Duration::from_secs(30), &pebble).await;

    pebble.restart_ca();
    std::fs::write(
        edge.dir.path().join("sites/two.toml"),
        acme_site("two.example.com", "two"),
    )
    .unwrap();
    s3edge::server::reload(&state).await.expect("reload");
    wait_for_certificate(&state, "two", Duration::from_secs(20), &pebble).await;
    assert_eq!(
        state.acme.failures(),
        0,
        "a forgotten account is no failure"
    );
    assert_eq!(state.acme.orders(), 2);
}

/// The `/metrics` line of `series`, as its value.
fn series_value(text: &str, series: &str) -> Option<i64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// A certificate that expired while the CA was down is still on `/metrics`
/// after a restart (a negative expiry), and every acme site without a valid
/// certificate, one that never had any included, says so in
/// Waits (up to 30 s) until the gauge `valid` reads 1 on `edge`.
async fn wait_for_valid(edge: &Edge, valid: &str, pebble: &Pebble) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while series_value(&edge.metrics().await, valid) != Some(1) {
        assert!(
            Instant::now() < deadline,
            "no certificate: {}",
            pebble.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `s3edge_acme_certificate_valid`: the alerts keep firing while HTTPS is down.
#[tokio::test]
async fn after_a_restart_an_expired_certificate_and_a_missing_one_stay_on_metrics() {
    let ports = Ports::new();
    let work = tempfile::tempdir().unwrap();
    let mut pebble = Pebble::start(work.path(), ports.pebble(Some(6), &[]));
    let acme_dir = work.path().join("acme");
    let options = || acme_options(&pebble, &acme_dir, &[ChallengeKind::TlsAlpn01]);
    let first = start_node(&ports, options(), &[("brief", "brief.example.com")]).await;
    let valid = "s3edge_acme_certificate_valid{site=\"brief\"}";
    wait_for_valid(&first, valid, &pebble).await;
    let second_options = options();
    drop(first);
    pebble.stop_ca();
    // Every certificate issued so far (6-second ones) has expired.
    tokio::time::sleep(Duration::from_secs(7)).await;

    let second = start_node(
        &Ports::new(),
        second_options,
        &[
            ("brief", "brief.example.com"),
            ("never", "never.example.com"),
        ],
    )
    .await;
    let expiry = "s3edge_certificate_expiry_seconds{site=\"brief\"}";
    let deadline = Instant::now() + Duration::from_secs(5);
    let text = loop {
        let text = second.metrics().await;
        if series_value(&text, expiry).is_some() || Instant::now() > deadline {
            break text;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let seconds = series_value(&text, expiry);
    assert!(
        seconds.is_some_and(|s| s < 0),
        "the expired certificate's expiry: {seconds:?}\n{text}"
    );
    assert_eq!(series_value(&text, valid), Some(0), "{text}");
    assert_eq!(
        series_value(&text, "s3edge_acme_certificate_valid{site=\"never\"}"),
        Some(0),
        "{text}"
    );
}

/// A host added to an acme site before its order can succeed (its DNS does
/// not lead here yet; here the CA refuses it): after a restart the stored
/// certificate serves the names it covers, as the running node did after a
/// reload. It was dropped at start for not naming every host, and HTTPS
/// failed for all of the site's names until the new one validated.
#[tokio::test]
async fn after_a_restart_the_stored_certificate_serves_its_names_while_an_added_one_waits() {
    let ports = Ports::new();
    let work = tempfile::tempdir().unwrap();
    let pebble = Pebble::start(work.path(), ports.pebble(None, &["new.example.com"]));
    let acme_dir = work.path().join("acme");
    let options = || acme_options(&pebble, &acme_dir, &[ChallengeKind::TlsAlpn01]);
    let first = start_node(&ports, options(), &[("shop", "shop.example.com")]).await;
    let valid = "s3edge_acme_certificate_valid{site=\"shop\"}";
    wait_for_valid(&first, valid, &pebble).await;
    drop(first);

    // The same site with a second host (site_toml writes `hosts = ["HOST"]`).
    let both = "shop.example.com\", \"new.example.com";
    let second = start_node(&ports, options(), &[("shop", both)]).await;
    let root = pebble.issuing_root().await;
    let client = https_client(&root, "shop.example.com", ports.tls_addr());
    let served = fetch(&client, "shop.example.com", ports.tls).await;
    assert!(
        served.is_ok(),
        "the stored certificate no longer serves shop.example.com: {served:?}"
    );
    let text = second.metrics().await;
    // Not valid for every host: an order for both follows (and fails here).
    assert_eq!(series_value(&text, valid), Some(0), "{text}");
}

/// Nodes sharing a bucket share the retry schedule of a failing order: each
/// kept its own, so two nodes made twice the failed validations a CA
/// counts (Let's Encrypt allows 5 per name and hour), three nodes three
/// times. The failure is recorded beside the certificates, and no node
/// orders before the next attempt is due.
#[tokio::test]
async fn nodes_sharing_a_bucket_share_the_retry_schedule_of_a_failing_order() {
    let pair = shared_pair(&["shared.example.com"]).await;
    let (a, b) = (
        pair.first.node.state.clone(),
        pair.second.node.state.clone(),
    );
    // Retries from 300 ms, doubling, up to 2 s (acme_options): one schedule
    // makes about 6 attempts in 8 s, two of their own about 12.
    wait_until(
        "a failed order",
        Duration::from_secs(20),
        || a.acme.failures() + b.acme.failures() >= 1,
        || pair.pebble.log(),
    )
    .await;
    tokio::time::sleep(Duration::from_secs(8)).await;
    let attempts = a.acme.failures() + b.acme.failures();
    assert!(
        (3..=8).contains(&attempts),
        "{attempts} failed orders in 8 s: {} and {}",
        a.acme.failures(),
        b.acme.failures()
    );
    let objects = pair
        .client
        .list_objects_v2()
        .bucket("acme-shared")
        .prefix("edge/acme/")
        .send()
        .await
        .unwrap();
    let keys: Vec<&str> = objects.contents().iter().filter_map(|o| o.key()).collect();
    assert!(
        keys.iter().any(|k| k.ends_with("/failures/shared.json")),
        "no shared record of the failures: {keys:?}"
    );
}
