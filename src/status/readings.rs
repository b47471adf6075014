//! What the node reads about itself when it is scraped or its status page
//! asks: the cache tiers' fill, the certificates it serves, the cluster, the
//! allocator.

use std::time::SystemTime;

use crate::metrics::{NodeReadings, TierReading, TierState};
use crate::state::AppState;

/// Reads everything [`NodeReadings`] holds.
pub fn read(state: &AppState) -> NodeReadings {
    let now = SystemTime::now();
    let (cluster_members, cluster_members_known) = cluster_members(state);
    NodeReadings {
        tiers: tiers(state),
        certificate_expiry: certificate_expiry(state, now),
        acme_certificate_valid: state.acme.validity(),
        cluster_members,
        cluster_members_known,
        allocator: allocator(),
        cache_open_files: state.cache.open_files(),
        access_log_lines_lost: state.access_log.lost(),
    }
}

/// Seconds until each served certificate expires: the site files' (through
/// the SNI resolver), then the ACME ones of sites that have none.
fn certificate_expiry(state: &AppState, now: SystemTime) -> Vec<(String, i64)> {
    let mut expiry: Vec<(String, i64)> = state
        .tls_resolver
        .current()
        .certificates()
        .into_iter()
        .filter_map(|(site, key)| {
            let leaf = key.cert.first()?;
            Some((site.to_string(), seconds_until(not_after(leaf)?, now)))
        })
        .collect();
    for (site, at) in state.acme.expiries() {
        if !expiry.iter().any(|(name, _)| *name == site) {
            expiry.push((site, seconds_until(at, now)));
        }
    }
    expiry
}

fn tiers(state: &AppState) -> Vec<TierReading> {
    state
        .cache
        .usage()
        .into_iter()
        .map(|usage| TierReading {
            tier: usage.tier,
            state: if usage.enabled {
                TierState::On
            } else {
                TierState::Off
            },
            bytes: usage.bytes,
            entries: usage.entries,
            capacity_bytes: usage.capacity,
        })
        .collect()
}

/// Members of this node's ring it sees up, and all of them, itself
/// included (1 and 1 without a cluster): `s3edge_cluster_members` and
/// `s3edge_cluster_members_known`.
fn cluster_members(state: &AppState) -> (i64, i64) {
    state.cluster.as_ref().map_or((1, 1), |c| {
        c.show_members_in_metrics();
        c.member_counts()
    })
}

/// The notAfter of a DER certificate (RFC 5280 4.1.2.5), `None` when it does
/// not parse.
pub fn not_after(der: &[u8]) -> Option<SystemTime> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let seconds = cert.validity().not_after.timestamp();
    let since_epoch = std::time::Duration::from_secs(seconds.unsigned_abs());
    if seconds >= 0 {
        SystemTime::UNIX_EPOCH.checked_add(since_epoch)
    } else {
        SystemTime::UNIX_EPOCH.checked_sub(since_epoch)
    }
}

/// Whole seconds from `now` to `then`, negative when `then` has passed.
pub fn seconds_until(then: SystemTime, now: SystemTime) -> i64 {
    match then.duration_since(now) {
        Ok(left) => i64::try_from(left.as_secs()).unwrap_or(i64::MAX),
        Err(past) => -i64::try_from(past.duration().as_secs()).unwrap_or(i64::MAX),
    }
}

/// jemalloc's own figures (the binary's global allocator): live bytes, the
/// pages holding them, what is resident, and what it keeps mapped but purged,
/// to tell cache bodies from allocator overhead when RSS is over the budget.
/// Nothing when jemalloc is not the allocator in use (tests, other targets).
fn allocator() -> Vec<(&'static str, u64)> {
    #[cfg(not(target_env = "msvc"))]
    {
        use tikv_jemalloc_ctl::{epoch, stats};
        if epoch::advance().is_err() {
            return Vec::new();
        }
        let figures = [
            ("allocated", stats::allocated::read()),
            ("active", stats::active::read()),
            ("resident", stats::resident::read()),
            ("metadata", stats::metadata::read()),
            ("retained", stats::retained::read()),
        ];
        if figures
            .iter()
            .all(|(_, value)| value.as_ref().map_or(true, |v| *v == 0))
        {
            return Vec::new();
        }
        figures
            .into_iter()
            .filter_map(|(kind, value)| Some((kind, u64::try_from(value.ok()?).ok()?)))
            .collect()
    }
    #[cfg(target_env = "msvc")]
    Vec::new()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn seconds_until_is_negative_once_passed() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1000);
        assert_eq!(seconds_until(now + Duration::from_secs(60), now), 60);
        assert_eq!(seconds_until(now - Duration::from_secs(60), now), -60);
        assert_eq!(seconds_until(now, now), 0);
    }

    #[test]
    fn not_after_is_read_from_the_certificate() {
        let mut params = rcgen::CertificateParams::new(vec!["a.test".to_string()]).unwrap();
        params.not_after = rcgen::date_time_ymd(2031, 3, 4);
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let expected = SystemTime::UNIX_EPOCH + Duration::from_secs(1_930_348_800);
        assert_eq!(not_after(cert.der()), Some(expected));
        assert_eq!(not_after(b"not a certificate"), None);
    }
}
