//! `s3edge::http::range`: `evaluate`, `single_range_spec`, `parse_content_range`,
//! `spec_selects` and `multipart_layout` on arbitrary `Range` / `Content-Range`
//! values and representation lengths.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use s3edge::http::range::{
    evaluate, multipart_layout, parse_content_range, random_boundary, single_range_spec,
    spec_selects, ByteRange, RangeOutcome, MAX_RANGES,
};

#[derive(Arbitrary, Debug)]
struct Input<'a> {
    header: Option<&'a str>,
    /// How to read `total_len`: small lengths hit the interesting edges far
    /// more often than uniformly drawn `u64`s.
    len_mode: u8,
    total_len: u64,
    content_range: &'a str,
    part_content_type: &'a str,
    boundary: Option<&'a str>,
}

fuzz_target!(|input: Input<'_>| {
    let total_len = match input.len_mode % 4 {
        0 => input.total_len % 16,
        1 => input.total_len % 100_000,
        2 => u64::MAX - (input.total_len % 16),
        _ => input.total_len,
    };

    // Content-Range of an origin's 206: whatever parses is consistent and
    // round-trips through ByteRange::content_range.
    if let Some((range, total)) = parse_content_range(input.content_range) {
        assert!(
            range.start <= range.end && range.end < total,
            "{range:?}/{total}"
        );
        assert_eq!(
            parse_content_range(&range.content_range(total)),
            Some((range, total))
        );
    }

    let outcome = evaluate(input.header, total_len);
    let _ = outcome.as_str();

    // The single-spec canonical form: idempotent, and evaluates like the header.
    if let Some(spec) = single_range_spec(input.header) {
        assert_eq!(
            single_range_spec(Some(&spec)).as_deref(),
            Some(spec.as_str())
        );
        assert_eq!(evaluate(Some(&spec), total_len), outcome, "spec {spec:?}");
        if let RangeOutcome::Partial(ranges) = &outcome {
            assert_eq!(ranges.len(), 1);
            assert!(spec_selects(&spec, ranges[0], total_len));
        }
    }

    let RangeOutcome::Partial(ranges) = outcome else {
        return;
    };
    assert!(!ranges.is_empty() && ranges.len() <= MAX_RANGES);
    let mut sum: u64 = 0;
    for range in &ranges {
        assert!(!range.is_empty(), "{range:?}");
        assert!(range.end < total_len, "{range:?} beyond {total_len}");
        sum = sum
            .checked_add(range.len())
            .expect("sum of parts overflows");
        // A single part's Content-Range parses back to the same range.
        assert_eq!(
            parse_content_range(&range.content_range(total_len)),
            Some((*range, total_len))
        );
    }
    assert!(sum <= total_len, "parts add up to {sum} > {total_len}");
    // Coalesced: no two ranges overlap or touch.
    let mut sorted: Vec<ByteRange> = ranges.clone();
    sorted.sort_by_key(|r| r.start);
    for pair in sorted.windows(2) {
        assert!(
            pair[0].end.saturating_add(1) < pair[1].start,
            "not coalesced: {pair:?}"
        );
    }

    let boundary = match input.boundary {
        Some(b) => b.to_string(),
        None => random_boundary(),
    };
    let layout = multipart_layout(
        &ranges,
        total_len,
        input.part_content_type,
        boundary.clone(),
    );
    assert_eq!(layout.boundary, boundary);
    assert_eq!(layout.parts.len(), ranges.len());
    // In u128: for representations near u64::MAX bytes (not realistic, S3
    // objects stop at 5 TB) the sum does not fit and multipart_layout
    // saturates at u64::MAX, as documented by its use of saturating_add.
    let mut expected: u128 = layout.trailer.len() as u128;
    for ((header, range), want) in layout.parts.iter().zip(&ranges) {
        assert_eq!(range, want);
        assert!(range.end < total_len, "part {range:?} beyond {total_len}");
        expected += header.len() as u128 + u128::from(range.len());
        let text = String::from_utf8(header.clone()).expect("part header is UTF-8");
        assert!(text.ends_with("\r\n\r\n"));
        assert!(text.contains(&format!("--{boundary}\r\n")));
        assert!(text.contains(&format!(
            "Content-Range: {}\r\n",
            range.content_range(total_len)
        )));
        if input.boundary.is_none() {
            // With a real boundary, a part content type cannot add header lines.
            let lines = text.matches("\r\n").count();
            assert!(lines <= 5, "part header has {lines} lines: {text:?}");
        }
    }
    let expected = u64::try_from(expected).unwrap_or(u64::MAX);
    assert_eq!(layout.content_length, expected, "Content-Length");
    assert_eq!(
        layout.trailer,
        format!("\r\n--{boundary}--\r\n").into_bytes()
    );
});
