//! A purge is a barrier (README "The cache"): once `POST /purge`
//! has returned, no request gets a version it removed, however many fills,
//! encoding variants and spill files were in flight when it arrived. Each
//! round publishes a new version while clients hammer a slow origin, purges
//! (by path, by prefix, or the whole site), and checks every representation
//! (identity, gzip, br, a range) right after the purge returns.
#![cfg(feature = "embedded")]

mod common;

use std::io::{Read, Write};
use std::time::Duration;

use common::{site_toml, Edge, EdgeBuilder, Fault};

const BUCKET: &str = "barrier-bucket";
/// Rounds of each purge kind (path, prefix, all).
const ROUNDS: usize = 100;
/// Bytes of the large pages (every third round).
const LARGE: usize = 96 * 1024;
/// Clients requesting the page while the purge arrives.
const CLIENTS: usize = 8;

/// The body of version `version` of the page of round `round`: large pages
/// (`large` bytes) go to disk only (spilled as they arrive) unless the
/// memory tier keeps them, small ones stay in memory.
fn body(round: usize, version: char, large: usize) -> String {
    let len = if round.is_multiple_of(3) {
        large
    } else {
        2 * 1024
    };
    let mut text = format!("<!-- round {round} version {version} -->\n");
    while text.len() < len {
        text.push_str(&format!("<p>{version}{version}{version} {round}</p>\n"));
    }
    text
}

/// The decoded body of a response.
async fn decoded(response: reqwest::Response) -> String {
    let coding = response
        .headers()
        .get("content-encoding")
        .map(|v| v.to_str().unwrap().to_string());
    let bytes = response.bytes().await.unwrap();
    let mut text = String::new();
    match coding.as_deref() {
        Some("gzip") => {
            flate2::read::GzDecoder::new(&bytes[..])
                .read_to_string(&mut text)
                .unwrap();
        }
        Some("br") => {
            brotli::Decompressor::new(&bytes[..], 4096)
                .read_to_string(&mut text)
                .unwrap();
        }
        _ => text = String::from_utf8(bytes.to_vec()).unwrap(),
    }
    text
}

async fn request(
    edge: &Edge,
    path: &str,
    accept: Option<&str>,
    range: Option<&str>,
) -> reqwest::Response {
    let mut request = edge.http.get(edge.url(path)).header("host", "barrier.test");
    if let Some(accept) = accept {
        request = request.header("accept-encoding", accept);
    }
    if let Some(range) = range {
        request = request.header("range", range);
    }
    request.send().await.unwrap()
}

/// Keeps requesting `path` in every representation until told to stop.
fn hammer(
    edge: &Edge,
    path: String,
    stop: tokio::sync::watch::Receiver<bool>,
) -> Vec<tokio::task::JoinHandle<()>> {
    (0..CLIENTS)
        .map(|client| {
            let http = edge.http.clone();
            let url = edge.url(&path);
            let stop = stop.clone();
            tokio::spawn(async move {
                let accept = ["identity", "gzip", "br", "br, gzip"][client % 4];
                while !*stop.borrow() {
                    let sent = http
                        .get(&url)
                        .header("host", "barrier.test")
                        .header("accept-encoding", accept)
                        .send()
                        .await;
                    if let Ok(response) = sent {
                        let _ = response.bytes().await;
                    }
                }
            })
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_request_after_a_purge_returns_gets_a_purged_version() {
    race_purges(|_| {}, ROUNDS, LARGE, false).await;
}

/// The same race with precompressed sidecars (`page.html.br`, `.gz`) in the
/// bucket, published before each version's page: the variants are made from
/// them, read from the bucket as they are made.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_request_after_a_purge_returns_gets_a_purged_version_made_from_a_sidecar() {
    race_purges(|_| {}, ROUNDS / 4, LARGE, true).await;
}

/// The same race with a memory tier that keeps nothing: every entry is found
/// on its way to disk (while its file is written and synced), then on disk.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_request_after_a_purge_returns_gets_a_purged_version_on_its_way_to_disk() {
    race_purges(|o| o.memory_cache_size = 0, ROUNDS / 2, LARGE, false).await;
}

/// The same race where a large page is kept in memory too, and its memory
/// hits are sent from its disk file (`sendfile` on a connection that is not
/// paced, `src/handler/wire.rs`): a hit must never swap the entry it found
/// for an older or newer file.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_request_after_a_purge_returns_gets_a_purged_version_from_a_file_sent_for_memory() {
    let options = |o: &mut s3edge::server::NodeOptions| {
        o.tcp_congestion = Some("cubic".into());
        o.memory_object_max = 1 << 20;
    };
    let edge = race_purges(options, ROUNDS / 2, 300 * 1024, false).await;
    assert!(
        edge.metric("s3edge_sendfile_bytes_total").await > 0,
        "no hit was sent from a file"
    );
}

