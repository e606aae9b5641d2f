//! What a connection's session is doing, read from the protocol bytes as they pass: whether
//! the server still works on something a client sent (a query whose future was dropped), and
//! whether it sits in a transaction. tokio-postgres says neither, and a connection must go
//! back to the pool only when the answer is "idle, no transaction".
//!
//! [`Inspected`] wraps the stream under tokio-postgres (the socket, or the TLS stream) and
//! frames messages in both directions without copying: a type byte and a length, then the
//! body skipped. Counted:
//! - `expected`: ReadyForQuery messages the server owes: one per simple `Query` and per `Sync`
//!   (less the `Sync`s a server ignores in COPY-in mode);
//! - `work`: the value `expected` had once the client's last real work was sent (a `Query`, or
//!   the `Sync` after an `Execute` or a COPY's end), so a `Close`+`Sync` that tokio-postgres
//!   sends on its own when a `Statement` drops does not count as work;
//! - `ready`: ReadyForQuery received, and the transaction status it carried (`I`, `T`, `E`).
//!
//! The session is busy while `ready < work`, in a transaction when the last status is `T` or
//! `E`. One gap is known: a request that was queued in tokio-postgres but not yet written when
//! its future was dropped is invisible here until it is written (microseconds later).

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// `SSLRequest`'s code, sent in place of a protocol version.
const SSL_REQUEST: u32 = 80_877_103;
/// `GSSENCRequest`'s code.
const GSSENC_REQUEST: u32 = 80_877_104;

/// A session as the protocol shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Session {
    /// Nothing in flight, no transaction open: safe to hand to the next caller.
    Idle,
    /// The server still works on (or answers) something the last user sent.
    Busy,
    /// Inside a transaction (`T`) or a failed one (`E`).
    InTransaction,
    /// The bytes could not be read (a stream this module does not see into).
    Unobserved,
}

/// The counts, shared by the stream wrappers (in the connection's task) and the pool.
#[derive(Debug, Default)]
pub(crate) struct WireState {
    work: AtomicU64,
    ready: AtomicU64,
    status: AtomicU8,
    /// Set once the startup's ReadyForQuery was seen by a wrapper that reads plain protocol.
    observed: AtomicBool,
}

impl WireState {
    pub(crate) fn new() -> Arc<WireState> {
        Arc::new(WireState::default())
    }

    /// Back to "nothing seen yet", for a new connection attempt.
    pub(crate) fn reset(&self) {
        self.work.store(0, Ordering::Release);
        self.ready.store(0, Ordering::Release);
        self.status.store(0, Ordering::Release);
        self.observed.store(false, Ordering::Release);
    }

    /// The session now.
    pub(crate) fn session(&self) -> Session {
        if !self.observed.load(Ordering::Acquire) {
            return Session::Unobserved;
        }
        let ready = self.ready.load(Ordering::Acquire);
        if ready < self.work.load(Ordering::Acquire) {
            return Session::Busy;
        }
        match self.status.load(Ordering::Acquire) {
            b'T' | b'E' => Session::InTransaction,
            _ => Session::Idle,
        }
    }
}

/// Frames one direction of the protocol.
#[derive(Debug)]
struct Framer {
    /// Header bytes gathered so far (type byte and length, or only the length).
    head: [u8; 8],
    have: usize,
    /// Body bytes of the current message still to pass.
    left: usize,
    /// The current message's type.
    kind: u8,
    /// The next message has no type byte (startup, SSL and GSS requests).
    untyped: bool,
    /// The next byte is a bare answer to an SSL or GSS request (server side).
    bare: bool,
}

impl Framer {
    fn new(untyped: bool) -> Framer {
        Framer {
            head: [0; 8],
            have: 0,
            left: 0,
            kind: 0,
            untyped,
            bare: false,
        }
    }

    /// Walks `bytes`; calls `on(kind, first_body_byte)` at the start of each message body
    /// (`None` for an empty body) and `on_untyped(code)` for an untyped message.
    fn feed(
        &mut self,
        mut bytes: &[u8],
        mut on: impl FnMut(u8, Option<u8>),
        mut on_untyped: impl FnMut(u32),
        mut on_bare: impl FnMut(u8) -> bool,
    ) {
        while !bytes.is_empty() {
            if self.bare {
                self.bare = false;
                let keep_going = on_bare(bytes[0]);
                bytes = &bytes[1..];
                if !keep_going {
                    return;
                }
                continue;
            }
            if self.left > 0 {
                let n = self.left.min(bytes.len());
                self.left -= n;
                bytes = &bytes[n..];
                continue;
            }
            let need = if self.untyped { 8 } else { 5 };
            // An untyped message's code sits after its length: gather both.
            let n = (need - self.have).min(bytes.len());
            self.head[self.have..self.have + n].copy_from_slice(&bytes[..n]);
            self.have += n;
            bytes = &bytes[n..];
            if self.have < need {
                continue;
            }
            self.have = 0;
            if self.untyped {
                let len =
                    u32::from_be_bytes([self.head[0], self.head[1], self.head[2], self.head[3]]);
                let code =
                    u32::from_be_bytes([self.head[4], self.head[5], self.head[6], self.head[7]]);
                self.left = (len as usize).saturating_sub(8);
                on_untyped(code);
                // After an SSL or GSS request the next message is untyped again.
                self.untyped = code == SSL_REQUEST || code == GSSENC_REQUEST;
                continue;
            }
            self.kind = self.head[0];
            let len = u32::from_be_bytes([self.head[1], self.head[2], self.head[3], self.head[4]]);
            self.left = (len as usize).saturating_sub(4);
            // Only ReadyForQuery's one-byte body is read; the caller gets it if it is here.
            let first = (self.left > 0).then(|| bytes.first().copied()).flatten();
            if self.kind == b'Z' && self.left > 0 && first.is_none() {
                // Split right after the header: keep the header for the next read.
                self.head[0] = b'Z';
                self.have = 5;
                self.left = 0;
                return;
            }
            on(self.kind, first);
        }
    }
}

