//! `veza-load --base http://ADDR [--duration SECS] [--max-requests N] [--concurrency N]
//! [--users N] [--out FILE] [--pid PID]`: seeds the service, then drives a bounded,
//! mostly-read mix at it on loopback and writes requests/s and latency percentiles per
//! endpoint and for the whole mix as JSON. With `--pid` (the service's process), it also reports
//! the CPU time the service spent during the run (from `/proc/PID/stat`, after the seeding)
//! and its peak resident set (`VmHWM`). `cargo xtask loadtest` runs it against every stack.
//!
//! With `--read-base http://ADDR2` (a second instance on the same database and Redis), it
//! checks the shared cache tier instead: renames go through `--base`, reads of the same users
//! through `--read-base`, and a read that returns a name older than one acknowledged more than
//! `--bound-ms` (default 50) before the read was sent counts as stale.
#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a command-line tool"
)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::Serialize;

type Http = Client<HttpConnector, Full<Bytes>>;

/// The mix: (endpoint, weight in per mille, is a read).
const MIX: &[(&str, u32, bool)] = &[
    ("GET /users/{id}", 350, true),
    ("GET /users/by-email/{email}", 200, true),
    ("GET /users", 100, true),
    ("GET /messages", 100, true),
    ("GET /users/{id}/avatar", 100, true),
    ("POST /messages", 120, false),
    ("PUT /users/{id}", 20, false),
    ("POST /users", 10, false),
];

struct Args {
    base: String,
    duration: Duration,
    max_requests: u64,
    concurrency: usize,
    users: u64,
    out: Option<String>,
    read_base: Option<String>,
    bound: Duration,
    pid: Option<u32>,
}

fn args() -> Result<Args> {
    let mut a = Args {
        base: String::new(),
        duration: Duration::from_secs(20),
        max_requests: 2_000_000,
        concurrency: 32,
        users: 10_000,
        out: None,
        read_base: None,
        bound: Duration::from_millis(50),
        pid: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--base" => a.base = value()?.trim_end_matches('/').to_owned(),
            "--duration" => a.duration = Duration::from_secs(value()?.parse()?),
            "--max-requests" => a.max_requests = value()?.parse()?,
            "--concurrency" => a.concurrency = value()?.parse()?,
            "--users" => a.users = value()?.parse()?,
            "--out" => a.out = Some(value()?),
            "--read-base" => a.read_base = Some(value()?.trim_end_matches('/').to_owned()),
            "--bound-ms" => a.bound = Duration::from_millis(value()?.parse()?),
            "--pid" => a.pid = Some(value()?.parse()?),
            other => bail!("unknown argument `{other}`"),
        }
    }
    if a.base.is_empty() {
        bail!("--base http://ADDR is required");
    }
    if a.concurrency == 0 || a.users == 0 {
        bail!("--concurrency and --users must be above zero");
    }
    Ok(a)
}

/// CPU seconds (user and system) the process `pid` has used so far: fields 14 and 15 of
/// `/proc/PID/stat`, counted after the command name (which may hold spaces), in the kernel's
/// `USER_HZ` ticks (100 per second on Linux, whatever the kernel's own tick).
fn cpu_secs(pid: u32) -> Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("reading /proc/{pid}/stat"))?;
    let after = stat
        .rsplit_once(')')
        .context("/proc/PID/stat without a command name")?
        .1;
    let fields: Vec<&str> = after.split_whitespace().collect();
    // `after` starts at field 3 (the state): utime is field 14, stime field 15.
    let ticks = |i: usize| -> Result<u64> {
        fields
            .get(i - 3)
            .context("/proc/PID/stat too short")?
            .parse()
            .context("a tick count")
    };
    Ok((ticks(14)? + ticks(15)?) as f64 / 100.0)
}

/// The machine's busy and total CPU ticks so far (`/proc/stat`, all CPUs): busy is
/// everything but idle and I/O wait.
fn machine_ticks() -> Result<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").context("reading /proc/stat")?;
    let line = stat.lines().next().context("empty /proc/stat")?;
    let ticks: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(str::parse)
        .collect::<Result<_, _>>()?;
    let total: u64 = ticks.iter().sum();
    let idle = ticks.get(3).copied().unwrap_or(0) + ticks.get(4).copied().unwrap_or(0);
    Ok((total - idle, total))
}

/// The peak resident set of `pid` in MiB (`VmHWM` in `/proc/PID/status`).
fn peak_rss_mib(pid: u32) -> Result<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .context("no VmHWM in /proc/PID/status")?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()?;
    Ok(kib as f64 / 1024.0)
}

