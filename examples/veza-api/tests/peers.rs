//! The peers stack (`--stack peers`): the same routes and SQL on deadpool-postgres, moka,
//! reqwest, metrics-exporter-prometheus and `spawn_blocking`, over HTTP on loopback against the
//! real PostgreSQL. A test binary of its own: a process holds one metrics recorder, and this
//! one is metrics-exporter-prometheus's.

mod common;

use std::sync::atomic::Ordering;

use http::Method;
use serde_json::Value;
use veza_api::Mode;

fn j(r: &veza_httpopt::Response) -> Value {
    serde_json::from_slice(r.body()).unwrap_or_else(|_| panic!("json: {:?}", r.text()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_peers_stack_serves_the_same_api() {
    let (app, schema) = common::start(Mode::Peers).await;
    assert_eq!(app.state.mode(), Mode::Peers);
    let c = common::client();
    let base = format!("http://{}", app.addr);

    // Sign-up: hashed on Tokio's blocking threads, inserted through deadpool.
    let r = c
        .request(Method::POST, format!("{base}/users"))
        .body(r#"{"email":"pia@example.com","name":"Pia","password":"correct horse"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{:?}", r.text());
    let id = j(&r)["id"].as_i64().unwrap();
    assert_eq!(app.hash_jobs_submitted(), 1);
    let dup = c
        .request(Method::POST, format!("{base}/users"))
        .body(r#"{"email":"pia@example.com","name":"Other","password":"correct horse"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(dup.status(), 409, "a unique violation through deadpool");

    // Cache-aside through moka: the rename is seen at once, by id and by email.
    for _ in 0..3 {
        let r = c.get(format!("{base}/users/{id}")).send().await.unwrap();
        assert_eq!(j(&r)["name"], "Pia");
    }
    let by_email = c
        .get(format!("{base}/users/by-email/pia%40example.com"))
        .send()
        .await
        .unwrap();
    assert_eq!(j(&by_email)["id"].as_i64(), Some(id));
    let r = c
        .request(Method::PUT, format!("{base}/users/{id}"))
        .body(r#"{"name":"Pia Renamed"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = c.get(format!("{base}/users/{id}")).send().await.unwrap();
    assert_eq!(j(&r)["name"], "Pia Renamed", "moka's entry was invalidated");
    let r = c
        .get(format!("{base}/users/by-email/pia%40example.com"))
        .send()
        .await
        .unwrap();
    assert_eq!(j(&r)["name"], "Pia Renamed");
    // An unknown user is a 404 every time (not cached as a value, not an error).
    for _ in 0..2 {
        let r = c.get(format!("{base}/users/999999")).send().await.unwrap();
        assert_eq!(r.status(), 404);
    }

    // Import by binary COPY on a deadpool connection, then keyset pages.
    let lines: String = (0..5)
        .map(|i| format!("{{\"email\":\"p{i}@example.com\",\"name\":\"P{i}\"}}\n"))
        .collect();
    let r = c
        .request(Method::POST, format!("{base}/users/import"))
        .body(lines)
        .send()
        .await
        .unwrap();
    assert_eq!(j(&r)["inserted"], 5, "{:?}", r.text());
    let page = j(&c.get(format!("{base}/users?limit=4")).send().await.unwrap());
    assert_eq!(page["items"].as_array().unwrap().len(), 4);
    let next = page["next"].as_str().unwrap();
    let rest = j(&c
        .get(format!("{base}/users?limit=4&cursor={next}"))
        .send()
        .await
        .unwrap());
    assert_eq!(rest["items"].as_array().unwrap().len(), 2, "6 users in all");

    // Messages.
    let r = c
        .request(Method::POST, format!("{base}/messages"))
        .body(format!("{{\"user_id\":{id},\"body\":\"hello\"}}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let list = j(&c
        .get(format!("{base}/messages?user_id={id}"))
        .send()
        .await
        .unwrap());
    assert_eq!(list["items"][0]["body"], "hello");

    // Avatars through reqwest: no HTTP cache, so the upstream serves every request.
    let served = || app.avatars.as_ref().unwrap().served.load(Ordering::Relaxed);
    let before = served();
    for _ in 0..2 {
        let a = c
            .get(format!("{base}/users/{id}/avatar"))
            .send()
            .await
            .unwrap();
        assert_eq!(a.status(), 200);
        assert_eq!(a.headers()["content-type"], "image/svg+xml");
        assert_eq!(a.headers()["x-cache"], "miss");
    }
    assert_eq!(served() - before, 2);

    let ready = c.get(format!("{base}/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200, "{:?}", ready.text());
    assert_eq!(j(&ready)["status"], "healthy");

    // The scrape comes from metrics-exporter-prometheus: the same HTTP series, no veza-cache
    // series (moka has none).
    let text = c
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .unwrap()
        .to_owned();
    assert!(
        text.contains(r#"http_requests_total{method="GET",route="/users/{id}",status="200"}"#),
        "{text}"
    );
    assert!(
        text.contains("http_request_duration_seconds_bucket"),
        "histograms, not summaries: {text}"
    );
    assert!(!text.contains("cache_hits_total"), "{text}");
    assert!(common::stop(app, &schema).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_keeps_one_recorder() {
    // The peers app installs metrics-exporter-prometheus; a veza app in the same process
    // would need veza-metrics' recorder, and is refused with a reason instead of exporting
    // nothing.
    let (peers, schema) = common::start(Mode::Peers).await;
    let config = veza_api::Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        database_url: common::database_url(),
        schema: format!("{schema}_veza"),
        mode: Mode::Veza,
        ..veza_api::Config::default()
    };
    let err = veza_api::start(config).await.unwrap_err();
    assert!(err.to_string().contains("one per process"), "{err}");
    assert!(common::stop(peers, &schema).await);
}
