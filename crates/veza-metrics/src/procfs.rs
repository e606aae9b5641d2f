//! Small, allocation-light readers of Linux `/proc` files, shared by the collectors.

use std::fs;
use std::io::Read;

/// Reads a whole `/proc` file into `buf` (cleared first); `false` if it cannot be read.
pub(crate) fn read_into(path: &str, buf: &mut String) -> bool {
    buf.clear();
    fs::File::open(path)
        .and_then(|mut f| f.read_to_string(buf))
        .is_ok()
}

/// A `/proc` file kept open and read again from the start each time: the kernel regenerates
/// its content on every read from offset 0, and opening costs as much as reading.
#[derive(Debug)]
pub(crate) struct ProcFile {
    file: Option<fs::File>,
}

impl ProcFile {
    pub(crate) fn open(path: &str) -> ProcFile {
        ProcFile {
            file: fs::File::open(path).ok(),
        }
    }

    /// Reads the current content into `buf` (cleared first); `false` if unreadable.
    pub(crate) fn read_into(&self, buf: &mut String) -> bool {
        use std::os::unix::fs::FileExt;
        buf.clear();
        let Some(file) = &self.file else { return false };
        let mut bytes = std::mem::take(buf).into_bytes();
        let mut chunk = [0u8; 4096];
        let mut offset = 0u64;
        let ok = loop {
            match file.read_at(&mut chunk, offset) {
                Ok(0) => break true,
                Ok(n) => {
                    bytes.extend_from_slice(&chunk[..n]);
                    offset += n as u64;
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => break false,
            }
        };
        *buf = String::from_utf8(bytes).unwrap_or_default();
        ok && !buf.is_empty()
    }
}

/// The value after `key` on the line starting with it (`key:  123 kB` → 123).
pub(crate) fn field(text: &str, key: &str) -> Option<u64> {
    text.lines()
        .find_map(|line| line.strip_prefix(key))
        .and_then(|rest| rest.trim_start_matches(':').split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// The whitespace-separated numbers of a line, as `u64` (unparsable ones as 0).
pub(crate) fn numbers(line: &str) -> impl Iterator<Item = u64> + '_ {
    line.split_whitespace().map(|w| w.parse().unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_and_numbers_parse() {
        let text = "MemTotal:       24576000 kB\nMemAvailable:   1000 kB\n";
        assert_eq!(field(text, "MemTotal"), Some(24_576_000));
        assert_eq!(field(text, "MemAvailable"), Some(1000));
        assert_eq!(field(text, "SwapTotal"), None);
        assert_eq!(numbers("1 2 x 4").collect::<Vec<_>>(), [1, 2, 0, 4]);
    }
}
