//! Iteration copies what is held (to persist and warm a cache after a restart); the shard
//! count is settable, and one shard holds exactly its capacity.

use std::collections::HashMap;
use std::time::Duration;

use veza_cache::{Cache, Config};
use veza_core::Observe;

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
    assert_eq!(cache.snapshot().hits, hits_before, "iterating is not reading");
}

#[test]
fn the_shard_count_is_settable() {
    let one = Cache::<u64, u64>::builder()
        .max_entries(1_000)
        .shards(1)
        .build()
        .unwrap();
    assert_eq!(one.shards(), 1);
    for i in 0..1_000 {
        one.insert(i, i);
    }
    assert_eq!(one.len(), 1_000, "one shard: exactly the capacity fits");
    let many = Cache::<u64, u64>::builder()
        .max_entries(100_000)
        .shards(6)
        .build()
        .unwrap();
    assert_eq!(many.shards(), 8, "rounded up to a power of two");
    assert!(Cache::<u64, u64>::builder().shards(0).build().is_err());
    let mut config = Config::default();
    config.shards = Some(2);
    config.validate().unwrap();
    assert_eq!(Cache::<u64, u64>::from_config(&config).unwrap().shards(), 2);
    config.shards = Some(0);
    assert!(config.validate().is_err());
}
