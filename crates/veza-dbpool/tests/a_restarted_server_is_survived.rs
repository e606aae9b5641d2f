//! Chaos against a PostgreSQL cluster this test owns (initialised in a temporary directory and
//! started on a free loopback port, never the machine's shared server): every backend
//! terminated, a restart, and a stop of two seconds, all under load. Calls fail fast while the server is away, and the pool recovers
//! by itself once it is back.

mod common;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use veza_core::{Classify, ErrorKind};
use veza_dbpool::{Config, Pool};

/// A cluster this test initialised and started; stopped and deleted on drop.
struct Cluster {
    bin: PathBuf,
    dir: PathBuf,
    port: u16,
    as_postgres: bool,
}

fn binaries() -> PathBuf {
    let dirs = std::fs::read_dir("/usr/lib/postgresql")
        .map(|d| {
            d.flatten()
                .map(|e| e.path().join("bin"))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .chain(dirs)
        .find(|d| d.join("initdb").is_file() && d.join("pg_ctl").is_file())
        .expect("PostgreSQL binaries (initdb, pg_ctl): apt-get install postgresql")
}

impl Cluster {
    fn start() -> Cluster {
        let as_postgres = common::running_as_root();
        let dir = std::env::temp_dir().join(format!("veza-chaos-pg-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        if as_postgres {
            let ok = Command::new("chown")
                .args(["-R", "postgres:"])
                .arg(&dir)
                .status()
                .unwrap();
            assert!(ok.success());
        }
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let cluster = Cluster {
            bin: binaries(),
            dir,
            port,
            as_postgres,
        };
        cluster.run(
            "initdb",
            &[
                "-U",
                "postgres",
                "--auth=trust",
                "--no-sync",
                "-E",
                "UTF8",
                "--locale=C",
            ],
        );
        cluster.ctl("start");
        cluster
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    fn run(&self, program: &str, args: &[&str]) {
        let exe = self.bin.join(program);
        let mut cmd = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(exe);
            c
        } else {
            Command::new(exe)
        };
        let out = cmd.arg("-D").arg(self.data()).args(args).output().unwrap();
        assert!(
            out.status.success(),
            "{program} {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// `pg_ctl start|stop|restart`, waiting for it.
    fn ctl(&self, action: &str) {
        let opts = format!(
            "-c port={} -c listen_addresses=127.0.0.1 -c unix_socket_directories={} -c fsync=off",
            self.port,
            self.dir.display()
        );
        let log = self.dir.join("server.log");
        let log = log.to_string_lossy();
        match action {
            "stop" => self.run("pg_ctl", &["-m", "fast", "-w", "stop"]),
            _ => self.run(
                "pg_ctl",
                &["-l", &log, "-o", &opts, "-m", "fast", "-w", action],
            ),
        }
    }

    fn pool(&self, max_size: u32) -> Pool {
        let mut c = Config::from_url(&format!(
            "postgres://postgres@127.0.0.1:{}/postgres",
            self.port
        ))
        .unwrap();
        c.max_size = max_size;
        c.checkout_timeout = Duration::from_secs(5);
        Pool::new(c).unwrap()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if Path::new(&self.data().join("postmaster.pid")).exists() {
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.ctl("stop")));
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// 16 tasks × (checkout, `SELECT 1`) until `stop`; each failure's duration and class counted.
struct Load {
    ok: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
    slowest_failure_ms: Arc<AtomicU64>,
    wrong_class: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    fn start(pool: &Arc<Pool>) -> Load {
        let ok = Arc::new(AtomicU64::new(0));
        let failed = Arc::new(AtomicU64::new(0));
        let slowest = Arc::new(AtomicU64::new(0));
        let wrong = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let tasks = (0..16)
            .map(|_| {
                let (pool, ok, failed, slowest, wrong, stop) = (
                    Arc::clone(pool),
                    Arc::clone(&ok),
                    Arc::clone(&failed),
                    Arc::clone(&slowest),
                    Arc::clone(&wrong),
                    Arc::clone(&stop),
                );
                tokio::spawn(async move {
                    while !stop.load(Ordering::Relaxed) {
                        let started = Instant::now();
                        let result = match pool.get().await {
                            Ok(c) => c
                                .simple_query("SELECT 1")
                                .await
                                .map(drop)
                                .map_err(veza_dbpool::Error::from),
                            Err(e) => Err(e),
                        };
                        match result {
                            Ok(()) => {
                                ok.fetch_add(1, Ordering::Relaxed);
                            }
                            Err(e) => {
                                failed.fetch_add(1, Ordering::Relaxed);
                                let ms = started.elapsed().as_millis() as u64;
                                slowest.fetch_max(ms, Ordering::Relaxed);
                                if !matches!(
                                    e.kind(),
                                    ErrorKind::Unavailable | ErrorKind::Overloaded
                                ) {
                                    wrong.fetch_add(1, Ordering::Relaxed);
                                }
                                // A failing caller backs off a little, as a service would.
                                tokio::time::sleep(Duration::from_millis(5)).await;
                            }
                        }
                    }
                })
            })
            .collect();
        Load {
            ok,
            failed,
            slowest_failure_ms: slowest,
            wrong_class: wrong,
            stop,
            tasks,
        }
    }

    async fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.tasks {
            t.await.unwrap();
        }
    }
}

/// Waits until a checkout and a query succeed; how long it took.
async fn until_served(pool: &Pool, limit: Duration) -> Duration {
    let started = Instant::now();
    loop {
        if let Ok(c) = pool.get().await {
            if c.simple_query("SELECT 1").await.is_ok() {
                return started.elapsed();
            }
        }
        assert!(started.elapsed() < limit, "not served within {limit:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[test]
fn a_restart_and_a_stop_under_load_fail_fast_and_heal() {
    let cluster = Cluster::start();
    common::runtime().block_on(async {
        let pool = Arc::new(cluster.pool(8));
        let load = Load::start(&pool);
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(
            load.ok.load(Ordering::Relaxed) > 0,
            "served before the chaos"
        );

        // Every client backend terminated at once, twice.
        let admin = cluster.pool(1);
        for _ in 0..2 {
            let killed: i64 = admin
                .get()
                .await
                .unwrap()
                .query_one(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
                     WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()",
                    &[],
                )
                .await
                .unwrap()
                .get(0);
            assert!(killed >= 1, "the load's backends were there to kill");
            let healed = until_served(&pool, Duration::from_secs(5)).await;
            assert!(
                healed < Duration::from_secs(1),
                "served {healed:?} after the kill"
            );
        }
        drop(admin);

        // A fast restart.
        tokio::task::block_in_place(|| cluster.ctl("restart"));
        let healed = until_served(&pool, Duration::from_secs(5)).await;
        assert!(
            healed < Duration::from_secs(2),
            "served {healed:?} after the restart"
        );

        // Two seconds with no server at all.
        tokio::task::block_in_place(|| cluster.ctl("stop"));
        let before = load.failed.load(Ordering::Relaxed);
        tokio::time::sleep(Duration::from_secs(2)).await;
        let failed_while_down = load.failed.load(Ordering::Relaxed) - before;
        assert!(
            failed_while_down > 100,
            "calls fail, quickly, while the server is down"
        );
        tokio::task::block_in_place(|| cluster.ctl("start"));
        let healed = until_served(&pool, Duration::from_secs(5)).await;
        assert!(
            healed < Duration::from_secs(2),
            "served {healed:?} after the start"
        );
        let ok_after = load.ok.load(Ordering::Relaxed);
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(
            load.ok.load(Ordering::Relaxed) > ok_after + 100,
            "the load runs again"
        );

        let slowest = load.slowest_failure_ms.load(Ordering::Relaxed);
        let wrong = load.wrong_class.load(Ordering::Relaxed);
        load.stop().await;
        assert!(
            slowest < 1000,
            "no failure waited for the checkout timeout: slowest {slowest} ms"
        );
        assert_eq!(
            wrong, 0,
            "every failure is Unavailable or Overloaded (retryable)"
        );
    });
    drop(cluster);
}
