//! Objects above `--memory-object-max`: cached on disk only, filled by
//! streaming into the cache file (waiters read it as it grows), served from
//! the file block by block (ranges read only their blocks), revalidated in
//! place, warm after a restart, refetched when corrupt; above the disk tier's
//! per-object limit they pass through.
#![cfg(feature = "embedded")]

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use common::{
    gunzip, random_bytes, sha256, site_toml, temp_files, Edge, EdgeBuilder, Fault, TestOrigin,
    TestOrigins,
};

const BUCKET: &str = "large-bucket";
const MIB: usize = 1024 * 1024;

/// A node whose memory tier keeps objects up to 1 MiB, over `shared`'s
/// bucket and cache directories (so a second node can restart on them).
fn builder(shared: &Path, extra: &str, disk: u64) -> (EdgeBuilder, Arc<TestOrigins>) {
    let buckets = shared.join("buckets");
    let cache = shared.join("cache");
    EdgeBuilder::new()
        .site("c", &site_toml("c.test", BUCKET, extra))
        .with(move |o| {
            o.embedded_dir = Some(buckets);
            o.cache_dir = cache;
            o.memory_object_max = MIB as u64;
            o.disk_cache_size = disk;
        })
        .test_origins()
}

async fn start(shared: &Path, extra: &str) -> (Edge, Arc<TestOrigin>) {
    let (builder, origins) = builder(shared, extra, 256 << 20);
    let edge = builder.start();
    edge.create_bucket(BUCKET).await;
    (edge, origins.site("c"))
}

async fn get(edge: &Edge, path: &str, headers: &[(&str, &str)]) -> (u16, String, Vec<u8>) {
    let response = edge
        .request(reqwest::Method::GET, "c.test", path, headers)
        .await;
    let status = response.status().as_u16();
    let cache = response
        .headers()
        .get("cache-status")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (status, cache, response.bytes().await.unwrap().to_vec())
}

#[tokio::test]
async fn an_object_above_the_memory_object_max_is_cached_on_disk_only_and_served_from_its_file() {
    let shared = tempfile::tempdir().unwrap();
    let (edge, origin) = start(shared.path(), "").await;
    let data = random_bytes(5 * MIB + 123, 31);
    edge.put(BUCKET, "big.bin", data.clone(), None).await;

    let (status, cache, body) = get(&edge, "/big.bin", &[]).await;
    assert_eq!((status, cache.as_str()), (200, "s3edge; fwd=miss; stored"));
    assert_eq!(sha256(&body), sha256(&data));
    edge.wait_disk_entries(1).await;
    assert_eq!(
        edge.cache_entries("memory").await,
        0,
        "never in the memory tier"
    );

    let (status, cache, body) = get(&edge, "/big.bin", &[]).await;
    assert_eq!((status, cache.as_str()), (200, "s3edge; hit"));
    assert_eq!(sha256(&body), sha256(&data));

    // A range is read from the file: the right bytes, no origin request.
    let (status, cache, body) = get(&edge, "/big.bin", &[("range", "bytes=3000000-3000099")]).await;
    assert_eq!((status, cache.as_str()), (206, "s3edge; hit"));
    assert_eq!(body, &data[3_000_000..3_000_100]);
    let (status, _, body) = get(&edge, "/big.bin", &[("range", "bytes=-10")]).await;
    assert_eq!((status, &body[..]), (206, &data[data.len() - 10..]));

    // Several ranges across blocks: a multipart answer with each part's bytes.
    let response = edge
        .request(
            reqwest::Method::GET,
            "c.test",
            "/big.bin",
            &[("range", "bytes=0-9,4194300-4194309")],
        )
        .await;
    assert_eq!(response.status(), 206);
    let length: usize = response.headers()["content-length"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let body = response.bytes().await.unwrap();
    assert_eq!(body.len(), length);
    let find = |needle: &[u8]| body.windows(needle.len()).any(|w| w == needle);
    assert!(find(&data[0..10]) && find(&data[4_194_300..4_194_310]));
    assert!(find(b"Content-Range: bytes 4194300-4194309/"));

    let head = edge
        .request(reqwest::Method::HEAD, "c.test", "/big.bin", &[])
        .await;
    assert_eq!(
        head.headers()["content-length"],
        data.len().to_string().as_str()
    );
    assert_eq!(origin.gets_for("big.bin"), 1, "one origin GET in all");
}

#[tokio::test]
async fn concurrent_cold_requests_for_a_disk_only_object_share_one_origin_get_and_get_every_byte() {
    let shared = tempfile::tempdir().unwrap();
    let (edge, origin) = start(shared.path(), "").await;
    let data = random_bytes(6 * MIB, 32);
    edge.put(BUCKET, "shared.bin", data.clone(), None).await;
    // The origin answers late, so every request joins the same fill.
    origin.inject(Fault::Stall(Duration::from_millis(500)));
    let edge = Arc::new(edge);
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let edge = edge.clone();
            tokio::spawn(async move { edge.get("c.test", "/shared.bin").await.bytes().await })
        })
        .collect();
    for task in tasks {
        assert_eq!(sha256(&task.await.unwrap().unwrap()), sha256(&data));
    }
    origin.clear();
    assert_eq!(origin.gets_for("shared.bin"), 1);
    edge.wait_disk_entries(1).await;
    assert_eq!(temp_files(&shared.path().join("cache")).len(), 0);
}

