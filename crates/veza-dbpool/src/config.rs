//! [`Config`]: the guide's pool knobs plus the ones a production pool needs.

use std::str::FromStr;
use std::time::Duration;

use crate::error::Error;

/// How the pool connects and behaves. Build it from a URL with [`Config::from_url`] and adjust
/// the fields, or use [`Pool::builder`](crate::Pool::builder); with the `serde` feature, read it
/// from a file (see [`Config`]'s `Deserialize`).
///
/// [`Config::default`] has the pool's defaults and no server: the pool refuses to build until
/// `pg` (or the builder's `url`) says where to connect.
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
    /// Each connection's lifetime is `max_lifetime` less a random part of this, so that
    /// connections opened together (at start, after a restart) do not all expire together
    /// and reconnect in a storm (HikariCP and pgxpool do the same). Default 3 minutes (a
    /// tenth of the default lifetime); zero for none.
    pub max_lifetime_jitter: Duration,
    /// Connections idle longer than this are closed. Default 10 minutes.
    pub idle_timeout: Option<Duration>,
    /// How long a checkout waits for a connection before failing. Default 5 s.
    pub checkout_timeout: Duration,
    /// How long opening one connection may take. Default 5 s.
    pub connect_timeout: Duration,
    /// A server-side limit on every statement (`statement_timeout`); none by default.
    pub statement_timeout: Option<Duration>,
    /// A connection idle longer than this gets a round-trip test before it is handed out;
    /// younger ones only get the free `is_closed` check. Default 500 ms (HikariCP's). The
    /// test runs within the checkout's `checkout_timeout`: a server that stopped answering
    /// fails the checkout with a timeout and the connection is closed.
    pub test_idle_after: Duration,
    /// Whether `Conn::prepare_cached` keeps prepared statements per connection. Turn it off
    /// behind PgBouncer in transaction mode. Default on.
    pub statement_cache: bool,
    /// A timed query (`Conn::timed`, `Conn::query_cached`, the users repository) that takes
    /// this long or longer counts in `db_slow_queries_total` and, with the `tracing` feature,
    /// logs one `WARN` event (target `veza_dbpool::slow_query`). Default 1 s (sqlx's default);
    /// `None` turns it off.
    pub slow_query_threshold: Option<Duration>,
    /// TLS to the server (feature `rustls`): used as the URL's `sslmode` says (`prefer`, the
    /// default, falls back to plain TCP when the server has no TLS; `require` insists).
    /// Without it, connections are plain TCP.
    #[cfg(feature = "rustls")]
    #[cfg_attr(docsrs, doc(cfg(feature = "rustls")))]
    pub tls: Option<std::sync::Arc<rustls::ClientConfig>>,
    /// Runs on every new connection before the pool hands it out (session settings, `SET
    /// ROLE`, loading types). An error fails the connection like a connect error.
    pub after_connect: Option<crate::Hook>,
    /// Runs on a connection at every checkout, after the pool's own checks, within the
    /// checkout's `checkout_timeout`. An error closes that connection and the checkout takes
    /// another; running past the timeout closes it and fails the checkout with a timeout.
    pub before_checkout: Option<crate::Hook>,
}

impl Default for Config {
    fn default() -> Self {
        let mut pg = tokio_postgres::Config::new();
        pg.application_name(DEFAULT_APPLICATION_NAME);
        Config {
            pg,
            name: "main".to_owned(),
            max_size: 16,
            min_idle: None,
            max_lifetime: Some(Duration::from_secs(30 * 60)),
            max_lifetime_jitter: Duration::from_secs(3 * 60),
            idle_timeout: Some(Duration::from_secs(10 * 60)),
            checkout_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(5),
            statement_timeout: None,
            test_idle_after: Duration::from_millis(500),
            statement_cache: true,
            slow_query_threshold: Some(Duration::from_secs(1)),
            #[cfg(feature = "rustls")]
            tls: None,
            after_connect: None,
            before_checkout: None,
        }
    }
}

/// The `application_name` the server shows in `pg_stat_activity` unless the URL sets one.
const DEFAULT_APPLICATION_NAME: &str = "veza-dbpool";

/// Parses a URL or key=value string into driver settings, with the pool's application name
/// unless it sets its own.
pub(crate) fn parse_url(url: &str) -> Result<tokio_postgres::Config, Error> {
    let mut pg = tokio_postgres::Config::from_str(url)
        .map_err(|e| Error::InvalidConfig(format!("bad database URL: {e}")))?;
    if pg.get_application_name().is_none() {
        pg.application_name(DEFAULT_APPLICATION_NAME);
    }
    Ok(pg)
}

