//! `cargo run -p veza-api [-- --config FILE] [--listen ADDR] [--naive]`: runs the service
//! until SIGTERM or Ctrl-C, then drains and stops.
#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a service reports to its operator"
)]

use veza_api::Config;

/// jemalloc, for heap profiles at `/debug/pprof/heap` (start with
/// `_RJEM_MALLOC_CONF=prof:true,prof_active:true,lg_prof_sample:19` to turn its profiler on).
#[cfg(target_os = "linux")]
#[global_allocator]
static ALLOC: veza_metrics::heap::Jemalloc = veza_metrics::heap::Jemalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::load(std::env::args().skip(1))?;
    let mode = config.mode;
    let running = veza_api::start(config).await?;
    println!(
        "veza-api listening on http://{} ({mode:?} mode)",
        running.addr
    );
    if let Some(a) = &running.avatars {
        println!("avatar upstream on http://{}", a.addr);
    }
    let clean = running.until_signal().await;
    eprintln!(
        "veza-api stopped{}",
        if clean {
            ""
        } else {
            " (deadline reached before draining)"
        }
    );
    Ok(())
}
