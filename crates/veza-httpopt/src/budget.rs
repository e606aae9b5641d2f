//! The retry budget: retries allowed as a fraction of the requests of the last `ttl`, plus a
//! floor per second so that a quiet client can still retry.
//!
//! The scheme is tower's `TpsBudget` (its amounts, reserve and window), which the client used
//! before. Tower's takes one process-wide lock and reads the clock on every deposit, that is on
//! every request of every thread; this one is told the time (the request's start, read
//! anyway) and takes its lock only when a window turns, at most once per window whatever the
//! traffic. It also never walks more than its windows after a long idle time (tower's clears
//! one slot per elapsed window, an hour idle being 3,600 steps under its lock).

use std::sync::Mutex;
use std::sync::atomic::{AtomicIsize, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Windows the `ttl` is split into, as tower does.
const WINDOWS: u32 = 10;
/// Slots: the windows of the `ttl` committed, and the one the next turn writes (cleared).
const SLOTS: usize = WINDOWS as usize + 1;

pub(crate) struct RetryBudget {
    /// The origin of `turned`.
    base: Instant,
    /// Nanoseconds from `base` to the start of the current window.
    turned: AtomicU64,
    /// The slot the current window is committed to when it ends; changed under this lock.
    index: Mutex<usize>,
    /// Past windows' balances (deposits less withdrawals), oldest overwritten first.
    slots: [AtomicIsize; SLOTS],
    /// The current window's balance.
    writer: AtomicIsize,
    /// What `min_per_sec` allows over the `ttl`, in withdrawal units.
    reserve: isize,
    /// One window, in nanoseconds (at least 100 ms: `ttl` is at least a second).
    window: u64,
    deposit: isize,
    withdraw: isize,
}

impl std::fmt::Debug for RetryBudget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RetryBudget")
            .field("deposit", &self.deposit)
            .field("withdraw", &self.withdraw)
            .field("balance", &self.balance())
            .finish()
    }
}

impl RetryBudget {
    /// A budget over `ttl` (1 to 60 s), allowing `ratio` retries per request (0 to 1000) and
    /// `min_per_sec` whatever the traffic, starting at `now`. The arguments are checked by
    /// `Config::validate`; out of range, they are clamped.
    pub(crate) fn new(ttl: Duration, min_per_sec: u32, ratio: f32, now: Instant) -> Self {
        let ttl = ttl.clamp(Duration::from_secs(1), Duration::from_secs(60));
        let ratio = if ratio.is_nan() {
            0.0
        } else {
            ratio.clamp(0.0, 1000.0)
        };
        // Whole units, as tower counts them: a deposit of 1 and a withdrawal of 1/ratio, or
        // 1000 and 1000/ratio past a ratio of 1.
        let (deposit, withdraw) = if ratio == 0.0 {
            (0, 1)
        } else if ratio <= 1.0 {
            (1, ((1.0 / ratio) as isize).max(1))
        } else {
            (1000, ((1000.0 / ratio) as isize).max(1))
        };
        let reserve = (min_per_sec.min(i32::MAX as u32) as isize)
            .saturating_mul(ttl.as_secs() as isize)
            .saturating_mul(withdraw);
        RetryBudget {
            base: now,
            turned: AtomicU64::new(0),
            index: Mutex::new(0),
            slots: std::array::from_fn(|_| AtomicIsize::new(0)),
            writer: AtomicIsize::new(0),
            reserve,
            window: (ttl / WINDOWS).as_nanos() as u64,
            deposit,
            withdraw,
        }
    }

    /// A request was sent at `now`.
    pub(crate) fn deposit(&self, now: Instant) {
        if self.deposit != 0 {
            self.turn(now);
            self.writer.fetch_add(self.deposit, Ordering::Relaxed);
        }
    }

    /// Asks for one retry at `now`; `false` when the budget is spent.
    pub(crate) fn withdraw(&self, now: Instant) -> bool {
        self.turn(now);
        if self.balance() >= self.withdraw {
            self.writer.fetch_sub(self.withdraw, Ordering::Relaxed);
            true
        } else {
            false
        }
    }

    fn balance(&self) -> isize {
        self.slots
            .iter()
            .map(|s| s.load(Ordering::Relaxed))
            .fold(self.writer.load(Ordering::Relaxed), isize::saturating_add)
            .saturating_add(self.reserve)
    }

