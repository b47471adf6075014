//! The cluster (DESIGN.md "Cluster: peers and a parent tier"), with real
//! `s3edge serve` processes on loopback: a ring of nodes whose sites read one
//! bucket (the embedded store of an in-process node) through a counting
//! proxy, so every request to the bucket is seen.
#![cfg(feature = "embedded")]

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::binary::{free_port, Binary};
use common::fault_proxy::FaultProxy;
use common::{http_client, Edge, EdgeBuilder};
use s3edge::cluster::ring::{object_hash_key, Ring};
use s3edge::origin::embedded::{DEFAULT_ACCESS_KEY, DEFAULT_SECRET_KEY};

const TOKEN: &str = "cluster-test-token";
const HOST: &str = "c.test";
const BUCKET: &str = "cluster-bucket";

/// The bucket: an embedded store behind a proxy that records every request.
struct Bucket {
    store: Edge,
    proxy: FaultProxy,
}

impl Bucket {
    async fn start() -> Bucket {
        let store = EdgeBuilder::new().start();
        store.create_bucket(BUCKET).await;
        let proxy = FaultProxy::start();
        proxy.set_upstream(store.node.embedded_addr.expect("embedded store"));
        Bucket { store, proxy }
    }

    async fn put(&self, key: &str, body: &str, cache_control: Option<&str>) {
        self.store
            .put_with(BUCKET, key, body.as_bytes().to_vec(), |p| {
                let p = p.content_type("text/plain");
                match cache_control {
                    Some(c) => p.cache_control(c),
                    None => p,
                }
            })
            .await;
    }

    /// Object GETs the bucket received for `key` (`None`: any key).
    fn gets(&self, key: Option<&str>) -> usize {
        let prefix = format!("GET /{BUCKET}/{}", key.unwrap_or(""));
        self.proxy
            .request_lines()
            .iter()
            .filter(|l| l.starts_with(&prefix))
            .count()
    }
}

/// One node of a ring: its process, its directory (site file, disk cache)
/// and its cluster address.
struct Node {
    bin: Option<Binary>,
    id: String,
    cluster: SocketAddr,
    dir: tempfile::TempDir,
}

fn site_file(proxy: &str, extra: &str) -> String {
    format!(
        "hosts = [\"{HOST}\"]\n[origin]\nbucket = \"{BUCKET}\"\nendpoint = \"{proxy}\"\n\
         access_key_id_env = \"S3EDGE_T_KEY\"\nsecret_access_key_env = \"S3EDGE_T_SECRET\"\n\
         timeout = \"5s\"\n[cache]\ndefault_ttl = \"1h\"\n{extra}"
    )
}

fn env() -> Vec<(&'static str, &'static str)> {
    vec![
        ("S3EDGE_CLUSTER_TOKEN", TOKEN),
        ("S3EDGE_T_KEY", DEFAULT_ACCESS_KEY),
        ("S3EDGE_T_SECRET", DEFAULT_SECRET_KEY),
    ]
}

impl Node {
    fn new(id: &str, proxy: &str, extra_site: &str) -> Node {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("sites")).unwrap();
        std::fs::write(
            dir.path().join("sites/c.toml"),
            site_file(proxy, extra_site),
        )
        .unwrap();
        Node {
            bin: None,
            id: id.to_string(),
            cluster: SocketAddr::from(([127, 0, 0, 1], free_port())),
            dir,
        }
    }

    fn start(&mut self, peers: &[SocketAddr], parents: &[SocketAddr]) {
        self.start_with(peers, parents, &[]);
    }

    /// [`Node::start`] with more flags.
    fn start_with(&mut self, peers: &[SocketAddr], parents: &[SocketAddr], more: &[&str]) {
        self.start_env(peers, parents, more, &env());
    }

    /// [`Node::start_with`] with its own environment (another token).
    fn start_env(
        &mut self,
        peers: &[SocketAddr],
        parents: &[SocketAddr],
        more: &[&str],
        env: &[(&str, &str)],
    ) {
        let join = |list: &[SocketAddr]| {
            list.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(",")
        };
        let cluster = self.cluster.to_string();
        let peers = join(peers);
        let parents = join(parents);
        let mut args = vec![
            "--sites",
            "sites",
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
            "--cache-dir",
            "cache",
            "--access-log",
            "off",
            "--workers",
            "2",
            "--node-id",
            self.id.as_str(),
            "--cluster-listen",
            cluster.as_str(),
        ];
        if !peers.is_empty() {
            args.extend(["--peers", peers.as_str()]);
        }
        if !parents.is_empty() {
            args.extend(["--parent", parents.as_str()]);
        }
        args.extend(more);
        self.bin = Some(Binary::serve(&args, env, self.dir.path()));
    }

    fn bin(&self) -> &Binary {
        self.bin.as_ref().expect("node running")
    }

    fn kill(&mut self) {
        if let Some(mut bin) = self.bin.take() {
            bin.child.kill().unwrap();
            bin.child.wait().unwrap();
        }
    }

    async fn get(&self, path: &str) -> reqwest::Response {
        http_client()
            .get(format!("{}{path}", self.bin().http))
            .header("host", HOST)
            .send()
            .await
            .expect("request")
    }

    async fn text(&self, path: &str) -> (u16, String) {
        let response = self.get(path).await;
        (response.status().as_u16(), response.text().await.unwrap())
    }

    async fn metrics(&self) -> String {
        http_client()
            .get(format!("{}/metrics", self.bin().admin))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// `/status.json` of the admin listener.
    async fn status(&self) -> serde_json::Value {
        let text = http_client()
            .get(format!("{}/status.json", self.bin().admin))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        serde_json::from_str(&text).unwrap()
    }

    async fn purge(&self, body: serde_json::Value) -> serde_json::Value {
        let response = http_client()
            .post(format!("{}/purge", self.bin().admin))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        serde_json::from_str(&response.text().await.unwrap()).unwrap()
    }
}

