//! Extraction results as they arrive: one NDJSON line, or one JSON body.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;

use super::nesting::check_nesting;
use super::time::{parse_instant, DayEnd};

/// A result to store.
#[derive(Debug, Clone)]
pub struct NewResult {
    pub file_name: Option<String>,
    pub created_at: i64,
    /// The extraction's JSON text, an object, kept exactly as sent.
    pub extraction: String,
}

/// One parsed NDJSON line, borrowing from the line's text.
#[derive(Debug, Clone, PartialEq)]
pub struct ResultLine<'a> {
    pub file_name: Option<Cow<'a, str>>,
    pub created_at: i64,
    /// The extraction's JSON text, an object, exactly as sent: a slice of the line.
    pub extraction: &'a str,
}

impl ResultLine<'_> {
    pub fn to_owned_result(&self) -> NewResult {
        NewResult {
            file_name: self.file_name.as_ref().map(|s| s.to_string()),
            created_at: self.created_at,
            extraction: self.extraction.to_string(),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Line<'a> {
    #[serde(borrow)]
    extraction: Option<&'a RawValue>,
    #[serde(default, borrow)]
    file_name: Option<Cow<'a, str>>,
    #[serde(default, borrow, rename = "createdAt")]
    created_at: Option<Cow<'a, str>>,
}

/// Parses one NDJSON line `{"extraction": {...}, "file_name"?, "createdAt"?}`. Blank lines
/// give `Ok(None)`. Nesting is limited like every JSON body's (`nesting::MAX_NESTING`). `now` is the creation time when the line has none.
pub fn parse_ndjson_line(line: &str, now: i64) -> Result<Option<NewResult>, String> {
    Ok(parse_line(line, now)?.map(|r| r.to_owned_result()))
}

/// [`parse_ndjson_line`] without copying: the result borrows from `line`.
pub fn parse_line(line: &str, now: i64) -> Result<Option<ResultLine<'_>>, String> {
    let line = line.trim();
    if line.is_empty() {
        return Ok(None);
    }
    // serde skips an extraction without parsing it: without this, any depth would be stored
    check_nesting(line.as_bytes()).map_err(|e| e.to_string())?;
    let parsed: Line = serde_json::from_str(line).map_err(|e| {
        let e = e.to_string();
        if e.contains("unknown field") {
            format!("{e}; a line holds extraction, file_name and createdAt")
        } else {
            format!("not a JSON object: {e}")
        }
    })?;
    let Some(extraction) = parsed.extraction else {
        return Err("missing field `extraction`".into());
    };
    let text = extraction.get();
    if !text.starts_with('{') {
        return Err("extraction must be a JSON object".into());
    }
    let created_at = match parsed.created_at {
        Some(s) => parse_created_at(&s)?,
        None => now,
    };
    Ok(Some(ResultLine { file_name: parsed.file_name, created_at, extraction: text }))
}

/// `createdAt`: the common `YYYY-MM-DDTHH:MM:SS.sssZ` read directly, anything else by
/// [`parse_instant`] (which accepts the same text with the same result).
fn parse_created_at(s: &str) -> Result<i64, String> {
    fast_instant(s.as_bytes())
        .map_or_else(|| parse_instant(s, DayEnd::Start), Ok)
        .map_err(|m| format!("createdAt: {m}"))
}

/// Milliseconds since the epoch of exactly `YYYY-MM-DDTHH:MM:SS.sssZ` with a valid date and
/// time (no leap second), else `None`.
fn fast_instant(b: &[u8]) -> Option<i64> {
    if b.len() != 24 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    if b[19] != b'.' || b[23] != b'Z' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        b[r].iter().try_fold(0i64, |n, c| c.is_ascii_digit().then(|| n * 10 + i64::from(c - b'0')))
    };
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, s, ms) = (num(11..13)?, num(14..16)?, num(17..19)?, num(20..23)?);
    let leap = y % 4 == 0 && (y % 100 != 0 || y % 400 == 0);
    let days_in_month = match mo {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return None,
    };
    if d < 1 || d > days_in_month || h > 23 || mi > 59 || s > 59 {
        return None;
    }
    Some((days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + s) * 1000 + ms)
}

