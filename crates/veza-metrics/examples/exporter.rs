//! Serves the process, system and sample business metrics until stopped (Ctrl-C):
//! `cargo run -p veza-metrics --example exporter -- --listen 127.0.0.1:9000`.
#![allow(clippy::print_stdout, reason = "an example talks to its user")]

use std::net::SocketAddr;
use std::time::Duration;

use veza_metrics::{Business, DEFAULT_ADDR, Metrics};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let mut addr: SocketAddr = DEFAULT_ADDR;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--listen" => addr = args.next().ok_or("--listen needs ADDR:PORT")?.parse()?,
            other => return Err(format!("unknown argument `{other}`").into()),
        }
    }
    let metrics = Metrics::builder().install()?;
    let exporter = metrics.serve(addr)?;
    println!(
        "serving http://{}/metrics (Ctrl-C to stop)",
        exporter.local_addr()
    );
    let business = Business::new();
    let mut tick: u64 = 0;
    loop {
        // Sample business figures that move, so a scrape shows something alive.
        tick += 1;
        business.active_users.set((100 + tick % 50) as f64);
        business.messages.increment(tick % 7);
        business.streams_active.set((tick % 5) as f64);
        business
            .concurrent_connections
            .set((200 + tick % 30) as f64);
        std::thread::sleep(Duration::from_secs(1));
    }
}
