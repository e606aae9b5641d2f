//! Reading a response body within limits: size as sent, size once decoded, time between bytes.
//!
//! Decompression is push-based: each frame is written into a streaming decoder whose output
//! sink refuses to take more than `max_decoded_size` in all, so a compression bomb fails as its
//! output crosses the limit, holding at most the limit in memory, and a body that is too
//! large as sent fails on its `Content-Length` before a byte of it is read.

use std::future::Future as _;
use std::io::{self, Write};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::header::{CONTENT_ENCODING, CONTENT_LENGTH, HeaderMap};
use hyper::body::Incoming;

use crate::Error;
use crate::error::TimeoutKind;

/// The `Accept-Encoding` value for the codings this build decodes, best first.
pub(crate) const ACCEPT_ENCODING: &str = accept_encoding();

const fn accept_encoding() -> &'static str {
    // Codings are features: list the enabled ones. Order states preference (zstd and br
    // compress better than gzip at the same speed).
    match (
        cfg!(feature = "zstd"),
        cfg!(feature = "brotli"),
        cfg!(feature = "gzip"),
    ) {
        (true, true, true) => "zstd, br, gzip, deflate",
        (true, true, false) => "zstd, br",
        (true, false, true) => "zstd, gzip, deflate",
        (false, true, true) => "br, gzip, deflate",
        (true, false, false) => "zstd",
        (false, true, false) => "br",
        (false, false, true) => "gzip, deflate",
        (false, false, false) => "identity",
    }
}

/// The limits a body is read under.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub(crate) max_body: u64,
    pub(crate) max_decoded: u64,
    pub(crate) read_timeout: Option<Duration>,
    pub(crate) decompress: bool,
}

/// A `Write` sink that refuses to take more than `limit` bytes in all (a streamed body takes
/// its output away as it goes; the total still counts).
#[derive(Debug)]
struct Capped {
    buf: Vec<u8>,
    total: u64,
    limit: u64,
    exceeded: bool,
}

impl Write for Capped {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.total.saturating_add(data.len() as u64) > self.limit {
            self.exceeded = true;
            return Err(io::Error::other("decoded body over the limit"));
        }
        self.total += data.len() as u64;
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

enum Decoder {
    #[cfg(feature = "gzip")]
    Gzip(flate2::write::MultiGzDecoder<Capped>),
    #[cfg(feature = "gzip")]
    Deflate(flate2::write::ZlibDecoder<Capped>),
    #[cfg(feature = "brotli")]
    Brotli(Box<brotli_decompressor::DecompressorWriter<Capped>>),
    #[cfg(feature = "zstd")]
    Zstd(zstd::stream::write::Decoder<'static, Capped>),
    /// Keeps the matches exhaustive when no coding feature is enabled.
    #[allow(dead_code)]
    Never(std::convert::Infallible),
}

#[cfg_attr(
    not(any(feature = "gzip", feature = "brotli", feature = "zstd")),
    allow(unreachable_code, unused_variables)
)]
impl Decoder {
    /// A decoder for a `Content-Encoding` value this build handles; `None` for identity and
    /// for codings it does not know (the body is then returned as sent, header kept).
    fn for_coding(
        coding: &str,
        sink: Capped,
    ) -> Result<Option<(Box<Decoder>, &'static str)>, Error> {
        let _ = &sink;
        let (decoder, name) = match coding {
            #[cfg(feature = "gzip")]
            "gzip" | "x-gzip" => (
                Decoder::Gzip(flate2::write::MultiGzDecoder::new(sink)),
                "gzip",
            ),
            #[cfg(feature = "gzip")]
            "deflate" => (
                Decoder::Deflate(flate2::write::ZlibDecoder::new(sink)),
                "deflate",
            ),
            #[cfg(feature = "brotli")]
            "br" => (
                Decoder::Brotli(Box::new(brotli_decompressor::DecompressorWriter::new(
                    sink, 8192,
                ))),
                "br",
            ),
            #[cfg(feature = "zstd")]
            "zstd" => {
                let d = zstd::stream::write::Decoder::new(sink).map_err(|e| Error::Decode {
                    encoding: "zstd".into(),
                    source: Error::source_of(e),
                })?;
                (Decoder::Zstd(d), "zstd")
            }
            _ => return Ok(None),
        };
        // Boxed: decoders are large, and the body-reading future should not carry one inline.
        Ok(Some((Box::new(decoder), name)))
    }

