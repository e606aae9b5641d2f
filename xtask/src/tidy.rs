//! `cargo xtask tidy`: repository rules that no compiler checks. Also runs as a test.

use std::path::{Path, PathBuf};

use anyhow::{Result, bail};

use crate::util;

/// Runs every rule and lists every violation.
pub(crate) fn run() -> Result<()> {
    let problems = check(&util::root());
    if problems.is_empty() {
        eprintln!("xtask: tidy: ok");
        return Ok(());
    }
    for p in &problems {
        eprintln!("tidy: {p}");
    }
    bail!("{} tidy problem(s)", problems.len());
}

/// Every violation of the rules in the tree at `root`.
pub(crate) fn check(root: &Path) -> Vec<String> {
    let mut problems = Vec::new();
    let crates = published_crates(root);
    if crates.is_empty() {
        problems.push("no crate found under crates/".to_owned());
    }
    for dir in &crates {
        check_crate_files(dir, &mut problems);
        check_manifest(dir, &mut problems);
    }
    check_workspace_manifest(root, &mut problems);
    for file in rust_files(root) {
        check_rust_file(root, &file, &mut problems);
    }
    problems
}

fn published_crates(root: &Path) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(root.join("crates"))
        .map(|rd| {
            rd.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.join("Cargo.toml").is_file())
                .collect()
        })
        .unwrap_or_default();
    dirs.sort();
    dirs
}

fn check_crate_files(dir: &Path, problems: &mut Vec<String>) {
    let name = dir.file_name().unwrap_or_default().to_string_lossy();
    if !dir.join("README.md").is_file() {
        problems.push(format!("{name}: no README.md"));
    }
    match std::fs::read_to_string(dir.join("CHANGELOG.md")) {
        Ok(text) if text.contains("## [Unreleased]") => {}
        Ok(_) => problems.push(format!(
            "{name}: CHANGELOG.md has no `## [Unreleased]` section"
        )),
        Err(_) => problems.push(format!("{name}: no CHANGELOG.md")),
    }
}

fn check_manifest(dir: &Path, problems: &mut Vec<String>) {
    let name = dir
        .file_name()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned();
    let Some(manifest) = read_toml(&dir.join("Cargo.toml"), problems) else {
        return;
    };
    let package = manifest.get("package");
    if package
        .and_then(|p| p.get("name"))
        .and_then(toml::Value::as_str)
        != Some(name.as_str())
    {
        problems.push(format!("{name}: the folder name must be the package name"));
    }
    for key in ["description", "readme", "keywords", "categories"] {
        if package.and_then(|p| p.get(key)).is_none() {
            problems.push(format!("{name}: Cargo.toml has no package.{key}"));
        }
    }
    let lints = manifest.get("lints").and_then(|l| l.get("workspace"));
    if lints.and_then(toml::Value::as_bool) != Some(true) {
        problems.push(format!(
            "{name}: Cargo.toml must have `[lints] workspace = true`"
        ));
    }
    for table in ["dependencies", "build-dependencies"] {
        if let Some(deps) = manifest.get(table).and_then(toml::Value::as_table) {
            for (dep, spec) in deps {
                if spec.get("path").is_some() && spec.get("version").is_none() {
                    problems.push(format!("{name}: path dependency {dep} has no version"));
                }
            }
        }
    }
}

fn check_workspace_manifest(root: &Path, problems: &mut Vec<String>) {
    let Some(manifest) = read_toml(&root.join("Cargo.toml"), problems) else {
        return;
    };
    let deps = manifest
        .get("workspace")
        .and_then(|w| w.get("dependencies"))
        .and_then(toml::Value::as_table);
    for (dep, spec) in deps.into_iter().flatten() {
        if spec.get("path").is_some() && spec.get("version").is_none() {
            problems.push(format!("workspace: path dependency {dep} has no version"));
        }
    }
}

fn read_toml(path: &Path, problems: &mut Vec<String>) -> Option<toml::Table> {
    let parsed = std::fs::read_to_string(path)
        .map_err(|e| e.to_string())
        .and_then(|text| text.parse::<toml::Table>().map_err(|e| e.to_string()));
    match parsed {
        Ok(table) => Some(table),
        Err(err) => {
            problems.push(format!("{}: {err}", path.display()));
            None
        }
    }
}

fn check_rust_file(root: &Path, file: &Path, problems: &mut Vec<String>) {
    let shown = file
        .strip_prefix(root)
        .unwrap_or(file)
        .display()
        .to_string();
    let Ok(text) = std::fs::read_to_string(file) else {
        problems.push(format!("{shown}: unreadable"));
        return;
    };
    let first = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
    if !first.starts_with("//!") {
        problems.push(format!("{shown}: does not open with a `//!` module doc"));
    }
    // Built from parts so that this file does not trip its own rule.
    let ignore_attr = concat!("#[", "ignore");
    if text.contains(ignore_attr) {
        problems.push(format!(
            "{shown}: ignored tests are not allowed; fix or delete the test"
        ));
    }
}

/// Every `.rs` file of the workspace outside `target/`.
fn rust_files(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack: Vec<PathBuf> = ["crates", "xtask", "benches", "examples"]
        .iter()
        .map(|d| root.join(d))
        .collect();
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name();
            if path.is_dir() {
                if name != "target" && !name.to_string_lossy().starts_with('.') {
                    stack.push(path);
                }
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_repository_is_tidy() {
        let problems = check(&util::root());
        assert!(
            problems.is_empty(),
            "tidy problems:\n{}",
            problems.join("\n")
        );
    }

    #[test]
    fn violations_are_found() {
        let dir = std::env::temp_dir().join(format!("veza-tidy-{}", std::process::id()));
        let krate = dir.join("crates/veza-bad");
        std::fs::create_dir_all(krate.join("src")).unwrap();
        std::fs::write(
            krate.join("Cargo.toml"),
            "[package]\nname = \"veza-bad\"\n[dependencies]\nveza-core = { path = \"../veza-core\" }\n",
        )
        .unwrap();
        let ignored = concat!("#[", "ignore]");
        std::fs::write(
            krate.join("src/lib.rs"),
            format!("pub fn f() {{}}\n{ignored}\n"),
        )
        .unwrap();
        std::fs::write(dir.join("Cargo.toml"), "[workspace]\n").unwrap();
        let problems = check(&dir).join("\n");
        std::fs::remove_dir_all(&dir).unwrap();
        for expected in [
            "veza-bad: no README.md",
            "veza-bad: no CHANGELOG.md",
            "path dependency veza-core has no version",
            "does not open with a `//!` module doc",
            "ignored tests are not allowed",
            "[lints] workspace = true",
            "package.description",
        ] {
            assert!(
                problems.contains(expected),
                "missing `{expected}` in:\n{problems}"
            );
        }
    }
}
