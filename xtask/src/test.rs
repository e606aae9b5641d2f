//! `cargo xtask test`: every test of the workspace, against a real PostgreSQL and Redis.

use std::time::Instant;

use anyhow::Result;

use crate::{pg, redis, tools, util};

/// Provisions PostgreSQL and Redis, runs `cargo test` with `DATABASE_URL` and `REDIS_URL` set,
/// and stops throwaway servers afterwards, whether the tests pass or not.
///
/// Without arguments: `cargo test --workspace --all-features`. Arguments are passed on; with
/// `-p`/`--package` the run covers those packages instead of the workspace.
pub(crate) fn run(args: &[String]) -> Result<()> {
    tools::ensure();
    let db = pg::provision()?;
    let cache = redis::provision()?;
    let started = Instant::now();
    let result = util::run(
        test_command(args)
            .env("DATABASE_URL", &db.url)
            .env("REDIS_URL", &cache.url),
    );
    eprintln!(
        "xtask: tests finished in {} against {}{} and {}{}",
        util::elapsed(started),
        db.url,
        if db.is_throwaway() {
            " (throwaway cluster)"
        } else {
            ""
        },
        cache.url,
        if cache.is_throwaway() {
            " (throwaway server)"
        } else {
            ""
        }
    );
    drop((db, cache)); // stop throwaway servers before reporting
    result
}

fn test_command(args: &[String]) -> std::process::Command {
    let mut cmd = util::cargo();
    cmd.arg("test");
    let (ours, passthrough) = match args.iter().position(|a| a == "--") {
        Some(i) => (&args[..i], &args[i..]),
        None => (args, &[][..]),
    };
    let selects_packages = ours
        .iter()
        .any(|a| a == "-p" || a.starts_with("--package") || a.starts_with("-p"));
    if !selects_packages {
        cmd.arg("--workspace");
    }
    let picks_features = ours
        .iter()
        .any(|a| a.starts_with("--features") || a == "-F" || a == "--no-default-features");
    if !picks_features {
        cmd.arg("--all-features");
    }
    cmd.args(ours).args(passthrough);
    cmd
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(cmd: &std::process::Command) -> Vec<String> {
        cmd.get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn whole_workspace_by_default() {
        assert_eq!(
            args(&test_command(&[])),
            ["test", "--workspace", "--all-features"]
        );
    }

    #[test]
    fn package_selection_and_test_args_pass_through() {
        let given: Vec<String> = ["-p", "veza-cache", "--", "--nocapture"]
            .map(String::from)
            .to_vec();
        assert_eq!(
            args(&test_command(&given)),
            [
                "test",
                "--all-features",
                "-p",
                "veza-cache",
                "--",
                "--nocapture"
            ]
        );
    }
}
