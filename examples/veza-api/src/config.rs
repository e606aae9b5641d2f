//! Configuration: defaults, then a TOML file, then the environment, then the command line.

use std::net::SocketAddr;
use std::path::Path;

use anyhow::{Context, Result, bail};
use serde::Deserialize;
use veza_metrics::ServerLimits;

/// How the service talks to its dependencies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Pooled database connections, caches, the pooled HTTP client with its cache.
    Veza,
    /// The same service on the crates a Rust developer would pick without us: deadpool-postgres,
    /// moka, reqwest, metrics-exporter-prometheus, `spawn_blocking` for password hashing and
    /// fresh `Vec`s for bodies (the load test's honest baseline).
    Peers,
    /// The baseline the load test compares against: a new database connection per request, no
    /// cache, a new upstream connection per request.
    Naive,
}

impl Mode {
    /// `veza`, `peers` or `naive`.
    pub fn parse(name: &str) -> Result<Mode> {
        match name {
            "veza" => Ok(Mode::Veza),
            "peers" => Ok(Mode::Peers),
            "naive" => Ok(Mode::Naive),
            other => bail!("unknown mode `{other}`: veza, peers or naive"),
        }
    }

    /// The name used in files, the environment and `--stack`.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Veza => "veza",
            Mode::Peers => "peers",
            Mode::Naive => "naive",
        }
    }
}

/// The service's settings. Every field has a default; see `veza-api.toml` for a sample file.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Where the API listens (also serves `/metrics`).
    pub listen: SocketAddr,
    /// PostgreSQL (`DATABASE_URL` overrides).
    pub database_url: String,
    /// The schema the service's tables live in (created when missing).
    pub schema: String,
    /// `veza` (default), `peers` or `naive`.
    pub mode: Mode,
    /// The avatar upstream; when unset, the service starts one of its own on loopback.
    pub upstream_url: Option<String>,
    /// Redis for a second cache tier shared by every instance (veza mode only): updates
    /// through one instance reach the others' caches. `VEZA_API_REDIS` overrides. Default none.
    pub redis_url: Option<String>,
    /// Database connections.
    pub pool_size: u32,
    /// Users kept in each cache (by id, by email).
    pub cache_entries: u64,
    /// How long a cached user lives, in seconds.
    pub cache_ttl_secs: u64,
    /// Threads hashing passwords.
    pub workers: usize,
    /// Jobs waiting for a worker before sign-ups are refused with 503.
    pub worker_queue: usize,
    /// Memory budget in bytes (resident set); imports are refused past it.
    pub memory_limit_bytes: u64,
    /// Longest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// Request-body bytes held at once by all requests together; a request that finds no
    /// room within a second is answered 503 with `Retry-After`. Default 64 MiB: eight bodies of
    /// the largest size, whatever the number of clients that send large bodies and stall.
    pub body_budget_bytes: usize,
    /// Header and body read timeouts and the connection cap (`[server]` in the file).
    pub server: ServerLimits,
    /// How long a shutdown waits for requests in flight and queued jobs, in seconds.
    pub shutdown_timeout_secs: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: "127.0.0.1:8080".parse().expect("address"),
            database_url: "postgres://postgres@127.0.0.1:5432/postgres".to_owned(),
            schema: "veza_api".to_owned(),
            mode: Mode::Veza,
            upstream_url: None,
            redis_url: None,
            pool_size: 16,
            cache_entries: 100_000,
            cache_ttl_secs: 300,
            workers: 2,
            worker_queue: 1000,
            memory_limit_bytes: 1 << 30,
            max_body_bytes: 8 << 20,
            body_budget_bytes: 64 << 20,
            server: ServerLimits::default(),
            shutdown_timeout_secs: 10,
        }
    }
}

