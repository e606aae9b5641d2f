//! Hostile clients against the service binary, run as a process of its own so its file
//! descriptors and resident memory can be measured: slowloris (1,000 connections sending
//! their heads a byte at a time) and large bodies that stall.

mod common;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The service binary, started with a config of its own on a fresh schema; killed and its
/// schema dropped on [`Service::stop`].
struct Service {
    child: Child,
    addr: SocketAddr,
    schema: String,
    /// Holds its config file; removed on drop.
    dir: std::path::PathBuf,
}

impl Service {
    fn start(name: &str, extra: &str) -> Service {
        Service::start_with_env(name, extra, &[])
    }

    /// [`Service::start`] with these environment variables set.
    fn start_with_env(name: &str, extra: &str, env: &[(&str, &str)]) -> Service {
        let schema = format!("veza_api_h{}_{name}", std::process::id());
        let dir = std::env::temp_dir().join(format!("veza-api-{schema}"));
        std::fs::create_dir_all(&dir).unwrap();
        let config = dir.join("veza-api.toml");
        std::fs::write(
            &config,
            format!("listen = \"127.0.0.1:0\"\nschema = \"{schema}\"\npool_size = 4\n{extra}\n"),
        )
        .unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_veza-api"))
            .arg("--config")
            .arg(&config)
            .env("DATABASE_URL", common::database_url())
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the service binary starts");
        let mut line = String::new();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        out.read_line(&mut line).unwrap();
        // The rest of its output is read (and dropped) until it exits: a closed pipe would
        // fail its next line.
        std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
        let addr = line
            .split("http://")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap_or_else(|| panic!("no address in {line:?}"))
            .parse()
            .unwrap();
        Service {
            child,
            addr,
            schema,
            dir,
        }
    }

    fn proc_file(&self, name: &str) -> std::path::PathBuf {
        std::path::Path::new("/proc")
            .join(self.child.id().to_string())
            .join(name)
    }

    /// Open file descriptors.
    fn fds(&self) -> usize {
        std::fs::read_dir(self.proc_file("fd")).unwrap().count()
    }

    /// Resident set, in bytes.
    fn rss(&self) -> u64 {
        let status = std::fs::read_to_string(self.proc_file("status")).unwrap();
        let kib: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap();
        kib * 1024
    }

    /// `GET path` on a connection of its own; the status code.
    async fn get(&self, path: &str) -> u16 {
        status_of(&self.get_raw(path).await)
    }

    /// `GET path` on a connection of its own; the whole response, head and body.
    async fn get_raw(&self, path: &str) -> Vec<u8> {
        let mut s = TcpStream::connect(self.addr).await.unwrap();
        let req = format!("GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n");
        s.write_all(req.as_bytes()).await.unwrap();
        let mut out = Vec::new();
        tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out))
            .await
            .expect("an answer within 10 s")
            .unwrap();
        out
    }

    async fn stop(self) {
        let schema = self.schema.clone();
        drop(self);
        common::drop_schema(&schema).await;
    }
}

