//! The pool through a real PgBouncer in transaction mode (Debian's `pgbouncer`, started here on
//! a free loopback port in front of the test PostgreSQL, stopped at the end): queries, COPY,
//! keyset pages and retried transactions, with the statement cache off.

mod common;

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_postgres::types::Type;
use veza_dbpool::{Config, Cursor, Pool, RetryPolicy};

/// A PgBouncer this test started; killed when dropped.
struct PgBouncer {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl Drop for PgBouncer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn binary() -> Option<PathBuf> {
    let found = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .chain([PathBuf::from("/usr/sbin")])
        .map(|d| d.join("pgbouncer"))
        .find(|p| p.is_file());
    if found.is_none() && std::env::var_os("CI").is_some() {
        panic!("pgbouncer is required in CI (apt-get install pgbouncer)");
    }
    found
}

impl PgBouncer {
    /// Starts one in transaction mode in front of the test database, or `None` (outside CI)
    /// when pgbouncer is not installed.
    fn start(tag: &str) -> Option<PgBouncer> {
        let bin = binary()?;
        let upstream: tokio_postgres::Config = common::url().parse().unwrap();
        let host = match &upstream.get_hosts()[0] {
            tokio_postgres::config::Host::Tcp(h) => h.clone(),
            _ => "127.0.0.1".to_owned(),
        };
        let upstream_port = upstream.get_ports().first().copied().unwrap_or(5432);
        let user = upstream.get_user().unwrap_or("postgres").to_owned();
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir = std::env::temp_dir().join(format!("veza-pgbouncer-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        // PgBouncer refuses to run as root: it switches to `postgres`, which must reach the files.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        }
        let ini = dir.join("pgbouncer.ini");
        std::fs::write(dir.join("userlist.txt"), format!("\"{user}\" \"\"\n")).unwrap();
        std::fs::write(
            &ini,
            format!(
                "[databases]\n* = host={host} port={upstream_port}\n\
                 [pgbouncer]\nlisten_addr = 127.0.0.1\nlisten_port = {port}\n\
                 unix_socket_dir =\nauth_type = trust\nauth_file = {users}\n\
                 pool_mode = transaction\ndefault_pool_size = 4\nmax_client_conn = 100\n\
                 server_round_robin = 1\n\
                 ignore_startup_parameters = extra_float_digits\n\
                 logfile = {log}\npidfile = {pid}\n",
                users = dir.join("userlist.txt").display(),
                log = dir.join("pgbouncer.log").display(),
                pid = dir.join("pgbouncer.pid").display(),
            ),
        )
        .unwrap();
        let mut cmd = Command::new(bin);
        if common::running_as_root() {
            cmd.arg("-u").arg("postgres");
        }
        let child = cmd
            .arg(&ini)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("pgbouncer starts");
        let bouncer = PgBouncer { child, port, dir };
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "pgbouncer did not listen on {port}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(bouncer)
    }

    /// A pool through it: the statement cache off, as transaction mode needs.
    fn pool(&self, tag: &str, max_size: u32) -> Pool {
        let upstream: tokio_postgres::Config = common::url().parse().unwrap();
        let mut c = Config::from_url(&format!(
            "postgres://{}@127.0.0.1:{}/{}",
            upstream.get_user().unwrap_or("postgres"),
            self.port,
            upstream.get_dbname().unwrap_or("postgres")
        ))
        .unwrap();
        c.pg.application_name(format!("veza-bouncer-{tag}"));
        c.max_size = max_size;
        c.statement_cache = false;
        Pool::new(c).unwrap()
    }
}

#[test]
fn queries_copy_pages_and_retried_transactions_work_in_transaction_mode() {
    let Some(bouncer) = PgBouncer::start("suite") else {
        return;
    };
    common::runtime().block_on(async {
        let schema = format!("veza_bouncer_{}", std::process::id());
        let pool = Arc::new(bouncer.pool("suite", 8));
        // No `search_path` option through PgBouncer: names are schema-qualified.
        {
            let conn = pool.get().await.unwrap();
            conn.batch_execute(&format!(
                "DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}; \
                 CREATE TABLE {schema}.accounts (id int PRIMARY KEY, balance int NOT NULL); \
                 INSERT INTO {schema}.accounts VALUES (1, 1000), (2, 1000)"
            ))
            .await
            .unwrap();
        }

        // Plain queries from 8 tasks at once, over the pooler's 4 server connections (handed
        // out round robin): a statement prepared on one is unknown on the others.
        let tasks: Vec<_> = (0..8i64)
            .map(|t| {
                let pool = Arc::clone(&pool);
                tokio::spawn(async move {
                    for i in 0..50i64 {
                        let mut conn = pool.get().await.unwrap();
                        let n = t * 1000 + i;
                        let rows = conn
                            .query_cached("SELECT $1::int8 + 1", &[(&n, Type::INT8)])
                            .await
                            .unwrap();
                        assert_eq!(rows[0].get::<_, i64>(0), n + 1);
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }

        // COPY, then keyset pages over what it wrote.
        {
            let conn = pool.get().await.unwrap();
            conn.batch_execute(&format!(
                "CREATE TABLE {schema}.people (id bigserial PRIMARY KEY, name text NOT NULL)"
            ))
            .await
            .unwrap();
        }
        let names: Vec<String> = (0..500).map(|i| format!("p{i:03}")).collect();
        let mut conn = pool.get().await.unwrap();
        let rows: Vec<[&(dyn tokio_postgres::types::ToSql + Sync); 1]> =
            names.iter().map(|n| [n as _]).collect();
        let inserted = conn
            .copy_rows(&format!("{schema}.people"), &["name"], &[Type::TEXT], &rows)
            .await
            .unwrap();
        assert_eq!(inserted, 500);
        drop(conn);
        let mut seen = Vec::new();
        let mut after = 0i64;
        loop {
            let mut conn = pool.get().await.unwrap();
            let page = conn
                .query_cached(
                    &format!(
                        "SELECT id, name FROM {schema}.people WHERE id > $1 ORDER BY id LIMIT 64"
                    ),
                    &[(&after, Type::INT8)],
                )
                .await
                .unwrap();
            if page.is_empty() {
                break;
            }
            after = page.last().unwrap().get(0);
            // The cursor round-trips as the API hands it out.
            let cursor = Cursor::decode(&Cursor::new([after]).encode(), 1).unwrap();
            assert_eq!(cursor.keys(), &[after]);
            seen.extend(page.iter().map(|r| r.get::<_, String>(1)));
        }
        assert_eq!(seen, names, "every row once, in order");

        // Serializable transfers from 4 tasks at once (three move money one way, one the
        // other): conflicts are retried, and every transfer commits exactly once.
        let mut policy = RetryPolicy::default();
        policy.max_attempts = 50;
        let tasks: Vec<_> = (0..4)
            .map(|t| {
                let (pool, schema) = (Arc::clone(&pool), schema.clone());
                tokio::spawn(async move {
                    let (from, to) = if t < 3 { (1, 2) } else { (2, 1) };
                    let a = format!(
                        "UPDATE {schema}.accounts SET balance = balance - 1 WHERE id = {from}"
                    );
                    let b = format!(
                        "UPDATE {schema}.accounts SET balance = balance + 1 WHERE id = {to}"
                    );
                    for _ in 0..10 {
                        pool.transaction(policy, |tx| {
                            let (a, b) = (a.clone(), b.clone());
                            Box::pin(async move {
                                tx.batch_execute(&a).await?;
                                tx.batch_execute(&b).await?;
                                Ok(())
                            })
                        })
                        .await
                        .unwrap();
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        let conn = pool.get().await.unwrap();
        let rows = conn
            .simple_query(&format!(
                "SELECT string_agg(balance::text, ',' ORDER BY id) FROM {schema}.accounts"
            ))
            .await
            .unwrap();
        let balances = rows
            .iter()
            .find_map(|m| match m {
                tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_owned),
                _ => None,
            })
            .unwrap();
        assert_eq!(
            balances, "980,1020",
            "each of the 40 transfers committed once"
        );
        drop(conn);
        let conn = pool.get().await.unwrap();
        conn.batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
            .await
            .unwrap();
    });
}
