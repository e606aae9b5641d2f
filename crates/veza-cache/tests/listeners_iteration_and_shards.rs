//! Eviction listeners see every value that leaves, with its cause; iteration copies what is
//! held (to persist and warm a cache); the shard count is settable and bounds the capacity
//! exactly with one shard; the admission policy keeps popular keys through a scan.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use veza_cache::{Cache, Config, RemovalCause};
use veza_core::Observe;

type Log = Arc<Mutex<Vec<(u64, u64, RemovalCause)>>>;

fn logged(capacity: u64, shards: usize) -> (Cache<u64, u64>, Log) {
    let log: Log = Arc::default();
    let sink = log.clone();
    let cache = Cache::builder()
        .max_entries(capacity)
        .shards(shards)
        .time_to_idle(Duration::from_secs(3600))
        .eviction_listener(move |k, v, cause| sink.lock().unwrap().push((k, v, cause)))
        .build()
        .unwrap();
    (cache, log)
}

fn count(log: &Log, cause: RemovalCause) -> usize {
    log.lock()
        .unwrap()
        .iter()
        .filter(|(_, _, c)| *c == cause)
        .count()
}

#[test]
fn every_value_that_leaves_reaches_the_listener_with_its_cause() {
    let (cache, log) = logged(100, 1);
    for i in 0..1_000 {
        cache.insert(i, i * 10);
    }
    let stats = cache.snapshot();
    assert_eq!(cache.len(), 100, "one shard holds exactly its capacity");
    assert_eq!(
        count(&log, RemovalCause::Capacity) as u64,
        stats.evictions_size
    );
    assert_eq!(stats.evictions_size, 900);
    // The values handed over are the ones stored under those keys.
    assert!(log.lock().unwrap().iter().all(|(k, v, _)| *v == k * 10));

    let held: Vec<u64> = cache.iter().map(|(k, _)| k).collect();
    cache.insert(held[0], 7);
    assert!(
        log.lock()
            .unwrap()
            .contains(&(held[0], held[0] * 10, RemovalCause::Replaced))
    );
    assert_eq!(
        cache.snapshot().evictions_size,
        900,
        "a replacement is not an eviction for capacity"
    );

    assert!(cache.invalidate(&held[1]));
    cache.invalidate_if(|k, _| *k == held[2]);
    assert_eq!(count(&log, RemovalCause::Invalidated), 2);
    cache.invalidate_all();
    assert_eq!(count(&log, RemovalCause::Invalidated), 100);
    assert!(cache.is_empty());

    // Every key inserted left exactly once, or is still there (none now): nothing lost.
    let left: HashSet<u64> = log
        .lock()
        .unwrap()
        .iter()
        .filter(|(_, _, c)| *c != RemovalCause::Replaced)
        .map(|(k, _, _)| *k)
        .collect();
    assert_eq!(left.len(), 1_000);
}

#[test]
fn expiry_found_on_a_read_is_reported_as_expired() {
    let log: Log = Arc::default();
    let sink = log.clone();
    let cache = Cache::builder()
        .max_entries(10)
        .time_to_live(Duration::from_millis(20))
        .eviction_listener(move |k, v, cause| sink.lock().unwrap().push((k, v, cause)))
        .build()
        .unwrap();
    cache.insert(1, 11);
    std::thread::sleep(Duration::from_millis(40));
    assert_eq!(cache.get(&1), None);
    assert_eq!(*log.lock().unwrap(), vec![(1, 11, RemovalCause::Expired)]);
}

#[test]
fn a_panicking_listener_is_counted_and_never_reaches_the_caller() {
    let cache = Cache::<u64, u64>::builder()
        .max_entries(4)
        .shards(1)
        .eviction_listener(|k, _, _| assert!(k % 2 == 0, "odd key {k}"))
        .build()
        .unwrap();
    for i in 0..20 {
        cache.insert(i, i);
    }
    assert_eq!(cache.len(), 4);
    assert!(cache.listener_panics() > 0);
    assert!(cache.listener_panics() <= 8, "{}", cache.listener_panics());
}

