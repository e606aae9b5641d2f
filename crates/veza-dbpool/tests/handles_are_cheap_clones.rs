//! `Pool` is a cheap `Clone` sharing one pool, and `get_owned` gives a connection that moves
//! into a spawned task; closing any clone closes the pool for all.

mod common;

use veza_core::Observe;
use veza_dbpool::{Conn, Error, Pool};

#[test]
fn clones_share_one_pool_and_owned_connections_move_into_tasks() {
    common::runtime().block_on(async {
        let pool = Pool::new(common::config("clones", 4)).unwrap();
        // A connection taken here, used in a spawned task.
        let conn: Conn<'static> = pool.get_owned().await.unwrap();
        let moved = tokio::spawn(async move {
            let one: i32 = conn.query_one("SELECT 1", &[]).await.unwrap().get(0);
            one
        });
        assert_eq!(moved.await.unwrap(), 1);

        // Clones in eight tasks: one pool of four connections serves them all.
        let tasks: Vec<_> = (0..8)
            .map(|i| {
                let pool = pool.clone();
                tokio::spawn(async move {
                    for _ in 0..20 {
                        let conn = pool.get().await.unwrap();
                        let n: i32 = conn
                            .query_one("SELECT $1::int", &[&i])
                            .await
                            .unwrap()
                            .get(0);
                        assert_eq!(n, i);
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        let stats = pool.snapshot();
        assert!(stats.size <= 4, "{stats:?}");
        assert_eq!(
            stats.acquired, 161,
            "every clone's checkouts counted in one pool"
        );

        // Closing a clone closes the pool for every holder.
        let other = pool.clone();
        other.close().await;
        assert!(pool.is_closed());
        assert!(matches!(pool.get().await, Err(Error::Closed)));
        assert!(matches!(pool.get_owned().await, Err(Error::Closed)));
    });
}
