//! The general row path (formats.md): the same scan and the same rows as CSV, with the
//! columns chosen and ordered by `columns`, times in the export's zone, and one encoder per
//! format: CSV fields, a JSON object per line, or typed workbook cells.

use super::cells::{self, Cell};
use super::scan::{decode_string, Kind, Span};
use super::zone::{excel_date_serial, parse_rfc3339_ms, Zone};
use super::{write_timestamp, Cols, CsvPlan, RowScratch};
use crate::domain::export::{CsvOptions, ExportFormat};
use crate::domain::schema::FieldType;
use crate::jobs::json::{write_float, JsonValue};

/// Where a column's value comes from.
#[derive(Debug, Clone, Copy)]
enum Source {
    Id,
    FileName,
    CreatedAt,
    /// A schema column outside the expanded array: its slot in the scan.
    Slot(usize),
    /// A column of the expanded array: its place within an item.
    Item(usize),
}

/// One column of the file.
#[derive(Debug, Clone)]
struct Column {
    source: Source,
    ty: FieldType,
    /// Its header name (key or label style).
    shown: String,
    /// JSON Lines: `{"key":` for the first column, `,"key":` for the others.
    json_key: Vec<u8>,
}

/// The general path of a plan.
#[derive(Debug, Clone)]
pub(super) struct General {
    format: ExportFormat,
    columns: Vec<Column>,
    /// The zone the options named (CSV and JSON Lines rewrite times only when one is named).
    zone: Option<Zone>,
    /// Items per expanded row (0 without `expand_array`).
    item_width: usize,
}

impl General {
    /// `None` when the options ask for csv.md's CSV as it is; Err(message for the user)
    /// for an unknown or repeated column name.
    pub(super) fn new(
        options: &CsvOptions,
        cols: Cols,
        before_width: usize,
        item_width: usize,
    ) -> Result<Option<General>, String> {
        if options.format == ExportFormat::Csv && options.columns.is_none() && options.timezone.is_none() {
            return Ok(None);
        }
        let zone = match &options.timezone {
            Some(name) => Some(Zone::named(name).ok_or_else(|| format!("{name:?} is not an IANA time zone name"))?),
            None => None,
        };
        let source = |c: usize| match c {
            0 => Source::Id,
            1 => Source::FileName,
            2 => Source::CreatedAt,
            c if c - 3 < before_width => Source::Slot(c - 3),
            c if c - 3 - before_width < item_width => Source::Item(c - 3 - before_width),
            c => Source::Slot(c - 3 - item_width),
        };
        let chosen: Vec<usize> = match &options.columns {
            None => (0..cols.keys.len()).collect(),
            Some(names) => choose(&cols.keys, names)?,
        };
        let columns = chosen
            .iter()
            .enumerate()
            .map(|(i, &c)| {
                let mut json_key = vec![if i == 0 { b'{' } else { b',' }];
                json_key.extend_from_slice(serde_json::to_string(&cols.keys[c]).expect("a string").as_bytes());
                json_key.push(b':');
                Column { source: source(c), ty: cols.types[c], shown: cols.shown[c].clone(), json_key }
            })
            .collect();
        Ok(Some(General { format: options.format, columns, zone, item_width }))
    }

    pub(super) fn header(&self) -> Vec<String> {
        self.columns.iter().map(|c| c.shown.clone()).collect()
    }

    pub(super) fn width(&self) -> usize {
        self.columns.len()
    }

    pub(super) fn format(&self) -> ExportFormat {
        self.format
    }
}

/// The indexes of `names` among `keys`; Err names the fault and lists the names allowed.
fn choose(keys: &[String], names: &[String]) -> Result<Vec<usize>, String> {
    let allowed = || keys.join(", ");
    let mut chosen = Vec::with_capacity(names.len());
    for name in names {
        let Some(c) = keys.iter().position(|k| k == name) else {
            return Err(format!("columns: {name:?} is not a column of this export; the columns are: {}", allowed()));
        };
        if chosen.contains(&c) {
            return Err(format!("columns: {name:?} is named twice; name each column once, from: {}", allowed()));
        }
        chosen.push(c);
    }
    Ok(chosen)
}

