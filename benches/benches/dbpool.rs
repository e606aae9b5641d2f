//! `dbpool/*`: veza-dbpool against bb8 (raw, its defaults: a test query on every checkout) and
//! deadpool-postgres (its documented fast recycling), on the real PostgreSQL.
//!
//! The work: 64 tasks, each checking out a connection and running `SELECT 1`, over and over,
//! on a pool of 16 connections and a 2-thread tokio runtime. `select1` is the queries per
//! second; `acquire_tail` the 99.9th percentile of the time a task waited for its checkout.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use veza_benches::{Bench, Case, Contender, Metric};

const TASKS: usize = 64;
const POOL: u32 = 16;
/// Samples per contender in a full run. Pool overhead is about 1% of the CPU a query costs here
/// (the rest is the driver, the kernel's loopback TCP and the server, the same for every pool),
/// while one second of this work moves by +-10% between samples on a 2-vCPU machine: more
/// samples than the harness's 15 keep the medians' ratio from being a coin toss.
const SAMPLES: usize = 31;

/// Checks out a connection, runs `SELECT 1`, and returns how long the checkout waited.
type Checkout = Arc<dyn Fn() -> Pin<Box<dyn Future<Output = Duration> + Send>> + Send + Sync>;

/// Counts allocations per operation (`Case::ops`).
#[global_allocator]
static ALLOC: veza_benches::CountingAlloc = veza_benches::CountingAlloc;

