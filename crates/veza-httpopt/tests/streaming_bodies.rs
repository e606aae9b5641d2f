//! Bodies read as they arrive (`send_streaming`): the first chunk is in the caller's hands
//! while the origin still holds the rest back; a gzip body is decoded chunk by chunk; the size
//! limits and the read timeout hold mid-stream.

mod common;

use std::io::Write as _;
use std::sync::Arc;
use std::time::Duration;

use common::{raw, read_head};
use tokio::io::AsyncWriteExt;
use tokio::sync::Notify;
use veza_httpopt::{Client, Error, TimeoutKind};

/// Writes one chunk of a chunked body.
async fn chunk(stream: &mut tokio::net::TcpStream, data: &[u8]) {
    let mut out = format!("{:x}\r\n", data.len()).into_bytes();
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
    let _ = stream.write_all(&out).await;
}

const CHUNKED: &[u8] = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n";

#[tokio::test]
async fn the_first_chunk_arrives_before_the_origin_sends_the_rest() {
    let release = Arc::new(Notify::new());
    let r = release.clone();
    let s = raw(move |_, mut stream| {
        let r = r.clone();
        async move {
            read_head(&mut stream).await;
            let _ = stream.write_all(CHUNKED).await;
            chunk(&mut stream, b"data: first\n\n").await;
            r.notified().await; // the rest waits until the client has the first
            for i in 0..100 {
                chunk(&mut stream, format!("data: {i}\n\n").as_bytes()).await;
            }
            let _ = stream.write_all(b"0\r\n\r\n").await;
        }
    })
    .await;
    let c = Client::builder().build().unwrap();
    let mut resp = c.get(s.url("/events")).send_streaming().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(
        !resp.headers().contains_key("transfer-encoding"),
        "hop-by-hop"
    );
    let first = resp.chunk().await.unwrap().unwrap();
    assert_eq!(&first[..], b"data: first\n\n");
    release.notify_one();
    let mut rest = Vec::new();
    while let Some(c) = resp.chunk().await.unwrap() {
        rest.extend_from_slice(&c);
    }
    let expected: String = (0..100).map(|i| format!("data: {i}\n\n")).collect();
    assert_eq!(String::from_utf8(rest).unwrap(), expected);
    assert_eq!(resp.chunk().await.unwrap(), None, "stays at the end");
}

#[tokio::test]
async fn a_gzip_body_is_decoded_as_it_arrives() {
    let text: String = (0..20_000).map(|i| format!("line {i}\n")).collect();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(text.as_bytes()).unwrap();
    let packed = Arc::new(gz.finish().unwrap());
    let p = packed.clone();
    let s = raw(move |_, mut stream| {
        let p = p.clone();
        async move {
            read_head(&mut stream).await;
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ncontent-encoding: gzip\r\n\r\n")
                .await;
            for piece in p.chunks(1000) {
                chunk(&mut stream, piece).await;
                stream.flush().await.ok();
            }
            let _ = stream.write_all(b"0\r\n\r\n").await;
        }
    })
    .await;
    let c = Client::builder().build().unwrap();
    let mut resp = c.get(s.url("/log")).send_streaming().await.unwrap();
    assert!(!resp.headers().contains_key("content-encoding"));
    let mut out = Vec::new();
    let mut pieces = 0;
    while let Some(c) = resp.chunk().await.unwrap() {
        out.extend_from_slice(&c);
        pieces += 1;
    }
    assert_eq!(out, text.as_bytes());
    assert!(pieces > 1, "decoded in one piece: not streamed");
}

#[tokio::test]
async fn the_limits_hold_mid_stream() {
    // 64 KiB chunks without end: the limit as sent stops it.
    let s = raw(|_, mut stream| async move {
        read_head(&mut stream).await;
        let _ = stream.write_all(CHUNKED).await;
        for _ in 0..1000 {
            chunk(&mut stream, &[b'x'; 65_536]).await;
        }
    })
    .await;
    let c = Client::builder()
        .max_body_size(1 << 20, 1 << 20)
        .build()
        .unwrap();
    let mut resp = c.get(s.url("/big")).send_streaming().await.unwrap();
    let mut got = 0usize;
    let err = loop {
        match resp.chunk().await {
            Ok(Some(c)) => got += c.len(),
            Ok(None) => panic!("ended at {got} bytes"),
            Err(e) => break e,
        }
    };
    assert!(
        matches!(err, Error::BodyTooLarge { limit } if limit == 1 << 20),
        "{err}"
    );
    assert!(got <= 1 << 20, "{got} bytes handed out past the limit");

    // A declared length past the limit is refused before the body.
    let s = raw(|_, mut stream| async move {
        read_head(&mut stream).await;
        let _ = stream
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 99999999999\r\n\r\n")
            .await;
    })
    .await;
    let err = c
        .get(s.url("/declared"))
        .send_streaming()
        .await
        .unwrap_err();
    assert!(matches!(err, Error::BodyTooLarge { .. }), "{err}");
}

#[tokio::test]
async fn a_stalled_body_times_out_between_chunks() {
    let s = raw(|_, mut stream| async move {
        read_head(&mut stream).await;
        let _ = stream.write_all(CHUNKED).await;
        chunk(&mut stream, b"one").await;
        tokio::time::sleep(Duration::from_secs(30)).await;
    })
    .await;
    let c = Client::builder()
        .read_timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let mut resp = c.get(s.url("/stall")).send_streaming().await.unwrap();
    assert_eq!(&resp.chunk().await.unwrap().unwrap()[..], b"one");
    let err = resp.chunk().await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::Timeout {
                kind: TimeoutKind::Read,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(
        resp.chunk().await.unwrap(),
        None,
        "the stream ended with the error"
    );
}

#[tokio::test]
async fn the_stream_is_an_http_body() {
    use http_body_util::BodyExt;
    let s = raw(|_, mut stream| async move {
        read_head(&mut stream).await;
        let _ = stream.write_all(CHUNKED).await;
        for i in 0..50 {
            chunk(&mut stream, format!("{i},").as_bytes()).await;
        }
        let _ = stream.write_all(b"0\r\n\r\n").await;
    })
    .await;
    let c = Client::builder().build().unwrap();
    let resp = c.get(s.url("/numbers")).send_streaming().await.unwrap();
    // Collected through http-body-util, as a server framework would pass it on.
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    let expected: String = (0..50).map(|i| format!("{i},")).collect();
    assert_eq!(body, expected.as_bytes());
}
