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
    forget_packaged_sources();
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

/// Makes cargo verify the packages against this run's sources. Cargo extracts a package of a
/// registry once and trusts the directory after that, and it never rebuilds a registry
/// package whose version it has built: both hold for the local registry `cargo package`
/// verifies against, where every run packages 0.1.0 again. So a function added to veza-core
/// since an earlier run was "not found" when veza-httpopt was verified. This removes the
/// extracted `veza-*` sources of those local registries (`$CARGO_HOME/registry/src/-<hash>/`;
/// crates.io's are left alone) and the build fingerprints of the `veza-*` crates built from
/// them, so both are made again (the dependencies' builds are kept).
fn forget_packaged_sources() {
    let home = std::env::var_os("CARGO_HOME")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| std::path::Path::new(&h).join(".cargo")));
    for registry in home
        .into_iter()
        .flat_map(|h| entries(&h.join("registry/src")))
        .filter(|r| r.file_name().to_string_lossy().starts_with('-'))
    {
        for krate in entries(&registry.path()) {
            if krate.file_name().to_string_lossy().starts_with("veza-") {
                let _ = std::fs::remove_dir_all(krate.path());
            }
        }
    }
    // A build's dependency list (`deps/<crate>-<hash>.d`) names its sources; one built from
    // such a registry loses its fingerprint (`.fingerprint/<crate-with-dashes>-<hash>`).
    let debug = util::target_dir().join("debug");
    for dep in entries(&debug.join("deps")) {
        let name = dep.file_name().to_string_lossy().into_owned();
        let Some(stem) = name
            .strip_prefix("veza_")
            .and_then(|n| n.strip_suffix(".d"))
        else {
            continue;
        };
        let from_local_registry =
            std::fs::read_to_string(dep.path()).is_ok_and(|d| d.contains("/registry/src/-"));
        if from_local_registry {
            let fingerprint = format!("veza-{}", stem.replace('_', "-"));
            let _ = std::fs::remove_dir_all(debug.join(".fingerprint").join(fingerprint));
        }
    }
}

/// The entries of a directory; none when it cannot be read.
fn entries(dir: &std::path::Path) -> Vec<std::fs::DirEntry> {
    std::fs::read_dir(dir).map_or_else(|_| Vec::new(), |d| d.flatten().collect())
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