    /// Commits the current window when it has ended, and forgets the windows older than the
    /// `ttl`. One thread does it; the others go on meanwhile (their deposits land in the
    /// window that ends, or in the next: both are recent).
    fn turn(&self, now: Instant) {
        let at = now.saturating_duration_since(self.base).as_nanos();
        let at = u64::try_from(at).unwrap_or(u64::MAX);
        if at.saturating_sub(self.turned.load(Ordering::Acquire)) < self.window {
            return;
        }
        let mut index = match self.index.try_lock() {
            Ok(guard) => guard,
            // Nothing under the lock panics; a poisoned lock still guards a sound index.
            Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) => return,
        };
        let turned = self.turned.load(Ordering::Acquire);
        let passed = at.saturating_sub(turned) / self.window;
        if passed == 0 {
            return; // turned by another thread meanwhile
        }
        self.slots[*index].store(self.writer.swap(0, Ordering::Relaxed), Ordering::Relaxed);
        // Windows without a request are empty; past `SLOTS` of them, every slot is.
        for _ in 0..passed.min(SLOTS as u64) {
            *index = (*index + 1) % SLOTS;
            self.slots[*index].store(0, Ordering::Relaxed);
        }
        let turned = turned.saturating_add(passed.saturating_mul(self.window));
        self.turned.store(turned, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TTL: Duration = Duration::from_secs(10);

    fn secs(t0: Instant, s: f64) -> Instant {
        t0 + Duration::from_secs_f64(s)
    }

    #[test]
    fn the_floor_allows_min_per_sec_over_the_ttl_without_traffic() {
        let t0 = Instant::now();
        let b = RetryBudget::new(TTL, 1, 0.0, t0);
        for i in 0..10 {
            assert!(b.withdraw(t0), "retry {i}");
        }
        assert!(!b.withdraw(t0));
        // A ratio of zero deposits nothing.
        for _ in 0..100 {
            b.deposit(t0);
        }
        assert!(!b.withdraw(t0));
    }

    #[test]
    fn the_ratio_allows_a_fraction_of_recent_requests() {
        let t0 = Instant::now();
        let b = RetryBudget::new(TTL, 0, 0.2, t0);
        assert!(!b.withdraw(t0));
        for _ in 0..10 {
            b.deposit(t0);
        }
        assert!(b.withdraw(t0));
        assert!(b.withdraw(t0));
        assert!(!b.withdraw(t0), "two retries for ten requests at 0.2");
        // Ratios above one: more retries than requests.
        let b = RetryBudget::new(TTL, 0, 2.0, t0);
        for _ in 0..3 {
            b.deposit(t0);
        }
        for i in 0..6 {
            assert!(b.withdraw(t0), "retry {i}");
        }
        assert!(!b.withdraw(t0));
    }

    #[test]
    fn deposits_count_for_the_ttl_then_expire() {
        let t0 = Instant::now();
        let b = RetryBudget::new(TTL, 0, 1.0, t0);
        for _ in 0..5 {
            b.deposit(t0);
        }
        // Still there after windows turn within the ttl.
        for s in [0.5, 1.5, 4.0, 9.0] {
            assert_eq!(b.balance(), 5, "at {s} s");
            b.turn(secs(t0, s));
            assert_eq!(b.balance(), 5, "at {s} s");
        }
        b.deposit(secs(t0, 9.5));
        assert_eq!(b.balance(), 6);
        // The first five are older than the ttl at 11 s; the sixth is not.
        assert!(b.withdraw(secs(t0, 11.2)));
        assert!(!b.withdraw(secs(t0, 11.2)));
        assert_eq!(b.balance(), 0);
        // And after a long idle time nothing is left, in one turn.
        b.deposit(secs(t0, 12.0));
        assert_eq!(b.balance(), 1);
        assert!(!b.withdraw(secs(t0, 7200.0)));
        assert_eq!(b.balance(), 0);
        b.deposit(secs(t0, 7200.5));
        assert!(b.withdraw(secs(t0, 7201.0)));
    }

    #[test]
    fn a_time_before_the_start_or_far_ahead_is_not_an_error() {
        let t0 = Instant::now() + Duration::from_secs(5);
        let b = RetryBudget::new(TTL, 0, 1.0, t0);
        b.deposit(t0 - Duration::from_secs(5));
        assert!(b.withdraw(t0 - Duration::from_secs(1)));
        b.deposit(t0 + Duration::from_secs(u64::from(u32::MAX)));
        assert!(b.withdraw(t0 + Duration::from_secs(u64::from(u32::MAX))));
        // Out-of-range arguments are clamped, not a panic.
        let b = RetryBudget::new(Duration::ZERO, u32::MAX, f32::NAN, t0);
        assert!(b.withdraw(t0));
    }

    #[test]
    fn deposits_from_many_threads_all_count() {
        let t0 = Instant::now();
        let b = RetryBudget::new(TTL, 0, 1.0, t0);
        std::thread::scope(|s| {
            for t in 0..4 {
                let b = &b;
                s.spawn(move || {
                    for i in 0..10_000u32 {
                        // Times spread over 9 s, so windows turn while others deposit.
                        let at = t0 + Duration::from_micros(u64::from(i) * 900 + t);
                        b.deposit(at);
                    }
                });
            }
        });
        assert_eq!(b.balance(), 40_000);
    }
}
