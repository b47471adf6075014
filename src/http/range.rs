//! Range requests, RFC 9110 section 14, as pure functions.
//!
//! [`evaluate`] turns a `Range` field value and the representation length into
//! a [`RangeOutcome`]: serve it whole (200), serve parts (206), or answer 416.
//! For several parts, [`multipart_layout`] lays out a `multipart/byteranges`
//! body (RFC 9110 section 14.6) so the caller can stream it: each part's
//! header bytes, then that range of the representation, then the trailer.
//!
//! The caller evaluates `If-Range` first (`super::conditional::if_range_allows`)
//! and ignores `Range` when it is false, or when the method is not GET
//! (RFC 9110 section 14.2; HEAD answers GET's headers).

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::time::{SystemTime, UNIX_EPOCH};

/// Most parts a 206 answer may have after coalescing; a request for more is
/// answered with the whole representation (200), which RFC 9110 section 14.2
/// allows ("MAY ignore ... a set of many small ranges"), so that a short
/// `Range` cannot make the node send many part headers (section 17.15).
pub const MAX_RANGES: usize = 50;

/// An inclusive range of byte offsets, `first-pos "-" last-pos` once resolved
/// against the representation length (RFC 9110 section 14.1.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ByteRange {
    /// Offset of the first byte.
    pub start: u64,
    /// Offset of the last byte, inclusive.
    pub end: u64,
}

impl ByteRange {
    /// Number of bytes in the range, `end - start + 1` (RFC 9110 section
    /// 14.1.2: positions are inclusive); 0 if `end < start`.
    pub fn len(&self) -> u64 {
        if self.end < self.start {
            0
        } else {
            (self.end - self.start).saturating_add(1)
        }
    }

    /// Whether the range holds no byte; never true for a range from [`evaluate`].
    pub fn is_empty(&self) -> bool {
        self.end < self.start
    }

    /// The `Content-Range` value for this range of a representation of
    /// `total` bytes, e.g. `bytes 42-1233/1234` (RFC 9110 section 14.4).
    pub fn content_range(&self, total: u64) -> String {
        format!("bytes {}-{}/{}", self.start, self.end, total)
    }
}

/// What to do with a `Range` request (RFC 9110 section 14.2).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RangeOutcome {
    /// Send the whole representation with 200: no `Range`, a syntactically
    /// invalid one, a unit other than `bytes` (all to be ignored, section
    /// 14.2), a zero-length representation asked for a suffix (section 14.2
    /// "MAY ignore"), or more than [`MAX_RANGES`] parts.
    Full,
    /// Send 206 with these ranges (section 15.3.7): one range as a single
    /// part with `Content-Range`, several as `multipart/byteranges`. Ranges
    /// keep the order of the request, a coalesced range taking the place of
    /// its earliest member (section 15.3.7.2).
    Partial(Vec<ByteRange>),
    /// Send 416 with `Content-Range: bytes */LEN` ([`unsatisfied_content_range`],
    /// sections 14.4 and 15.5.17): the header was valid but no range in it
    /// overlaps the representation.
    Unsatisfiable,
}

impl RangeOutcome {
    /// A stable name for logs and metric labels.
    pub fn as_str(&self) -> &'static str {
        match self {
            RangeOutcome::Full => "full",
            RangeOutcome::Partial(ranges) if ranges.len() == 1 => "partial",
            RangeOutcome::Partial(_) => "multipart",
            RangeOutcome::Unsatisfiable => "unsatisfiable",
        }
    }
}

