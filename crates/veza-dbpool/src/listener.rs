//! [`Listener`]: `LISTEN`/`NOTIFY` on a supervised connection of its own, which reconnects
//! after a failure and says when notifications may have been missed.
//!
//! A pooled connection cannot listen: tokio-postgres' connection driver, as a pool runs it,
//! drops asynchronous messages, and a listening session must outlive any checkout. PostgreSQL
//! keeps no notification for a session that is gone, so after a reconnect the subscriber is
//! told ([`Event::Gap`]) and should re-read whatever it keeps in step by notifications.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_postgres::{AsyncMessage, NoTls};

use crate::config::Config;
use crate::copy::quote_ident;
use crate::error::Error;

/// What a [`Listener`] delivers.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// A notification on one of the channels.
    Notification {
        /// The channel it was sent on.
        channel: String,
        /// Its payload (empty when none was given).
        payload: String,
        /// The sending backend's process id.
        process_id: i32,
    },
    /// The listening connection was lost and is back: notifications sent meanwhile are lost.
    /// Re-read the state the notifications keep in step.
    Gap,
}

/// A supervised listening connection: `Listener::start(config, ["orders"])`, then
/// [`Listener::recv`] in a loop. Stops when dropped.
#[derive(Debug)]
pub struct Listener {
    events: mpsc::Receiver<Event>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The longest wait between two reconnect attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

impl Listener {
    /// Connects with `config`'s server settings (plain TCP or a Unix socket; TLS is not
    /// supported here yet) and listens on `channels`. The first connection must succeed: its
    /// error is returned. Later failures are retried with backoff (100 ms doubling to 5 s),
    /// and each recovery is announced with [`Event::Gap`]. Up to 1,024 events wait for
    /// [`recv`](Listener::recv); past that, the connection's reading pauses (the server
    /// buffers), so a slow subscriber loses nothing while the session lives.
    pub async fn start<I, S>(config: &Config, channels: I) -> Result<Listener, Error>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let sql: Arc<str> = channels
            .into_iter()
            .map(|c| format!("LISTEN {};", quote_ident(c.as_ref())))
            .collect::<String>()
            .into();
        if sql.is_empty() {
            return Err(Error::InvalidInput("a listener needs a channel".into()));
        }
        let pg = config.effective_pg();
        let (tx, events) = mpsc::channel(1024);
        // The first session is opened here, so a wrong URL or a refused connection is the
        // caller's error, not a silent retry loop.
        let first = session(&pg, &sql)
            .await
            .map_err(|e| Error::Connect(Arc::new(e)))?;
        let task = tokio::spawn(supervise(pg, sql, first, tx));
        Ok(Listener { events, task })
    }

    /// The next event; `None` once the listener has stopped (it never stops on its own while
    /// it is alive).
    pub async fn recv(&mut self) -> Option<Event> {
        self.events.recv().await
    }
}

type Session = (
    tokio_postgres::Client,
    tokio_postgres::Connection<tokio_postgres::Socket, tokio_postgres::tls::NoTlsStream>,
);

/// Opens a connection and subscribes: the `LISTEN`s are sent while the connection is driven.
async fn session(pg: &tokio_postgres::Config, sql: &str) -> Result<Session, tokio_postgres::Error> {
    let (client, mut connection) = pg.connect(NoTls).await?;
    {
        let listen = client.batch_execute(sql);
        let mut listen = std::pin::pin!(listen);
        // Drive the connection until the LISTENs are done (no notification can come before).
        std::future::poll_fn(|cx| {
            if let std::task::Poll::Ready(r) = listen.as_mut().poll(cx) {
                return std::task::Poll::Ready(r);
            }
            match connection.poll_message(cx) {
                std::task::Poll::Ready(Some(Err(e))) => std::task::Poll::Ready(Err(e)),
                std::task::Poll::Ready(None) => std::task::Poll::Ready(Ok(())),
                _ => std::task::Poll::Pending,
            }
        })
        .await?;
    }
    Ok((client, connection))
}

/// Reads the session's messages; on its end, reconnects with backoff and reports the gap.
async fn supervise(
    pg: tokio_postgres::Config,
    sql: Arc<str>,
    first: Session,
    tx: mpsc::Sender<Event>,
) {
    let mut current = Some(first);
    let mut backoff = Duration::from_millis(100);
    loop {
        let (client, mut connection) = match current.take() {
            Some(s) => s,
            None => match session(&pg, &sql).await {
                Ok(s) => {
                    backoff = Duration::from_millis(100);
                    if tx.send(Event::Gap).await.is_err() {
                        return;
                    }
                    s
                }
                Err(_) => {
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    continue;
                }
            },
        };
        loop {
            let message = std::future::poll_fn(|cx| connection.poll_message(cx)).await;
            match message {
                Some(Ok(AsyncMessage::Notification(n))) => {
                    let event = Event::Notification {
                        channel: n.channel().to_owned(),
                        payload: n.payload().to_owned(),
                        process_id: n.process_id(),
                    };
                    // A full queue waits here: the server keeps what is not read yet.
                    if tx.send(event).await.is_err() {
                        return;
                    }
                }
                Some(Ok(_)) => {}
                // The session ended (server restart, terminated backend, network): again.
                Some(Err(_)) | None => break,
            }
        }
        drop(client);
    }
}