/// The `p` quantile of sorted microsecond latencies, in milliseconds (0 when empty).
fn quantile_ms(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    f64::from(sorted[((sorted.len() - 1) as f64 * p) as usize]) / 1000.0
}

/// SplitMix64: a small, seeded generator, so every run asks for the same things.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

async fn send(http: &Http, method: &str, url: &str, body: Option<String>) -> Result<(u16, Bytes)> {
    let req = hyper::Request::builder()
        .method(method)
        .uri(url)
        .header("content-type", "application/json")
        .body(Full::new(body.map(Bytes::from).unwrap_or_default()))?;
    let resp = tokio::time::timeout(Duration::from_secs(30), http.request(req)).await??;
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await?.to_bytes();
    Ok((status, body))
}

/// Imports `users` users and one message each for the first thousand.
async fn seed(http: &Http, base: &str, users: u64) -> Result<()> {
    let started = Instant::now();
    let mut batch = String::new();
    for i in 0..users {
        batch.push_str(&format!(
            "{{\"email\":\"user{i}@load.test\",\"name\":\"User {i}\"}}\n"
        ));
        if (i + 1) % 5_000 == 0 || i + 1 == users {
            let (status, body) = send(
                http,
                "POST",
                &format!("{base}/users/import"),
                Some(std::mem::take(&mut batch)),
            )
            .await?;
            if status != 200 {
                bail!("seeding users: {status} {}", String::from_utf8_lossy(&body));
            }
        }
    }
    for id in 1..=users.min(1000) {
        let body = format!("{{\"user_id\":{id},\"body\":\"seed message\"}}");
        let (status, _) = send(http, "POST", &format!("{base}/messages"), Some(body)).await?;
        if status != 201 {
            bail!("seeding messages: {status}");
        }
    }
    eprintln!(
        "veza-load: seeded {users} users in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

#[derive(Serialize)]
struct EndpointReport {
    requests: u64,
    errors: u64,
    read: bool,
    rps: f64,
    p50_ms: f64,
    p95_ms: f64,
    p99_ms: f64,
    p999_ms: f64,
}

#[derive(Serialize)]
struct Report {
    base: String,
    concurrency: usize,
    seconds: f64,
    requests: u64,
    errors: u64,
    rps: f64,
    read_rps: f64,
    /// The whole mix's latency percentiles (successful requests).
    p50_ms: f64,
    p95_ms: f64,
    p99_ms: f64,
    p999_ms: f64,
    /// CPU seconds the service used during the run (with `--pid`).
    cpu_secs: Option<f64>,
    /// Service CPU milliseconds per 1,000 requests (with `--pid`).
    cpu_ms_per_1000: Option<f64>,
    /// The service's peak resident set, MiB (with `--pid`).
    peak_rss_mib: Option<f64>,
    /// CPUs the service kept busy on average during the run (with `--pid`).
    service_cores: Option<f64>,
    /// CPUs this load generator kept busy on average during the run.
    load_cores: f64,
    /// CPUs the whole machine kept busy on average during the run (service, load generator,
    /// PostgreSQL, the kernel), and how many it has.
    machine_cores: f64,
    machine_cpus: usize,
    first_errors: Vec<String>,
    endpoints: BTreeMap<String, EndpointReport>,
}

#[derive(Default)]
struct Tally {
    latencies: Vec<Vec<u32>>,
    errors: Vec<u64>,
    first_errors: Vec<String>,
}

#[tokio::main]
async fn main() -> Result<()> {
    let a = args()?;
    let http: Http = Client::builder(TokioExecutor::new()).build(HttpConnector::new());
    seed(&http, &a.base, a.users).await?;
    if let Some(read_base) = &a.read_base {
        return tier_check(&http, &a, read_base).await;
    }

    let cpu_before = a.pid.map(cpu_secs).transpose()?;
    let own_before = cpu_secs(std::process::id())?;
    let machine_before = machine_ticks()?;
    let deadline = Instant::now() + a.duration;
    let sent = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let started = Instant::now();
    let progress = {
        let sent = Arc::clone(&sent);
        let duration = a.duration;
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(2)).await;
                let n = sent.load(std::sync::atomic::Ordering::Relaxed);
                let t = started.elapsed().as_secs_f64();
                eprintln!(
                    "veza-load: {t:5.1}s / {}s, {n} requests, {:.0} req/s",
                    duration.as_secs(),
                    n as f64 / t
                );
            }
        })
    };
    let tasks: Vec<_> = (0..a.concurrency)
        .map(|task| {
            let (http, base, sent) = (http.clone(), a.base.clone(), Arc::clone(&sent));
            let (users, max) = (a.users, a.max_requests);
            tokio::spawn(async move {
                let mut rng = Rng(0x5EED + task as u64);
                let mut tally = Tally {
                    latencies: vec![Vec::new(); MIX.len()],
                    errors: vec![0; MIX.len()],
                    first_errors: Vec::new(),
                };
                let mut n = 0u64;
                while Instant::now() < deadline && sent.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < max {
                    let mut pick = rng.below(1000) as u32;
                    let op = MIX.iter().position(|(_, w, _)| {
                        let hit = pick < *w;
                        pick = pick.saturating_sub(*w);
                        hit
                    });
                    let op = op.unwrap_or(0);
                    let id = 1 + rng.below(users);
                    let (method, url, body, ok) = match op {
                        0 => ("GET", format!("{base}/users/{id}"), None, 200),
                        1 => ("GET", format!("{base}/users/by-email/user{}%40load.test", id - 1), None, 200),
                        2 => ("GET", format!("{base}/users?limit=20"), None, 200),
                        3 => ("GET", format!("{base}/messages?user_id={}&limit=20", 1 + rng.below(users.min(1000))), None, 200),
                        4 => ("GET", format!("{base}/users/{}/avatar", 1 + rng.below(1000)), None, 200),
                        5 => ("POST", format!("{base}/messages"), Some(format!("{{\"user_id\":{id},\"body\":\"load {n}\"}}")), 201),
                        6 => ("PUT", format!("{base}/users/{id}"), Some(format!("{{\"name\":\"Renamed {n}\"}}")), 200),
                        _ => (
                            "POST",
                            format!("{base}/users"),
                            Some(format!("{{\"email\":\"new{task}x{n}@load.test\",\"name\":\"New\",\"password\":\"load test password\"}}")),
                            201,
                        ),
                    };
                    n += 1;
                    let t = Instant::now();
                    let outcome = send(&http, method, &url, body).await;
                    let micros = t.elapsed().as_micros().min(u128::from(u32::MAX)) as u32;
                    match outcome {
                        Ok((status, _)) if status == ok => tally.latencies[op].push(micros),
                        other => {
                            tally.errors[op] += 1;
                            if tally.first_errors.len() < 3 {
                                let why = match other {
                                    Ok((status, body)) => format!("{status} {}", String::from_utf8_lossy(&body)),
                                    Err(e) => e.to_string(),
                                };
                                tally.first_errors.push(format!("{} {url}: {why}", MIX[op].0));
                            }
                        }
                    }
                }
                tally
            })
        })
        .collect();
    let mut all = Tally {
        latencies: vec![Vec::new(); MIX.len()],
        errors: vec![0; MIX.len()],
        first_errors: Vec::new(),
    };
    for t in tasks {
        let t = t.await?;
        for (i, l) in t.latencies.into_iter().enumerate() {
            all.latencies[i].extend(l);
            all.errors[i] += t.errors[i];
        }
        all.first_errors.extend(t.first_errors);
    }
    progress.abort();
    let seconds = started.elapsed().as_secs_f64();
    let cpu_after = a.pid.map(cpu_secs).transpose()?;
    let own_after = cpu_secs(std::process::id())?;
    let machine_after = machine_ticks()?;
    let peak_rss = a.pid.map(peak_rss_mib).transpose()?;
    let mut endpoints = BTreeMap::new();
    let (mut requests, mut errors, mut read_ok) = (0u64, 0u64, 0u64);
    for (i, (name, _, read)) in MIX.iter().enumerate() {
        let l = &mut all.latencies[i];
        l.sort_unstable();
        let pct = |p: f64| quantile_ms(l, p);
        let ok = l.len() as u64;
        requests += ok + all.errors[i];
        errors += all.errors[i];
        if *read {
            read_ok += ok;
        }
        endpoints.insert(
            (*name).to_owned(),
            EndpointReport {
                requests: ok + all.errors[i],
                errors: all.errors[i],
                read: *read,
                rps: ok as f64 / seconds,
                p50_ms: pct(0.50),
                p95_ms: pct(0.95),
                p99_ms: pct(0.99),
                p999_ms: pct(0.999),
            },
        );
    }
    let mut mix: Vec<u32> = all.latencies.concat();
    mix.sort_unstable();
    let cpu = cpu_before.zip(cpu_after).map(|(b, a)| a - b);
    all.first_errors.truncate(5);
    let report = Report {
        base: a.base,
        concurrency: a.concurrency,
        seconds,
        requests,
        errors,
        rps: (requests - errors) as f64 / seconds,
        read_rps: read_ok as f64 / seconds,
        p50_ms: quantile_ms(&mix, 0.50),
        p95_ms: quantile_ms(&mix, 0.95),
        p99_ms: quantile_ms(&mix, 0.99),
        p999_ms: quantile_ms(&mix, 0.999),
        cpu_secs: cpu,
        cpu_ms_per_1000: cpu.map(|c| c * 1000.0 / ((requests - errors).max(1) as f64 / 1000.0)),
        peak_rss_mib: peak_rss,
        service_cores: cpu.map(|c| c / seconds),
        load_cores: (own_after - own_before) / seconds,
        machine_cores: (machine_after.0 - machine_before.0) as f64 / 100.0 / seconds,
        machine_cpus: std::thread::available_parallelism().map_or(1, usize::from),
        first_errors: all.first_errors,
        endpoints,
    };
    let json = serde_json::to_string_pretty(&report)?;
    match &a.out {
        Some(path) => std::fs::write(path, json + "\n")?,
        None => println!("{json}"),
    }
    eprintln!(
        "veza-load: {requests} requests in {seconds:.1}s, {:.0} req/s ({:.0} reads/s), {errors} errors",
        report.rps, report.read_rps
    );
    Ok(())
}

