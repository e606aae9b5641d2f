//! [`Config`]: the guide's pool knobs plus the ones a production pool needs.

use std::str::FromStr;
use std::time::Duration;

use crate::error::Error;

/// How the pool connects and behaves. Build it from a URL with [`Config::from_url`], then
/// adjust the fields.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Config {
    /// The server to connect to (host, port, user, database, password...).
    pub pg: tokio_postgres::Config,
    /// The pool's name: the `pool` label of its metrics. Default `"main"`.
    pub name: String,
    /// The most connections open at once (the guide's `MaxOpenConns`). Default 16.
    pub max_size: u32,
    /// Connections kept open even when idle (the guide's `MaxIdleConns` plays this role).
    /// Default none.
    pub min_idle: Option<u32>,
    /// Connections older than this are closed and replaced. Default 30 minutes.
    pub max_lifetime: Option<Duration>,
    /// Connections idle longer than this are closed. Default 10 minutes.
    pub idle_timeout: Option<Duration>,
    /// How long a checkout waits for a connection before failing. Default 5 s.
    pub checkout_timeout: Duration,
    /// How long opening one connection may take. Default 5 s.
    pub connect_timeout: Duration,
    /// A server-side limit on every statement (`statement_timeout`); none by default.
    pub statement_timeout: Option<Duration>,
    /// A connection idle longer than this gets a round-trip test before it is handed out;
    /// younger ones only get the free `is_closed` check. Default 500 ms.
    pub test_idle_after: Duration,
    /// Whether `Conn::prepare_cached` keeps prepared statements per connection. Turn it off
    /// behind PgBouncer in transaction mode. Default on.
    pub statement_cache: bool,
    /// TLS to the server (feature `rustls`): used as the URL's `sslmode` says (`prefer`, the
    /// default, falls back to plain TCP when the server has no TLS; `require` insists).
    /// Without it, connections are plain TCP.
    #[cfg(feature = "rustls")]
    #[cfg_attr(docsrs, doc(cfg(feature = "rustls")))]
    pub tls: Option<std::sync::Arc<rustls::ClientConfig>>,
}

impl Config {
    /// Parses a `postgres://` URL (or a key=value string) with the defaults for the rest.
    pub fn from_url(url: &str) -> Result<Config, Error> {
        let mut pg = tokio_postgres::Config::from_str(url)
            .map_err(|e| Error::InvalidConfig(format!("bad database URL: {e}")))?;
        if pg.get_application_name().is_none() {
            pg.application_name("veza-dbpool");
        }
        Ok(Config {
            pg,
            name: "main".to_owned(),
            max_size: 16,
            min_idle: None,
            max_lifetime: Some(Duration::from_secs(30 * 60)),
            idle_timeout: Some(Duration::from_secs(10 * 60)),
            checkout_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(5),
            statement_timeout: None,
            test_idle_after: Duration::from_millis(500),
            statement_cache: true,
            #[cfg(feature = "rustls")]
            tls: None,
        })
    }

    pub(crate) fn validate(&self) -> Result<(), Error> {
        if self.max_size == 0 {
            return Err(Error::InvalidConfig("max_size must be at least 1".into()));
        }
        if self.min_idle.is_some_and(|m| m > self.max_size) {
            return Err(Error::InvalidConfig(
                "min_idle cannot exceed max_size".into(),
            ));
        }
        if self.checkout_timeout.is_zero() || self.connect_timeout.is_zero() {
            return Err(Error::InvalidConfig("timeouts must be above zero".into()));
        }
        Ok(())
    }

    /// The connection settings with the pool's additions (connect and statement timeouts).
    pub(crate) fn effective_pg(&self) -> tokio_postgres::Config {
        let mut pg = self.pg.clone();
        pg.connect_timeout(self.connect_timeout);
        if let Some(t) = self.statement_timeout {
            let existing = pg.get_options().unwrap_or("").to_owned();
            pg.options(format!("{existing} -c statement_timeout={}", t.as_millis()).trim());
        }
        pg
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_and_bad_ones_say_why() {
        let c = Config::from_url("postgres://app@127.0.0.1:5432/app").unwrap();
        assert_eq!(c.pg.get_user(), Some("app"));
        assert_eq!(c.pg.get_application_name(), Some("veza-dbpool"));
        let err = Config::from_url("postgres://[::1").unwrap_err();
        assert!(err.to_string().contains("bad database URL"), "{err}");
    }

    #[test]
    fn bad_values_are_refused() {
        let mut c = Config::from_url("postgres://a@localhost/b").unwrap();
        c.max_size = 0;
        assert!(c.validate().is_err());
        c.max_size = 2;
        c.min_idle = Some(3);
        assert!(c.validate().is_err());
    }

    #[test]
    fn the_statement_timeout_goes_into_the_startup_options() {
        let mut c = Config::from_url("postgres://a@localhost/b").unwrap();
        c.statement_timeout = Some(Duration::from_millis(250));
        assert_eq!(
            c.effective_pg().get_options(),
            Some("-c statement_timeout=250")
        );
    }
}