#[tokio::test]
async fn a_disk_only_fill_cut_short_is_cut_for_the_client_and_leaves_no_file() {
    let shared = tempfile::tempdir().unwrap();
    let (edge, origin) = start(shared.path(), "").await;
    let data = random_bytes(4 * MIB, 33);
    edge.put(BUCKET, "cut.bin", data.clone(), None).await;
    origin.inject(Fault::Truncate(2 * MIB + 5));
    let response = edge.get("c.test", "/cut.bin").await;
    assert!(
        response.bytes().await.is_err(),
        "a short body is never presented as complete"
    );
    origin.clear();
    assert_eq!(
        temp_files(&shared.path().join("cache")).len(),
        0,
        "the partial file is removed"
    );
    assert_eq!(edge.cache_entries("disk").await, 0);
    let (_, cache, body) = get(&edge, "/cut.bin", &[]).await;
    assert_eq!(cache, "s3edge; fwd=miss; stored");
    assert_eq!(sha256(&body), sha256(&data));
}

#[tokio::test]
async fn a_stale_disk_only_entry_is_refreshed_in_place_by_a_304() {
    let shared = tempfile::tempdir().unwrap();
    let (edge, origin) = start(shared.path(), "[cache]\nstale_while_revalidate = \"0s\"\n").await;
    let data = random_bytes(3 * MIB, 34);
    edge.put_with(BUCKET, "r.bin", data.clone(), |p| {
        p.cache_control("max-age=1")
    })
    .await;
    assert_eq!(get(&edge, "/r.bin", &[]).await.2.len(), data.len());
    edge.wait_disk_entries(1).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (_, cache, body) = get(&edge, "/r.bin", &[]).await;
    assert_eq!(cache, "s3edge; fwd=stale; fwd-status=304");
    assert_eq!(sha256(&body), sha256(&data));
    let (_, cache, body) = get(&edge, "/r.bin", &[]).await;
    assert_eq!(cache, "s3edge; hit", "the 304 made it fresh again");
    assert_eq!(sha256(&body), sha256(&data));
    assert_eq!(origin.gets_for("r.bin"), 2);
}

#[tokio::test]
async fn a_range_of_an_uncached_large_object_fills_the_disk_tier_in_the_background() {
    let shared = tempfile::tempdir().unwrap();
    let (edge, origin) = start(shared.path(), "").await;
    let data = random_bytes(3 * MIB, 35);
    edge.put(BUCKET, "v.bin", data.clone(), None).await;
    let (status, _, body) = get(&edge, "/v.bin", &[("range", "bytes=100-199")]).await;
    assert_eq!((status, &body[..]), (206, &data[100..200]));
    edge.wait_disk_entries(1).await;
    let (_, cache, body) = get(&edge, "/v.bin", &[]).await;
    assert_eq!(cache, "s3edge; hit");
    assert_eq!(sha256(&body), sha256(&data));
    assert_eq!(
        origin.gets_for("v.bin"),
        2,
        "the range, then the whole object"
    );
}

#[tokio::test]
async fn an_object_above_the_disk_tiers_per_object_limit_passes_through() {
    let shared = tempfile::tempdir().unwrap();
    // An 8 MiB disk tier stores objects up to 2 MiB.
    let (builder, origins) = builder(shared.path(), "", 8 << 20);
    let edge = builder.start();
    edge.create_bucket(BUCKET).await;
    let data = random_bytes(3 * MIB, 36);
    edge.put(BUCKET, "huge.bin", data.clone(), None).await;
    for _ in 0..2 {
        let (status, cache, body) = get(&edge, "/huge.bin", &[]).await;
        assert_eq!((status, cache.as_str()), (200, "s3edge; fwd=miss"));
        assert_eq!(sha256(&body), sha256(&data));
    }
    assert_eq!(origins.site("c").gets_for("huge.bin"), 2);
    assert_eq!(edge.cache_entries("disk").await, 0);
}

