//! [`UpstreamHealth`]: a readiness check of an upstream through the client.

use std::time::{Duration, Instant};

use http::Uri;
use veza_core::{BoxFuture, Health, HealthCheck};

use crate::Client;

/// `GET uri` straight upstream (no cache): healthy on 2xx/3xx, degraded when slower than half
/// the timeout, unhealthy on any other status, an error or the timeout. Made by
/// [`Client::health_check`].
#[derive(Debug, Clone)]
pub struct UpstreamHealth {
    name: String,
    client: Client,
    uri: Uri,
    timeout: Duration,
}

impl UpstreamHealth {
    pub(crate) fn new(name: String, client: Client, uri: Uri, timeout: Duration) -> Self {
        UpstreamHealth {
            name,
            client,
            uri,
            timeout,
        }
    }
}

impl HealthCheck for UpstreamHealth {
    fn name(&self) -> &str {
        &self.name
    }

    fn check(&self) -> BoxFuture<'_, Health> {
        Box::pin(async move {
            let start = Instant::now();
            match self.client.probe(self.uri.clone(), self.timeout).await {
                Ok(r) if r.status().is_success() || r.status().is_redirection() => {
                    let took = start.elapsed();
                    if took > self.timeout / 2 {
                        Health::degraded(format!("{} answered in {took:?}", self.uri))
                    } else {
                        Health::Healthy
                    }
                }
                Ok(r) => Health::unhealthy(format!("{} answered {}", self.uri, r.status())),
                Err(e) => Health::unhealthy(format!("{}: {e}", self.uri)),
            }
        })
    }
}
