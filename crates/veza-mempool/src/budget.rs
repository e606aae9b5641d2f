//! [`MemoryBudget`]: a byte budget, the process's usage against it, and pressure levels that
//! pools and caches subscribe to.

use std::fmt;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, PoisonError, Weak, mpsc};
use std::thread::JoinHandle;
use std::time::Duration;

use metrics::{Counter, Gauge};
use veza_core::catalog::memory as catalog;
use veza_core::publish::{Late, Publish};
use veza_core::{Classify, ErrorKind};

use crate::alloc::CountingAllocator;
use crate::cgroup::Cgroup;
use crate::error::ConfigError;

/// How close usage is to the budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum Pressure {
    /// Below the high threshold (default 80%).
    Normal = 0,
    /// At or above the high threshold: shrink caches and pools.
    High = 1,
    /// At or above the critical threshold (default 100%): keep nothing optional.
    Critical = 2,
}

impl Pressure {
    pub(crate) fn from_u8(v: u8) -> Pressure {
        match v {
            0 => Pressure::Normal,
            1 => Pressure::High,
            _ => Pressure::Critical,
        }
    }

    /// `"normal"`, `"high"` or `"critical"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Pressure::Normal => "normal",
            Pressure::High => "high",
            Pressure::Critical => "critical",
        }
    }
}

impl fmt::Display for Pressure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A change of pressure level, as subscribers receive it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PressureChange {
    /// The level before.
    pub from: Pressure,
    /// The level now.
    pub to: Pressure,
    /// The usage that caused it, in bytes.
    pub used: u64,
    /// The budget, in bytes.
    pub limit: u64,
}

/// Something that shrinks under memory pressure: the pools of this crate, or a cache (call
/// its shrink method from here).
pub trait Trim: Send + Sync {
    /// The pressure level changed to `pressure`; also called once when attached.
    fn on_pressure(&self, pressure: Pressure);
}

/// Where the usage counted against the budget comes from.
#[derive(Clone)]
#[non_exhaustive]
pub enum UsageSource {
    /// The resident set size of the process (`/proc/self/statm` on Linux; unsupported
    /// elsewhere, where sampling returns an error).
    ResidentSet,
    /// Heap bytes in use, exact, from a [`CountingAllocator`] installed as the global allocator.
    Heap(&'static CountingAllocator),
    /// Any other measure, in bytes; `None` when it cannot be read.
    Custom(Arc<dyn Fn() -> Option<u64> + Send + Sync>),
    /// The working set of a control group ([`Cgroup::working_set`]): what a container's
    /// limit is enforced against.
    Cgroup(Cgroup),
}

impl fmt::Debug for UsageSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            UsageSource::ResidentSet => "ResidentSet",
            UsageSource::Heap(_) => "Heap",
            UsageSource::Custom(_) => "Custom",
            UsageSource::Cgroup(_) => "Cgroup",
        })
    }
}

impl UsageSource {
    fn read(&self) -> Result<u64, UsageError> {
        match self {
            UsageSource::ResidentSet => resident_set_bytes(),
            UsageSource::Heap(alloc) => Ok(alloc.allocated() as u64),
            UsageSource::Custom(f) => {
                f().ok_or(UsageError("the custom usage source gave no value"))
            }
            UsageSource::Cgroup(cgroup) => cgroup.working_set(),
        }
    }
}

/// The usage could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageError(pub(crate) &'static str);

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot read memory usage: {}", self.0)
    }
}

impl std::error::Error for UsageError {}

impl Classify for UsageError {
    fn kind(&self) -> ErrorKind {
        ErrorKind::Unavailable
    }
}

type Callback = Arc<dyn Fn(PressureChange) + Send + Sync>;

/// A memory budget with pressure levels.
///
/// [`sample`](MemoryBudget::sample) reads the usage, works out the level (normal below 80% of
/// the limit, high from 80%, critical from 100%; both thresholds configurable) and, when the
/// level changed, tells every subscriber: callbacks, channels, and attached pools, which trim
/// themselves (see [`Trim`]). [`start`](MemoryBudget::start) samples on an interval (30 s by
/// default, as in the guide) on a background thread. The budget, usage and level are exported
/// as the `memory_budget_*` and `memory_pressure_*` catalog metrics.
///
/// A cheap handle: `MemoryBudget` is `Clone` (one `Arc`); clones share the level, the
/// subscribers and the attached pools. A [`Monitor`] samples for as long as a clone lives
/// and it is not dropped.
#[derive(Clone)]
pub struct MemoryBudget {
    s: Arc<Shared>,
}