/// One value of a row.
#[derive(Clone, Copy)]
enum Val<'a> {
    Id(&'a str),
    FileName(Option<&'a str>),
    CreatedAt(i64),
    Span(Span),
}

impl CsvPlan {
    /// The CSV header of the chosen columns; nothing for the other formats.
    pub(super) fn write_general_header(&self, g: &General, out: &mut Vec<u8>) {
        if g.format != ExportFormat::Csv {
            return;
        }
        for (i, c) in g.columns.iter().enumerate() {
            if i > 0 {
                out.push(self.delimiter);
            }
            self.write_text(&c.shown, self.formula_guard, out);
        }
        out.extend_from_slice(b"\r\n");
    }

    /// [`CsvPlan::write_row`] on the general path.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn write_general(
        &self,
        g: &General,
        id: &str,
        file_name: Option<&str>,
        created_at_ms: i64,
        extraction: &str,
        out: &mut Vec<u8>,
        scratch: &mut RowScratch,
    ) -> usize {
        let RowScratch { spans, text, compact, .. } = scratch;
        self.scan.scan(extraction, spans);
        let records = if g.item_width > 0 { spans.item_count.max(1) } else { 1 };
        for r in 0..records {
            for (i, c) in g.columns.iter().enumerate() {
                let v = match c.source {
                    Source::Id => Val::Id(id),
                    Source::FileName => Val::FileName(file_name),
                    Source::CreatedAt => Val::CreatedAt(created_at_ms),
                    Source::Slot(s) => Val::Span(spans.slots[s]),
                    Source::Item(_) if spans.item_count == 0 => Val::Span(Span::MISSING),
                    Source::Item(j) => Val::Span(spans.items[r * g.item_width + j]),
                };
                match g.format {
                    ExportFormat::Csv => {
                        if i > 0 {
                            out.push(self.delimiter);
                        }
                        self.csv_value(g, c, v, extraction, out, text, compact);
                    }
                    ExportFormat::Jsonl => {
                        out.extend_from_slice(&c.json_key);
                        json_value(g, c, v, extraction, out, text);
                    }
                    ExportFormat::Xlsx => cell_value(g, c, v, extraction, out, text),
                }
            }
            match g.format {
                ExportFormat::Csv => out.extend_from_slice(b"\r\n"),
                ExportFormat::Jsonl if g.columns.is_empty() => out.extend_from_slice(b"{}\n"),
                ExportFormat::Jsonl => out.extend_from_slice(b"}\n"),
                ExportFormat::Xlsx => cells::put(Cell::RowEnd, out),
            }
        }
        records
    }

    #[allow(clippy::too_many_arguments)]
    fn csv_value(
        &self,
        g: &General,
        c: &Column,
        v: Val,
        src: &str,
        out: &mut Vec<u8>,
        text: &mut String,
        compact: &mut super::compact::CompactScratch,
    ) {
        match v {
            Val::Id(id) => self.write_text(id, false, out),
            Val::FileName(name) => self.write_text(name.unwrap_or(""), self.formula_guard, out),
            Val::CreatedAt(ms) => match g.zone {
                Some(z) => z.write_instant(ms, out),
                None => write_timestamp(ms, out),
            },
            Val::Span(span) => {
                if let (Some(z), FieldType::Datetime, Some(s)) = (g.zone, c.ty, string_of(src, span, text)) {
                    if z.rewrite(s, out) {
                        return;
                    }
                }
                self.write_span(src, span, out, text, compact)
            }
        }
    }
}

/// The text of a string value (decoded into `text` when it has escapes).
fn string_of<'a>(src: &'a str, span: Span, text: &'a mut String) -> Option<&'a str> {
    let raw = &src[span.start..span.end];
    match span.kind {
        Kind::Str => Some(raw),
        Kind::StrEsc => {
            text.clear();
            decode_string(raw, text);
            Some(text.as_str())
        }
        _ => None,
    }
}

