//! The pure CSV formatter of an export (spec/csv.md): columns from the schema, values from
//! each result's extraction, quoting, the formula guard and `expand_array`. No files, no
//! database: records are appended to a byte buffer.

use super::json::{object_get, write_float, JsonValue};
use crate::domain::export::{check_expand_array, CsvOptions, HeaderStyle, DELIMITERS};
use crate::domain::schema::{FieldDef, FieldType, SchemaDef};
use crate::domain::time::format_ms;

/// One extraction result, as the export reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResultRow {
    pub id: String,
    pub file_name: Option<String>,
    pub created_at_ms: i64,
    /// The raw JSON text of the extraction (an object).
    pub extraction: String,
}

/// A schema field's column(s), outside the expanded array.
#[derive(Debug, Clone)]
enum Node {
    /// One column holding the value of `key` (a scalar, or compact JSON).
    Value(String),
    /// An object field: its sub-fields' columns (`width` of them in all).
    Object { key: String, children: Vec<Node>, width: usize },
}

/// The columns of the expanded array.
#[derive(Debug, Clone)]
enum Expanded {
    /// An array of objects: the columns of the items' sub-fields.
    Objects { children: Vec<Node>, width: usize },
    /// An array of scalars: one column holding the element.
    Scalars,
}

impl Expanded {
    fn width(&self) -> usize {
        match self {
            Expanded::Objects { width, .. } => *width,
            Expanded::Scalars => 1,
        }
    }
}

/// The layout of an export's CSV, computed once from the schema and the options.
#[derive(Debug, Clone)]
pub struct CsvPlan {
    header: Vec<String>,
    /// Schema columns before the expanded array (all of them when nothing is expanded).
    before: Vec<Node>,
    /// The expanded array's key and columns.
    expand: Option<(String, Expanded)>,
    /// Schema columns after the expanded array.
    after: Vec<Node>,
    delimiter: u8,
    formula_guard: bool,
    /// The bytes that make a field quoted: the delimiter, `"`, CR, LF.
    quote: [bool; 256],
}

impl CsvPlan {
    /// Err(message for the user) when `expand_array` is not a top-level array field of the
    /// schema, or the delimiter is not one of `,` `;` tab `|`.
    pub fn new(schema: &SchemaDef, expand_array: Option<&str>, options: &CsvOptions) -> Result<CsvPlan, String> {
        if !DELIMITERS.contains(&options.delimiter) {
            return Err(format!("delimiter {:?} is not supported; use one of ',', ';', '\\t', '|'", options.delimiter));
        }
        if let Some(key) = expand_array {
            check_expand_array(schema, key)?;
        }
        let style = options.header;
        let mut header: Vec<String> = vec!["id".into(), "file_name".into(), "createdAt".into()];
        let mut before = Vec::new();
        let mut after = Vec::new();
        let mut expand = None;
        for f in &schema.fields {
            let name = column_name(None, f, style);
            if expand.is_none() && expand_array == Some(f.key.as_str()) {
                let cols = match &f.fields {
                    Some(sub) => {
                        let (children, width) = build_nodes(sub, Some(&name), style, &mut header);
                        Expanded::Objects { children, width }
                    }
                    None => {
                        header.push(name);
                        Expanded::Scalars
                    }
                };
                expand = Some((f.key.clone(), cols));
            } else {
                let target = if expand.is_some() { &mut after } else { &mut before };
                target.push(build_node(f, name, style, &mut header).0);
            }
        }
        let delimiter = options.delimiter_byte();
        let mut quote = [false; 256];
        for b in [delimiter, b'"', b'\r', b'\n'] {
            quote[b as usize] = true;
        }
        Ok(CsvPlan { header, before, expand, after, delimiter, formula_guard: options.formula_guard, quote })
    }

    /// The column names, in order (key or label style, as the options said).
    pub fn header(&self) -> Vec<String> {
        self.header.clone()
    }

    /// How many fields every record has.
    pub fn column_count(&self) -> usize {
        self.header.len()
    }