    fn sink(&self) -> &Capped {
        match self {
            #[cfg(feature = "gzip")]
            Decoder::Gzip(d) => d.get_ref(),
            #[cfg(feature = "gzip")]
            Decoder::Deflate(d) => d.get_ref(),
            #[cfg(feature = "brotli")]
            Decoder::Brotli(d) => d.get_ref(),
            #[cfg(feature = "zstd")]
            Decoder::Zstd(d) => d.get_ref(),
            Decoder::Never(n) => match *n {},
        }
    }

    /// Takes the output decoded so far.
    fn take_output(&mut self) -> Vec<u8> {
        let sink = match self {
            #[cfg(feature = "gzip")]
            Decoder::Gzip(d) => d.get_mut(),
            #[cfg(feature = "gzip")]
            Decoder::Deflate(d) => d.get_mut(),
            #[cfg(feature = "brotli")]
            Decoder::Brotli(d) => d.get_mut(),
            #[cfg(feature = "zstd")]
            Decoder::Zstd(d) => d.get_mut(),
            Decoder::Never(n) => match *n {},
        };
        std::mem::take(&mut sink.buf)
    }

    fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        match self {
            #[cfg(feature = "gzip")]
            Decoder::Gzip(d) => d.write_all(data),
            #[cfg(feature = "gzip")]
            Decoder::Deflate(d) => d.write_all(data),
            #[cfg(feature = "brotli")]
            Decoder::Brotli(d) => d.write_all(data),
            #[cfg(feature = "zstd")]
            Decoder::Zstd(d) => d.write_all(data),
            Decoder::Never(n) => match *n {},
        }
    }

    /// Ends the stream; a truncated stream is an error.
    #[cfg_attr(
        not(any(feature = "gzip", feature = "brotli", feature = "zstd")),
        allow(clippy::boxed_local)
    )]
    fn finish(self: Box<Self>) -> io::Result<Vec<u8>> {
        match *self {
            #[cfg(feature = "gzip")]
            Decoder::Gzip(d) => d.finish().map(|s| s.buf),
            #[cfg(feature = "gzip")]
            Decoder::Deflate(d) => d.finish().map(|s| s.buf),
            #[cfg(feature = "brotli")]
            Decoder::Brotli(mut d) => {
                d.close()?;
                d.into_inner().map(|s| s.buf).map_err(|_| {
                    io::Error::new(io::ErrorKind::UnexpectedEof, "truncated brotli stream")
                })
            }
            #[cfg(feature = "zstd")]
            Decoder::Zstd(d) => d.finish().map(|s| s.buf),
            Decoder::Never(n) => match n {},
        }
    }
}

/// The single coding named by `Content-Encoding`, lowercased; `None` when absent, identity,
/// or a list of several (stacked codings are returned as sent).
fn content_coding(headers: &HeaderMap) -> Option<String> {
    let mut values = headers.get_all(CONTENT_ENCODING).iter();
    let first = values.next()?;
    if values.next().is_some() {
        return None;
    }
    let v = first.to_str().ok()?.trim();
    if v.is_empty() || v.contains(',') || v.eq_ignore_ascii_case("identity") {
        return None;
    }
    Some(v.to_ascii_lowercase())
}