/// Writes a value as JSON: strings as strings, numbers as their text, nested values as
/// compact JSON, null for missing.
fn json_value(g: &General, c: &Column, v: Val, src: &str, out: &mut Vec<u8>, text: &mut String) {
    let quoted_instant = |ms: i64, out: &mut Vec<u8>| {
        out.push(b'"');
        g.zone.unwrap_or(Zone::UTC).write_instant(ms, out);
        out.push(b'"');
    };
    match v {
        Val::Id(s) | Val::FileName(Some(s)) => json_string(s, out),
        Val::FileName(None) => out.extend_from_slice(b"null"),
        Val::CreatedAt(ms) => quoted_instant(ms, out),
        Val::Span(span) => {
            let raw = &src[span.start..span.end];
            match span.kind {
                Kind::Missing | Kind::Null => out.extend_from_slice(b"null"),
                Kind::True => out.extend_from_slice(b"true"),
                Kind::False => out.extend_from_slice(b"false"),
                // NaN and the infinities have no JSON text
                Kind::Float if raw.ends_with(|c: char| c.is_ascii_alphabetic()) => out.extend_from_slice(b"null"),
                Kind::Int | Kind::Float => out.extend_from_slice(raw.as_bytes()),
                Kind::Str | Kind::StrEsc => {
                    if g.zone.is_some() && c.ty == FieldType::Datetime {
                        if let Some(ms) = string_of(src, span, text).and_then(parse_rfc3339_ms) {
                            return quoted_instant(ms, out);
                        }
                    }
                    if span.kind == Kind::Str {
                        // checked by the scan: no control characters, no escapes
                        out.push(b'"');
                        out.extend_from_slice(raw.as_bytes());
                        out.push(b'"');
                    } else {
                        text.clear();
                        decode_string(raw, text);
                        json_string(text, out);
                    }
                }
                Kind::Compound => write_compact_json(raw, out, text),
            }
        }
    }
}

/// A JSON string, escaped as JSON requires and no more (serde_json's escaping: `"`, `\`
/// and control characters; other text as it is).
fn json_string(s: &str, out: &mut Vec<u8>) {
    serde_json::to_writer(&mut *out, s).expect("writing to a Vec cannot fail");
}

/// Compact, strict JSON of a checked array or object: white space between tokens dropped in
/// one pass over the stored text (numbers keep their text; a string with escapes is written
/// again with the escapes JSON requires and no more). A value with `NaN` or an infinity goes
/// through the parsed value instead, those written `null` (JSON has no such numbers).
fn write_compact_json(raw: &str, out: &mut Vec<u8>, text: &mut String) {
    let start = out.len();
    if compact_copy(raw, out, text) {
        return;
    }
    out.truncate(start);
    match JsonValue::parse(raw) {
        Ok(v) => write_strict(&v, out, text),
        Err(_) => debug_assert!(false, "the scan checked this value"),
    }
}

/// Copies `raw` without the white space between tokens; false (stopping midway) at a `NaN`
/// or `Infinity` token.
fn compact_copy(raw: &str, out: &mut Vec<u8>, text: &mut String) -> bool {
    let b = raw.as_bytes();
    let mut run = 0;
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'"' => {
                // the closing quote: the first one no backslash escapes
                let mut j = i + 1;
                let mut escaped = false;
                while let Some(k) = memchr::memchr2(b'"', b'\\', &b[j..]) {
                    if b[j + k] == b'"' {
                        j += k;
                        break;
                    }
                    escaped = true;
                    j += k + 2;
                }
                if escaped {
                    out.extend_from_slice(&b[run..i]);
                    text.clear();
                    decode_string(&raw[i + 1..j], text);
                    json_string(text, out);
                    run = j + 1;
                }
                i = j + 1;
            }
            b' ' | b'\t' | b'\n' | b'\r' => {
                out.extend_from_slice(&b[run..i]);
                i += 1;
                run = i;
            }
            b'N' | b'I' => return false,
            _ => i += 1,
        }
    }
    out.extend_from_slice(&b[run.min(b.len())..]);
    true
}

/// Strict compact JSON of a parsed value.
fn write_strict(v: &JsonValue, out: &mut Vec<u8>, text: &mut String) {
    match v {
        JsonValue::Null => out.extend_from_slice(b"null"),
        JsonValue::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        JsonValue::Int(t) => out.extend_from_slice(t.as_bytes()),
        JsonValue::Float(f) if !f.is_finite() => out.extend_from_slice(b"null"),
        JsonValue::Float(f) => {
            text.clear();
            write_float(*f, text);
            out.extend_from_slice(text.as_bytes());
        }
        JsonValue::Str(s) => json_string(s, out),
        JsonValue::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_strict(item, out, text);
            }
            out.push(b']');
        }
        JsonValue::Object(entries) => {
            out.push(b'{');
            for (i, (k, item)) in entries.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                json_string(k, out);
                out.push(b':');
                write_strict(item, out, text);
            }
            out.push(b'}');
        }
    }
}