/// Evaluates a `Range` field value against a representation of `total_len`
/// bytes (RFC 9110 sections 14.1 and 14.2).
///
/// - Only the `bytes` unit, case-insensitive (section 14.1.1); any other is
///   ignored: [`RangeOutcome::Full`].
/// - `first-last`, `first-` and `-suffix` (section 14.1.2), with optional
///   whitespace around each list element and empty elements skipped
///   (section 5.6.1). A range-spec that is invalid (`last < first`, not
///   digits, a number past `u64`) makes the whole header invalid (section
///   14.1.1): `Full`.
/// - `last` at or past the end is clamped; a suffix longer than the
///   representation means all of it. A range is satisfiable when `first` is
///   below the length, or it is a suffix of non-zero length (section
///   14.1.2); unsatisfiable ones are dropped, and if none remains:
///   [`RangeOutcome::Unsatisfiable`].
/// - A zero-length representation has no satisfiable `int-range`; a
///   non-zero suffix is satisfiable there (section 14.1.2) but no
///   `Content-Range` can describe its zero bytes, so the `Range` is ignored
///   (section 14.2: "MAY ignore ... when the selected representation has no
///   content"): `Full`.
/// - Overlapping and adjacent ranges are coalesced (section 15.3.7.2); more
///   than [`MAX_RANGES`] parts left, or parts adding up to more than the
///   representation, answer `Full`.
pub fn evaluate(range_header: Option<&str>, total_len: u64) -> RangeOutcome {
    let Some(specs) = range_header.and_then(parse_ranges_specifier) else {
        return RangeOutcome::Full;
    };
    if total_len == 0 {
        let suffix = specs
            .iter()
            .any(|spec| matches!(spec, RangeSpec::Suffix(length) if *length > 0));
        return if suffix {
            RangeOutcome::Full
        } else {
            RangeOutcome::Unsatisfiable
        };
    }
    let satisfiable: Vec<ByteRange> = specs
        .iter()
        .filter_map(|spec| spec.resolve(total_len))
        .collect();
    if satisfiable.is_empty() {
        return RangeOutcome::Unsatisfiable;
    }
    let ranges = coalesce(satisfiable);
    let sent = ranges
        .iter()
        .try_fold(0u64, |sum, range| sum.checked_add(range.len()));
    if ranges.len() > MAX_RANGES || sent.is_none_or(|sent| sent > total_len) {
        // Cannot exceed the length once coalesced; kept as a guard so that a
        // change to coalescing cannot open an amplification hole.
        return RangeOutcome::Full;
    }
    RangeOutcome::Partial(ranges)
}

/// When `range_header` is a valid `bytes` range with exactly one range-spec: that
/// spec in canonical form (`bytes=0-99`, `bytes=100-`, `bytes=-500`), to forward to
/// an origin so that a range of an uncached object costs only its bytes. `None`
/// for anything else (no header, invalid, several ranges): the edge then
/// evaluates the header itself against the full representation.
pub fn single_range_spec(range_header: Option<&str>) -> Option<String> {
    let specs = range_header.and_then(parse_ranges_specifier)?;
    match specs.as_slice() {
        [RangeSpec::Int {
            first,
            last: Some(last),
        }] => Some(format!("bytes={first}-{last}")),
        [RangeSpec::Int { first, last: None }] => Some(format!("bytes={first}-")),
        [RangeSpec::Suffix(length)] => Some(format!("bytes=-{length}")),
        _ => None,
    }
}

/// Parses a `Content-Range: bytes FIRST-LAST/COMPLETE` value of a 206 (RFC 9110
/// section 14.4) into the range and the complete length; `None` when it is not
/// exactly that form (an unknown length `*` included) or is inconsistent.
pub fn parse_content_range(value: &str) -> Option<(ByteRange, u64)> {
    let rest = value.trim().strip_prefix("bytes ")?;
    let (range, complete) = rest.split_once('/')?;
    let (first, last) = range.split_once('-')?;
    let (start, end, total) = (
        parse_digits(first)?,
        parse_digits(last)?,
        parse_digits(complete)?,
    );
    (start <= end && end < total).then_some((ByteRange { start, end }, total))
}

/// Whether `range` is what `spec` (from [`single_range_spec`]) selects of a
/// representation of `total` bytes: the check an edge makes on an origin's 206
/// before passing its bytes on.
pub fn spec_selects(spec: &str, range: ByteRange, total: u64) -> bool {
    matches!(evaluate(Some(spec), total), RangeOutcome::Partial(ranges) if ranges == [range])
}

/// The `Content-Range` value of a 416 answer, `bytes */1234` (RFC 9110
/// sections 14.4 and 15.5.17).
pub fn unsatisfied_content_range(total: u64) -> String {
    format!("bytes */{total}")
}