struct Shared {
    limit: u64,
    high: f64,
    critical: f64,
    source: UsageSource,
    level: AtomicU8,
    used: AtomicU64,
    callbacks: Mutex<Vec<Callback>>,
    trims: Mutex<Vec<Weak<dyn Trim>>>,
    /// Level changes so far, by the level reached.
    changes: [AtomicU64; 3],
    /// Pressure stall thresholds, for budgets on a cgroup.
    stall: Option<StallWatch>,
    metrics: Late<BudgetMetrics>,
}

/// Reads a cgroup's pressure stall at each sample: `some` past `high` percent is at least
/// high pressure, `full` past `critical` percent is critical.
struct StallWatch {
    cgroup: Cgroup,
    high: f64,
    critical: f64,
}

impl StallWatch {
    fn level(&self) -> Pressure {
        match self.cgroup.stall() {
            Some(s) if s.full_avg10 >= self.critical => Pressure::Critical,
            Some(s) if s.some_avg10 >= self.high => Pressure::High,
            _ => Pressure::Normal,
        }
    }
}

struct BudgetMetrics {
    budget: Gauge,
    used: Gauge,
    level: Gauge,
    changes: [Counter; 3],
}

impl BudgetMetrics {
    fn new() -> BudgetMetrics {
        BudgetMetrics {
            budget: metrics::gauge!(catalog::BUDGET.name),
            used: metrics::gauge!(catalog::BUDGET_USED.name),
            level: metrics::gauge!(catalog::PRESSURE_LEVEL.name),
            changes: [Pressure::Normal, Pressure::High, Pressure::Critical]
                .map(|p| metrics::counter!(catalog::PRESSURE_CHANGES.name, "level" => p.as_str())),
        }
    }
}

impl Publish for Shared {
    fn publish(&self) {
        self.metrics.refresh(BudgetMetrics::new);
        let m = self.metrics.get();
        m.budget.set(self.limit as f64);
        m.used.set(self.used.load(Relaxed) as f64);
        m.level.set(f64::from(self.level.load(Relaxed)));
        for (counter, n) in m.changes.iter().zip(&self.changes) {
            counter.absolute(n.load(Relaxed));
        }
    }
}

/// What a [`MemoryBudget`] can [`attach`](MemoryBudget::attach): a pool (or a clone of one),
/// or any `Arc` of a [`Trim`]. It is held weakly: dropping the target (its last clone)
/// detaches it.
pub trait Attach {
    /// A weak reference to what is told of each change of level.
    fn trim_target(&self) -> Weak<dyn Trim>;
}

impl<T: Trim + 'static> Attach for Arc<T> {
    fn trim_target(&self) -> Weak<dyn Trim> {
        Arc::downgrade(self) as Weak<dyn Trim>
    }
}

impl MemoryBudget {
    /// A budget of `limit` bytes measured on the resident set, with the default thresholds.
    pub fn new(limit: u64) -> Result<MemoryBudget, ConfigError> {
        MemoryBudget::with_source(limit, UsageSource::ResidentSet)
    }

    /// A budget of `limit` bytes measured by `source`.
    pub fn with_source(limit: u64, source: UsageSource) -> Result<MemoryBudget, ConfigError> {
        MemoryBudget::with_thresholds(limit, source, 0.8, 1.0)
    }

    /// A budget with these settings (see [`BudgetConfig`](crate::BudgetConfig); from a file
    /// with the `serde` feature), measured by `source`. Start it with
    /// `budget.start(config.interval)`.
    pub fn from_config(
        config: &crate::BudgetConfig,
        source: UsageSource,
    ) -> Result<MemoryBudget, ConfigError> {
        MemoryBudget::with_thresholds(config.limit_bytes, source, config.high, config.critical)
    }

    /// A budget with its high and critical thresholds as fractions of `limit`
    /// (`0 < high <= critical`).
    pub fn with_thresholds(
        limit: u64,
        source: UsageSource,
        high: f64,
        critical: f64,
    ) -> Result<MemoryBudget, ConfigError> {
        MemoryBudget::build(limit, source, high, critical, None)
    }

