//! `/v1/exports`: asynchronous export jobs and their download links.

use std::sync::Arc;

use poem::web::Data;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::OpenApi;

use super::auth::ApiKeyAuth;
use super::body::JsonBody;
use super::list::{default_limit, default_page, Includes, ListParams, ListSpec, SortOrder};
use super::{with_db, with_writer, ApiTags, Message};
use crate::db::exports::{ExportRow, QuotaExceeded, Quotas};
use crate::domain::export::{ExportStatus, NewExport};
use crate::domain::time::format_ms;
use crate::error::ApiError;
use crate::services;
use crate::services::exports::{CreateError, DeleteError};
use crate::state::AppState;
use crate::{api_errors, api_list_ok, api_ok};

pub struct ExportsApi;

mod models;

pub use models::*;

const EXPORT_FIELDS: &[&str] = &[
    "id",
    "schema_id",
    "status",
    "start_date",
    "end_date",
    "expand_array",
    "options",
    "row_count",
    "progress",
    "file_size",
    "error",
    "createdAt",
    "updatedAt",
    "completedAt",
    "schema",
];

api_ok!(ExportCreated::Created = 201: Export, "Export job created; it runs in the background.");

api_ok!(ExportOk::Ok = 200: Export, "The export job.");

api_list_ok!(ExportListOk::Ok = 200: ExportList, "Success.");

api_ok!(DownloadOk::Ok = 200: DownloadUrl, "Download URL returned.");

api_ok!(ExportDeleted::Ok = 200: Message, "Export deleted.");

api_errors!(CreateExportErrors: keyed_json_body {
    BadRequest = 400: "Invalid request body: malformed JSON or id, unparsable dates, start_date after end_date, an expand_array that is not a top-level array field, a bad option, JSON nested more than 64 levels",
    NotFound = 404: "Schema not found",
});
api_errors!(ListExportsErrors {
    BadRequest = 400: "Invalid query parameter (the message names it)",
});
api_errors!(GetExportErrors {
    BadRequest = 400: "Malformed export id",
    NotFound = 404: "Export not found",
});
api_errors!(DeleteExportErrors: writes {
    BadRequest = 400: "Malformed export id",
    NotFound = 404: "Export not found",
});
api_errors!(DownloadErrors {
    BadRequest = 400: "Malformed export id",
    NotFound = 404: "Export not found",
    Conflict = 409: "Export is not yet completed (the message says its status)",
});

/// Seconds to suggest waiting when a team has too many exports queued.
const QUEUED_RETRY_AFTER: u64 = 10;
/// Seconds to suggest waiting when a team's export files fill its storage quota.
const STORAGE_RETRY_AFTER: u64 = 60;

/// The 429 for a quota a new export would pass.
fn quota_error(q: QuotaExceeded) -> ApiError {
    match q {
        QuotaExceeded::Queued { queued, max } => ApiError::too_many(
            format!(
                "Your team has {queued} exports PENDING or PROCESSING, the most allowed (--max-queued-exports {max}); \
                 wait for some to finish, or delete some with DELETE /v1/exports/{{id}}, then try again"
            ),
            QUEUED_RETRY_AFTER,
        ),
        QuotaExceeded::Storage { used, max } => ApiError::too_many(
            format!(
                "Your team's export files take {used} bytes, at or over the limit of {max} bytes \
                 (--max-export-storage); delete exports you no longer need with DELETE /v1/exports/{{id}}, \
                 then try again"
            ),
            STORAGE_RETRY_AFTER,
        ),
    }
}

fn not_found() -> ApiError {
    ApiError::not_found("Export not found")
}

impl From<CreateError> for ApiError {
    fn from(e: CreateError) -> Self {
        match e {
            CreateError::SchemaNotFound => ApiError::not_found("Schema not found"),
            CreateError::ExpandArray(m) | CreateError::Columns(m) => ApiError::bad_request(m),
            CreateError::Quota(q) => quota_error(q),
            CreateError::Db(e) => e.into(),
        }
    }
}

impl From<DeleteError> for ApiError {
    fn from(e: DeleteError) -> Self {
        match e {
            DeleteError::NotFound => not_found(),
            DeleteError::Db(e) => e.into(),
        }
    }
}

/// An export of the team, or 404 (another team's export answers as a missing one).
async fn find(state: &Arc<AppState>, team: String, id: uuid::Uuid) -> Result<ExportRow, ApiError> {
    let id = id.to_string();
    with_db(state, move |c| Ok(crate::db::exports::get(c, &team, &id)?)).await?.ok_or_else(not_found)
}

