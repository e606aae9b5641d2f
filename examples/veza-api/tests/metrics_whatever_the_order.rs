//! A cache, a database pool, a worker pool, an object pool, a memory budget and an HTTP client
//! built (the client even used) *before* the recorder is installed still export, and their
//! figures move on `/metrics` (scraped over HTTP) with no `snapshot()` or `stats()` call: each
//! scrape asks every live component, and handles made before the install are made again.

mod common;

use std::time::{Duration, Instant};

use veza_core::Observe as _;

/// A loopback upstream answering every request `200 ok` and closing the connection.
async fn tiny_upstream() -> std::net::SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = stream
                    .write_all(
                        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok",
                    )
                    .await;
            });
        }
    });
    addr
}

/// The value of the series `series` (name with its labels, as rendered), if present.
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        let (name, v) = l.rsplit_once(' ')?;
        (name == series).then(|| v.parse().ok()).flatten()
    })
}

async fn scrape(client: &veza_httpopt::Client, url: &str) -> String {
    let response = client.get(url).send().await.expect("scrape");
    assert_eq!(response.status(), 200);
    String::from_utf8(response.body().to_vec()).expect("utf-8")
}

/// Scrapes until `check` holds (histogram samples reach the exporter at its upkeep), or fails
/// with the last text.
async fn eventually(
    client: &veza_httpopt::Client,
    url: &str,
    what: &str,
    check: impl Fn(&str) -> bool,
) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let text = scrape(client, url).await;
        if check(&text) {
            return text;
        }
        assert!(Instant::now() < deadline, "{what} never showed:\n{text}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn components_built_before_the_install_export_without_snapshots() {
    // Built first, with no recorder in the process.
    let cache = veza_cache::Cache::<u64, u64>::builder()
        .name("early_cache")
        .max_entries(100)
        .build()
        .unwrap();
    let db = veza_dbpool::Pool::builder()
        .url(&common::database_url())
        .name("early_db")
        .max_size(2)
        .build()
        .unwrap();
    let workers = veza_workers::WorkerPool::builder()
        .name("early_workers")
        .workers(1)
        .build()
        .unwrap();
    let objects = veza_mempool::Pool::builder(|| vec![0u8; 16])
        .name("early_objects")
        .build();
    let budget = veza_mempool::MemoryBudget::new(1 << 40).unwrap();
    let upstream = tiny_upstream().await;
    let http = veza_httpopt::Client::builder().build().unwrap();
    let before = http
        .get(format!("http://{upstream}/early"))
        .send()
        .await
        .unwrap();
    assert_eq!(before.status(), 200);

    // Then the recorder, and an endpoint.
    let metrics = veza_metrics::Metrics::builder()
        .upkeep_interval(Duration::from_millis(100))
        .install()
        .unwrap();
    let exporter = metrics.serve("127.0.0.1:0".parse().unwrap()).unwrap();
    let url = format!("http://{}/metrics", exporter.local_addr());
    let client = common::client();

    // Used through clones, as handlers would.
    let c = cache.clone();
    cache.insert(1, 10);
    for _ in 0..10 {
        assert_eq!(c.get(&1), Some(10));
    }
    for _ in 0..3 {
        let conn = db.get().await.unwrap();
        conn.query_one("SELECT 1", &[]).await.unwrap();
    }
    let w = workers.clone();
    for i in 0..5 {
        assert_eq!(w.submit(move || i).unwrap().join().unwrap(), i);
    }
    for _ in 0..4 {
        drop(objects.get());
    }
    budget.sample().unwrap();
    for _ in 0..2 {
        let r = http
            .get(format!("http://{upstream}/late"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    let requests =
        r#"http_client_requests_total{method="GET",host="127.0.0.1",status_class="2xx"}"#;

    let text = eventually(&client, &url, "the early components", |t| {
        value(t, r#"cache_hits_total{cache="early_cache"}"#) == Some(10.0)
            && value(t, r#"db_pool_checkout_wait_seconds_count{pool="early_db"}"#) == Some(3.0)
            && value(t, requests) == Some(2.0)
    })
    .await;
    assert_eq!(
        value(&text, r#"cache_inserts_total{cache="early_cache"}"#),
        Some(1.0)
    );
    assert_eq!(
        value(&text, r#"cache_entries{cache="early_cache"}"#),
        Some(1.0)
    );
    assert!(
        value(
            &text,
            r#"db_pool_connections_created_total{pool="early_db"}"#
        ) >= Some(1.0)
    );
    assert_eq!(
        value(
            &text,
            r#"workers_jobs_completed_total{pool="early_workers"}"#
        ),
        Some(5.0)
    );
    assert_eq!(
        value(
            &text,
            r#"workers_jobs_submitted_total{pool="early_workers"}"#
        ),
        Some(5.0)
    );
    // The first get made the object, the other three reused it.
    assert_eq!(
        value(&text, r#"mempool_misses_total{pool="early_objects"}"#),
        Some(1.0)
    );
    assert_eq!(
        value(&text, r#"mempool_hits_total{pool="early_objects"}"#),
        Some(3.0)
    );
    assert_eq!(
        value(&text, "memory_budget_bytes"),
        Some((1u64 << 40) as f64)
    );
    assert!(value(&text, "memory_budget_used_bytes") > Some(0.0));

    // More use moves the next scrape, still without any snapshot call.
    for _ in 0..5 {
        let _ = cache.get(&1);
    }
    let _ = cache.get(&2);
    let conn = db.get().await.unwrap();
    let text = eventually(&client, &url, "the second round", |t| {
        value(t, r#"cache_hits_total{cache="early_cache"}"#) == Some(15.0)
            && value(t, r#"db_pool_checkout_wait_seconds_count{pool="early_db"}"#) == Some(4.0)
    })
    .await;
    assert_eq!(
        value(&text, r#"cache_misses_total{cache="early_cache"}"#),
        Some(1.0)
    );
    assert_eq!(
        value(&text, r#"db_pool_connections_active{pool="early_db"}"#),
        Some(1.0)
    );
    drop(conn);

    // The snapshot agrees with what was scraped.
    assert_eq!(cache.snapshot().hits, 15);
}
