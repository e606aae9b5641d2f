//! With the `tracing` feature, a connection the exporter could not serve (a malformed request
//! head) logs a `WARN` event, target `veza_metrics::exporter`; a good scrape logs nothing.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tracing::span;

struct Recording(Arc<Mutex<usize>>);

impl tracing::Subscriber for Recording {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &span::Attributes<'_>) -> span::Id {
        span::Id::from_u64(1)
    }
    fn record(&self, _: &span::Id, _: &span::Record<'_>) {}
    fn record_follows_from(&self, _: &span::Id, _: &span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        if event.metadata().target() == "veza_metrics::exporter" {
            assert_eq!(*event.metadata().level(), tracing::Level::WARN);
            *self.0.lock().unwrap() += 1;
        }
    }
    fn enter(&self, _: &span::Id) {}
    fn exit(&self, _: &span::Id) {}
}

#[test]
fn a_malformed_request_is_logged_and_a_scrape_is_not() {
    let events = Arc::new(Mutex::new(0));
    // The exporter serves on a thread of its own: the subscriber is the global one.
    tracing::subscriber::set_global_default(Recording(events.clone())).unwrap();
    let exporter = common::metrics()
        .serve("127.0.0.1:0".parse().unwrap())
        .unwrap();
    let addr = exporter.local_addr();
    let (status, _, _) = common::get(addr, "/metrics", &[]);
    assert_eq!(status, 200);
    assert_eq!(*events.lock().unwrap(), 0, "a good scrape logs nothing");

    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(b"\x00\x01 NOT HTTP\r\n\r\n").unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer);
    let deadline = Instant::now() + Duration::from_secs(5);
    let expected = usize::from(cfg!(feature = "tracing"));
    while *events.lock().unwrap() < expected && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(*events.lock().unwrap(), expected);
}
