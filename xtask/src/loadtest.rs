//! `cargo xtask loadtest`: the reference service (`examples/veza-api`) under a bounded load on
//! loopback, once per stack under the same seeded mix: as built (veza: our pools, caches,
//! client, recorder), on the peers a Rust developer would pick without us (deadpool-postgres,
//! moka, reqwest, metrics-exporter-prometheus, `spawn_blocking`), and naive (a connection per
//! request, no cache); per stack the throughput, latency percentiles, the service's CPU time
//! per 1,000 requests and its peak resident set. Then two instances sharing a Redis cache
//! tier, renames through one and reads through the other, counting stale reads. Writes
//! `report.{json,md}` under `veza-load` in the target directory (`CARGO_TARGET_DIR` honoured).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::{pg, redis, util};

const MODES: [&str; 3] = ["veza", "peers", "naive"];

struct Opts {
    duration: u64,
    concurrency: usize,
    users: u64,
    rounds: usize,
}

fn parse(args: &[String]) -> Result<Opts> {
    let mut o = Opts {
        duration: 20,
        concurrency: 32,
        users: 10_000,
        rounds: 2,
    };
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = || it.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--duration" => o.duration = value()?.parse().context("--duration SECS")?,
            "--concurrency" => o.concurrency = value()?.parse().context("--concurrency N")?,
            "--users" => o.users = value()?.parse().context("--users N")?,
            "--rounds" => o.rounds = value()?.parse().context("--rounds N")?,
            other => {
                bail!(
                    "unknown option `{other}` (--duration SECS, --concurrency N, --users N, --rounds N)"
                )
            }
        }
    }
    if o.duration == 0 || o.duration > 120 {
        bail!("--duration must be 1..=120 seconds (the whole test stays under 5 minutes)");
    }
    if o.rounds == 0 || o.rounds > 5 {
        bail!("--rounds must be 1..=5");
    }
    Ok(o)
}