#[tokio::test]
async fn a_disk_only_entry_is_warm_after_a_restart_and_refetched_when_its_file_is_corrupt() {
    let shared = tempfile::tempdir().unwrap();
    let data = random_bytes(4 * MIB + 7, 37);
    {
        let (edge, _) = start(shared.path(), "").await;
        edge.put(BUCKET, "warm.bin", data.clone(), None).await;
        assert_eq!(get(&edge, "/warm.bin", &[]).await.2.len(), data.len());
        edge.wait_disk_entries(1).await;
    }
    {
        let (builder, origins) = builder(shared.path(), "", 256 << 20);
        let edge = builder.start();
        let (_, cache, body) = get(&edge, "/warm.bin", &[]).await;
        assert_eq!(cache, "s3edge; hit");
        assert_eq!(sha256(&body), sha256(&data));
        assert_eq!(origins.site("c").gets(), 0, "served from the disk tier");
    }
    // Flip one byte deep in the body (block 3 of the file), then restart.
    let file = the_cache_file(shared.path());
    let mut bytes = std::fs::read(&file).unwrap();
    bytes[3 * MIB + 100] ^= 0x5a;
    std::fs::write(&file, bytes).unwrap();
    let (builder, origins) = builder(shared.path(), "", 256 << 20);
    let edge = builder.start();
    let (_, cache, body) = get(&edge, "/warm.bin", &[]).await;
    assert_eq!(
        cache, "s3edge; fwd=miss; stored",
        "the corrupt entry was dropped"
    );
    assert_eq!(sha256(&body), sha256(&data));
    assert_eq!(origins.site("c").gets(), 1);
}

/// Reads one HTTP/1.1 response with a `Content-Length` from `stream`, `slow`ly
/// (4 KiB reads, a pause every 64 KiB) so the server's writes are partial and
/// wait for the socket; returns the head and the body.
async fn read_response(
    stream: &mut tokio::net::TcpStream,
    pending: &mut Vec<u8>,
    slow: bool,
) -> (String, Vec<u8>) {
    use tokio::io::AsyncReadExt;
    let mut piece = [0u8; 4096];
    let mut read = 0usize;
    let head_end = loop {
        if let Some(at) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        let n = stream.read(&mut piece).await.unwrap();
        assert!(n > 0, "connection closed inside a head");
        pending.extend_from_slice(&piece[..n]);
    };
    let head = String::from_utf8(pending[..head_end].to_vec()).unwrap();
    let length: usize = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length: ")
                .map(|v| v.trim().parse().unwrap())
        })
        .expect("content-length");
    pending.drain(..head_end);
    while pending.len() < length {
        let n = stream.read(&mut piece).await.unwrap();
        assert!(n > 0, "connection closed inside a body");
        pending.extend_from_slice(&piece[..n]);
        read += n;
        if slow && read >= 64 * 1024 {
            read = 0;
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
    let body = pending.drain(..length).collect();
    (head, body)
}

/// Large hits are written from the cache's buffers straight to the socket
/// (actix-http patched, `vendor/README.md`): with a slow reader and
/// pipelined requests on one connection, every write is partial, and every
/// response must still come whole, in order, each head before its body.
#[tokio::test]
async fn pipelined_large_hits_and_a_head_to_a_slow_reader_come_whole_and_in_order() {
    use tokio::io::AsyncWriteExt;
    let shared = tempfile::tempdir().unwrap();
    let (builder, _origins) = builder(shared.path(), "", 256 << 20);
    let edge = builder
        .with(|o| o.memory_object_max = 6 * MIB as u64)
        .start();
    edge.create_bucket(BUCKET).await;
    // 700 KiB: a memory hit in one chunk; 5 MiB + 100: a memory hit in six
    // chunks (`BODY_CHUNK`, 1 MiB), five passed through and the last (100
    // bytes) copied; 6 MiB + 5: a disk hit; 20 KiB and 100 bytes: one chunk
    // each, passed through and copied.
    let objects = [
        ("/mem.bin", random_bytes(700 * 1024, 41)),
        ("/disk.bin", random_bytes(6 * MIB + 5, 42)),
        ("/small.bin", random_bytes(20 * 1024, 43)),
        ("/tiny.bin", random_bytes(100, 44)),
        ("/chunks.bin", random_bytes(5 * MIB + 100, 45)),
    ];
    for (path, data) in &objects {
        edge.put(BUCKET, &path[1..], data.clone(), None).await;
        for _ in 0..2 {
            get(&edge, path, &[]).await;
        }
    }
    edge.wait_disk_entries(1).await;
    let address = edge.node.url().trim_start_matches("http://").to_string();
    for slow in [true, false] {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(8 * 1024).unwrap();
        let mut stream = socket.connect(address.parse().unwrap()).await.unwrap();
        // Every object twice, all requests sent at once; HEAD in the middle
        // must not take any body bytes.
        let mut requests = String::new();
        let order: Vec<usize> = vec![0, 4, 2, 3, 1, 0, 4, 3, 4, 2, 1];
        for (i, &o) in order.iter().enumerate() {
            let method = if i == 4 { "HEAD" } else { "GET" };
            requests.push_str(&format!(
                "{method} {} HTTP/1.1\r\nHost: c.test\r\n\r\n",
                objects[o].0
            ));
        }
        stream.write_all(requests.as_bytes()).await.unwrap();
        let mut pending = Vec::new();
        for (i, &o) in order.iter().enumerate() {
            let (path, data) = &objects[o];
            if i == 4 {
                // A HEAD: the head only, its Content-Length the object's.
                let head = read_head_only(&mut stream, &mut pending).await;
                assert!(head.starts_with("HTTP/1.1 200"), "{path}: {head}");
                assert!(
                    head.to_ascii_lowercase()
                        .contains(&format!("content-length: {}", data.len())),
                    "{head}"
                );
                continue;
            }
            let (head, body) = read_response(&mut stream, &mut pending, slow).await;
            assert!(
                head.starts_with("HTTP/1.1 200"),
                "{path} (slow {slow}): {head}"
            );
            assert!(head.contains("s3edge; hit"), "{path}: {head}");
            assert_eq!(body.len(), data.len(), "{path} (slow {slow})");
            assert!(body == *data, "{path} (slow {slow}): bytes differ");
        }
        assert!(pending.is_empty(), "bytes after the last response");
    }
}

/// Reads a head (a HEAD's answer) and leaves what follows in `pending`.
async fn read_head_only(stream: &mut tokio::net::TcpStream, pending: &mut Vec<u8>) -> String {
    use tokio::io::AsyncReadExt;
    let mut piece = [0u8; 4096];
    loop {
        if let Some(at) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8(pending[..at + 4].to_vec()).unwrap();
            pending.drain(..at + 4);
            return head;
        }
        let n = stream.read(&mut piece).await.unwrap();
        assert!(n > 0, "connection closed inside a head");
        pending.extend_from_slice(&piece[..n]);
    }
}

