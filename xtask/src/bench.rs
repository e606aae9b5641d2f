//! `cargo xtask bench`: runs the `veza-benches` suites and writes the report.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use veza_benches::{CaseRecord, Host, Report, format_duration};

use crate::{html, pg, report, util};

#[derive(Debug, Default)]
struct Options {
    quick: bool,
    filters: Vec<String>,
    save: Option<String>,
    compare: Option<String>,
    threshold: f64,
    render: Option<PathBuf>,
}

fn parse(args: &[String]) -> Result<Options> {
    let mut opts = Options {
        threshold: 10.0,
        ..Options::default()
    };
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = || {
            it.next()
                .cloned()
                .with_context(|| format!("{arg} needs a value"))
        };
        match arg.as_str() {
            "--quick" => opts.quick = true,
            "--filter" => opts.filters.push(value()?),
            "--save" => opts.save = Some(baseline_name(&value()?)?),
            "--compare" => opts.compare = Some(baseline_name(&value()?)?),
            "--render" => opts.render = Some(PathBuf::from(value()?)),
            "--threshold" => {
                opts.threshold = value()?
                    .parse()
                    .context("--threshold takes a percentage, e.g. 10")?;
            }
            other => bail!("unknown bench option `{other}` (see `cargo xtask help`)"),
        }
    }
    Ok(opts)
}

fn baseline_name(name: &str) -> Result<String> {
    let ok = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.');
    if !ok || name.starts_with('.') {
        bail!("baseline names use letters, digits, `-`, `_` and `.`: `{name}`");
    }
    Ok(name.to_owned())
}

/// The directory of the report and its baselines.
pub(crate) fn out_dir() -> PathBuf {
    util::root().join("target/veza-bench")
}

pub(crate) fn run(args: &[String]) -> Result<()> {
    let opts = parse(args)?;
    let dir = out_dir();
    std::fs::create_dir_all(&dir)?;
    if let Some(path) = &opts.render {
        let report = load(path)?;
        let md = write_outputs(&dir, &report)?;
        println!("{md}");
        eprintln!(
            "xtask: rendered {} cases of {} (revision {}) into {}",
            report.cases.len(),
            path.display(),
            report.git_rev,
            dir.join("report.{json,md,html} and charts/").display()
        );
        return Ok(());
    }
    let baseline = match &opts.compare {
        Some(name) => Some(load(&dir.join(format!("baselines/{name}.json")))?),
        None => None,
    };
    let started_at = report::now_rfc3339();
    let started = Instant::now();

    let db = pg::provision();
    let cache = crate::redis::provision();
    let records_path = dir.join("cases.jsonl");
    let _ = std::fs::remove_file(&records_path);
    let mut cmd = util::cargo();
    cmd.args(["bench", "--package", "veza-benches", "--"]);
    if opts.quick {
        cmd.arg("--quick");
    }
    for f in &opts.filters {
        cmd.args(["--filter", f]);
    }
    cmd.env("VEZA_BENCH_OUT", &records_path);
    match &db {
        Ok(db) => cmd.env("DATABASE_URL", &db.url),
        Err(err) => {
            eprintln!("xtask: database cases will be skipped: {err:#}");
            cmd.env("VEZA_BENCH_NO_DB", format!("no PostgreSQL: {err:#}"))
        }
    };
    eprintln!(
        "xtask: running the bench suites ({} mode{})",
        if opts.quick { "quick" } else { "full" },
        if opts.filters.is_empty() {
            String::new()
        } else {
            format!(", filter {}", opts.filters.join(" | "))
        }
    );
    match &cache {
        Ok(cache) => cmd.env("REDIS_URL", &cache.url),
        Err(err) => {
            eprintln!("xtask: Redis cases will be skipped: {err:#}");
            cmd.env("VEZA_BENCH_NO_REDIS", format!("no Redis: {err:#}"))
        }
    };
    let ran = util::run(&mut cmd);
    drop((db, cache));

    let cases = read_records(&records_path)?;
    let report = Report {
        schema: 2,
        mode: if opts.quick { "quick" } else { "full" }.to_owned(),
        git_rev: git_rev(),
        host: host(),
        started_at,
        cases,
    };
    let md = write_outputs(&dir, &report)?;
    println!("{md}");
    eprintln!(
        "xtask: {} cases in {}; wrote {}",
        report.cases.len(),
        format_duration(started.elapsed()),
        dir.join("report.{json,md,html}").display()
    );
    ran.context("a bench suite failed; the report holds the cases that finished")?;

    if let Some(name) = &opts.save {
        std::fs::create_dir_all(dir.join("baselines"))?;
        std::fs::copy(
            dir.join("report.json"),
            dir.join(format!("baselines/{name}.json")),
        )?;
        eprintln!("xtask: saved as baseline `{name}`");
    }
    if let (Some(name), Some(base)) = (&opts.compare, baseline) {
        let (text, regressions) = report::compare(&base, &report, opts.threshold);
        println!("## Against baseline `{name}`\n\n{text}");
        if regressions > 0 {
            bail!(
                "{regressions} case(s) got worse than {}% against baseline `{name}`",
                opts.threshold
            );
        }
    }
    Ok(())
}

