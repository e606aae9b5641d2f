//! After the server kills every pooled backend, checkouts get live connections; a statement
//! timeout fails the statement, not the connection.

mod common;

use std::time::Duration;

use veza_core::{Classify, ErrorKind, Health, HealthCheck};
use veza_dbpool::Pool;

#[test]
fn terminated_backends_are_replaced_transparently() {
    common::runtime().block_on(async {
        let config = common::config("terminate", 4);
        let app = config.pg.get_application_name().unwrap().to_owned();
        let pool = Pool::new(config).unwrap();
        // Open all four connections.
        let conns: Vec<_> = futures_all(&pool, 4).await;
        drop(conns);

        assert_eq!(common::terminate_backends(&app).await, 4);
        // Give the server a moment to close the sockets. bb8 on its own, with its checkout
        // test off, would still hand these dead connections out; with it on, it pays a round
        // trip on every checkout.
        tokio::time::sleep(Duration::from_millis(100)).await;

        for i in 0..20 {
            let conn = pool.get().await.unwrap();
            let one: i32 = conn
                .query_one("SELECT 1", &[])
                .await
                .unwrap_or_else(|e| panic!("checkout {i} got a dead connection: {e}"))
                .get(0);
            assert_eq!(one, 1);
        }
    });
}

async fn futures_all(pool: &Pool, n: usize) -> Vec<veza_dbpool::Conn<'_>> {
    let mut conns = Vec::new();
    for _ in 0..n {
        conns.push(pool.get().await.unwrap());
    }
    conns
}

#[test]
fn a_statement_timeout_fails_the_statement_and_keeps_the_connection() {
    common::runtime().block_on(async {
        let mut config = common::config("stmt-timeout", 1);
        config.statement_timeout = Some(Duration::from_millis(100));
        let pool = Pool::new(config).unwrap();
        let mut conn = pool.get().await.unwrap();
        let err = conn.query("SELECT pg_sleep(2)", &[]).await.unwrap_err();
        let err = conn.failed(err);
        assert_eq!(err.sqlstate(), Some("57014"), "{err}");
        assert_eq!(err.kind(), ErrorKind::Timeout);
        assert!(!err.breaks_connection());
        let one: i32 = conn.query_one("SELECT 1", &[]).await.unwrap().get(0);
        assert_eq!(one, 1, "the same connection still works");
        drop(conn);
        assert_eq!(pool.check().await, Health::Healthy);
    });
}
