//! Concurrent misses on one key run the loader once; errors reach every waiter and are not
//! cached; a panicking or cancelled loader does not wedge the others.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::time::Duration;

use veza_cache::Cache;
use veza_core::Observe;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .unwrap()
}

#[test]
fn a_thousand_concurrent_async_loads_call_the_loader_once() {
    runtime().block_on(async {
        let cache = Arc::new(Cache::<u32, String>::new(100).unwrap());
        let calls = Arc::new(AtomicUsize::new(0));
        let tasks: Vec<_> = (0..1000)
            .map(|_| {
                let (cache, calls) = (cache.clone(), calls.clone());
                tokio::spawn(async move {
                    cache
                        .get_or_load_async(&7, async {
                            calls.fetch_add(1, SeqCst);
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            "seven".to_owned()
                        })
                        .await
                })
            })
            .collect();
        for t in tasks {
            assert_eq!(t.await.unwrap(), "seven");
        }
        assert_eq!(calls.load(SeqCst), 1);
        let stats = cache.snapshot();
        assert_eq!((stats.loads, stats.inserts), (1, 1));
        assert_eq!(stats.hits + stats.misses, 1000);
    });
}

#[test]
fn concurrent_blocking_loads_call_the_loader_once() {
    let cache = Arc::new(Cache::<u32, u64>::new(100).unwrap());
    let calls = Arc::new(AtomicUsize::new(0));
    let barrier = Arc::new(std::sync::Barrier::new(64));
    let threads: Vec<_> = (0..64)
        .map(|_| {
            let (cache, calls, barrier) = (cache.clone(), calls.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                cache.get_or_load(&1, || {
                    calls.fetch_add(1, SeqCst);
                    std::thread::sleep(Duration::from_millis(50));
                    99
                })
            })
        })
        .collect();
    for t in threads {
        assert_eq!(t.join().unwrap(), 99);
    }
    assert_eq!(calls.load(SeqCst), 1);
}

#[test]
fn an_error_reaches_every_waiter_and_the_next_call_retries() {
    runtime().block_on(async {
        let cache = Arc::new(Cache::<u32, u32>::new(100).unwrap());
        let calls = Arc::new(AtomicUsize::new(0));
        let tasks: Vec<_> = (0..100)
            .map(|_| {
                let (cache, calls) = (cache.clone(), calls.clone());
                tokio::spawn(async move {
                    cache
                        .try_get_or_load_async(&1, async {
                            calls.fetch_add(1, SeqCst);
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            Err::<u32, _>(std::io::Error::other("database down"))
                        })
                        .await
                })
            })
            .collect();
        for t in tasks {
            let err = t.await.unwrap().unwrap_err();
            assert_eq!(err.to_string(), "database down");
            assert!(err.downcast_ref::<std::io::Error>().is_some());
        }
        assert_eq!(
            calls.load(SeqCst),
            1,
            "the waiters shared the one failed load"
        );
        assert_eq!(cache.get(&1), None, "the error is not cached");
        let ok = cache
            .try_get_or_load_async(&1, async { Ok::<_, std::io::Error>(5) })
            .await
            .unwrap();
        assert_eq!(ok, 5, "the next call loads again");
        assert_eq!(cache.snapshot().load_failures, 1);
    });
}

#[test]
fn a_cancelled_loader_does_not_block_the_other_waiters() {
    runtime().block_on(async {
        let cache = Arc::new(Cache::<u32, u32>::new(100).unwrap());
        let c = cache.clone();
        // The first loader never finishes; we drop it after it has started (been polled).
        let (started_tx, started_rx) = tokio::sync::oneshot::channel();
        let stuck = tokio::spawn(async move {
            c.get_or_load_async(&1, async {
                let _ = started_tx.send(());
                std::future::pending::<u32>().await
            })
            .await
        });
        started_rx.await.unwrap();
        let c = cache.clone();
        let waiter = tokio::spawn(async move { c.get_or_load_async(&1, async { 2 }).await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        stuck.abort(); // drops the loader future mid-flight
        let got = tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("the waiter was wedged by the cancelled loader")
            .unwrap();
        assert_eq!(got, 2);
    });
}

#[test]
fn a_panicking_loader_does_not_wedge_the_other_waiters() {
    let cache = Arc::new(Cache::<u32, u32>::new(100).unwrap());
    let c = cache.clone();
    let (entered_tx, entered_rx) = std::sync::mpsc::channel();
    let panicking = std::thread::spawn(move || {
        c.get_or_load(&1, || {
            entered_tx.send(()).unwrap();
            std::thread::sleep(Duration::from_millis(50));
            panic!("deliberate loader panic");
        })
    });
    entered_rx.recv().unwrap();
    let c = cache.clone();
    let waiter = std::thread::spawn(move || c.get_or_load(&1, || 3));
    assert!(panicking.join().is_err());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || tx.send(waiter.join().unwrap()));
    assert_eq!(rx.recv_timeout(Duration::from_secs(5)).unwrap(), 3);
}

#[test]
fn absences_are_cached_only_with_a_negative_ttl() {
    let calls = AtomicUsize::new(0);
    let lookup = || {
        calls.fetch_add(1, SeqCst);
        Ok::<Option<u32>, std::io::Error>(None)
    };
    let plain = Cache::<u32, u32>::new(10).unwrap();
    assert_eq!(plain.try_get_or_load_opt(&1, lookup).unwrap(), None);
    assert_eq!(plain.try_get_or_load_opt(&1, lookup).unwrap(), None);
    assert_eq!(
        calls.load(SeqCst),
        2,
        "without negative_ttl every call looks up"
    );

    calls.store(0, SeqCst);
    let negative = Cache::<u32, u32>::builder()
        .negative_ttl(Duration::from_millis(100))
        .build()
        .unwrap();
    assert_eq!(negative.try_get_or_load_opt(&1, lookup).unwrap(), None);
    assert_eq!(negative.try_get_or_load_opt(&1, lookup).unwrap(), None);
    assert_eq!(calls.load(SeqCst), 1, "the absence was cached");
    assert_eq!(negative.get(&1), None, "an absence is not a value");
    std::thread::sleep(Duration::from_millis(150));
    assert_eq!(negative.try_get_or_load_opt(&1, lookup).unwrap(), None);
    assert_eq!(calls.load(SeqCst), 2, "the cached absence expired");
}

#[test]
fn an_entry_says_whether_it_was_a_hit_a_load_or_a_wait() {
    use veza_cache::Source;
    let cache: Cache<u32, u32> = Cache::new(100).unwrap();
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(8));
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let cache = cache.clone();
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                barrier.wait();
                let entry = cache.entry_or_load(&1, || {
                    std::thread::sleep(std::time::Duration::from_millis(100));
                    7
                });
                assert_eq!(*entry.value(), 7);
                entry.source()
            })
        })
        .collect();
    let sources: Vec<Source> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    let count = |s: Source| sources.iter().filter(|x| **x == s).count();
    assert_eq!(count(Source::Loaded), 1, "{sources:?}");
    assert!(count(Source::Coalesced) >= 1, "{sources:?}");
    assert_eq!(
        count(Source::Loaded) + count(Source::Coalesced) + count(Source::Hit),
        8
    );
    let again = cache.entry_or_load(&1, || unreachable!("cached"));
    assert_eq!(again.source(), Source::Hit);
    assert!(!again.is_fresh());
    let fresh = cache.entry_or_load(&2, || 9);
    assert!(fresh.is_fresh());
    assert_eq!(fresh.into_value(), 9);
}
