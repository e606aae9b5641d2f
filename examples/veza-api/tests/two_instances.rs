//! Two instances of the service on one database and one Redis (`redis_url`): a rename through
//! one is served by the other at once, although the other had the user cached.

mod common;

use std::time::{Duration, Instant};

use http::Method;
use serde_json::Value;
use veza_api::Mode;

fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

fn name(r: &veza_httpopt::Response) -> String {
    let v: Value = serde_json::from_slice(r.body()).expect("json");
    v["name"].as_str().expect("name").to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rename_through_one_instance_is_served_by_the_other() {
    let (a, schema) = common::start_with(Mode::Veza, |c| c.redis_url = Some(redis_url())).await;
    let shared = schema.clone();
    let (b, _) = common::start_with(Mode::Veza, move |c| {
        c.schema = shared;
        c.redis_url = Some(redis_url());
    })
    .await;
    let c = common::client();
    let (base_a, base_b) = (format!("http://{}", a.addr), format!("http://{}", b.addr));
    let r = c
        .request(Method::POST, format!("{base_a}/users"))
        .body(r#"{"email":"grace@example.com","name":"Grace","password":"correct horse"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{:?}", r.text());
    let v: Value = serde_json::from_slice(r.body()).unwrap();
    let id = v["id"].as_i64().unwrap();
    // Both instances cache the user; x-cache-tier says which tier answered.
    let tier = |r: &veza_httpopt::Response| {
        r.headers()
            .get("x-cache-tier")
            .map(|v| v.to_str().unwrap().to_owned())
    };
    let r = c.get(format!("{base_a}/users/{id}")).send().await.unwrap();
    assert_eq!(name(&r), "Grace");
    assert_eq!(tier(&r).as_deref(), Some("loaded"), "a read the database");
    let r = c.get(format!("{base_b}/users/{id}")).send().await.unwrap();
    assert_eq!(name(&r), "Grace");
    assert_eq!(
        tier(&r).as_deref(),
        Some("redis"),
        "b found a's load in Redis"
    );
    let r = c.get(format!("{base_b}/users/{id}")).send().await.unwrap();
    assert_eq!(
        tier(&r).as_deref(),
        Some("first"),
        "then held it in its first tier"
    );
    assert!(
        b.state_caches().0.entries >= 1,
        "b holds the user in its first tier"
    );

    let r = c
        .request(Method::PUT, format!("{base_a}/users/{id}"))
        .body(r#"{"name":"Grace Hopper"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let started = Instant::now();
    loop {
        let r = c.get(format!("{base_b}/users/{id}")).send().await.unwrap();
        if name(&r) == "Grace Hopper" {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_millis(50),
            "b still serves the old name after {:?}",
            started.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let r = c
        .get(format!("{base_b}/users/by-email/grace%40example.com"))
        .send()
        .await
        .unwrap();
    assert_eq!(name(&r), "Grace Hopper", "the by-email cache too");
    let r = c.get(format!("{base_b}/readyz")).send().await.unwrap();
    assert_eq!(r.status(), 200, "{:?}", r.text());
    assert!(b.shutdown().await);
    assert!(common::stop(a, &schema).await);
}