/// A `multipart/byteranges` body laid out for streaming (RFC 9110 sections
/// 14.6 and 15.3.7.2): write each part's header bytes then the bytes of its
/// range of the representation, in order, then the trailer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MultipartLayout {
    /// The boundary separating the parts (RFC 2046 section 5.1.1).
    pub boundary: String,
    /// The response's `Content-Type`, `multipart/byteranges; boundary=...`.
    pub content_type: String,
    /// The response's `Content-Length`: every header, range and trailer byte.
    pub content_length: u64,
    /// Each part's header bytes and the range that follows them. The first
    /// part's header starts `--boundary` CRLF, as in the RFC's example; the
    /// others start CRLF `--boundary` CRLF. Then `Content-Type` (when
    /// given), `Content-Range`, and an empty line.
    pub parts: Vec<(Vec<u8>, ByteRange)>,
    /// The closing delimiter, CRLF `--boundary--` CRLF.
    pub trailer: Vec<u8>,
}

/// Lays out a `multipart/byteranges` body for `ranges` of a representation of
/// `total_len` bytes (RFC 9110 sections 14.6 and 15.3.7.2).
///
/// Each part carries the representation's `part_content_type` (section
/// 15.3.7.2 "SHOULD"); the line is left out when the type is empty or holds a
/// control character that would break the part header. `boundary` should
/// come from [`random_boundary`]; one that is not an RFC 9110 token is quoted
/// in `content_type`. For a single range the caller sends a single part with
/// `Content-Range` instead (section 15.3.7.2 "MUST NOT").
pub fn multipart_layout(
    ranges: &[ByteRange],
    total_len: u64,
    part_content_type: &str,
    boundary: String,
) -> MultipartLayout {
    let type_line = (!part_content_type.is_empty()
        && !part_content_type
            .chars()
            .any(|c| c.is_control() && c != '\t'))
    .then(|| format!("Content-Type: {part_content_type}\r\n"));
    let mut content_length: u64 = 0;
    let mut parts = Vec::with_capacity(ranges.len());
    for (index, range) in ranges.iter().enumerate() {
        let delimiter = if index == 0 { "" } else { "\r\n" };
        let header = format!(
            "{delimiter}--{boundary}\r\n{}Content-Range: {}\r\n\r\n",
            type_line.as_deref().unwrap_or_default(),
            range.content_range(total_len),
        )
        .into_bytes();
        content_length = content_length
            .saturating_add(byte_count(&header))
            .saturating_add(range.len());
        parts.push((header, *range));
    }
    let trailer = format!("\r\n--{boundary}--\r\n").into_bytes();
    content_length = content_length.saturating_add(byte_count(&trailer));
    let content_type = if !boundary.is_empty() && boundary.bytes().all(is_tchar) {
        format!("multipart/byteranges; boundary={boundary}")
    } else {
        format!("multipart/byteranges; boundary=\"{boundary}\"")
    };
    MultipartLayout {
        boundary,
        content_type,
        content_length,
        parts,
        trailer,
    }
}

/// A fresh boundary for [`multipart_layout`]: 32 lowercase hex digits, a
/// token and a valid RFC 2046 boundary (RFC 9110 section 14.6 notes that
/// some clients mishandle quoted ones).
///
/// Drawn from the standard library's randomly keyed SipHash (`RandomState`,
/// seeded from the operating system, new keys for each instance), so
/// content cannot be crafted to contain the boundary; no extra dependency.
pub fn random_boundary() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let high = RandomState::new().hash_one((nanos, 1u8));
    let low = RandomState::new().hash_one((nanos, 2u8));
    format!("{high:016x}{low:016x}")
}

/// One `range-spec` of the `bytes` unit (RFC 9110 section 14.1.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum RangeSpec {
    /// `int-range = first-pos "-" [ last-pos ]`, with `last >= first`.
    Int { first: u64, last: Option<u64> },
    /// `suffix-range = "-" suffix-length`.
    Suffix(u64),
}

impl RangeSpec {
    /// The bytes this spec selects of a non-empty representation, or `None`
    /// when it is unsatisfiable (RFC 9110 section 14.1.2).
    fn resolve(self, total_len: u64) -> Option<ByteRange> {
        let last_offset = total_len.checked_sub(1)?;
        match self {
            RangeSpec::Int { first, .. } if first > last_offset => None,
            RangeSpec::Int { first, last } => Some(ByteRange {
                start: first,
                end: last.map_or(last_offset, |last| last.min(last_offset)),
            }),
            RangeSpec::Suffix(0) => None,
            RangeSpec::Suffix(length) => Some(ByteRange {
                start: total_len - length.min(total_len),
                end: last_offset,
            }),
        }
    }
}

