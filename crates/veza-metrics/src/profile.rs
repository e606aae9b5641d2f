//! CPU profiling on the metrics endpoint (feature `pprof`): `/debug/pprof/profile?seconds=N`
//! returns a gzipped pprof protobuf that `go tool pprof` reads, `/debug/pprof/flamegraph` an
//! SVG. The guide's "Commandes Utiles" point `go tool pprof` at the same path.

use std::io::Write as _;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::time::Duration;

use bytes::Bytes;
use http::{Response, StatusCode, header};
use http_body_util::Full;
use pprof::protos::Message as _;

use crate::exporter::plain;

/// The sampling frequency, in Hz (Go uses 100; 99 avoids lockstep with periodic work).
const FREQUENCY: i32 = 99;
/// The longest profile a request may ask for.
const MAX_SECONDS: u64 = 300;

/// One profile at a time: the profiler is process-wide (SIGPROF).
static RUNNING: AtomicBool = AtomicBool::new(false);

/// What to return.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Pprof,
    Flamegraph,
}

/// `seconds=N` from a query string: default 30, at least 1, at most 300.
pub(crate) fn seconds(query: Option<&str>) -> Result<u64, String> {
    let Some(value) = query
        .unwrap_or("")
        .split('&')
        .find_map(|kv| kv.strip_prefix("seconds="))
    else {
        return Ok(30);
    };
    match value.parse::<u64>() {
        Ok(s) if (1..=MAX_SECONDS).contains(&s) => Ok(s),
        _ => Err(format!(
            "seconds must be a whole number from 1 to {MAX_SECONDS}\n"
        )),
    }
}

/// Profiles the process for `seconds` on a blocking thread and renders the result.
pub(crate) async fn profile(kind: Kind, seconds: u64) -> Response<Full<Bytes>> {
    if RUNNING.swap(true, SeqCst) {
        return plain(StatusCode::CONFLICT, "a profile is already running\n");
    }
    let result = tokio::task::spawn_blocking(move || run(kind, seconds)).await;
    RUNNING.store(false, SeqCst);
    match result {
        Ok(Ok(response)) => response,
        Ok(Err(e)) => plain(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("profiling failed: {e}\n"),
        ),
        Err(e) => plain(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("profiling failed: {e}\n"),
        ),
    }
}

fn run(kind: Kind, seconds: u64) -> Result<Response<Full<Bytes>>, String> {
    let guard = pprof::ProfilerGuardBuilder::default()
        .frequency(FREQUENCY)
        .blocklist(&["libc", "libgcc", "pthread", "vdso"])
        .build()
        .map_err(|e| e.to_string())?;
    std::thread::sleep(Duration::from_secs(seconds));
    let report = guard.report().build().map_err(|e| e.to_string())?;
    drop(guard);
    let response = Response::builder().status(StatusCode::OK);
    let response = match kind {
        Kind::Pprof => {
            let profile = report.pprof().map_err(|e| e.to_string())?;
            let raw = profile.write_to_bytes().map_err(|e| e.to_string())?;
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            gz.write_all(&raw).map_err(|e| e.to_string())?;
            let body = gz.finish().map_err(|e| e.to_string())?;
            response
                .header(header::CONTENT_TYPE, "application/octet-stream")
                .header(
                    header::CONTENT_DISPOSITION,
                    "attachment; filename=\"profile.pb.gz\"",
                )
                .body(Full::new(Bytes::from(body)))
        }
        Kind::Flamegraph => {
            let mut svg = Vec::new();
            report.flamegraph(&mut svg).map_err(|e| e.to_string())?;
            response
                .header(header::CONTENT_TYPE, "image/svg+xml")
                .body(Full::new(Bytes::from(svg)))
        }
    };
    response.map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_are_parsed_and_bounded() {
        assert_eq!(seconds(None), Ok(30));
        assert_eq!(seconds(Some("seconds=5")), Ok(5));
        assert_eq!(seconds(Some("debug=1&seconds=2")), Ok(2));
        assert!(seconds(Some("seconds=0")).is_err());
        assert!(seconds(Some("seconds=301")).is_err());
        assert!(seconds(Some("seconds=abc")).is_err());
    }
}
