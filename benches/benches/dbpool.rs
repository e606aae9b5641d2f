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

/// Checks out a connection, runs `SELECT 1`, and returns how long the checkout waited.
type Checkout = Arc<dyn Fn() -> Pin<Box<dyn Future<Output = Duration> + Send>> + Send + Sync>;

fn main() {
    let bench = Bench::from_args("dbpool");
    let select1 = Case::new(
        "dbpool/select1",
        "64 tasks x (checkout, SELECT 1) on a pool of 16, 2 runtime threads",
        Metric::Throughput,
        "queries/s",
        "veza-dbpool",
    );
    let tail = Case::new(
        "dbpool/acquire_tail",
        "p99.9 checkout wait in the select1 work",
        Metric::Latency,
        "ns",
        "veza-dbpool",
    );
    let url = match bench.database_url() {
        Ok(url) => url,
        Err(reason) => {
            bench.skip(&select1, &reason);
            bench.skip(&tail, &reason);
            return;
        }
    };
    if !bench.wants(select1.id()) && !bench.wants(tail.id()) {
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let per_task = if bench.quick() { 100 } else { 300 };
    let contenders: Vec<(&str, Checkout)> = rt.block_on(async {
        vec![
            ("veza-dbpool", veza(&url)),
            ("bb8", bb8_raw(&url).await),
            ("deadpool", deadpool(&url)),
        ]
    });
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

fn veza(url: &str) -> Checkout {
    let mut config = veza_dbpool::Config::from_url(url).expect("url");
    config.max_size = POOL;
    config.checkout_timeout = Duration::from_secs(30);
    let pool = Arc::new(veza_dbpool::Pool::new(config).expect("pool"));
    Arc::new(move || {
        let pool = pool.clone();
        Box::pin(async move {
            let t = Instant::now();
            let conn = pool.get().await.expect("checkout");
            let waited = t.elapsed();
            conn.query_one("SELECT 1", &[]).await.expect("select 1");
            waited
        })
    })
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
    Arc::new(move || {
        let pool = pool.clone();
        Box::pin(async move {
            let t = Instant::now();
            let conn = pool.get().await.expect("checkout");
            let waited = t.elapsed();
            conn.query_one("SELECT 1", &[]).await.expect("select 1");
            waited
        })
    })
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
    Arc::new(move || {
        let pool = pool.clone();
        Box::pin(async move {
            let t = Instant::now();
            let conn = pool.get().await.expect("checkout");
            let waited = t.elapsed();
            conn.query_one("SELECT 1", &[]).await.expect("select 1");
            waited
        })
    })
}
