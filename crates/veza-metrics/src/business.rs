//! [`Business`]: typed handles for the platform's business figures from the guide.

use metrics::{Counter, Gauge};
use veza_core::catalog::business as catalog;

/// The guide's business metrics as kept handles: set or increment them from your code, with no
/// registry lookup per call. The guide's `response_time_p95` and `error_rate` are Prometheus
/// recording rules (see `docs/ops/prometheus-rules.yml`), not something the service computes.
#[derive(Debug, Clone)]
pub struct Business {
    /// `active_users`: users active now.
    pub active_users: Gauge,
    /// `messages_total`: messages processed; Prometheus derives the per-second rate.
    pub messages: Counter,
    /// `streams_active`: streams live now.
    pub streams_active: Gauge,
    /// `concurrent_connections`: client connections open now.
    pub concurrent_connections: Gauge,
}

impl Business {
    /// Registers the handles with the installed recorder.
    pub fn new() -> Business {
        Business {
            active_users: metrics::gauge!(catalog::ACTIVE_USERS.name),
            messages: metrics::counter!(catalog::MESSAGES.name),
            streams_active: metrics::gauge!(catalog::STREAMS_ACTIVE.name),
            concurrent_connections: metrics::gauge!(catalog::CONCURRENT_CONNECTIONS.name),
        }
    }
}

impl Default for Business {
    fn default() -> Self {
        Business::new()
    }
}
