//! A per-host circuit breaker: after `failures` failures in a row to one host (connection
//! errors, time-outs, broken exchanges, 502/503/504), requests to it fail at once for
//! `open_for`; then one request goes through as a probe, and its outcome closes or reopens
//! the circuit. A stored response (fresh, or stale under `stale-if-error`) is still served
//! while the circuit is open: the breaker sits in front of the network, not the cache.

use std::collections::HashMap;
use std::time::Instant;

use http::StatusCode;
use parking_lot::Mutex;

use crate::Error;
use crate::config::BreakerConfig;

#[derive(Debug, Default)]
struct State {
    failures: u32,
    open_until: Option<Instant>,
    probing: bool,
}

/// The circuits of a client's hosts (by authority: host and port).
#[derive(Debug)]
pub(crate) struct Breakers {
    config: BreakerConfig,
    hosts: Mutex<HashMap<String, State>>,
}

impl Breakers {
    pub(crate) fn new(config: BreakerConfig) -> Breakers {
        Breakers {
            config,
            hosts: Mutex::new(HashMap::new()),
        }
    }

    /// Whether a request to `host` may go out now; the error to return when not.
    pub(crate) fn admit(&self, host: &str) -> Result<(), Error> {
        let mut hosts = self.hosts.lock();
        let Some(state) = hosts.get_mut(host) else {
            return Ok(());
        };
        let Some(until) = state.open_until else {
            return Ok(());
        };
        let now = Instant::now();
        if now < until || state.probing {
            return Err(Error::CircuitOpen {
                host: host.to_owned(),
                retry_in: until.saturating_duration_since(now),
            });
        }
        state.probing = true; // half-open: this request is the probe
        Ok(())
    }

    /// Records the outcome of a request to `host` that went out.
    pub(crate) fn record(&self, host: &str, failed: bool) {
        let mut hosts = self.hosts.lock();
        if !failed {
            // The common case keeps no entry at all.
            if let Some(state) = hosts.get_mut(host) {
                *state = State::default();
            }
            return;
        }
        let state = hosts.entry(host.to_owned()).or_default();
        state.failures = state.failures.saturating_add(1);
        if state.probing || state.failures >= self.config.failures {
            state.open_until = Some(veza_core::duration::after(
                Instant::now(),
                self.config.open_for,
            ));
            state.probing = false;
        }
    }
}

/// Whether an outcome counts against the host.
pub(crate) fn is_failure(outcome: Result<StatusCode, &Error>) -> bool {
    match outcome {
        Ok(status) => matches!(status.as_u16(), 502..=504),
        Err(e) => matches!(
            e,
            Error::Connect(_) | Error::Timeout { .. } | Error::Transport(_) | Error::Protocol(_)
        ),
    }
}