impl Drop for Service {
    /// Kills the process, also when a test fails half-way (its schema then stays behind,
    /// named for the test run).
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn status_of(response: &[u8]) -> u16 {
    std::str::from_utf8(response.get(9..12).unwrap_or_default())
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// Polls `cond` every 50 ms for at most `limit`; whether it held.
async fn eventually(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if cond() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    cond()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_request_heads_are_closed_at_the_header_timeout_and_the_service_keeps_serving() {
    const TIMEOUT: Duration = Duration::from_secs(5);
    let svc = Service::start("slowloris", "[server]\nheader_read_timeout = \"5s\"\n");
    assert_eq!(svc.get("/healthz").await, 200);
    let base = svc.fds();

    // 1,000 connections, opened 50 at a time, each with a head that never ends.
    let mut conns = Vec::new();
    for _ in 0..20 {
        let batch: Vec<_> = (0..50)
            .map(|_| {
                let addr = svc.addr;
                tokio::spawn(async move {
                    let mut s = TcpStream::connect(addr).await.unwrap();
                    s.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\nx-slow: ")
                        .await
                        .unwrap();
                    s
                })
            })
            .collect();
        for c in batch {
            conns.push(c.await.unwrap());
        }
    }
    let opened = Instant::now();
    let held = svc.fds();
    assert!(
        held >= base + 900,
        "the service holds the connections while their heads arrive: {held} descriptors, {base} before"
    );

    // A byte every half second on every connection, for at most 10 s, while a normal client
    // is served.
    let drip = tokio::spawn(async move {
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(10) {
            let mut open = 0;
            for s in &mut conns {
                if s.write_all(b"a").await.is_ok() {
                    open += 1;
                }
            }
            if open == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        conns
    });
    assert_eq!(svc.get("/healthz").await, 200, "served during the attack");
    assert!(
        eventually(TIMEOUT + Duration::from_secs(3), || svc.fds() <= base + 10).await,
        "every slow connection closed by the header timeout: {} descriptors, {base} before",
        svc.fds()
    );
    let closed_after = opened.elapsed();
    assert!(
        closed_after < TIMEOUT + Duration::from_secs(3),
        "closed {closed_after:?} after the last opened"
    );
    let conns = drip.await.unwrap();
    // Every client sees its connection closed.
    let reads: Vec<_> = conns
        .into_iter()
        .map(|mut s| {
            tokio::spawn(async move {
                let mut sink = Vec::new();
                tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut sink))
                    .await
                    .is_ok()
            })
        })
        .collect();
    for r in reads {
        assert!(r.await.unwrap(), "a connection still open");
    }
    assert_eq!(svc.get("/healthz").await, 200, "served after the attack");
    svc.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_large_bodies_hold_no_more_than_the_body_budget() {
    const BUDGET: u64 = 32 << 20;
    const MARGIN: u64 = 48 << 20;
    let svc = Service::start(
        "held_bodies",
        &format!(
            "body_budget_bytes = {BUDGET}\nmax_body_bytes = {}\n[server]\nbody_read_timeout = \"4s\"\n",
            8 << 20
        ),
    );
    assert_eq!(svc.get("/healthz").await, 200);
    let base_rss = svc.rss();
    let base_fds = svc.fds();

    // 48 clients each declare 8 MiB, send 7.75 MiB and stall.
    let sent = (8 << 20) - (256 << 10);
    let mut clients = Vec::new();
    for _ in 0..48 {
        let addr = svc.addr;
        clients.push(tokio::spawn(async move {
            let mut s = TcpStream::connect(addr).await.unwrap();
            let head = format!(
                "POST /users/import HTTP/1.1\r\nhost: x\r\ncontent-type: application/x-ndjson\r\ncontent-length: {}\r\n\r\n",
                8 << 20
            );
            let (mut r, mut w) = s.split();
            let body = vec![b' '; sent];
            let send = async {
                let _ = w.write_all(head.as_bytes()).await;
                let _ = w.write_all(&body).await;
                // Stall: never send the rest.
                tokio::time::sleep(Duration::from_secs(30)).await;
            };
            let mut answer = Vec::new();
            let read = async {
                let mut buf = [0u8; 4096];
                while let Ok(n) = r.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                    answer.extend_from_slice(&buf[..n]);
                    if answer.windows(4).any(|w| w == b"\r\n\r\n") {
                        break;
                    }
                }
            };
            let _ = tokio::time::timeout(Duration::from_secs(15), async {
                tokio::select! {
                    _ = send => {}
                    _ = read => {}
                }
            })
            .await;
            let text = String::from_utf8_lossy(&answer).to_lowercase();
            (status_of(&answer), text.contains("retry-after: 1"))
        }));
    }

    // Resident memory while the bodies are held.
    let mut peak = base_rss;
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(6) {
        peak = peak.max(svc.rss());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut answers = Vec::new();
    for c in clients {
        answers.push(c.await.unwrap());
    }
    let growth = peak.saturating_sub(base_rss);
    assert!(
        growth < BUDGET + MARGIN,
        "resident memory grew by {} MiB (budget {} MiB + margin {} MiB)",
        growth >> 20,
        BUDGET >> 20,
        MARGIN >> 20
    );
    let refused = answers
        .iter()
        .filter(|(s, retry)| *s == 503 && *retry)
        .count();
    let timed_out = answers.iter().filter(|(s, _)| *s == 408).count();
    assert!(
        refused >= 40,
        "503 with Retry-After past the budget: {answers:?}"
    );
    assert!(
        timed_out >= 1,
        "the held bodies timed out with 408: {answers:?}"
    );
    assert_eq!(refused + timed_out, 48, "{answers:?}");
    // Everything is given back: connections, and room in the budget for a new import.
    assert!(
        eventually(Duration::from_secs(5), || svc.fds() <= base_fds + 10).await,
        "{} descriptors, {base_fds} before",
        svc.fds()
    );
    let c = common::client();
    let r = c
        .request(
            http::Method::POST,
            format!("http://{}/users/import", svc.addr),
        )
        .header("content-type", "application/x-ndjson")
        .body("{\"email\":\"after@example.com\",\"name\":\"After\"}\n")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{:?}", r.text());
    svc.stop().await;
}

/// The reference service runs on jemalloc: started with its profiler on, it serves heap
/// profiles (gzipped pprof); without, it answers 503 and says how to turn it on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_serves_heap_profiles_when_started_with_the_profiler() {
    let conf = "prof:true,prof_active:true,lg_prof_sample:19";
    let on = Service::start_with_env("heap_on", "", &[("_RJEM_MALLOC_CONF", conf)]);
    let response = on.get_raw("/debug/pprof/heap").await;
    assert_eq!(status_of(&response), 200);
    let body_at = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a head")
        + 4;
    let body = &response[body_at..];
    assert!(
        body.starts_with(&[0x1f, 0x8b]) && body.len() > 100,
        "a gzipped profile: {} bytes",
        body.len()
    );
    on.stop().await;

    let off = Service::start("heap_off", "");
    let response = off.get_raw("/debug/pprof/heap").await;
    assert_eq!(status_of(&response), 503);
    assert!(String::from_utf8_lossy(&response).contains("_RJEM_MALLOC_CONF"));
    off.stop().await;
}