impl Config {
    /// Defaults, then `VEZA_API_CONFIG` or `--config FILE`, then the environment
    /// (`DATABASE_URL`, `VEZA_API_LISTEN`, `VEZA_API_SCHEMA`, `VEZA_API_MODE`,
    /// `VEZA_API_UPSTREAM`, `VEZA_API_REDIS`), then `--listen ADDR`, `--stack veza|peers|naive`
    /// and `--naive` (the same as `--stack naive`).
    pub fn load(args: impl IntoIterator<Item = String>) -> Result<Config> {
        let args: Vec<String> = args.into_iter().collect();
        let mut file = std::env::var("VEZA_API_CONFIG").ok();
        let mut listen = None;
        let mut stack = None;
        let mut it = args.iter();
        while let Some(arg) = it.next() {
            match arg.as_str() {
                "--config" => file = Some(it.next().context("--config needs a file")?.clone()),
                "--listen" => listen = Some(it.next().context("--listen needs ADDR:PORT")?.clone()),
                "--naive" => stack = Some(Mode::Naive),
                "--stack" => {
                    let v = it.next().context("--stack needs veza, peers or naive")?;
                    stack = Some(Mode::parse(v).context("--stack")?);
                }
                other => {
                    bail!(
                        "unknown argument `{other}` (try --config FILE, --listen ADDR, --stack veza|peers|naive, --naive)"
                    )
                }
            }
        }
        let mut config = match file {
            Some(path) => Config::from_file(Path::new(&path))?,
            None => Config::default(),
        };
        if let Ok(url) = std::env::var("DATABASE_URL") {
            config.database_url = url;
        }
        if let Ok(v) = std::env::var("VEZA_API_LISTEN") {
            config.listen = v.parse().context("VEZA_API_LISTEN")?;
        }
        if let Ok(v) = std::env::var("VEZA_API_SCHEMA") {
            config.schema = v;
        }
        if let Ok(v) = std::env::var("VEZA_API_MODE") {
            config.mode = Mode::parse(&v).context("VEZA_API_MODE")?;
        }
        if let Ok(v) = std::env::var("VEZA_API_UPSTREAM") {
            config.upstream_url = Some(v);
        }
        if let Ok(v) = std::env::var("VEZA_API_REDIS") {
            config.redis_url = Some(v);
        }
        if let Some(l) = listen {
            config.listen = l.parse().context("--listen")?;
        }
        if let Some(mode) = stack {
            config.mode = mode;
        }
        config.check()?;
        Ok(config)
    }

    /// Reads a TOML file over the defaults.
    pub fn from_file(path: &Path) -> Result<Config> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))
    }

    /// Refuses values that cannot work.
    pub fn check(&self) -> Result<()> {
        if !self
            .schema
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_')
            || self.schema.is_empty()
        {
            bail!(
                "schema must be letters, digits and underscores, got `{}`",
                self.schema
            );
        }
        if self.pool_size == 0 || self.workers == 0 || self.worker_queue == 0 {
            bail!("pool_size, workers and worker_queue must be above zero");
        }
        if self.max_body_bytes > self.body_budget_bytes || self.max_body_bytes > u32::MAX as usize {
            bail!("max_body_bytes must fit in body_budget_bytes (and under 4 GiB)");
        }
        if self.redis_url.is_some() && self.mode != Mode::Veza {
            bail!(
                "redis_url (VEZA_API_REDIS) needs mode veza: the {} stack has no Redis tier",
                self.mode.as_str()
            );
        }
        self.server.validate()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_overrides_defaults_and_bad_values_are_refused() {
        let c: Config =
            toml::from_str("listen = \"127.0.0.1:9999\"\nmode = \"naive\"\npool_size = 4").unwrap();
        assert_eq!(c.listen.port(), 9999);
        assert_eq!(c.mode, Mode::Naive);
        assert_eq!(c.pool_size, 4);
        assert_eq!(c.workers, Config::default().workers);
        assert!(
            toml::from_str::<Config>("pool_sise = 4").is_err(),
            "unknown keys are errors"
        );
        let bad = Config {
            schema: "x; DROP TABLE users".into(),
            ..Config::default()
        };
        assert!(bad.check().is_err());
        let c: Config = toml::from_str("mode = \"peers\"").unwrap();
        assert_eq!(c.mode, Mode::Peers);
        let tier_without_veza = Config {
            mode: Mode::Peers,
            redis_url: Some("redis://127.0.0.1:6379".into()),
            ..Config::default()
        };
        assert!(tier_without_veza.check().is_err());
        let args = |a: &[&str]| a.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert_eq!(
            Config::load(args(&["--stack", "peers"])).unwrap().mode,
            Mode::Peers
        );
        assert!(Config::load(args(&["--stack", "fast"])).is_err());
    }
}