/// Over plain HTTP/1.1 a span of a disk-tier file is sent with `sendfile`
/// (the patched actix-http's `SendFile`, `vendor/README.md`), so the body
/// stream is never polled: any span on a connection that is not paced, up
/// to `SEND_FROM_FILE_MAX` (512 KiB) on one BBR paces, a longer one then
/// streaming from the file's checked blocks (which the host's congestion
/// control picks here; both are pinned in
/// `plain_http_bodies_go_by_sendfile_at_every_size_unless_the_connection_is_paced`).
/// Either way the bytes must be
/// exact, ranges must start at the right offset, and the bytes sent must
/// reach the metrics (and the access log). `strace -e sendfile` on a node
/// shows the calls; this test holds what a client and an operator see.
#[tokio::test]
async fn a_disk_tier_hit_over_plain_http_is_sent_from_its_file_byte_exact_and_counted() {
    let shared = tempfile::tempdir().unwrap();
    let (edge, origin) = start(shared.path(), "").await;
    let data = random_bytes(3 * MIB + 777, 51);
    edge.put(BUCKET, "sf.bin", data.clone(), None).await;
    get(&edge, "/sf.bin", &[]).await;
    edge.wait_disk_entries(1).await;
    let before = edge.metric(RESPONSE_BYTES).await;
    assert_hit(&edge, "/sf.bin", &data, "the whole body").await;
    let across = "a range across a block boundary";
    assert_range(&edge, "/sf.bin", &data, 1_048_570, 2_097_160, across).await;
    let (status, _, body) = get(&edge, "/sf.bin", &[("range", "bytes=-5")]).await;
    assert_eq!(status, 206);
    assert!(body == data[data.len() - 5..]);
    let from_file = "a range across a block boundary, from the file";
    assert_range(&edge, "/sf.bin", &data, 1_000_000, 1_300_000, from_file).await;
    let expected = (data.len() + (2_097_160 - 1_048_570 + 1) + 5 + 300_001) as u64;
    let counted = response_bytes_since(&edge, before, expected).await;
    assert_eq!(counted, expected, "bytes sent from the file are counted");
    assert_eq!(origin.gets(), 1);
}

