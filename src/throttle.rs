//! At most one log line per interval for errors that come in floods (a disk
//! that refuses writes, a sink that stalls, a directory the process cannot
//! write): the first is said at once, then one per interval.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

/// When a line was last let through, in seconds since the epoch (0: never).
#[derive(Debug, Default)]
pub struct Throttle(AtomicU64);

impl Throttle {
    pub const fn new() -> Throttle {
        Throttle(AtomicU64::new(0))
    }

    /// Whether a line may be said now: none was in the last `every`. Of
    /// callers racing, one gets `true`.
    pub fn ready(&self, every: Duration) -> bool {
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(1, |d| d.as_secs().max(1));
        let last = self.0.load(Ordering::Relaxed);
        (last == 0 || now >= last.saturating_add(every.as_secs()))
            && self
                .0
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_line_passes_then_none_until_the_interval_is_over() {
        let throttle = Throttle::new();
        assert!(throttle.ready(Duration::from_secs(60)));
        assert!(!throttle.ready(Duration::from_secs(60)));
        assert!(!throttle.ready(Duration::from_secs(60)));
        // An interval of zero lets every line through.
        assert!(Throttle::new().ready(Duration::ZERO));
        let open = Throttle::new();
        assert!(open.ready(Duration::ZERO) && open.ready(Duration::ZERO));
    }
}