/// A decoder and the name of its coding.
type Decoding = (Box<Decoder>, &'static str);

/// The declared length (refused past the limit before a byte is read) and the decoder for
/// the body's coding, when it has one this build decodes.
fn start(headers: &HeaderMap, limits: Limits) -> Result<(Option<u64>, Option<Decoding>), Error> {
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        // A field value is visible ASCII and tabs: ASCII trimming is all the trimming.
        .and_then(|v| v.trim_ascii().parse::<u64>().ok());
    if declared.is_some_and(|n| n > limits.max_body) {
        return Err(Error::BodyTooLarge {
            limit: limits.max_body,
        });
    }
    let decoder = match content_coding(headers).filter(|_| limits.decompress) {
        Some(coding) => {
            let sink = Capped {
                buf: Vec::new(),
                total: 0,
                limit: limits.max_decoded,
                exceeded: false,
            };
            Decoder::for_coding(&coding, sink)?
        }
        None => None,
    };
    Ok((declared, decoder))
}

/// Reads `body` whole under `limits`, decoding it when its coding is known; on decoding,
/// `Content-Encoding` and `Content-Length` are removed from `headers` (they described the
/// bytes as sent).
pub(crate) async fn read(
    body: Incoming,
    headers: &mut HeaderMap,
    limits: Limits,
) -> Result<Bytes, Error> {
    let mut stream = BodyStream::new(body, headers, limits)?;
    // A body in one frame is handed on as it came, without a copy.
    let mut first: Option<Bytes> = None;
    let mut rest: Option<BytesMut> = None;
    while let Some(data) = stream.chunk().await? {
        match (&mut first, &mut rest) {
            (None, _) => first = Some(data),
            (Some(f), None) => {
                let cap = stream.declared.unwrap_or(0).max(stream.received) as usize;
                let mut buf = BytesMut::with_capacity(cap);
                buf.extend_from_slice(f);
                buf.extend_from_slice(&data);
                rest = Some(buf);
            }
            (Some(_), Some(buf)) => buf.extend_from_slice(&data),
        }
    }
    Ok(match (first, rest) {
        (_, Some(buf)) => buf.freeze(),
        (Some(f), None) => f,
        (None, None) => Bytes::new(),
    })
}

/// A response body read as it arrives, under the same limits as a body read whole: at most
/// `max_body_size` as sent, `max_decoded_size` once decoded (decoding as it goes), and
/// `read_timeout` between chunks. From [`RequestBuilder::send_streaming`].
///
/// [`RequestBuilder::send_streaming`]: crate::RequestBuilder::send_streaming
pub struct BodyStream {
    body: Incoming,
    limits: Limits,
    decoder: Option<Decoding>,
    /// The length the head declared (as sent), if any.
    declared: Option<u64>,
    received: u64,
    done: bool,
    /// The read timeout, armed while a frame is awaited.
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl std::fmt::Debug for BodyStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BodyStream")
            .field("received", &self.received)
            .field("decoding", &self.decoder.as_ref().map(|(_, name)| *name))
            .field("done", &self.done)
            .finish()
    }
}

impl BodyStream {
    /// Starts reading `body`, decoding it when its coding is known (then `Content-Encoding`
    /// and `Content-Length` are removed from `headers`). A declared length past the limit is
    /// refused before a byte is read.
    pub(crate) fn new(
        body: Incoming,
        headers: &mut HeaderMap,
        limits: Limits,
    ) -> Result<BodyStream, Error> {
        let (declared, decoder) = start(headers, limits)?;
        if decoder.is_some() {
            headers.remove(CONTENT_ENCODING);
            headers.remove(CONTENT_LENGTH);
        }
        Ok(BodyStream {
            body,
            limits,
            decoder,
            declared,
            received: 0,
            done: false,
            timer: None,
        })
    }

    /// The next piece of the body (decoded), `None` at its end. An error ends the stream.
    pub async fn chunk(&mut self) -> Result<Option<Bytes>, Error> {
        std::future::poll_fn(|cx| self.poll_chunk(cx)).await
    }

