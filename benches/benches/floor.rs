//! Floors: the cost of the primitives our crates are built on, so each crate's overhead over
//! its floor is visible. `floor/channel_handoff` is the floor of the worker pool.

use std::hint::black_box;
use std::thread;
use std::time::Instant;

use veza_benches::{Bench, Case, Contender, Metric};

/// Counts allocations per operation (`Case::ops`).
#[global_allocator]
static ALLOC: veza_benches::CountingAlloc = veza_benches::CountingAlloc;

fn main() {
    let bench = Bench::from_args("floor");
    channel_handoff(&bench);
}

/// One message to another thread and its answer back, per round trip: the handoff a worker
/// pool pays (at least) for every job whose submitter waits.
fn channel_handoff(bench: &Bench) {
    let case = Case::new(
        "floor/channel_handoff",
        "one-message round trip between two threads (unbounded channels), mean over a batch",
        Metric::Latency,
        "ns",
        "crossbeam-channel",
    );
    let trips = if bench.quick() { 20_000 } else { 100_000 };
    let case = case.ops(trips as usize);
    bench.run(
        &case,
        vec![
            Contender::new("crossbeam-channel", || {
                let (to_echo, echo_rx) = crossbeam_channel::unbounded::<u64>();
                let (to_main, main_rx) = crossbeam_channel::unbounded::<u64>();
                round_trips(
                    trips,
                    move |n| to_echo.send(n).is_ok() && main_rx.recv().is_ok(),
                    move || {
                        while let Ok(n) = echo_rx.recv() {
                            if to_main.send(n + 1).is_err() {
                                break;
                            }
                        }
                    },
                )
            }),
            Contender::new("std-mpsc", || {
                let (to_echo, echo_rx) = std::sync::mpsc::channel::<u64>();
                let (to_main, main_rx) = std::sync::mpsc::channel::<u64>();
                round_trips(
                    trips,
                    move |n| to_echo.send(n).is_ok() && main_rx.recv().is_ok(),
                    move || {
                        while let Ok(n) = echo_rx.recv() {
                            if to_main.send(n + 1).is_err() {
                                break;
                            }
                        }
                    },
                )
            }),
        ],
    );
}

/// Starts `echo` on its own thread, then times `trips` calls of `trip` (send, wait for the
/// answer) and returns the mean nanoseconds per round trip. Dropping `trip` ends the echo.
fn round_trips(
    trips: u64,
    mut trip: impl FnMut(u64) -> bool,
    echo: impl FnOnce() + Send + 'static,
) -> f64 {
    let echo = thread::spawn(echo);
    for n in 0..100 {
        assert!(trip(n), "echo thread ended early"); // both threads awake and running
    }
    let start = Instant::now();
    for n in 0..trips {
        assert!(trip(black_box(n)));
    }
    let ns = start.elapsed().as_nanos() as f64 / trips as f64;
    drop(trip);
    echo.join().expect("echo thread panicked");
    ns
}