impl Config {
    /// Parses a `postgres://` URL (or a key=value string) with the defaults for the rest.
    pub fn from_url(url: &str) -> Result<Config, Error> {
        Ok(Config {
            pg: parse_url(url)?,
            ..Config::default()
        })
    }

    /// Checks the values; called by [`Pool::new`](crate::Pool::new).
    pub fn validate(&self) -> Result<(), Error> {
        if self.pg.get_hosts().is_empty() && self.pg.get_hostaddrs().is_empty() {
            return Err(Error::InvalidConfig(
                "no database host: give a URL such as postgres://user@127.0.0.1/db".into(),
            ));
        }
        if self.name.is_empty() {
            return Err(Error::InvalidConfig("name must not be empty".into()));
        }
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
        if self
            .max_lifetime
            .is_some_and(|l| self.max_lifetime_jitter >= l)
        {
            return Err(Error::InvalidConfig(
                "max_lifetime_jitter must be shorter than max_lifetime".into(),
            ));
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

/// Builds a [`Pool`](crate::Pool):
/// `Pool::builder().url("postgres://app@127.0.0.1/app").max_size(32).build()?`.
///
/// Setters never fail; a bad URL or value is reported by [`Builder::build`].
#[derive(Debug, Clone, Default)]
pub struct Builder {
    config: Config,
    url_error: Option<String>,
}

impl Builder {
    /// A builder with the default configuration and no server yet.
    pub fn new() -> Self {
        Builder::default()
    }

    /// Where to connect: a `postgres://` URL or a key=value string (see
    /// [`Config::from_url`]). Replaces earlier driver settings.
    pub fn url(mut self, url: &str) -> Self {
        match parse_url(url) {
            Ok(pg) => {
                self.config.pg = pg;
                self.url_error = None;
            }
            Err(e) => self.url_error = Some(e.to_string()),
        }
        self
    }

    /// Where to connect, as driver settings. See [`Config::pg`].
    pub fn pg(mut self, pg: tokio_postgres::Config) -> Self {
        self.config.pg = pg;
        self.url_error = None;
        self
    }

    /// The name the server shows in `pg_stat_activity`. Default `veza-dbpool`.
    pub fn application_name(mut self, name: &str) -> Self {
        self.config.pg.application_name(name);
        self
    }

    /// See [`Config::name`].
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.config.name = name.into();
        self
    }

    /// See [`Config::max_size`].
    pub fn max_size(mut self, max_size: u32) -> Self {
        self.config.max_size = max_size;
        self
    }

    /// See [`Config::min_idle`].
    pub fn min_idle(mut self, min_idle: Option<u32>) -> Self {
        self.config.min_idle = min_idle;
        self
    }

    /// See [`Config::max_lifetime`]; `None` keeps connections for ever.
    pub fn max_lifetime(mut self, max_lifetime: Option<Duration>) -> Self {
        self.config.max_lifetime = max_lifetime;
        self
    }

    /// See [`Config::max_lifetime_jitter`].
    pub fn max_lifetime_jitter(mut self, jitter: Duration) -> Self {
        self.config.max_lifetime_jitter = jitter;
        self
    }

    /// See [`Config::after_connect`].
    pub fn after_connect(mut self, hook: crate::Hook) -> Self {
        self.config.after_connect = Some(hook);
        self
    }

    /// See [`Config::before_checkout`].
    pub fn before_checkout(mut self, hook: crate::Hook) -> Self {
        self.config.before_checkout = Some(hook);
        self
    }

    /// See [`Config::idle_timeout`]; `None` keeps idle connections for ever.
    pub fn idle_timeout(mut self, idle_timeout: Option<Duration>) -> Self {
        self.config.idle_timeout = idle_timeout;
        self
    }

    /// See [`Config::checkout_timeout`].
    pub fn checkout_timeout(mut self, timeout: Duration) -> Self {
        self.config.checkout_timeout = timeout;
        self
    }

    /// See [`Config::connect_timeout`].
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.config.connect_timeout = timeout;
        self
    }

    /// See [`Config::statement_timeout`].
    pub fn statement_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.config.statement_timeout = timeout;
        self
    }

    /// See [`Config::test_idle_after`].
    pub fn test_idle_after(mut self, after: Duration) -> Self {
        self.config.test_idle_after = after;
        self
    }