/// The client side's bookkeeping.
#[derive(Debug)]
struct Sent {
    framer: Framer,
    expected: u64,
    /// An `Execute` (or a COPY's end) waits for the `Sync` that completes it.
    pending_work: bool,
    /// `Sync`s sent since the last `Execute` or `Query` (ignored by a server in COPY-in mode).
    syncs_since_exec: u64,
}

/// A stream whose protocol bytes are read into a [`WireState`] as they pass.
#[derive(Debug)]
pub(crate) struct Inspected<S> {
    inner: S,
    state: Arc<WireState>,
    sent: Sent,
    received: Framer,
    /// Off once the bytes stop being plain protocol (TLS was accepted below this layer).
    active: bool,
}

impl<S> Inspected<S> {
    /// Wraps `inner`, which starts at the startup message.
    pub(crate) fn new(inner: S, state: Arc<WireState>) -> Inspected<S> {
        Inspected {
            inner,
            state,
            sent: Sent {
                framer: Framer::new(true),
                // The startup ends with one ReadyForQuery.
                expected: 1,
                pending_work: false,
                syncs_since_exec: 0,
            },
            received: Framer::new(false),
            active: true,
        }
    }

    fn on_sent(&mut self, bytes: &[u8]) {
        if !self.active {
            return;
        }
        let state = &self.state;
        let sent = &mut self.sent;
        let received = &mut self.received;
        let mut work = None;
        sent.framer.feed(
            bytes,
            |kind, _| match kind {
                b'Q' => {
                    sent.expected += 1;
                    sent.syncs_since_exec = 0;
                    work = Some(sent.expected);
                }
                b'E' => {
                    sent.pending_work = true;
                    sent.syncs_since_exec = 0;
                }
                b'S' => {
                    sent.expected += 1;
                    sent.syncs_since_exec += 1;
                    if sent.pending_work {
                        sent.pending_work = false;
                        work = Some(sent.expected);
                    }
                }
                // CopyDone or CopyFail: the server was in COPY-in mode and ignored the
                // `Sync`s sent since the `Execute`; the next `Sync` completes the COPY.
                b'c' | b'f' if sent.syncs_since_exec > 0 => {
                    sent.expected -= sent.syncs_since_exec;
                    sent.syncs_since_exec = 0;
                    sent.pending_work = true;
                }
                _ => {}
            },
            |code| {
                if code == SSL_REQUEST || code == GSSENC_REQUEST {
                    received.bare = true;
                }
            },
            |_| true,
        );
        if let Some(w) = work {
            state.work.store(w, Ordering::Release);
        }
    }