fn main() {
    let bench = Bench::from_args("dbpool");
    let select1 = Case::new(
        "dbpool/select1",
        "64 tasks x (checkout, SELECT 1) on a pool of 16, 2 runtime threads",
        Metric::Throughput,
        "queries/s",
        "veza-dbpool",
    )
    .samples(SAMPLES, 5);
    let tail = Case::new(
        "dbpool/acquire_tail",
        "p99.9 checkout wait in the select1 work",
        Metric::Latency,
        "ns",
        "veza-dbpool",
    )
    .samples(SAMPLES, 5);
    let url = match bench.database_url() {
        Ok(url) => url,
        Err(reason) => {
            bench.skip(&select1, &reason);
            bench.skip(&tail, &reason);
            return;
        }
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let batch = Case::new(
        "dbpool/batch_insert_100k",
        "insert users: binary COPY of 100,000 rows vs one prepared INSERT per row in one transaction (row-by-row inserts 5,000 per sample: its rate is per second)",
        Metric::Throughput,
        "rows/s",
        "veza-dbpool",
    )
    .samples(5, 2);
    let deep = Case::new(
        "dbpool/page_deep",
        "one 100-row page at depth 900,000 of 1,000,000 users: keyset cursor vs OFFSET",
        Metric::Latency,
        "ns",
        "veza-dbpool",
    )
    .samples(5, 3);
    if bench.wants(batch.id()) || bench.wants(deep.id()) {
        rt.block_on(queries(&bench, &url, &batch, &deep));
    }
    if !bench.wants(select1.id()) && !bench.wants(tail.id()) {
        return;
    }
    let per_task = if bench.quick() { 100 } else { 300 };
    let contenders: Vec<(&str, Checkout)> = rt.block_on(async {
        vec![
            ("veza-dbpool", veza(&url)),
            ("bb8", bb8_raw(&url).await),
            ("deadpool", deadpool(&url)),
        ]
    });
    // Allocations per query for the throughput case (the tail case repeats the same work).
    let select1 = select1.ops(TASKS * per_task);
    for (case, want_tail) in [(&select1, false), (&tail, true)] {
        let runs: Vec<Contender<'_>> = contenders
            .iter()
            .map(|(name, checkout)| {
                let checkout = checkout.clone();
                let rt = &rt;
                Contender::new(name, move || {
                    let (rate, p999) = rt.block_on(work(checkout.clone(), per_task));
                    if want_tail { p999 } else { rate }
                })
            })
            .collect();
        bench.run(case, runs);
    }
}

/// Runs the work; returns (queries per second, p99.9 checkout wait in ns).
async fn work(checkout: Checkout, per_task: usize) -> (f64, f64) {
    let started = Instant::now();
    let tasks: Vec<_> = (0..TASKS)
        .map(|_| {
            let checkout = checkout.clone();
            tokio::spawn(async move {
                let mut waits = Vec::with_capacity(per_task);
                for _ in 0..per_task {
                    waits.push(checkout().await);
                }
                waits
            })
        })
        .collect();
    let mut waits: Vec<Duration> = Vec::new();
    for t in tasks {
        waits.extend(t.await.expect("task"));
    }
    let rate = (TASKS * per_task) as f64 / started.elapsed().as_secs_f64();
    waits.sort_unstable();
    let p999 = waits[(waits.len() * 999 / 1000).min(waits.len() - 1)];
    (rate, p999.as_nanos() as f64)
}

/// The measured work, the same for every pool: check out (timed), `SELECT 1`, give back.
macro_rules! select1 {
    ($pool:expr) => {{
        let pool = $pool;
        Arc::new(move || {
            let pool = pool.clone();
            Box::pin(async move {
                let t = Instant::now();
                let conn = pool.get().await.expect("checkout");
                let waited = t.elapsed();
                conn.query_one("SELECT 1", &[]).await.expect("select 1");
                waited
            }) as Pin<Box<dyn Future<Output = Duration> + Send>>
        }) as Checkout
    }};
}

fn veza(url: &str) -> Checkout {
    let mut config = veza_dbpool::Config::from_url(url).expect("url");
    config.max_size = POOL;
    config.checkout_timeout = Duration::from_secs(30);
    let pool = Arc::new(veza_dbpool::Pool::new(config).expect("pool"));
    select1!(pool)
}

async fn bb8_raw(url: &str) -> Checkout {
    let manager =
        bb8_postgres::PostgresConnectionManager::new_from_stringlike(url, tokio_postgres::NoTls)
            .expect("url");
    let pool = Arc::new(
        bb8::Pool::builder()
            .max_size(POOL)
            .build(manager)
            .await
            .expect("pool"),
    );
    select1!(pool)
}

fn deadpool(url: &str) -> Checkout {
    let mut config = deadpool_postgres::Config::new();
    config.url = Some(url.to_owned());
    config.manager = Some(deadpool_postgres::ManagerConfig {
        recycling_method: deadpool_postgres::RecyclingMethod::Fast,
    });
    config.pool = Some(deadpool_postgres::PoolConfig::new(POOL as usize));
    let pool = Arc::new(
        config
            .create_pool(
                Some(deadpool_postgres::Runtime::Tokio1),
                tokio_postgres::NoTls,
            )
            .expect("pool"),
    );
    select1!(pool)
}

/// A pool whose search path is the bench schema.
fn schema_pool(url: &str, schema: &str) -> veza_dbpool::Pool {
    let mut config = veza_dbpool::Config::from_url(url).expect("url");
    config.max_size = 2;
    config.checkout_timeout = Duration::from_secs(60);
    config.pg.options(format!("-c search_path={schema}"));
    veza_dbpool::Pool::new(config).expect("pool")
}

fn people(n: usize, from: usize) -> Vec<veza_dbpool::users::NewUser> {
    (from..from + n)
        .map(|i| veza_dbpool::users::NewUser {
            email: format!("user{i}@example.com"),
            name: format!("User {i}"),
            created_at: std::time::UNIX_EPOCH + Duration::from_millis(1_700_000_000_000 + i as u64),
        })
        .collect()
}

async fn queries(bench: &Bench, url: &str, batch: &Case, deep: &Case) {
    let schema = "veza_bench_dbpool";
    let admin = schema_pool(url, "public");
    admin
        .get()
        .await
        .expect("admin")
        .batch_execute(&format!(
            "DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema};"
        ))
        .await
        .expect("schema");
    let pool = schema_pool(url, schema);
    let users = veza_dbpool::users::Users::new(&pool);
    users.migrate().await.expect("migrate");
    let rows = people(100_000, 0);
    let few = people(5_000, 0);
    let handle = tokio::runtime::Handle::current();

    // Blocking harness calls from inside the runtime: run them on a blocking thread.
    let truncate = |pool: &veza_dbpool::Pool| {
        handle.block_on(async {
            pool.get()
                .await
                .expect("conn")
                .batch_execute("TRUNCATE users")
                .await
                .expect("truncate");
        });
    };
    tokio::task::block_in_place(|| {
        bench.run(
            &batch.clone().ops(rows.len()),
            vec![
                Contender::new("veza-dbpool", || {
                    truncate(&pool);
                    let t = Instant::now();
                    let n = handle.block_on(users.batch_insert(&rows)).expect("copy");
                    assert_eq!(n, rows.len() as u64);
                    n as f64 / t.elapsed().as_secs_f64()
                }),
                Contender::new("row-by-row", || {
                    truncate(&pool);
                    let t = Instant::now();
                    handle.block_on(async {
                        let mut conn = pool.get().await.expect("conn");
                        let tx = conn.transaction().await.expect("tx");
                        let insert = tx
                            .prepare(
                                "INSERT INTO users (email, name, created_at) VALUES ($1, $2, $3)",
                            )
                            .await
                            .expect("prepare");
                        for u in &few {
                            tx.execute(&insert, &[&u.email, &u.name, &u.created_at])
                                .await
                                .expect("insert");
                        }
                        tx.commit().await.expect("commit");
                    });
                    few.len() as f64 / t.elapsed().as_secs_f64()
                })
                .ops(few.len()),
            ],
        );
    });

    if bench.wants(deep.id()) {
        pool.get()
            .await
            .expect("conn")
            .batch_execute("TRUNCATE users")
            .await
            .expect("truncate");
        // 1,000,000 users, loaded by COPY in chunks.
        for chunk in 0..10 {
            users
                .batch_insert(&people(100_000, chunk * 100_000))
                .await
                .expect("load");
        }
        pool.get()
            .await
            .expect("conn")
            .batch_execute("ANALYZE users")
            .await
            .expect("analyze");
        let before = users.page_offset(899_999, 1).await.expect("row");
        let cursor = before[0].cursor();
        tokio::task::block_in_place(|| {
            bench.run(
                &deep.clone().ops(1),
                vec![
                    Contender::new("veza-dbpool", || {
                        let t = Instant::now();
                        let (page, _) = handle
                            .block_on(users.page_after(Some(&cursor), 100))
                            .expect("page");
                        assert_eq!(page.len(), 100);
                        t.elapsed().as_nanos() as f64
                    }),
                    Contender::new("offset", || {
                        let t = Instant::now();
                        let page = handle
                            .block_on(users.page_offset(900_000, 100))
                            .expect("page");
                        assert_eq!(page.len(), 100);
                        t.elapsed().as_nanos() as f64
                    }),
                ],
            );
        });
    }
    admin
        .get()
        .await
        .expect("admin")
        .batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
        .await
        .expect("drop schema");
}