    /// A budget inside a container: on `cgroup`'s working set, limited to its memory limit
    /// (or to `config.limit_bytes` when that is set and smaller), and at least at high or
    /// critical pressure while the kernel reports tasks stalled on memory (PSI, see
    /// [`BudgetConfig::stall_high`](crate::BudgetConfig::stall_high)), so pools and caches
    /// shrink before the OOM killer acts.
    ///
    /// ```no_run
    /// use veza_mempool::{BudgetConfig, Cgroup, MemoryBudget};
    /// let cgroup = Cgroup::current().ok_or("not in a memory cgroup")?;
    /// let budget = MemoryBudget::for_cgroup(&cgroup, &BudgetConfig::default())?;
    /// let _sampling = budget.start(std::time::Duration::from_secs(5));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn for_cgroup(
        cgroup: &Cgroup,
        config: &crate::BudgetConfig,
    ) -> Result<MemoryBudget, ConfigError> {
        let limit = cgroup
            .limit()
            .map_err(|_| ConfigError("the cgroup's memory limit cannot be read"))?;
        let limit = match (limit, config.limit_bytes) {
            (Some(l), 0) => l,
            (Some(l), c) => l.min(c),
            (None, 0) => {
                return Err(ConfigError(
                    "the cgroup has no memory limit: set limit_bytes",
                ));
            }
            (None, c) => c,
        };
        let (high, critical) = (config.stall_high, config.stall_critical);
        if !(high > 0.0 && high <= critical) {
            return Err(ConfigError(
                "stall thresholds need 0 < stall_high <= stall_critical",
            ));
        }
        let stall = StallWatch {
            cgroup: cgroup.clone(),
            high,
            critical,
        };
        MemoryBudget::build(
            limit,
            UsageSource::Cgroup(cgroup.clone()),
            config.high,
            config.critical,
            Some(stall),
        )
    }

    fn build(
        limit: u64,
        source: UsageSource,
        high: f64,
        critical: f64,
        stall: Option<StallWatch>,
    ) -> Result<MemoryBudget, ConfigError> {
        if limit == 0 {
            return Err(ConfigError("the memory budget must be above zero"));
        }
        if !(high > 0.0 && high <= critical && critical.is_finite()) {
            return Err(ConfigError("thresholds need 0 < high <= critical"));
        }
        let shared = Arc::new(Shared {
            limit,
            high,
            critical,
            source,
            level: AtomicU8::new(Pressure::Normal as u8),
            used: AtomicU64::new(0),
            callbacks: Mutex::new(Vec::new()),
            trims: Mutex::new(Vec::new()),
            changes: [AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0)],
            stall,
            metrics: Late::new(BudgetMetrics::new),
        });
        shared.metrics.get().budget.set(limit as f64);
        veza_core::publish::register(&shared);
        Ok(MemoryBudget { s: shared })
    }

    /// The budget in bytes.
    pub fn limit(&self) -> u64 {
        self.s.limit
    }

    /// The level found by the last sample.
    pub fn pressure(&self) -> Pressure {
        Pressure::from_u8(self.s.level.load(Relaxed))
    }

    /// The usage found by the last sample, in bytes.
    pub fn last_used(&self) -> u64 {
        self.s.used.load(Relaxed)
    }

    /// The level for `used` bytes.
    pub fn level_for(&self, used: u64) -> Pressure {
        let ratio = used as f64 / self.s.limit as f64;
        if ratio >= self.s.critical {
            Pressure::Critical
        } else if ratio >= self.s.high {
            Pressure::High
        } else {
            Pressure::Normal
        }
    }

    /// Reads the usage now, updates the level and metrics, and notifies subscribers if the
    /// level changed. Returns the level.
    pub fn sample(&self) -> Result<Pressure, UsageError> {
        let used = self.s.source.read()?;
        self.s.used.store(used, Relaxed);
        let metrics = self.s.metrics.get();
        metrics.used.set(used as f64);
        let mut to = self.level_for(used);
        if let Some(stall) = &self.s.stall {
            to = to.max(stall.level());
        }
        let from = Pressure::from_u8(self.s.level.swap(to as u8, Relaxed));
        metrics.level.set(f64::from(to as u8));
        if from != to {
            self.s.changes[to as usize].fetch_add(1, Relaxed);
            metrics.changes[to as usize].increment(1);
            self.notify(PressureChange {
                from,
                to,
                used,
                limit: self.s.limit,
            });
        }
        Ok(to)
    }

    fn notify(&self, change: PressureChange) {
        let callbacks = lock(&self.s.callbacks).clone();
        for callback in callbacks {
            callback(change);
        }
        let trims: Vec<Arc<dyn Trim>> = {
            let mut trims = lock(&self.s.trims);
            trims.retain(|w| w.strong_count() > 0);
            trims.iter().filter_map(Weak::upgrade).collect()
        };
        for trim in trims {
            trim.on_pressure(change.to);
        }
    }

    /// Calls `callback` on every change of level (on the sampling thread).
    pub fn subscribe(&self, callback: impl Fn(PressureChange) + Send + Sync + 'static) {
        lock(&self.s.callbacks).push(Arc::new(callback));
    }

    /// A channel that receives every change of level. Dropping the receiver unsubscribes it
    /// at the next change.
    pub fn subscribe_channel(&self) -> mpsc::Receiver<PressureChange> {
        let (tx, rx) = mpsc::channel();
        let tx = Mutex::new(tx);
        self.subscribe(move |change| {
            let _ = lock(&tx).send(change);
        });
        rx
    }

    /// Attaches a pool (a [`Pool`](crate::Pool) or [`BufferPool`](crate::BufferPool), or an
    /// `Arc` of anything that can [`Trim`]): it is told every change of level, and the current
    /// level now. Held weakly: dropping the pool (its last clone) detaches it.
    pub fn attach(&self, target: &impl Attach) {
        let weak = target.trim_target();
        if let Some(target) = weak.upgrade() {
            target.on_pressure(self.pressure());
        }
        lock(&self.s.trims).push(weak);
    }

    /// Samples every `interval` on a background thread until the returned handle is dropped.
    /// Sampling errors are skipped (the next tick tries again).
    pub fn start(&self, interval: Duration) -> Monitor {
        let (stop, stopped) = mpsc::channel::<()>();
        let budget = Arc::downgrade(&self.s);
        let thread = std::thread::Builder::new()
            .name("veza-memory-budget".to_owned())
            .spawn(move || {
                loop {
                    let Some(s) = budget.upgrade() else {
                        return;
                    };
                    let budget = MemoryBudget { s };
                    let _ = budget.sample();
                    drop(budget);
                    match stopped.recv_timeout(interval) {
                        Err(mpsc::RecvTimeoutError::Timeout) => {}
                        _ => return,
                    }
                }
            })
            .expect("spawning the memory budget thread");
        Monitor {
            stop: Some(stop),
            thread: Some(thread),
        }
    }
}

