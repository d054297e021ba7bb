//! The pure CSV formatter of an export (spec/csv.md): columns from the schema, values from
//! each result's extraction, quoting, the formula guard and `expand_array`. No files, no
//! database: records are appended to a byte buffer.

mod bytes;
pub mod cells;
mod compact;
mod general;
#[cfg(test)]
mod reference;
mod scan;
mod zone;

use compact::{write_compact, write_compact_field, write_tidy_field, CompactScratch};
use scan::{decode_string, Kind, RowSpans, ScanPlan, Span};

use super::json::{is_repr_literal, write_float_literal};
use crate::domain::export::{check_expand_array, CsvOptions, ExportFormat, HeaderStyle, DELIMITERS};
use crate::domain::schema::{FieldDef, FieldType, SchemaDef};
use crate::domain::time::format_ms;

/// An owned extraction result for the formatter's tests and its reference oracle (the
/// export itself streams borrowed `db::results::ExportSourceRow`s).
#[cfg(test)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestResult {
    pub id: String,
    pub file_name: Option<String>,
    pub created_at_ms: i64,
    /// The raw JSON text of the extraction (an object).
    pub extraction: String,
}

/// Reusable buffers of [`CsvPlan::write_row`].
#[derive(Debug)]
pub struct RowScratch {
    spans: RowSpans,
    text: String,
    compact: CompactScratch,
    tail: Vec<u8>,
}

/// A schema field's column(s), outside the expanded array.
#[derive(Debug, Clone)]
enum Node {
    /// One column holding the value of `key` (a scalar, or compact JSON).
    Value(String),
    /// An object field: its sub-fields' columns (`width` of them in all).
    Object { key: String, children: Vec<Node>, width: usize },
}

