//! `/v1/exports`: asynchronous export jobs and their download links.

use std::sync::Arc;

use poem::web::Data;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::types::Example;
use poem_openapi::{ApiResponse, Enum, Object, OpenApi};

use super::auth::ApiKeyAuth;
use super::list::{
    default_limit, default_page, fields_param, include_schema, ListParams, Meta, SchemaRef, SortOrder, Sparse,
};
use super::text::Text;
use super::{parse_id, with_db, ApiTags};
use crate::api_errors;
use crate::app::AppState;
use crate::db::exports::ExportRow;
use crate::domain::export::{check_expand_array, CsvOptions, ExportStatus, HeaderStyle, DELIMITERS};
use crate::domain::list::PageMeta;
use crate::domain::time::{format_ms, now_ms, parse_instant, DayEnd};
use crate::error::ApiError;

pub struct ExportsApi;

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

/// CSV options, as in effect for an export.
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
    /// Gzip-compress the file (`.csv.gz`).
    pub gzip: bool,
}

/// CSV options for a new export; all optional.
#[derive(Object, Clone, Default)]
#[oai(deny_unknown_fields)]
pub struct ExportOptionsInput {
    /// Field delimiter: `,` (default), `;`, `\t` or `|`.
    pub delimiter: Option<Text>,
    /// Write a UTF-8 byte-order mark first (default false).
    pub bom: Option<bool>,
    /// `key` (default) or `label`.
    pub header: Option<HeaderOption>,
    /// Guard against spreadsheet formulas (default true).
    pub formula_guard: Option<bool>,
    /// Gzip-compress the file (default false).
    pub gzip: Option<bool>,
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
    pub expand_array: Option<String>,
    /// CSV options in effect.
    pub options: ExportOptions,
    /// Data records written (after expansion; header not counted). Null until COMPLETED.
    pub row_count: Option<i64>,
    /// The file's size in bytes, as served. Null until COMPLETED.
    pub file_size: Option<i64>,
    /// Why the export FAILED, in words you can act on. Null unless FAILED.
    pub error: Option<String>,
    #[oai(rename = "createdAt")]
    pub created_at: String,
    #[oai(rename = "updatedAt")]
    pub updated_at: String,
    /// When the file was ready. Null until COMPLETED.
    #[oai(rename = "completedAt")]
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
            options: options_out(&CsvOptions::default()),
            row_count: None,
            file_size: None,
            error: None,
            created_at: "2024-01-31T12:00:00.000Z".into(),
            updated_at: "2024-01-31T12:00:00.000Z".into(),
            completed_at: None,
            schema: None,
        }
    }
}

/// A new export job.
#[derive(Object)]
#[oai(example)]
pub struct CreateExport {
    /// UUID of the schema whose results to export.
    pub schema_id: Text,
    /// ISO 8601 start: include results created on or after it. A bare date (`2024-01-01`)
    /// means the start of that day (UTC).
    pub start_date: Text,
    /// ISO 8601 end: include results created on or before it. A bare date (`2024-01-31`)
    /// means that whole day, up to 23:59:59.999Z.
    pub end_date: Text,
    /// Key of a top-level array field to expand into one row per item.
    pub expand_array: Option<Text>,
    /// CSV options.
    pub options: Option<ExportOptionsInput>,
}