#[OpenApi(prefix_path = "/v1")]
impl ExportsApi {
    /// Create an export
    ///
    /// Creates a new export job. The export compiles all extraction results for the
    /// specified schema within the given date range (both ends inclusive) into a CSV file.
    /// Returns at once with status PENDING; poll `GET /v1/exports/{id}` until COMPLETED,
    /// then ask `GET /v1/exports/{id}/download` for the file's URL.
    ///
    /// The file: UTF-8, RFC 4180 (`\r\n` after every record, a header first, quotes only
    /// where needed). Columns `id`, `file_name`, `createdAt`, then the schema's fields depth
    /// first (`parent.child` for objects; arrays as compact JSON, or one row per item with
    /// `expand_array`). Values by their JSON type, never coerced; text starting with `=`,
    /// `+`, `-`, `@`, tab or CR, header cells (keys and labels) included, gets a leading `'`
    /// unless `options.formula_guard` is false.
    /// Rows ordered by `createdAt`, then `id`.
    ///
    /// Quotas per team, each answered with 429, `Retry-After` and a message naming the
    /// setting: at most `--max-queued-exports` exports PENDING or PROCESSING at once
    /// (default 100; wait for some to finish or delete some), and, when the server sets
    /// `--max-export-storage`, at most that many bytes of export files (delete exports you no
    /// longer need; `file_size` tells each one's share). Like every `/v1` request, creating an
    /// export also counts towards the per-key rate limit (`--rate-limit`).
    #[oai(path = "/exports", method = "post", tag = "ApiTags::Exports")]
    async fn create_export(
        &self,
        auth: ApiKeyAuth,
        state: Data<&Arc<AppState>>,
        /// Makes a retry safe: a repeat with the same key, method, path and body within 24
        /// hours gets the first answer again (with `Idempotent-Replayed: true`) and changes
        /// nothing; see "Safe retries" in the API description. 1–255 visible ASCII characters.
        #[oai(name = "Idempotency-Key")]
        _idempotency_key: poem_openapi::param::Header<Option<String>>,
        body: JsonBody<CreateExport>,
    ) -> Result<ExportCreated, CreateExportErrors> {
        let new = NewExport::try_from(body.0)?;
        let team = auth.0.id;
        let quotas =
            Quotas { max_queued: state.limits.max_queued_exports, max_storage: state.limits.max_export_storage };
        let row = with_writer(&state, move |c| Ok(services::exports::create(c, team, new, quotas)?)).await?;
        state.jobs.notify();
        tracing::info!(export_id = %row.id, team_id = %row.team_id, export_status = "PENDING", "export created");
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
        /// Case-insensitive substring of the id, status, schema id, schema name or
        /// expand_array; at most 200 characters.
        #[oai(validator(max_length = 200))]
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
        let list = ListParams {
            page: page.0,
            limit: limit.0,
            sort_order: sort_order.0,
            search: search.0,
            created_after: created_after.0,
            created_before: created_before.0,
            fields: fields.0,
            include: include.0,
        }
        .check(ListSpec { sort_column: col, fields: EXPORT_FIELDS, includes: Includes::Schema })?;
        let team = auth.0.id;
        let counts = state.list_counts.clone();
        let page = list.fetch(&state, move |c, q, _| Ok(crate::db::exports::list(c, &team, q, Some(&counts))?)).await?;
        Ok(ExportListOk::Ok(page.json(write_item)?))
    }

    /// Get an export
    #[oai(path = "/exports/:id", method = "get", tag = "ApiTags::Exports")]
    async fn get_export(
        &self,
        auth: ApiKeyAuth,
        state: Data<&Arc<AppState>>,
        /// Export UUID
        id: Path<uuid::Uuid>,
    ) -> Result<ExportOk, GetExportErrors> {
        let row = find(&state, auth.0.id, id.0).await?;
        Ok(ExportOk::Ok(Json(to_api(&row, false))))
    }

    /// Get a download URL
    ///
    /// Returns a time-limited download URL for a completed export file. Use the returned
    /// url to download the CSV file (e.g., with `curl -OJ` or via a browser redirect); it
    /// needs no API key and is valid until `expiresAt`. Where the server keeps export files
    /// in S3-compatible object storage, the URL is a presigned URL of the object store (the
    /// file's name and content type come back in its `Content-Disposition` and
    /// `Content-Type`); otherwise it is this server's `/files/...` route.
    #[oai(path = "/exports/:id/download", method = "get", tag = "ApiTags::Exports")]
    async fn download_export(
        &self,
        auth: ApiKeyAuth,
        state: Data<&Arc<AppState>>,
        /// Export UUID
        id: Path<uuid::Uuid>,
    ) -> Result<DownloadOk, DownloadErrors> {
        let row = find(&state, auth.0.id, id.0).await?;
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
        let (url, expires_at) = super::files::signed_url(&state, &row);
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
        id: Path<uuid::Uuid>,
    ) -> Result<ExportDeleted, DeleteExportErrors> {
        let id = id.0.to_string();
        let team = auth.0.id;
        let (row, hooks) = with_writer(&state, move |c| Ok(services::exports::delete(c, &team, &id)?)).await?;
        let (state, span) = (state.clone(), tracing::Span::current());
        tokio::task::spawn_blocking(move || {
            span.in_scope(|| services::exports::finish_delete(&state.jobs, &state.metrics, &row, hooks))
        })
        .await
        .map_err(ApiError::internal)?;
        Ok(ExportDeleted::Ok(Json(Message::new("Export deleted successfully"))))
    }
}