/// Parses `ranges-specifier = range-unit "=" range-set` for the `bytes` unit
/// (RFC 9110 section 14.1.1); `None` when it is invalid or another unit.
fn parse_ranges_specifier(value: &str) -> Option<Vec<RangeSpec>> {
    let (unit, range_set) = value.trim_matches(is_ows).split_once('=')?;
    if !unit.eq_ignore_ascii_case("bytes") {
        return None;
    }
    let mut specs = Vec::new();
    for element in range_set.split(',') {
        let element = element.trim_matches(is_ows);
        if !element.is_empty() {
            specs.push(parse_range_spec(element)?);
        }
    }
    // `range-set = 1#range-spec`: at least one.
    (!specs.is_empty()).then_some(specs)
}

/// Parses one `range-spec` of the `bytes` unit (RFC 9110 section 14.1.2).
fn parse_range_spec(element: &str) -> Option<RangeSpec> {
    let (first, last) = element.split_once('-')?;
    if first.is_empty() {
        return parse_digits(last).map(RangeSpec::Suffix);
    }
    let first = parse_digits(first)?;
    let last = match last {
        "" => None,
        digits => Some(parse_digits(digits)?),
    };
    // "An int-range is invalid if the last-pos value is present and less
    // than the first-pos" (section 14.1.1).
    if last.is_some_and(|last| last < first) {
        return None;
    }
    Some(RangeSpec::Int { first, last })
}

