//! Input hygiene: email addresses in one canonical form with a real syntax check, text fields
//! free of what PostgreSQL or a terminal cannot hold, and JSON bodies only as JSON.

use http::HeaderMap;
use http::header::CONTENT_TYPE;

use crate::error::ApiError;

/// An email address in canonical form: trimmed and lower-cased (addresses are unique whatever
/// their case: `Case@X.com` and `case@x.com` are one account), checked against the syntax of
/// a deliverable address:
/// - `local@domain`, at most 254 bytes, ASCII (internationalised addresses are not accepted);
/// - the local part: 1 to 64 of the characters RFC 5322 allows unquoted (`atext`), dots only
///   between them (no quoted local parts);
/// - the domain: at least two labels of letters, digits and hyphens (1 to 63 bytes, no hyphen
///   at either end), and a top-level label that is not all digits (so `a@b` and `a@1.2.3.4`
///   are refused).
pub fn email(raw: &str) -> Result<String, ApiError> {
    let bad = || ApiError::new(400, "email must be an address like name@example.com");
    let email = raw.trim().to_ascii_lowercase();
    if email.len() > 254 || !email.is_ascii() {
        return Err(bad());
    }
    let (local, domain) = email.split_once('@').ok_or_else(bad)?;
    if !local_part_ok(local) || !domain_ok(domain) {
        return Err(bad());
    }
    Ok(email)
}

fn local_part_ok(local: &str) -> bool {
    const ATEXT: &[u8] = b"!#$%&'*+/=?^_`{|}~-";
    (1..=64).contains(&local.len())
        && local.split('.').all(|atom| {
            !atom.is_empty()
                && atom
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || ATEXT.contains(&b))
        })
}

fn domain_ok(domain: &str) -> bool {
    let labels: Vec<&str> = domain.split('.').collect();
    labels.len() >= 2
        && domain.len() <= 253
        && labels.iter().all(|l| {
            (1..=63).contains(&l.len())
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
        && labels
            .last()
            .is_some_and(|tld| !tld.bytes().all(|b| b.is_ascii_digit()))
}

/// A text field: `what` must be 1 to `max` bytes, not blank, and hold no control characters
/// (PostgreSQL cannot store NUL; the others only confuse whoever reads the value).
pub fn text(what: &str, value: &str, max: usize) -> Result<(), ApiError> {
    if value.trim().is_empty() || value.len() > max {
        return Err(ApiError::new(
            400,
            format!("{what} must be 1 to {max} bytes"),
        ));
    }
    if value
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        return Err(ApiError::new(
            400,
            format!("{what} must not hold control characters"),
        ));
    }
    Ok(())
}

/// A JSON body's `Content-Type`: `application/json` or any `application/*+json` (with
/// parameters), or none at all (taken as JSON); anything else is 415.
pub fn json_body(headers: &HeaderMap) -> Result<(), ApiError> {
    media_type(headers, &["application/json"], true)
}

/// An import body's `Content-Type`: one JSON object per line (`application/x-ndjson`,
/// `application/jsonl`, `application/json`), or none.
pub fn ndjson_body(headers: &HeaderMap) -> Result<(), ApiError> {
    media_type(
        headers,
        &[
            "application/x-ndjson",
            "application/jsonl",
            "application/json",
        ],
        false,
    )
}

fn media_type(headers: &HeaderMap, accepted: &[&str], suffix_json: bool) -> Result<(), ApiError> {
    let Some(value) = headers.get(CONTENT_TYPE) else {
        return Ok(());
    };
    let essence = value
        .to_str()
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let ok = accepted.contains(&essence.as_str())
        || (suffix_json && essence.starts_with("application/") && essence.ends_with("+json"));
    if ok {
        Ok(())
    } else {
        Err(ApiError::new(
            415,
            format!("content-type must be {}", accepted.join(" or ")),
        )
        .closing())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_canonical_and_checked() {
        assert_eq!(email("  Case@X.com ").unwrap(), "case@x.com");
        assert_eq!(
            email("first.last+tag@mail.example.org").unwrap(),
            "first.last+tag@mail.example.org"
        );
        for bad in [
            "@@@",
            "a@b",
            "a@1.2.3.4",
            "",
            "@example.com",
            "a@",
            "a..b@example.com",
            ".a@example.com",
            "a@-example.com",
            "a@example..com",
            "a b@example.com",
            "a@b@example.com",
            "\"quoted\"@example.com",
            "élodie@example.com",
        ] {
            assert!(email(bad).is_err(), "{bad:?} accepted");
        }
        let long_local = format!("{}@example.com", "a".repeat(65));
        assert!(email(&long_local).is_err());
    }

    #[test]
    fn text_refuses_nul_and_blank() {
        assert!(text("name", "Ada", 200).is_ok());
        assert!(text("name", "a\0b", 200).is_err());
        assert!(text("name", "   ", 200).is_err());
        assert!(text("body", "line\nline", 200).is_ok());
        assert!(text("name", &"x".repeat(201), 200).is_err());
    }

    #[test]
    fn content_types() {
        let h = |v: &str| {
            let mut m = HeaderMap::new();
            m.insert(CONTENT_TYPE, v.parse().unwrap());
            m
        };
        assert!(json_body(&HeaderMap::new()).is_ok());
        assert!(json_body(&h("application/json; charset=utf-8")).is_ok());
        assert!(json_body(&h("Application/JSON")).is_ok());
        assert!(json_body(&h("application/merge-patch+json")).is_ok());
        assert_eq!(json_body(&h("text/plain")).unwrap_err().status, 415);
        assert_eq!(
            json_body(&h("application/x-www-form-urlencoded"))
                .unwrap_err()
                .status,
            415
        );
        assert!(ndjson_body(&h("application/x-ndjson")).is_ok());
        assert_eq!(ndjson_body(&h("text/csv")).unwrap_err().status, 415);
    }
}
