//! [`Cursor`]: an opaque, validated keyset-pagination cursor.

use std::fmt;

use crate::error::Error;

/// The position after the last row of a page, as the values of the ordering columns: a
/// typed key such as `(SystemTime, i64)` for `ORDER BY created_at DESC, id DESC`
/// ([`from_key`](Cursor::from_key), [`key`](Cursor::key)), or plain `i64`s
/// ([`new`](Cursor::new), [`keys`](Cursor::keys)).
///
/// Keyset pagination (`WHERE (created_at, id) < ($1, $2) ORDER BY created_at DESC, id DESC
/// LIMIT n`) reads only the rows of the page through the index, at any depth; `OFFSET` reads
/// and throws away every row before the page (`cargo xtask bench --filter dbpool/page_deep`).
///
/// The encoded form is opaque to clients (`v1.` then hex, then a checksum): a truncated, edited
/// or garbled cursor is refused with [`Error::InvalidCursor`] instead of silently paging from a
/// wrong place. It is validated, not signed: do not put secrets in it.
///
/// ```
/// use std::time::{Duration, SystemTime, UNIX_EPOCH};
/// use veza_dbpool::Cursor;
///
/// let created_at = UNIX_EPOCH + Duration::from_micros(1_700_000_000_123_456);
/// let text = Cursor::from_key(&(created_at, 42_i64, "eu-west".to_owned())).encode();
/// // ... the client sends `text` back for the next page:
/// let (at, id, region): (SystemTime, i64, String) = Cursor::decode_key(&text)?;
/// assert_eq!((at, id, region.as_str()), (created_at, 42, "eu-west"));
/// // The wrong shape is an error, not a wrong page.
/// assert!(Cursor::decode_key::<(i64, i64)>(&text).is_err());
/// # Ok::<(), veza_dbpool::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    /// The key's values, each in its fixed or length-prefixed big-endian form.
    bytes: Vec<u8>,
}

const PREFIX: &str = "v1.";

impl Cursor {
    /// A cursor after a row whose ordering values are `keys`.
    pub fn new(keys: impl Into<Vec<i64>>) -> Cursor {
        let keys = keys.into();
        let mut bytes = Vec::with_capacity(keys.len() * 8);
        for k in &keys {
            KeyPart::write(k, &mut bytes);
        }
        Cursor { bytes }
    }

    /// A cursor after a row whose ordering values are `key`: one value or a tuple of up to
    /// four ([`KeyPart`]s: integers, `bool`, `String`, `SystemTime` to the microsecond, as
    /// PostgreSQL keeps it).
    pub fn from_key<K: Key>(key: &K) -> Cursor {
        let mut bytes = Vec::new();
        key.write(&mut bytes);
        Cursor { bytes }
    }

    /// The ordering values as `i64`s (for cursors made by [`new`](Cursor::new)).
    pub fn keys(&self) -> Vec<i64> {
        self.bytes
            .chunks_exact(8)
            .map(|c| i64::from_be_bytes(c.try_into().expect("8 bytes")))
            .collect()
    }

    /// The ordering values as the typed key `K`; an error if they do not have its shape.
    pub fn key<K: Key>(&self) -> Result<K, Error> {
        let mut input = self.bytes.as_slice();
        match K::read(&mut input) {
            Some(key) if input.is_empty() => Ok(key),
            _ => Err(Error::InvalidCursor(
                "the cursor does not hold this kind of key".to_owned(),
            )),
        }
    }

    /// The opaque text to hand to a client.
    pub fn encode(&self) -> String {
        let mut hex = String::with_capacity(self.bytes.len() * 2);
        for b in &self.bytes {
            hex.push_str(&format!("{b:02x}"));
        }
        format!("{PREFIX}{hex}.{:016x}", checksum(hex.as_bytes()))
    }

    /// Reads a cursor a client sent back, expecting `arity` `i64` values.
    pub fn decode(text: &str, arity: usize) -> Result<Cursor, Error> {
        let cursor = Cursor::decode_any(text)?;
        if cursor.bytes.len() != arity * 8 {
            return Err(Error::InvalidCursor("wrong number of values".to_owned()));
        }
        Ok(cursor)
    }

    /// Reads a cursor a client sent back as the typed key `K`.
    pub fn decode_key<K: Key>(text: &str) -> Result<K, Error> {
        Cursor::decode_any(text)?.key()
    }

    fn decode_any(text: &str) -> Result<Cursor, Error> {
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
        if hex.len() % 2 != 0 || hex.len() > MAX_HEX {
            return Err(bad("bad value"));
        }
        let bytes = hex
            .as_bytes()
            .chunks(2)
            .map(|c| {
                std::str::from_utf8(c)
                    .ok()
                    .and_then(|s| u8::from_str_radix(s, 16).ok())
                    .ok_or_else(|| bad("bad value"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Cursor { bytes })
    }
}

/// Cursors longer than this (hex digits: 4 KiB of key) are refused before decoding.
const MAX_HEX: usize = 8192;

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.encode())
    }
}

/// One ordering value a [`Cursor`] can hold.
pub trait KeyPart: Sized {
    /// Appends the value.
    fn write(&self, out: &mut Vec<u8>);
    /// Reads one value from the front of `input`, advancing it; `None` if it is not one.
    fn read(input: &mut &[u8]) -> Option<Self>;
}

fn take<'a>(input: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
    if input.len() < n {
        return None;
    }
    let (head, rest) = input.split_at(n);
    *input = rest;
    Some(head)
}

