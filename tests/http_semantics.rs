//! RFC 9110 conditional and range requests end to end (README "What a request
//! goes through", stage 9): preconditions in the RFC's order, then `Range` with
//! `If-Range`, over real HTTP against the embedded store.
//!
//! Every case runs twice in a row on the same node: "cold", then "warm". Each
//! case has its own copy of the object under its own key, so its first request
//! is a true miss and its second the request a cache would answer. Today both
//! pass through to the bucket; the same assertions must hold once the cache
//! serves the second.
#![cfg(feature = "embedded")]

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{random_bytes, site_toml, Edge, EdgeBuilder};
use reqwest::Method;

const HOST: &str = "semantics.test";
const BUCKET: &str = "semantics";
const CONTENT_TYPE: &str = "application/x-test";
const CACHE_CONTROL: &str = "public, max-age=60";
/// A few KiB.
const SMALL: u64 = 5000;
/// Three MiB and a bit, so the body arrives in many chunks.
const BIG: u64 = 3 * 1024 * 1024 + 333;
const ERROR_DOCUMENT: &str = "<html><body>custom error document, not a range of it</body></html>";
const PASSES: [&str; 2] = ["cold", "warm"];

const GET: &str = "GET";
const HEAD: &str = "HEAD";

/// What a case must answer.
#[derive(Debug)]
enum Expect {
    /// 200 with the whole object.
    Full,
    /// 304 with the validators and no body.
    NotModified,
    /// 412.
    Failed,
    /// 206 with one part: first and last byte.
    Part(u64, u64),
    /// 206 `multipart/byteranges`: the parts in any order, after coalescing.
    Parts(&'static [(u64, u64)]),
    /// 416 with `Content-Range: bytes */LEN`.
    Unsatisfiable,
}
use Expect::{Failed, Full, NotModified, Part, Parts, Unsatisfiable};

/// (name, method, request headers, expected answer). Header values may hold
/// `{etag}`, `{weak}` (the ETag with `W/`), `{lm}` (Last-Modified), `{lm_asctime}`
/// (the same in asctime format), `{past}` and `{future}` (a day before and after
/// Last-Modified), `{len}` (the object's length) and `{51_ranges}` (a Range of 51
/// disjoint ranges).
type Case = (
    &'static str,
    &'static str,
    &'static [(&'static str, &'static str)],
    Expect,
);

/// An object published for one case, with its validators as the store has them.
struct Object<'a> {
    path: String,
    data: &'a [u8],
    etag: String,
    modified: SystemTime,
}

impl Object<'_> {
    fn len(&self) -> u64 {
        self.data.len() as u64
    }

    fn last_modified(&self) -> String {
        httpdate::fmt_http_date(self.modified)
    }

    fn fill(&self, template: &str) -> String {
        let day = Duration::from_secs(86_400);
        let ranges: Vec<String> = (0..51).map(|i| format!("{0}-{0}", i * 2)).collect();
        template
            .replace("{etag}", &self.etag)
            .replace("{weak}", &format!("W/{}", self.etag))
            .replace("{lm_asctime}", &asctime(&self.last_modified()))
            .replace("{lm}", &self.last_modified())
            .replace("{past}", &httpdate::fmt_http_date(self.modified - day))
            .replace("{future}", &httpdate::fmt_http_date(self.modified + day))
            .replace("{len}", &self.len().to_string())
            .replace("{51_ranges}", &format!("bytes={}", ranges.join(",")))
    }
}

/// `Sun, 06 Nov 1994 08:49:37 GMT` as `Sun Nov  6 08:49:37 1994` (RFC 9110 5.6.7).
fn asctime(imf: &str) -> String {
    let f: Vec<&str> = imf.split_whitespace().collect();
    let day: u8 = f[1].parse().expect("day");
    format!(
        "{} {} {day:>2} {} {}",
        f[0].trim_end_matches(','),
        f[2],
        f[4],
        f[3]
    )
}

async fn node() -> Edge {
    let website = "[website]\nindex_document = \"index.html\"\nerror_document = \"error.html\"\n";
    let edge = EdgeBuilder::new()
        .site("semantics", &site_toml(HOST, BUCKET, website))
        .start();
    edge.create_bucket(BUCKET).await;
    edge.put(BUCKET, "error.html", ERROR_DOCUMENT, Some("text/html"))
        .await;
    edge
}