    /// One step of [`chunk`](BodyStream::chunk), as a poll: the frames are read with the
    /// read timeout armed between them.
    fn poll_chunk(&mut self, cx: &mut Context<'_>) -> Poll<Result<Option<Bytes>, Error>> {
        use http_body::Body as _;
        while !self.done {
            let frame = match Pin::new(&mut self.body).poll_frame(cx) {
                Poll::Ready(frame) => {
                    self.timer = None;
                    frame
                }
                Poll::Pending => {
                    let Some(t) = self.limits.read_timeout else {
                        return Poll::Pending;
                    };
                    let timer = self
                        .timer
                        .get_or_insert_with(|| Box::pin(tokio::time::sleep(t)));
                    if timer.as_mut().poll(cx).is_ready() {
                        self.done = true;
                        return Poll::Ready(Err(Error::Timeout {
                            kind: TimeoutKind::Read,
                            after: t,
                        }));
                    }
                    return Poll::Pending;
                }
            };
            let Some(frame) = frame else {
                self.done = true;
                return Poll::Ready(self.finish());
            };
            let frame = match frame {
                Ok(frame) => frame,
                Err(e) => {
                    self.done = true;
                    return Poll::Ready(Err(Error::Transport(Error::source_of(e))));
                }
            };
            let Ok(data) = frame.into_data() else {
                continue;
            };
            if data.is_empty() {
                continue;
            }
            self.received += data.len() as u64;
            if self.received > self.limits.max_body {
                self.done = true;
                return Poll::Ready(Err(Error::BodyTooLarge {
                    limit: self.limits.max_body,
                }));
            }
            let Some((d, name)) = &mut self.decoder else {
                return Poll::Ready(Ok(Some(data)));
            };
            if let Err(e) = d.write_all(&data) {
                self.done = true;
                let exceeded = d.sink().exceeded;
                return Poll::Ready(Err(decode_error(
                    exceeded,
                    name,
                    self.limits.max_decoded,
                    e,
                )));
            }
            let out = d.take_output();
            if !out.is_empty() {
                return Poll::Ready(Ok(Some(Bytes::from(out))));
            }
        }
        Poll::Ready(Ok(None))
    }

    /// The rest of the decoder's output at the end of the body; a truncated stream is an error.
    fn finish(&mut self) -> Result<Option<Bytes>, Error> {
        let Some((d, name)) = self.decoder.take() else {
            return Ok(None);
        };
        let exceeded = d.sink().exceeded;
        let out = d
            .finish()
            .map_err(|e| decode_error(exceeded, name, self.limits.max_decoded, e))?;
        Ok((!out.is_empty()).then(|| Bytes::from(out)))
    }

    /// Bytes received so far, as sent.
    pub fn received(&self) -> u64 {
        self.received
    }
}

/// A `BodyStream` is an `http_body::Body`: hand it to hyper or axum as a response body, or
/// use `http_body_util`'s adapters (`BodyExt::collect`, `BodyDataStream` for a `Stream`).
impl http_body::Body for BodyStream {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Error>>> {
        self.get_mut()
            .poll_chunk(cx)
            .map(|r| r.transpose().map(|r| r.map(http_body::Frame::data)))
    }

    fn is_end_stream(&self) -> bool {
        self.done && self.decoder.is_none()
    }
}

fn decode_error(exceeded: bool, name: &'static str, limit: u64, e: io::Error) -> Error {
    if exceeded {
        Error::DecodedTooLarge {
            limit,
            encoding: name,
        }
    } else {
        Error::Decode {
            encoding: name.to_owned(),
            source: Error::source_of(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codings_are_read_from_the_header() {
        let mut h = HeaderMap::new();
        assert_eq!(content_coding(&h), None);
        h.insert(CONTENT_ENCODING, "GZIP".parse().unwrap());
        assert_eq!(content_coding(&h).as_deref(), Some("gzip"));
        h.insert(CONTENT_ENCODING, "gzip, br".parse().unwrap());
        assert_eq!(
            content_coding(&h),
            None,
            "stacked codings are passed through"
        );
        h.insert(CONTENT_ENCODING, "identity".parse().unwrap());
        assert_eq!(content_coding(&h), None);
    }

    #[test]
    fn the_sink_refuses_past_its_limit() {
        let mut s = Capped {
            buf: Vec::new(),
            total: 0,
            limit: 4,
            exceeded: false,
        };
        s.write_all(b"abcd").unwrap();
        assert!(s.write_all(b"e").is_err());
        assert!(s.exceeded);
        assert_eq!(s.buf, b"abcd");
        // Output taken away (a streamed body) still counts.
        s.buf.clear();
        s.exceeded = false;
        assert!(s.write_all(b"f").is_err(), "the total is what is capped");
    }

    #[test]
    fn accept_encoding_lists_the_enabled_codings() {
        #[cfg(feature = "gzip")]
        assert!(ACCEPT_ENCODING.contains("gzip"));
        #[cfg(feature = "brotli")]
        assert!(ACCEPT_ENCODING.contains("br"));
        #[cfg(feature = "zstd")]
        assert!(ACCEPT_ENCODING.contains("zstd"));
    }
}
