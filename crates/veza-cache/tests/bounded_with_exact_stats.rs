//! The cache stays within its capacity and counts every hit, miss, insert and eviction.

use std::time::{Duration, Instant};

use veza_cache::Cache;
use veza_core::Observe;

#[test]
fn ten_times_the_capacity_leaves_at_most_the_capacity() {
    let cache = Cache::<u64, u64>::new(1000).unwrap();
    for i in 0..10_000 {
        cache.insert(i, i * 2);
    }
    assert!(cache.len() <= 1000, "{} entries", cache.len());
    assert!(
        cache.len() >= 900,
        "eviction removed far too much: {}",
        cache.len()
    );
    let stats = cache.snapshot();
    assert_eq!(stats.inserts, 10_000);
    assert_eq!(stats.evictions_size, 10_000 - cache.len() as u64);
}

#[test]
fn a_scripted_run_counts_exactly() {
    let cache = Cache::<&'static str, u32>::new(100).unwrap();
    assert_eq!(cache.get("a"), None); // miss
    cache.insert("a", 1);
    cache.insert("b", 2);
    assert_eq!(cache.get("a"), Some(1)); // hit
    assert_eq!(cache.get("b"), Some(2)); // hit
    assert_eq!(cache.get("c"), None); // miss
    assert_eq!(cache.get("a"), Some(1)); // hit
    assert!(cache.invalidate("b"));
    assert!(!cache.invalidate("b"));
    assert_eq!(cache.get("b"), None); // miss
    let s = cache.snapshot();
    assert_eq!((s.hits, s.misses, s.inserts), (3, 3, 2));
    assert_eq!(s.evictions_explicit, 1);
    assert_eq!(s.hit_ratio(), 3.0 / 6.0);
    assert_eq!((s.entries, s.capacity), (1, 100));
}

#[test]
fn invalidation_by_predicate_and_all() {
    let cache = Cache::<u32, String>::new(100).unwrap();
    for i in 0..10 {
        cache.insert(i, format!("v{i}"));
    }
    cache.invalidate_if(|k, _| k % 2 == 0);
    assert_eq!(cache.len(), 5);
    assert_eq!(cache.get(&2), None);
    assert_eq!(cache.get(&3).as_deref(), Some("v3"));
    cache.invalidate_all();
    assert!(cache.is_empty());
    assert_eq!(cache.snapshot().evictions_explicit, 10);
}

#[test]
fn weight_bounds_the_bytes_held() {
    let cache = Cache::<u32, Vec<u8>>::builder()
        .max_weight(10_000, 100, |_, v: &Vec<u8>| v.len() as u64)
        .build()
        .unwrap();
    for i in 0..100 {
        cache.insert(i, vec![0; 1000]);
    }
    assert!(cache.weighted_size() <= 10_000, "{}", cache.weighted_size());
    assert!(cache.len() <= 10);
}

#[test]
fn entries_expire_after_their_time_to_live() {
    let cache = Cache::<u32, u32>::builder()
        .time_to_live(Duration::from_millis(50))
        .build()
        .unwrap();
    cache.insert(1, 10);
    assert_eq!(cache.get(&1), Some(10));
    let deadline = Instant::now() + Duration::from_secs(5);
    while cache.get(&1).is_some() {
        assert!(Instant::now() < deadline, "the entry never expired");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(cache.len(), 0, "the expired entry is removed when found");
    assert_eq!(cache.snapshot().evictions_expired, 1);
    cache.insert(1, 11);
    assert_eq!(cache.get(&1), Some(11), "a fresh insert restarts the clock");
}

#[test]
fn shrinking_under_pressure_evicts_and_restores() {
    let cache = Cache::<u32, u32>::new(1000).unwrap();
    for i in 0..1000 {
        cache.insert(i, i);
    }
    cache.shrink_to_fraction(0.1);
    // quick_cache rounds each shard's share up, so a few entries more than 100 may stay.
    assert!(cache.len() <= 110, "{}", cache.len());
    assert_eq!(cache.snapshot().capacity, 100);
    cache.shrink_to_fraction(1.0);
    for i in 0..1000 {
        cache.insert(i, i);
    }
    assert!(cache.len() > 500);
}

#[test]
fn bad_configs_are_refused() {
    assert!(Cache::<u8, u8>::new(0).is_err());
    assert!(
        Cache::<u8, u8>::builder()
            .time_to_live(Duration::ZERO)
            .build()
            .is_err()
    );
}

#[test]
fn entries_idle_too_long_expire_and_reads_keep_them_alive() {
    let cache = Cache::<u32, u32>::builder()
        .time_to_idle(Duration::from_millis(150))
        .build()
        .unwrap();
    cache.insert(1, 10);
    cache.insert(2, 20);
    // Keep reading 1 more often than the idle limit; leave 2 alone.
    let start = Instant::now();
    while start.elapsed() < Duration::from_millis(400) {
        assert_eq!(cache.get(&1), Some(10), "a read entry must stay");
        std::thread::sleep(Duration::from_millis(30));
    }
    assert_eq!(cache.get(&2), None, "an idle entry must expire");
    assert_eq!(cache.snapshot().evictions_expired, 1);
}

#[test]
fn an_entry_can_have_its_own_time_to_live() {
    let cache = Cache::<u32, u32>::builder()
        .time_to_live(Duration::from_secs(3600))
        .build()
        .unwrap();
    cache.insert_with_ttl(1, 10, Duration::from_millis(50));
    cache.insert(2, 20);
    let deadline = Instant::now() + Duration::from_secs(5);
    while cache.get(&1).is_some() {
        assert!(
            Instant::now() < deadline,
            "the short-lived entry never expired"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(
        cache.get(&2),
        Some(20),
        "the cache-wide TTL still applies to the others"
    );
}

#[test]
fn a_full_cache_holds_nearly_its_capacity_and_never_more() {
    // The capacity is split over shards, each evicting at its own share (documented on
    // `Cache`): a little under the capacity, never above it.
    for capacity in [100u64, 1_000, 10_000] {
        let cache: Cache<u64, u64> = Cache::new(capacity).unwrap();
        for k in 0..capacity {
            cache.insert(k, k);
        }
        let held = cache.len() as u64;
        assert!(held <= capacity, "{held} > {capacity}");
        assert!(held * 100 >= capacity * 90, "{held} of {capacity}");
        for k in capacity..capacity * 3 {
            cache.insert(k, k);
        }
        assert!(cache.len() as u64 <= capacity);
    }
}

#[test]
fn a_time_to_live_too_long_for_the_clock_never_expires_and_never_panics() {
    let cache = Cache::<u32, u32>::builder()
        .max_entries(100)
        .negative_ttl(Duration::MAX)
        .build()
        .unwrap();
    cache.insert_with_ttl(1, 10, Duration::MAX);
    assert_eq!(cache.get(&1), Some(10));
    let absent = cache.try_get_or_load_opt(&2, || Ok::<_, std::io::Error>(None));
    assert_eq!(absent.unwrap(), None);
    // Cached as absent: the loader is not called again.
    let again = cache.try_get_or_load_opt(&2, || -> Result<Option<u32>, std::io::Error> {
        panic!("the absence was cached")
    });
    assert_eq!(again.unwrap(), None);
}