#[test]
fn iteration_copies_live_values_only_and_can_warm_a_new_cache() {
    let cache = Cache::<u64, String>::builder()
        .max_entries(10_000)
        .negative_ttl(Duration::from_secs(60))
        .build()
        .unwrap();
    for i in 0..500 {
        cache.insert(i, format!("v{i}"));
    }
    cache.insert_with_ttl(9_999, "short".to_owned(), Duration::from_millis(10));
    // A cached absence is not a value.
    let absent: Result<Option<String>, std::io::Error> = Ok(None);
    assert_eq!(cache.try_get_or_load_opt(&777, || absent).unwrap(), None);
    std::thread::sleep(Duration::from_millis(30));
    let copied: HashMap<u64, String> = cache.iter().collect();
    assert_eq!(copied.len(), 500, "values only, the expired one left out");
    assert!(copied.iter().all(|(k, v)| *v == format!("v{k}")));
    let hits_before = cache.snapshot().hits;
    let warm = Cache::<u64, String>::new(10_000).unwrap();
    for (k, v) in cache.iter() {
        warm.insert(k, v);
    }
    assert_eq!(warm.len(), 500);
    assert_eq!(warm.get(&42).as_deref(), Some("v42"));
    assert_eq!(
        cache.snapshot().hits,
        hits_before,
        "iterating is not reading"
    );
}

#[test]
fn the_shard_count_is_settable_and_rounded_to_a_power_of_two() {
    let one = Cache::<u64, u64>::builder()
        .max_entries(1_000)
        .shards(1)
        .build()
        .unwrap();
    for i in 0..1_000 {
        one.insert(i, i);
    }
    assert_eq!(one.len(), 1_000, "one shard: exactly the capacity fits");
    let six = Cache::<u64, u64>::builder()
        .max_entries(1_000)
        .shards(6)
        .build()
        .unwrap();
    assert_eq!(six.shards(), 8);
    // Never a shard with no room: a tiny cache gets fewer shards than asked.
    let tiny = Cache::<u64, u64>::builder()
        .max_entries(3)
        .shards(64)
        .build()
        .unwrap();
    assert_eq!(tiny.shards(), 2);
    for i in 0..100 {
        tiny.insert(i, i);
        assert_eq!(tiny.get(&i), Some(i), "the newest insert is readable");
    }
    assert!(tiny.len() <= 3);
    assert!(Cache::<u64, u64>::builder().shards(0).build().is_err());
    let mut config = Config::default();
    config.shards = Some(2);
    assert_eq!(Cache::<u64, u64>::from_config(&config).unwrap().shards(), 2);
    // The default keeps at least 256 entries a shard.
    assert_eq!(Cache::<u64, u64>::new(300).unwrap().shards(), 1);
}

#[test]
fn popular_keys_survive_a_scan_and_recent_keys_win_when_traffic_turns_to_recency() {
    let cache = Cache::<u64, u64>::builder()
        .max_entries(1_000)
        .shards(1)
        .build()
        .unwrap();
    let request = |k: u64| {
        if cache.get(&k).is_none() {
            cache.insert(k, k);
        }
    };
    for _ in 0..30 {
        for k in 0..500 {
            request(k);
        }
    }
    for k in 1_000_000..1_050_000 {
        request(k); // a scan of 50,000 keys seen once
    }
    let kept = (0..500).filter(|k| cache.get(k).is_some()).count();
    assert!(kept >= 450, "{kept} of 500 popular keys survived the scan");

    // Then only a new working set of 800 keys, again and again: it must end up cached even
    // though the old keys were popular.
    for _ in 0..60 {
        for k in 2_000_000..2_000_800 {
            request(k);
        }
    }
    let before = cache.snapshot();
    for k in 2_000_000..2_000_800 {
        request(k);
    }
    let after = cache.snapshot();
    let hits = after.hits - before.hits;
    assert!(
        hits >= 720,
        "{hits} of 800 requests of the new working set hit"
    );
}