/// Days from 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines() {
        let r = parse_ndjson_line(
            r#"{"file_name":"a.pdf","createdAt":"2024-01-01T00:00:00.000Z","extraction":{"b":1.0,"a":[]}}"#,
            5,
        )
        .unwrap()
        .unwrap();
        assert_eq!(r.extraction, r#"{"b":1.0,"a":[]}"#);
        assert_eq!(r.created_at, 1_704_067_200_000);
        assert_eq!(r.file_name.as_deref(), Some("a.pdf"));
        assert!(parse_ndjson_line("  ", 5).unwrap().is_none());
        assert_eq!(parse_ndjson_line(r#"{"extraction":{}}"#, 5).unwrap().unwrap().created_at, 5);
        for bad in [
            "nope",
            r#"{"extraction":[1]}"#,
            r#"{"file_name":"x"}"#,
            r#"{"extraction":{},"createdAt":"never"}"#,
            r#"{"extraction":{},"created_at":"2024-01-01"}"#,
            r#"{"extraction":{},"file_name":3}"#,
        ] {
            assert!(parse_ndjson_line(bad, 0).is_err(), "{bad}");
        }
    }

    #[test]
    fn nesting_is_limited() {
        use crate::domain::nesting::MAX_NESTING;
        let line = |extraction_depth: usize| {
            let inner = format!("{}{}", "[".repeat(extraction_depth - 1), "]".repeat(extraction_depth - 1));
            format!(r#"{{"extraction":{{"a":{inner}}}}}"#)
        };
        // the line's own object counts: the extraction may nest MAX_NESTING - 1 deep
        assert!(parse_ndjson_line(&line(MAX_NESTING - 1), 0).unwrap().is_some());
        let err = parse_ndjson_line(&line(MAX_NESTING), 0).unwrap_err();
        assert!(err.contains(&format!("nested more than {MAX_NESTING} levels")), "{err}");
        let deep = format!(r#"{{"extraction":{{"a":{}}}}}"#, "[".repeat(100_000));
        assert!(parse_ndjson_line(&deep, 0).unwrap_err().contains("nested more than"));
    }

    #[test]
    fn the_fast_created_at_agrees_with_parse_instant() {
        let mut cases = vec![
            "2024-01-01T00:00:00.000Z".to_string(),
            "2024-02-29T23:59:59.999Z".into(),
            "2023-02-29T00:00:00.000Z".into(),
            "2024-13-01T00:00:00.000Z".into(),
            "2024-04-31T00:00:00.000Z".into(),
            "2024-01-01T24:00:00.000Z".into(),
            "2024-01-01T00:60:00.000Z".into(),
            "2024-01-01T00:00:60.000Z".into(),
            "0000-01-01T00:00:00.000Z".into(),
            "9999-12-31T23:59:59.999Z".into(),
            "1969-12-31T23:59:59.999Z".into(),
            "1900-02-29T00:00:00.000Z".into(),
            "2000-02-29T00:00:00.000Z".into(),
            "2024-01-01T00:00:00.000z".into(),
            "2024-01-01T00:00:00.00aZ".into(),
            "+024-01-01T00:00:00.000Z".into(),
        ];
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..20_000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let r = |n: u64, k: u32| (seed >> k) % n;
            cases.push(format!(
                "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
                r(10_000, 0),
                r(14, 14),
                r(33, 18),
                r(25, 24),
                r(61, 30),
                r(61, 36),
                r(1000, 42)
            ));
        }
        for c in &cases {
            let slow = parse_instant(c, DayEnd::Start).ok();
            assert_eq!(fast_instant(c.as_bytes()).or(slow), slow, "{c}");
            assert_eq!(parse_created_at(c).ok(), slow, "{c}");
        }
    }

    #[test]
    fn a_line_borrows_its_extraction_and_unescapes_its_file_name() {
        let line = r#"{"extraction":{"a":"\u00e9"},"file_name":"a\"b.pdf"}"#;
        let r = parse_line(line, 3).unwrap().unwrap();
        assert_eq!(r.extraction, r#"{"a":"\u00e9"}"#);
        assert_eq!(r.file_name.as_deref(), Some("a\"b.pdf"));
        assert_eq!(r.created_at, 3);
    }
}
