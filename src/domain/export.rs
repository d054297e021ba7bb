//! Export jobs: status, CSV options, and the checks made when one is created.

use serde::{Deserialize, Serialize};

use super::schema::{FieldType, SchemaDef};

/// Where an export job is. Moves only PENDING → PROCESSING → COMPLETED or FAILED.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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

/// The CSV options of one export (csv.md, "Options"). Stored with the job as JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CsvOptions {
    pub delimiter: char,
    pub bom: bool,
    pub header: HeaderStyle,
    pub formula_guard: bool,
    pub gzip: bool,
}

impl Default for CsvOptions {
    fn default() -> Self {
        CsvOptions { delimiter: ',', bom: false, header: HeaderStyle::Key, formula_guard: true, gzip: false }
    }
}

/// The delimiters an export may use.
pub const DELIMITERS: [char; 4] = [',', ';', '\t', '|'];

impl CsvOptions {
    pub fn delimiter_byte(&self) -> u8 {
        self.delimiter as u8
    }
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
