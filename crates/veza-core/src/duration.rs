//! Durations as people write them in configuration: `"250ms"`, `"30s"`, `"5m"`, `"1h"`.
//!
//! Every Veza `Config` reads and writes its durations this way behind its `serde` feature
//! (`#[serde(with = "veza_core::duration::human")]`), so one file format serves every crate.
//!
//! ```
//! use std::time::Duration;
//! use veza_core::duration;
//!
//! assert_eq!(duration::parse("250ms").unwrap(), Duration::from_millis(250));
//! assert_eq!(duration::parse("5m").unwrap(), Duration::from_secs(300));
//! assert_eq!(duration::format(Duration::from_secs(30)), "30s");
//! assert!(duration::parse("30").unwrap_err().to_string().contains("unit"));
//! ```

use std::fmt;
use std::time::Duration;

/// The longest span [`after`] adds: thirty years, what "no limit" comes to in practice.
pub const FAR: Duration = Duration::from_secs(86_400 * 365 * 30);

/// `t + d` with `d` capped at [`FAR`]: a timeout of `Duration::MAX` (a natural "no limit")
/// is a deadline thirty years away, not the panic `Instant + Duration` gives on overflow.
///
/// ```
/// use std::time::{Duration, Instant};
/// let now = Instant::now();
/// assert_eq!(veza_core::duration::after(now, Duration::from_secs(5)), now + Duration::from_secs(5));
/// assert_eq!(veza_core::duration::after(now, Duration::MAX), now + veza_core::duration::FAR);
/// ```
pub fn after(t: std::time::Instant, d: Duration) -> std::time::Instant {
    t.checked_add(d.min(FAR)).unwrap_or(t)
}

/// Why a duration string was refused; its message quotes the input and the accepted form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseDurationError(String);

impl fmt::Display for ParseDurationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ParseDurationError {}

/// Parses `"<integer><unit>"`, unit `ms`, `s`, `m` or `h` (spaces around are allowed).
pub fn parse(text: &str) -> Result<Duration, ParseDurationError> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: u64 = number.parse().map_err(|_| {
        ParseDurationError(format!(
            "`{text}` is not a duration like \"30s\" or \"250ms\""
        ))
    })?;
    let secs = |mult: u64| {
        n.checked_mul(mult)
            .map(Duration::from_secs)
            .ok_or_else(|| ParseDurationError(format!("`{text}` is too long")))
    };
    match unit.trim() {
        "ms" => Ok(Duration::from_millis(n)),
        "s" => secs(1),
        "m" => secs(60),
        "h" => secs(3600),
        "" => Err(ParseDurationError(format!(
            "`{text}` has no unit (ms, s, m, h): write \"{text}s\" or \"{text}ms\""
        ))),
        other => Err(ParseDurationError(format!(
            "unknown duration unit `{other}` in `{text}` (ms, s, m, h)"
        ))),
    }
}

/// Writes `d` in whole seconds when it has no fraction (`"30s"`), else in milliseconds
/// (`"250ms"`; below a millisecond is dropped). [`parse`] reads it back.
pub fn format(d: Duration) -> String {
    if d.subsec_nanos() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

/// `serde` support: `#[serde(with = "veza_core::duration::human")]` on a `Duration` field,
/// `#[serde(with = "veza_core::duration::human::option")]` on an `Option<Duration>`.
#[cfg(feature = "serde")]
#[cfg_attr(docsrs, doc(cfg(feature = "serde")))]
pub mod human {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer, de::Error as _};

    /// Writes the duration as [`format`](super::format) does.
    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::format(*d))
    }

    /// Reads a duration as [`parse`](super::parse) does.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        super::parse(&String::deserialize(d)?).map_err(D::Error::custom)
    }

    /// The same for `Option<Duration>`: `null` (or an absent field with `#[serde(default)]`)
    /// is `None`.
    pub mod option {
        use super::*;

        /// `None` as `null`, a duration as [`format`](crate::duration::format) does.
        pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
            match d {
                Some(d) => s.serialize_some(&crate::duration::format(*d)),
                None => s.serialize_none(),
            }
        }

        /// `null` as `None`, a string as [`parse`](crate::duration::parse) does.
        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
            match Option::<String>::deserialize(d)? {
                Some(text) => crate::duration::parse(&text)
                    .map(Some)
                    .map_err(D::Error::custom),
                None => Ok(None),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_unit_parses_and_formats_back() {
        for (text, d) in [
            ("0s", Duration::ZERO),
            ("250ms", Duration::from_millis(250)),
            (" 30s ", Duration::from_secs(30)),
            ("5m", Duration::from_secs(300)),
            ("2h", Duration::from_secs(7200)),
        ] {
            assert_eq!(parse(text).unwrap(), d, "{text}");
            assert_eq!(parse(&format(d)).unwrap(), d);
        }
        assert_eq!(format(Duration::from_millis(1500)), "1500ms");
    }

    #[test]
    fn bad_durations_say_what_is_wrong() {
        for (text, needle) in [
            ("30", "no unit"),
            ("30 days", "unknown duration unit `days`"),
            ("s", "not a duration"),
            ("-5s", "not a duration"),
            ("1.5s", "unknown duration unit `.5s`"),
            ("99999999999999999999s", "not a duration"),
            ("18446744073709551615h", "too long"),
        ] {
            let err = parse(text).unwrap_err().to_string();
            assert!(err.contains(needle), "{text}: {err}");
        }
    }

    #[cfg(feature = "serde")]
    #[test]
    fn serde_reads_and_writes_human_strings() {
        #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
        struct C {
            #[serde(with = "human")]
            timeout: Duration,
            #[serde(with = "human::option", default)]
            idle: Option<Duration>,
        }
        let c: C = serde_json::from_str(r#"{"timeout":"250ms"}"#).unwrap();
        assert_eq!(
            c,
            C {
                timeout: Duration::from_millis(250),
                idle: None
            }
        );
        let back = serde_json::to_string(&C {
            timeout: Duration::from_secs(30),
            idle: Some(Duration::from_secs(60)),
        })
        .unwrap();
        assert_eq!(back, r#"{"timeout":"30s","idle":"60s"}"#);
        let err = serde_json::from_str::<C>(r#"{"timeout":"30"}"#).unwrap_err();
        assert!(err.to_string().contains("no unit"), "{err}");
    }
}