    /// See [`Config::slow_query_threshold`].
    pub fn slow_query_threshold(mut self, threshold: Option<Duration>) -> Self {
        self.config.slow_query_threshold = threshold;
        self
    }

    /// See [`Config::statement_cache`].
    pub fn statement_cache(mut self, on: bool) -> Self {
        self.config.statement_cache = on;
        self
    }

    /// See [`Config::tls`].
    #[cfg(feature = "rustls")]
    #[cfg_attr(docsrs, doc(cfg(feature = "rustls")))]
    pub fn tls(mut self, tls: std::sync::Arc<rustls::ClientConfig>) -> Self {
        self.config.tls = Some(tls);
        self
    }

    /// The configuration built so far.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The configuration, checked: a bad URL or value is an [`Error::InvalidConfig`].
    pub fn into_config(self) -> Result<Config, Error> {
        if let Some(e) = self.url_error {
            return Err(Error::InvalidConfig(e));
        }
        self.config.validate()?;
        Ok(self.config)
    }

    /// Builds the pool (see [`Pool::new`](crate::Pool::new)).
    pub fn build(self) -> Result<crate::Pool, Error> {
        crate::Pool::new(self.into_config()?)
    }
}

/// Reads a `Config` from a file (JSON, TOML, ...) with the `serde` feature: every field is
/// optional and durations are human strings; `url` (a secret when it holds a password) says
/// where to connect, `application_name` overrides the URL's.
///
/// ```toml
/// url = "postgres://app@127.0.0.1:5432/app"
/// name = "main"
/// max_size = 32
/// checkout_timeout = "2s"
/// statement_timeout = "5s"
/// max_lifetime = "30m"
/// idle_timeout = "10m"
/// statement_cache = false   # behind PgBouncer in transaction mode
/// ```
///
/// There is no `Serialize`: the driver settings hold the password and cannot be written back
/// as a URL without it. TLS (feature `rustls`) is set in code.
#[cfg(feature = "serde")]
#[cfg_attr(docsrs, doc(cfg(feature = "serde")))]
impl<'de> serde::Deserialize<'de> for Config {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Config, D::Error> {
        use serde::de::Error as _;
        use veza_core::duration::human;

        #[derive(serde::Deserialize)]
        #[serde(default, deny_unknown_fields)]
        struct File {
            url: Option<String>,
            application_name: Option<String>,
            name: String,
            max_size: u32,
            min_idle: Option<u32>,
            #[serde(with = "human::option")]
            max_lifetime: Option<Duration>,
            #[serde(with = "human")]
            max_lifetime_jitter: Duration,
            #[serde(with = "human::option")]
            idle_timeout: Option<Duration>,
            #[serde(with = "human")]
            checkout_timeout: Duration,
            #[serde(with = "human")]
            connect_timeout: Duration,
            #[serde(with = "human::option")]
            statement_timeout: Option<Duration>,
            #[serde(with = "human")]
            test_idle_after: Duration,
            statement_cache: bool,
            #[serde(with = "human::option")]
            slow_query_threshold: Option<Duration>,
        }

        impl Default for File {
            fn default() -> File {
                let c = Config::default();
                File {
                    url: None,
                    application_name: None,
                    name: c.name,
                    max_size: c.max_size,
                    min_idle: c.min_idle,
                    max_lifetime: c.max_lifetime,
                    max_lifetime_jitter: c.max_lifetime_jitter,
                    idle_timeout: c.idle_timeout,
                    checkout_timeout: c.checkout_timeout,
                    connect_timeout: c.connect_timeout,
                    statement_timeout: c.statement_timeout,
                    test_idle_after: c.test_idle_after,
                    statement_cache: c.statement_cache,
                    slow_query_threshold: c.slow_query_threshold,
                }
            }
        }

