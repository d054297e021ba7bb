//! Export jobs: status, CSV options, a new export's checked input, and the checks made when
//! one is created.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::schema::{FieldType, SchemaDef};

/// Where an export job is. Moves only PENDING → PROCESSING → COMPLETED or FAILED.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum ExportStatus {
    Pending,
    Processing,
    Completed,
    Failed,
}

impl ExportStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ExportStatus::Pending => "PENDING",
            ExportStatus::Processing => "PROCESSING",
            ExportStatus::Completed => "COMPLETED",
            ExportStatus::Failed => "FAILED",
        }
    }

    pub fn parse(s: &str) -> Option<ExportStatus> {
        Some(match s {
            "PENDING" => ExportStatus::Pending,
            "PROCESSING" => ExportStatus::Processing,
            "COMPLETED" => ExportStatus::Completed,
            "FAILED" => ExportStatus::Failed,
            _ => return None,
        })
    }
}

/// How header cells are named.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum HeaderStyle {
    /// Keys, dot paths for nested fields (`billing_address.city`).
    #[default]
    Key,
    /// Labels, `Parent label / Child label` for nested fields; the key where there is no label.
    Label,
}

/// The file format of an export (formats.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ExportFormat {
    /// CSV (csv.md).
    #[default]
    Csv,
    /// An Office Open XML workbook with typed cells.
    Xlsx,
    /// JSON Lines: one JSON object per row.
    Jsonl,
}

impl ExportFormat {
    pub const ALL: [ExportFormat; 3] = [ExportFormat::Csv, ExportFormat::Xlsx, ExportFormat::Jsonl];

    pub fn as_str(self) -> &'static str {
        match self {
            ExportFormat::Csv => "csv",
            ExportFormat::Xlsx => "xlsx",
            ExportFormat::Jsonl => "jsonl",
        }
    }

    pub fn parse(s: &str) -> Option<ExportFormat> {
        ExportFormat::ALL.into_iter().find(|f| f.as_str() == s)
    }

    /// The file name's extension (`csv`, `csv.gz`, `jsonl`, `jsonl.gz`, `xlsx`).
    pub fn extension(self, gzip: bool) -> &'static str {
        match (self, gzip) {
            (ExportFormat::Csv, false) => "csv",
            (ExportFormat::Csv, true) => "csv.gz",
            (ExportFormat::Jsonl, false) => "jsonl",
            (ExportFormat::Jsonl, true) => "jsonl.gz",
            (ExportFormat::Xlsx, _) => "xlsx",
        }
    }

    /// The download's content type.
    pub fn content_type(self, gzip: bool) -> &'static str {
        match (self, gzip) {
            (ExportFormat::Xlsx, _) => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            (_, true) => "application/gzip",
            (ExportFormat::Csv, false) => "text/csv; charset=utf-8",
            (ExportFormat::Jsonl, false) => "application/x-ndjson",
        }
    }
}

/// The options of one export (csv.md, "Options", and formats.md). Stored with the job as
/// JSON; the members formats.md added are left out of that JSON when they are defaults, so
/// older rows read as they were written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CsvOptions {
    pub delimiter: char,
    pub bom: bool,
    pub header: HeaderStyle,
    pub formula_guard: bool,
    pub gzip: bool,
    #[serde(default, skip_serializing_if = "is_csv")]
    pub format: ExportFormat,
    /// The chosen columns, in order (names as `header: key` names them); all when `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub columns: Option<Vec<String>>,
    /// An IANA time zone name, checked when the export was created; `None`: as csv.md
    /// writes times (UTC, `datetime` strings as they are).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
}

fn is_csv(f: &ExportFormat) -> bool {
    *f == ExportFormat::Csv
}

impl Default for CsvOptions {
    fn default() -> Self {
        CsvOptions {
            delimiter: ',',
            bom: false,
            header: HeaderStyle::Key,
            formula_guard: true,
            gzip: false,
            format: ExportFormat::Csv,
            columns: None,
            timezone: None,
        }
    }
}

/// The delimiters an export may use.
pub const DELIMITERS: [char; 4] = [',', ';', '\t', '|'];

impl CsvOptions {
    pub fn delimiter_byte(&self) -> u8 {
        self.delimiter as u8
    }
}

/// A field delimiter an export may use: one of [`DELIMITERS`], written as that one character.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delimiter(char);

impl Delimiter {
    pub fn as_char(self) -> char {
        self.0
    }
}

impl Default for Delimiter {
    fn default() -> Self {
        Delimiter(CsvOptions::default().delimiter)
    }
}

/// A delimiter text that is not one of [`DELIMITERS`]; says which ones are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadDelimiter(pub String);

impl fmt::Display for BadDelimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?} is not allowed; use one of \",\", \";\", \"\\t\", \"|\"", self.0)
    }
}

impl std::error::Error for BadDelimiter {}

impl FromStr for Delimiter {
    type Err = BadDelimiter;

    fn from_str(s: &str) -> Result<Delimiter, BadDelimiter> {
        let mut chars = s.chars();
        match (chars.next(), chars.next()) {
            (Some(c), None) if DELIMITERS.contains(&c) => Ok(Delimiter(c)),
            _ => Err(BadDelimiter(s.to_string())),
        }
    }
}

/// A new export job as asked for, checked as far as it can be without the database (see
/// [`ExportInput::check`](super::export_input::ExportInput::check)): the schema id, the
/// inclusive time range in ms (start not after end), the array field to expand (checked
/// against the schema when it is looked up) and the CSV options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewExport {
    pub schema_id: String,
    pub start_ms: i64,
    pub end_ms: i64,
    pub expand_array: Option<String>,
    pub options: CsvOptions,
}

/// Checks that `expand_array` names a top-level `array` field of the schema.
pub fn check_expand_array(schema: &SchemaDef, key: &str) -> Result<(), String> {
    match schema.field(key) {
        Some(f) if f.ty == FieldType::Array => Ok(()),
        Some(f) => Err(format!(
            "expand_array '{key}' is a {} field; it must name a top-level array field of the schema",
            f.ty.as_str()
        )),
        None => {
            let arrays: Vec<&str> =
                schema.fields.iter().filter(|f| f.ty == FieldType::Array).map(|f| f.key.as_str()).collect();
            Err(if arrays.is_empty() {
                format!("expand_array '{key}' is not a field of the schema, which has no top-level array field")
            } else {
                format!(
                    "expand_array '{key}' is not a top-level array field of the schema; use one of: {}",
                    arrays.join(", ")
                )
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delimiters_parse_as_one_allowed_character() {
        for c in DELIMITERS {
            assert_eq!(c.to_string().parse::<Delimiter>().map(Delimiter::as_char), Ok(c));
        }
        for bad in ["", ",,", "x", "\\t", "tab"] {
            assert_eq!(bad.parse::<Delimiter>(), Err(BadDelimiter(bad.to_string())), "{bad:?}");
        }
        assert_eq!(BadDelimiter("x".into()).to_string(), r#""x" is not allowed; use one of ",", ";", "\t", "|""#);
    }
}
