//! `cargo xtask report-shot`: a screenshot of `target/veza-bench/report.html` taken by headless
//! Chromium, to look at the charts as a reader would (`apt-get install chromium`).

use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::{bench, util};

pub(crate) fn run(args: &[String]) -> Result<()> {
    let dir = bench::out_dir();
    let html = dir.join("report.html");
    if !html.is_file() {
        bail!(
            "no {} yet: run `cargo xtask bench --quick` first",
            html.display()
        );
    }
    let png = dir.join("report.png");
    let height = args
        .iter()
        .position(|a| a == "--height")
        .and_then(|i| args.get(i + 1))
        .map_or(Ok(6000), |h| h.parse::<u32>())
        .context("--height takes a number of pixels")?;
    let browser = ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|b| {
            Command::new(b)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .context("no Chromium found: apt-get install chromium")?;
    let profile = std::env::temp_dir().join(format!("veza-shot-{}", std::process::id()));
    // The flags keep Chromium from reaching out to the network (there is none here).
    let shot = util::output(
        Command::new(browser)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--hide-scrollbars",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg(format!("--window-size=1200,{height}"))
            .arg(format!("--screenshot={}", png.display()))
            .arg(format!("file://{}", html.display())),
    );
    let _ = std::fs::remove_dir_all(&profile);
    shot?;
    if !png.is_file() {
        bail!("Chromium did not write {}", png.display());
    }
    eprintln!("xtask: wrote {}", png.display());
    Ok(())
}