/// A disk-tier hit small enough for the memory tier, asked for over plain
/// HTTP/1.1, is sent from its file and left there (the page cache holds it,
/// and `sendfile` sends it without a copy): the memory tier is not filled
/// with it. Here the node restarts on the cache of one before it, so its
/// memory tier is empty and its files unchecked: the first hit checks the
/// file whole (in the blocking pool), the next ones only read its trailer.
#[tokio::test]
async fn a_small_disk_tier_hit_over_plain_http_is_sent_from_its_file_and_not_promoted() {
    let shared = tempfile::tempdir().unwrap();
    let data = random_bytes(100 * 1024 + 3, 52);
    {
        let edge = filled(shared.path(), "small.bin", &data).await;
        assert_eq!(
            edge.cache_entries("memory").await,
            1,
            "a fill is kept in memory"
        );
    }
    let (builder, origins) = builder(shared.path(), "", 256 << 20);
    let edge = builder.start();
    let before = edge.metric(RESPONSE_BYTES).await;
    for round in 0..3 {
        let round = format!("round {round}");
        assert_hit(&edge, "/small.bin", &data, &round).await;
        assert_range(&edge, "/small.bin", &data, 4090, 5000, &round).await;
    }
    assert_eq!(edge.cache_entries("memory").await, 0, "left in its file");
    let expected = 3 * (data.len() + 911) as u64;
    let counted = response_bytes_since(&edge, before, expected).await;
    assert_eq!(counted, expected, "bytes sent from the file are counted");
    assert_eq!(origins.site("c").gets(), 0, "never asked of the origin");
}

/// GETs `path`, which must be a hit whose body is `data`, byte-exact.
async fn assert_hit(edge: &Edge, path: &str, data: &[u8], what: &str) {
    let (status, cache, body) = get(edge, path, &[]).await;
    assert_eq!((status, cache.as_str()), (200, "s3edge; hit"), "{what}");
    assert!(body == data, "{what}: byte-exact");
}

/// GETs bytes `first..=last` of `path`, whose whole body is `data`: a 206
/// with exactly those bytes.
async fn assert_range(edge: &Edge, path: &str, data: &[u8], first: usize, last: usize, what: &str) {
    let range = format!("bytes={first}-{last}");
    let (status, _, body) = get(edge, path, &[("range", &range)]).await;
    assert_eq!(status, 206, "{what}");
    assert!(body == data[first..=last], "{what}");
}

