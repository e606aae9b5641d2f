//! `cargo xtask ci`: everything CI checks, in the order that fails fastest.

use std::time::Instant;

use anyhow::{Result, bail};

use crate::{codegen, test, tidy, util};

/// A named check.
type Step = (&'static str, fn() -> Result<()>);

/// Runs every step, even after a failure, then reports which failed.
pub(crate) fn run(args: &[String]) -> Result<()> {
    if let Some(arg) = args.first() {
        bail!("`cargo xtask ci` takes no arguments (got `{arg}`)");
    }
    let steps: [Step; 9] = [
        ("fmt", fmt),
        ("tidy", tidy::run),
        ("codegen", || codegen::run(&["--check".to_owned()])),
        ("clippy", clippy),
        ("rustdoc", rustdoc),
        ("test", || test::run(&[])),
        ("bench build", bench_build),
        ("package", package),
        ("cargo deny", deny),
    ];
    let started = Instant::now();
    let mut failed = Vec::new();
    for (name, step) in steps {
        let at = Instant::now();
        eprintln!("\nxtask ci: ── {name} ──");
        match step() {
            Ok(()) => eprintln!("xtask ci: {name} ok ({})", util::elapsed(at)),
            Err(err) => {
                eprintln!("xtask ci: {name} FAILED ({}): {err:#}", util::elapsed(at));
                failed.push(name);
            }
        }
    }
    eprintln!("\nxtask ci: finished in {}", util::elapsed(started));
    if !failed.is_empty() {
        bail!("failed steps: {}", failed.join(", "));
    }
    eprintln!("xtask ci: all steps passed");
    Ok(())
}

fn fmt() -> Result<()> {
    util::run(util::cargo().args(["fmt", "--all", "--", "--check"]))
}

fn clippy() -> Result<()> {
    util::run(util::cargo().args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--all-features",
        "--",
        "-D",
        "warnings",
    ]))
}

fn rustdoc() -> Result<()> {
    util::run(
        util::cargo()
            .args(["doc", "--workspace", "--no-deps", "--all-features"])
            .env("RUSTDOCFLAGS", "-D warnings"),
    )
}

fn bench_build() -> Result<()> {
    util::run(util::cargo().args(["bench", "--package", "veza-benches", "--no-run"]))
}

/// `cargo package` for every published crate, verified against each other (the release
/// rehearsal: metadata, included files, and a build from the packaged sources).
fn package() -> Result<()> {
    util::run(util::cargo().args([
        "package",
        "--workspace",
        "--exclude",
        "xtask",
        "--exclude",
        "veza-benches",
        "--exclude",
        "veza-api",
        "--allow-dirty",
    ]))
}

/// `cargo deny check licenses bans sources`, installing cargo-deny first if it is missing.
fn deny() -> Result<()> {
    let installed = util::cargo()
        .args(["deny", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !installed {
        eprintln!("xtask: cargo-deny is missing; installing it from crates.io");
        util::run(util::cargo().args(["install", "cargo-deny", "--locked"]))?;
    }
    util::run(util::cargo().args([
        "deny",
        "--all-features",
        "check",
        "licenses",
        "bans",
        "sources",
    ]))
}