/// Puts `data` at `key` and reads its ETag and Last-Modified back from the store.
async fn publish<'a>(edge: &Edge, key: &str, data: &'a [u8]) -> Object<'a> {
    edge.put_with(BUCKET, key, data.to_vec(), |p| {
        p.content_type(CONTENT_TYPE).cache_control(CACHE_CONTROL)
    })
    .await;
    let head = edge
        .s3
        .head_object()
        .bucket(BUCKET)
        .key(key)
        .send()
        .await
        .expect("head object");
    let secs = head.last_modified().expect("Last-Modified").secs();
    Object {
        path: format!("/{key}"),
        data,
        etag: head.e_tag().expect("ETag").to_string(),
        modified: UNIX_EPOCH + Duration::from_secs(u64::try_from(secs).expect("after 1970")),
    }
}

/// Runs each case cold then warm, each on its own copy of `data`.
async fn run(edge: &Edge, group: &str, data: &[u8], cases: &[Case]) {
    for (i, case) in cases.iter().enumerate() {
        let object = publish(edge, &format!("{group}/{i}.bin"), data).await;
        for pass in PASSES {
            check(edge, &object, case, pass).await;
        }
    }
}

async fn check(edge: &Edge, object: &Object<'_>, case: &Case, pass: &str) {
    let (name, method, headers, expect) = case;
    let what = format!("{name} [{pass}]");
    let filled: Vec<(&str, String)> = headers.iter().map(|&(n, v)| (n, object.fill(v))).collect();
    let sent: Vec<(&str, &str)> = filled.iter().map(|(n, v)| (*n, v.as_str())).collect();
    let head = *method == HEAD;
    let method = Method::from_bytes(method.as_bytes()).expect("method");
    let response = edge.request(method, HOST, &object.path, &sent).await;
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.bytes().await.expect("body");
    let get = |n: &str| {
        headers
            .get(n)
            .map(|v| v.to_str().expect("visible ASCII").to_string())
    };
    let total = object.len();
    let want_status = match expect {
        Full => 200,
        NotModified => 304,
        Failed => 412,
        Part(..) | Parts(_) => 206,
        Unsatisfiable => 416,
    };
    assert_eq!(status, want_status, "{what}: status ({headers:?})");
    if head {
        assert!(body.is_empty(), "{what}: HEAD has no body");
    }
    if matches!(expect, Failed | Unsatisfiable) {
        let want = matches!(expect, Unsatisfiable).then(|| format!("bytes */{total}"));
        assert_eq!(get("content-range"), want, "{what}: Content-Range");
        return;
    }
    // 200, 206 and 304 all describe the object.
    assert_eq!(get("etag"), Some(object.etag.clone()), "{what}: ETag");
    assert_eq!(
        get("last-modified"),
        Some(object.last_modified()),
        "{what}: Last-Modified"
    );
    assert_eq!(
        get("cache-control").as_deref(),
        Some(CACHE_CONTROL),
        "{what}: Cache-Control"
    );
    match *expect {
        NotModified => {
            assert!(body.is_empty(), "{what}: a 304 has no body");
            assert_eq!(get("content-range"), None, "{what}: Content-Range on a 304");
            // RFC 9110 8.6: only the length a 200 would have had, if any.
            if let Some(length) = get("content-length") {
                assert_eq!(length, total.to_string(), "{what}: Content-Length on a 304");
            }
        }
        Full => {
            assert_eq!(
                get("accept-ranges").as_deref(),
                Some("bytes"),
                "{what}: Accept-Ranges"
            );
            assert_eq!(get("content-type").as_deref(), Some(CONTENT_TYPE), "{what}");
            assert_eq!(
                get("content-length"),
                Some(total.to_string()),
                "{what}: Content-Length"
            );
            assert_eq!(get("content-range"), None, "{what}: Content-Range on a 200");
            if !head {
                same_bytes(&what, &body, object.data);
            }
        }
        Part(first, last) => {
            assert_eq!(get("content-type").as_deref(), Some(CONTENT_TYPE), "{what}");
            let range = format!("bytes {first}-{last}/{total}");
            assert_eq!(get("content-range"), Some(range), "{what}: Content-Range");
            let length = (last - first + 1).to_string();
            assert_eq!(
                get("content-length"),
                Some(length),
                "{what}: Content-Length"
            );
            if !head {
                same_bytes(&what, &body, &object.data[first as usize..=last as usize]);
            }
        }
        Parts(want) => {
            let content_type = get("content-type").unwrap_or_default();
            assert!(
                content_type.starts_with("multipart/byteranges;"),
                "{what}: Content-Type {content_type}"
            );
            assert_eq!(
                get("content-range"),
                None,
                "{what}: Content-Range on a multipart 206"
            );
            let length: u64 = get("content-length")
                .expect("Content-Length")
                .parse()
                .expect("a number");
            if head {
                let bytes: u64 = want.iter().map(|(f, l)| l - f + 1).sum();
                assert!(length > bytes, "{what}: Content-Length {length}");
                return;
            }
            assert_eq!(
                length,
                body.len() as u64,
                "{what}: Content-Length is the body's"
            );
            let mut parts = parse_multipart(&what, &content_type, &body);
            parts.sort_by_key(|p| p.first);
            assert_eq!(parts.len(), want.len(), "{what}: parts {parts:?}");
            let mut want = want.to_vec();
            want.sort();
            for (part, (first, last)) in parts.iter().zip(want) {
                let part_what = format!("{what}: part {first}-{last}");
                assert_eq!((part.first, part.last), (first, last), "{part_what}");
                assert_eq!(part.total, total, "{part_what}: complete length");
                assert_eq!(
                    part.content_type.as_deref(),
                    Some(CONTENT_TYPE),
                    "{part_what}"
                );
                same_bytes(
                    &part_what,
                    &part.data,
                    &object.data[first as usize..=last as usize],
                );
            }
        }
        Failed | Unsatisfiable => unreachable!(),
    }
}