/// Puts `page` at `key`, after its brotli and gzip sidecars when `sidecars`.
async fn publish(edge: &Edge, key: &str, page: String, sidecars: bool) {
    if sidecars {
        let mut br = Vec::new();
        {
            let mut w = brotli::CompressorWriter::new(&mut br, 4096, 5, 22);
            w.write_all(page.as_bytes()).unwrap();
        }
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(page.as_bytes()).unwrap();
        let gz = gz.finish().unwrap();
        let octets = Some("application/octet-stream");
        edge.put(BUCKET, &format!("{key}.br"), br, octets).await;
        edge.put(BUCKET, &format!("{key}.gz"), gz, octets).await;
    }
    edge.put(BUCKET, key, page, Some("text/html")).await;
}

/// `rounds` of each purge kind on a node with `options`, large pages of
/// `large` bytes, with `sidecars` or without.
async fn race_purges(
    options: impl FnOnce(&mut s3edge::server::NodeOptions),
    rounds: usize,
    large: usize,
    sidecars: bool,
) -> Edge {
    let (builder, origins) = EdgeBuilder::new()
        .site(
            "barrier",
            &site_toml(
                "barrier.test",
                BUCKET,
                "[website]\nindex_document = \"index.html\"\n",
            ),
        )
        .with(|o| o.memory_object_max = 64 * 1024)
        .with(options)
        .test_origins();
    let edge = builder.start();
    edge.create_bucket(BUCKET).await;
    let origin = origins.site("barrier");
    // A slow bucket: every fill is in flight for a while.
    origin.inject(Fault::Stall(Duration::from_millis(15)));
    for round in 0..3 * rounds {
        let dir = format!("r{round}");
        let key = format!("{dir}/page.html");
        let path = format!("/{key}");
        publish(&edge, &key, body(round, 'A', large), sidecars).await;
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let clients = hammer(&edge, path.clone(), stopped);
        // Let fills of version A start, then publish B while they run.
        tokio::time::sleep(Duration::from_millis((round % 5) as u64 * 7)).await;
        publish(&edge, &key, body(round, 'B', large), sidecars).await;
        let scope = match round % 3 {
            0 => format!(r#"{{"site":"barrier","paths":["{path}"]}}"#),
            1 => format!(r#"{{"site":"barrier","prefixes":["/{dir}/"]}}"#),
            _ => r#"{"site":"barrier","all":true}"#.to_string(),
        };
        let purged = edge
            .http
            .post(edge.admin_url("/purge"))
            .body(scope.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(purged.status(), 200, "{scope}");
        let want = body(round, 'B', large);
        for accept in [None, Some("gzip"), Some("br")] {
            let got = decoded(request(&edge, &path, accept, None).await).await;
            assert!(
                got == want,
                "round {round} ({scope}), accept-encoding {accept:?}: got version {:?} after the purge returned",
                got.lines().next()
            );
        }
        let ranged = request(&edge, &path, None, Some("bytes=0-31")).await;
        assert_eq!(ranged.status(), 206);
        assert_eq!(
            ranged.text().await.unwrap(),
            want[..32],
            "round {round} range"
        );
        stop.send(true).unwrap();
        for client in clients {
            client.await.unwrap();
        }
        // Once the clients are gone, whatever fills they left must not have
        // brought the old version back either.
        let got = decoded(request(&edge, &path, Some("gzip"), None).await).await;
        assert!(
            got == want,
            "round {round} ({scope}): old version after the clients stopped"
        );
        if sidecars {
            for suffix in [".br", ".gz"] {
                let asked = origin.gets_for(&format!("{key}{suffix}"));
                assert!(asked > 0, "round {round}: no variant made from {suffix}");
            }
        }
    }
    edge
}
