//! What reqwest users reach for first, against a real origin on loopback: verb shortcuts,
//! `query`, `bearer_auth` / `basic_auth`, `json` both ways, `form`, `error_for_status`.
#![cfg(feature = "json")]

mod common;

use std::sync::{Arc, Mutex};

use http_body_util::BodyExt;
use veza_core::{Classify, ErrorKind};
use veza_httpopt::{Client, Error};

/// An origin that answers every request with a JSON echo of what it got.
async fn echo() -> (common::Server, Arc<Mutex<Vec<serde_json::Value>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let server = common::serve(move |req: http::Request<hyper::body::Incoming>| {
        let log = log.clone();
        async move {
            let (parts, body) = req.into_parts();
            let body = body
                .collect()
                .await
                .map(http_body_util::Collected::to_bytes)
                .unwrap_or_default();
            let header = |n: &str| {
                parts
                    .headers
                    .get(n)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_owned()
            };
            let echo = serde_json::json!({
                "method": parts.method.as_str(),
                "path": parts.uri.path(),
                "query": parts.uri.query().unwrap_or(""),
                "authorization": header("authorization"),
                "content_type": header("content-type"),
                "body": String::from_utf8_lossy(&body),
            });
            log.lock().unwrap().push(echo.clone());
            let status = if parts.uri.path() == "/missing" {
                404
            } else {
                200
            };
            common::response(
                status,
                &[("content-type", "application/json".to_owned())],
                echo.to_string(),
            )
        }
    })
    .await;
    (server, seen)
}

#[derive(serde::Deserialize, Debug)]
struct Echo {
    method: String,
    path: String,
    query: String,
    authorization: String,
    content_type: String,
    body: String,
}

#[tokio::test]
async fn a_reqwest_json_client_ports_as_is() {
    let (s, _) = echo().await;
    let c = Client::builder().build().unwrap();

    let got: Echo = c
        .get(s.url("/users?sort=name"))
        .query(&[("q", "ada lovelace"), ("tag", "a&b=c")])
        .bearer_auth("t0k3n")
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(got.method, "GET");
    assert_eq!(got.path, "/users");
    assert_eq!(got.query, "sort=name&q=ada+lovelace&tag=a%26b%3Dc");
    assert_eq!(got.authorization, "Bearer t0k3n");

    #[derive(serde::Serialize)]
    struct NewUser<'a> {
        name: &'a str,
    }
    let got: Echo = c
        .post(s.url("/users"))
        .json(&NewUser { name: "Ada" })
        .send()
        .await
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(got.method, "POST");
    assert_eq!(got.content_type, "application/json");
    assert_eq!(got.body, r#"{"name":"Ada"}"#);

    let got: Echo = c
        .put(s.url("/form"))
        .form(&[("a", "1"), ("b", "x y")])
        .basic_auth("alice", Some("s3cret"))
        .send()
        .await
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(got.method, "PUT");
    assert_eq!(got.content_type, "application/x-www-form-urlencoded");
    assert_eq!(got.body, "a=1&b=x+y");
    assert_eq!(got.authorization, "Basic YWxpY2U6czNjcmV0"); // alice:s3cret

    for (builder, method) in [
        (c.patch(s.url("/p")), "PATCH"),
        (c.delete(s.url("/d")), "DELETE"),
    ] {
        let got: Echo = builder.send().await.unwrap().json().unwrap();
        assert_eq!(got.method, method);
    }
    let head = c.head(s.url("/h")).send().await.unwrap();
    assert_eq!(head.status(), 200);
    assert!(head.body().is_empty());
}

#[tokio::test]
async fn error_statuses_and_bad_json_are_errors_that_classify() {
    let (s, _) = echo().await;
    let c = Client::builder().build().unwrap();
    let r = c.get(s.url("/missing")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    assert!(r.error_for_status_ref().is_err());
    let err = r.error_for_status().unwrap_err();
    assert!(matches!(err, Error::Status(s) if s == 404));
    assert_eq!(err.kind(), ErrorKind::NotFound);

    let r = c.get(s.url("/ok")).send().await.unwrap();
    let err = r.json::<Vec<u32>>().unwrap_err();
    assert!(matches!(err, Error::Json(_)), "{err}");
    assert_eq!(err.kind(), ErrorKind::Internal);

    // A value that cannot be serialised is reported by send, before anything is sent.
    let mut bad = std::collections::HashMap::new();
    bad.insert(vec![1u8], 1u8); // a map with non-string keys is not JSON
    let err = c.post(s.url("/x")).json(&bad).send().await.unwrap_err();
    assert!(matches!(err, Error::Json(_)), "{err}");
}
