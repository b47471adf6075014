//! When to renew a certificate and how long to wait after a failure: pure
//! functions of the certificate's dates and the attempt count.

use std::time::{Duration, SystemTime};

/// Renewal starts this long before expiry, unless the certificate is short-lived.
pub const RENEW_BEFORE_EXPIRY: Duration = Duration::from_secs(30 * 86_400);

/// The first retry after a failed order waits this long (then doubles).
pub const DEFAULT_RETRY_MIN: Duration = Duration::from_secs(120);
/// Retries never wait longer than this.
pub const DEFAULT_RETRY_MAX: Duration = Duration::from_secs(3600);

/// When a certificate valid from `not_before` to `not_after` should be replaced:
/// 30 days before expiry, or, for a certificate whose whole lifetime is shorter
/// than 90 days, when a third of its lifetime is left (two thirds elapsed).
/// Let's Encrypt's 90-day certificates renew at day 60 either way; its 6-day
/// certificates at day 4. A certificate whose dates are inverted is due at once.
pub fn renewal_time(not_before: SystemTime, not_after: SystemTime) -> SystemTime {
    let Ok(lifetime) = not_after.duration_since(not_before) else {
        return not_before;
    };
    not_after - RENEW_BEFORE_EXPIRY.min(lifetime / 3)
}

/// How long to wait before attempt `failures + 1` after `failures` consecutive
/// failures: `min`, doubled after each failure, capped at `max`. With the
/// defaults (2 min to 1 h) a name fails at most 5 validations in its first
/// hour, within Let's Encrypt's "5 failed validations per hour" limit.
pub fn retry_delay(failures: u32, min: Duration, max: Duration) -> Duration {
    let factor = 1u32 << failures.saturating_sub(1).min(20);
    min.saturating_mul(factor).min(max)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: Duration = Duration::from_secs(86_400);

    fn at(days: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + DAY * days as u32
    }

    #[test]
    fn renewal_starts_thirty_days_before_expiry_or_at_two_thirds_of_a_short_lifetime() {
        let cases = [
            ("a 90-day certificate renews at day 60", 0, 90, at(60)),
            (
                "a one-year certificate renews 30 days before expiry",
                0,
                365,
                at(335),
            ),
            ("a 6-day certificate renews at day 4", 0, 6, at(4)),
            ("inverted dates are due at once", 10, 5, at(10)),
        ];
        for (name, from, to, expected) in cases {
            assert_eq!(renewal_time(at(from), at(to)), expected, "{name}");
        }
        let short = renewal_time(
            SystemTime::UNIX_EPOCH,
            SystemTime::UNIX_EPOCH + Duration::from_secs(30),
        );
        assert_eq!(
            short,
            SystemTime::UNIX_EPOCH + Duration::from_secs(20),
            "a 30 s certificate renews after 20 s"
        );
    }

    #[test]
    fn retries_double_from_the_minimum_up_to_the_maximum() {
        let min = Duration::from_secs(120);
        let max = Duration::from_secs(3600);
        let delays: Vec<u64> = (1..=7)
            .map(|n| retry_delay(n, min, max).as_secs())
            .collect();
        assert_eq!(delays, vec![120, 240, 480, 960, 1920, 3600, 3600]);
        assert_eq!(
            retry_delay(0, min, max),
            min,
            "no failure yet waits the minimum"
        );
        assert_eq!(
            retry_delay(u32::MAX, min, max),
            max,
            "many failures never overflow"
        );
    }
}
