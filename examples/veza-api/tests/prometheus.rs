//! A real Prometheus (Debian's `prometheus` package) scrapes the running service with
//! `docs/ops/prometheus.yml` and evaluates `docs/ops/prometheus-rules.yml`; asserts through its
//! HTTP API that the target is up and that the request-rate and p95 rules return values.
//!
//! Without a `prometheus` binary the test says so and passes, except under CI (`CI` set),
//! where `.ci/run` installs it and its absence is a failure.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use veza_api::Mode;

struct Prometheus(Child);

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The first value of an instant query, once it has one.
async fn value(
    client: &veza_httpopt::Client,
    api: &str,
    query: &str,
    within: Duration,
) -> Option<f64> {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        let url = format!("{api}/api/v1/query?query={}", encode(query));
        if let Ok(r) = client.get(url).send().await {
            if let Ok(v) = serde_json::from_slice::<Value>(r.body()) {
                let first = &v["data"]["result"][0]["value"][1];
                if let Some(n) = first.as_str().and_then(|s| s.parse::<f64>().ok()) {
                    if n.is_finite() {
                        return Some(n);
                    }
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    None
}

fn encode(q: &str) -> String {
    q.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' | b'-' | b'.' | b':' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_the_service_and_the_rules_have_values() {
    if Command::new("prometheus")
        .arg("--version")
        .output()
        .is_err()
    {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must have Debian's prometheus package (.ci/run installs it)"
        );
        eprintln!(
            "prometheus is not installed: nothing to check here (apt-get install prometheus)"
        );
        return;
    }
    let (app, schema) = common::start(Mode::Veza).await;
    let addr = app.addr;

    // The documented scrape configuration, pointed at this service, with 1 s intervals.
    let ops = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/ops");
    let config = std::fs::read_to_string(ops.join("prometheus.yml")).unwrap();
    assert!(config.contains("127.0.0.1:8080") && config.contains("scrape_interval: 15s"));
    let config = config
        .replace("127.0.0.1:8080", &addr.to_string())
        .replace("scrape_interval: 15s", "scrape_interval: 1s")
        .replace("evaluation_interval: 15s", "evaluation_interval: 1s");
    let dir = std::env::temp_dir().join(format!("veza-prometheus-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("prometheus.yml"), config).unwrap();
    std::fs::copy(
        ops.join("prometheus-rules.yml"),
        dir.join("prometheus-rules.yml"),
    )
    .unwrap();
    let port = free_port();
    let prometheus = Prometheus(
        Command::new("prometheus")
            .arg(format!(
                "--config.file={}",
                dir.join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );

    // Traffic while Prometheus scrapes: bounded, it stops with the test.
    let client = common::client();
    let base = format!("http://{addr}");
    let traffic = {
        let (client, base) = (client.clone(), base.clone());
        tokio::spawn(async move {
            for _ in 0..600 {
                let _ = client.get(format!("{base}/healthz")).send().await;
                let _ = client.get(format!("{base}/users/1")).send().await;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };

    let api = format!("http://127.0.0.1:{port}");
    let up = value(
        &client,
        &api,
        "up{job=\"veza-api\"}",
        Duration::from_secs(60),
    )
    .await;
    assert_eq!(up, Some(1.0), "the target is up");
    let rate = value(
        &client,
        &api,
        "job:http_requests:rate5m{job=\"veza-api\"}",
        Duration::from_secs(60),
    )
    .await;
    assert!(rate.is_some_and(|r| r > 0.0), "request rate rule: {rate:?}");
    let p95 = value(
        &client,
        &api,
        "job:http_request_duration_seconds:p95_5m{job=\"veza-api\"}",
        Duration::from_secs(60),
    )
    .await;
    assert!(
        p95.is_some_and(|v| v > 0.0 && v < 10.0),
        "p95 rule: {p95:?}"
    );

    traffic.abort();
    drop(prometheus);
    let _ = std::fs::remove_dir_all(&dir);
    assert!(common::stop(app, &schema).await);
}