impl Node {
    fn width(&self) -> usize {
        match self {
            Node::Value(_) => 1,
            Node::Object { width, .. } => *width,
        }
    }
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
    /// Compiled into `scan`; the tree walk of the test oracle reads them.
    #[cfg_attr(not(test), allow(dead_code))]
    before: Vec<Node>,
    /// The expanded array's key and columns.
    expand: Option<(String, Expanded)>,
    /// Schema columns after the expanded array.
    #[cfg_attr(not(test), allow(dead_code))]
    after: Vec<Node>,
    delimiter: u8,
    formula_guard: bool,
    /// Where the values of the columns lie in an extraction.
    scan: ScanPlan,
    /// How many schema columns come before the expanded array.
    before_width: usize,
    /// Set when rows take the general path (formats.md): another format, chosen columns or
    /// a time zone. The CSV of csv.md takes the path above, as it always did.
    general: Option<general::General>,
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
        let mut cols = Cols::default();
        for (name, ty) in
            [("id", FieldType::String), ("file_name", FieldType::String), ("createdAt", FieldType::Datetime)]
        {
            cols.push(name.into(), name.into(), ty);
        }
        let mut before = Vec::new();
        let mut after = Vec::new();
        let mut expand = None;
        for f in &schema.fields {
            let name = ColName { shown: column_name(None, f, style), key: f.key.clone() };
            if expand.is_none() && expand_array == Some(f.key.as_str()) {
                let nodes = match &f.fields {
                    Some(sub) => {
                        let (children, width) = build_nodes(sub, Some(&name), style, &mut cols);
                        Expanded::Objects { children, width }
                    }
                    None => {
                        cols.push(name.shown, name.key, f.ty);
                        Expanded::Scalars
                    }
                };
                expand = Some((f.key.clone(), nodes));
            } else {
                let target = if expand.is_some() { &mut after } else { &mut before };
                target.push(build_node(f, name, style, &mut cols).0);
            }
        }
        let header = cols.shown.clone();
        let delimiter = options.delimiter_byte();
        let items = expand.as_ref().map(|(key, cols): &(String, Expanded)| match cols {
            Expanded::Objects { children, .. } => (key.as_str(), Some(children.as_slice())),
            Expanded::Scalars => (key.as_str(), None),
        });
        let scan = ScanPlan::new(&[&before, &after], items);
        let before_width = before.iter().map(Node::width).sum();
        let expand_width = expand.as_ref().map_or(0, |(_, e): &(String, Expanded)| e.width());
        let general = general::General::new(options, cols, before_width, expand_width)?;
        Ok(CsvPlan {
            header,
            before,
            expand,
            after,
            delimiter,
            formula_guard: options.formula_guard,
            scan,
            before_width,
            general,
        })
    }

    /// The column names, in order (key or label style, as the options said).
    pub fn header(&self) -> Vec<String> {
        match &self.general {
            Some(g) => g.header(),
            None => self.header.clone(),
        }
    }

    /// How many fields every record has.
    pub fn column_count(&self) -> usize {
        match &self.general {
            Some(g) => g.width(),
            None => self.header.len(),
        }
    }

    /// The file format the rows are written in.
    pub fn format(&self) -> ExportFormat {
        self.general.as_ref().map_or(ExportFormat::Csv, |g| g.format())
    }

    /// Appends the header record, `\r\n` included (no byte-order mark: the caller writes it).
    /// Names are guarded like text values: a label can start like a formula. JSON Lines
    /// and workbooks have no header record here (the workbook writes its own header row).
    pub fn write_header(&self, out: &mut Vec<u8>) {
        if let Some(g) = &self.general {
            return self.write_general_header(g, out);
        }
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
    /// as an empty object: all schema columns empty. For tests; the export calls `write_row`.
    #[cfg(test)]
    pub fn write_result(&self, row: &TestResult, out: &mut Vec<u8>) -> usize {
        let mut scratch = self.scratch();
        self.write_row(&row.id, row.file_name.as_deref(), row.created_at_ms, &row.extraction, out, &mut scratch)
    }

    /// The reusable buffers [`CsvPlan::write_row`] needs (one per thread).
    pub fn scratch(&self) -> RowScratch {
        RowScratch {
            spans: self.scan.spans(),
            text: String::new(),
            compact: CompactScratch::default(),
            tail: Vec::new(),
        }
    }

    /// [`CsvPlan::write_result`] from borrowed parts, reusing `scratch`: the extraction is
    /// scanned once for the plan's columns, without building a value tree.
    pub fn write_row(
        &self,
        id: &str,
        file_name: Option<&str>,
        created_at_ms: i64,
        extraction: &str,
        out: &mut Vec<u8>,
        scratch: &mut RowScratch,
    ) -> usize {
        if let Some(g) = &self.general {
            return self.write_general(g, id, file_name, created_at_ms, extraction, out, scratch);
        }
        let RowScratch { spans, text, compact, tail } = scratch;
        self.scan.scan(extraction, spans);
        let d = self.delimiter;
        let start = out.len();
        self.write_text(id, false, out);
        out.push(d);
        if let Some(name) = file_name {
            self.write_text(name, self.formula_guard, out);
        }
        out.push(d);
        write_timestamp(created_at_ms, out);
        let (before, after) = spans.slots.split_at(self.before_width);
        for &span in before {
            out.push(d);
            self.write_span(extraction, span, out, text, compact);
        }
        let Some((_, cols)) = &self.expand else {
            out.extend_from_slice(b"\r\n");
            return 1;
        };
        let width = cols.width();
        if spans.item_count == 0 {
            push_n(out, d, width);
            for &span in after {
                out.push(d);
                self.write_span(extraction, span, out, text, compact);
            }
            out.extend_from_slice(b"\r\n");
            return 1;
        }
        let head_end = out.len();
        tail.clear();
        for &span in after {
            tail.push(d);
            self.write_span(extraction, span, tail, text, compact);
        }
        tail.extend_from_slice(b"\r\n");
        for (i, item) in spans.items.chunks_exact(width).enumerate() {
            if i > 0 {
                out.extend_from_within(start..head_end);
            }
            for &span in item {
                out.push(d);
                self.write_span(extraction, span, out, text, compact);
            }
            out.extend_from_slice(tail);
        }
        spans.item_count
    }

    /// Writes one value by its JSON type: nothing for missing/null, the string (guarded),
    /// the number's text, `true`/`false`, or the compact JSON of an array/object.
    fn write_span(&self, src: &str, span: Span, out: &mut Vec<u8>, text: &mut String, compact: &mut CompactScratch) {
        let raw = &src[span.start..span.end];
        match span.kind {
            Kind::Missing | Kind::Null => {}
            Kind::True => out.extend_from_slice(b"true"),
            Kind::False => out.extend_from_slice(b"false"),
            Kind::Int if raw == "-0" => out.push(b'0'),
            // a number's text never holds a delimiter, a quote or a line break
            Kind::Int => out.extend_from_slice(raw.as_bytes()),
            Kind::Float if is_repr_literal(raw.as_bytes()) => out.extend_from_slice(raw.as_bytes()),
            Kind::Float => {
                text.clear();
                write_float_literal(raw, false, text);
                self.write_text(text, false, out);
            }
            Kind::Str => self.write_text(raw, self.formula_guard, out),
            Kind::StrEsc => {
                text.clear();
                decode_string(raw, text);
                self.write_text(text, self.formula_guard, out);
            }
            Kind::Compound if span.tidy => write_tidy_field(raw, self.delimiter, out),
            Kind::Compound => {
                if !write_compact_field(raw, self.delimiter, out, compact) {
                    text.clear();
                    write_compact(raw, text);
                    self.write_text(text, false, out);
                }
            }
        }
    }

    /// Writes one field: a leading `'` when `guard` and the text starts like a formula, then
    /// quoted (inner `"` doubled) when it contains the delimiter, `"`, CR or LF. Hand-written
    /// because it earns its place: once per cell, one search for the four bytes, the formula
    /// guard in the same pass, straight into the row buffer (no `csv::Writer` per batch).
    fn write_text(&self, text: &str, guard: bool, out: &mut Vec<u8>) {
        let bytes = text.as_bytes();
        let guarded = guard && matches!(bytes.first(), Some(b'=' | b'+' | b'-' | b'@' | b'\t' | b'\r'));
        let needs_quotes = bytes::contains_any(bytes, [self.delimiter, b'"', b'\r', b'\n']);
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
        bytes::push_doubling_quotes(bytes, out);
        out.push(b'"');
    }
}