/// Drops a schema through `psql`, when there is one (best effort: each run has its own
/// schema, so a leftover only takes space).
fn drop_schema(url: &str, schema: &str) {
    let _ = Command::new("psql")
        .args([
            url,
            "-q",
            "-c",
            &format!("DROP SCHEMA IF EXISTS {schema} CASCADE"),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// The service, started and stopped with SIGTERM.
struct Service {
    child: Child,
}

impl Service {
    fn start(
        bin: &std::path::Path,
        url: &str,
        mode: &str,
        schema: &str,
        redis_url: Option<&str>,
    ) -> Result<(Service, String)> {
        let mut cmd = Command::new(bin);
        if let Some(redis_url) = redis_url {
            cmd.env("VEZA_API_REDIS", redis_url);
        }
        let mut child = cmd
            .env("DATABASE_URL", url)
            .env("VEZA_API_MODE", mode)
            .env("VEZA_API_SCHEMA", schema)
            .env("VEZA_API_LISTEN", "127.0.0.1:0")
            // Cheaper password hashing, so the 1% of sign-ups does not dominate the run.
            .env("VEZA_API_HASH_KIB", "1024")
            .stdout(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let stdout = child.stdout.take().context("service stdout")?;
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let service = Service { child };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = rx
                .recv_timeout(left)
                .context("the service did not say where it listens within 30 s")?;
            if let Some(rest) = line.strip_prefix("veza-api listening on ") {
                let base = rest
                    .split_whitespace()
                    .next()
                    .unwrap_or_default()
                    .to_owned();
                return Ok((service, base));
            }
        }
    }

    fn stop(mut self) -> Result<()> {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait()? {
                if !status.success() {
                    bail!("the service exited with {status}");
                }
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        bail!("the service did not stop within 20 s of SIGTERM")
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

pub(crate) fn run(args: &[String]) -> Result<()> {
    let opts = parse(args)?;
    let started = Instant::now();
    let db = pg::provision()?;
    eprintln!("xtask: building veza-api and veza-load (release)");
    util::run(util::cargo().args(["build", "--release", "--quiet", "-p", "veza-api", "--bins"]))?;
    let bin_dir = util::target_dir().join("release");
    let out = util::target_dir().join("veza-load");
    std::fs::create_dir_all(&out)?;
    let mut results = serde_json::Map::new();
    // veza and peers run `rounds` times each, in alternating order (veza, peers, peers,
    // veza, ...), so neither always runs after the other's writes (autovacuum, checkpoints);
    // each stack's report is the mean of its rounds. Naive, far behind, runs once.
    let mut plan = Vec::new();
    for round in 0..opts.rounds {
        let pair = if round % 2 == 0 {
            ["veza", "peers"]
        } else {
            ["peers", "veza"]
        };
        plan.extend(pair.map(|m| (m, round)));
    }
    plan.push(("naive", 0));
    let mut runs: std::collections::BTreeMap<&str, Vec<Value>> = Default::default();
    for (mode, round) in plan {
        // A schema of its own per run, so a run never meets the data of an earlier one (even
        // when `psql` is missing and the drop below cannot happen).
        let schema = format!("veza_load_{mode}_{round}_{}", std::process::id());
        eprintln!(
            "xtask: {mode} (round {}): starting the service ({})",
            round + 1,
            util::elapsed(started)
        );
        let (service, base) =
            Service::start(&bin_dir.join("veza-api"), &db.url, mode, &schema, None)?;
        let file = out.join(format!("{mode}-{}.json", round + 1));
        let pid = service.child.id().to_string();
        let load = util::run(Command::new(bin_dir.join("veza-load")).args([
            "--pid",
            &pid,
            "--base",
            &base,
            "--duration",
            &opts.duration.to_string(),
            "--concurrency",
            &opts.concurrency.to_string(),
            "--users",
            &opts.users.to_string(),
            "--out",
            &file.to_string_lossy(),
        ]));
        let stopped = service.stop();
        drop_schema(&db.url, &schema);
        load?;
        stopped.with_context(|| format!("{mode}: graceful shutdown"))?;
        let report: Value = serde_json::from_str(&std::fs::read_to_string(&file)?)?;
        runs.entry(mode).or_default().push(report);
    }
    for (mode, reports) in &runs {
        let mut mean = mean_of(reports);
        mean["rounds_rps"] = reports.iter().map(|r| r["rps"].clone()).collect();
        // Counts add up over the rounds; rates and times are means.
        for count in ["requests", "errors"] {
            mean[count] = reports
                .iter()
                .map(|r| r[count].as_u64().unwrap_or(0))
                .sum::<u64>()
                .into();
        }
        results.insert((*mode).to_owned(), mean);
    }
    let tier = two_instances(&opts, &bin_dir, &db.url, &out, started)?;
    drop(db);
    let ratio = |field: &str, of: &str| {
        let v = results["veza"][field].as_f64().unwrap_or(0.0);
        let n = results[of][field].as_f64().unwrap_or(0.0);
        if n > 0.0 { v / n } else { f64::INFINITY }
    };
    let read_ratio = ratio("read_rps", "naive");
    let total_ratio = ratio("rps", "naive");
    // Against the peers: throughput up, p99 and CPU per request down (veza / peers).
    let peers = serde_json::json!({
        "throughput": ratio("rps", "peers"),
        "read_throughput": ratio("read_rps", "peers"),
        "p99": ratio("p99_ms", "peers"),
        "cpu_per_request": ratio("cpu_ms_per_1000", "peers"),
        "peak_rss": ratio("peak_rss_mib", "peers"),
    });
    let errors: u64 = MODES
        .iter()
        .map(|m| results[*m]["errors"].as_u64().unwrap_or(0))
        .sum();
    let report = serde_json::json!({
        "schema": 2,
        "duration_secs": opts.duration,
        "concurrency": opts.concurrency,
        "users": opts.users,
        "rounds": opts.rounds,
        "read_throughput_ratio": read_ratio,
        "throughput_ratio": total_ratio,
        "veza_vs_peers": peers.clone(),
        "errors": errors,
        "modes": Value::Object(results.clone()),
        "two_instances": tier.clone(),
    });
    std::fs::write(
        out.join("report.json"),
        serde_json::to_string_pretty(&report)? + "\n",
    )?;
    let mut md = markdown(&results, read_ratio, &peers, &opts);
    md.push_str(&tier_markdown(&tier));
    std::fs::write(out.join("report.md"), &md)?;
    println!("{md}");
    eprintln!(
        "xtask: load test done in {}; wrote {}/report.{{json,md}}",
        util::elapsed(started),
        out.display()
    );
    if errors > 0 {
        bail!("{errors} requests failed (see first_errors in report.json)");
    }
    if tier["stale_reads"].as_u64().unwrap_or(0) > 0 || tier["errors"].as_u64().unwrap_or(0) > 0 {
        bail!("two instances: stale reads or errors (see two_instances in report.json)");
    }
    Ok(())
}

/// Two instances of the service on one schema and one Redis: renames through the first,
/// reads through the second (`veza-load --read-base`); the JSON report of that run.
fn two_instances(
    opts: &Opts,
    bin_dir: &std::path::Path,
    db_url: &str,
    out: &std::path::Path,
    started: Instant,
) -> Result<Value> {
    let cache = redis::provision()?;
    let schema = format!("veza_load_tier_{}", std::process::id());
    eprintln!(
        "xtask: two instances on one Redis ({}): starting them ({})",
        cache.url,
        util::elapsed(started)
    );
    let bin = bin_dir.join("veza-api");
    let (first, write_base) = Service::start(&bin, db_url, "veza", &schema, Some(&cache.url))?;
    let (second, read_base) = Service::start(&bin, db_url, "veza", &schema, Some(&cache.url))?;
    let file = out.join("two_instances.json");
    let load = util::run(Command::new(bin_dir.join("veza-load")).args([
        "--base",
        &write_base,
        "--read-base",
        &read_base,
        "--duration",
        &opts.duration.min(10).to_string(),
        "--concurrency",
        &opts.concurrency.min(16).to_string(),
        "--users",
        &opts.users.min(1_000).to_string(),
        "--out",
        &file.to_string_lossy(),
    ]));
    let stopped = (first.stop(), second.stop());
    drop_schema(db_url, &schema);
    drop(cache);
    load?;
    stopped.0.context("two instances: the first's shutdown")?;
    stopped.1.context("two instances: the second's shutdown")?;
    Ok(serde_json::from_str(&std::fs::read_to_string(&file)?)?)
}

/// The mean of `reports` (the same shape): numbers are averaged leaf by leaf, anything else
/// is taken from the first.
fn mean_of(reports: &[Value]) -> Value {
    fn mean(values: &[&Value]) -> Value {
        match values.first() {
            Some(Value::Number(_)) => {
                let nums: Vec<f64> = values.iter().filter_map(|v| v.as_f64()).collect();
                serde_json::json!(nums.iter().sum::<f64>() / nums.len().max(1) as f64)
            }
            Some(Value::Object(first)) => Value::Object(
                first
                    .keys()
                    .map(|k| {
                        let leaves: Vec<&Value> = values.iter().map(|v| &v[k.as_str()]).collect();
                        (k.clone(), mean(&leaves))
                    })
                    .collect(),
            ),
            Some(other) => (*other).clone(),
            None => Value::Null,
        }
    }
    mean(&reports.iter().collect::<Vec<_>>())
}

fn tier_markdown(t: &Value) -> String {
    let f = |k: &str| t[k].as_f64().unwrap_or(0.0);
    let u = |k: &str| t[k].as_u64().unwrap_or(0);
    let mut tiers = String::from(
        "\nReads by the tier that answered (`x-cache-tier`):\n\n| tier | reads | p50 | p99 |\n|---|---:|---:|---:|\n",
    );
    if let Some(map) = t["tiers"].as_object() {
        for (tier, v) in map {
            let n = |i: usize| v[i].as_f64().unwrap_or(0.0);
            tiers.push_str(&format!(
                "| {tier} | {} | {:.2} ms | {:.2} ms |\n",
                v[0].as_u64().unwrap_or(0),
                n(1),
                n(2)
            ));
        }
    }
    let table = format!(
        "\n## Two instances, one Redis tier\n\n\
         Renames through one instance, reads of the same 200 users through the other, for {:.0} s.\n\n\
         | writes | reads | stale past {} ms | older within it | errors | read p50 | read p95 | read p99 | write p50 | write p99 |\n\
         |---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n\
         | {} | {} | {} | {} | {} | {:.2} ms | {:.2} ms | {:.2} ms | {:.2} ms | {:.2} ms |\n",
        f("seconds"),
        u("bound_ms"),
        u("writes"),
        u("reads"),
        u("stale_reads"),
        u("recent_reads"),
        u("errors"),
        f("read_p50_ms"),
        f("read_p95_ms"),
        f("read_p99_ms"),
        f("write_p50_ms"),
        f("write_p99_ms"),
    );
    table + &tiers
}

fn markdown(
    results: &serde_json::Map<String, Value>,
    read_ratio: f64,
    peers: &Value,
    o: &Opts,
) -> String {
    use std::fmt::Write;
    let num = |m: &str, k: &str| results[m][k].as_f64();
    let mut md = String::new();
    let _ = writeln!(md, "# veza-api load test\n");
    let _ = writeln!(
        md,
        "{} s per run, {} connections, {} seeded users, the same seeded mix, on loopback; veza \
         and peers ran {} rounds each in alternating order (figures are their means), naive once. \
         **veza**: veza-dbpool, veza-cache, veza-httpopt (with its HTTP cache), veza-metrics, \
         veza-workers, veza-mempool; **peers**: deadpool-postgres, moka, reqwest, \
         metrics-exporter-prometheus, `spawn_blocking`, fresh `Vec`s; **naive**: a database \
         connection per request, no cache, an upstream connection per request. CPU is the \
         service's own (`/proc/PID/stat`, user + system, during the timed run).\n",
        o.duration, o.concurrency, o.users, o.rounds
    );
    let _ = writeln!(
        md,
        "| whole mix | veza | peers | naive | veza / peers | veza / naive |"
    );
    let _ = writeln!(md, "|---|---:|---:|---:|---:|---:|");
    let rows: [(&str, &str, usize); 12] = [
        ("requests/s", "rps", 0),
        ("reads/s", "read_rps", 0),
        ("p50 ms", "p50_ms", 2),
        ("p95 ms", "p95_ms", 2),
        ("p99 ms", "p99_ms", 2),
        ("p99.9 ms", "p999_ms", 2),
        ("CPU ms / 1,000 requests", "cpu_ms_per_1000", 1),
        ("peak RSS MiB", "peak_rss_mib", 1),
        ("CPUs busy: service", "service_cores", 2),
        ("CPUs busy: load generator", "load_cores", 2),
        ("CPUs busy: whole machine", "machine_cores", 2),
        ("errors", "errors", 0),
    ];
    for (label, field, digits) in rows {
        let cell = |m: &str| match num(m, field) {
            Some(v) => format!("{v:.digits$}"),
            None => "–".to_owned(),
        };
        let ratio = |of: &str| match (num("veza", field), num(of, field)) {
            (Some(v), Some(p)) if p > 0.0 && field != "errors" => format!("{:.2}", v / p),
            _ => String::new(),
        };
        let _ = writeln!(
            md,
            "| {label} | {} | {} | {} | {} | {} |",
            cell("veza"),
            cell("peers"),
            cell("naive"),
            ratio("peers"),
            ratio("naive")
        );
    }
    let rounds = |m: &str| {
        results[m]["rounds_rps"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|v| format!("{:.0}", v.as_f64().unwrap_or(0.0)))
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default()
    };
    let _ = writeln!(
        md,
        "\nRequests/s by round: veza {}; peers {}.",
        rounds("veza"),
        rounds("peers")
    );
    let _ = writeln!(
        md,
        "\n| endpoint | veza req/s | p50 / p99 / p99.9 ms | peers req/s | p50 / p99 / p99.9 ms | naive req/s | p50 / p99 / p99.9 ms |"
    );
    let _ = writeln!(md, "|---|---:|---:|---:|---:|---:|---:|");
    if let Some(endpoints) = results["veza"]["endpoints"].as_object() {
        for name in endpoints.keys() {
            let cell = |m: &str| {
                let ep = &results[m]["endpoints"][name];
                let f = |k: &str| ep[k].as_f64().unwrap_or(0.0);
                format!(
                    "{:.0} | {:.2} / {:.2} / {:.2}",
                    f("rps"),
                    f("p50_ms"),
                    f("p99_ms"),
                    f("p999_ms")
                )
            };
            let _ = writeln!(
                md,
                "| `{name}` | {} | {} | {} |",
                cell("veza"),
                cell("peers"),
                cell("naive")
            );
        }
    }
    let verdict = |ok: bool| if ok { "meets" } else { "misses" };
    let r = |k: &str| peers[k].as_f64().unwrap_or(f64::NAN);
    let _ = writeln!(
        md,
        "\nAgainst the peers (veza / peers): throughput {:.2}x (target >= 1.2: {}), p99 {:.2}x \
         (target <= 0.8: {}), CPU per request {:.2}x (target <= 0.85: {}). Reads against naive: \
         {read_ratio:.1}x (target >= 3: {}).",
        r("throughput"),
        verdict(r("throughput") >= 1.2),
        r("p99"),
        verdict(r("p99") <= 0.8),
        r("cpu_per_request"),
        verdict(r("cpu_per_request") <= 0.85),
        verdict(read_ratio >= 3.0),
    );
    md
}
