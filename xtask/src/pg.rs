//! PostgreSQL for tests and benches: the server at `DATABASE_URL` when it answers, else a
//! throwaway cluster started from the local PostgreSQL binaries under `target/`.

use std::net::{TcpListener, TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::util;

/// The URL used when `DATABASE_URL` is not set.
pub(crate) const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// A PostgreSQL server to run against; a throwaway cluster is stopped when this is dropped.
#[derive(Debug)]
pub(crate) struct Postgres {
    /// The URL to hand to tests as `DATABASE_URL`.
    pub(crate) url: String,
    cluster: Option<Cluster>,
}

impl Postgres {
    /// Whether this is a throwaway cluster we started.
    pub(crate) fn is_throwaway(&self) -> bool {
        self.cluster.is_some()
    }
}

/// Finds or starts PostgreSQL. `Err` carries a message saying what to install.
pub(crate) fn provision() -> Result<Postgres> {
    let url = std::env::var("DATABASE_URL").unwrap_or_else(|_| DEFAULT_URL.to_owned());
    let target = Target::parse(&url);
    match &target {
        Some(t) if t.reachable() => {
            eprintln!("xtask: PostgreSQL at {}:{} answers", t.host, t.port);
            return Ok(Postgres { url, cluster: None });
        }
        Some(t) => eprintln!(
            "xtask: nothing answers at {}:{} ({url}); starting a throwaway cluster",
            t.host, t.port
        ),
        None => {
            // A URL we cannot take apart (unix socket, key=value form): trust the user.
            eprintln!("xtask: using DATABASE_URL as given: {url}");
            return Ok(Postgres { url, cluster: None });
        }
    }
    let Some(bin) = find_binaries() else {
        bail!(
            "PostgreSQL is not reachable at {url} and no initdb/pg_ctl was found \
             (PATH or /usr/lib/postgresql/*/bin).\n\
             Either start a server and point DATABASE_URL at it, or install the binaries:\n  \
             apt-get install postgresql   (Debian/Ubuntu)\n  \
             brew install postgresql      (macOS)"
        );
    };
    let started = Instant::now();
    let cluster = Cluster::start(&bin).context("starting a throwaway PostgreSQL cluster")?;
    eprintln!(
        "xtask: throwaway PostgreSQL {} on 127.0.0.1:{} ready in {}",
        bin.display(),
        cluster.port,
        util::elapsed(started)
    );
    Ok(Postgres {
        url: format!("postgres://postgres@127.0.0.1:{}/postgres", cluster.port),
        cluster: Some(cluster),
    })
}

/// Host and port taken from a `postgres://` URL.
#[derive(Debug, PartialEq)]
struct Target {
    host: String,
    port: u16,
}

impl Target {
    fn parse(url: &str) -> Option<Target> {
        let rest = url
            .strip_prefix("postgres://")
            .or_else(|| url.strip_prefix("postgresql://"))?;
        let authority = rest.split(['/', '?']).next()?;
        let hostport = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
        if hostport.is_empty() || hostport.contains(',') {
            return None; // socket directory or several hosts: let the client decide
        }
        let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
            let (host, after) = v6.split_once(']')?;
            (host, after.strip_prefix(':'))
        } else {
            match hostport.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (hostport, None),
            }
        };
        let port = match port {
            Some(p) => p.parse().ok()?,
            None => 5432,
        };
        Some(Target {
            host: host.to_owned(),
            port,
        })
    }

    fn reachable(&self) -> bool {
        let Ok(addrs) = (self.host.as_str(), self.port).to_socket_addrs() else {
            return false;
        };
        addrs
            .into_iter()
            .any(|a| TcpStream::connect_timeout(&a, Duration::from_secs(2)).is_ok())
    }
}

/// The directory holding `initdb` and `pg_ctl`.
fn find_binaries() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .find(|d| d.join("initdb").is_file() && d.join("pg_ctl").is_file())
    });
    if on_path.is_some() {
        return on_path;
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| {
            let e = e.ok()?;
            let version = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin)
}

/// A cluster we initialised and started; stopped and deleted on drop.
#[derive(Debug)]
struct Cluster {
    bin: PathBuf,
    dir: PathBuf,
    port: u16,
    as_postgres: bool,
}

impl Cluster {
    fn start(bin: &Path) -> Result<Cluster> {
        let as_postgres = util::is_root();
        let dir = cluster_dir(as_postgres)?;
        let data = dir.join("data");
        let port = free_port()?;
        let cluster = Cluster {
            bin: bin.to_path_buf(),
            dir: dir.clone(),
            port,
            as_postgres,
        };
        let data_s = data.to_string_lossy().into_owned();
        util::output(&mut cluster.pg(
            "initdb",
            &[
                "-D",
                &data_s,
                "-U",
                "postgres",
                "--auth=trust",
                "--no-sync",
                "-E",
                "UTF8",
                "--locale=C",
            ],
        ))?;
        let opts = format!(
            "-c port={port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={} \
             -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200",
            dir.display()
        );
        let log = dir.join("server.log").to_string_lossy().into_owned();
        let started = util::output(&mut cluster.pg(
            "pg_ctl",
            &[
                "-D", &data_s, "-l", &log, "-o", &opts, "-w", "-t", "60", "start",
            ],
        ));
        if let Err(err) = started {
            let log = std::fs::read_to_string(dir.join("server.log")).unwrap_or_default();
            bail!("{err}\nserver log:\n{log}");
        }
        Ok(cluster)
    }

