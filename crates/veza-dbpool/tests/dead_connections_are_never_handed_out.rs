//! After the server kills every pooled backend, checkouts get live connections; a statement
//! timeout fails the statement, not the connection; a server that goes silent costs a
//! checkout its timeout, not more.

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

/// A loopback proxy to the test server that can stop forwarding (a path that goes silent: no
/// FIN, no RST, as when a host or a network link dies). Only bytes of connections it carries.
struct FreezingProxy {
    port: u16,
    frozen: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl FreezingProxy {
    async fn start(upstream: std::net::SocketAddr) -> FreezingProxy {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicBool, Ordering};
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let frozen = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&frozen);
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = tokio::net::TcpStream::connect(upstream).await else {
                    continue;
                };
                let (cr, cw) = client.into_split();
                let (sr, sw) = server.into_split();
                type Read = Box<dyn tokio::io::AsyncRead + Unpin + Send>;
                type Write = Box<dyn tokio::io::AsyncWrite + Unpin + Send>;
                let ways: [(Read, Write); 2] =
                    [(Box::new(cr), Box::new(sw)), (Box::new(sr), Box::new(cw))];
                for (mut from, mut to) in ways {
                    let flag = Arc::clone(&flag);
                    tokio::spawn(async move {
                        let mut buf = vec![0u8; 16 * 1024];
                        loop {
                            let n = match from.read(&mut buf).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => n,
                            };
                            // Frozen: what arrives is swallowed, as by a dead path.
                            if flag.load(Ordering::Acquire) {
                                continue;
                            }
                            if to.write_all(&buf[..n]).await.is_err() {
                                return;
                            }
                        }
                    });
                }
            }
        });
        FreezingProxy { port, frozen }
    }

    fn freeze(&self, on: bool) {
        self.frozen.store(on, std::sync::atomic::Ordering::Release);
    }
}

#[test]
fn a_silent_server_costs_a_checkout_its_timeout_not_more() {
    common::runtime().block_on(async {
        let pg: veza_dbpool::tokio_postgres::Config = common::url().parse().unwrap();
        let host = match &pg.get_hosts()[0] {
            veza_dbpool::tokio_postgres::config::Host::Tcp(h) => h.clone(),
            #[allow(unreachable_patterns)]
            _ => "127.0.0.1".to_owned(),
        };
        let port = pg.get_ports().first().copied().unwrap_or(5432);
        let upstream = tokio::net::lookup_host((host.as_str(), port))
            .await
            .unwrap()
            .next()
            .unwrap();
        let proxy = FreezingProxy::start(upstream).await;

        let mut config = common::config("silent", 1);
        // The test server's credentials and database, at the proxy's address only.
        let mut only = veza_dbpool::tokio_postgres::Config::new();
        only.host("127.0.0.1").port(proxy.port);
        if let Some(user) = pg.get_user() {
            only.user(user);
        }
        if let Some(password) = pg.get_password() {
            only.password(password);
        }
        if let Some(db) = pg.get_dbname() {
            only.dbname(db);
        }
        only.application_name(format!("veza-test-silent-{}", std::process::id()));
        config.pg = only;
        config.test_idle_after = Duration::from_millis(50);
        config.checkout_timeout = Duration::from_millis(500);
        let pool = Pool::new(config).unwrap();

        let conn = pool.get().await.unwrap();
        let one: i32 = conn.query_one("SELECT 1", &[]).await.unwrap().get(0);
        assert_eq!(one, 1);
        drop(conn);
        tokio::time::sleep(Duration::from_millis(100)).await;

        // Idle past `test_idle_after`: the checkout tests the connection, and nothing answers.
        proxy.freeze(true);
        let started = std::time::Instant::now();
        let got = tokio::time::timeout(Duration::from_secs(10), pool.get())
            .await
            .expect("the idle test must be bounded by the checkout timeout");
        let waited = started.elapsed();
        let err = got.expect_err("nothing answered the test");
        assert_eq!(err.kind(), ErrorKind::Timeout, "{err}");
        assert!(
            waited < Duration::from_secs(2),
            "the checkout waited {waited:?} on a silent server (timeout 500 ms)"
        );

        // The path comes back: the silent connection was closed, a new one works.
        proxy.freeze(false);
        let conn = pool.get().await.unwrap();
        let one: i32 = conn.query_one("SELECT 1", &[]).await.unwrap().get(0);
        assert_eq!(one, 1);
    });
}
