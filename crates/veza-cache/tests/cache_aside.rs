//! `Cache` as a `veza_core::AsyncCache` trait object, and `CacheAside` over an async loader.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

use veza_cache::{Cache, CacheAside};
use veza_core::{AsyncCache, BoxError};

#[test]
fn the_seam_works_through_a_trait_object() {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(async {
            let cache: Arc<dyn AsyncCache<u64, String>> = Arc::new(Cache::new(100).unwrap());
            let loaded = cache
                .get_or_load(1, Box::pin(async { Ok::<_, BoxError>("one".to_owned()) }))
                .await
                .unwrap();
            assert_eq!(loaded, "one");
            assert_eq!(cache.get(&1).await.as_deref(), Some("one"));
            cache.invalidate(&1).await;
            assert_eq!(cache.get(&1).await, None);
            cache.insert(2, "two".into()).await;
            cache.invalidate_all().await;
            assert_eq!(cache.get(&2).await, None);
        });
}

#[test]
fn cache_aside_loads_once_and_forgets_on_invalidate() {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(async {
            let calls = Arc::new(AtomicUsize::new(0));
            let c = calls.clone();
            let users = CacheAside::new(Arc::new(Cache::new(100).unwrap()), move |id: u64| {
                let c = c.clone();
                async move {
                    c.fetch_add(1, SeqCst);
                    Ok::<_, std::io::Error>(format!("user {id}"))
                }
            });
            assert_eq!(users.get(7).await.unwrap(), "user 7");
            assert_eq!(users.get(7).await.unwrap(), "user 7");
            assert_eq!(calls.load(SeqCst), 1);
            users.invalidate(&7);
            assert_eq!(users.get(7).await.unwrap(), "user 7");
            assert_eq!(calls.load(SeqCst), 2);
            users.invalidate_if(|id, _| *id == 7);
            assert!(Cache::get(users.cache(), &7).is_none());
        });
}
