//! Release ids: a DNS label, so that `<id>.preview.example.com` can name one.

use std::fmt;
use std::sync::Arc;

/// Longest release id: one DNS label (RFC 1035 section 2.3.4).
pub const MAX_RELEASE_ID_LEN: usize = 63;

/// A valid release id: 1 to 63 lowercase letters, digits and `-`, not starting
/// or ending with `-` (a DNS label, since hosts are compared in lowercase).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ReleaseId(Arc<str>);

/// Why a text is not a release id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a release id: use 1 to 63 lowercase letters, digits and `-`, not first or last (it is a DNS label in preview hosts)")]
pub struct InvalidReleaseId(pub String);

impl ReleaseId {
    pub fn parse(text: &str) -> Result<ReleaseId, InvalidReleaseId> {
        let valid = !text.is_empty()
            && text.len() <= MAX_RELEASE_ID_LEN
            && !text.starts_with('-')
            && !text.ends_with('-')
            && text
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if valid {
            Ok(ReleaseId(Arc::from(text)))
        } else {
            Err(InvalidReleaseId(text.chars().take(80).collect()))
        }
    }

    /// The default id of a new release: its UTC time and a short hash of its
    /// content, `20261128-142501-3fa9c2d1` (sorts by time).
    pub fn generate(now: time::OffsetDateTime, content_hash: &[u8]) -> ReleaseId {
        let now = now.to_offset(time::UtcOffset::UTC);
        let hash: String = content_hash
            .iter()
            .take(4)
            .map(|b| format!("{b:02x}"))
            .collect();
        ReleaseId(Arc::from(format!(
            "{:04}{:02}{:02}-{:02}{:02}{:02}-{hash}",
            now.year(),
            u8::from(now.month()),
            now.day(),
            now.hour(),
            now.minute(),
            now.second()
        )))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ReleaseId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_dns_labels() {
        let cases: &[(&str, &str, bool)] = &[
            ("a generated id is valid", "20261128-142501-3fa9c2d1", true),
            ("a short name is valid", "v2", true),
            ("uppercase is refused (hosts are lowercase)", "V2", false),
            ("a dot is refused (it would be two labels)", "a.b", false),
            ("a slash is refused (it would be a folder)", "a/b", false),
            ("a leading hyphen is refused", "-a", false),
            ("a trailing hyphen is refused", "a-", false),
            ("the empty id is refused", "", false),
            ("64 characters are too many", &"a".repeat(64), false),
            ("63 characters are enough", &"a".repeat(63), true),
        ];
        for (name, text, valid) in cases {
            assert_eq!(ReleaseId::parse(text).is_ok(), *valid, "{name}");
        }
    }

    #[test]
    fn a_generated_id_is_the_utc_time_and_the_hash() {
        let now = time::OffsetDateTime::from_unix_timestamp(1_795_000_000).expect("time");
        let id = ReleaseId::generate(now, &[0x3f, 0xa9, 0xc2, 0xd1, 0xff]);
        assert_eq!(id.as_str(), "20261118-110640-3fa9c2d1");
        assert!(ReleaseId::parse(id.as_str()).is_ok());
    }
}