/// Compares bodies without printing megabytes.
fn same_bytes(what: &str, got: &[u8], want: &[u8]) {
    let first_difference = got.iter().zip(want).position(|(a, b)| a != b);
    assert!(
        got.len() == want.len() && first_difference.is_none(),
        "{what}: body of {} bytes, want {}; first difference at {first_difference:?}",
        got.len(),
        want.len()
    );
}

#[derive(Debug)]
struct BodyPart {
    content_type: Option<String>,
    first: u64,
    last: u64,
    total: u64,
    data: Vec<u8>,
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Splits a `multipart/byteranges` body (RFC 9110 14.6, RFC 2046 5.1.1) by its boundary.
fn parse_multipart(what: &str, content_type: &str, body: &[u8]) -> Vec<BodyPart> {
    let boundary = content_type
        .split(';')
        .find_map(|p| p.trim().strip_prefix("boundary="))
        .unwrap_or_else(|| panic!("{what}: no boundary in {content_type}"))
        .trim_matches('"');
    let open = format!("--{boundary}");
    let next = format!("\r\n--{boundary}");
    let start = find(body, open.as_bytes()).unwrap_or_else(|| panic!("{what}: no delimiter"));
    let mut rest = &body[start + open.len()..];
    let mut parts = Vec::new();
    loop {
        if let Some(epilogue) = rest.strip_prefix(b"--") {
            assert!(
                epilogue.is_empty() || epilogue.starts_with(b"\r\n"),
                "{what}: close"
            );
            return parts;
        }
        rest = rest
            .strip_prefix(b"\r\n")
            .unwrap_or_else(|| panic!("{what}: CRLF after a delimiter"));
        let end = find(rest, b"\r\n\r\n").unwrap_or_else(|| panic!("{what}: part headers"));
        let mut part = BodyPart {
            content_type: None,
            first: 0,
            last: 0,
            total: 0,
            data: Vec::new(),
        };
        let mut content_range = None;
        for line in std::str::from_utf8(&rest[..end])
            .expect("ASCII")
            .split("\r\n")
        {
            let (name, value) = line.split_once(':').expect("a header line");
            match name.trim().to_ascii_lowercase().as_str() {
                "content-type" => part.content_type = Some(value.trim().to_string()),
                "content-range" => content_range = Some(value.trim().to_string()),
                _ => {}
            }
        }
        let content_range = content_range.unwrap_or_else(|| panic!("{what}: part Content-Range"));
        let (range, total) = content_range
            .strip_prefix("bytes ")
            .and_then(|r| r.split_once('/'))
            .unwrap_or_else(|| panic!("{what}: {content_range}"));
        let (first, last) = range.split_once('-').expect("first-last");
        (part.first, part.last) = (first.parse().unwrap(), last.parse().unwrap());
        part.total = total.parse().unwrap();
        rest = &rest[end + 4..];
        let end = find(rest, next.as_bytes()).unwrap_or_else(|| panic!("{what}: next delimiter"));
        part.data = rest[..end].to_vec();
        parts.push(part);
        rest = &rest[end + next.len()..];
    }
}

#[rustfmt::skip]
const PRECONDITIONS: &[Case] = &[
    // If-Match (RFC 9110 13.1.1): strong comparison.
    ("If-Match with the current ETag is a 200", GET, &[("if-match", "{etag}")], Full),
    ("If-Match with another ETag is a 412", GET, &[("if-match", "\"other\"")], Failed),
    ("If-Match * is a 200 for an existing object", GET, &[("if-match", "*")], Full),
    ("If-Match with a list holding the ETag is a 200", GET, &[("if-match", "\"a\", {etag}, \"b\"")], Full),
    ("If-Match with the weak form of the ETag is a 412 (strong comparison)", GET, &[("if-match", "{weak}")], Failed),
    ("If-Match on HEAD with another ETag is a 412", HEAD, &[("if-match", "\"other\"")], Failed),
    // If-Unmodified-Since (13.1.4).
    ("If-Unmodified-Since in the past is a 412", GET, &[("if-unmodified-since", "{past}")], Failed),
    ("If-Unmodified-Since equal to Last-Modified is a 200", GET, &[("if-unmodified-since", "{lm}")], Full),
    ("If-Unmodified-Since in the future is a 200", GET, &[("if-unmodified-since", "{future}")], Full),
    ("an invalid If-Unmodified-Since is ignored", GET, &[("if-unmodified-since", "not a date")], Full),
    ("If-Unmodified-Since is ignored when If-Match is present", GET, &[("if-match", "{etag}"), ("if-unmodified-since", "{past}")], Full),
    // If-None-Match (13.1.2): weak comparison.
    ("If-None-Match with the current ETag is a 304", GET, &[("if-none-match", "{etag}")], NotModified),
    ("If-None-Match with the weak form of the ETag is a 304 (weak comparison)", GET, &[("if-none-match", "{weak}")], NotModified),
    ("If-None-Match with a list holding the ETag is a 304", GET, &[("if-none-match", "\"a\", {etag}")], NotModified),
    ("If-None-Match * is a 304", GET, &[("if-none-match", "*")], NotModified),
    ("If-None-Match with another ETag is a 200", GET, &[("if-none-match", "\"other\"")], Full),
    ("HEAD with a matching If-None-Match is a 304", HEAD, &[("if-none-match", "{etag}")], NotModified),
    ("If-Match failing wins over If-None-Match", GET, &[("if-match", "\"other\""), ("if-none-match", "{etag}")], Failed),
    ("If-Match holding and If-None-Match matching is a 304", GET, &[("if-match", "{etag}"), ("if-none-match", "{etag}")], NotModified),
    // If-Modified-Since (13.1.3).
    ("If-Modified-Since equal to Last-Modified is a 304", GET, &[("if-modified-since", "{lm}")], NotModified),
    ("If-Modified-Since equal to Last-Modified in asctime format is a 304", GET, &[("if-modified-since", "{lm_asctime}")], NotModified),
    ("If-Modified-Since later than Last-Modified is a 304", GET, &[("if-modified-since", "{future}")], NotModified),
    ("If-Modified-Since earlier than Last-Modified is a 200", GET, &[("if-modified-since", "{past}")], Full),
    ("an invalid If-Modified-Since is ignored", GET, &[("if-modified-since", "yesterday")], Full),
    ("If-Modified-Since is ignored when If-None-Match does not match", GET, &[("if-none-match", "\"other\""), ("if-modified-since", "{future}")], Full),
    ("If-None-Match matching wins over an earlier If-Modified-Since", GET, &[("if-none-match", "{etag}"), ("if-modified-since", "{past}")], NotModified),
    ("HEAD with If-Modified-Since equal to Last-Modified is a 304", HEAD, &[("if-modified-since", "{lm}")], NotModified),
    // Preconditions come before Range (13.2.2).
    ("a matching If-None-Match with a Range is a 304", GET, &[("if-none-match", "{etag}"), ("range", "bytes=0-99")], NotModified),
    ("a matching If-None-Match with an unsatisfiable Range is a 304", GET, &[("if-none-match", "{etag}"), ("range", "bytes={len}-")], NotModified),
    ("If-Modified-Since equal to Last-Modified with a Range is a 304", GET, &[("if-modified-since", "{lm}"), ("range", "bytes=0-99")], NotModified),
    ("a failing If-Match with a Range is a 412", GET, &[("if-match", "\"other\""), ("range", "bytes=0-99")], Failed),
    ("a holding If-Match with a Range is a 206", GET, &[("if-match", "{etag}"), ("range", "bytes=0-99")], Part(0, 99)),
    ("a non-matching If-None-Match with a Range is a 206", GET, &[("if-none-match", "\"other\""), ("range", "bytes=0-99")], Part(0, 99)),
];

#[tokio::test]
async fn preconditions_are_evaluated_in_rfc_9110_order_cold_and_warm() {
    let edge = node().await;
    let data = random_bytes(SMALL as usize, 1);
    run(&edge, "pre", &data, PRECONDITIONS).await;
}

/// A field sent on several lines is one comma-separated field value (RFC 9110 5.3).
#[rustfmt::skip]
const SPLIT_FIELDS: &[Case] = &[
    ("If-None-Match on two field lines is one list", GET, &[("if-none-match", "\"a\""), ("if-none-match", "{etag}")], NotModified),
    ("If-Match on two field lines is one list", GET, &[("if-match", "\"a\""), ("if-match", "{etag}")], Full),
    ("If-Modified-Since on two field lines is a list of dates, so it is ignored (13.1.3)", GET, &[("if-modified-since", "{lm}"), ("if-modified-since", "{past}")], Full),
    ("If-Unmodified-Since on two field lines is a list of dates, so it is ignored (13.1.4)", GET, &[("if-unmodified-since", "{past}"), ("if-unmodified-since", "{future}")], Full),
];

#[tokio::test]

async fn precondition_fields_sent_on_several_lines_are_read_as_one_field_cold_and_warm() {
    let edge = node().await;
    let data = random_bytes(SMALL as usize, 4);
    run(&edge, "split", &data, SPLIT_FIELDS).await;
}

#[rustfmt::skip]
const RANGES: &[Case] = &[
    ("a plain GET is the whole object with Accept-Ranges", GET, &[], Full),
    ("a plain HEAD has the 200's headers", HEAD, &[], Full),
    ("the first hundred bytes", GET, &[("range", "bytes=0-99")], Part(0, 99)),
    ("an open range", GET, &[("range", "bytes=100-")], Part(100, SMALL - 1)),
    ("a suffix range", GET, &[("range", "bytes=-100")], Part(SMALL - 100, SMALL - 1)),
    ("a suffix longer than the object is all of it", GET, &[("range", "bytes=-99999")], Part(0, SMALL - 1)),
    ("an end past the length is clamped", GET, &[("range", "bytes=4900-99999")], Part(4900, SMALL - 1)),
    ("the first byte alone", GET, &[("range", "bytes=0-0")], Part(0, 0)),
    ("the range unit is case-insensitive", GET, &[("range", "Bytes=0-9")], Part(0, 9)),
    ("the last byte alone", GET, &[("range", "bytes=4999-")], Part(SMALL - 1, SMALL - 1)),
    ("a range starting at the length is unsatisfiable", GET, &[("range", "bytes={len}-")], Unsatisfiable),
    ("a closed range past the end is unsatisfiable", GET, &[("range", "bytes=5000-6000")], Unsatisfiable),
    ("a zero-length suffix is unsatisfiable", GET, &[("range", "bytes=-0")], Unsatisfiable),
    ("an unsatisfiable range is dropped when another remains", GET, &[("range", "bytes=5000-,0-4")], Part(0, 4)),
    ("a backwards range is invalid, so Range is ignored", GET, &[("range", "bytes=5-1")], Full),
    ("a word is not a range, so Range is ignored", GET, &[("range", "bytes=abc")], Full),
    ("another unit is ignored", GET, &[("range", "items=0-1")], Full),
    ("one invalid range spoils the whole header", GET, &[("range", "bytes=0-9,abc")], Full),
    ("HEAD with a Range has the 206's headers", HEAD, &[("range", "bytes=0-99")], Part(0, 99)),
    ("HEAD with an unsatisfiable Range is a 416", HEAD, &[("range", "bytes={len}-")], Unsatisfiable),
    // Several ranges (RFC 9110 14.6, 15.3.7.2).
    ("three ranges are a multipart 206", GET, &[("range", "bytes=0-9,20-29,-10")], Parts(&[(0, 9), (20, 29), (SMALL - 10, SMALL - 1)])),
    ("whitespace after the commas is allowed", GET, &[("range", "bytes=0-9, 20-29")], Parts(&[(0, 9), (20, 29)])),
    ("overlapping ranges are coalesced", GET, &[("range", "bytes=0-99,50-149,1000-1099")], Parts(&[(0, 149), (1000, 1099)])),
    ("ranges out of order are all served", GET, &[("range", "bytes=4000-,0-9")], Parts(&[(0, 9), (4000, SMALL - 1)])),
    ("ranges that coalesce into one are a single-part 206", GET, &[("range", "bytes=0-9,5-14")], Part(0, 14)),
    ("more than 50 ranges are served whole", GET, &[("range", "{51_ranges}")], Full),
    ("HEAD with several ranges has the multipart headers", HEAD, &[("range", "bytes=0-9,20-29")], Parts(&[(0, 9), (20, 29)])),
    // If-Range (13.1.5).
    ("If-Range with the current strong ETag lets the Range apply", GET, &[("if-range", "{etag}"), ("range", "bytes=0-99")], Part(0, 99)),
    ("If-Range with another ETag gets the whole object", GET, &[("if-range", "\"other\""), ("range", "bytes=0-99")], Full),
    ("If-Range with a weak ETag gets the whole object", GET, &[("if-range", "{weak}"), ("range", "bytes=0-99")], Full),
    ("If-Range with Last-Modified lets the Range apply", GET, &[("if-range", "{lm}"), ("range", "bytes=0-99")], Part(0, 99)),
    ("If-Range with an earlier date gets the whole object", GET, &[("if-range", "{past}"), ("range", "bytes=0-99")], Full),
    ("If-Range with a later date gets the whole object", GET, &[("if-range", "{future}"), ("range", "bytes=0-99")], Full),
    ("If-Range with junk gets the whole object", GET, &[("if-range", "junk"), ("range", "bytes=0-99")], Full),
    ("If-Range holding with several ranges is a multipart 206", GET, &[("if-range", "{etag}"), ("range", "bytes=0-9,100-109")], Parts(&[(0, 9), (100, 109)])),
    ("If-Range not holding with an unsatisfiable Range gets the whole object", GET, &[("if-range", "\"other\""), ("range", "bytes={len}-")], Full),
    ("If-Range without a Range is ignored", GET, &[("if-range", "\"other\"")], Full),
];

#[tokio::test]
async fn ranges_and_if_range_follow_rfc_9110_14_cold_and_warm() {
    let edge = node().await;
    let data = random_bytes(SMALL as usize, 2);
    run(&edge, "ranges", &data, RANGES).await;
}

/// An empty representation (RFC 9110 14.1.2): no range can select a byte of it.
#[rustfmt::skip]
const EMPTY: &[Case] = &[
    ("an empty object is a 200", GET, &[], Full),
    ("any int-range of an empty object is unsatisfiable", GET, &[("range", "bytes=0-")], Unsatisfiable),
    ("If-None-Match on an empty object is a 304", GET, &[("if-none-match", "{etag}")], NotModified),
];

#[tokio::test]
async fn an_empty_object_has_no_satisfiable_range_cold_and_warm() {
    let edge = node().await;
    run(&edge, "empty", &[], EMPTY).await;
}

#[tokio::test]

async fn a_suffix_range_of_an_empty_object_is_ignored_cold_and_warm() {
    let edge = node().await;
    #[rustfmt::skip]
    let cases: &[Case] = &[
        ("a suffix of an empty object selects nothing, so Range is ignored", GET, &[("range", "bytes=-1")], Full),
    ];
    run(&edge, "empty-suffix", &[], cases).await;
}

const MIB: u64 = 1024 * 1024;

#[rustfmt::skip]
const BIG_RANGES: &[Case] = &[
    ("the whole multi-MiB object", GET, &[], Full),
    ("a range across the 1 MiB and 2 MiB marks", GET, &[("range", "bytes=1048000-2098000")], Part(1_048_000, 2_098_000)),
    ("two bytes either side of 64 KiB", GET, &[("range", "bytes=65535-65536")], Part(65_535, 65_536)),
    ("an open range over the last MiB", GET, &[("range", "bytes=2097152-")], Part(2 * MIB, BIG - 1)),
    ("a suffix of a MiB and a byte", GET, &[("range", "bytes=-1048577")], Part(BIG - MIB - 1, BIG - 1)),
    ("scattered ranges across chunks are a multipart 206", GET, &[("range", "bytes=0-0,1048570-1048600,2097100-2097200,-5")],
        Parts(&[(0, 0), (1_048_570, 1_048_600), (2_097_100, 2_097_200), (BIG - 5, BIG - 1)])),
    ("If-Range holding on a large object", GET, &[("if-range", "{etag}"), ("range", "bytes=3000000-3000099")], Part(3_000_000, 3_000_099)),
    ("an unsatisfiable range of a large object", GET, &[("range", "bytes={len}-")], Unsatisfiable),
    ("HEAD with a range of a large object", HEAD, &[("range", "bytes=1000000-1999999")], Part(1_000_000, 1_999_999)),
];

#[tokio::test]
async fn ranges_of_a_multi_mib_object_are_exact_across_chunks_cold_and_warm() {
    let edge = node().await;
    let data = random_bytes(BIG as usize, 3);
    run(&edge, "big", &data, BIG_RANGES).await;
}

#[tokio::test]
async fn conditionals_and_ranges_do_not_apply_to_a_missing_key_and_its_error_document() {
    let edge = node().await;
    let cases: &[(&str, &[(&str, &str)])] = &[
        ("a Range", &[("range", "bytes=0-9")]),
        ("an unsatisfiable Range", &[("range", "bytes=100000-")]),
        ("several ranges", &[("range", "bytes=0-1,5-6")]),
        (
            "If-Range and a Range",
            &[("if-range", "\"x\""), ("range", "bytes=0-9")],
        ),
        ("If-Match *", &[("if-match", "*")]),
        ("If-Match with a tag", &[("if-match", "\"x\"")]),
        ("If-None-Match *", &[("if-none-match", "*")]),
        (
            "If-Modified-Since far ahead",
            &[("if-modified-since", "Fri, 01 Jan 2100 00:00:00 GMT")],
        ),
        (
            "If-Unmodified-Since long ago",
            &[("if-unmodified-since", "Thu, 01 Jan 1970 00:00:00 GMT")],
        ),
    ];
    for (name, headers) in cases {
        for pass in PASSES {
            let what = format!("{name} on a missing key [{pass}]");
            let response = edge
                .request(Method::GET, HOST, "/missing.bin", headers)
                .await;
            assert_eq!(response.status(), 404, "{what}");
            assert_eq!(response.headers().get("content-range"), None, "{what}");
            assert_eq!(
                response.headers()["content-type"],
                "text/html; charset=utf-8",
                "{what}"
            );
            assert_eq!(response.text().await.unwrap(), ERROR_DOCUMENT, "{what}");
        }
    }
}
