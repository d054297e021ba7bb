//! The objects of `/v1/exports`: what goes in and comes out, and their conversions.

use crate::api::list::{Fields, JsonOut, Meta, SchemaRef, Sparse};
use crate::api::types::Text;
use crate::db::exports::ExportRow;
use crate::domain::export::{CsvOptions, ExportFormat, ExportStatus, HeaderStyle, NewExport};
use crate::domain::export_input::ExportInput;
use crate::domain::time::format_ms;
use crate::error::ApiError;
use poem_openapi::types::Example;
use poem_openapi::{Enum, Object};

/// Where an export job is: PENDING (queued, waiting to start), PROCESSING (generation in
/// progress), COMPLETED (ready for download) or FAILED (see `error`).
#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq)]
#[oai(rename_all = "UPPERCASE")]
pub enum Status {
    Pending,
    Processing,
    Completed,
    Failed,
}

impl From<ExportStatus> for Status {
    fn from(s: ExportStatus) -> Self {
        match s {
            ExportStatus::Pending => Status::Pending,
            ExportStatus::Processing => Status::Processing,
            ExportStatus::Completed => Status::Completed,
            ExportStatus::Failed => Status::Failed,
        }
    }
}

/// How header cells are named: `key` (dot paths, `billing_address.city`) or `label`
/// (`Billing address / City`; the key where a field has no label).
#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq)]
#[oai(rename_all = "lowercase")]
pub enum HeaderOption {
    Key,
    Label,
}

impl From<HeaderStyle> for HeaderOption {
    fn from(h: HeaderStyle) -> Self {
        match h {
            HeaderStyle::Key => HeaderOption::Key,
            HeaderStyle::Label => HeaderOption::Label,
        }
    }
}

impl From<HeaderOption> for HeaderStyle {
    fn from(h: HeaderOption) -> Self {
        match h {
            HeaderOption::Key => HeaderStyle::Key,
            HeaderOption::Label => HeaderStyle::Label,
        }
    }
}

/// The file format: `csv` (default; RFC 4180, `text/csv`), `xlsx` (an Excel workbook with
/// typed cells: numbers, booleans, dates and date-times, text that stays text) or `jsonl`
/// (JSON Lines: one JSON object per row, `application/x-ndjson`). Rows, columns and
/// `expand_array` are the same in every format.
#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq)]
#[oai(rename_all = "lowercase")]
pub enum FormatOption {
    Csv,
    Xlsx,
    Jsonl,
}

impl From<ExportFormat> for FormatOption {
    fn from(f: ExportFormat) -> Self {
        match f {
            ExportFormat::Csv => FormatOption::Csv,
            ExportFormat::Xlsx => FormatOption::Xlsx,
            ExportFormat::Jsonl => FormatOption::Jsonl,
        }
    }
}

impl From<FormatOption> for ExportFormat {
    fn from(f: FormatOption) -> Self {
        match f {
            FormatOption::Csv => ExportFormat::Csv,
            FormatOption::Xlsx => ExportFormat::Xlsx,
            FormatOption::Jsonl => ExportFormat::Jsonl,
        }
    }
}

/// The options in effect for an export.
#[derive(Object, Clone)]
pub struct ExportOptions {
    /// Field delimiter: `,` `;` `\t` or `|`.
    pub delimiter: String,
    /// A UTF-8 byte-order mark first (Excel on Windows needs it).
    pub bom: bool,
    /// Header style.
    pub header: HeaderOption,
    /// Prefix `'` to text starting with `=`, `+`, `-`, `@`, tab or CR (CWE-1236).
    pub formula_guard: bool,
    /// Gzip-compress the file (`.csv.gz`, `.jsonl.gz`).
    pub gzip: bool,
    /// The IANA time zone times are written in; null when none was given (UTC, and
    /// `datetime` strings in CSV and JSON Lines as they were stored).
    #[oai(nullable)]
    pub timezone: Option<String>,
}

