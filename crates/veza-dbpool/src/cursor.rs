//! [`Cursor`]: an opaque, validated keyset-pagination cursor.

use std::fmt;

use crate::error::Error;

/// The position after the last row of a page, as the values of the ordering columns (for
/// example `[created_at in microseconds, id]`).
///
/// Keyset pagination (`WHERE (created_at, id) < ($1, $2) ORDER BY created_at DESC, id DESC
/// LIMIT n`) reads only the rows of the page through the index, at any depth; `OFFSET` reads
/// and throws away every row before the page (`cargo xtask bench --filter dbpool/page_deep`).
///
/// The encoded form is opaque to clients (`v1.` then hex, then a checksum): a truncated, edited
/// or garbled cursor is refused with [`Error::InvalidCursor`] instead of silently paging from a
/// wrong place. It is validated, not signed: do not put secrets in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    keys: Vec<i64>,
}

const PREFIX: &str = "v1.";

impl Cursor {
    /// A cursor after a row whose ordering values are `keys`.
    pub fn new(keys: impl Into<Vec<i64>>) -> Cursor {
        Cursor { keys: keys.into() }
    }

    /// The ordering values.
    pub fn keys(&self) -> &[i64] {
        &self.keys
    }

    /// The opaque text to hand to a client.
    pub fn encode(&self) -> String {
        let mut hex = String::with_capacity(self.keys.len() * 16);
        for k in &self.keys {
            hex.push_str(&format!("{:016x}", *k as u64));
        }
        format!("{PREFIX}{hex}.{:016x}", checksum(hex.as_bytes()))
    }

    /// Reads a cursor a client sent back, expecting `arity` values.
    pub fn decode(text: &str, arity: usize) -> Result<Cursor, Error> {
        let bad = |why: &str| Error::InvalidCursor(why.to_owned());
        let body = text
            .strip_prefix(PREFIX)
            .ok_or_else(|| bad("unknown format"))?;
        let (hex, sum) = body.split_once('.').ok_or_else(|| bad("no checksum"))?;
        let sum = u64::from_str_radix(sum, 16).map_err(|_| bad("bad checksum"))?;
        if sum != checksum(hex.as_bytes()) {
            return Err(bad(
                "checksum mismatch: the cursor was altered or truncated",
            ));
        }
        if hex.len() != arity * 16 {
            return Err(bad("wrong number of values"));
        }
        let keys = hex
            .as_bytes()
            .chunks(16)
            .map(|c| {
                std::str::from_utf8(c)
                    .ok()
                    .and_then(|s| u64::from_str_radix(s, 16).ok())
                    .map(|v| v as i64)
                    .ok_or_else(|| bad("bad value"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Cursor { keys })
    }
}

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.encode())
    }
}

/// FNV-1a over the payload, salted so that a payload alone is not a valid cursor.
fn checksum(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ 0x7665_7a61_2d63_7572; // "veza-cur"
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip() {
        let c = Cursor::new([1_700_000_000_000_000, -5]);
        assert_eq!(Cursor::decode(&c.encode(), 2).unwrap(), c);
    }

    #[test]
    fn malformed_cursors_are_clear_errors() {
        let good = Cursor::new([42, 7]).encode();
        let mut edited = good.clone().into_bytes();
        edited[5] = if edited[5] == b'0' { b'1' } else { b'0' };
        for (text, why) in [
            ("", "unknown format"),
            ("v1.abc", "no checksum"),
            (&good[..good.len() - 1], "checksum"),
            (std::str::from_utf8(&edited).unwrap(), "altered"),
            ("v2.00.00", "unknown format"),
        ] {
            let err = Cursor::decode(text, 2).unwrap_err().to_string();
            assert!(err.contains(why), "{text:?}: {err}");
        }
        assert!(
            Cursor::decode(&good, 3)
                .unwrap_err()
                .to_string()
                .contains("number")
        );
    }
}