    /// Appends the header record, `\r\n` included (no byte-order mark: the caller writes it).
    /// Names are guarded like text values: a label can start like a formula.
    pub fn write_header(&self, out: &mut Vec<u8>) {
        for (i, name) in self.header.iter().enumerate() {
            if i > 0 {
                out.push(self.delimiter);
            }
            self.write_text(name, self.formula_guard, out);
        }
        out.extend_from_slice(b"\r\n");
    }

    /// Appends the record(s) of one result to `out` and returns how many records it wrote
    /// (always at least 1). An extraction that is not valid JSON, or not an object, is read
    /// as an empty object: all schema columns empty.
    pub fn write_result(&self, row: &ResultRow, out: &mut Vec<u8>) -> usize {
        let parsed = JsonValue::parse(&row.extraction).ok();
        let root: &[(String, JsonValue)] = match &parsed {
            Some(JsonValue::Object(entries)) => entries,
            _ => &[],
        };
        let d = self.delimiter;
        let mut scratch = String::new();

        let start = out.len();
        self.write_text(&row.id, false, out);
        out.push(d);
        if let Some(name) = &row.file_name {
            self.write_text(name, self.formula_guard, out);
        }
        out.push(d);
        write_timestamp(row.created_at_ms, out);
        self.write_nodes(&self.before, root, out, &mut scratch);

        let Some((key, cols)) = &self.expand else {
            out.extend_from_slice(b"\r\n");
            return 1;
        };
        let items: &[JsonValue] = match object_get(root, key) {
            Some(JsonValue::Array(items)) => items,
            _ => &[],
        };
        if items.is_empty() {
            push_n(out, d, cols.width());
            self.write_nodes(&self.after, root, out, &mut scratch);
            out.extend_from_slice(b"\r\n");
            return 1;
        }
        let head_end = out.len();
        let mut tail = Vec::new();
        self.write_nodes(&self.after, root, &mut tail, &mut scratch);
        tail.extend_from_slice(b"\r\n");
        for (i, item) in items.iter().enumerate() {
            if i > 0 {
                out.extend_from_within(start..head_end);
            }
            match cols {
                Expanded::Objects { children, width } => match item {
                    JsonValue::Object(entries) => self.write_nodes(children, entries, out, &mut scratch),
                    _ => push_n(out, d, *width),
                },
                Expanded::Scalars => {
                    out.push(d);
                    self.write_value(Some(item), out, &mut scratch);
                }
            }
            out.extend_from_slice(&tail);
        }
        items.len()
    }

    /// Writes the columns of `nodes` for the object `obj`, each preceded by the delimiter.
    fn write_nodes(&self, nodes: &[Node], obj: &[(String, JsonValue)], out: &mut Vec<u8>, scratch: &mut String) {
        for node in nodes {
            match node {
                Node::Value(key) => {
                    out.push(self.delimiter);
                    self.write_value(object_get(obj, key), out, scratch);
                }
                Node::Object { key, children, width } => match object_get(obj, key) {
                    Some(JsonValue::Object(entries)) => self.write_nodes(children, entries, out, scratch),
                    _ => push_n(out, self.delimiter, *width),
                },
            }
        }
    }

    /// Writes one value by its JSON type: nothing for missing/null, the string (guarded),
    /// the number's text, `true`/`false`, or the compact JSON of an array/object.
    fn write_value(&self, value: Option<&JsonValue>, out: &mut Vec<u8>, scratch: &mut String) {
        match value {
            None | Some(JsonValue::Null) => {}
            Some(JsonValue::Bool(true)) => out.extend_from_slice(b"true"),
            Some(JsonValue::Bool(false)) => out.extend_from_slice(b"false"),
            Some(JsonValue::Int(text)) => self.write_text(text, false, out),
            Some(JsonValue::Float(f)) => {
                scratch.clear();
                write_float(*f, scratch);
                self.write_text(scratch, false, out);
            }
            Some(JsonValue::Str(s)) => self.write_text(s, self.formula_guard, out),
            Some(v @ (JsonValue::Array(_) | JsonValue::Object(_))) => {
                scratch.clear();
                v.write_compact(scratch);
                self.write_text(scratch, false, out);
            }
        }
    }

