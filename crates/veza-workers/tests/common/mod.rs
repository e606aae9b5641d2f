//! Helpers shared by the integration tests.
#![allow(dead_code, reason = "each test file uses a different subset")]

use std::sync::mpsc;
use std::sync::{Arc, Once};
use std::time::Duration;

/// Runs `f` on its own thread and fails the test if it does not finish within `secs`: a
/// deadlock becomes a failure instead of a hung test run.
pub(crate) fn within<T: Send + 'static>(secs: u64, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    let worker = std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(Duration::from_secs(secs)) {
        Ok(value) => {
            worker.join().unwrap();
            value
        }
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("did not finish within {secs} s: deadlock?"),
        Err(mpsc::RecvTimeoutError::Disconnected) => {
            std::panic::resume_unwind(worker.join().unwrap_err())
        }
    }
}

/// Keeps deliberate panics (messages starting with "deliberate") out of the test output.
pub(crate) fn quiet_deliberate_panics() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let msg = info
                .payload()
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| info.payload().downcast_ref::<String>().cloned())
                .unwrap_or_default();
            if !msg.starts_with("deliberate") {
                default(info);
            }
        }));
    });
}

/// A gate that jobs wait at until the test opens it.
#[derive(Clone)]
pub(crate) struct Gate {
    open: Arc<(std::sync::Mutex<bool>, std::sync::Condvar)>,
    started: Arc<std::sync::atomic::AtomicUsize>,
}

impl Gate {
    pub(crate) fn new() -> Gate {
        Gate {
            open: Arc::default(),
            started: Arc::default(),
        }
    }

    /// Blocks the calling job until `open` (counting it as started).
    pub(crate) fn wait(&self) {
        self.started
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let (lock, cv) = &*self.open;
        let mut open = lock.lock().unwrap();
        while !*open {
            open = cv.wait(open).unwrap();
        }
    }

    /// Waits until `n` jobs are blocked at the gate (bounded: fails after 10 s).
    pub(crate) fn wait_started(&self, n: usize) {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while self.started.load(std::sync::atomic::Ordering::SeqCst) < n {
            assert!(std::time::Instant::now() < deadline, "jobs did not start");
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    pub(crate) fn open(&self) {
        let (lock, cv) = &*self.open;
        *lock.lock().unwrap() = true;
        cv.notify_all();
    }
}

/// Occupies a worker of `pool` with a job that waits at a new gate (returned), and waits until
/// that job has started.
pub(crate) fn block_worker(pool: &veza_workers::WorkerPool) -> Gate {
    let gate = Gate::new();
    let g = gate.clone();
    pool.execute(move || g.wait()).unwrap();
    gate.wait_started(1);
    gate
}