/// The one cache file under `shared`'s cache directory.
fn the_cache_file(shared: &Path) -> std::path::PathBuf {
    let shard = std::fs::read_dir(shared.join("cache/v2"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| !p.ends_with("tmp"))
        .unwrap();
    std::fs::read_dir(shard)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path()
}

/// A file sent unread (with `sendfile`) is the one the node checked: damaged
/// in place under a running node, it is checked again, dropped and refetched.
#[tokio::test]
async fn a_cache_file_damaged_under_a_running_node_is_refetched_not_sent_from_its_file() {
    let shared = tempfile::tempdir().unwrap();
    let data = random_bytes(100 * 1024 + 5, 53);
    drop(filled(shared.path(), "d.bin", &data).await);
    let (builder, origins) = builder(shared.path(), "", 256 << 20);
    let edge = builder.start();
    for _ in 0..2 {
        let (_, cache, body) = get(&edge, "/d.bin", &[]).await;
        assert_eq!(cache, "s3edge; hit");
        assert!(body == data);
    }
    assert_eq!(edge.cache_entries("memory").await, 0, "sent from its file");
    // Same length, one byte changed, once the file system's clock has moved
    // on from the file's check.
    let file = the_cache_file(shared.path());
    tokio::time::sleep(Duration::from_millis(30)).await;
    let mut bytes = std::fs::read(&file).unwrap();
    bytes[20_000] ^= 0x5a;
    std::fs::OpenOptions::new()
        .write(true)
        .open(&file)
        .and_then(|f| std::os::unix::fs::FileExt::write_all_at(&f, &bytes[20_000..20_001], 20_000))
        .unwrap();
    let (status, cache, body) = get(&edge, "/d.bin", &[]).await;
    assert_eq!(status, 200);
    assert_eq!(cache, "s3edge; fwd=miss; stored", "dropped, refetched");
    assert!(body == data, "never the damaged bytes");
    assert_eq!(origins.site("c").gets(), 1);
    let (_, cache, body) = get(&edge, "/d.bin", &[("range", "bytes=19990-20010")]).await;
    assert_eq!(cache, "s3edge; hit");
    assert!(body == data[19990..=20010]);
}

/// A node on `shared` that has fetched `name` (`data`, in its bucket) whole
/// and written it to its disk tier; dropped, a node started on `shared`
/// finds it there.
async fn filled(shared: &Path, name: &str, data: &[u8]) -> Edge {
    let (edge, _) = start(shared, "").await;
    edge.put(BUCKET, name, data.to_vec(), None).await;
    let (status, _, body) = get(&edge, &format!("/{name}"), &[]).await;
    assert_eq!(status, 200);
    assert!(body == data);
    edge.wait_disk_entries(1).await;
    edge
}

/// The site's response bytes counter.
const RESPONSE_BYTES: &str = "s3edge_response_bytes_total{site=\"c\"}";

/// Response bytes sent by `sendfile`, every site together.
const SENDFILE_BYTES: &str = "s3edge_sendfile_bytes_total";
const OPEN_FILES: &str = "s3edge_cache_open_files";

/// Response bytes counted since `before`, once they reach `expected` (they
/// are counted when the dispatcher drops a body, just after its last byte)
/// or after two seconds.
async fn response_bytes_since(edge: &Edge, before: u64, expected: u64) -> u64 {
    counted_since(edge, RESPONSE_BYTES, before, expected).await
}

/// The counter `name`'s growth since `before`, once it reaches `expected`
/// or after two seconds.
async fn counted_since(edge: &Edge, name: &str, before: u64, expected: u64) -> u64 {
    let mut counted = 0;
    for _ in 0..100 {
        counted = edge.metric(name).await - before;
        if counted >= expected {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    counted
}

/// A node on `shared` whose listener's connections have the TCP congestion
/// control `name` (`--tcp-congestion`), and whose memory tier takes bodies
/// of up to 4 MiB: above `SEND_FROM_FILE_MAX` (512 KiB), so a paced disk hit
/// between the two would fit the memory tier (and is still not promoted).
fn node_with_congestion(shared: &Path, name: &str) -> Edge {
    let name = name.to_string();
    let (builder, _) = builder(shared, "", 256 << 20);
    builder
        .with(|o| {
            o.tcp_congestion = Some(name);
            o.memory_object_max = 4 * MIB as u64;
        })
        .start()
}

/// Whether this kernel has the congestion control `name`.
fn congestion_available(name: &str) -> bool {
    std::fs::read_to_string("/proc/sys/net/ipv4/tcp_available_congestion_control")
        .is_ok_and(|list| list.split_whitespace().any(|n| n == name))
}

/// How a plain HTTP/1 body is sent follows the connection's congestion
/// control (`src/handler/wire.rs`). Not paced (CUBIC): every body with a
/// cache file goes by `sendfile`, a 1.5 MiB disk hit stays in its file,
/// and a memory hit of 64 KiB or more is sent from its file too; a smaller
/// memory hit is copied. Paced (BBR): the same disk hit (above 512 KiB)
/// stays in its file too, not promoted, but is read block by block and
/// copied; a memory hit above 512 KiB or below 64 KiB is copied, one in
/// between is sent from its file. Byte-exact either way, ranges included; the `sendfile`'d bytes
/// are counted.
#[tokio::test]
async fn plain_http_bodies_go_by_sendfile_at_every_size_unless_the_connection_is_paced() {
    let shared = tempfile::tempdir().unwrap();
    let big = random_bytes(1536 * 1024 + 5, 53);
    let small = random_bytes(40 * 1024, 54);
    let edge = node_with_congestion(shared.path(), "cubic");
    edge.create_bucket(BUCKET).await;
    store_each(&edge, &[("/big.bin", &big), ("/small.bin", &small)]).await;
    edge.wait_disk_entries(2).await;
    assert_eq!(edge.cache_entries("memory").await, 2);

    // Memory hits: the small one copied, the big one sent from its file.
    let before = edge.metric(SENDFILE_BYTES).await;
    assert_hit(&edge, "/small.bin", &small, "a small memory hit").await;
    assert_hit(&edge, "/big.bin", &big, "a big memory hit, from its file").await;
    let range = "a range of it, from its file";
    assert_range(&edge, "/big.bin", &big, 300_000, 600_000, range).await;
    let expected = (big.len() + 300_001) as u64;
    let copied = "the small hit was copied from memory";
    assert_sent_from_files(&edge, before, expected, "the big hits", copied).await;
    let open = "the big file stays open for its next hit; the small one was never opened";
    assert_eq!(edge.metric(OPEN_FILES).await, 1, "{open}");
    drop(edge);

    // Disk hits after a restart: kept in their file, not promoted.
    let edge = node_with_congestion(shared.path(), "cubic");
    let before = edge.metric(SENDFILE_BYTES).await;
    for round in 0..2 {
        assert_hit(
            &edge,
            "/big.bin",
            &big,
            &format!("a disk hit, round {round}"),
        )
        .await;
    }
    let expected = 2 * big.len() as u64;
    assert_eq!(
        counted_since(&edge, SENDFILE_BYTES, before, expected).await,
        expected
    );
    assert_eq!(edge.cache_entries("memory").await, 0, "left in its file");
    drop(edge);

    if !congestion_available("bbr") {
        eprintln!("this kernel has no bbr: the paced half of this test did not run");
        return;
    }
    // Paced: the same disk hit stays in its file, read block by block.
    let edge = node_with_congestion(shared.path(), "bbr");
    let before = edge.metric(SENDFILE_BYTES).await;
    for round in 0..2 {
        assert_hit(&edge, "/big.bin", &big, &format!("paced, round {round}")).await;
    }
    response_bytes_since(&edge, 0, 2 * big.len() as u64).await;
    assert_eq!(edge.metric(SENDFILE_BYTES).await - before, 0, "copied");
    let kept = "left in its file: a paced disk hit is not promoted, though it fits";
    assert_eq!(edge.cache_entries("memory").await, 0, "{kept}");

    // Paced memory hits: 100 and 512 KiB from their files, 60 KiB and
    // 1 MiB copied.
    let mid = random_bytes(100 * 1024 + 3, 55);
    let little = random_bytes(60 * 1024, 56);
    let half = random_bytes(512 * 1024, 57);
    let wide = random_bytes(1024 * 1024, 58);
    let objects = [
        ("/mid.bin", &mid),
        ("/little.bin", &little),
        ("/half.bin", &half),
        ("/wide.bin", &wide),
    ];
    store_each(&edge, &objects.map(|(path, data)| (path, data.as_slice()))).await;
    edge.wait_disk_entries(6).await;
    let before = edge.metric(SENDFILE_BYTES).await;
    assert_hit(&edge, "/mid.bin", &mid, "a paced 100 KiB memory hit").await;
    assert_range(&edge, "/mid.bin", &mid, 1000, 70_000, "a range of it").await;
    assert_hit(&edge, "/half.bin", &half, "a paced 512 KiB memory hit").await;
    assert_hit(&edge, "/wide.bin", &wide, "a paced 1 MiB memory hit").await;
    assert_hit(&edge, "/little.bin", &little, "a paced 60 KiB memory hit").await;
    let expected = (mid.len() + 69_001 + half.len()) as u64;
    let copied = "the 60 KiB and 1 MiB hits were copied from memory";
    let from_files = "the 100 and 512 KiB hits";
    assert_sent_from_files(&edge, before, expected, from_files, copied).await;
    assert_eq!(edge.cache_entries("memory").await, 4);
    let open = "the 100 and 512 KiB files are open, and the disk hit's: not the copied ones";
    assert_eq!(edge.metric(OPEN_FILES).await, 3, "{open}");
}

/// A compressed variant found on disk is served as an identity disk hit
/// is: to a plain HTTP/1 client it stays in its file, goes by `sendfile`
/// (on a connection that is not paced) and is not promoted to the memory
/// tier, where loading it would evict smaller entries. Here a node
/// restarts on the cache of one that filled the identity and its gzip
/// variant, so both are on disk only.
#[tokio::test]
async fn a_compressed_variant_on_disk_is_sent_from_its_file_and_not_promoted() {
    let shared = tempfile::tempdir().unwrap();
    let data = css(12_000);
    let gzip = [("accept-encoding", "gzip")];
    let variant_len = {
        let edge = node_with_congestion(shared.path(), "cubic");
        edge.create_bucket(BUCKET).await;
        edge.put(BUCKET, "app.css", data.clone(), Some("text/css"))
            .await;
        let (status, cache, body) = get(&edge, "/app.css", &gzip).await;
        assert_eq!((status, cache.as_str()), (200, "s3edge; fwd=miss; stored"));
        assert!(gunzip(&body) == data, "the gzip variant, made on the miss");
        edge.wait_disk_entries(2).await;
        body.len() as u64
    };
    assert!(
        variant_len < data.len() as u64 / 4,
        "compressed: {variant_len}"
    );
    let edge = node_with_congestion(shared.path(), "cubic");
    let before = edge.metric(SENDFILE_BYTES).await;
    for round in 0..3 {
        let (status, cache, body) = get(&edge, "/app.css", &gzip).await;
        let what = format!("round {round}");
        assert_eq!((status, cache.as_str()), (200, "s3edge; hit"), "{what}");
        assert!(gunzip(&body) == data, "{what}: the variant, byte-exact");
    }
    let expected = 3 * variant_len;
    let sent = counted_since(&edge, SENDFILE_BYTES, before, expected).await;
    assert_eq!(sent, expected, "every variant hit went by sendfile");
    let kept = "the variant (and the identity consulted for it) left in their files";
    assert_eq!(edge.cache_entries("memory").await, 0, "{kept}");
    assert_eq!(
        edge.metric(OPEN_FILES).await,
        2,
        "{kept}, open for the next hit"
    );
}

/// A variant made for a plain-HTTP/1 client from an identity found on
/// disk leaves the identity in its file: the variant is compressed from
/// the file, stored (in memory and on disk) with the identity's freshness,
/// and the identity is not promoted to the memory tier on the way.
#[tokio::test]
async fn a_variant_made_from_an_identity_on_disk_leaves_the_identity_in_its_file() {
    let shared = tempfile::tempdir().unwrap();
    let data = css(6_000);
    {
        let edge = node_with_congestion(shared.path(), "cubic");
        edge.create_bucket(BUCKET).await;
        edge.put(BUCKET, "site.css", data.clone(), Some("text/css"))
            .await;
        let (status, cache, body) = get(&edge, "/site.css", &[]).await;
        assert_eq!((status, cache.as_str()), (200, "s3edge; fwd=miss; stored"));
        assert!(body == data, "the identity, stored");
        edge.wait_disk_entries(1).await;
    }
    let edge = node_with_congestion(shared.path(), "cubic");
    let gzip = [("accept-encoding", "gzip")];
    let (status, _, body) = get(&edge, "/site.css", &gzip).await;
    assert_eq!(status, 200);
    assert!(
        gunzip(&body) == data,
        "the variant, made from the identity's file"
    );
    edge.wait_disk_entries(2).await;
    // In memory: the variant, and the absence of its sidecar (`site.css.gz`,
    // looked up through the cache); not the identity it was made from.
    let kept = "the identity stays in its file";
    assert_eq!(edge.cache_entries("memory").await, 2, "{kept}");
    let (status, cache, body) = get(&edge, "/site.css", &gzip).await;
    assert_eq!(
        (status, cache.as_str()),
        (200, "s3edge; hit"),
        "the variant, stored"
    );
    assert!(gunzip(&body) == data);
}

/// A style sheet of `rules` lines: text that compresses well.
fn css(rules: usize) -> Vec<u8> {
    let text: String = (0..rules)
        .map(|i| format!("p.c{i} {{ margin: {}px }}\n", i % 97))
        .collect();
    text.into_bytes()
}

/// Puts each object (path, bytes) in the bucket and fetches it once: a
/// miss, stored, byte-exact.
async fn store_each(edge: &Edge, objects: &[(&str, &[u8])]) {
    for &(path, data) in objects {
        edge.put(BUCKET, &path[1..], data.to_vec(), None).await;
        let (status, cache, body) = get(edge, path, &[]).await;
        assert_eq!((status, cache.as_str()), (200, "s3edge; fwd=miss; stored"));
        assert!(body == data, "{path}: byte-exact");
    }
}

/// After the hits since `before` (a `sendfile` bytes reading): exactly
/// `expected` bytes went by `sendfile` (`from_file`, the hits that did),
/// and no more come later (`copied`, the hit that was copied instead).
async fn assert_sent_from_files(
    edge: &Edge,
    before: u64,
    expected: u64,
    from_file: &str,
    copied: &str,
) {
    assert_eq!(
        counted_since(edge, SENDFILE_BYTES, before, expected).await,
        expected,
        "{from_file} were sent from the file"
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        edge.metric(SENDFILE_BYTES).await - before,
        expected,
        "{copied}"
    );
}

/// A congestion control the kernel does not have stops the node at start,
/// naming the flag and what the kernel allows.
#[tokio::test]
async fn an_unknown_tcp_congestion_control_stops_the_node_at_start() {
    let shared = tempfile::tempdir().unwrap();
    let (builder, _) = builder(shared.path(), "", 256 << 20);
    let Err(error) = builder
        .with(|o| o.tcp_congestion = Some("no-such-cc".into()))
        .try_start()
    else {
        panic!("the node started");
    };
    let message = error.to_string();
    assert!(
        message.starts_with("--tcp-congestion no-such-cc: no congestion control of that name")
            && message.contains("(this kernel allows: "),
        "{message}"
    );
}
