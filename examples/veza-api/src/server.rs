//! The HTTP server loop and everything it bounds against hostile or broken clients:
//! connections served at once (slots), slow request heads (hyper's header read timeout, from
//! `veza_metrics::ServerLimits`), slow or stalled bodies (a deadline per body), request-body
//! memory across all requests (a byte budget), and panics (a 500, and drop guards so no gauge
//! or slot leaks when a connection's task unwinds).

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use http::Request;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use veza_mempool::{BufferPool, PooledBufOwned};
use veza_metrics::{ConnectionSlot, ServerLimits};

use crate::error::ApiError;

/// How long a request waits for room in the body budget before it is refused with 503.
const BUDGET_WAIT: Duration = Duration::from_secs(1);

/// Bytes reserved at a time for a body of unknown length.
const RESERVE_STEP: usize = 64 << 10;

/// A process-wide budget of request-body bytes held at once. Every body is reserved before
/// it is buffered (its `Content-Length` up front, or step by step as a chunked body grows), so
/// clients that send large bodies and stall hold at most this much memory between them.
#[derive(Debug, Clone)]
pub struct BodyBudget {
    sem: Arc<Semaphore>,
    total: usize,
}

impl BodyBudget {
    /// A budget of `bytes`.
    pub fn new(bytes: usize) -> BodyBudget {
        let bytes = bytes.min(Semaphore::MAX_PERMITS);
        BodyBudget {
            sem: Arc::new(Semaphore::new(bytes)),
            total: bytes,
        }
    }

    /// Bytes reserved by bodies in flight now.
    pub fn in_use(&self) -> usize {
        self.total - self.sem.available_permits()
    }

    /// Reserves `n` bytes, waiting at most [`BUDGET_WAIT`]; `None` when the budget stays full.
    async fn reserve(&self, n: usize) -> Option<OwnedSemaphorePermit> {
        if n > self.total {
            return None;
        }
        let n = u32::try_from(n).ok()?;
        let sem = Arc::clone(&self.sem);
        tokio::time::timeout(BUDGET_WAIT, sem.acquire_many_owned(n))
            .await
            .ok()?
            .ok()
    }
}

/// A request body read whole: the buffer (pooled, or a fresh `Vec` on the peers stack), and
/// its share of the body budget, given back together when dropped.
#[derive(Debug)]
pub struct Body {
    buf: Buf,
    _reserved: Option<OwnedSemaphorePermit>,
}

#[derive(Debug)]
enum Buf {
    Pooled(PooledBufOwned),
    Fresh(Vec<u8>),
}

impl Buf {
    fn as_vec(&mut self) -> &mut Vec<u8> {
        match self {
            Buf::Pooled(b) => b,
            Buf::Fresh(v) => v,
        }
    }
}

impl std::ops::Deref for Body {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match &self.buf {
            Buf::Pooled(b) => b,
            Buf::Fresh(v) => v,
        }
    }
}

fn budget_exhausted() -> ApiError {
    ApiError::new(503, "too many request bodies in flight, retry").retry_after(1)
}

fn too_large(limit: usize) -> ApiError {
    ApiError::new(413, format!("body larger than {limit} bytes")).closing()
}

