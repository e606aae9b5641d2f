//! With the `pprof` feature, the endpoint returns a CPU profile that pprof tools read (gzipped
//! protobuf with samples of the busy function) and a flamegraph SVG.
#![cfg(feature = "pprof")]

mod common;

use std::time::{Duration, Instant};

#[inline(never)]
fn burn_cpu_for_profile(for_how_long: Duration) -> u64 {
    let end = Instant::now() + for_how_long;
    let mut x = 0u64;
    while Instant::now() < end {
        for _ in 0..1000 {
            x = std::hint::black_box(
                x.wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407),
            );
        }
    }
    x
}

#[test]
fn a_profile_shows_the_busy_function_and_a_flamegraph_renders() {
    let exporter = common::metrics()
        .serve("127.0.0.1:0".parse().unwrap())
        .unwrap();
    let addr = exporter.local_addr();
    let burner = std::thread::spawn(|| burn_cpu_for_profile(Duration::from_millis(3500)));

    let profile = common::get_pprof(addr, "/debug/pprof/profile?seconds=1");
    assert!(!profile.sample.is_empty(), "no samples in the profile");
    assert!(
        profile
            .string_table
            .iter()
            .any(|s| s.contains("burn_cpu_for_profile")),
        "the busy function is not in the profile"
    );

    let (status, headers, svg) = common::get(addr, "/debug/pprof/flamegraph?seconds=1", &[]);
    assert_eq!(status, 200);
    assert!(
        headers
            .iter()
            .any(|(n, v)| n == "content-type" && v == "image/svg+xml")
    );
    assert!(String::from_utf8_lossy(&svg).contains("<svg"));

    let (status, _, _) = common::get(addr, "/debug/pprof/profile?seconds=0", &[]);
    assert_eq!(status, 400);
    burner.join().unwrap();
}