impl Example for CreateExport {
    fn example() -> Self {
        CreateExport {
            schema_id: "019760a0-0001-7000-8000-000000000001".into(),
            start_date: "2024-01-01T00:00:00.000Z".into(),
            end_date: "2024-01-31T23:59:59.999Z".into(),
            expand_array: None,
            options: None,
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
pub struct ExportList {
    pub data: Vec<Sparse<Export>>,
    pub meta: Meta,
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

const EXPORT_FIELDS: &[&str] = &[
    "id",
    "schema_id",
    "status",
    "start_date",
    "end_date",
    "expand_array",
    "options",
    "row_count",
    "file_size",
    "error",
    "createdAt",
    "updatedAt",
    "completedAt",
    "schema",
];

/// A confirmation.
#[derive(Object)]
pub struct Deleted {
    /// `Export deleted successfully`
    pub message: String,
}

#[derive(ApiResponse)]
pub enum ExportCreated {
    /// Export job created; it runs in the background.
    #[oai(status = 201)]
    Created(Json<Export>),
}

#[derive(ApiResponse)]
pub enum ExportOk {
    /// The export job.
    #[oai(status = 200)]
    Ok(Json<Export>),
}

#[derive(ApiResponse)]
pub enum ExportListOk {
    /// Success.
    #[oai(status = 200)]
    Ok(Json<ExportList>),
}

#[derive(ApiResponse)]
pub enum DownloadOk {
    /// Download URL returned.
    #[oai(status = 200)]
    Ok(Json<DownloadUrl>),
}

#[derive(ApiResponse)]
pub enum ExportDeleted {
    /// Export deleted.
    #[oai(status = 200)]
    Ok(Json<Deleted>),
}

api_errors!(CreateExportErrors {
    BadRequest = 400: "Invalid request body: malformed JSON or id, unparsable dates, start_date after end_date, an expand_array that is not a top-level array field, a bad option",
    Unauthorized = 401: "Missing or invalid authentication",
    NotFound = 404: "Schema not found",
});
api_errors!(ListExportsErrors {
    BadRequest = 400: "Invalid query parameter (the message names it)",
    Unauthorized = 401: "Missing or invalid authentication",
});
api_errors!(GetExportErrors {
    BadRequest = 400: "Malformed export id",
    Unauthorized = 401: "Missing or invalid authentication",
    NotFound = 404: "Export not found",
});
api_errors!(DownloadErrors {
    BadRequest = 400: "Malformed export id",
    Unauthorized = 401: "Missing or invalid authentication",
    NotFound = 404: "Export not found",
    Conflict = 409: "Export is not yet completed (the message says its status)",
});

fn options_out(o: &CsvOptions) -> ExportOptions {
    ExportOptions {
        delimiter: o.delimiter.to_string(),
        bom: o.bom,
        header: match o.header {
            HeaderStyle::Key => HeaderOption::Key,
            HeaderStyle::Label => HeaderOption::Label,
        },
        formula_guard: o.formula_guard,
        gzip: o.gzip,
    }
}

fn options_in(o: Option<ExportOptionsInput>) -> Result<CsvOptions, ApiError> {
    let o = o.unwrap_or_default();
    let d = CsvOptions::default();
    let delimiter = match o.delimiter.as_deref() {
        None => d.delimiter,
        Some(s) => {
            let mut chars = s.chars();
            match (chars.next(), chars.next()) {
                (Some(c), None) if DELIMITERS.contains(&c) => c,
                _ => {
                    return Err(ApiError::bad_request(format!(
                        "options.delimiter {s:?} is not allowed; use one of \",\", \";\", \"\\t\", \"|\""
                    )))
                }
            }
        }
    };
    Ok(CsvOptions {
        delimiter,
        bom: o.bom.unwrap_or(d.bom),
        header: match o.header {
            None => d.header,
            Some(HeaderOption::Key) => HeaderStyle::Key,
            Some(HeaderOption::Label) => HeaderStyle::Label,
        },
        formula_guard: o.formula_guard.unwrap_or(d.formula_guard),
        gzip: o.gzip.unwrap_or(d.gzip),
    })
}

pub fn to_api(e: &ExportRow, with_schema: bool) -> Export {
    Export {
        id: e.id.clone(),
        schema_id: e.schema_id.clone(),
        status: e.status.into(),
        start_date: format_ms(e.start_ms),
        end_date: format_ms(e.end_ms),
        expand_array: e.expand_array.clone(),
        options: options_out(&e.options),
        row_count: e.row_count,
        file_size: e.file_size,
        error: e.error.clone(),
        created_at: format_ms(e.created_at),
        updated_at: format_ms(e.updated_at),
        completed_at: e.completed_at.map(format_ms),
        schema: with_schema
            .then(|| SchemaRef { id: e.schema_id.clone(), name: e.schema_name.clone().unwrap_or_default() }),
    }
}

fn not_found() -> ApiError {
    ApiError::not_found("Export not found")
}

#[OpenApi(prefix_path = "/v1")]
impl ExportsApi {
    /// Create an export
    ///
    /// Creates a new export job. The export compiles all extraction results for the
    /// specified schema within the given date range (both ends inclusive) into a CSV file.
    /// Returns at once with status PENDING; poll `GET /v1/exports/{id}` until COMPLETED,
    /// then ask `GET /v1/exports/{id}/download` for the file's URL.
    #[oai(path = "/exports", method = "post", tag = "ApiTags::Exports")]
    async fn create_export(
        &self,
        auth: ApiKeyAuth,
        state: Data<&Arc<AppState>>,
        body: Json<CreateExport>,
    ) -> Result<ExportCreated, CreateExportErrors> {
        let body = body.0;
        let schema_id = uuid::Uuid::parse_str(&body.schema_id)
            .map_err(|_| ApiError::bad_request(format!("schema_id '{}' is not a valid UUID", body.schema_id)))?
            .to_string();
        let start = parse_instant(&body.start_date, DayEnd::Start)
            .map_err(|m| ApiError::bad_request(format!("start_date: {m}")))?;
        let end =
            parse_instant(&body.end_date, DayEnd::End).map_err(|m| ApiError::bad_request(format!("end_date: {m}")))?;
        if start > end {
            return Err(ApiError::bad_request(format!(
                "start_date ({}) is after end_date ({})",
                format_ms(start),
                format_ms(end)
            ))
            .into());
        }
        let options = options_in(body.options)?;
        let expand = body.expand_array.map(|t| t.0);
        let team = auth.0.id;
        let row = with_db(&state, move |c| {
            let schema = crate::db::schemas::get(c, &team, &schema_id)?
                .ok_or_else(|| ApiError::not_found("Schema not found"))?;
            if let Some(key) = &expand {
                check_expand_array(&schema.definition, key).map_err(ApiError::bad_request)?;
            }
            let now = now_ms();
            let row = ExportRow {
                id: uuid::Uuid::now_v7().to_string(),
                team_id: team,
                schema_id,
                schema_name: Some(schema.name),
                status: ExportStatus::Pending,
                start_ms: start,
                end_ms: end,
                expand_array: expand,
                options,
                row_count: None,
                file_size: None,
                error: None,
                attempts: 0,
                created_at: now,
                updated_at: now,
                completed_at: None,
            };
            crate::db::exports::insert(c, &row)?;
            Ok(row)
        })
        .await?;
        state.jobs.notify();
        Ok(ExportCreated::Created(Json(to_api(&row, false))))
    }

    /// List exports
    ///
    /// Returns a paginated list of export jobs for your team, newest first by default.
    /// `search` matches id, status, schema id, schema name and expand_array.
    #[allow(clippy::too_many_arguments)]
    #[oai(path = "/exports", method = "get", tag = "ApiTags::Exports")]
    async fn list_exports(
        &self,
        auth: ApiKeyAuth,
        state: Data<&Arc<AppState>>,
        /// Page number (min 1).
        #[oai(default = "default_page", validator(minimum(value = "1")))]
        page: Query<u32>,
        /// Items per page (1–100).
        #[oai(default = "default_limit", validator(minimum(value = "1"), maximum(value = "100")))]
        limit: Query<u32>,
        /// Field to sort by (default createdAt); ties break by id.
        sort_by: Query<Option<ExportSortBy>>,
        /// Sort direction (default `desc`).
        sort_order: Query<Option<SortOrder>>,
        /// Case-insensitive search filter.
        search: Query<Option<String>>,
        /// ISO 8601 date filter: created at or after (a bare date: its start).
        created_after: Query<Option<String>>,
        /// ISO 8601 date filter: created at or before (a bare date: its end).
        created_before: Query<Option<String>>,
        /// Comma-separated list of fields to return, e.g. `id,status`.
        fields: Query<Option<String>>,
        /// Related resources to include: `schema` adds `schema: {id, name}`.
        include: Query<Option<String>>,
    ) -> Result<ExportListOk, ListExportsErrors> {
        let col = match sort_by.0 {
            None | Some(ExportSortBy::CreatedAt) => "created_at",
            Some(ExportSortBy::UpdatedAt) => "updated_at",
            Some(ExportSortBy::Status) => "status",
            Some(ExportSortBy::StartDate) => "start_ms",
            Some(ExportSortBy::EndDate) => "end_ms",
        };
        let q = ListParams {
            page: page.0,
            limit: limit.0,
            sort_order: sort_order.0,
            search: search.0,
            created_after: created_after.0,
            created_before: created_before.0,
        }
        .query(col)?;
        let fields = fields_param(fields.0.as_deref(), EXPORT_FIELDS)?;
        let with_schema = include_schema(include.0.as_deref())?;
        let team = auth.0.id;
        let (rows, meta) = with_db(&state, move |c| {
            let (rows, total) = crate::db::exports::list(c, &team, &q)?;
            Ok((rows, PageMeta::new(&q, total)))
        })
        .await?;
        let data = rows.iter().map(|r| Sparse::new(&to_api(r, with_schema), fields.as_deref())).collect();
        Ok(ExportListOk::Ok(Json(ExportList { data, meta: meta.into() })))
    }

    /// Get an export
    #[oai(path = "/exports/:id", method = "get", tag = "ApiTags::Exports")]
    async fn get_export(
        &self,
        auth: ApiKeyAuth,
        state: Data<&Arc<AppState>>,
        /// Export UUID
        id: Path<String>,
    ) -> Result<ExportOk, GetExportErrors> {
        let id = parse_id("id", &id.0)?;
        let team = auth.0.id;
        let row = with_db(&state, move |c| Ok(crate::db::exports::get(c, &team, &id)?)).await?;
        Ok(ExportOk::Ok(Json(to_api(&row.ok_or_else(not_found)?, false))))
    }

    /// Get a download URL
    ///
    /// Returns a time-limited download URL for a completed export file. Use the returned
    /// url to download the CSV file (e.g., with `curl -OJ` or via a browser redirect); it
    /// needs no API key and is valid until `expiresAt`.
    #[oai(path = "/exports/:id/download", method = "get", tag = "ApiTags::Exports")]
    async fn download_export(
        &self,
        auth: ApiKeyAuth,
        state: Data<&Arc<AppState>>,
        /// Export UUID
        id: Path<String>,
    ) -> Result<DownloadOk, DownloadErrors> {
        let id = parse_id("id", &id.0)?;
        let team = auth.0.id;
        let row = with_db(&state, move |c| Ok(crate::db::exports::get(c, &team, &id)?)).await?;
        let row = row.ok_or_else(not_found)?;
        if row.status != ExportStatus::Completed {
            let detail = match row.status {
                ExportStatus::Failed => {
                    format!("Export failed and has no file: {}", row.error.as_deref().unwrap_or("no reason recorded"))
                }
                s => {
                    format!("Export is not yet completed: its status is {}; try again when it is COMPLETED", s.as_str())
                }
            };
            return Err(ApiError::conflict(detail).into());
        }
        let (url, expires_at) = crate::files::signed_url(&state, &row);
        Ok(DownloadOk::Ok(Json(DownloadUrl { url, expires_at: format_ms(expires_at * 1000) })))
    }

    /// Delete an export
    ///
    /// Deletes an export job and its associated generated file. A PENDING job never runs;
    /// a PROCESSING job is cancelled within a second and leaves no file behind. Download
    /// URLs already handed out answer 404 from then on.
    #[oai(path = "/exports/:id", method = "delete", tag = "ApiTags::Exports")]
    async fn delete_export(
        &self,
        auth: ApiKeyAuth,
        state: Data<&Arc<AppState>>,
        /// Export UUID
        id: Path<String>,
    ) -> Result<ExportDeleted, GetExportErrors> {
        let id = parse_id("id", &id.0)?;
        let team = auth.0.id;
        let data_dir = state.data_dir.clone();
        let jobs = state.jobs.clone();
        with_db(&state, move |c| {
            let row = crate::db::exports::delete(c, &team, &id)?.ok_or_else(not_found)?;
            if row.status == ExportStatus::Processing {
                jobs.cancel(&row.id);
            }
            let path = crate::jobs::export_file(&data_dir, &row.id, row.options.gzip);
            if let Err(e) = std::fs::remove_file(&path) {
                if e.kind() != std::io::ErrorKind::NotFound {
                    tracing::warn!(file = %path.display(), error = %e, "could not remove an export file");
                }
            }
            Ok(())
        })
        .await?;
        Ok(ExportDeleted::Ok(Json(Deleted { message: "Export deleted successfully".into() })))
    }
}
