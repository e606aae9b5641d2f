//! `LISTEN`/`NOTIFY` through a supervised listener: notifications arrive, a terminated
//! listening backend is replaced, and the subscriber is told notifications may have been
//! missed meanwhile.

mod common;

use std::time::Duration;

use veza_dbpool::{Event, Listener, Pool};

async fn next(listener: &mut Listener) -> Event {
    tokio::time::timeout(Duration::from_secs(10), listener.recv())
        .await
        .expect("an event within 10 s")
        .expect("the listener runs")
}

#[test]
fn notifications_arrive_and_a_lost_session_is_replaced_with_a_gap() {
    common::runtime().block_on(async {
        let channel = format!("veza orders {}", std::process::id());
        let config = common::config("listener", 1);
        let app = config.pg.get_application_name().unwrap().to_owned();
        let mut listener = Listener::start(&config, [channel.as_str()]).await.unwrap();
        let sender = Pool::new(common::config("notifier", 1)).unwrap();
        let notify = |payload: &'static str| {
            let (sender, channel) = (&sender, channel.clone());
            async move {
                sender
                    .get()
                    .await
                    .unwrap()
                    .execute("SELECT pg_notify($1, $2)", &[&channel, &payload])
                    .await
                    .unwrap();
            }
        };
        notify("first").await;
        match next(&mut listener).await {
            Event::Notification {
                channel: c,
                payload,
                ..
            } => {
                assert_eq!(c, channel, "a channel name with a space, quoted");
                assert_eq!(payload, "first");
            }
            other => panic!("{other:?}"),
        }

        // The listening backend is terminated (ours only, found by application name).
        assert_eq!(common::terminate_backends(&app).await, 1);
        assert_eq!(
            next(&mut listener).await,
            Event::Gap,
            "the subscriber is told"
        );
        // Listening again, on the new session.
        notify("after").await;
        match next(&mut listener).await {
            Event::Notification { payload, .. } => assert_eq!(payload, "after"),
            other => panic!("{other:?}"),
        }
    });
}

#[test]
fn a_listener_that_cannot_start_says_why_and_needs_a_channel() {
    common::runtime().block_on(async {
        let mut config = common::config("listener-refused", 1);
        config.pg.port(1); // nothing listens there
        let e = Listener::start(&config, ["x"]).await.unwrap_err();
        assert!(matches!(e, veza_dbpool::Error::Connect(_)), "{e:?}");
        let none: [&str; 0] = [];
        let e = Listener::start(&common::config("listener-empty", 1), none)
            .await
            .unwrap_err();
        assert!(matches!(e, veza_dbpool::Error::InvalidInput(_)), "{e:?}");
    });
}
