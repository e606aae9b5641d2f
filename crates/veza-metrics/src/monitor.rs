//! [`PerformanceMonitor`]: the guide's performance monitor as a typed snapshot, refreshed on an
//! interval and readable at any time.

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use veza_core::Observe;

use crate::process::ProcessCollector;
use crate::system::SystemCollector;

/// What the monitor saw at one moment. Serialise it with any serde format (JSON for a debug
/// endpoint).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PerformanceSnapshot {
    /// When it was taken, seconds since the Unix epoch.
    pub taken_at_seconds: f64,
    /// Resident memory of the process, in bytes.
    pub resident_bytes: u64,
    /// Virtual memory of the process, in bytes.
    pub virtual_bytes: u64,
    /// Share of one core the process used since the previous snapshot (above 1 on several).
    pub process_cpu_ratio: f64,
    /// Share of all CPUs busy (not idle or waiting on I/O) since the previous snapshot.
    pub system_cpu_busy_ratio: f64,
    /// OS threads of the process.
    pub threads: u64,
    /// Open file descriptors.
    pub open_fds: Option<u64>,
    /// Tasks alive in the tokio runtime given to the monitor.
    pub runtime_tasks: Option<u64>,
    /// Worker threads of that runtime.
    pub runtime_workers: Option<u64>,
    /// Seconds since the process started.
    pub uptime_seconds: f64,
}

/// Samples the process, the machine and (optionally) a tokio runtime every interval (30 s by
/// default, as in the guide) on a background thread; [`snapshot`](Observe::snapshot) returns
/// the latest sample. [`refresh`](PerformanceMonitor::refresh) samples now.
pub struct PerformanceMonitor {
    process: ProcessCollector,
    system: SystemCollector,
    runtime: Option<tokio::runtime::Handle>,
    state: Mutex<MonitorState>,
}

#[derive(Default)]
struct MonitorState {
    last: PerformanceSnapshot,
    last_cpu: Option<(f64, Instant)>,
}

impl PerformanceMonitor {
    /// A monitor, sampled once now; `runtime` adds tokio task counts.
    pub fn new(runtime: Option<tokio::runtime::Handle>) -> Arc<PerformanceMonitor> {
        let monitor = Arc::new(PerformanceMonitor {
            process: ProcessCollector::new(),
            system: SystemCollector::new(),
            runtime,
            state: Mutex::new(MonitorState::default()),
        });
        monitor.refresh();
        monitor
    }

    /// Refreshes every `interval` on a background thread until the monitor is dropped.
    pub fn start(self: &Arc<Self>, interval: Duration) {
        let weak: Weak<Self> = Arc::downgrade(self);
        let _ = std::thread::Builder::new()
            .name("veza-performance-monitor".to_owned())
            .spawn(move || {
                loop {
                    std::thread::sleep(interval);
                    let Some(monitor) = weak.upgrade() else {
                        return;
                    };
                    monitor.refresh();
                }
            });
    }

    /// Samples now and returns the new snapshot.
    pub fn refresh(&self) -> PerformanceSnapshot {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        let mut snap = PerformanceSnapshot {
            taken_at_seconds: wall,
            ..PerformanceSnapshot::default()
        };
        if let Some(p) = self.process.sample() {
            snap.resident_bytes = p.resident_bytes;
            snap.virtual_bytes = p.virtual_bytes;
            snap.threads = p.threads;
            snap.open_fds = p.open_fds;
            snap.uptime_seconds = (wall - p.start_time_seconds).max(0.0);
            if let Some((cpu, at)) = state.last_cpu {
                let elapsed = now.duration_since(at).as_secs_f64();
                if elapsed > 0.0 {
                    snap.process_cpu_ratio = ((p.cpu_seconds - cpu) / elapsed).max(0.0);
                }
            }
            state.last_cpu = Some((p.cpu_seconds, now));
        }
        let usage = self.system.cpu_usage();
        snap.system_cpu_busy_ratio = usage
            .iter()
            .filter(|(mode, _)| *mode != "idle" && *mode != "iowait")
            .map(|(_, r)| r)
            .sum();
        if let Some(rt) = &self.runtime {
            let m = rt.metrics();
            snap.runtime_tasks = Some(m.num_alive_tasks() as u64);
            snap.runtime_workers = Some(m.num_workers() as u64);
        }
        state.last = snap.clone();
        snap
    }
}

impl Observe for PerformanceMonitor {
    type Snapshot = PerformanceSnapshot;

    fn snapshot(&self) -> PerformanceSnapshot {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .last
            .clone()
    }
}

impl fmt::Debug for PerformanceMonitor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PerformanceMonitor")
            .field("last", &self.snapshot())
            .finish_non_exhaustive()
    }
}
