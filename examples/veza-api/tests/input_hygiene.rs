//! What clients send is checked before it reaches the database, and what the database says
//! never reaches clients.

mod common;

use http::Method;
use serde_json::Value;
use veza_api::Mode;

fn j(r: &veza_httpopt::Response) -> Value {
    serde_json::from_slice(r.body()).unwrap_or_else(|_| panic!("json: {:?}", r.text()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emails_are_one_account_whatever_their_case_and_must_be_addresses() {
    let (app, schema) = common::start(Mode::Veza).await;
    let c = common::client();
    let base = format!("http://{}", app.addr);
    let sign_up = |email: &str| {
        c.request(Method::POST, format!("{base}/users"))
            .header("content-type", "application/json")
            .body(format!(
                r#"{{"email":"{email}","name":"Case","password":"correct horse"}}"#
            ))
            .send()
    };
    let r = sign_up("  Case@X.com ").await.unwrap();
    assert_eq!(r.status(), 201, "{:?}", r.text());
    assert_eq!(j(&r)["email"], "case@x.com");
    let id = j(&r)["id"].as_i64().unwrap();
    assert_eq!(sign_up("case@x.com").await.unwrap().status(), 409);
    assert_eq!(sign_up("CASE@X.COM").await.unwrap().status(), 409);
    for bad in ["@@@", "a@b", "a..b@example.com", "x@-bad.com"] {
        let r = sign_up(bad).await.unwrap();
        assert_eq!(r.status(), 400, "{bad}: {:?}", r.text());
    }
    // Found by any spelling.
    let r = c
        .get(format!("{base}/users/by-email/CASE%40x.COM"))
        .send()
        .await
        .unwrap();
    assert_eq!(j(&r)["id"].as_i64(), Some(id));
    // Imports follow the same rule.
    let r = c
        .request(Method::POST, format!("{base}/users/import"))
        .header("content-type", "application/x-ndjson")
        .body("{\"email\":\"Imported@Example.com\",\"name\":\"I\"}\n")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{:?}", r.text());
    let r = c
        .get(format!("{base}/users/by-email/imported%40example.com"))
        .send()
        .await
        .unwrap();
    assert_eq!(j(&r)["email"], "imported@example.com");
    common::stop(app, &schema).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_endpoints_refuse_other_content_types_and_nul_bytes() {
    let (app, schema) = common::start(Mode::Veza).await;
    let c = common::client();
    let base = format!("http://{}", app.addr);
    let body = r#"{"email":"t@example.com","name":"T","password":"correct horse"}"#;
    for ct in [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data",
    ] {
        let r = c
            .request(Method::POST, format!("{base}/users"))
            .header("content-type", ct)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 415, "{ct}");
    }
    let r = c
        .request(Method::POST, format!("{base}/users"))
        .header("content-type", "application/json; charset=utf-8")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{:?}", r.text());
    let id = j(&r)["id"].as_i64().unwrap();
    let r = c
        .request(Method::POST, format!("{base}/messages"))
        .header("content-type", "application/json")
        .body(format!(r#"{{"user_id":{id},"body":"nul \u0000 byte"}}"#))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(
        r.text().unwrap().contains("control characters"),
        "{:?}",
        r.text()
    );
    let r = c
        .request(Method::PUT, format!("{base}/users/{id}"))
        .body(r#"{"name":"a\u0000b"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    common::stop(app, &schema).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_failure_is_answered_without_the_databases_words() {
    let (app, schema) = common::start(Mode::Veza).await;
    let c = common::client();
    let base = format!("http://{}", app.addr);
    // The table goes away under the running service: every query on it fails in the server.
    let (db, conn) = tokio_postgres::connect(&common::database_url(), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    db.batch_execute(&format!("DROP TABLE {schema}.messages"))
        .await
        .unwrap();
    let r = c
        .get(format!("{base}/messages?user_id=1"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 500);
    let text = r.text().unwrap();
    assert!(!text.contains("messages"), "{text}");
    assert!(!text.contains("relation"), "{text}");
    let body = j(&r);
    assert_eq!(body["error"], "internal error");
    let id = body["request_id"].as_str().unwrap();
    assert_eq!(id.len(), 16);
    assert_eq!(r.headers()["x-request-id"], id);
    common::stop(app, &schema).await;
}
