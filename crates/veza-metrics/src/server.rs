//! [`ServerLimits`]: what an HTTP/1 server facing untrusted clients must bound, with the
//! pieces to apply it. The exporter runs under them; a service reuses them for its own server
//! (the reference service in `examples/veza-api` does).
//!
//! hyper serves a connection as long as its client likes unless told otherwise: without a
//! timer there is no header read timeout at all, so a client sending one header byte a second
//! holds a connection and a file descriptor for ever (slowloris), and nothing caps how many
//! connections are served at once. These limits close both.

use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper_util::rt::TokioTimer;
use serde::Deserialize;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::Error;

/// Limits of an HTTP/1 server. `Default` gives values fit for a service on the open network;
/// deserialises from a config file with human durations (`"10s"`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerLimits {
    /// How long a client may take to send a whole request head, and how long a kept-alive
    /// connection may sit idle before its next request (hyper's header read timeout starts as
    /// soon as the server waits for a head). Default 10 s: a browser or a load balancer sends a
    /// head in milliseconds; slowloris needs minutes.
    #[serde(with = "veza_core::duration::human")]
    pub header_read_timeout: Duration,
    /// How long a request body may take to arrive, whole (applied by the handler that reads
    /// it, with [`ServerLimits::body_deadline`]). Default 30 s: 8 MiB at 2 Mbit/s.
    #[serde(with = "veza_core::duration::human")]
    pub body_read_timeout: Duration,
    /// Connections served at once; past it, new ones wait in the kernel's listen backlog until
    /// a slot frees. Default 1,024, under the usual 1,024-descriptor soft limit's worth of
    /// clients plus the process's own files when raised, and far above what 2 cores serve.
    pub max_connections: usize,
}

impl Default for ServerLimits {
    fn default() -> Self {
        ServerLimits {
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(30),
            max_connections: 1024,
        }
    }
}

impl ServerLimits {
    /// Limits for a metrics endpoint: the defaults, with 64 connections (a few scrapers need
    /// one each).
    pub fn exporter() -> ServerLimits {
        ServerLimits {
            max_connections: 64,
            ..ServerLimits::default()
        }
    }

    /// Checks the values: every duration and the connection cap above zero.
    pub fn validate(&self) -> Result<(), Error> {
        if self.header_read_timeout.is_zero() || self.body_read_timeout.is_zero() {
            return Err(Error::Config("server timeouts must be above zero".into()));
        }
        if self.max_connections == 0 {
            return Err(Error::Config("max_connections must be above zero".into()));
        }
        Ok(())
    }

    /// hyper's HTTP/1 server builder with a tokio timer and the header read timeout set.
    pub fn http1(&self) -> http1::Builder {
        let mut b = http1::Builder::new();
        b.timer(TokioTimer::new())
            .header_read_timeout(self.header_read_timeout);
        b
    }

    /// The slots that cap connections served at once.
    pub fn connection_slots(&self) -> ConnectionSlots {
        ConnectionSlots {
            sem: Arc::new(Semaphore::new(self.max_connections)),
            max: self.max_connections,
        }
    }

    /// The instant by which a body that starts arriving now must be complete.
    pub fn body_deadline(&self) -> tokio::time::Instant {
        // A timeout past what the clock can add (`Duration::MAX`): thirty years, not a panic.
        tokio::time::Instant::from_std(veza_core::duration::after(
            tokio::time::Instant::now().into_std(),
            self.body_read_timeout,
        ))
    }
}

/// Caps the connections served at once: take a [`ConnectionSlot`] before `accept`, move it
/// into the connection's task. Cheap to clone.
#[derive(Debug, Clone)]
pub struct ConnectionSlots {
    sem: Arc<Semaphore>,
    max: usize,
}

impl ConnectionSlots {
    /// Waits for a free slot.
    pub async fn acquire(&self) -> ConnectionSlot {
        let permit = Arc::clone(&self.sem)
            .acquire_owned()
            .await
            .expect("the semaphore is never closed");
        ConnectionSlot { _permit: permit }
    }

    /// Slots taken now.
    pub fn in_use(&self) -> usize {
        self.max - self.sem.available_permits()
    }
}

/// One connection's slot, given back when dropped, however the connection's task ends (a
/// panic included).
#[derive(Debug)]
pub struct ConnectionSlot {
    _permit: OwnedSemaphorePermit,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_zero_is_refused() {
        assert!(ServerLimits::default().validate().is_ok());
        assert_eq!(ServerLimits::exporter().max_connections, 64);
        let zero = ServerLimits {
            max_connections: 0,
            ..ServerLimits::default()
        };
        assert!(
            zero.validate()
                .unwrap_err()
                .to_string()
                .contains("max_connections")
        );
        let limits: ServerLimits =
            serde_json::from_str(r#"{"header_read_timeout": "2s", "max_connections": 8}"#).unwrap();
        assert_eq!(limits.header_read_timeout, Duration::from_secs(2));
        assert_eq!(limits.body_read_timeout, Duration::from_secs(30));
    }

    #[tokio::test]
    async fn slots_come_back_when_dropped() {
        let slots = ServerLimits {
            max_connections: 2,
            ..ServerLimits::default()
        }
        .connection_slots();
        let a = slots.acquire().await;
        let _b = slots.acquire().await;
        assert_eq!(slots.in_use(), 2);
        let waiting = tokio::time::timeout(Duration::from_millis(50), slots.acquire()).await;
        assert!(waiting.is_err(), "a third waits");
        drop(a);
        let _c = tokio::time::timeout(Duration::from_secs(1), slots.acquire())
            .await
            .unwrap();
        assert_eq!(slots.in_use(), 2);
    }
}
