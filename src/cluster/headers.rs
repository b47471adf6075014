//! The header fields nodes exchange, as pure functions: `CDN-Loop` (RFC 8586)
//! and `Cache-Status` chaining (RFC 9211).

use std::borrow::Cow;

use crate::cache::CacheOutcome;

/// The cache name a single node uses in `Cache-Status`; a cluster node uses
/// its `--node-id` instead, so each hop of a chain is named.
const SINGLE_NODE_NAME: &str = "s3edge";

/// Whether `id` can name a node in `CDN-Loop` and `Cache-Status`: an RFC 9110
/// token (section 5.6.2), which both fields accept as they are (RFC 8586
/// section 2 `pseudonym`, RFC 9211 section 2 `sf-token` for the common cases).
pub fn is_valid_node_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 255
        && id.bytes().all(|b| {
            b.is_ascii_alphanumeric()
                || matches!(
                    b,
                    b'!' | b'#'
                        | b'$'
                        | b'%'
                        | b'&'
                        | b'\''
                        | b'*'
                        | b'+'
                        | b'-'
                        | b'.'
                        | b'^'
                        | b'_'
                        | b'`'
                        | b'|'
                        | b'~'
                )
        })
}

/// The node ids a request has passed, from its `CDN-Loop` field values
/// (RFC 8586 section 2: `cdn-info = cdn-id *( OWS ";" OWS parameter )`,
/// comma-separated, possibly over several field lines). Parameters are
/// dropped; empty members are skipped; at most [`MAX_HOPS`] are kept.
pub fn cdn_loop_ids<'a>(values: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    values
        .into_iter()
        .flat_map(members)
        .map(|member| member.split(';').next().unwrap_or("").trim())
        .filter(|id| !id.is_empty())
        .take(MAX_HOPS)
        .map(str::to_string)
        .collect()
}

