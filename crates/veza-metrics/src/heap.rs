//! Heap profiles (feature `heap-profile`): `GET /debug/pprof/heap` on the metrics endpoint
//! returns what the process holds now, sampled by jemalloc's profiler, as a gzipped pprof
//! protobuf with function names in it, the counterpart of the guide's
//! `go tool pprof http://…/debug/pprof/heap`.
//!
//! # Setup
//!
//! 1. Make jemalloc the global allocator, with this crate's re-export (so its version is the
//!    one the profiler talks to):
//!
//!    ```no_run
//!    #[global_allocator]
//!    static ALLOC: veza_metrics::heap::Jemalloc = veza_metrics::heap::Jemalloc;
//!    # fn main() {}
//!    ```
//!
//! 2. Turn the profiler on when the process starts (jemalloc reads it once, at its first
//!    allocation), with the environment:
//!
//!    ```text
//!    _RJEM_MALLOC_CONF=prof:true,prof_active:true,lg_prof_sample:19 ./my-service
//!    ```
//!
//!    or, in the binary, the symbol jemalloc looks for (no environment needed):
//!
//!    ```no_run
//!    // SAFETY: jemalloc reads this NUL-terminated string once, at start.
//!    #[unsafe(export_name = "_rjem_malloc_conf")]
//!    static MALLOC_CONF: &[u8] = b"prof:true,prof_active:true,lg_prof_sample:19\0";
//!    # fn main() {}
//!    ```
//!
//!    `lg_prof_sample:19` samples one allocation per 512 KiB allocated on average (jemalloc's
//!    default, cheap enough for production); smaller values see smaller allocations and cost
//!    more. The jemalloc here is prefixed (`_rjem_`), so C code keeps the system `malloc`
//!    and the variable is `_RJEM_MALLOC_CONF`, not `MALLOC_CONF`.
//!
//! 3. Read it: `go tool pprof -http=:8080 http://127.0.0.1:9000/debug/pprof/heap` (or
//!    `pprof`, or any reader of the pprof format). The sample type is `inuse_space` in bytes.
//!
//! Without step 1 or 2 the endpoint answers 503 and says which is missing. A dump takes a
//! lock (one at a time), writes jemalloc's profile to a temporary file, and symbolizes it on a
//! blocking thread.

use bytes::Bytes;
use http::{Response, StatusCode, header};
use http_body_util::Full;

use crate::exporter::plain;

/// jemalloc as a global allocator, built with its profiler (`tikv-jemallocator`).
#[cfg(target_os = "linux")]
pub use tikv_jemallocator::Jemalloc;

/// Whether heap profiles can be taken in this process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Status {
    /// jemalloc's profiler is on and sampling: `/debug/pprof/heap` answers.
    Active,
    /// The profiler was started (`prof:true`) but is paused (`prof_active:false`).
    Inactive,
    /// jemalloc is not the allocator, or was started without `prof:true`.
    Unavailable,
}

/// Whether heap profiles can be taken now.
pub fn status() -> Status {
    #[cfg(target_os = "linux")]
    {
        let Some(ctl) = jemalloc_pprof::PROF_CTL.as_ref() else {
            return Status::Unavailable;
        };
        let active = match ctl.try_lock() {
            Ok(ctl) => ctl.activated(),
            // A dump is running, so it was active a moment ago.
            Err(_) => true,
        };
        if active {
            Status::Active
        } else {
            Status::Inactive
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        Status::Unavailable
    }
}

const UNAVAILABLE: &str = "heap profiling is unavailable: make veza_metrics::heap::Jemalloc the \
    #[global_allocator] and start the process with \
    _RJEM_MALLOC_CONF=prof:true,prof_active:true,lg_prof_sample:19 (see veza_metrics::heap)";

/// Why no heap profile was taken.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// jemalloc is not the allocator, or was started without `prof:true` (the message says
    /// what to do).
    Unavailable,
    /// The profiler is paused (`prof_active:false`).
    Paused,
    /// jemalloc could not dump, or the dump could not be read.
    Dump(String),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Unavailable => f.write_str(UNAVAILABLE),
            Error::Paused => f.write_str("heap profiling is paused (prof_active:false)"),
            Error::Dump(why) => write!(f, "heap profile failed: {why}"),
        }
    }
}

impl std::error::Error for Error {}

/// The heap profile now: a gzipped pprof protobuf (sample type `inuse_space`, bytes), with
/// function names. Dumps one at a time, on a blocking thread of the current tokio runtime.
/// For a service that mounts `/debug/pprof/heap` on its own router; the metrics endpoint
/// serves it already.
pub async fn dump_pprof() -> Result<Vec<u8>, Error> {
    #[cfg(target_os = "linux")]
    {
        let ctl = jemalloc_pprof::PROF_CTL
            .as_ref()
            .ok_or(Error::Unavailable)?;
        let ctl = std::sync::Arc::clone(ctl);
        tokio::task::spawn_blocking(move || {
            let mut ctl = ctl.blocking_lock();
            if !ctl.activated() {
                return Err(Error::Paused);
            }
            ctl.dump_pprof().map_err(|e| Error::Dump(e.to_string()))
        })
        .await
        .map_err(|_| Error::Dump("the dump panicked".to_owned()))?
    }
    #[cfg(not(target_os = "linux"))]
    {
        Err(Error::Unavailable)
    }
}

/// `GET /debug/pprof/heap` on the metrics endpoint.
pub(crate) async fn profile() -> Response<Full<Bytes>> {
    let response = match dump_pprof().await {
        Ok(pprof) => Response::builder()
            .status(StatusCode::OK)
            .header(header::CONTENT_TYPE, "application/octet-stream")
            .header(
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"heap.pb.gz\"",
            )
            .body(Full::new(Bytes::from(pprof))),
        Err(e) => {
            let status = match e {
                Error::Unavailable | Error::Paused => StatusCode::SERVICE_UNAVAILABLE,
                Error::Dump(_) => StatusCode::INTERNAL_SERVER_ERROR,
            };
            Response::builder()
                .status(status)
                .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
                .body(Full::new(Bytes::from(format!("{e}\n"))))
        }
    };
    response.unwrap_or_else(|_| plain(StatusCode::INTERNAL_SERVER_ERROR, "response\n"))
}