/// A ring of `n` nodes (`edge-1`...), each listing all of them.
fn ring(n: usize, proxy: &str, extra_site: &str) -> Vec<Node> {
    let mut nodes: Vec<Node> = (1..=n)
        .map(|i| Node::new(&format!("edge-{i}"), proxy, extra_site))
        .collect();
    let peers: Vec<SocketAddr> = nodes.iter().map(|n| n.cluster).collect();
    for node in &mut nodes {
        node.start(&peers, &[]);
    }
    nodes
}

fn peers_of(nodes: &[Node]) -> Vec<SocketAddr> {
    nodes.iter().map(|n| n.cluster).collect()
}

fn header(response: &reqwest::Response, name: &str) -> String {
    response
        .headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn each_object_is_fetched_from_the_bucket_once_across_three_nodes() {
    let bucket = Bucket::start().await;
    let nodes = ring(3, &bucket.proxy.url(), "");
    let keys: Vec<String> = (0..60).map(|i| format!("objects/{i}.txt")).collect();
    for key in &keys {
        bucket.put(key, &format!("body of {key}"), None).await;
    }
    bucket.proxy.reset_counts();
    // Every object through every node, the nodes asked at the same time.
    for key in &keys {
        let path = format!("/{key}");
        let answers = futures_util::future::join_all(nodes.iter().map(|n| n.text(&path))).await;
        for (status, body) in answers {
            assert_eq!((status, body), (200, format!("body of {key}")));
        }
    }
    assert_eq!(bucket.gets(None), keys.len(), "one bucket GET per object");
    // Again: every node now answers from its own cache or its peer's.
    for key in &keys {
        for node in &nodes {
            assert_eq!(node.text(&format!("/{key}")).await.0, 200);
        }
    }
    assert_eq!(bucket.gets(None), keys.len());
    for node in &nodes {
        let metrics = node.metrics().await;
        assert!(
            metrics.lines().any(|l| l == "s3edge_cluster_members 3"),
            "{metrics}"
        );
        let others: Vec<SocketAddr> = peers_of(&nodes)
            .into_iter()
            .filter(|a| *a != node.cluster)
            .collect();
        for peer in others {
            assert!(
                metrics.contains(&format!(
                    "s3edge_peer_requests_total{{peer=\"{peer}\",outcome=\"ok\"}}"
                )),
                "{} does not show {peer}:\n{metrics}",
                node.id
            );
        }
    }
    // The status page lists the members: this node, then its peers.
    let report = nodes[0].status().await;
    let members = report["cluster"]["members"].as_array().unwrap();
    let states: Vec<&str> = members
        .iter()
        .map(|m| m["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["self", "peer", "peer"], "{members:?}");
    assert_eq!(members[0]["id"], "edge-1");
    assert_eq!(report["node"]["id"], "edge-1");
    for node in &nodes {
        let log = node.bin().stderr();
        assert!(!log.contains("other members than this node"), "{log}");
    }
}

/// Two nodes given different `--peers` disagree on which node owns a key,
/// so objects are fetched and stored twice: each says so in its log, naming
/// the fix, when the other's requests show it.
#[tokio::test(flavor = "multi_thread")]
async fn nodes_given_different_peer_lists_warn_of_it() {
    let bucket = Bucket::start().await;
    let mut nodes: Vec<Node> = (1..=3)
        .map(|i| Node::new(&format!("edge-{i}"), &bucket.proxy.url(), ""))
        .collect();
    // edge-1 and edge-2 agree; edge-3 has one more member. All three on one
    // address: edge-2's requests, with edge-1's own ring, must not reset
    // what edge-3's have shown (they did: a warning every few requests).
    let all = peers_of(&nodes);
    let mut more = all.clone();
    more.push(SocketAddr::from(([127, 0, 0, 1], free_port())));
    nodes[0].start(&all, &[]);
    nodes[1].start(&all, &[]);
    nodes[2].start(&more, &[]);
    for i in 0..60 {
        let key = format!("objects/{i}.txt");
        bucket.put(&key, "x", None).await;
        for node in &nodes {
            assert_eq!(node.text(&format!("/{key}")).await.0, 200);
        }
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    for node in &nodes {
        let log = node.bin().stderr();
        let warnings: Vec<&str> = log
            .lines()
            .filter(|l| l.contains("hashes keys over other members than this node"))
            .collect();
        // Once a minute at most per peer: edge-1 and edge-2 each name
        // edge-3; edge-3 names each of them.
        let expected: &[&str] = if node.id == "edge-3" {
            &["edge-1", "edge-2"]
        } else {
            &["edge-3"]
        };
        assert_eq!(warnings.len(), expected.len(), "{log}");
        for peer in expected {
            assert!(
                warnings
                    .iter()
                    .any(|w| w.contains(&format!("peer {peer} at 127.0.0.1"))),
                "{peer}: {log}"
            );
        }
        assert!(
            warnings
                .iter()
                .all(|w| w.contains("give every node the same --peers")),
            "{log}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_cluster_listener_wants_the_token_and_the_node_wants_it_set() {
    let bucket = Bucket::start().await;
    bucket.put("a.txt", "a", None).await;
    let nodes = ring(1, &bucket.proxy.url(), "");
    let url = format!(
        "http://{}/cluster/v1/object?site=c&key=a.txt",
        nodes[0].cluster
    );
    let client = http_client();
    for auth in [
        None,
        Some("Bearer wrong"),
        Some("Bearer cluster-test-toke"),
        Some(TOKEN),
    ] {
        let mut request = client.get(&url);
        if let Some(auth) = auth {
            request = request.header("authorization", auth);
        }
        assert_eq!(request.send().await.unwrap().status(), 401, "{auth:?}");
    }
    let ok = client
        .get(&url)
        .header("authorization", format!("Bearer {TOKEN}"))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.text().await.unwrap(), "a");
    let purge = client
        .post(format!("http://{}/cluster/v1/purge", nodes[0].cluster))
        .body(r#"{"site":"c","all":true}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(purge.status(), 401);

    // A cluster flag without the token: refused at start, the fix named.
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("sites")).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_s3edge"))
        .args([
            "serve",
            "--sites",
            "sites",
            "--cluster-listen",
            "127.0.0.1:0",
        ])
        .current_dir(dir.path())
        .env_remove("S3EDGE_CLUSTER_TOKEN")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("S3EDGE_CLUSTER_TOKEN is not set"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_request_that_comes_back_to_a_node_answers_508_and_is_logged() {
    let bucket = Bucket::start().await;
    bucket.put("a.txt", "a", None).await;
    let nodes = ring(1, &bucket.proxy.url(), "");
    let get = |cdn_loop: &'static str| {
        http_client()
            .get(format!(
                "http://{}/cluster/v1/object?site=c&key=a.txt",
                nodes[0].cluster
            ))
            .header("authorization", format!("Bearer {TOKEN}"))
            .header("cdn-loop", cdn_loop)
            .send()
    };
    assert_eq!(get("edge-9, edge-1; v=1").await.unwrap().status(), 508);
    assert_eq!(get("other-cdn").await.unwrap().status(), 200);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let log = nodes[0].bin().stderr();
    assert!(log.contains("CDN-Loop"), "{log}");
    assert!(log.contains("edge-9, edge-1"), "{log}");
}

/// Every node asks the others their `--node-id` (`/cluster/v1/hello`, with
/// each probe): the status page names the members by it, and a node given
/// another's id says so in its log within a probe or two, before any request
/// has looped between them.
#[tokio::test(flavor = "multi_thread")]
async fn members_are_named_by_their_ids_and_a_shared_id_is_logged_at_start() {
    let bucket = Bucket::start().await;
    let mut nodes: Vec<Node> = ["edge-1", "edge-2", "edge-2"]
        .into_iter()
        .map(|id| Node::new(id, &bucket.proxy.url(), ""))
        .collect();
    let peers = peers_of(&nodes);
    for node in &mut nodes {
        node.start(&peers, &[]);
    }
    let shared = "has this node's --node-id `edge-2`";
    let named = |report: &serde_json::Value| -> Vec<String> {
        report["cluster"]["members"]
            .as_array()
            .map(|members| {
                members
                    .iter()
                    .map(|m| m["id"].as_str().unwrap_or_default().to_string())
                    .collect()
            })
            .unwrap_or_default()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let (report, logs) = loop {
        let report = nodes[0].status().await;
        let logs: Vec<String> = nodes.iter().map(|n| n.bin().stderr()).collect();
        let done = named(&report) == ["edge-1", "edge-2", "edge-2"]
            && logs[1].contains(shared)
            && logs[2].contains(shared);
        if done || std::time::Instant::now() > deadline {
            break (report, logs);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(named(&report), ["edge-1", "edge-2", "edge-2"], "{report}");
    // The addresses stay beside the ids (the ring's order, this node first).
    let mut addresses: Vec<String> = report["cluster"]["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["address"].as_str().unwrap().to_string())
        .collect();
    let mut expected: Vec<String> = peers.iter().map(ToString::to_string).collect();
    assert_eq!(addresses[0], expected[0]);
    addresses.sort();
    expected.sort();
    assert_eq!(addresses, expected, "{report}");
    // Each of the two names the other's address and the fix; edge-1 is told
    // nothing.
    assert!(logs[1].contains(&peers[2].to_string()), "{}", logs[1]);
    assert!(
        logs[1].contains("give every node its own --node-id"),
        "{}",
        logs[1]
    );
    assert!(logs[2].contains(&peers[1].to_string()), "{}", logs[2]);
    assert!(!logs[0].contains("--node-id `"), "{}", logs[0]);
    // Once per member, not at every probe.
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(nodes[1].bin().stderr().matches(shared).count(), 1);
}

/// A node given another token than its peers is told so by its first
/// probes, once, on both sides, without any request having failed yet.
#[tokio::test(flavor = "multi_thread")]
async fn a_peer_that_refuses_the_token_is_logged_once() {
    let bucket = Bucket::start().await;
    let mut nodes: Vec<Node> = ["edge-1", "edge-2"]
        .into_iter()
        .map(|id| Node::new(id, &bucket.proxy.url(), ""))
        .collect();
    let peers = peers_of(&nodes);
    nodes[0].start(&peers, &[]);
    let mut other = env();
    other[0] = ("S3EDGE_CLUSTER_TOKEN", "another-token");
    nodes[1].start_env(&peers, &[], &[], &other);
    let refuses = "refuses this node's cluster token";
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !nodes.iter().all(|n| n.bin().stderr().contains(refuses)) {
        assert!(
            std::time::Instant::now() < deadline,
            "{}\n{}",
            nodes[0].bin().stderr(),
            nodes[1].bin().stderr()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(nodes[0].bin().stderr().contains(&peers[1].to_string()));
    assert!(nodes[1].bin().stderr().contains(&peers[0].to_string()));
    // Once, not at every probe.
    tokio::time::sleep(Duration::from_secs(6)).await;
    for node in &nodes {
        assert_eq!(node.bin().stderr().matches(refuses).count(), 1);
    }
}

/// A key that `nodes[owner]` owns, stored by it now: asked for a key it owns,
/// a node names only itself in `Cache-Status`.
async fn key_owned_by(
    bucket: &Bucket,
    nodes: &[Node],
    owner: usize,
    tag: &str,
    cache_control: &str,
) -> String {
    for i in 0..200 {
        let key = format!("{tag}-{i}.txt");
        bucket
            .put(&key, &format!("{tag} {i}"), Some(cache_control))
            .await;
        // Ask the owner candidate alone first: it stores it (or fetches it from its owner).
        let response = nodes[owner].get(&format!("/{key}")).await;
        let status = header(&response, "cache-status");
        if status == format!("{}; fwd=miss; stored", nodes[owner].id) {
            return key;
        }
    }
    panic!("no key owned by {}", nodes[owner].id);
}

#[tokio::test(flavor = "multi_thread")]
async fn cache_status_lists_the_farther_cache_first_and_age_accumulates() {
    let bucket = Bucket::start().await;
    let nodes = ring(2, &bucket.proxy.url(), "");
    let (owner, child) = (&nodes[1], &nodes[0]);
    // Stored by its owner at t0.
    let key = key_owned_by(&bucket, &nodes, 1, "age", "max-age=100").await;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    // A miss at the child, a hit at the owner: the owner first.
    let first = child.get(&format!("/{key}")).await;
    assert_eq!(
        header(&first, "cache-status"),
        format!("{}; hit, {}; fwd=miss; stored", owner.id, child.id)
    );
    let age: u64 = header(&first, "age").parse().unwrap();
    assert!((2..=3).contains(&age), "age {age}");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    // A hit at the child: the owner's status as stored, then the child's.
    let again = child.get(&format!("/{key}")).await;
    assert_eq!(
        header(&again, "cache-status"),
        format!("{}; hit, {}; hit", owner.id, child.id)
    );
    let age: u64 = header(&again, "age").parse().unwrap();
    assert!(
        (3..=4).contains(&age),
        "the child's age goes on from the owner's: {age}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_child_never_keeps_an_object_longer_than_its_owner_could() {
    let bucket = Bucket::start().await;
    let nodes = ring(2, &bucket.proxy.url(), "");
    let (owner, child) = (&nodes[1], &nodes[0]);
    // must-revalidate: no stale serving, so a stale entry is revalidated at once.
    let key = key_owned_by(&bucket, &nodes, 1, "short", "max-age=3, must-revalidate").await;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let first = child.get(&format!("/{key}")).await;
    assert_eq!(
        header(&first, "cache-status"),
        format!("{}; hit, {}; fwd=miss; stored", owner.id, child.id)
    );
    // 3.2 s after the owner stored it: stale at the owner, so stale at the child
    // too, although the child stored it only 1.1 s ago. The child revalidates
    // with the owner (If-None-Match passed through), which revalidates with the
    // bucket: both get 304, and only the owner asks the bucket.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let later = child.get(&format!("/{key}")).await;
    let status = header(&later, "cache-status");
    assert!(
        status.ends_with(&format!("{}; fwd=stale; fwd-status=304", child.id)),
        "the child did not revalidate through its owner: {status}"
    );
    assert_eq!(
        later.text().await.unwrap(),
        key.replace(".txt", "").replace('-', " ")
    );
    assert_eq!(
        bucket.gets(Some(&key)),
        2,
        "{:?}",
        bucket.proxy.request_lines()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_range_through_another_node_is_cut_by_the_owner() {
    let bucket = Bucket::start().await;
    let nodes = ring(2, &bucket.proxy.url(), "");
    let (owner, child) = (&nodes[1], &nodes[0]);
    let key = key_owned_by(&bucket, &nodes, 1, "range", "max-age=100").await;
    let body = key.replace(".txt", "").replace('-', " ");
    let ranged = http_client()
        .get(format!("{}/{key}", child.bin().http))
        .header("host", HOST)
        .header("range", "bytes=2-4")
        .send()
        .await
        .unwrap();
    assert_eq!(ranged.status(), 206);
    assert_eq!(
        header(&ranged, "content-range"),
        format!("bytes 2-4/{}", body.len())
    );
    let status = header(&ranged, "cache-status");
    assert!(
        status.starts_with(&format!("{}; hit, ", owner.id)),
        "{status}"
    );
    assert_eq!(ranged.text().await.unwrap(), &body[2..5]);
    assert_eq!(bucket.gets(Some(&key)), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_peer_killed_mid_run_costs_no_client_an_error() {
    let bucket = Bucket::start().await;
    let mut nodes = ring(3, &bucket.proxy.url(), "");
    let keys: Vec<String> = (0..300).map(|i| format!("k/{i}.txt")).collect();
    for key in &keys {
        bucket.put(key, &format!("v {key}"), None).await;
    }
    let survivors: Vec<String> = nodes[..2].iter().map(|n| n.bin().http.clone()).collect();
    let errors = Arc::new(Mutex::new(Vec::new()));
    let slowest = Arc::new(Mutex::new(Duration::ZERO));
    let mut clients = Vec::new();
    for c in 0..4 {
        let keys = keys.clone();
        let survivors = survivors.clone();
        let errors = errors.clone();
        let slowest = slowest.clone();
        clients.push(tokio::spawn(async move {
            let client = http_client();
            for (i, key) in keys.iter().enumerate() {
                let base = &survivors[(i + c) % survivors.len()];
                let started = Instant::now();
                let result = client
                    .get(format!("{base}/{key}"))
                    .header("host", HOST)
                    .send()
                    .await;
                let outcome = match result {
                    Ok(r) => {
                        let status = r.status().as_u16();
                        match r.text().await {
                            Ok(body) if status == 200 && body == format!("v {key}") => None,
                            Ok(body) => Some(format!("{key}: {status} {body}")),
                            Err(e) => Some(format!("{key}: body {e}")),
                        }
                    }
                    Err(e) => Some(format!("{key}: {e}")),
                };
                let took = started.elapsed();
                {
                    let mut slowest = slowest.lock().unwrap();
                    *slowest = (*slowest).max(took);
                }
                if let Some(e) = outcome {
                    errors.lock().unwrap().push(e);
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    nodes[2].kill();
    for client in clients {
        client.await.unwrap();
    }
    let errors = errors.lock().unwrap().clone();
    assert!(
        errors.is_empty(),
        "{} client errors: {:?}",
        errors.len(),
        &errors[..errors.len().min(5)]
    );
    // The origin timeout is 5 s: every answer well within it plus 1 s.
    assert!(*slowest.lock().unwrap() < Duration::from_secs(6));
    let dead = nodes[2].cluster;
    let mut failed = 0;
    for node in &nodes[..2] {
        let metrics = node.metrics().await;
        failed += common::metric_value(
            &metrics,
            &format!("s3edge_peer_requests_total{{peer=\"{dead}\",outcome=\"failed\"}}"),
        );
        assert!(
            metrics.lines().any(|l| l == "s3edge_cluster_members 2"),
            "{metrics}"
        );
    }
    assert!(failed >= 1, "the dead peer was never found failing");
    // With no request going its way, the dead peer stays down past the 10 s
    // a failed request skips it for: the survivors probe it.
    tokio::time::sleep(Duration::from_secs(11)).await;
    for node in &nodes[..2] {
        let metrics = node.metrics().await;
        assert!(
            metrics.lines().any(|l| l == "s3edge_cluster_members 2"),
            "after 11 s: {metrics}"
        );
        // Still a member of the ring: S3edgeClusterMemberMissing compares the two.
        assert!(
            metrics
                .lines()
                .any(|l| l == "s3edge_cluster_members_known 3"),
            "after 11 s: {metrics}"
        );
    }
    // Every key served, none fetched twice from the bucket by the survivors
    // for the dead node's share beyond one per node.
    assert!(bucket.gets(None) <= keys.len() * 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_purge_through_any_node_reaches_every_node_before_it_answers() {
    let bucket = Bucket::start().await;
    let nodes = ring(3, &bucket.proxy.url(), "");
    let keys: Vec<String> = (0..12).map(|i| format!("p/{i}.txt")).collect();
    for key in &keys {
        bucket.put(key, "v1", None).await;
        for node in &nodes {
            assert_eq!(node.text(&format!("/{key}")).await, (200, "v1".into()));
        }
    }
    for key in &keys {
        bucket.put(key, "v2", None).await;
    }
    let paths: Vec<String> = keys.iter().map(|k| format!("/{k}")).collect();
    let answer = nodes[1]
        .purge(serde_json::json!({ "site": "c", "paths": paths }))
        .await;
    // Every node held every key (the owner once, the two others a copy each).
    assert_eq!(answer["purged"], keys.len() as u64 * 3, "{answer}");
    let mut confirmed: Vec<String> = answer["nodes"]["confirmed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    confirmed.sort();
    let mut expected: Vec<String> = peers_of(&nodes).iter().map(ToString::to_string).collect();
    expected.sort();
    assert_eq!(confirmed, expected, "{answer}");
    assert_eq!(answer["nodes"]["failed"], serde_json::json!([]), "{answer}");
    for key in &keys {
        for node in &nodes {
            assert_eq!(
                node.text(&format!("/{key}")).await,
                (200, "v2".into()),
                "{} {key}",
                node.id
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_node_down_during_a_purge_serves_nothing_purged_when_it_returns() {
    let bucket = Bucket::start().await;
    let mut nodes = ring(3, &bucket.proxy.url(), "");
    let keys: Vec<String> = (0..30).map(|i| format!("d/{i}.txt")).collect();
    for key in &keys {
        bucket.put(key, "old", None).await;
        for node in &nodes {
            assert_eq!(node.text(&format!("/{key}")).await, (200, "old".into()));
        }
    }
    // Written to its disk tier in the background: wait until all are there.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let metrics = nodes[2].metrics().await;
        if common::metric_value(&metrics, "s3edge_cache_entries{tier=\"disk\"}")
            >= keys.len() as u64
        {
            break;
        }
        assert!(Instant::now() < deadline, "{metrics}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    nodes[2].kill();
    for key in &keys {
        bucket.put(key, "new", None).await;
    }
    let answer = nodes[0]
        .purge(serde_json::json!({ "site": "c", "all": true }))
        .await;
    assert_eq!(
        answer["nodes"]["failed"],
        serde_json::json!([nodes[2].cluster.to_string()]),
        "{answer}"
    );
    assert_eq!(answer["nodes"]["confirmed"].as_array().unwrap().len(), 2);
    // The command says so too: a script's `&& s3edge purge` must not go on
    // as if every node had dropped the old files.
    let cli = std::process::Command::new(env!("CARGO_BIN_EXE_s3edge"))
        .args([
            "purge",
            "--admin",
            &nodes[0].bin().admin,
            "--site",
            "c",
            "--all",
        ])
        .env_remove("S3EDGE_ADMIN_TOKEN")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&cli.stderr);
    assert_eq!(cli.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("not confirmed") && stderr.contains(&nodes[2].cluster.to_string()),
        "{stderr}"
    );
    let peers = peers_of(&nodes);
    nodes[2].start(&peers, &[]);
    for key in &keys {
        assert_eq!(
            nodes[2].text(&format!("/{key}")).await,
            (200, "new".into()),
            "{key}"
        );
    }
    assert!(
        nodes[2].bin().stderr().contains("dropped"),
        "{}",
        nodes[2].bin().stderr()
    );
    // Back in the ring, it owns its keys again: asked through another node,
    // they come from it.
    let owners = Ring::new(peers.clone());
    let mut owned = 0;
    for key in &keys {
        if owners.ranked(&object_hash_key("c", key))[0] != nodes[2].cluster {
            continue;
        }
        owned += 1;
        let response = nodes[1].get(&format!("/{key}")).await;
        let status = header(&response, "cache-status");
        assert!(status.starts_with("edge-3; "), "{key}: {status}");
        assert_eq!(response.text().await.unwrap(), "new");
    }
    assert!(owned > 0, "no key owned by edge-3 among {}", keys.len());
}

#[tokio::test(flavor = "multi_thread")]
async fn no_client_gets_a_purged_version_once_the_purge_has_returned() {
    let bucket = Bucket::start().await;
    let nodes = ring(3, &bucket.proxy.url(), "");
    let keys: Vec<String> = (0..8).map(|i| format!("r/{i}.txt")).collect();
    for key in &keys {
        bucket.put(key, "0", None).await;
    }
    let bases: Vec<String> = nodes.iter().map(|n| n.bin().http.clone()).collect();
    // (when the request started, the version it got)
    let seen = Arc::new(Mutex::new(Vec::<(Instant, u32)>::new()));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut readers = Vec::new();
    for r in 0..6 {
        let (bases, keys, seen, stop) = (bases.clone(), keys.clone(), seen.clone(), stop.clone());
        readers.push(tokio::spawn(async move {
            let client = http_client();
            let mut i = r;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let base = &bases[i % bases.len()];
                let key = &keys[(i / 3) % keys.len()];
                i += 1;
                let started = Instant::now();
                let response = client
                    .get(format!("{base}/{key}"))
                    .header("host", HOST)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(response.status(), 200);
                let version: u32 = response.text().await.unwrap().parse().unwrap();
                seen.lock().unwrap().push((started, version));
            }
        }));
    }
    let mut returned = Vec::new();
    for version in 1..=6u32 {
        tokio::time::sleep(Duration::from_millis(150)).await;
        for key in &keys {
            bucket.put(key, &version.to_string(), None).await;
        }
        nodes[version as usize % 3]
            .purge(serde_json::json!({ "site": "c", "all": true }))
            .await;
        returned.push((Instant::now(), version));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for reader in readers {
        reader.await.unwrap();
    }
    let seen = seen.lock().unwrap();
    assert!(seen.len() > 100, "only {} reads", seen.len());
    for (at, version) in seen.iter() {
        let current = returned
            .iter()
            .filter(|(purged, _)| purged < at)
            .map(|(_, v)| *v)
            .max()
            .unwrap_or(0);
        assert!(
            *version >= current,
            "a request started after purge {current} returned got version {version}"
        );
    }
}

/// A parent `shield-1` and a ring of two edges over one bucket; `start`
/// starts each edge given the ring and the parent's cluster address.
async fn shielded_ring(
    start: impl Fn(&mut Node, &[SocketAddr], SocketAddr),
) -> (Bucket, Node, Vec<Node>) {
    let bucket = Bucket::start().await;
    let proxy = bucket.proxy.url();
    let mut parent = Node::new("shield-1", &proxy, "");
    parent.start(&[parent.cluster], &[]);
    let mut edges: Vec<Node> = (1..=2)
        .map(|i| Node::new(&format!("edge-{i}"), &proxy, ""))
        .collect();
    let peers = peers_of(&edges);
    for edge in &mut edges {
        start(edge, &peers, parent.cluster);
    }
    (bucket, parent, edges)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_parent_tier_fetches_for_the_ring_and_its_death_costs_no_error() {
    let (bucket, mut parent, edges) = shielded_ring(|edge, peers, parent| {
        edge.start(peers, &[parent]);
    })
    .await;
    bucket.put("s.txt", "shielded", None).await;
    let response = edges[0].get("/s.txt").await;
    let status = header(&response, "cache-status");
    assert!(
        status.starts_with("shield-1; fwd=miss; stored, "),
        "{status}"
    );
    assert_eq!(response.text().await.unwrap(), "shielded");
    assert_eq!(edges[1].text("/s.txt").await.1, "shielded");
    assert_eq!(bucket.gets(Some("s.txt")), 1);
    // A purge on an edge reaches the parent first, then the ring.
    let answer = edges[1]
        .purge(serde_json::json!({ "site": "c", "paths": ["/s.txt"] }))
        .await;
    assert_eq!(
        answer["nodes"]["confirmed"][0],
        parent.cluster.to_string(),
        "{answer}"
    );
    assert_eq!(
        answer["nodes"]["confirmed"].as_array().unwrap().len(),
        3,
        "{answer}"
    );
    // The parent dies: the edges fetch from the bucket themselves.
    parent.kill();
    bucket.put("t.txt", "direct", None).await;
    for edge in &edges {
        assert_eq!(edge.text("/t.txt").await, (200, "direct".into()));
    }
}

/// A node purges itself whatever tiers it has: a lone parent (only
/// `--cluster-listen`, as README "Cluster" adds one) and an edge with only
/// `--parent` answered 200 to their own purge and removed nothing. And a
/// site a node does not serve is nothing to purge there, not a failure
/// queued for ever (it held back every purge queued after it).
#[tokio::test(flavor = "multi_thread")]
async fn nodes_with_one_tier_or_none_purge_themselves_and_a_site_elsewhere_is_no_failure() {
    let bucket = Bucket::start().await;
    let proxy = bucket.proxy.url();
    let mut parent = Node::new("shield-1", &proxy, "");
    parent.start(&[], &[]);
    let mut edge = Node::new("edge-1", &proxy, "");
    // A site only the edge serves.
    let only_here = site_file(&proxy, "").replace(HOST, "only-edge.test");
    std::fs::write(edge.dir.path().join("sites/e.toml"), only_here).unwrap();
    edge.start(&[], &[parent.cluster]);
    bucket.put("s.txt", "old", None).await;
    assert_eq!(edge.text("/s.txt").await, (200, "old".into()));
    bucket.put("s.txt", "new", None).await;

    let answer = parent
        .purge(serde_json::json!({ "site": "c", "paths": ["/s.txt"] }))
        .await;
    assert_eq!(answer["purged"], 1, "the lone parent's own copy: {answer}");
    assert_eq!(parent.text("/s.txt").await, (200, "new".into()));

    let answer = edge
        .purge(serde_json::json!({ "site": "c", "paths": ["/s.txt"] }))
        .await;
    assert_eq!(answer["nodes"]["failed"], serde_json::json!([]), "{answer}");
    assert_eq!(
        answer["nodes"]["confirmed"].as_array().unwrap().len(),
        2,
        "the parent, then the edge itself: {answer}"
    );
    assert_eq!(edge.text("/s.txt").await, (200, "new".into()));

    let answer = edge
        .purge(serde_json::json!({ "site": "e", "all": true }))
        .await;
    assert_eq!(answer["nodes"]["failed"], serde_json::json!([]), "{answer}");
}

/// A purge that reaches the parent only on a retry, once a partition heals,
/// purges the edge's ring again: meanwhile the edge stored a copy (here from
/// the bucket, while the parent could not be reached; or the parent's old
/// one right after the heal), which it would otherwise keep for its whole
/// lifetime after the parent had purged.
#[tokio::test(flavor = "multi_thread")]
async fn a_purge_delivered_to_the_parent_on_retry_purges_the_ring_again() {
    let bucket = Bucket::start().await;
    let proxy = bucket.proxy.url();
    let mut parent = Node::new("shield-1", &proxy, "");
    parent.start(&[], &[]);
    let link = FaultProxy::start();
    link.set_upstream(parent.cluster);
    let link_addr: SocketAddr = link.url().trim_start_matches("http://").parse().unwrap();
    let mut edge = Node::new("edge-1", &proxy, "");
    edge.start(&[], &[link_addr]);
    bucket.put("s.txt", "v1", None).await;
    assert_eq!(edge.text("/s.txt").await, (200, "v1".into()));

    link.set(common::fault_proxy::HttpFault::Refuse);
    bucket.put("s.txt", "v2", None).await;
    let answer = edge
        .purge(serde_json::json!({ "site": "c", "paths": ["/s.txt"] }))
        .await;
    assert_eq!(
        answer["nodes"]["failed"],
        serde_json::json!([link_addr.to_string()]),
        "{answer}"
    );
    // Stored again by the edge while the parent is away.
    let response = edge.get("/s.txt").await;
    assert!(header(&response, "cache-status").ends_with("stored"));
    assert_eq!(response.text().await.unwrap(), "v2");

    link.clear();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !edge.bin().stderr().contains("purges delivered on retry") {
        assert!(Instant::now() < deadline, "the retry never landed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let response = edge.get("/s.txt").await;
    let status = header(&response, "cache-status");
    assert!(!status.ends_with("edge-1; hit"), "purged again: {status}");
    assert_eq!(response.text().await.unwrap(), "v2");
}

/// `--parent-dns NAME:PORT`: the parent tier is every address the name
/// resolves to (here `localhost`, one parent), and it shields the bucket.
#[tokio::test(flavor = "multi_thread")]
async fn a_parent_tier_named_by_dns_shields_the_bucket() {
    let (bucket, parent, edges) = shielded_ring(|edge, peers, parent| {
        let name = format!("localhost:{}", parent.port());
        edge.start_with(peers, &[], &["--parent-dns", name.as_str()]);
    })
    .await;
    let keys: Vec<String> = (0..20).map(|i| format!("dns/{i}.txt")).collect();
    for key in &keys {
        bucket.put(key, key, None).await;
    }
    bucket.proxy.reset_counts();
    for key in &keys {
        for edge in &edges {
            let response = edge.get(&format!("/{key}")).await;
            assert!(
                header(&response, "cache-status").contains("shield-1"),
                "through the parent"
            );
            assert_eq!(response.text().await.unwrap(), *key);
        }
    }
    assert_eq!(
        bucket.gets(None),
        keys.len(),
        "the parent fetched each once"
    );
    let metrics = edges[0].metrics().await;
    assert!(
        metrics.contains(&format!("peer=\"{}\"", parent.cluster)),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_requests_from_a_node_with_the_token_do_not_break_the_owner() {
    let bucket = Bucket::start().await;
    bucket.put("a.txt", "abcdefghij", None).await;
    let nodes = ring(1, &bucket.proxy.url(), "");
    let base = format!("http://{}", nodes[0].cluster);
    let client = http_client();
    let auth = format!("Bearer {TOKEN}");
    let long_key = "k".repeat(5000);
    let cases: Vec<(String, Vec<(&str, String)>)> = vec![
        ("/cluster/v1/object".into(), vec![]),
        ("/cluster/v1/object?site=nope&key=a.txt".into(), vec![]),
        (format!("/cluster/v1/object?site=c&key={long_key}"), vec![]),
        ("/cluster/v1/object?site=c&key=%00%ff".into(), vec![]),
        (
            "/cluster/v1/object?site=c&key=a.txt".into(),
            vec![("range", "bytes=99-1".into())],
        ),
        (
            "/cluster/v1/object?site=c&key=a.txt".into(),
            vec![("range", "bytes=50-60".into())],
        ),
        (
            "/cluster/v1/object?site=c&key=a.txt".into(),
            vec![("if-modified-since", "garbage".into())],
        ),
        (
            "/cluster/v1/object?site=c&key=a.txt".into(),
            vec![("cdn-loop", ",".repeat(5000))],
        ),
        ("/cluster/v1/nothing".into(), vec![]),
    ];
    for (path, headers) in cases {
        let mut request = client
            .get(format!("{base}{path}"))
            .header("authorization", &auth);
        for (name, value) in headers {
            request = request.header(name, value);
        }
        let status = request.send().await.unwrap().status().as_u16();
        assert!(status < 600, "{path}: {status}");
    }
    let garbage = client
        .post(format!("{base}/cluster/v1/purge"))
        .header("authorization", &auth)
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(garbage.status(), 400);
    // Still serving, range included.
    let ranged = client
        .get(format!("{base}/cluster/v1/object?site=c&key=a.txt"))
        .header("authorization", &auth)
        .header("range", "bytes=2-4")
        .send()
        .await
        .unwrap();
    assert_eq!(ranged.status(), 206);
    assert_eq!(header(&ranged, "content-range"), "bytes 2-4/10");
    assert_eq!(ranged.text().await.unwrap(), "cde");
    assert_eq!(nodes[0].text("/a.txt").await, (200, "abcdefghij".into()));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_node_unreachable_during_a_purge_is_purged_once_it_answers_again() {
    let bucket = Bucket::start().await;
    let nodes = ring(3, &bucket.proxy.url(), "");
    let keys: Vec<String> = (0..6).map(|i| format!("q/{i}.txt")).collect();
    for key in &keys {
        bucket.put(key, "old", None).await;
        for node in &nodes {
            assert_eq!(node.text(&format!("/{key}")).await, (200, "old".into()));
        }
    }
    for key in &keys {
        bucket.put(key, "new", None).await;
    }
    // Stopped, not dead: its socket accepts, it never answers (a partition).
    let pid = nodes[2].bin().pid().to_string();
    let signal = |name: &str| {
        let status = std::process::Command::new("kill")
            .args([name, pid.as_str()])
            .status()
            .unwrap();
        assert!(status.success());
    };
    signal("-STOP");
    let started = Instant::now();
    let answer = nodes[0]
        .purge(serde_json::json!({ "site": "c", "all": true }))
        .await;
    signal("-CONT");
    assert_eq!(
        answer["nodes"]["failed"],
        serde_json::json!([nodes[2].cluster.to_string()]),
        "{answer}"
    );
    // One purge timeout (5 s), not one per round.
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );
    // Within a few retries (every 2 s) it has the purge.
    let deadline = Instant::now() + Duration::from_secs(15);
    for key in &keys {
        loop {
            let (status, body) = nodes[2].text(&format!("/{key}")).await;
            assert_eq!(status, 200);
            if body == "new" {
                break;
            }
            assert!(Instant::now() < deadline, "{key} still old");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// The bucket fails while every tier holds a stale copy: the parent serves
/// its own as stale-if-error, and an edge that asks it whether its copy is
/// current hears of the failure instead of a 304, so it serves its copy as
/// stale-if-error too, says so in `Cache-Status` and counts the failure.
#[tokio::test(flavor = "multi_thread")]
async fn a_bucket_failure_behind_a_stale_parent_is_stale_if_error_on_the_edge() {
    let (bucket, _parent, edges) = shielded_ring(|edge, peers, parent| {
        edge.start(peers, &[parent]);
    })
    .await;
    let control = "max-age=1, stale-while-revalidate=0";
    bucket.put("sie.txt", "kept", Some(control)).await;
    for edge in &edges {
        assert_eq!(edge.text("/sie.txt").await, (200, "kept".into()));
    }
    tokio::time::sleep(Duration::from_millis(2200)).await;
    bucket.proxy.set(common::fault_proxy::HttpFault::Refuse);
    for edge in &edges {
        let response = edge.get("/sie.txt").await;
        assert_eq!(response.status(), 200);
        let status = header(&response, "cache-status");
        assert_eq!(response.text().await.unwrap(), "kept");
        assert!(
            status.ends_with(&format!("{}; fwd=stale; detail=stale-if-error", edge.id)),
            "{status}"
        );
        let metrics = edge.metrics().await;
        let failed: u64 = ["unreachable", "timeout", "invalid", "rejected"]
            .iter()
            .map(|outcome| {
                common::metric_value(
                    &metrics,
                    &format!("s3edge_origin_requests_total{{site=\"c\",outcome=\"{outcome}\"}}"),
                )
            })
            .sum();
        assert!(failed >= 1, "{}: no bucket failure counted", edge.id);
    }
}

/// A bucket that does not answer: the parent gives up after the site's
/// `timeout` and says so, and that answer reaches the client through the
/// owner, once, in about one `timeout`. Each node used to wait for the
/// next one no longer than it waited for the bucket itself, so it gave up
/// first, took the healthy owner and parent for failed (skipped for 10 s)
/// and asked the bucket itself: clients waited two to three timeouts and
/// the bucket got a GET from every tier.
#[tokio::test(flavor = "multi_thread")]
async fn a_bucket_that_does_not_answer_is_not_held_against_the_nodes_before_it() {
    let (bucket, _parent, edges) = shielded_ring(|edge, peers, parent| {
        edge.start(peers, &[parent]);
    })
    .await;
    let owners = Ring::new(peers_of(&edges));
    let key = (0..100)
        .map(|i| format!("hung/{i}.txt"))
        .find(|key| owners.ranked(&object_hash_key("c", key))[0] == edges[1].cluster)
        .expect("a key edge-2 owns");
    bucket.put(&key, "late", None).await;
    bucket.proxy.set(common::fault_proxy::HttpFault::Stall);
    bucket.proxy.reset_counts();
    let started = Instant::now();
    let response = edges[0].get(&format!("/{key}")).await;
    let took = started.elapsed();
    assert_eq!(response.status(), 504, "{:?}", response.headers());
    // The site's timeout is 5 s: one of it, with room for the hops.
    assert!(took < Duration::from_millis(7500), "took {took:?}");
    assert_eq!(
        bucket.proxy.attempts(),
        1,
        "{:?}",
        bucket.proxy.request_lines()
    );
    for edge in &edges {
        let metrics = edge.metrics().await;
        assert!(
            !metrics
                .lines()
                .any(|l| l.starts_with("s3edge_peer_requests_total")
                    && l.contains("outcome=\"failed\"")),
            "{}: a node was taken for failed: {metrics}",
            edge.id
        );
    }
}

/// Nodes started one after the other refuse each other until each listens.
/// A node that found its peer not listening asks it as soon as it does,
/// not 10 s later: before, the first requests of a new ring (or after a
/// restart) bypassed their owner for 10 s.
#[tokio::test(flavor = "multi_thread")]
async fn a_peer_that_was_not_listening_is_asked_as_soon_as_it_listens() {
    let bucket = Bucket::start().await;
    let mut nodes = vec![
        Node::new("edge-1", &bucket.proxy.url(), ""),
        Node::new("edge-2", &bucket.proxy.url(), ""),
    ];
    let peers = peers_of(&nodes);
    let owners = Ring::new(peers.clone());
    let owned_by_2: Vec<String> = (0..400)
        .map(|i| format!("late/{i}.txt"))
        .filter(|key| owners.ranked(&object_hash_key("c", key))[0] == peers[1])
        .take(6)
        .collect();
    assert_eq!(owned_by_2.len(), 6);
    for key in &owned_by_2 {
        bucket.put(key, &format!("v {key}"), None).await;
    }
    nodes[0].start(&peers, &[]);
    // edge-2 is not listening: edge-1 fetches its share itself.
    let response = nodes[0].get(&format!("/{}", owned_by_2[0])).await;
    assert_eq!(
        header(&response, "cache-status"),
        "edge-1; fwd=miss; stored"
    );
    let refused = Instant::now();
    nodes[1].start(&peers, &[]);
    tokio::time::sleep(Duration::from_millis(600)).await;
    for key in &owned_by_2[1..] {
        let response = nodes[0].get(&format!("/{key}")).await;
        let status = header(&response, "cache-status");
        assert!(
            status.starts_with("edge-2; fwd=miss; stored"),
            "{key} {:?} after edge-2 was refused: {status}",
            refused.elapsed()
        );
        assert_eq!(response.text().await.unwrap(), format!("v {key}"));
    }
    assert!(
        refused.elapsed() < Duration::from_secs(9),
        "the ring took too long to start to tell: {:?}",
        refused.elapsed()
    );
}
