//! Requests through a forward proxy on loopback: an `http` destination is asked of the proxy
//! in absolute form, with `Proxy-Authorization` from the proxy URL's credentials; hosts in
//! `no` go straight to the origin; a proxy URL that is not `http://host` is refused.

mod common;

use std::sync::{Arc, Mutex};

use common::{raw, read_head};
use tokio::io::AsyncWriteExt;
use veza_httpopt::{Client, Error, Proxy};

#[tokio::test]
async fn http_requests_go_through_the_proxy_in_absolute_form() {
    let heads = Arc::new(Mutex::new(Vec::<String>::new()));
    let seen = heads.clone();
    let proxy = raw(move |_, mut stream| {
        let seen = seen.clone();
        async move {
            while let Some(head) = read_head(&mut stream).await {
                seen.lock().unwrap().push(head);
                let _ = stream
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 9\r\n\r\nvia proxy")
                    .await;
            }
        }
    })
    .await;
    let origin = common::serve(|_req: http::Request<hyper::body::Incoming>| async move {
        common::response(200, &[], "direct")
    })
    .await;
    let c = Client::builder()
        .proxy(Proxy::Explicit {
            http: Some(format!("http://alice:s3cret@{}", proxy.addr)),
            https: None,
            no: Some("localhost".to_owned()),
        })
        .build()
        .unwrap();
    // The destination need not exist: the proxy answers.
    let r = c
        .get("http://upstream.invalid:8080/a?b=1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.body(), "via proxy");
    let head = heads.lock().unwrap()[0].clone();
    let first = head.lines().next().unwrap();
    assert_eq!(first, "GET http://upstream.invalid:8080/a?b=1 HTTP/1.1");
    let auth = head
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("proxy-authorization:"))
        .expect("credentials for the proxy");
    assert!(auth.ends_with("Basic YWxpY2U6czNjcmV0"), "{auth}"); // alice:s3cret
    // `no` lists what goes direct.
    let direct = origin.url("/x").replace("127.0.0.1", "localhost");
    let r = c.get(direct).send().await.unwrap();
    assert_eq!(r.body(), "direct");
    assert_eq!(
        heads.lock().unwrap().len(),
        1,
        "the proxy saw only the first request"
    );
}

#[test]
fn a_proxy_url_that_is_not_http_host_is_refused() {
    for bad in ["socks5://127.0.0.1:1080", "not a url", "http://"] {
        let err = Client::builder()
            .proxy(Proxy::all(bad))
            .build()
            .unwrap_err();
        assert!(matches!(err, Error::InvalidConfig(_)), "{bad}: {err}");
    }
    assert!(Client::builder().proxy(Proxy::FromEnv).build().is_ok());
}