#[derive(Serialize)]
struct TierReport {
    write_base: String,
    read_base: String,
    seconds: f64,
    bound_ms: u64,
    writes: u64,
    reads: u64,
    errors: u64,
    /// Reads that returned a name older than one acknowledged more than the bound before.
    stale_reads: u64,
    /// Reads that returned an older name within the bound (invalidation in flight).
    recent_reads: u64,
    read_p50_ms: f64,
    read_p95_ms: f64,
    read_p99_ms: f64,
    write_p50_ms: f64,
    write_p99_ms: f64,
    /// Reads by the tier that answered (`x-cache-tier`): count, p50 and p99 in ms.
    tiers: BTreeMap<String, (u64, f64, f64)>,
    first_errors: Vec<String>,
}

/// A GET, with the `x-cache-tier` header of the answer (`none` without one).
async fn send_traced(http: &Http, url: &str) -> Result<(u16, Bytes, String)> {
    let req = hyper::Request::builder()
        .method("GET")
        .uri(url)
        .body(Full::new(Bytes::new()))?;
    let resp = tokio::time::timeout(Duration::from_secs(30), http.request(req)).await??;
    let status = resp.status().as_u16();
    let tier = resp
        .headers()
        .get("x-cache-tier")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("none")
        .to_owned();
    let body = resp.into_body().collect().await?.to_bytes();
    Ok((status, body, tier))
}