impl fmt::Debug for MemoryBudget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryBudget")
            .field("limit", &self.s.limit)
            .field("source", &self.s.source)
            .field("pressure", &self.pressure())
            .field("last_used", &self.last_used())
            .finish_non_exhaustive()
    }
}

/// The background sampler of a [`MemoryBudget`]; stops (and joins) when dropped.
#[derive(Debug)]
pub struct Monitor {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for Monitor {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Resident set size: the second field of `/proc/self/statm`, in pages.
#[cfg(target_os = "linux")]
fn resident_set_bytes() -> Result<u64, UsageError> {
    let statm = std::fs::read_to_string("/proc/self/statm")
        .map_err(|_| UsageError("/proc/self/statm is not readable"))?;
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .ok_or(UsageError("/proc/self/statm is malformed"))?;
    Ok(pages * page_size())
}

#[cfg(target_os = "linux")]
fn page_size() -> u64 {
    // SAFETY: sysconf has no preconditions; it returns -1 (handled) on error.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(size).unwrap_or(4096)
}

#[cfg(not(target_os = "linux"))]
fn resident_set_bytes() -> Result<u64, UsageError> {
    Err(UsageError(
        "the resident set size is only read on Linux; use UsageSource::Heap",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_follow_the_thresholds() {
        let b = MemoryBudget::with_source(1000, UsageSource::Custom(Arc::new(|| Some(0)))).unwrap();
        assert_eq!(b.level_for(799), Pressure::Normal);
        assert_eq!(b.level_for(800), Pressure::High);
        assert_eq!(b.level_for(1000), Pressure::Critical);
    }

    #[test]
    fn bad_configs_are_refused() {
        assert!(MemoryBudget::new(0).is_err());
        let src = || UsageSource::Custom(Arc::new(|| Some(0)));
        assert!(MemoryBudget::with_thresholds(10, src(), 0.9, 0.8).is_err());
        assert!(MemoryBudget::with_thresholds(10, src(), 0.0, 1.0).is_err());
        assert!(MemoryBudget::with_thresholds(10, src(), f64::NAN, 1.0).is_err());
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn the_resident_set_is_read() {
        let rss = resident_set_bytes().unwrap();
        assert!(rss > 1 << 20 && rss < 1 << 40, "{rss}");
    }
}
