//! With the `rustls` feature, connections use TLS when asked, verified against the given roots;
//! an untrusted server certificate fails the checkout fast with the reason.
#![cfg(feature = "rustls")]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use veza_dbpool::{Config, Pool};

/// The local server's certificate (Debian's snakeoil, CN=localhost), as the only trusted root.
fn client_config(trust_local: bool) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    if trust_local {
        let pem = std::fs::read_to_string("/etc/ssl/certs/ssl-cert-snakeoil.pem")
            .expect("the local PostgreSQL's certificate (Debian's ssl-cert package)");
        use rustls_pki_types::pem::PemObject;
        for cert in rustls_pki_types::CertificateDer::pem_slice_iter(pem.as_bytes()) {
            roots.add(cert.unwrap()).unwrap();
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Arc::new(
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

fn tls_config(trust_local: bool) -> Config {
    let url = common::url();
    let port = Config::from_url(&url)
        .unwrap()
        .pg
        .get_ports()
        .first()
        .copied()
        .unwrap_or(5432);
    let mut config = Config::from_url(&format!(
        "postgres://postgres@localhost:{port}/postgres?sslmode=require"
    ))
    .unwrap();
    config.max_size = 1;
    config.tls = Some(client_config(trust_local));
    config
}

/// Whether the test server speaks TLS (the machines' server does; a throwaway cluster started
/// by `cargo xtask test` does not, and then these tests have nothing to check).
async fn server_has_tls() -> bool {
    let plain = Pool::new(common::config("tls-probe", 1)).unwrap();
    let conn = plain.get().await.unwrap();
    let ssl: String = conn.query_one("SHOW ssl", &[]).await.unwrap().get(0);
    ssl == "on"
}

#[test]
fn a_verified_tls_connection_is_used() {
    common::runtime().block_on(async {
        if !server_has_tls().await {
            return;
        }
        let pool = Pool::new(tls_config(true)).unwrap();
        let conn = pool.get().await.unwrap();
        let ssl: bool = conn
            .query_one(
                "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        assert!(ssl, "the connection is not encrypted");
    });
}

#[test]
fn an_untrusted_certificate_fails_fast() {
    common::runtime().block_on(async {
        if !server_has_tls().await {
            return;
        }
        let pool = Pool::new(tls_config(false)).unwrap();
        let started = Instant::now();
        let err = pool.get().await.unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(1));
        assert!(
            err.to_string().to_lowercase().contains("certificate"),
            "{err}"
        );
    });
}
