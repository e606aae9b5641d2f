//! Redis for tests: the server at `REDIS_URL` (default `redis://127.0.0.1:6379`) when it
//! answers, else a throwaway `redis-server` on a free loopback port, keeping nothing on disk,
//! stopped when dropped.

use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// The URL used when `REDIS_URL` is not set.
pub(crate) const DEFAULT_URL: &str = "redis://127.0.0.1:6379";

/// A Redis server to run against; a throwaway one is stopped when this is dropped.
#[derive(Debug)]
pub(crate) struct Redis {
    /// The URL to hand to tests as `REDIS_URL`.
    pub(crate) url: String,
    child: Option<Child>,
}

impl Redis {
    /// Whether this is a server we started.
    pub(crate) fn is_throwaway(&self) -> bool {
        self.child.is_some()
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// `host:port` of a `redis://[user:pass@]host:port[/db]` URL.
fn host_port(url: &str) -> Option<(String, u16)> {
    let rest = url.strip_prefix("redis://")?;
    let authority = rest.split('/').next()?;
    let hostport = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let (host, port) = match hostport.rsplit_once(':') {
        Some((h, p)) => (h, p.parse().ok()?),
        None => (hostport, 6379),
    };
    (!host.is_empty()).then(|| (host.to_owned(), port))
}

fn answers(host: &str, port: u16) -> bool {
    use std::net::ToSocketAddrs;
    (host, port).to_socket_addrs().is_ok_and(|mut addrs| {
        addrs.any(|a| TcpStream::connect_timeout(&a, Duration::from_secs(1)).is_ok())
    })
}

/// Finds or starts Redis. `Err` says what to install.
pub(crate) fn provision() -> Result<Redis> {
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| DEFAULT_URL.to_owned());
    match host_port(&url) {
        Some((host, port)) if answers(&host, port) => {
            eprintln!("xtask: Redis at {host}:{port} answers");
            return Ok(Redis { url, child: None });
        }
        Some((host, port)) => {
            eprintln!(
                "xtask: nothing answers at {host}:{port} ({url}); starting a throwaway redis-server"
            );
        }
        None => {
            eprintln!("xtask: using REDIS_URL as given: {url}");
            return Ok(Redis { url, child: None });
        }
    }
    let binary = std::env::var("REDIS_SERVER").unwrap_or_else(|_| "redis-server".to_owned());
    let port = TcpListener::bind("127.0.0.1:0")
        .context("finding a free port")?
        .local_addr()?
        .port();
    let child = Command::new(&binary)
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    let child = match child {
        Ok(child) => child,
        Err(err) => bail!(
            "Redis is not reachable at {url} and `{binary}` cannot be started ({err}).\n\
             Either start a server and point REDIS_URL at it, or install it:\n  \
             apt-get install redis-server   (Debian/Ubuntu)"
        ),
    };
    let redis = Redis {
        url: format!("redis://127.0.0.1:{port}"),
        child: Some(child),
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while !answers("127.0.0.1", port) {
        if Instant::now() > deadline {
            bail!("the throwaway redis-server did not answer on 127.0.0.1:{port} within 10 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    eprintln!("xtask: throwaway redis-server on 127.0.0.1:{port}");
    Ok(redis)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_taken_apart() {
        assert_eq!(
            host_port("redis://127.0.0.1:6380/0"),
            Some(("127.0.0.1".into(), 6380))
        );
        assert_eq!(
            host_port("redis://:pw@cache:7000"),
            Some(("cache".into(), 7000))
        );
        assert_eq!(
            host_port("redis://localhost"),
            Some(("localhost".into(), 6379))
        );
        assert_eq!(host_port("rediss://x:1"), None);
        assert_eq!(host_port("redis://:1"), None);
    }
}
