//! The `/metrics` endpoint under slow and greedy clients: heads that never end are cut at the
//! header read timeout, connections past the cap wait, and scrapes keep working.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use veza_metrics::ServerLimits;

/// Whether the server closed `s` (end of stream or reset) within `limit`.
fn closed_within(s: &mut TcpStream, limit: Duration) -> bool {
    s.set_read_timeout(Some(limit)).unwrap();
    let mut sink = Vec::new();
    match s.read_to_end(&mut sink) {
        Ok(_) => true,
        Err(e) => !matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
    }
}

#[test]
fn slow_heads_are_cut_and_connections_are_capped() {
    let metrics = common::metrics();
    let limits = ServerLimits {
        header_read_timeout: Duration::from_secs(1),
        max_connections: 4,
        ..ServerLimits::exporter()
    };
    let exporter = metrics
        .serve_with("127.0.0.1:0".parse().unwrap(), limits)
        .unwrap();
    let addr = exporter.local_addr();

    // Four slow clients take every slot.
    let start = Instant::now();
    let mut slow: Vec<TcpStream> = (0..4)
        .map(|_| {
            let mut s = TcpStream::connect(addr).unwrap();
            s.write_all(b"GET /metrics HTTP/1.1\r\nhost: x\r\nx-slow: a")
                .unwrap();
            s
        })
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    // A scrape now waits for a slot: it is answered only once the slow ones are cut.
    let (status, _, body) = common::get(addr, "/metrics", &[]);
    let waited = start.elapsed();
    assert_eq!(status, 200);
    assert!(!body.is_empty());
    assert!(
        waited >= Duration::from_millis(800),
        "the fifth connection waited for a slot ({waited:?})"
    );
    assert!(waited < Duration::from_secs(4), "{waited:?}");
    for s in &mut slow {
        assert!(
            closed_within(s, Duration::from_secs(3)),
            "a slow head outlived the header read timeout"
        );
    }
    // A stalled request body holds no slot for ever either: the answer (405) closes it.
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(b"POST /metrics HTTP/1.1\r\nhost: x\r\ncontent-length: 1000000\r\n\r\nabc")
        .unwrap();
    assert!(closed_within(&mut s, Duration::from_secs(3)));
    let (status, _, _) = common::get(addr, "/metrics", &[]);
    assert_eq!(status, 200);
}

#[test]
fn limits_are_checked() {
    let bad = ServerLimits {
        max_connections: 0,
        ..ServerLimits::exporter()
    };
    let e = common::metrics()
        .serve_with("127.0.0.1:0".parse().unwrap(), bad)
        .unwrap_err();
    assert!(e.to_string().contains("max_connections"), "{e}");
}
