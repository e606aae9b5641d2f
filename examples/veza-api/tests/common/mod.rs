//! Starts the service in-process on a schema of its own, against the real PostgreSQL.

#![allow(dead_code, unreachable_pub)]

use std::sync::atomic::{AtomicUsize, Ordering};

use veza_api::{Config, Mode, Running};

pub fn database_url() -> String {
    std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// A service on port 0 in a fresh schema; the schema is dropped by [`stop`].
pub async fn start(mode: Mode) -> (Running, String) {
    start_with(mode, |_| {}).await
}

/// Like [`start`], with the configuration adjusted by `adjust`.
pub async fn start_with(mode: Mode, adjust: impl FnOnce(&mut Config)) -> (Running, String) {
    static N: AtomicUsize = AtomicUsize::new(0);
    let schema = format!(
        "veza_api_t{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    );
    let mut config = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        database_url: database_url(),
        schema: schema.clone(),
        mode,
        shutdown_timeout_secs: 5,
        ..Config::default()
    };
    adjust(&mut config);
    let running = veza_api::start(config).await.expect("service starts");
    (running, schema)
}

/// Shuts the service down and drops its schema.
pub async fn stop(running: Running, schema: &str) -> bool {
    let clean = running.shutdown().await;
    drop_schema(schema).await;
    clean
}

/// Drops a test's schema and everything in it.
pub async fn drop_schema(schema: &str) {
    let (client, conn) = tokio_postgres::connect(&database_url(), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    client
        .batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
        .await
        .unwrap();
}

/// A plain client (no cache) for talking to the service.
pub fn client() -> veza_httpopt::Client {
    veza_httpopt::Client::builder()
        .cache(veza_httpopt::CacheMode::Off)
        .build()
        .unwrap()
}
