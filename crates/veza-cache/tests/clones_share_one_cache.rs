//! `Cache` is a cheap handle: clones in several threads and tasks see one set of entries,
//! one single-flight table and one set of statistics; the entries go with the last clone.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

use veza_cache::Cache;
use veza_core::Observe;

#[test]
fn clones_in_threads_share_entries_loads_and_statistics() {
    let cache: Cache<u64, Arc<String>> = Cache::builder()
        .name("shared")
        .max_entries(1_000)
        .build()
        .unwrap();
    let loads = Arc::new(AtomicUsize::new(0));
    let barrier = Arc::new(std::sync::Barrier::new(8));
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let cache = cache.clone();
            let loads = loads.clone();
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                barrier.wait();
                for key in 0..100u64 {
                    let v = cache.get_or_load(&key, || {
                        loads.fetch_add(1, SeqCst);
                        std::thread::sleep(std::time::Duration::from_micros(200));
                        Arc::new(format!("v{key}"))
                    });
                    assert_eq!(*v, format!("v{key}"));
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    // One load per key across all clones: they share one single-flight table.
    assert_eq!(loads.load(SeqCst), 100);
    let stats = cache.snapshot();
    assert_eq!(stats.loads, 100);
    assert_eq!(stats.hits + stats.misses, 800);
    assert_eq!(cache.len(), 100);
    // An invalidation through one clone is seen through every other.
    let other = cache.clone();
    other.invalidate(&7);
    assert_eq!(cache.get(&7), None);
    assert_eq!(other.name(), "shared");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clones_move_into_spawned_tasks() {
    let cache: Cache<u64, u64> = Cache::new(100).unwrap();
    let tasks: Vec<_> = (0..4u64)
        .map(|t| {
            let cache = cache.clone();
            tokio::spawn(async move {
                for k in 0..10 {
                    cache.insert(t * 10 + k, k);
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(cache.len(), 40);
    assert_eq!(cache.snapshot().inserts, 40);
}

#[test]
fn the_entries_are_dropped_with_the_last_clone() {
    let value = Arc::new(());
    let cache: Cache<u8, Arc<()>> = Cache::new(10).unwrap();
    cache.insert(1, value.clone());
    let clone = cache.clone();
    drop(cache);
    assert_eq!(
        Arc::strong_count(&value),
        2,
        "a clone still holds the entry"
    );
    assert!(clone.get(&1).is_some());
    drop(clone);
    assert_eq!(
        Arc::strong_count(&value),
        1,
        "the last clone took the entry with it"
    );
}