    /// Writes one field: a leading `'` when `guard` and the text starts like a formula, then
    /// quoted (inner `"` doubled) when it contains the delimiter, `"`, CR or LF.
    fn write_text(&self, text: &str, guard: bool, out: &mut Vec<u8>) {
        let bytes = text.as_bytes();
        let guarded = guard && matches!(bytes.first(), Some(b'=' | b'+' | b'-' | b'@' | b'\t' | b'\r'));
        let needs_quotes = bytes.iter().any(|&b| self.quote[b as usize]);
        if !needs_quotes {
            if guarded {
                out.push(b'\'');
            }
            out.extend_from_slice(bytes);
            return;
        }
        out.push(b'"');
        if guarded {
            out.push(b'\'');
        }
        let mut start = 0;
        for (i, &b) in bytes.iter().enumerate() {
            if b == b'"' {
                out.extend_from_slice(&bytes[start..=i]);
                out.push(b'"');
                start = i + 1;
            }
        }
        out.extend_from_slice(&bytes[start..]);
        out.push(b'"');
    }
}

/// Writes `format_ms(ms)` (`2024-01-31T12:00:00.123Z`), without its formatting machinery for
/// the years 0000-9999.
fn write_timestamp(ms: i64, out: &mut Vec<u8>) {
    let secs = ms.div_euclid(1000);
    let milli = ms.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    // civil_from_days (H. Hinnant), proleptic Gregorian calendar
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    if !(0..=9999).contains(&year) {
        out.extend_from_slice(format_ms(ms).as_bytes());
        return;
    }
    let mut buf = *b"0000-00-00T00:00:00.000Z";
    let mut put = |at: usize, width: usize, mut v: i64| {
        for i in (at..at + width).rev() {
            buf[i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
    };
    put(0, 4, year);
    put(5, 2, month);
    put(8, 2, day);
    put(11, 2, sod / 3600);
    put(14, 2, sod / 60 % 60);
    put(17, 2, sod % 60);
    put(20, 3, milli);
    out.extend_from_slice(&buf);
}

fn push_n(out: &mut Vec<u8>, byte: u8, n: usize) {
    out.resize(out.len() + n, byte);
}

/// The header name of field `f` under the parent column name `parent`.
fn column_name(parent: Option<&str>, f: &FieldDef, style: HeaderStyle) -> String {
    let (own, sep) = match style {
        HeaderStyle::Key => (f.key.as_str(), "."),
        HeaderStyle::Label => (f.label.as_deref().filter(|l| !l.is_empty()).unwrap_or(f.key.as_str()), " / "),
    };
    match parent {
        Some(p) => format!("{p}{sep}{own}"),
        None => own.to_string(),
    }
}

/// The node of one field named `name`, pushing its column names; returns it and its width.
fn build_node(f: &FieldDef, name: String, style: HeaderStyle, header: &mut Vec<String>) -> (Node, usize) {
    match (&f.ty, &f.fields) {
        (FieldType::Object, Some(sub)) => {
            let (children, width) = build_nodes(sub, Some(&name), style, header);
            (Node::Object { key: f.key.clone(), children, width }, width)
        }
        _ => {
            header.push(name);
            (Node::Value(f.key.clone()), 1)
        }
    }
}

fn build_nodes(
    fields: &[FieldDef],
    parent: Option<&str>,
    style: HeaderStyle,
    header: &mut Vec<String>,
) -> (Vec<Node>, usize) {
    let mut nodes = Vec::with_capacity(fields.len());
    let mut width = 0;
    for f in fields {
        let (node, w) = build_node(f, column_name(parent, f, style), style, header);
        nodes.push(node);
        width += w;
    }
    (nodes, width)
}

#[cfg(test)]
mod tests;