/// Integers beyond this are text in a workbook (a double holds every integer up to 2^53).
const MAX_EXACT_INT: f64 = 9_007_199_254_740_992.0;

/// Writes a value as a typed workbook cell (formats.md, "xlsx").
fn cell_value(g: &General, c: &Column, v: Val, src: &str, out: &mut Vec<u8>, text: &mut String) {
    let zone = g.zone.unwrap_or(Zone::UTC);
    let cell = match v {
        Val::Id(s) | Val::FileName(Some(s)) => Cell::Text(s),
        Val::FileName(None) => Cell::Empty,
        Val::CreatedAt(ms) => match zone.excel_serial(ms) {
            Some(n) => Cell::DateTime(n),
            None => {
                let mut t = Vec::new();
                zone.write_instant(ms, &mut t);
                return cells::put_text(&t, out);
            }
        },
        Val::Span(span) => {
            let raw = &src[span.start..span.end];
            match span.kind {
                Kind::Missing | Kind::Null => Cell::Empty,
                Kind::True => Cell::Bool(true),
                Kind::False => Cell::Bool(false),
                Kind::Int | Kind::Float => match raw.parse::<f64>() {
                    Ok(n) if n.is_finite() && (span.kind == Kind::Float || n.abs() <= MAX_EXACT_INT) => Cell::Number(n),
                    _ => Cell::Text(raw),
                },
                Kind::Str | Kind::StrEsc => {
                    let s = string_of(src, span, text).expect("a string");
                    let typed = match c.ty {
                        FieldType::Datetime => {
                            parse_rfc3339_ms(s).and_then(|ms| zone.excel_serial(ms)).map(Cell::DateTime)
                        }
                        FieldType::Date => excel_date_serial(s).map(Cell::Date),
                        _ => None,
                    };
                    typed.unwrap_or(Cell::Text(s))
                }
                Kind::Compound => {
                    let mut json = Vec::with_capacity(raw.len());
                    write_compact_json(raw, &mut json, text);
                    return cells::put_text(&json, out);
                }
            }
        }
    };
    cells::put(cell, out);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compact_json_drops_white_space_outside_strings_only() {
        let mut out = Vec::new();
        write_compact_json("[ {\"a b\" : 1 ,\n \"c\":[ ]} ]", &mut out, &mut String::new());
        assert_eq!(String::from_utf8(out).unwrap(), r#"[{"a b":1,"c":[]}]"#);
        let mut out = Vec::new();
        write_compact_json(r#"{"q": "say \"hi\"\u00e9" }"#, &mut out, &mut String::new());
        assert_eq!(String::from_utf8(out).unwrap(), r#"{"q":"say \"hi\"é"}"#);
        let mut out = b"x".to_vec();
        write_compact_json("[1, NaN, {\"a\": -Infinity, \"b\": 1e3}]", &mut out, &mut String::new());
        assert_eq!(String::from_utf8(out).unwrap(), r#"x[1,null,{"a":null,"b":1000.0}]"#);
        let mut out = Vec::new();
        let raw = r#"[ "a\\", "Cable 3\" x", "\u00fc\/\n", "Nice", {"k\u0041": "\ud83d\ude00"} ]"#;
        write_compact_json(raw, &mut out, &mut String::new());
        assert_eq!(String::from_utf8(out).unwrap(), r#"["a\\","Cable 3\" x","ü/\n","Nice",{"kA":"😀"}]"#);
    }

    #[test]
    fn unknown_and_repeated_columns_list_the_names_allowed() {
        let keys: Vec<String> = ["id", "file_name", "createdAt", "total"].map(String::from).to_vec();
        assert_eq!(choose(&keys, &["total".into(), "id".into()]), Ok(vec![3, 0]));
        assert_eq!(
            choose(&keys, &["totl".into()]).unwrap_err(),
            r#"columns: "totl" is not a column of this export; the columns are: id, file_name, createdAt, total"#
        );
        assert_eq!(
            choose(&keys, &["id".into(), "id".into()]).unwrap_err(),
            r#"columns: "id" is named twice; name each column once, from: id, file_name, createdAt, total"#
        );
    }
}
