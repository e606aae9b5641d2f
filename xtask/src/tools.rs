//! The outside tools the tests use beyond PostgreSQL: `promtool` (Debian's `prometheus`) checks
//! scrapes and rules, the reference OpenMetrics parser (Debian's `python3-prometheus-client`)
//! checks OpenMetrics scrapes, `pgbouncer` runs the pool's transaction-mode suite. `cargo xtask test`
//! installs the missing ones through `apt-get` when it runs as root on a Debian-like machine,
//! and otherwise says what to install (the tests that need them require them in CI).

use std::path::Path;
use std::process::Command;

/// (the command, or an absolute path, and the Debian package that has it)
const TOOLS: &[(&str, &str)] = &[
    ("promtool", "prometheus"),
    ("pgbouncer", "pgbouncer"),
    ("redis-server", "redis-server"),
    (
        "/usr/lib/python3/dist-packages/prometheus_client",
        "python3-prometheus-client",
    ),
];

/// Installs what is missing, when it can; never fails the run (the tests say what they lack).
pub(crate) fn ensure() {
    let missing: Vec<&str> = TOOLS
        .iter()
        .filter(|(cmd, _)| !found(cmd))
        .map(|(_, pkg)| *pkg)
        .collect();
    if missing.is_empty() {
        return;
    }
    if !crate::util::is_root() || !Path::new("/usr/bin/apt-get").exists() {
        eprintln!(
            "xtask: missing {}; install them (apt-get install {}) for the tests that use them",
            missing.join(", "),
            missing.join(" ")
        );
        return;
    }
    eprintln!("xtask: installing {}", missing.join(", "));
    let ok = Command::new("apt-get")
        .args(["update", "-qq"])
        .status()
        .is_ok_and(|s| s.success())
        && Command::new("apt-get")
            .args(["install", "-y", "-qq", "--no-install-recommends"])
            .args(&missing)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .is_ok_and(|s| s.success());
    if !ok {
        eprintln!("xtask: apt-get could not install {}", missing.join(", "));
    }
}

/// Whether `cmd` is on the PATH or in /usr/sbin (where Debian puts daemons), or, given as an
/// absolute path, exists.
fn found(cmd: &str) -> bool {
    if cmd.starts_with('/') {
        return Path::new(cmd).exists();
    }
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .chain([Path::new("/usr/sbin").to_path_buf()])
        .any(|dir| dir.join(cmd).is_file())
}
