//! The service end to end, over HTTP on loopback, against the real PostgreSQL.

mod common;

use std::time::Duration;

use http::Method;
use serde_json::Value;
use veza_api::Mode;

fn j(r: &veza_httpopt::Response) -> Value {
    serde_json::from_slice(r.body()).unwrap_or_else(|_| panic!("json: {:?}", r.text()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_are_created_cached_renamed_and_invalidated() {
    let (app, schema) = common::start(Mode::Veza).await;
    let c = common::client();
    let base = format!("http://{}", app.addr);
    let r = c
        .request(Method::POST, format!("{base}/users"))
        .body(r#"{"email":"ada@example.com","name":"Ada","password":"correct horse"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{:?}", r.text());
    let id = j(&r)["id"].as_i64().unwrap();
    let dup = c
        .request(Method::POST, format!("{base}/users"))
        .body(r#"{"email":"ada@example.com","name":"Other","password":"correct horse"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(dup.status(), 409);

    for _ in 0..3 {
        let r = c.get(format!("{base}/users/{id}")).send().await.unwrap();
        assert_eq!(j(&r)["name"], "Ada");
    }
    let r = c
        .get(format!("{base}/users/by-email/ada%40example.com"))
        .send()
        .await
        .unwrap();
    assert_eq!(j(&r)["id"].as_i64(), Some(id));
    let r = c
        .request(Method::PUT, format!("{base}/users/{id}"))
        .body(r#"{"name":"Ada Lovelace"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = c.get(format!("{base}/users/{id}")).send().await.unwrap();
    assert_eq!(
        j(&r)["name"],
        "Ada Lovelace",
        "the cached entry was invalidated"
    );
    let r = c
        .get(format!("{base}/users/by-email/ada%40example.com"))
        .send()
        .await
        .unwrap();
    assert_eq!(j(&r)["name"], "Ada Lovelace");
    assert_eq!(
        c.get(format!("{base}/users/999999"))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    assert_eq!(
        c.get(format!("{base}/users/abc"))
            .send()
            .await
            .unwrap()
            .status(),
        400
    );

    // The stored password is an argon2 hash, not the password.
    let (pg, conn) = tokio_postgres::connect(&common::database_url(), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    let row = pg
        .query_one(
            &format!("SELECT password_hash FROM {schema}.credentials WHERE user_id = $1"),
            &[&id],
        )
        .await
        .unwrap();
    let hash: String = row.get(0);
    assert!(hash.starts_with("$argon2id$"), "{hash}");

    let metrics = c.get(format!("{base}/metrics")).send().await.unwrap();
    let text = metrics.text().unwrap();
    assert!(
        text.contains(r#"http_requests_total{method="GET",route="/users/{id}",status="200"}"#),
        "{text}"
    );
    assert!(
        text.contains("cache_hits_total"),
        "veza-cache metrics are exported"
    );
    assert!(common::stop(app, &schema).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_then_keyset_pages_cover_every_user_once() {
    let (app, schema) = common::start(Mode::Veza).await;
    let c = common::client();
    let base = format!("http://{}", app.addr);
    let lines: String = (0..95)
        .map(|i| format!("{{\"email\":\"u{i}@example.com\",\"name\":\"User {i}\"}}\n"))
        .collect();
    let r = c
        .request(Method::POST, format!("{base}/users/import"))
        .body(lines)
        .send()
        .await
        .unwrap();
    assert_eq!(j(&r)["inserted"], 95);
    // A bad line rejects the whole batch.
    let bad = "{\"email\":\"x1@example.com\",\"name\":\"X\"}\nnot json\n";
    let r = c
        .request(Method::POST, format!("{base}/users/import"))
        .body(bad)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.text().unwrap().contains("line 2"));

    let mut seen = std::collections::HashSet::new();
    let mut next: Option<String> = None;
    loop {
        let url = match &next {
            Some(cursor) => format!("{base}/users?limit=20&cursor={cursor}"),
            None => format!("{base}/users?limit=20"),
        };
        let page = j(&c.get(url).send().await.unwrap());
        for u in page["items"].as_array().unwrap() {
            assert!(
                seen.insert(u["id"].as_i64().unwrap()),
                "a user appeared twice"
            );
        }
        match page["next"].as_str() {
            Some(cursor) => next = Some(cursor.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen.len(), 95);
    let r = c
        .get(format!("{base}/users?cursor=forged"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(common::stop(app, &schema).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_avatars_and_readiness() {
    let (app, schema) = common::start(Mode::Veza).await;
    let c = common::client();
    let base = format!("http://{}", app.addr);
    let r = c
        .request(Method::POST, format!("{base}/users/import"))
        .body("{\"email\":\"m@example.com\",\"name\":\"M\"}\n")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let user = j(&c
        .get(format!("{base}/users/by-email/m%40example.com"))
        .send()
        .await
        .unwrap());
    let id = user["id"].as_i64().unwrap();
    for i in 0..3 {
        let r = c
            .request(Method::POST, format!("{base}/messages"))
            .body(format!("{{\"user_id\":{id},\"body\":\"hello {i}\"}}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
    }
    let r = c
        .request(Method::POST, format!("{base}/messages"))
        .body("{\"user_id\":424242,\"body\":\"to nobody\"}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let page = j(&c
        .get(format!("{base}/messages?user_id={id}&limit=2"))
        .send()
        .await
        .unwrap());
    assert_eq!(page["items"][0]["body"], "hello 2", "newest first");
    let before = page["next"].as_str().unwrap();
    let rest = j(&c
        .get(format!("{base}/messages?user_id={id}&before={before}"))
        .send()
        .await
        .unwrap());
    assert_eq!(rest["items"].as_array().unwrap().len(), 1);

    let first = c
        .get(format!("{base}/users/{id}/avatar"))
        .send()
        .await
        .unwrap();
    assert_eq!(first.headers()["content-type"], "image/svg+xml");
    assert_eq!(first.headers()["x-cache"], "miss");
    let second = c
        .get(format!("{base}/users/{id}/avatar"))
        .send()
        .await
        .unwrap();
    assert_eq!(second.headers()["x-cache"], "hit");
    assert_eq!(first.body(), second.body());
    let served = app
        .avatars
        .as_ref()
        .unwrap()
        .served
        .load(std::sync::atomic::Ordering::Relaxed);
    // One avatar request, plus the readiness probes (none yet).
    assert_eq!(served, 1);

    let ready = c.get(format!("{base}/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200, "{:?}", ready.text());
    assert_eq!(j(&ready)["status"], "healthy");
    assert_eq!(
        c.get(format!("{base}/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    c.get(format!("{base}/users/by-email/m%40example.com"))
        .send()
        .await
        .unwrap();
    let (_, by_email) = app.state_caches();
    assert_eq!(
        (by_email.misses, by_email.hits),
        (1, 1),
        "cache-aside by email"
    );
    assert!(common::stop(app, &schema).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_naive_mode_serves_the_same_api() {
    let (app, schema) = common::start(Mode::Naive).await;
    let c = common::client();
    let base = format!("http://{}", app.addr);
    let r = c
        .request(Method::POST, format!("{base}/users/import"))
        .body("{\"email\":\"n@example.com\",\"name\":\"N\"}\n")
        .send()
        .await
        .unwrap();
    assert_eq!(j(&r)["inserted"], 1);
    let user = j(&c
        .get(format!("{base}/users/by-email/n%40example.com"))
        .send()
        .await
        .unwrap());
    let id = user["id"].as_i64().unwrap();
    assert_eq!(
        j(&c.get(format!("{base}/users/{id}")).send().await.unwrap())["name"],
        "N"
    );
    for _ in 0..2 {
        let a = c
            .get(format!("{base}/users/{id}/avatar"))
            .send()
            .await
            .unwrap();
        assert_eq!(a.headers()["x-cache"], "miss", "no cache in naive mode");
    }
    assert!(app.state.is_naive());
    assert!(common::stop(app, &schema).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_finishes_requests_in_flight_then_refuses_connections() {
    let (app, schema) = common::start(Mode::Veza).await;
    let base = format!("http://{}", app.addr);
    let c = common::client();
    // Requests in flight when the shutdown starts: sign-ups (hashing on the worker pool).
    let inflight: Vec<_> = (0..4)
        .map(|i| {
            let (c, base) = (c.clone(), base.clone());
            tokio::spawn(async move {
                c.request(Method::POST, format!("{base}/users"))
                    .body(format!("{{\"email\":\"s{i}@example.com\",\"name\":\"S\",\"password\":\"long enough\"}}"))
                    .send()
                    .await
            })
        })
        .collect();
    // Shut down once the server has accepted all four (their hashes are on the worker pool):
    // each must then be answered in full, however far it got.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while app.hash_jobs_submitted() < 4 {
        assert!(
            std::time::Instant::now() < deadline,
            "sign-ups never reached the workers"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let addr = app.addr;
    let state = app.state.clone();
    assert!(!state.db_closed());
    let clean = common::stop(app, &schema).await;
    assert!(clean, "drained within the deadline");
    assert!(state.db_closed(), "the shutdown closes the database pool");
    for t in inflight {
        let r = t.await.unwrap().expect("an accepted request is answered");
        assert_eq!(r.status(), 201, "{:?}", r.text());
    }
    let after = c.get(format!("http://{addr}/healthz")).send().await;
    assert!(after.is_err(), "the listener is closed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_uploads_are_refused_and_nothing_is_inserted() {
    let (app, schema) = common::start_with(Mode::Veza, |c| c.max_body_bytes = 1024).await;
    let c = common::client();
    let base = format!("http://{}", app.addr);
    let lines: String = (0..100)
        .map(|i| format!("{{\"email\":\"big{i}@example.com\",\"name\":\"B\"}}\n"))
        .collect();
    assert!(lines.len() > 1024);
    let r = c
        .request(Method::POST, format!("{base}/users/import"))
        .body(lines)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    let page = j(&c.get(format!("{base}/users")).send().await.unwrap());
    assert_eq!(page["items"].as_array().unwrap().len(), 0);
    let small = "{\"email\":\"s@example.com\",\"name\":\"S\"}\n";
    let r = c
        .request(Method::POST, format!("{base}/users/import"))
        .body(small)
        .send()
        .await
        .unwrap();
    assert_eq!(j(&r)["inserted"], 1);
    assert!(common::stop(app, &schema).await);
}