/// For each user, the versions of its name written and acknowledged, with when.
type Acked = std::collections::HashMap<u64, Vec<(u64, Instant)>>;

/// Renames through one instance, reads through the other, over 200 users both instances
/// keep cached; counts the reads that were stale past the bound.
async fn tier_check(http: &Http, a: &Args, read_base: &str) -> Result<()> {
    use std::sync::Mutex;
    const HOT: u64 = 200;
    // For each user: the versions written and acknowledged, with when the write was acked.
    let acked: Arc<Mutex<Acked>> = Arc::default();
    let version = Arc::new(std::sync::atomic::AtomicU64::new(1));
    let deadline = Instant::now() + a.duration;
    let started = Instant::now();
    let tasks: Vec<_> = (0..a.concurrency)
        .map(|task| {
            let (http, write, read) = (http.clone(), a.base.clone(), read_base.to_owned());
            let (acked, version, bound) = (Arc::clone(&acked), Arc::clone(&version), a.bound);
            let concurrency = a.concurrency.min(HOT as usize);
            tokio::spawn(async move {
                let mut rng = Rng(0x7135 + task as u64);
                let (mut reads, mut writes) = (Vec::new(), Vec::new());
                let mut by_tier: BTreeMap<String, Vec<u32>> = BTreeMap::new();
                let (mut errors, mut stale, mut recent) = (0u64, 0u64, 0u64);
                let mut first_errors = Vec::new();
                let tasks = concurrency as u64;
                while Instant::now() < deadline {
                    let renames = rng.below(10) < 2;
                    // Each user is renamed by one task only, so the versions of a user commit
                    // in the order they were numbered and acknowledged.
                    let id = if renames {
                        1 + (rng.below(HOT / tasks) * tasks + task as u64) % HOT
                    } else {
                        1 + rng.below(HOT)
                    };
                    let t = Instant::now();
                    if renames {
                        let v = version.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let body = format!("{{\"name\":\"T{v}\"}}");
                        match send(&http, "PUT", &format!("{write}/users/{id}"), Some(body)).await {
                            Ok((200, _)) => {
                                writes.push(t.elapsed().as_micros() as u32);
                                acked
                                    .lock()
                                    .expect("acked")
                                    .entry(id)
                                    .or_default()
                                    .push((v, Instant::now()));
                            }
                            other => {
                                errors += 1;
                                if first_errors.len() < 3 {
                                    first_errors
                                        .push(format!("PUT {id}: {:?}", other.map(|(s, _)| s)));
                                }
                            }
                        }
                    } else {
                        match send_traced(&http, &format!("{read}/users/{id}")).await {
                            Ok((200, body, tier)) => {
                                let micros = t.elapsed().as_micros() as u32;
                                reads.push(micros);
                                by_tier.entry(tier).or_default().push(micros);
                                let v: serde_json::Value = serde_json::from_slice(&body)?;
                                let name = v["name"].as_str().unwrap_or_default();
                                let seen: u64 = name
                                    .strip_prefix('T')
                                    .and_then(|n| n.parse().ok())
                                    .unwrap_or(0);
                                // The newest version acknowledged before this read was sent.
                                let acked = acked.lock().expect("acked");
                                let newest = acked.get(&id).and_then(|vs| {
                                    vs.iter()
                                        .filter(|(_, at)| *at <= t)
                                        .max_by_key(|(v, _)| *v)
                                        .copied()
                                });
                                if let Some((v, at)) = newest {
                                    if seen < v {
                                        if t.duration_since(at) > bound {
                                            stale += 1;
                                        } else {
                                            recent += 1;
                                        }
                                    }
                                }
                            }
                            other => {
                                errors += 1;
                                if first_errors.len() < 3 {
                                    first_errors
                                        .push(format!("GET {id}: {:?}", other.map(|(s, _, _)| s)));
                                }
                            }
                        }
                    }
                }
                Ok::<_, anyhow::Error>((
                    reads,
                    writes,
                    by_tier,
                    errors,
                    stale,
                    recent,
                    first_errors,
                ))
            })
        })
        .collect();
    let (mut reads, mut writes) = (Vec::new(), Vec::new());
    let mut by_tier: BTreeMap<String, Vec<u32>> = BTreeMap::new();
    let (mut errors, mut stale, mut recent) = (0, 0, 0);
    let mut first_errors = Vec::new();
    for t in tasks {
        let (r, w, bt, e, s, rc, fe) = t.await??;
        reads.extend(r);
        writes.extend(w);
        for (tier, l) in bt {
            by_tier.entry(tier).or_default().extend(l);
        }
        errors += e;
        stale += s;
        recent += rc;
        first_errors.extend(fe);
    }
    reads.sort_unstable();
    writes.sort_unstable();
    let pct = quantile_ms;
    first_errors.truncate(5);
    let report = TierReport {
        write_base: a.base.clone(),
        read_base: read_base.to_owned(),
        seconds: started.elapsed().as_secs_f64(),
        bound_ms: a.bound.as_millis() as u64,
        writes: writes.len() as u64,
        reads: reads.len() as u64,
        errors,
        stale_reads: stale,
        recent_reads: recent,
        read_p50_ms: pct(&reads, 0.50),
        read_p95_ms: pct(&reads, 0.95),
        read_p99_ms: pct(&reads, 0.99),
        write_p50_ms: pct(&writes, 0.50),
        write_p99_ms: pct(&writes, 0.99),
        tiers: by_tier
            .into_iter()
            .map(|(tier, mut l)| {
                l.sort_unstable();
                (tier, (l.len() as u64, pct(&l, 0.50), pct(&l, 0.99)))
            })
            .collect(),
        first_errors,
    };
    let json = serde_json::to_string_pretty(&report)?;
    match &a.out {
        Some(path) => std::fs::write(path, json + "\n")?,
        None => println!("{json}"),
    }
    eprintln!(
        "veza-load: tier check: {} writes through one instance, {} reads through the other, {stale} stale past {} ms ({recent} within it), {errors} errors",
        report.writes, report.reads, report.bound_ms
    );
    Ok(())
}