/// Writes report.json, report.md, report.html and one SVG chart per case under `dir`; returns
/// the markdown.
fn write_outputs(dir: &Path, report: &Report) -> Result<String> {
    let json = serde_json::to_string_pretty(report)?;
    std::fs::write(dir.join("report.json"), json + "\n")?;
    let targets = report::load_targets(&util::root().join("benches/targets.toml"))?;
    let versions = report::peer_versions().unwrap_or_default();
    let md = report::markdown(report, &targets, &versions);
    std::fs::write(dir.join("report.md"), &md)?;
    std::fs::write(
        dir.join("report.html"),
        html::page(report, &targets, &versions),
    )?;
    // One SVG per case as well, for pages that embed a chart (docs/benchmarks.md).
    let charts = dir.join("charts");
    std::fs::create_dir_all(&charts)?;
    for case in &report.cases {
        if let Ok(svg) = html::chart(case) {
            std::fs::write(
                charts.join(format!("{}.svg", case.id.replace('/', "__"))),
                svg,
            )?;
        }
    }
    Ok(md)
}

fn load(path: &Path) -> Result<Report> {
    let text = std::fs::read_to_string(path).with_context(|| {
        format!(
            "cannot read the report {} (baselines are made with --save)",
            path.display()
        )
    })?;
    serde_json::from_str(&text).with_context(|| format!("reading {}", path.display()))
}

fn read_records(path: &Path) -> Result<Vec<CaseRecord>> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Ok(Vec::new());
    };
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).with_context(|| format!("bad record: {l}")))
        .collect()
}

fn git_rev() -> String {
    util::output(
        Command::new("git")
            .args(["rev-parse", "--short", "HEAD"])
            .current_dir(util::root()),
    )
    .unwrap_or_else(|_| "unknown".to_owned())
}

fn host() -> Host {
    let mem_bytes = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            let line = m.lines().find(|l| l.starts_with("MemTotal:"))?;
            let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
            Some(kib * 1024)
        })
        .unwrap_or(0);
    Host {
        os: std::env::consts::OS.to_owned(),
        cpus: std::thread::available_parallelism().map_or(1, usize::from),
        mem_bytes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_are_parsed_and_checked() {
        let args: Vec<String> = [
            "--quick",
            "--filter",
            "floor",
            "--compare",
            "main",
            "--threshold",
            "5",
        ]
        .map(String::from)
        .to_vec();
        let opts = parse(&args).unwrap();
        assert!(opts.quick);
        assert_eq!(opts.filters, ["floor"]);
        assert_eq!(opts.compare.as_deref(), Some("main"));
        assert_eq!(opts.threshold, 5.0);
        assert!(parse(&["--save".into(), "../etc".into()]).is_err());
        assert!(parse(&["--filter".into()]).is_err());
        assert!(parse(&["--bogus".into()]).is_err());
    }
}