/// Options for a new export; all optional. `delimiter`, `bom` and `formula_guard` are for
/// `csv` (a 400 with `jsonl`); `gzip` for `csv` and `jsonl` (a 400 with `xlsx`, which is
/// compressed already); `delimiter` and `bom` are a 400 with `xlsx`.
#[derive(Object, Clone, Default)]
#[oai(deny_unknown_fields)]
pub struct ExportOptionsInput {
    /// Field delimiter: `,` (default), `;`, `\t` or `|`.
    #[oai(nullable)]
    pub delimiter: Option<Text>,
    /// Write a UTF-8 byte-order mark first (default false).
    #[oai(nullable)]
    pub bom: Option<bool>,
    /// `key` (default) or `label`.
    #[oai(nullable)]
    pub header: Option<HeaderOption>,
    /// Guard against spreadsheet formulas (default true).
    #[oai(nullable)]
    pub formula_guard: Option<bool>,
    /// Gzip-compress the file (default false).
    #[oai(nullable)]
    pub gzip: Option<bool>,
    /// An IANA time zone name (`Europe/Paris`, `America/New_York`, `UTC`; unknown names are
    /// a 400). `createdAt`, and the values of `datetime` fields that are RFC 3339 strings,
    /// are written in that zone: `2024-03-31T03:00:00.000+02:00` (`Z` for UTC) in `csv` and
    /// `jsonl`, local date-time cells in `xlsx` (default UTC). Strings that do not parse
    /// stay as they are. `start_date` and `end_date` are not affected.
    #[oai(nullable)]
    pub timezone: Option<Text>,
}

/// An export job.
#[derive(Object, Clone)]
#[oai(example)]
pub struct Export {
    /// Export UUID.
    pub id: String,
    /// The schema whose results are exported.
    pub schema_id: String,
    pub status: Status,
    /// Results created at or after this time are included.
    pub start_date: String,
    /// Results created at or before this time are included.
    pub end_date: String,
    /// The array field expanded into one row per item, if any.
    #[oai(nullable)]
    pub expand_array: Option<String>,
    /// The file format.
    pub format: FormatOption,
    /// The columns chosen, in file order; null when all columns were asked for.
    #[oai(nullable)]
    pub columns: Option<Vec<String>>,
    /// Options in effect.
    pub options: ExportOptions,
    /// Data records written (after expansion; header not counted): so far while PROCESSING
    /// (updated at least once a second), all of them once COMPLETED. Null while PENDING and
    /// once FAILED.
    #[oai(nullable)]
    pub row_count: Option<i64>,
    /// How far the export has got: live while PROCESSING (updated at least once a second),
    /// `{"results_done": m, "results_total": m, "percent": 100}` once COMPLETED, where it
    /// stopped if it FAILED. Null while PENDING (and for the instant a starting export takes
    /// to count its range).
    #[oai(nullable)]
    pub progress: Option<ExportProgress>,
    /// The file's size in bytes, as served. Null until COMPLETED.
    #[oai(nullable)]
    pub file_size: Option<i64>,
    /// Why the export FAILED, in words you can act on. Null unless FAILED.
    #[oai(nullable)]
    pub error: Option<String>,
    #[oai(rename = "createdAt")]
    pub created_at: String,
    #[oai(rename = "updatedAt")]
    pub updated_at: String,
    /// When the file was ready. Null until COMPLETED.
    #[oai(nullable, rename = "completedAt")]
    pub completed_at: Option<String>,
    /// The schema, with `include=schema`.
    #[oai(skip_serializing_if_is_none)]
    pub schema: Option<SchemaRef>,
}

impl Example for Export {
    fn example() -> Self {
        Export {
            id: "019760a0-0050-7000-8000-000000000050".into(),
            schema_id: "019760a0-0001-7000-8000-000000000001".into(),
            status: Status::Pending,
            start_date: "2024-01-01T00:00:00.000Z".into(),
            end_date: "2024-01-31T23:59:59.999Z".into(),
            expand_array: None,
            format: FormatOption::Csv,
            columns: None,
            options: options_out(&CsvOptions::default()),
            row_count: None,
            progress: None,
            file_size: None,
            error: None,
            created_at: "2024-01-31T12:00:00.000Z".into(),
            updated_at: "2024-01-31T12:00:00.000Z".into(),
            completed_at: None,
            schema: None,
        }
    }
}

/// How far an export has got.
#[derive(Object, Clone, Debug, PartialEq, Eq)]
#[oai(example)]
pub struct ExportProgress {
    /// Results of the date range read so far.
    pub results_done: i64,
    /// Results in the date range when the export started (counted once; results stored
    /// while it runs may still be exported when their place in the order is ahead).
    pub results_total: i64,
    /// `floor(100 * results_done / results_total)`, at most 100; 100 when the range is
    /// empty.
    pub percent: i64,
}

impl Example for ExportProgress {
    fn example() -> Self {
        ExportProgress { results_done: 4096, results_total: 10_000, percent: 40 }
    }
}

impl ExportProgress {
    /// The figures `done` of `total`, with their percentage.
    pub fn new(done: i64, total: i64) -> ExportProgress {
        let percent = if total <= 0 { 100 } else { (done.max(0).saturating_mul(100) / total).min(100) };
        ExportProgress { results_done: done, results_total: total, percent }
    }
}

