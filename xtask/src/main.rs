//! `cargo xtask`: the project's automation, in Rust so it runs wherever cargo does.
//!
//! ```text
//! cargo xtask test [CARGO TEST ARGS]   provision PostgreSQL, run every test
//! cargo xtask bench [--quick] [--filter ID] [--save NAME] [--compare NAME] [--threshold PCT]
//!                   [--render FILE]
//! cargo xtask ci                       everything CI checks
//! cargo xtask tidy                     repository rules
//! cargo xtask codegen [--check]        regenerate docs/metrics.md from the catalog
//! cargo xtask report-shot               screenshot report.html with headless Chromium
//! cargo xtask loadtest [--duration SECS] the reference service under load: veza, peers, naive
//! ```
#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a command-line tool talks on its standard streams"
)]

mod bench;
mod ci;
mod codegen;
mod html;
mod loadtest;
mod miri;
mod pg;
mod redis;
mod report;
mod shot;
mod test;
mod tidy;
mod tools;
mod util;

use std::process::ExitCode;

const USAGE: &str = "\
usage: cargo xtask <task> [args]

tasks:
  test [ARGS]    run every test of the workspace against PostgreSQL (ARGS go to cargo test)
  bench [OPTS]   run the benchmark suites; writes target/veza-bench/report.{json,md}
                 --quick            fewer samples (whole run under 10 minutes)
                 --filter TEXT      only cases whose id contains TEXT (repeatable)
                 --save NAME        keep this report as baseline NAME
                 --compare NAME     compare with baseline NAME; fail on a regression
                 --threshold PCT    regression threshold for --compare (default 10)
                 --render FILE      run nothing: write report.{md,html} and the charts
                                    from a saved report.json (a baseline, an old run)
  ci             fmt, clippy, rustdoc, tidy, tests, bench build, cargo-deny
  tidy           check repository rules (module docs, versions, README/CHANGELOG, no ignored tests)
  codegen        regenerate docs/metrics.md from the catalog (--check: fail if stale)
  loadtest       run examples/veza-api under a bounded load on three stacks (veza,
                 the peers, naive); writes veza-load/report.{json,md} in the target dir
                 --duration SECS (default 20) --concurrency N (32) --users N (10000)
                 --rounds N (2: veza and peers, alternating)
  miri           unit tests of the unsafe and lock-free code under miri (nightly + miri)
  report-shot    screenshot target/veza-bench/report.html with headless Chromium
                 (--height PX, default 6000); writes target/veza-bench/report.png
";

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let task = args.next();
    let rest: Vec<String> = args.collect();
    let result = match task.as_deref() {
        Some("test") => test::run(&rest),
        Some("bench") => bench::run(&rest),
        Some("ci") => ci::run(&rest),
        Some("tidy") => tidy::run(),
        Some("codegen") => codegen::run(&rest),
        Some("report-shot") => shot::run(&rest),
        Some("miri") => miri::run(),
        Some("loadtest") => loadtest::run(&rest),
        Some("help" | "-h" | "--help") | None => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Some(other) => Err(anyhow::anyhow!("unknown task `{other}`\n\n{USAGE}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("xtask: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
