//! How the pool gets to see a connection's protocol bytes ([`crate::wire`]): tokio-postgres
//! opens the socket itself (hosts, ports, time-outs, keepalives, `target_session_attrs`) and
//! offers one hook on the stream, its TLS connector. [`Plain`] is a connector that encrypts
//! nothing: with direct negotiation (no `SSLRequest`, which is what a plain connection sends
//! anyway) tokio-postgres hands it the socket, and it hands back the socket wrapped in an
//! [`Inspected`] stream. The server sees an ordinary plaintext connection.
//!
//! It is used only where it changes nothing for the user: no TLS configured, `sslmode` not
//! `require`, every host a TCP host name (a Unix socket or a bare `hostaddr` gives the
//! connector no host name, which tokio-postgres insists on before any TLS). Elsewhere the
//! session is unobserved and connections come back as before.

use std::future::{Ready, ready};
use std::io;
use std::sync::Arc;

use tokio_postgres::Socket;
use tokio_postgres::config::{Host, SslMode, SslNegotiation};
use tokio_postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect, TlsStream};

use crate::wire::{Inspected, WireState};

/// The pass-through connector: each connection gets its own [`WireState`].
#[derive(Debug, Clone)]
pub(crate) struct Plain {
    pub(crate) state: Arc<WireState>,
}

impl MakeTlsConnect<Socket> for Plain {
    type Stream = Inspected<Socket>;
    type TlsConnect = Plain;
    type Error = io::Error;

    fn make_tls_connect(&mut self, _domain: &str) -> Result<Plain, io::Error> {
        // Each attempt (several hosts, several addresses) starts from a clean count; a failed
        // attempt's stream is gone by then.
        self.state.reset();
        Ok(self.clone())
    }
}

impl TlsConnect<Socket> for Plain {
    type Stream = Inspected<Socket>;
    type Error = io::Error;
    type Future = Ready<Result<Inspected<Socket>, io::Error>>;

    fn connect(self, stream: Socket) -> Self::Future {
        ready(Ok(Inspected::new(stream, self.state)))
    }
}

impl TlsStream for Inspected<Socket> {
    fn channel_binding(&self) -> ChannelBinding {
        // Plain TCP: nothing to bind to (the server offers SCRAM without channel binding).
        ChannelBinding::none()
    }
}

/// The settings to connect with when connections can be observed, or `None`.
pub(crate) fn observable(pg: &tokio_postgres::Config, tls: bool) -> Option<tokio_postgres::Config> {
    let hosts = pg.get_hosts();
    let all_tcp = !hosts.is_empty() && hosts.iter().all(|h| matches!(h, Host::Tcp(_)));
    let plaintext = matches!(pg.get_ssl_mode(), SslMode::Disable | SslMode::Prefer);
    if tls || !plaintext || !all_tcp {
        return None;
    }
    let mut observed = pg.clone();
    observed
        .ssl_mode(SslMode::Require)
        .ssl_negotiation(SslNegotiation::Direct);
    Some(observed)
}