    /// A command for one of the PostgreSQL binaries, as the `postgres` user when we are root
    /// (the server refuses to run as root).
    fn pg(&self, program: &str, args: &[&str]) -> Command {
        let exe = self.bin.join(program);
        let mut cmd = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(exe);
            c
        } else {
            Command::new(exe)
        };
        cmd.args(args);
        cmd
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let data = self.dir.join("data").to_string_lossy().into_owned();
        let stopped =
            util::output(&mut self.pg("pg_ctl", &["-D", &data, "-m", "fast", "-w", "stop"]));
        if let Err(err) = stopped {
            eprintln!("xtask: could not stop the throwaway cluster: {err:#}");
        } else {
            eprintln!("xtask: throwaway PostgreSQL stopped");
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A fresh directory `target/veza-pg/<pid>-<n>` (or under the temporary directory when the
/// `postgres` user cannot reach `target/`), so that concurrent runs never share a cluster.
/// Clusters left behind by runs that no longer exist are stopped and removed first.
fn cluster_dir(as_postgres: bool) -> Result<PathBuf> {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let target = util::root().join("target");
    std::fs::create_dir_all(&target)?;
    let reachable = !as_postgres
        || util::output(
            Command::new("runuser")
                .args(["-u", "postgres", "--", "test", "-x"])
                .arg(&target),
        )
        .is_ok();
    let parent = if reachable {
        target.join("veza-pg")
    } else {
        std::env::temp_dir().join("veza-pg")
    };
    remove_stale_clusters(&parent);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let dir = parent.join(format!("{}-{n}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    // The parent is shared by every user's runs; the cluster itself belongs to postgres.
    util::output(Command::new("chmod").arg("755").arg(&parent))?;
    if as_postgres {
        util::output(Command::new("chown").args(["-R", "postgres:"]).arg(&dir))
            .context("giving the cluster directory to the postgres user (is there one?)")?;
    }
    Ok(dir)
}

/// Stops and deletes clusters whose xtask process (the `<pid>` of `<pid>-<n>`) is gone.
fn remove_stale_clusters(parent: &Path) {
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        let data = entry.path().join("data");
        if data.join("postmaster.pid").exists() {
            if let Some(bin) = find_binaries() {
                let _ = Command::new(bin.join("pg_ctl"))
                    .arg("-D")
                    .arg(&data)
                    .args(["-m", "immediate", "stop"])
                    .output();
            }
        }
        let _ = std::fs::remove_dir_all(entry.path());
    }
}

fn free_port() -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(listener.local_addr()?.port())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_taken_apart() {
        let t = |s| Target::parse(s);
        assert_eq!(
            t("postgres://postgres@127.0.0.1:5432/postgres"),
            Some(Target {
                host: "127.0.0.1".into(),
                port: 5432
            })
        );
        assert_eq!(
            t("postgresql://u:p@db.local/app?sslmode=disable"),
            Some(Target {
                host: "db.local".into(),
                port: 5432
            })
        );
        assert_eq!(
            t("postgres://u@[::1]:6000/x"),
            Some(Target {
                host: "::1".into(),
                port: 6000
            })
        );
        assert_eq!(t("host=/var/run/postgresql dbname=x"), None);
        assert_eq!(t("postgres://u@127.0.0.1:notaport/x"), None);
    }

    /// Starts a real throwaway cluster, runs a query through it, and checks that dropping it
    /// stops the server and removes its files. Needs the PostgreSQL binaries, which every
    /// machine of this project has (and `.ci/run` installs).
    #[test]
    fn a_throwaway_cluster_serves_queries_and_goes_away() {
        let bin = find_binaries().expect("PostgreSQL binaries (apt-get install postgresql)");
        let cluster = Cluster::start(&bin).unwrap();
        let port = cluster.port;
        let dir = cluster.dir.clone();
        let target = Target {
            host: "127.0.0.1".into(),
            port,
        };
        assert!(target.reachable());
        let psql = if bin.join("psql").is_file() {
            bin.join("psql")
        } else {
            PathBuf::from("psql")
        };
        let psql = util::output(
            Command::new(psql)
                .args(["-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-tA"])
                .args(["-p", &port.to_string(), "-c", "select 6 * 7"]),
        )
        .unwrap();
        assert_eq!(psql, "42");
        drop(cluster);
        assert!(!target.reachable(), "the server still answers after drop");
        assert!(!dir.exists(), "the cluster directory was not removed");
    }

    #[test]
    fn a_closed_port_is_not_reachable() {
        let port = free_port().unwrap();
        assert!(
            !Target {
                host: "127.0.0.1".into(),
                port
            }
            .reachable()
        );
    }
}
