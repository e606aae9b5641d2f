//! Connection problems come back within a second with their real cause, not as a timeout.

mod common;

use std::time::{Duration, Instant};

use veza_core::{Classify, ErrorKind};
use veza_dbpool::{Config, Error, Pool};

async fn first_checkout_error(url: &str) -> (Error, Duration) {
    let mut config = Config::from_url(url).unwrap();
    config.checkout_timeout = Duration::from_secs(30);
    let pool = Pool::new(config).unwrap();
    let started = Instant::now();
    let err = pool.get().await.unwrap_err();
    (err, started.elapsed())
}

fn with_user(user: &str) -> String {
    let mut c = Config::from_url(&common::url()).unwrap();
    let host = match c.pg.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
        _ => "127.0.0.1".to_owned(),
    };
    let port = c.pg.get_ports().first().copied().unwrap_or(5432);
    let db = c.pg.get_dbname().unwrap_or("postgres").to_owned();
    c.pg.user(user);
    format!("postgres://{user}@{host}:{port}/{db}")
}

#[test]
fn unknown_role_unknown_database_and_closed_port() {
    common::runtime().block_on(async {
        let (err, took) = first_checkout_error(&with_user("veza_no_such_role")).await;
        assert!(took < Duration::from_secs(1), "took {took:?}");
        assert!(err.to_string().contains("veza_no_such_role"), "{err}");
        assert_eq!(err.sqlstate(), Some("28000"));
        assert_eq!(err.kind(), ErrorKind::InvalidInput);

        let url = common::url();
        let base = url.rsplit_once('/').map_or(url.as_str(), |(b, _)| b);
        let (err, took) = first_checkout_error(&format!("{base}/veza_no_such_db")).await;
        assert!(took < Duration::from_secs(1), "took {took:?}");
        assert!(err.to_string().contains("veza_no_such_db"), "{err}");
        assert_eq!(err.sqlstate(), Some("3D000"));

        let (err, took) = first_checkout_error("postgres://postgres@127.0.0.1:1/postgres").await;
        assert!(took < Duration::from_secs(1), "took {took:?}");
        assert!(matches!(err, Error::Connect(_)), "{err:?}");
        assert!(err.to_string().to_lowercase().contains("refused"), "{err}");
        assert_eq!(err.kind(), ErrorKind::Unavailable);
    });
}

#[test]
fn a_busy_pool_times_out_with_its_state() {
    common::runtime().block_on(async {
        let mut config = common::config("timeout", 1);
        config.checkout_timeout = Duration::from_millis(150);
        let pool = Pool::new(config).unwrap();
        let held = pool.get().await.unwrap();
        let started = Instant::now();
        let err = pool.get().await.unwrap_err();
        assert!(started.elapsed() >= Duration::from_millis(140));
        assert!(
            matches!(
                err,
                Error::Timeout {
                    open: 1,
                    idle: 0,
                    ..
                }
            ),
            "{err:?}"
        );
        assert_eq!(err.kind(), ErrorKind::Timeout);
        drop(held);
        assert!(pool.get().await.is_ok());
        assert_eq!(pool.stats().timeouts, 1);
    });
}
