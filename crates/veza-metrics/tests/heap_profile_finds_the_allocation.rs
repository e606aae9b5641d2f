//! With the `heap-profile` feature, jemalloc as the allocator and its profiler on,
//! `/debug/pprof/heap` returns a pprof heap profile in which a known allocation made by a known
//! function shows, with its size; with the profiler off it answers 503 and says why.
//!
//! jemalloc reads its configuration once, at its first allocation, so the test runs itself
//! again as a child process with `_RJEM_MALLOC_CONF` set.
#![cfg(all(feature = "heap-profile", target_os = "linux"))]

mod common;

use std::process::Command;

use veza_metrics::heap::{Jemalloc, Status};

#[global_allocator]
static ALLOC: Jemalloc = Jemalloc;

/// Set in the child: the profiler is on there.
const CHILD: &str = "VEZA_HEAP_PROFILE_CHILD";
const HELD: usize = 48 << 20;

/// The allocation to find: 48 MiB in 3 blocks, held until the profile is taken.
#[inline(never)]
fn veza_heap_profile_known_allocation() -> Vec<Vec<u8>> {
    (0..3)
        .map(|i| std::hint::black_box(vec![i as u8 + 1; HELD / 3]))
        .collect()
}

#[test]
fn the_heap_profile_shows_a_known_allocation() {
    if std::env::var_os(CHILD).is_none() {
        let exe = std::env::current_exe().unwrap();
        let out = Command::new(exe)
            .args([
                "--exact",
                "the_heap_profile_shows_a_known_allocation",
                "--nocapture",
            ])
            .env(CHILD, "1")
            // One sample per 64 KiB allocated on average: the 16 MiB blocks are all seen.
            .env(
                "_RJEM_MALLOC_CONF",
                "prof:true,prof_active:true,lg_prof_sample:16",
            )
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "the profiled child failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        // It did run the test (not filtered out).
        assert!(String::from_utf8_lossy(&out.stdout).contains("1 passed"));
        return;
    }
    assert_eq!(veza_metrics::heap::status(), Status::Active);
    let held = veza_heap_profile_known_allocation();
    let exporter = common::metrics()
        .serve("127.0.0.1:0".parse().unwrap())
        .unwrap();
    let profile = common::get_pprof(exporter.local_addr(), "/debug/pprof/heap");
    let strings = &profile.string_table;
    let sample_type = &profile.sample_type[0];
    assert_eq!(strings[sample_type.ty as usize], "inuse_space");
    assert_eq!(strings[sample_type.unit as usize], "bytes");

    // The function ids named like ours, then the locations calling them, then the bytes of
    // the samples whose stack goes through one of those locations.
    let functions: Vec<u64> = profile
        .function
        .iter()
        .filter(|f| strings[f.name as usize].contains("veza_heap_profile_known_allocation"))
        .map(|f| f.id)
        .collect();
    assert!(!functions.is_empty(), "the function is not in the profile");
    let locations: Vec<u64> = profile
        .location
        .iter()
        .filter(|l| {
            l.line
                .iter()
                .any(|line| functions.contains(&line.function_id))
        })
        .map(|l| l.id)
        .collect();
    let bytes: i64 = profile
        .sample
        .iter()
        .filter(|s| s.location_id.iter().any(|id| locations.contains(id)))
        .map(|s| s.value[0])
        .sum();
    // Sampling estimates the size; the three blocks are well above the sampling interval.
    let held_bytes = i64::try_from(HELD).unwrap();
    assert!(
        bytes >= held_bytes * 9 / 10 && bytes <= held_bytes * 11 / 10,
        "{bytes} bytes attributed to the function, {HELD} held"
    );
    drop(held);
}

#[test]
fn without_the_profiler_the_endpoint_says_what_to_do() {
    if std::env::var_os(CHILD).is_some() {
        return;
    }
    // This process started without `_RJEM_MALLOC_CONF`.
    assert_eq!(veza_metrics::heap::status(), Status::Unavailable);
    let exporter = common::metrics()
        .serve("127.0.0.1:0".parse().unwrap())
        .unwrap();
    let (status, _, body) = common::get(exporter.local_addr(), "/debug/pprof/heap", &[]);
    assert_eq!(status, 503);
    assert!(String::from_utf8_lossy(&body).contains("_RJEM_MALLOC_CONF=prof:true"));
}
