//! Live metrics whatever the order of construction: the components that publish at scrape
//! time, and metric handles bound late.
//!
//! A `metrics` handle (`metrics::counter!(…)`) is bound to the recorder installed when it is
//! made: made before any recorder, it records nothing, forever. So that a pool or a cache built
//! before `veza_metrics::Metrics::install` still exports, the Veza crates do two things:
//!
//! - Each long-lived component [`register`]s itself (weakly) here. The exporter calls
//!   [`publish_all`] before it renders a scrape: every live component writes its exact counts
//!   then, so counters and gauges move without anyone calling `snapshot()`.
//! - Handles the hot path records into (histograms, mostly) live in a [`Late`]: when a recorder
//!   was installed after the handles were made ([`recorder_installed`] says so; veza-metrics
//!   calls it), the component makes them again on its next publish and uses those.
//!
//! With a recorder other than veza-metrics', call [`recorder_installed`] once after installing
//! it, and [`publish_all`] before each render (or on a timer).
//!
//! ```
//! use std::sync::Arc;
//! use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
//! use veza_core::publish::{self, Publish};
//!
//! struct Jobs {
//!     done: AtomicU64,
//!     published: AtomicU64,
//! }
//!
//! impl Publish for Jobs {
//!     fn publish(&self) {
//!         // A real component writes to its `metrics` handles here.
//!         self.published.store(self.done.load(Relaxed), Relaxed);
//!     }
//! }
//!
//! let jobs = Arc::new(Jobs { done: AtomicU64::new(3), published: AtomicU64::new(0) });
//! publish::register(&jobs);
//! publish::publish_all(); // what the exporter does before each scrape
//! assert_eq!(jobs.published.load(Relaxed), 3);
//! ```

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, Weak};

/// A component that writes its figures to the `metrics` recorder when asked.
pub trait Publish: Send + Sync {
    /// Writes the current figures (counters with `absolute`, gauges with `set`), making its
    /// handles again first if a recorder was installed since they were made (see [`Late`]).
    fn publish(&self);
}

struct Registry {
    components: Vec<Weak<dyn Publish>>,
    /// Live entries after the last pruning: the list is pruned when it doubles past it.
    live_after_prune: usize,
}

static REGISTRY: Mutex<Registry> = Mutex::new(Registry {
    components: Vec::new(),
    live_after_prune: 0,
});

/// Bumped each time a recorder is installed.
static EPOCH: AtomicU64 = AtomicU64::new(0);

fn registry() -> std::sync::MutexGuard<'static, Registry> {
    REGISTRY.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Adds `component` to the ones [`publish_all`] publishes, for as long as it lives: the
/// registry holds a weak reference and forgets it once the last strong one is dropped.
pub fn register<P: Publish + 'static>(component: &Arc<P>) {
    let weak: Weak<dyn Publish> = Arc::downgrade(component) as Weak<dyn Publish>;
    let mut r = registry();
    if r.components.len() >= 2 * r.live_after_prune.max(16) {
        r.components.retain(|w| w.strong_count() > 0);
        r.live_after_prune = r.components.len();
    }
    r.components.push(weak);
}

/// Publishes every live registered component (the exporter calls it before each render).
/// Components publish outside the registry's lock, one after the other.
pub fn publish_all() {
    let live: Vec<Arc<dyn Publish>> = {
        let mut r = registry();
        r.components.retain(|w| w.strong_count() > 0);
        r.live_after_prune = r.components.len();
        r.components.iter().filter_map(Weak::upgrade).collect()
    };
    for component in &live {
        component.publish();
    }
}

/// How many registered components are alive.
pub fn registered() -> usize {
    registry()
        .components
        .iter()
        .filter(|w| w.strong_count() > 0)
        .count()
}

/// How many times a recorder was installed: a component that makes handles lazily compares
/// it with the value it saw when it made them.
pub fn epoch() -> u64 {
    EPOCH.load(Ordering::Acquire)
}

/// Says that a recorder was just installed: handles made before now are made again, and
/// every component publishes at once (so nothing waits for the first scrape).
pub fn recorder_installed() {
    EPOCH.fetch_add(1, Ordering::AcqRel);
    publish_all();
}

/// Metric handles bound late: the ones made at construction, replaced once by ones made
/// after a recorder was installed, if one was installed after construction.
///
/// Reading them ([`get`](Late::get)) costs one atomic load. [`refresh`](Late::refresh), from
/// the component's [`Publish::publish`], makes them again when needed.
pub struct Late<H> {
    early: H,
    epoch: u64,
    late: OnceLock<H>,
}

impl<H> Late<H> {
    /// Handles made now by `make`.
    pub fn new(make: impl FnOnce() -> H) -> Late<H> {
        let epoch = EPOCH.load(Ordering::Acquire);
        Late {
            early: make(),
            epoch,
            late: OnceLock::new(),
        }
    }

    /// The handles to record into.
    #[inline]
    pub fn get(&self) -> &H {
        self.late.get().unwrap_or(&self.early)
    }

    /// Makes the handles again with `make` if a recorder was installed since they were made
    /// (once). Returns `true` when this call replaced them: whatever was recorded before went
    /// to no recorder, so a component that publishes deltas starts again from zero.
    pub fn refresh(&self, make: impl FnOnce() -> H) -> bool {
        if self.late.get().is_some() || EPOCH.load(Ordering::Acquire) == self.epoch {
            return false;
        }
        self.late.set(make()).is_ok()
    }
}

impl<H> fmt::Debug for Late<H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Late")
            .field("rebound", &self.late.get().is_some())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    struct Counted(AtomicUsize);

    impl Publish for Counted {
        fn publish(&self) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    #[test]
    fn dropped_components_are_forgotten_and_live_ones_publish() {
        let kept = Arc::new(Counted(AtomicUsize::new(0)));
        register(&kept);
        for _ in 0..100 {
            let gone = Arc::new(Counted(AtomicUsize::new(0)));
            register(&gone);
        }
        publish_all();
        assert_eq!(kept.0.load(Ordering::Relaxed), 1);
        // Other tests of this binary may hold components; the 100 dropped ones are gone.
        assert!(registry().components.len() < 50);
    }

    #[test]
    fn late_handles_are_made_again_once_after_an_install() {
        let made = AtomicUsize::new(0);
        let make = || made.fetch_add(1, Ordering::Relaxed);
        let late = Late::new(make);
        assert_eq!(*late.get(), 0);
        // Whether or not another test installed since, at most one refresh replaces them.
        EPOCH.fetch_add(1, Ordering::AcqRel);
        assert!(late.refresh(make));
        assert!(!late.refresh(make));
        assert_eq!(*late.get(), 1);
        let after = Late::new(make);
        assert!(
            !after.refresh(make),
            "made after the install: nothing to do"
        );
    }
}
