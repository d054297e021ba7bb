//! Extraction results as they arrive: one NDJSON line, or one JSON body.

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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Line<'a> {
    #[serde(borrow)]
    extraction: Option<&'a RawValue>,
    #[serde(default)]
    file_name: Option<String>,
    #[serde(default, rename = "createdAt")]
    created_at: Option<String>,
}

/// Parses one NDJSON line `{"extraction": {...}, "file_name"?, "createdAt"?}`. Blank lines
/// give `Ok(None)`. Nesting is limited like every JSON body's (`nesting::MAX_NESTING`). `now` is the creation time when the line has none.
pub fn parse_ndjson_line(line: &str, now: i64) -> Result<Option<NewResult>, String> {
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
        Some(s) => parse_instant(&s, DayEnd::Start).map_err(|m| format!("createdAt: {m}"))?,
        None => now,
    };
    Ok(Some(NewResult { file_name: parsed.file_name, created_at, extraction: text.to_string() }))
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
}