/// Writes `format_ms(ms)` (`2024-01-31T12:00:00.123Z`): once per row on the export's hot path,
/// its 24 bytes straight into the row buffer with no `String` (`rfc3339_ms`) for the years
/// 0000-9999, `format_ms` outside them.
fn write_timestamp(ms: i64, out: &mut Vec<u8>) {
    match crate::domain::time::rfc3339_ms(ms) {
        Some(b) => out.extend_from_slice(&b),
        None => out.extend_from_slice(format_ms(ms).as_bytes()),
    }
}

fn push_n(out: &mut Vec<u8>, byte: u8, n: usize) {
    out.resize(out.len() + n, byte);
}

/// Every column of a plan, in order: its header name, its `header: key` name (what
/// `columns` names it by) and the type of the field it comes from.
#[derive(Debug, Default)]
struct Cols {
    shown: Vec<String>,
    keys: Vec<String>,
    types: Vec<FieldType>,
}

impl Cols {
    fn push(&mut self, shown: String, key: String, ty: FieldType) {
        self.shown.push(shown);
        self.keys.push(key);
        self.types.push(ty);
    }
}

/// A column's (or a parent's) names: as shown in the header, and in key style.
struct ColName {
    shown: String,
    key: String,
}

impl ColName {
    fn child(parent: Option<&ColName>, f: &FieldDef, style: HeaderStyle) -> ColName {
        ColName {
            shown: column_name(parent.map(|p| p.shown.as_str()), f, style),
            key: column_name(parent.map(|p| p.key.as_str()), f, HeaderStyle::Key),
        }
    }
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

/// The node of one field named `name`, pushing its columns; returns it and its width.
fn build_node(f: &FieldDef, name: ColName, style: HeaderStyle, cols: &mut Cols) -> (Node, usize) {
    match (&f.ty, &f.fields) {
        (FieldType::Object, Some(sub)) => {
            let (children, width) = build_nodes(sub, Some(&name), style, cols);
            (Node::Object { key: f.key.clone(), children, width }, width)
        }
        _ => {
            cols.push(name.shown, name.key, f.ty);
            (Node::Value(f.key.clone()), 1)
        }
    }
}

fn build_nodes(
    fields: &[FieldDef],
    parent: Option<&ColName>,
    style: HeaderStyle,
    cols: &mut Cols,
) -> (Vec<Node>, usize) {
    let mut nodes = Vec::with_capacity(fields.len());
    let mut width = 0;
    for f in fields {
        let (node, w) = build_node(f, ColName::child(parent, f, style), style, cols);
        nodes.push(node);
        width += w;
    }
    (nodes, width)
}

#[cfg(test)]
mod identity_tests;
#[cfg(test)]
mod tests;
