//! The process collector reports real CPU time: burning half a second of CPU on a thread makes
//! `process_cpu_seconds_total` grow accordingly.

use std::time::{Duration, Instant};

use veza_metrics::ProcessCollector;

#[cfg(target_os = "linux")]
#[test]
fn burning_half_a_second_shows_in_cpu_seconds() {
    let collector = ProcessCollector::new();
    let before = collector.sample().unwrap().cpu_seconds;
    std::thread::spawn(|| {
        let end = Instant::now() + Duration::from_millis(500);
        let mut x = 0u64;
        while Instant::now() < end {
            x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
        }
    })
    .join()
    .unwrap();
    let after = collector.sample().unwrap().cpu_seconds;
    assert!(
        after - before >= 0.3,
        "cpu seconds grew by {} only",
        after - before
    );
    assert!(
        after - before < 5.0,
        "cpu seconds grew by {}",
        after - before
    );
}