/// The comma-separated members of a field value, a comma inside a quoted
/// parameter value (`cdn; note="a, b"`) not separating them.
fn members(value: &str) -> impl Iterator<Item = &str> {
    let mut quoted = false;
    let mut escaped = false;
    let mut start = 0;
    let mut cuts = Vec::new();
    for (i, c) in value.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            ',' if !quoted => {
                cuts.push(&value[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    cuts.push(&value[start..]);
    cuts.into_iter()
}

/// Most `CDN-Loop` members read from a request: a longer chain is a loop
/// anyway ([`has_looped`]), and the field stays small.
pub const MAX_HOPS: usize = 32;

/// Whether a request whose `CDN-Loop` field values are `values` has been
/// through `own` already, or through more than [`MAX_HOPS`] CDNs: every
/// member is read (a list cut to its first members hid this node's own id
/// behind 32 others, and the request went round until a timeout).
pub fn has_looped<'a>(values: impl IntoIterator<Item = &'a str>, own: &str) -> bool {
    let mut count = 0;
    for value in values {
        for member in members(value) {
            let id = member.split(';').next().unwrap_or("").trim();
            if id.is_empty() {
                continue;
            }
            count += 1;
            if id == own || count > MAX_HOPS {
                return true;
            }
        }
    }
    false
}

/// The `CDN-Loop` value a node sends on: what it received, then itself.
pub fn cdn_loop_value(passed: &[String], own: &str) -> String {
    let mut ids: Vec<&str> = passed.iter().map(String::as_str).collect();
    ids.push(own);
    ids.join(", ")
}

/// This node's `Cache-Status` for a response, after the farther caches'
/// (`upstream`, as a peer or parent sent it): RFC 9211 section 2 lists the
/// cache nearest the origin first and the one nearest the user last. `name`
/// is the node id in a cluster; a single node calls itself `s3edge`.
pub fn cache_status(
    name: Option<&str>,
    outcome: CacheOutcome,
    upstream: Option<&str>,
) -> Cow<'static, str> {
    let own = outcome.cache_status();
    let own: Cow<'static, str> = match name {
        None => Cow::Borrowed(own),
        Some(name) => {
            let params = own.strip_prefix(SINGLE_NODE_NAME).unwrap_or(own);
            Cow::Owned(format!("{name}{params}"))
        }
    };
    match upstream.map(str::trim).filter(|u| !u.is_empty()) {
        None => own,
        Some(upstream) => Cow::Owned(format!("{upstream}, {own}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cdn_loop_members_are_read_without_their_parameters() {
        let cases: &[(&[&str], &[&str])] = &[
            (&["edge-1"], &["edge-1"]),
            (&["edge-1, edge-2"], &["edge-1", "edge-2"]),
            (&["edge-1; v=1, shield-1 ;x=\"a\""], &["edge-1", "shield-1"]),
            (&["a", "b,c"], &["a", "b", "c"]),
            (&[" , ,"], &[]),
            (&[""], &[]),
        ];
        for (values, expected) in cases {
            assert_eq!(
                cdn_loop_ids(values.iter().copied()),
                expected.to_vec(),
                "{values:?}"
            );
        }
    }

    #[test]
    fn a_hostile_cdn_loop_is_cut_to_a_bounded_list() {
        let long = "x,".repeat(10_000);
        assert_eq!(cdn_loop_ids([long.as_str()]).len(), MAX_HOPS);
    }

    /// This node's id after 32 others is found, and a chain longer than
    /// MAX_HOPS is a loop whoever is in it.
    #[test]
    fn a_loop_is_seen_behind_any_number_of_members() {
        let others: Vec<String> = (0..40).map(|i| format!("cdn-{i}")).collect();
        let behind = format!("{}, edge-1", others[..32].join(", "));
        assert!(has_looped([behind.as_str()], "edge-1"));
        assert!(has_looped([others.join(", ").as_str()], "edge-1"));
        let short = others[..5].join(", ");
        assert!(!has_looped([short.as_str(), "x; v=1"], "edge-1"));
        assert!(has_looped(["a", "edge-1 ; p=2"], "edge-1"));
        assert!(!has_looped([" , ,", ""], "edge-1"));
        // One CDN whose parameter holds commas is one member.
        let note = format!("fastly; note=\"{}\"", "w, ".repeat(40));
        assert!(!has_looped([note.as_str()], "edge-1"));
        assert_eq!(
            cdn_loop_ids([note.as_str(), "edge-2"]),
            ["fastly", "edge-2"]
        );
        let escaped = r#"a; q="x\", edge-1", b"#;
        assert_eq!(cdn_loop_ids([escaped]), ["a", "b"]);
    }

    #[test]
    fn the_loop_value_sent_on_ends_with_this_node() {
        assert_eq!(cdn_loop_value(&[], "edge-1"), "edge-1");
        assert_eq!(
            cdn_loop_value(&["edge-1".to_string()], "shield-1"),
            "edge-1, shield-1"
        );
    }

    #[test]
    fn cache_status_names_the_node_and_puts_the_farther_cache_first() {
        let hit = CacheOutcome::Hit;
        let miss = CacheOutcome::Miss { stored: true };
        assert_eq!(cache_status(None, hit, None), "s3edge; hit");
        assert_eq!(cache_status(Some("edge-1"), hit, None), "edge-1; hit");
        assert_eq!(
            cache_status(Some("edge-1"), miss, Some("edge-2; hit")),
            "edge-2; hit, edge-1; fwd=miss; stored"
        );
        assert_eq!(
            cache_status(
                Some("edge-1"),
                hit,
                Some("shield; fwd=miss; stored, edge-2; hit")
            ),
            "shield; fwd=miss; stored, edge-2; hit, edge-1; hit"
        );
        assert_eq!(cache_status(Some("e"), hit, Some("  ")), "e; hit");
    }

    #[test]
    fn node_ids_must_be_tokens() {
        for good in ["edge-1", "shield.eu-west", "n_1", "a"] {
            assert!(is_valid_node_id(good), "{good}");
        }
        for bad in ["", "edge 1", "a,b", "a;b", "é", "a\"b", &"x".repeat(256)] {
            assert!(!is_valid_node_id(bad), "{bad}");
        }
    }
}