    fn on_received(&mut self, bytes: &[u8]) {
        if !self.active {
            return;
        }
        let state = &self.state;
        let mut tls_below = false;
        self.received.feed(
            bytes,
            |kind, first| {
                if kind == b'Z' {
                    if let Some(status) = first {
                        state.status.store(status, Ordering::Release);
                    }
                    state.ready.fetch_add(1, Ordering::AcqRel);
                    state.observed.store(true, Ordering::Release);
                }
            },
            |_| {},
            |answer| {
                // 'S': TLS follows on these bytes; a wrapper above it reads the protocol.
                tls_below = answer == b'S';
                !tls_below
            },
        );
        if tls_below {
            self.active = false;
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Inspected<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        ready!(Pin::new(&mut self.inner).poll_read(cx, buf))?;
        let this = &mut *self;
        this.on_received(&buf.filled()[before..]);
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Inspected<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let n = ready!(Pin::new(&mut self.inner).poll_write(cx, buf))?;
        self.on_sent(&buf[..n]);
        Poll::Ready(Ok(n))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A typed message: kind, then length and body.
    fn msg(kind: u8, body: &[u8]) -> Vec<u8> {
        let mut m = vec![kind];
        m.extend_from_slice(&(body.len() as u32 + 4).to_be_bytes());
        m.extend_from_slice(body);
        m
    }

    fn startup() -> Vec<u8> {
        let body = b"user\0postgres\0\0";
        let mut m = (body.len() as u32 + 8).to_be_bytes().to_vec();
        m.extend_from_slice(&196_608u32.to_be_bytes());
        m.extend_from_slice(body);
        m
    }

    fn wired() -> Inspected<()> {
        let mut w = Inspected::new((), WireState::new());
        w.on_sent(&startup());
        let mut auth = msg(b'R', &[0, 0, 0, 0]);
        auth.extend(msg(b'Z', b"I"));
        w.on_received(&auth);
        w
    }

    #[test]
    fn startup_then_idle() {
        let w = Inspected::new((), WireState::new());
        assert_eq!(w.state.session(), Session::Unobserved);
        let w = wired();
        assert_eq!(w.state.session(), Session::Idle);
    }

    #[test]
    fn a_query_in_flight_is_busy_until_its_ready_for_query() {
        let mut w = wired();
        w.on_sent(&msg(b'Q', b"SELECT pg_sleep(3)\0"));
        assert_eq!(w.state.session(), Session::Busy);
        // Bytes split anywhere, even inside the ReadyForQuery.
        let mut answer = msg(b'T', &[0, 0]);
        answer.extend(msg(b'C', b"SELECT 1\0"));
        answer.extend(msg(b'Z', b"I"));
        let (a, b) = answer.split_at(answer.len() - 1);
        w.on_received(a);
        assert_eq!(w.state.session(), Session::Busy);
        w.on_received(b);
        assert_eq!(w.state.session(), Session::Idle);
    }

    #[test]
    fn extended_queries_and_a_dropped_statement_close() {
        let mut w = wired();
        let mut q = msg(b'P', b"s1\0SELECT 1\0\0\0");
        q.extend(msg(b'B', b"\0s1\0\0\0\0\0\0\0"));
        q.extend(msg(b'E', b"\0\0\0\0\0"));
        q.extend(msg(b'S', b""));
        w.on_sent(&q);
        assert_eq!(w.state.session(), Session::Busy);
        w.on_received(&msg(b'Z', b"I"));
        // tokio-postgres closes a dropped statement on its own: not the user's work.
        let mut close = msg(b'C', b"Ss1\0");
        close.extend(msg(b'S', b""));
        w.on_sent(&close);
        assert_eq!(w.state.session(), Session::Idle);
        w.on_received(&msg(b'Z', b"I"));
        assert_eq!(w.state.session(), Session::Idle);
    }

    #[test]
    fn transactions_are_seen() {
        let mut w = wired();
        w.on_sent(&msg(b'Q', b"BEGIN\0"));
        w.on_received(&msg(b'Z', b"T"));
        assert_eq!(w.state.session(), Session::InTransaction);
        w.on_sent(&msg(b'Q', b"SELEC oops\0"));
        w.on_received(&msg(b'Z', b"E"));
        assert_eq!(w.state.session(), Session::InTransaction);
        w.on_sent(&msg(b'Q', b"ROLLBACK\0"));
        w.on_received(&msg(b'Z', b"I"));
        assert_eq!(w.state.session(), Session::Idle);
    }

    #[test]
    fn copy_in_ignores_the_sync_sent_before_the_data() {
        let mut w = wired();
        // tokio-postgres' copy_in: Bind, Execute, Sync, then data, CopyDone, Sync.
        let mut start = msg(b'B', b"\0s1\0\0\0\0\0\0\0");
        start.extend(msg(b'E', b"\0\0\0\0\0"));
        start.extend(msg(b'S', b""));
        w.on_sent(&start);
        w.on_received(&msg(b'G', &[1, 0, 0]));
        w.on_sent(&msg(b'd', b"rows"));
        assert_eq!(w.state.session(), Session::Busy);
        let mut end = msg(b'c', b"");
        end.extend(msg(b'S', b""));
        w.on_sent(&end);
        assert_eq!(w.state.session(), Session::Busy);
        let mut done = msg(b'C', b"COPY 1\0");
        done.extend(msg(b'Z', b"I"));
        w.on_received(&done);
        assert_eq!(
            w.state.session(),
            Session::Idle,
            "the one ReadyForQuery ends it"
        );
    }

    #[test]
    fn an_ssl_refusal_is_read_and_an_acceptance_stops_the_reading() {
        let mut ssl = 8u32.to_be_bytes().to_vec();
        ssl.extend_from_slice(&SSL_REQUEST.to_be_bytes());
        let mut w = Inspected::new((), WireState::new());
        w.on_sent(&ssl);
        w.on_received(b"N");
        w.on_sent(&startup());
        w.on_received(&msg(b'Z', b"I"));
        assert_eq!(w.state.session(), Session::Idle);

        let mut w = Inspected::new((), WireState::new());
        w.on_sent(&ssl);
        w.on_received(b"S\x16\x03\x03");
        assert!(!w.active);
        assert_eq!(w.state.session(), Session::Unobserved);
    }
}
