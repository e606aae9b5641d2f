//! A failed connection attempt fails waiting callers only when nothing in the pool can serve
//! them: against a role limited to 8 connections, a pool of 16 serves 64 callers with no
//! error; with nothing alive, the server's refusal comes back at once, classified.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use veza_core::{Classify, ErrorKind, Observe};

/// A login role of its own with a connection limit, dropped by [`Role::drop_now`].
struct Role {
    name: String,
}

impl Role {
    async fn create(tag: &str, limit: i32) -> Role {
        let name = format!("veza_limited_{tag}_{}", std::process::id());
        let admin = veza_dbpool::Pool::new(common::config("role-admin", 1)).unwrap();
        let c = admin.get().await.unwrap();
        c.batch_execute(&format!(
            "DROP ROLE IF EXISTS {name}; CREATE ROLE {name} LOGIN CONNECTION LIMIT {limit}"
        ))
        .await
        .unwrap();
        Role { name }
    }

    fn pool(&self, max_size: u32) -> veza_dbpool::Pool {
        let mut c = common::config(&self.name, max_size);
        c.pg.user(&self.name);
        veza_dbpool::Pool::new(c).unwrap()
    }

    async fn drop_now(self) {
        let admin = veza_dbpool::Pool::new(common::config("role-admin", 1)).unwrap();
        let c = admin.get().await.unwrap();
        c.batch_execute(&format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{0}'; \
             DROP ROLE IF EXISTS {0}",
            self.name
        ))
        .await
        .unwrap();
    }
}

#[test]
fn a_pool_larger_than_the_role_limit_serves_everyone_without_errors() {
    common::runtime().block_on(async {
        let role = Role::create("eight", 8).await;
        let pool = Arc::new(role.pool(16));
        let errors = Arc::new(AtomicU64::new(0));
        let served = Arc::new(AtomicU64::new(0));
        let until = Instant::now() + Duration::from_secs(3);
        let tasks: Vec<_> = (0..64)
            .map(|_| {
                let (pool, errors, served) =
                    (Arc::clone(&pool), Arc::clone(&errors), Arc::clone(&served));
                tokio::spawn(async move {
                    while Instant::now() < until {
                        match pool.get().await {
                            Ok(c) => match c.simple_query("SELECT 1").await {
                                Ok(_) => served.fetch_add(1, Ordering::Relaxed),
                                Err(_) => errors.fetch_add(1, Ordering::Relaxed),
                            },
                            Err(_) => errors.fetch_add(1, Ordering::Relaxed),
                        };
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        let stats = pool.snapshot();
        assert_eq!(errors.load(Ordering::Relaxed), 0, "{stats:?}");
        assert!(served.load(Ordering::Relaxed) > 1000, "{stats:?}");
        assert!(
            stats.size <= 8,
            "never more than the role allows: {stats:?}"
        );
        pool.close().await;
        role.drop_now().await;
    });
}

#[test]
fn with_nothing_alive_the_refusal_comes_at_once_as_overloaded() {
    common::runtime().block_on(async {
        let role = Role::create("zero", 0).await;
        let pool = role.pool(4);
        let started = Instant::now();
        let e = pool.get().await.unwrap_err();
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(e.sqlstate(), Some("53300"), "{e}");
        assert_eq!(e.kind(), ErrorKind::Overloaded, "{e}");
        role.drop_now().await;
    });
}

#[test]
fn a_client_side_configuration_error_is_invalid_input() {
    let parse = "host=127.0.0.1 port=notaport"
        .parse::<tokio_postgres::Config>()
        .unwrap_err();
    let e = veza_dbpool::Error::Connect(Arc::new(parse));
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
    assert!(!e.is_retryable());
}