macro_rules! int_part {
    ($($t:ty),*) => {$(
        impl KeyPart for $t {
            fn write(&self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_be_bytes());
            }
            fn read(input: &mut &[u8]) -> Option<Self> {
                let bytes = take(input, std::mem::size_of::<$t>())?;
                Some(<$t>::from_be_bytes(bytes.try_into().ok()?))
            }
        }
    )*};
}

int_part!(i16, i32, i64, u32, u64);

impl KeyPart for bool {
    fn write(&self, out: &mut Vec<u8>) {
        out.push(u8::from(*self));
    }
    fn read(input: &mut &[u8]) -> Option<Self> {
        match take(input, 1)? {
            [0] => Some(false),
            [1] => Some(true),
            _ => None,
        }
    }
}

impl KeyPart for String {
    fn write(&self, out: &mut Vec<u8>) {
        let len = u32::try_from(self.len()).unwrap_or(u32::MAX);
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&self.as_bytes()[..len as usize]);
    }
    fn read(input: &mut &[u8]) -> Option<Self> {
        let len = <u32 as KeyPart>::read(input)?;
        let bytes = take(input, usize::try_from(len).ok()?)?;
        String::from_utf8(bytes.to_vec()).ok()
    }
}

/// Microseconds from the Unix epoch (PostgreSQL's precision), before it negative; times
/// beyond ±292,000 years saturate.
impl KeyPart for std::time::SystemTime {
    fn write(&self, out: &mut Vec<u8>) {
        let micros = match self.duration_since(std::time::UNIX_EPOCH) {
            Ok(after) => i64::try_from(after.as_micros()).unwrap_or(i64::MAX),
            Err(before) => i64::try_from(before.duration().as_micros()).map_or(i64::MIN, |m| -m),
        };
        KeyPart::write(&micros, out);
    }
    fn read(input: &mut &[u8]) -> Option<Self> {
        let micros = <i64 as KeyPart>::read(input)?;
        let magnitude = std::time::Duration::from_micros(micros.unsigned_abs());
        if micros >= 0 {
            std::time::UNIX_EPOCH.checked_add(magnitude)
        } else {
            std::time::UNIX_EPOCH.checked_sub(magnitude)
        }
    }
}

/// The typed key of a [`Cursor`]: one [`KeyPart`], or a tuple of two to four.
pub trait Key: Sized {
    /// Appends every value.
    fn write(&self, out: &mut Vec<u8>);
    /// Reads every value from the front of `input`.
    fn read(input: &mut &[u8]) -> Option<Self>;
}

impl<T: KeyPart> Key for T {
    fn write(&self, out: &mut Vec<u8>) {
        KeyPart::write(self, out);
    }
    fn read(input: &mut &[u8]) -> Option<Self> {
        <T as KeyPart>::read(input)
    }
}

macro_rules! tuple_key {
    ($($name:ident),+) => {
        impl<$($name: KeyPart),+> Key for ($($name,)+) {
            #[allow(non_snake_case, reason = "the type names double as bindings")]
            fn write(&self, out: &mut Vec<u8>) {
                let ($($name,)+) = self;
                $(KeyPart::write($name, out);)+
            }
            fn read(input: &mut &[u8]) -> Option<Self> {
                Some(($(<$name as KeyPart>::read(input)?,)+))
            }
        }
    };
}

tuple_key!(A, B);
tuple_key!(A, B, C);
tuple_key!(A, B, C, D);

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
        assert_eq!(c.keys(), [1_700_000_000_000_000, -5]);
        // The same text as the i64 form always had: 16 hex digits per value.
        assert_eq!(
            Cursor::new([1, -1]).encode().split('.').nth(1).unwrap(),
            "0000000000000001ffffffffffffffff"
        );
    }

    #[test]
    fn typed_keys_round_trip_and_refuse_the_wrong_shape() {
        use std::time::{Duration, SystemTime, UNIX_EPOCH};
        let before_epoch = UNIX_EPOCH - Duration::from_micros(1_500);
        for at in [
            UNIX_EPOCH + Duration::from_micros(1_700_000_000_123_456),
            before_epoch,
        ] {
            let key = (at, -7_i64, "ünïcode, with . and spaces".to_owned(), true);
            let text = Cursor::from_key(&key).encode();
            assert_eq!(
                Cursor::decode_key::<(SystemTime, i64, String, bool)>(&text).unwrap(),
                key
            );
        }
        let text = Cursor::from_key(&(3_i32, "a".to_owned())).encode();
        for err in [
            Cursor::decode_key::<(i32, String, i64)>(&text).unwrap_err(), // too few values
            Cursor::decode_key::<i32>(&text).unwrap_err(),                // left over
            Cursor::decode_key::<(i64, String)>(&text).unwrap_err(),      // wrong width
        ] {
            assert!(err.to_string().contains("kind of key"), "{err}");
        }
        // A string whose length runs past the end is refused, not read out of bounds.
        let mut c = Cursor::from_key(&"abc".to_owned());
        c.bytes[3] = 200;
        assert!(c.key::<String>().is_err());
        // Invalid UTF-8 and a bool that is neither 0 nor 1 too.
        let c = Cursor {
            bytes: vec![0, 0, 0, 1, 0xff],
        };
        assert!(c.key::<String>().is_err());
        assert!(Cursor { bytes: vec![2] }.key::<bool>().is_err());
        // A cursor too long to be ours is refused before decoding.
        let long = Cursor::from_key(&"x".repeat(10_000)).encode();
        assert!(Cursor::decode_key::<String>(&long).is_err());
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