        let f = File::deserialize(d)?;
        let mut pg = match &f.url {
            Some(url) => parse_url(url).map_err(D::Error::custom)?,
            None => Config::default().pg,
        };
        if let Some(name) = &f.application_name {
            pg.application_name(name);
        }
        Ok(Config {
            pg,
            name: f.name,
            max_size: f.max_size,
            min_idle: f.min_idle,
            max_lifetime: f.max_lifetime,
            max_lifetime_jitter: f.max_lifetime_jitter,
            idle_timeout: f.idle_timeout,
            checkout_timeout: f.checkout_timeout,
            connect_timeout: f.connect_timeout,
            statement_timeout: f.statement_timeout,
            test_idle_after: f.test_idle_after,
            statement_cache: f.statement_cache,
            slow_query_threshold: f.slow_query_threshold,
            #[cfg(feature = "rustls")]
            tls: None,
            after_connect: None,
            before_checkout: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_has_the_knobs_but_no_server() {
        let c = Config::default();
        assert_eq!(c.max_size, 16);
        assert_eq!(c.checkout_timeout, Duration::from_secs(5));
        assert_eq!(c.test_idle_after, Duration::from_millis(500));
        let err = c.validate().unwrap_err().to_string();
        assert!(err.contains("no database host"), "{err}");
        let mut c = Config::default();
        c.pg.host("127.0.0.1");
        c.validate().unwrap();
        let err = Config {
            name: String::new(),
            ..Config::from_url("postgres://a@h/b").unwrap()
        }
        .validate()
        .unwrap_err();
        assert!(err.to_string().contains("name"), "{err}");
    }

    #[test]
    fn the_builder_sets_every_knob_and_reports_a_bad_url_at_build() {
        let c = Builder::new()
            .url("postgres://app@127.0.0.1:5433/appdb")
            .application_name("billing")
            .name("billing")
            .max_size(4)
            .min_idle(Some(2))
            .max_lifetime(None)
            .idle_timeout(Some(Duration::from_secs(60)))
            .checkout_timeout(Duration::from_millis(300))
            .connect_timeout(Duration::from_secs(1))
            .statement_timeout(Some(Duration::from_secs(2)))
            .test_idle_after(Duration::from_secs(1))
            .statement_cache(false)
            .into_config()
            .unwrap();
        assert_eq!(c.pg.get_dbname(), Some("appdb"));
        assert_eq!(c.pg.get_application_name(), Some("billing"));
        assert_eq!(
            (c.name.as_str(), c.max_size, c.min_idle),
            ("billing", 4, Some(2))
        );
        assert_eq!(c.max_lifetime, None);
        assert_eq!(c.idle_timeout, Some(Duration::from_secs(60)));
        assert_eq!(c.checkout_timeout, Duration::from_millis(300));
        assert_eq!(c.connect_timeout, Duration::from_secs(1));
        assert_eq!(c.statement_timeout, Some(Duration::from_secs(2)));
        assert_eq!(c.test_idle_after, Duration::from_secs(1));
        assert!(!c.statement_cache);
        let err = Builder::new().url("postgres://[::1").build().unwrap_err();
        assert!(err.to_string().contains("bad database URL"), "{err}");
        let err = Builder::new().build().unwrap_err();
        assert!(err.to_string().contains("no database host"), "{err}");
        let err = Builder::new()
            .url("postgres://a@h/b")
            .max_size(0)
            .build()
            .unwrap_err();
        assert!(err.to_string().contains("max_size"), "{err}");
    }

    #[cfg(feature = "serde")]
    #[test]
    fn configs_read_from_json_with_human_durations() {
        let c: Config = serde_json::from_str(
            r#"{"url": "postgres://app@127.0.0.1:5433/appdb", "max_size": 32,
                "checkout_timeout": "2s", "statement_timeout": "250ms", "idle_timeout": null,
                "application_name": "billing"}"#,
        )
        .unwrap();
        assert_eq!(c.pg.get_user(), Some("app"));
        assert_eq!(c.pg.get_ports(), [5433]);
        assert_eq!(c.pg.get_application_name(), Some("billing"));
        assert_eq!(c.max_size, 32);
        assert_eq!(c.checkout_timeout, Duration::from_secs(2));
        assert_eq!(c.statement_timeout, Some(Duration::from_millis(250)));
        assert_eq!(c.idle_timeout, None);
        assert_eq!(
            c.max_lifetime,
            Some(Duration::from_secs(1800)),
            "absent fields keep their defaults"
        );
        c.validate().unwrap();
        for (bad, needle) in [
            (r#"{"url": "postgres://[::1"}"#, "bad database URL"),
            (r#"{"checkout_timeout": "5"}"#, "no unit"),
            (r#"{"max_szie": 4}"#, "unknown field"),
            (r#"{"max_size": -1}"#, "invalid value"),
        ] {
            let err = serde_json::from_str::<Config>(bad).unwrap_err().to_string();
            assert!(err.contains(needle), "{bad}: {err}");
        }
        let no_server: Config = serde_json::from_str("{}").unwrap();
        assert!(
            no_server.validate().is_err(),
            "a file without url fails at build"
        );
    }

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
