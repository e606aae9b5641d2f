//! Helpers shared by the integration tests: the one global recorder of a test binary, and a
//! minimal HTTP/1.1 client over a loopback socket.
#![allow(dead_code, reason = "each test file uses a different subset")]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::OnceLock;
use std::time::Duration;

use veza_metrics::Metrics;

/// The global recorder, installed once per test binary.
pub(crate) fn metrics() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(|| Metrics::builder().install().expect("first install"))
}

/// `GET path` with extra headers; returns the status, the headers (lowercased names) and the
/// body. One request per connection.
pub(crate) fn get(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut request = format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a header end");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut body = raw[split + 4..].to_vec();
    let mut lines = head.lines();
    let status = lines
        .next()
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    if headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v == "chunked")
    {
        body = dechunk(&body);
    }
    (status, headers, body)
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let line_end = data.windows(2).position(|w| w == b"\r\n").unwrap();
        let size =
            usize::from_str_radix(std::str::from_utf8(&data[..line_end]).unwrap().trim(), 16)
                .unwrap();
        data = &data[line_end + 2..];
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&data[..size]);
        data = &data[size + 2..];
    }
}

/// Runs `program args` with `text` on its stdin; returns its exit status, stdout and stderr, or
/// `None` when the program is not there (a skip outside CI, a failure in CI, which installs
/// `package`).
#[allow(
    clippy::print_stderr,
    reason = "the note says why the check was skipped"
)]
pub(crate) fn pipe_through(
    program: &str,
    args: &[&str],
    package: &str,
    text: &str,
) -> Option<(bool, String, String)> {
    use std::process::{Command, Stdio};
    let spawned = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match spawned {
        Ok(child) => child,
        Err(e) if std::env::var_os("CI").is_none() => {
            eprintln!("{program} not found ({e}): install Debian's `{package}` to run this check");
            return None;
        }
        Err(e) => panic!("{program} is required in CI (apt-get install {package}): {e}"),
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    Some((
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

/// `GET path` on a pprof endpoint: checks a 200 with `application/octet-stream`, then
/// unzips and decodes the profile.
pub(crate) fn get_pprof(addr: SocketAddr, path: &str) -> pprof::protos::Profile {
    use pprof::protos::Message as _;
    let (status, headers, body) = get(addr, path, &[]);
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert!(
        headers
            .iter()
            .any(|(n, v)| n == "content-type" && v == "application/octet-stream"),
        "{headers:?}"
    );
    let mut raw = Vec::new();
    flate2::read::GzDecoder::new(&body[..])
        .read_to_end(&mut raw)
        .unwrap();
    pprof::protos::Profile::parse_from_bytes(&raw).unwrap()
}