/// Reads a request body into a pooled buffer (the next request reuses its capacity; a fresh
/// `Vec` when `buffers` is `None`), at most
/// `limit` bytes (413 past it), whole within `limits.body_read_timeout` (408 past it), with
/// its bytes reserved in `budget` (503 with `Retry-After` when the budget stays full).
pub async fn read_body(
    req: Request<Incoming>,
    limit: usize,
    limits: &ServerLimits,
    budget: &BodyBudget,
    buffers: Option<&Arc<BufferPool>>,
) -> Result<Body, ApiError> {
    let deadline = limits.body_deadline();
    let declared = req
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    let declared = match declared {
        Some(n) if n > limit as u64 => return Err(too_large(limit)),
        Some(n) => Some(n as usize),
        None => None,
    };
    // A declared length is reserved whole before a byte is buffered.
    let mut reserved = match declared {
        Some(0) => None,
        Some(n) => Some(budget.reserve(n).await.ok_or_else(budget_exhausted)?),
        None => None,
    };
    let mut room = declared.unwrap_or(0);
    let size = declared.unwrap_or(0).min(limit);
    let mut buf = match buffers {
        Some(pool) => Buf::Pooled(pool.get_owned(size)),
        None => Buf::Fresh(Vec::with_capacity(size)),
    };
    let vec = buf.as_vec();
    vec.clear();
    let mut body = req.into_body();
    loop {
        let frame = match tokio::time::timeout_at(deadline, body.frame()).await {
            Err(_) => {
                return Err(ApiError::new(408, "request body took too long").closing());
            }
            Ok(None) => break,
            Ok(Some(frame)) => {
                frame.map_err(|e| ApiError::new(400, format!("body cut short: {e}")))?
            }
        };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        let len = vec.len() + data.len();
        if len > limit {
            return Err(too_large(limit));
        }
        if len > room {
            // A chunked body (or one longer than declared, which hyper refuses anyway):
            // reserve ahead in steps.
            let more = (len - room).max(RESERVE_STEP).min(limit - room);
            let permit = budget.reserve(more).await.ok_or_else(budget_exhausted)?;
            match &mut reserved {
                Some(r) => r.merge(permit),
                None => reserved = Some(permit),
            }
            room += more;
        }
        vec.extend_from_slice(&data);
    }
    Ok(Body {
        buf,
        _reserved: reserved,
    })
}

/// Held by a connection's task for its whole life: its slot and its count in the
/// `concurrent_connections` gauge, both given back on drop, however the task ends.
#[derive(Debug)]
pub struct ConnectionGuard {
    gauge: metrics::Gauge,
    _slot: ConnectionSlot,
}

impl ConnectionGuard {
    /// Counts the connection in `gauge`.
    pub fn new(gauge: metrics::Gauge, slot: ConnectionSlot) -> ConnectionGuard {
        gauge.increment(1.0);
        ConnectionGuard { gauge, _slot: slot }
    }
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.gauge.decrement(1.0);
    }
}

/// Runs `fut`; a panic inside it becomes `on_panic()`'s value instead of unwinding through
/// the connection (which would drop the connection without an answer).
pub async fn catch_panic<F, T>(fut: F, on_panic: impl FnOnce() -> T) -> T
where
    F: Future<Output = T>,
{
    let mut fut = std::pin::pin!(fut);
    let mut on_panic = Some(on_panic);
    std::future::poll_fn(move |cx| {
        match std::panic::catch_unwind(AssertUnwindSafe(|| fut.as_mut().poll(cx))) {
            Ok(p) => p,
            Err(_) => Poll::Ready(on_panic.take().expect("polled after completion")()),
        }
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panic_becomes_a_value_and_the_guard_gives_everything_back() {
        let answer = catch_panic(
            async {
                tokio::task::yield_now().await;
                panic!("handler bug");
            },
            || 500,
        )
        .await;
        assert_eq!(answer, 500);

        let slots = ServerLimits::default().connection_slots();
        let slot = slots.acquire().await;
        let task = tokio::spawn(async move {
            let _guard = ConnectionGuard::new(metrics::Gauge::noop(), slot);
            panic!("connection task unwinds");
        });
        assert!(task.await.unwrap_err().is_panic());
        assert_eq!(slots.in_use(), 0, "the slot came back through the unwind");
    }

    #[tokio::test]
    async fn the_budget_refuses_past_its_size_and_refills_on_drop() {
        let budget = BodyBudget::new(100);
        let a = budget.reserve(60).await.unwrap();
        assert_eq!(budget.in_use(), 60);
        assert!(
            budget.reserve(50).await.is_none(),
            "refused after a brief wait"
        );
        drop(a);
        assert!(budget.reserve(100).await.is_some());
        assert!(
            budget.reserve(101).await.is_none(),
            "larger than the whole budget"
        );
    }
}