/// An export's progress as its row tells it (see `Export::progress`).
fn progress_of(e: &ExportRow) -> Option<ExportProgress> {
    match (e.status, e.results_done, e.results_total) {
        (ExportStatus::Pending, _, _) => None,
        (ExportStatus::Completed, _, Some(total)) => Some(ExportProgress::new(total, total)),
        // completed before progress was recorded, and not filled in: its records are the best figure
        (ExportStatus::Completed, _, None) => {
            let n = e.row_count.unwrap_or(0);
            Some(ExportProgress::new(n, n))
        }
        (_, Some(done), Some(total)) => Some(ExportProgress::new(done, total)),
        // not counted yet (the first instant of a run), or failed before it was
        _ => None,
    }
}

/// A new export job.
#[derive(Object)]
#[oai(example)]
pub struct CreateExport {
    /// UUID of the schema whose results to export.
    pub schema_id: uuid::Uuid,
    /// ISO 8601 start: include results created on or after it. A bare date (`2024-01-01`)
    /// means the start of that day (UTC).
    pub start_date: Text,
    /// ISO 8601 end: include results created on or before it. A bare date (`2024-01-31`)
    /// means that whole day, up to 23:59:59.999Z.
    pub end_date: Text,
    /// Key of a top-level array field to expand into one row per item.
    #[oai(nullable)]
    pub expand_array: Option<Text>,
    /// `csv` (default), `xlsx` or `jsonl`.
    #[oai(nullable)]
    pub format: Option<FormatOption>,
    /// The columns to write, in this order, named as with `header: key`: `id`,
    /// `file_name`, `createdAt`, field keys, `parent.child` for object sub-fields and, with
    /// `expand_array`, the expanded sub-columns (`line_items.sku`). Default: all columns.
    /// An unknown or repeated name is a 400 that lists the names allowed.
    #[oai(nullable)]
    pub columns: Option<Vec<Text>>,
    /// Format options.
    #[oai(nullable)]
    pub options: Option<ExportOptionsInput>,
}

impl Example for CreateExport {
    fn example() -> Self {
        CreateExport {
            schema_id: uuid::Uuid::from_u128(0x019760a0_0001_7000_8000_000000000001),
            start_date: "2024-01-01T00:00:00.000Z".into(),
            end_date: "2024-01-31T23:59:59.999Z".into(),
            expand_array: None,
            format: Some(FormatOption::Xlsx),
            columns: Some(["createdAt", "invoice_number", "vendor_name", "total"].map(Text::from).to_vec()),
            options: Some(ExportOptionsInput { timezone: Some("Europe/Paris".into()), ..Default::default() }),
        }
    }
}

/// A time-limited download link.
#[derive(Object)]
#[oai(example)]
pub struct DownloadUrl {
    /// Signed URL of the file; GET it with no API key (curl, a browser). Valid until `expiresAt`.
    pub url: String,
    /// When the URL stops working.
    #[oai(rename = "expiresAt")]
    pub expires_at: String,
}

impl Example for DownloadUrl {
    fn example() -> Self {
        DownloadUrl {
            url: "http://127.0.0.1:8080/files/teams/019760a0-0000-7000-8000-000000000000/019760a0-0050-7000-8000-000000000050/invoices_2024-01-01_2024-01-31.csv?expires=1706961600&token=Zk2p6w0qkq1d0p6P6cQyq3Jb0bq2w6m3uYQm5r5h9sE".into(),
            expires_at: "2024-02-03T12:00:00.000Z".into(),
        }
    }
}

/// A page of exports.
#[derive(Object)]
#[oai(example)]
pub struct ExportList {
    pub data: Vec<Sparse<Export>>,
    pub meta: Meta,
}

impl Example for ExportList {
    fn example() -> Self {
        let mut e = Export::example();
        e.status = Status::Completed;
        e.row_count = Some(1034);
        e.progress = Some(ExportProgress::new(1034, 1034));
        e.file_size = Some(519_300);
        e.updated_at = "2024-01-31T12:01:30.000Z".into();
        e.completed_at = Some("2024-01-31T12:01:30.000Z".into());
        ExportList { data: vec![Sparse::new(&e, None)], meta: Meta { page: 1, limit: 20, total: 1, total_pages: 1 } }
    }
}

/// `sort_by` for exports.
#[derive(Enum, Clone, Copy)]
pub enum ExportSortBy {
    #[oai(rename = "createdAt")]
    CreatedAt,
    #[oai(rename = "updatedAt")]
    UpdatedAt,
    #[oai(rename = "status")]
    Status,
    #[oai(rename = "start_date")]
    StartDate,
    #[oai(rename = "end_date")]
    EndDate,
}

