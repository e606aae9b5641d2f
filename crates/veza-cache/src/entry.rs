//! What the cache stores per key, and how it is weighed.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use veza_core::SharedError;

/// A stored value, a cached absence (negative caching), or the error of a load that failed,
/// kept just long enough to hand it to the callers waiting on that load.
#[derive(Clone)]
///
/// Deadlines are nanoseconds on a process-wide clock ([`nanos`]; [`NEVER`] for none): 8 bytes
/// where an `Option<Instant>` takes 16, so an entry holding a `u64` is 32 bytes, not 40, and a
/// full cache touches fewer cache lines.
pub(crate) enum Slot<V> {
    Value {
        value: V,
        expires: u64,
        /// With a time to idle: the last read, in milliseconds since the cache's epoch.
        touched: Option<Arc<AtomicU64>>,
    },
    Absent {
        expires: u64,
    },
    Failed(SharedError),
}

/// No deadline.
pub(crate) const NEVER: u64 = u64::MAX;

static EPOCH: LazyLock<Instant> = LazyLock::new(Instant::now);

/// `at` in nanoseconds on the process-wide clock of deadlines (0 before its epoch).
#[inline]
pub(crate) fn nanos(at: Instant) -> u64 {
    u64::try_from(at.saturating_duration_since(*EPOCH).as_nanos()).unwrap_or(NEVER - 1)
}

/// The deadline `ttl` after `now`; [`NEVER`] for a time to live too long to count.
pub(crate) fn deadline(now: Instant, ttl: Duration) -> u64 {
    u64::try_from(ttl.as_nanos())
        .ok()
        .and_then(|ttl| nanos(now).checked_add(ttl))
        .filter(|d| *d != NEVER)
        .unwrap_or(NEVER)
}

/// The clock of time-to-idle: an epoch and the idle limit.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Idle {
    pub(crate) epoch: Instant,
    pub(crate) limit: Duration,
}

impl Idle {
    /// Milliseconds since the epoch at `now`.
    pub(crate) fn ms(&self, now: Instant) -> u64 {
        u64::try_from(now.saturating_duration_since(self.epoch).as_millis()).unwrap_or(u64::MAX)
    }
}

impl<V> Slot<V> {
    /// Whether the entry is past its time to live, or idle too long, at `now` (errors never
    /// count as fresh).
    pub(crate) fn expired(&self, now: Instant, idle: Option<Idle>) -> bool {
        match self {
            Slot::Value {
                expires, touched, ..
            } => {
                (*expires != NEVER && nanos(now) >= *expires)
                    || match (touched, idle) {
                        (Some(t), Some(idle)) => {
                            idle.ms(now).saturating_sub(t.load(Relaxed))
                                > u64::try_from(idle.limit.as_millis()).unwrap_or(u64::MAX)
                        }
                        _ => false,
                    }
            }
            Slot::Absent { expires } => *expires != NEVER && nanos(now) >= *expires,
            Slot::Failed(_) => true,
        }
    }
}

/// Weighs user values with the user's weigher; absences and errors weigh 1.
pub(crate) type WeighFn<K, V> = Arc<dyn Fn(&K, &V) -> u64 + Send + Sync>;

#[derive(Clone)]
pub(crate) struct Weigher<K, V>(pub(crate) Option<WeighFn<K, V>>);

impl<K, V> Weigher<K, V> {
    /// The weight of `slot` under `key`.
    #[inline]
    pub(crate) fn weigh(&self, key: &K, slot: &Slot<V>) -> u64 {
        match (&self.0, slot) {
            (Some(weigh), Slot::Value { value, .. }) => weigh(key, value).max(1),
            _ => 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slot_of_a_word_is_four_words_and_deadlines_saturate() {
        // Start the deadlines' clock first: an `Instant` taken before it counts as 0.
        let _ = nanos(Instant::now());
        assert!(
            std::mem::size_of::<Slot<u64>>() <= 32,
            "{}",
            std::mem::size_of::<Slot<u64>>()
        );
        let now = Instant::now();
        assert_eq!(deadline(now, Duration::MAX), NEVER);
        assert_eq!(deadline(now, Duration::from_secs(u64::MAX)), NEVER);
        let soon = deadline(now, Duration::from_millis(5));
        assert!(soon > nanos(now) && soon < NEVER);
        let slot: Slot<u64> = Slot::Absent { expires: soon };
        assert!(!slot.expired(now, None));
        assert!(slot.expired(now + Duration::from_millis(5), None));
        let never: Slot<u64> = Slot::Value {
            value: 1,
            expires: NEVER,
            touched: None,
        };
        assert!(!never.expired(now + Duration::from_secs(1 << 40), None));
    }
}
