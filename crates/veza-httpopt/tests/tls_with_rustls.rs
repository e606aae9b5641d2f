//! With the `rustls` feature: HTTPS to a real TLS server on 127.0.0.1 (a certificate made for
//! the test), HTTP/2 chosen by ALPN; an untrusted certificate fails to connect, with the reason;
//! HTTPS through a `CONNECT` proxy.
#![cfg(feature = "rustls")]

mod common;

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use veza_core::{Classify, ErrorKind};
use veza_httpopt::{Client, Error};

struct TlsServer {
    port: u16,
    cert: rustls::pki_types::CertificateDer<'static>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn tls_server() -> TlsServer {
    let key = rcgen::KeyPair::generate().unwrap();
    let params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    let cert = params.self_signed(&key).unwrap();
    let cert_der = cert.der().clone();
    let key_der = rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into());
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert_der.clone()], key_der)
        .unwrap();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let svc = service_fn(|req: hyper::Request<hyper::body::Incoming>| async move {
                    let body = format!("secure {:?}", req.version());
                    Ok::<_, Infallible>(hyper::Response::new(Full::new(Bytes::from(body))))
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tls), svc)
                    .await;
            });
        }
    });
    TlsServer {
        port,
        cert: cert_der,
        task,
    }
}

fn trusting(cert: &rustls::pki_types::CertificateDer<'static>) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.clone()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    // A preset ALPN list is replaced, not a panic.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
}

#[tokio::test]
async fn https_with_http2_by_alpn() {
    let s = tls_server().await;
    let tls = trusting(&s.cert);
    let c = Client::builder()
        .config(|c| c.tls = Some(tls))
        .build()
        .unwrap();
    let r = c
        .get(format!("https://localhost:{}/", s.port))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.version(), http::Version::HTTP_2);
    assert_eq!(r.body(), "secure HTTP/2.0");
}

#[tokio::test]
async fn an_untrusted_certificate_fails_to_connect() {
    let s = tls_server().await;
    let c = Client::builder().max_retries(0).build().unwrap();
    let e = c
        .get(format!("https://localhost:{}/", s.port))
        .send()
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Connect(_)), "{e}");
    assert!(e.to_string().to_lowercase().contains("certificate"), "{e}");
    assert_eq!(e.kind(), ErrorKind::Unavailable);
}

#[tokio::test]
async fn https_goes_through_a_connect_tunnel() {
    use tokio::io::AsyncWriteExt;
    let s = tls_server().await;
    let lines = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let seen = lines.clone();
    let proxy = common::raw(move |_, mut inbound| {
        let seen = seen.clone();
        async move {
            let Some(head) = common::read_head(&mut inbound).await else {
                return;
            };
            let target = head.split_whitespace().nth(1).unwrap_or("").to_owned();
            seen.lock().unwrap().push(head);
            let port = target.rsplit(':').next().unwrap_or("0").to_owned();
            let Ok(mut outbound) =
                tokio::net::TcpStream::connect(format!("127.0.0.1:{port}")).await
            else {
                return;
            };
            let _ = inbound
                .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                .await;
            let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
        }
    })
    .await;
    let c = Client::builder()
        .proxy(veza_httpopt::Proxy::Explicit {
            http: None,
            https: Some(format!("http://bob:pw@{}", proxy.addr)),
            no: None,
        })
        .config(|c| c.tls = Some(trusting(&s.cert)))
        .build()
        .unwrap();
    let r = c
        .get(format!("https://localhost:{}/", s.port))
        .send()
        .await
        .unwrap();
    assert!(r.text().unwrap().starts_with("secure"), "{:?}", r.text());
    let head = lines.lock().unwrap()[0].clone();
    assert!(
        head.starts_with(&format!("CONNECT localhost:{} HTTP/1.1", s.port)),
        "{head}"
    );
    let auth = head
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("proxy-authorization:"))
        .unwrap_or("");
    assert!(auth.ends_with("Basic Ym9iOnB3"), "{head}"); // bob:pw, once, on the CONNECT
}