pub(super) fn options_out(o: &CsvOptions) -> ExportOptions {
    ExportOptions {
        delimiter: o.delimiter.to_string(),
        bom: o.bom,
        header: o.header.into(),
        formula_guard: o.formula_guard,
        gzip: o.gzip,
        timezone: o.timezone.clone(),
    }
}

/// Everything about a new export that needs no database: dates, their order, options.
impl TryFrom<CreateExport> for NewExport {
    type Error = ApiError;

    fn try_from(body: CreateExport) -> Result<NewExport, ApiError> {
        let o = body.options.unwrap_or_default();
        ExportInput {
            schema_id: body.schema_id.to_string(),
            start_date: &body.start_date,
            end_date: &body.end_date,
            expand_array: body.expand_array.map(|t| t.0),
            delimiter: o.delimiter.as_ref().map(|d| d.0.as_str()),
            bom: o.bom,
            header: o.header.map(HeaderStyle::from),
            formula_guard: o.formula_guard,
            gzip: o.gzip,
            format: body.format.map(ExportFormat::from),
            columns: body.columns.map(|c| c.into_iter().map(|t| t.0).collect()),
            timezone: o.timezone.as_ref().map(|t| t.0.as_str()),
        }
        .check()
        .map_err(|e| ApiError::bad_request(e.to_string()))
    }
}

pub fn to_api(e: &ExportRow, with_schema: bool) -> Export {
    Export {
        id: e.id.clone(),
        schema_id: e.schema_id.clone(),
        status: e.status.into(),
        start_date: format_ms(e.start_ms),
        end_date: format_ms(e.end_ms),
        expand_array: e.expand_array.clone(),
        format: e.options.format.into(),
        columns: e.options.columns.clone(),
        options: options_out(&e.options),
        row_count: row_count(e),
        progress: progress_of(e),
        file_size: e.file_size,
        error: e.error.clone(),
        created_at: format_ms(e.created_at),
        updated_at: format_ms(e.updated_at),
        completed_at: e.completed_at.map(format_ms),
        schema: with_schema
            .then(|| SchemaRef { id: e.schema_id.clone(), name: e.schema_name.clone().unwrap_or_default() }),
    }
}

/// Writes an export as a list item: the keys of [`Export`], in its order and with its values
/// (what `to_api` makes), straight from the row, only those `fields` keeps. Hand-written for
/// the list hot path: through `Export` and poem-openapi each item became a
/// `serde_json::Value` tree (a `String` per key and value) before it was written. A test
/// compares every key with the single-export GET (`list_items_are_the_single_items`).
pub fn write_item(out: &mut JsonOut, e: &ExportRow, fields: Fields<'_>, with_schema: bool) {
    out.object(fields, |o| {
        o.str("id", &e.id);
        o.str("schema_id", &e.schema_id);
        o.str("status", e.status.as_str());
        o.time("start_date", e.start_ms);
        o.time("end_date", e.end_ms);
        o.opt_str("expand_array", e.expand_array.as_deref());
        o.str("format", e.options.format.as_str());
        o.opt_strs("columns", e.options.columns.as_deref());
        o.opt_object("options", Some(&e.options), |o, opts| {
            let mut delimiter = [0; 4];
            o.str("delimiter", opts.delimiter.encode_utf8(&mut delimiter));
            o.bool("bom", opts.bom);
            let header = match opts.header {
                HeaderStyle::Key => "key",
                HeaderStyle::Label => "label",
            };
            o.str("header", header);
            o.bool("formula_guard", opts.formula_guard);
            o.bool("gzip", opts.gzip);
            o.opt_str("timezone", opts.timezone.as_deref());
        });
        o.opt_int("row_count", row_count(e));
        o.opt_object("progress", progress_of(e), |o, p| {
            o.int("results_done", p.results_done);
            o.int("results_total", p.results_total);
            o.int("percent", p.percent);
        });
        o.opt_int("file_size", e.file_size);
        o.opt_str("error", e.error.as_deref());
        o.time("createdAt", e.created_at);
        o.time("updatedAt", e.updated_at);
        o.opt_time("completedAt", e.completed_at);
        if with_schema {
            o.opt_object("schema", Some(()), |o, ()| {
                o.str("id", &e.schema_id);
                o.str("name", e.schema_name.as_deref().unwrap_or_default());
            });
        }
    });
}

/// `Export::row_count`: shown while PROCESSING and once COMPLETED.
fn row_count(e: &ExportRow) -> Option<i64> {
    match e.status {
        ExportStatus::Processing | ExportStatus::Completed => e.row_count,
        ExportStatus::Pending | ExportStatus::Failed => None,
    }
}