/// `1*DIGIT` as a `u64`; `None` for anything else, including a number too
/// large for `u64` (RFC 9110 section 14.1.2 asks recipients to guard against
/// overflow).
fn parse_digits(digits: &str) -> Option<u64> {
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Merges overlapping and adjacent ranges (RFC 9110 section 15.3.7.2 "MAY
/// coalesce"); the result keeps the order of the request, each merged range
/// standing where its earliest member stood.
fn coalesce(ranges: Vec<ByteRange>) -> Vec<ByteRange> {
    let mut by_start: Vec<(ByteRange, usize)> = ranges.into_iter().zip(0..).collect();
    by_start.sort_unstable_by_key(|&(range, position)| (range.start, range.end, position));
    let mut merged: Vec<(ByteRange, usize)> = Vec::with_capacity(by_start.len());
    for (range, position) in by_start {
        match merged.last_mut() {
            Some((last, first_position)) if range.start <= last.end.saturating_add(1) => {
                last.end = last.end.max(range.end);
                *first_position = (*first_position).min(position);
            }
            _ => merged.push((range, position)),
        }
    }
    merged.sort_unstable_by_key(|&(_, position)| position);
    merged.into_iter().map(|(range, _)| range).collect()
}

/// Optional whitespace, `OWS = *( SP / HTAB )` (RFC 9110 section 5.6.3).
fn is_ows(c: char) -> bool {
    c == ' ' || c == '\t'
}

/// `tchar` of RFC 9110 section 5.6.2.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn byte_count(bytes: &[u8]) -> u64 {
    u64::try_from(bytes.len()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a case expects, with ranges as `(start, end)` pairs so that the
    /// tables can be constants.
    #[derive(Clone, Copy, Debug)]
    enum Want {
        Full,
        Partial(&'static [(u64, u64)]),
        Unsatisfiable,
    }

    impl Want {
        fn outcome(self) -> RangeOutcome {
            match self {
                Want::Full => RangeOutcome::Full,
                Want::Unsatisfiable => RangeOutcome::Unsatisfiable,
                Want::Partial(pairs) => RangeOutcome::Partial(
                    pairs
                        .iter()
                        .map(|&(start, end)| ByteRange { start, end })
                        .collect(),
                ),
            }
        }
    }

    use Want::{Full, Partial, Unsatisfiable};

    #[rustfmt::skip]
    const EVALUATE_CASES: &[(&str, Option<&str>, u64, Want)] = &[
        // (name, Range, representation length, expected)
        ("no Range header sends the whole representation", None, 10000, Full),
        // The examples of RFC 9110 section 14.1.2, on a 10000-byte representation.
        ("the first 500 bytes (RFC example)", Some("bytes=0-499"), 10000, Partial(&[(0, 499)])),
        ("the second 500 bytes (RFC example)", Some("bytes=500-999"), 10000, Partial(&[(500, 999)])),
        ("the final 500 bytes as a suffix (RFC example)", Some("bytes=-500"), 10000, Partial(&[(9500, 9999)])),
        ("the final 500 bytes as an open range (RFC example)", Some("bytes=9500-"), 10000, Partial(&[(9500, 9999)])),
        ("the first and last bytes only (RFC example)", Some("bytes=0-0,-1"), 10000, Partial(&[(0, 0), (9999, 9999)])),
        ("the first, middle and last 1000 bytes, with spaces (RFC example)", Some("bytes= 0-999, 4500-5499, -1000"), 10000, Partial(&[(0, 999), (4500, 5499), (9000, 9999)])),
        ("adjacent ranges coalesce into one (RFC example)", Some("bytes=500-600,601-999"), 10000, Partial(&[(500, 999)])),
        ("overlapping ranges coalesce into one (RFC example)", Some("bytes=500-700,601-999"), 10000, Partial(&[(500, 999)])),
        // Syntax.
        ("the unit is case-insensitive", Some("BYTES=0-1"), 10000, Partial(&[(0, 1)])),
        ("another unit is ignored", Some("items=0-1"), 10000, Full),
        ("a header without = is ignored", Some("bytes 0-1"), 10000, Full),
        ("whitespace around = is invalid", Some("bytes = 0-1"), 10000, Full),
        ("an empty range set is invalid", Some("bytes="), 10000, Full),
        ("a range set of empty elements only is invalid", Some("bytes=, ,"), 10000, Full),
        ("empty list elements are skipped", Some("bytes=, 0-1 ,,"), 10000, Partial(&[(0, 1)])),
        ("tabs around commas are optional whitespace", Some("bytes=0-1\t,\t3-4"), 10000, Partial(&[(0, 1), (3, 4)])),
        ("leading zeros are digits", Some("bytes=007-010"), 10000, Partial(&[(7, 10)])),
        ("last before first is invalid", Some("bytes=5-2"), 10000, Full),
        ("one invalid range-spec invalidates the header", Some("bytes=0-1,5-2"), 10000, Full),
        ("a word is not a range-spec", Some("bytes=abc"), 10000, Full),
        ("two dashes are invalid", Some("bytes=1-2-3"), 10000, Full),
        ("a double-dash suffix is invalid", Some("bytes=--5"), 10000, Full),
        ("a lone dash is invalid", Some("bytes=-"), 10000, Full),
        ("a plus sign is not a digit", Some("bytes=+1-2"), 10000, Full),
        ("hexadecimal is not decimal", Some("bytes=0x10-20"), 10000, Full),
        ("whitespace inside a range-spec is invalid", Some("bytes=0 - 1"), 10000, Full),
        ("parameters after a range-spec are invalid", Some("bytes=0-1;x"), 10000, Full),
        ("a first-pos past u64 is invalid, not a panic", Some("bytes=18446744073709551616-"), 10000, Full),
        ("a last-pos past u64 is invalid, not a panic", Some("bytes=0-18446744073709551616"), 10000, Full),
        ("a suffix-length past u64 is invalid, not a panic", Some("bytes=-99999999999999999999"), 10000, Full),
        // Satisfiability and clamping.
        ("a first-pos of u64::MAX is valid but unsatisfiable", Some("bytes=18446744073709551615-"), 10000, Unsatisfiable),
        ("a last-pos of u64::MAX is clamped", Some("bytes=0-18446744073709551615"), 10000, Partial(&[(0, 9999)])),
        ("a last-pos past the end is clamped to the last byte", Some("bytes=0-99999"), 10000, Partial(&[(0, 9999)])),
        ("a suffix longer than the representation selects all of it", Some("bytes=-20000"), 10000, Partial(&[(0, 9999)])),
        ("a range starting at the length is unsatisfiable", Some("bytes=10000-"), 10000, Unsatisfiable),
        ("a closed range past the end is unsatisfiable (RFC 15.5.17)", Some("bytes=10000-10500"), 10000, Unsatisfiable),
        ("a zero-length suffix is unsatisfiable", Some("bytes=-0"), 10000, Unsatisfiable),
        ("unsatisfiable ranges are dropped when others remain", Some("bytes=10000-,0-4,-0"), 10000, Partial(&[(0, 4)])),
        ("the last byte alone", Some("bytes=9999-"), 10000, Partial(&[(9999, 9999)])),
        ("the whole representation as a range is still a 206", Some("bytes=0-"), 10000, Partial(&[(0, 9999)])),
        // Order and coalescing (RFC 9110 section 15.3.7.2).
        ("parts keep the order of the request", Some("bytes=9000-9099,0-99"), 10000, Partial(&[(9000, 9099), (0, 99)])),
        ("a coalesced range stands where its earliest member stood", Some("bytes=50-59,0-9,5-14"), 10000, Partial(&[(50, 59), (0, 14)])),
        ("a range bridging two others coalesces all three", Some("bytes=0-9,20-29,5-24"), 10000, Partial(&[(0, 29)])),
        ("a range inside another disappears into it", Some("bytes=100-199,120-130"), 10000, Partial(&[(100, 199)])),
        ("duplicate ranges coalesce", Some("bytes=0-0,0-0,0-0"), 10000, Partial(&[(0, 0)])),
        ("a gap of one byte keeps ranges apart", Some("bytes=0-9,11-19"), 10000, Partial(&[(0, 9), (11, 19)])),
        ("overlapping suffix and open ranges coalesce", Some("bytes=-100,9950-"), 10000, Partial(&[(9900, 9999)])),
        // Tiny representations (RFC 9110 section 14.1.2).
        ("one byte: the range 0-0", Some("bytes=0-0"), 1, Partial(&[(0, 0)])),
        ("one byte: a suffix of one", Some("bytes=-1"), 1, Partial(&[(0, 0)])),
        ("one byte: offset 1 is unsatisfiable", Some("bytes=1-"), 1, Unsatisfiable),
        ("empty: an int-range is unsatisfiable", Some("bytes=0-"), 0, Unsatisfiable),
        ("empty: a closed int-range is unsatisfiable", Some("bytes=0-0"), 0, Unsatisfiable),
        ("empty: a zero suffix is unsatisfiable", Some("bytes=-0"), 0, Unsatisfiable),
        ("empty: a non-zero suffix is satisfiable but has no bytes, so Range is ignored", Some("bytes=-1"), 0, Full),
        ("empty: a non-zero suffix among int-ranges is still ignored", Some("bytes=0-0,-5"), 0, Full),
        ("empty: invalid syntax is still ignored", Some("bytes=5-1"), 0, Full),
    ];

    #[test]
    fn evaluate_follows_rfc_9110_14() {
        for &(name, header, total, want) in EVALUATE_CASES {
            assert_eq!(evaluate(header, total), want.outcome(), "{name}");
        }
    }

    #[test]
    fn the_number_of_parts_is_capped_after_coalescing() {
        let spaced = |count: u64| -> String {
            let specs: Vec<String> = (0..count).map(|i| format!("{}-{}", i * 2, i * 2)).collect();
            format!("bytes={}", specs.join(","))
        };
        let overlapping = format!("bytes={}", vec!["0-9"; 1000].join(","));
        let cases: Vec<(&str, String, usize)> = vec![
            (
                "MAX_RANGES disjoint ranges are served",
                spaced(50),
                MAX_RANGES,
            ),
            (
                "one more than MAX_RANGES disjoint ranges is served whole",
                spaced(51),
                0,
            ),
            (
                "many overlapping ranges coalesce under the cap",
                overlapping,
                1,
            ),
        ];
        for (name, header, parts) in cases {
            let got = evaluate(Some(&header), 10000);
            let got_parts = match &got {
                RangeOutcome::Partial(ranges) => ranges.len(),
                _ => 0,
            };
            assert_eq!(got_parts, parts, "{name}: {got:?}");
        }
    }

    #[rustfmt::skip]
    const CONTENT_RANGE_CASES: &[(&str, ByteRange, u64, u64, &str)] = &[
        // (name, range, representation length, range length, Content-Range)
        ("the RFC 9110 14.4 example", ByteRange { start: 42, end: 1233 }, 1234, 1192, "bytes 42-1233/1234"),
        ("the RFC 9110 15.3.7.1 example", ByteRange { start: 21010, end: 47021 }, 47022, 26012, "bytes 21010-47021/47022"),
        ("a one-byte range", ByteRange { start: 0, end: 0 }, 1, 1, "bytes 0-0/1"),
        ("a range built backwards is empty, not an overflow", ByteRange { start: 5, end: 4 }, 10, 0, "bytes 5-4/10"),
        ("the widest range saturates its length", ByteRange { start: 0, end: u64::MAX }, u64::MAX, u64::MAX, "bytes 0-18446744073709551615/18446744073709551615"),
    ];

    #[test]
    fn byte_ranges_describe_themselves_as_rfc_9110_14_4_says() {
        for &(name, range, total, len, content_range) in CONTENT_RANGE_CASES {
            assert_eq!(range.len(), len, "len: {name}");
            assert_eq!(range.is_empty(), len == 0, "is_empty: {name}");
            assert_eq!(range.content_range(total), content_range, "{name}");
        }
        // RFC 9110 section 15.5.17's example.
        assert_eq!(unsatisfied_content_range(47022), "bytes */47022");
        assert_eq!(unsatisfied_content_range(0), "bytes */0");
    }

    #[test]
    fn outcomes_have_stable_names() {
        let one = vec![ByteRange { start: 0, end: 0 }];
        let two = vec![
            ByteRange { start: 0, end: 0 },
            ByteRange { start: 2, end: 2 },
        ];
        let cases = [
            ("the whole representation", RangeOutcome::Full, "full"),
            ("one part", RangeOutcome::Partial(one), "partial"),
            ("several parts", RangeOutcome::Partial(two), "multipart"),
            ("416", RangeOutcome::Unsatisfiable, "unsatisfiable"),
        ];
        for (name, outcome, label) in cases {
            assert_eq!(outcome.as_str(), label, "{name}");
        }
    }

    /// The body a caller streams from `layout` over `data`.
    fn body(layout: &MultipartLayout, data: &[u8]) -> Vec<u8> {
        let mut body = Vec::new();
        for (header, range) in &layout.parts {
            body.extend_from_slice(header);
            let start = usize::try_from(range.start).expect("test range fits usize");
            let end = usize::try_from(range.end).expect("test range fits usize");
            body.extend_from_slice(&data[start..=end]);
        }
        body.extend_from_slice(&layout.trailer);
        body
    }

    #[test]
    fn the_layout_reproduces_the_rfc_9110_15_3_7_2_example() {
        // The representation: 8000 bytes of a PDF, here a repeating pattern.
        let data: Vec<u8> = (0..8000u32).map(|i| b'a' + (i % 26) as u8).collect();
        let ranges = [
            ByteRange {
                start: 500,
                end: 999,
            },
            ByteRange {
                start: 7000,
                end: 7999,
            },
        ];
        let boundary = "THIS_STRING_SEPARATES".to_string();
        let layout = multipart_layout(&ranges, 8000, "application/pdf", boundary);

        let mut expected = Vec::new();
        expected.extend_from_slice(
            b"--THIS_STRING_SEPARATES\r\n\
              Content-Type: application/pdf\r\n\
              Content-Range: bytes 500-999/8000\r\n\
              \r\n",
        );
        expected.extend_from_slice(&data[500..1000]);
        expected.extend_from_slice(
            b"\r\n--THIS_STRING_SEPARATES\r\n\
              Content-Type: application/pdf\r\n\
              Content-Range: bytes 7000-7999/8000\r\n\
              \r\n",
        );
        expected.extend_from_slice(&data[7000..8000]);
        expected.extend_from_slice(b"\r\n--THIS_STRING_SEPARATES--\r\n");

        assert_eq!(
            layout.content_type,
            "multipart/byteranges; boundary=THIS_STRING_SEPARATES"
        );
        assert_eq!(layout.boundary, "THIS_STRING_SEPARATES");
        let got = body(&layout, &data);
        assert_eq!(
            String::from_utf8_lossy(&got),
            String::from_utf8_lossy(&expected)
        );
        assert_eq!(layout.content_length, 1719);
        assert_eq!(layout.content_length, got.len() as u64);
    }

    /// (name, ranges as (start, end) pairs, part Content-Type, boundary)
    type LayoutCase = (
        &'static str,
        &'static [(u64, u64)],
        &'static str,
        &'static str,
    );

    #[rustfmt::skip]
    const LAYOUT_CASES: &[LayoutCase] = &[
        ("two ranges of a text file", &[(0, 3), (10, 25)], "text/plain; charset=utf-8", "b0undary"),
        ("three ranges out of order", &[(20, 25), (0, 0), (5, 9)], "image/png", "0123456789abcdef0123456789abcdef"),
        ("one range, should a caller ask", &[(0, 25)], "text/plain", "b"),
        ("no part Content-Type when the type is empty", &[(0, 1), (3, 4)], "", "b"),
        ("no part Content-Type when the type would break the header", &[(0, 1), (3, 4)], "text/plain\r\nX-Evil: 1", "b"),
        ("a boundary that is not a token is quoted", &[(0, 1), (3, 4)], "text/plain", "a b:c"),
    ];

    #[test]
    fn content_length_is_exactly_the_streamed_body() {
        let data = b"abcdefghijklmnopqrstuvwxyz";
        for &(name, pairs, part_type, boundary) in LAYOUT_CASES {
            let ranges: Vec<ByteRange> = pairs
                .iter()
                .map(|&(start, end)| ByteRange { start, end })
                .collect();
            let layout = multipart_layout(&ranges, 26, part_type, boundary.to_string());
            let got = body(&layout, data);
            assert_eq!(layout.content_length, got.len() as u64, "{name}");

            let text = String::from_utf8_lossy(&got);
            let delimiter = format!("--{boundary}\r\n");
            assert!(text.starts_with(&delimiter), "{name}: {text}");
            assert_eq!(text.matches(&delimiter).count(), ranges.len(), "{name}");
            assert!(text.ends_with(&format!("\r\n--{boundary}--\r\n")), "{name}");
            let type_line = format!("Content-Type: {part_type}\r\n");
            let typed = !part_type.is_empty() && !part_type.contains('\r');
            let expected_type_lines = if typed { ranges.len() } else { 0 };
            assert_eq!(
                text.matches("Content-Type:").count(),
                expected_type_lines,
                "{name}"
            );
            assert_eq!(
                text.matches(&type_line).count(),
                expected_type_lines,
                "{name}"
            );
            for range in &ranges {
                let part = format!(
                    "Content-Range: {}\r\n\r\n{}",
                    range.content_range(26),
                    String::from_utf8_lossy(&data[range.start as usize..=range.end as usize]),
                );
                assert!(text.contains(&part), "{name}: part {range:?}");
            }
            let token = boundary.bytes().all(is_tchar);
            let parameter = if token {
                format!("boundary={boundary}")
            } else {
                format!("boundary=\"{boundary}\"")
            };
            assert!(layout.content_type.ends_with(&parameter), "{name}");
        }
    }

    #[test]
    fn random_boundaries_are_fresh_tokens() {
        let boundaries: Vec<String> = (0..100).map(|_| random_boundary()).collect();
        for boundary in &boundaries {
            assert_eq!(boundary.len(), 32, "{boundary}");
            assert!(
                boundary.bytes().all(|b| b.is_ascii_hexdigit()),
                "{boundary}"
            );
        }
        let mut unique = boundaries.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), boundaries.len(), "boundaries repeat");
    }

    #[test]
    fn single_ranges_are_forwarded_in_canonical_form() {
        let cases: &[(&str, Option<&str>, Option<&str>)] = &[
            ("a closed range", Some("bytes=0-99"), Some("bytes=0-99")),
            ("an open range", Some("bytes= 100-"), Some("bytes=100-")),
            ("a suffix range", Some("BYTES=-500"), Some("bytes=-500")),
            (
                "several ranges stay at the edge",
                Some("bytes=0-1,5-6"),
                None,
            ),
            (
                "an invalid header stays at the edge",
                Some("bytes=5-1"),
                None,
            ),
            ("another unit stays at the edge", Some("items=0-1"), None),
            ("no header forwards nothing", None, None),
        ];
        for (name, header, want) in cases {
            assert_eq!(single_range_spec(*header).as_deref(), *want, "{name}");
        }
    }

    #[test]
    fn origin_content_ranges_are_checked_against_the_request() {
        assert_eq!(
            parse_content_range("bytes 0-99/1000"),
            Some((ByteRange { start: 0, end: 99 }, 1000))
        );
        for bad in [
            "bytes 0-99/*",
            "bytes 5-1/10",
            "bytes 0-10/10",
            "items 0-1/2",
            "bytes */10",
            "bytes 0-99999999999999999999/1",
        ] {
            assert_eq!(parse_content_range(bad), None, "{bad}");
        }
        assert!(spec_selects(
            "bytes=-100",
            ByteRange {
                start: 900,
                end: 999
            },
            1000
        ));
        assert!(spec_selects(
            "bytes=900-5000",
            ByteRange {
                start: 900,
                end: 999
            },
            1000
        ));
        assert!(!spec_selects(
            "bytes=0-99",
            ByteRange { start: 0, end: 199 },
            1000
        ));
    }
}
