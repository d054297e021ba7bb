//! `/v1/results` and `/v1/schemas/{id}/results`: extraction results, the rows of exports.

use std::sync::Arc;

use poem::web::Data;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::types::Example;
use poem_openapi::{Enum, Object, OpenApi};
use serde_json::Value;

use super::auth::ApiKeyAuth;
use super::body::JsonBody;
use super::list::{
    default_limit, default_page, Fields, Includes, JsonOut, ListParams, ListSpec, Meta, SchemaRef, SortOrder, Sparse,
};
use super::ndjson::Ndjson;
use super::types::{JsonObject, Text};
use super::{parse_id, with_db, with_writer, with_writer_alone, ApiTags, Message};
use crate::db::results::{NewResult, ResultRecord};
use crate::db::Conn;
use crate::domain::list::ListQuery;
use crate::domain::time::{format_ms, now_ms, parse_instant, DayEnd};
use crate::error::ApiError;
use crate::state::AppState;
use crate::{api_errors, api_list_ok, api_ok};

pub struct ResultsApi;

/// An extraction result.
#[derive(Object, Clone)]
#[oai(example)]
pub struct ResultItem {
    /// Result UUID.
    pub id: String,
    /// The schema the extraction follows.
    pub schema_id: String,
    /// The source document's file name.
    #[oai(nullable)]
    pub file_name: Option<String>,
    /// Always `SUCCESS`: only successful extractions are stored.
    pub status: String,
    /// The extracted data, exactly as sent. In lists only with `include_extraction=true`.
    #[oai(skip_serializing_if_is_none)]
    pub extraction: Option<Value>,
    /// When the document was extracted; exports select results by this time.
    #[oai(rename = "createdAt")]
    pub created_at: String,
    #[oai(rename = "updatedAt")]
    pub updated_at: String,
    /// The schema, with `include=schema`.
    #[oai(skip_serializing_if_is_none)]
    pub schema: Option<SchemaRef>,
}

impl Example for ResultItem {
    fn example() -> Self {
        ResultItem {
            id: "019760a0-0100-7000-8000-000000000100".into(),
            schema_id: "019760a0-0001-7000-8000-000000000001".into(),
            file_name: Some("invoice-00000001.pdf".into()),
            status: "SUCCESS".into(),
            extraction: Some(serde_json::json!({"invoice_number": "INV-00000001", "total": 1250.0,
                "line_items": [{"description": "Consulting hours", "amount": 1250.0}]})),
            created_at: "2024-01-31T12:00:00.000Z".into(),
            updated_at: "2024-01-31T12:00:00.000Z".into(),
            schema: None,
        }
    }
}

/// A new result.
#[derive(Object)]
#[oai(example)]
pub struct CreateResult {
    /// UUID of the schema the extraction follows.
    pub schema_id: uuid::Uuid,
    /// The extracted data: a JSON object. Kept exactly as sent.
    pub extraction: JsonObject,
    /// The source document's file name.
    #[oai(nullable)]
    pub file_name: Option<Text>,
    /// When it was extracted (ISO 8601), for backfills; default now.
    #[oai(nullable, rename = "createdAt")]
    pub created_at: Option<Text>,
}

impl Example for CreateResult {
    fn example() -> Self {
        CreateResult {
            schema_id: uuid::Uuid::from_u128(0x019760a0_0001_7000_8000_000000000001),
            extraction: JsonObject(
                serde_json::json!({"invoice_number": "INV-00000001", "total": 1250.0})
                    .as_object()
                    .cloned()
                    .unwrap_or_default(),
            ),
            file_name: Some("invoice-00000001.pdf".into()),
            created_at: Some("2024-01-15T09:30:00.000Z".into()),
        }
    }
}

/// How many results a bulk upload stored.
#[derive(Object)]
pub struct Inserted {
    pub inserted: u64,
}

/// A page of results.
#[derive(Object)]
pub struct ResultList {
    pub data: Vec<Sparse<ResultItem>>,
    pub meta: Meta,
}

/// `sort_by` for results.
#[derive(Enum, Clone, Copy)]
pub enum ResultSortBy {
    #[oai(rename = "createdAt")]
    CreatedAt,
    #[oai(rename = "updatedAt")]
    UpdatedAt,
}

const RESULT_FIELDS: &[&str] =
    &["id", "schema_id", "file_name", "status", "extraction", "createdAt", "updatedAt", "schema"];

api_ok!(ResultCreated::Created = 201: ResultItem, "Result stored.");

api_ok!(BulkCreated::Created = 201: Inserted, "Every line stored.");

api_ok!(ResultOk::Ok = 200: ResultItem, "The result, with its extraction.");

api_list_ok!(ResultListOk::Ok = 200: ResultList, "A page of results.");

api_ok!(ResultDeleted::Ok = 200: Message, "Result deleted.");

api_errors!(CreateResultErrors: keyed_json_body {
    BadRequest = 400: "Invalid request body: extraction not an object, bad createdAt, malformed schema_id, JSON nested more than 64 levels",
    NotFound = 404: "Schema not found",
});
api_errors!(BulkErrors: keyed_writes {
    BadRequest = 400: "A line is invalid or nested more than 64 levels (the message names it); nothing was stored",
    NotFound = 404: "Schema not found",
    PayloadTooLarge = 413: "The body is larger than the configured limit (`--max-body`, default 256 MB)",
    UnsupportedMediaType = 415: "The body was not sent with `Content-Type: application/x-ndjson` (`application/ndjson` and `application/jsonl` are accepted too)",
});
api_errors!(ListResultsErrors {
    BadRequest = 400: "Invalid query parameter",
});
api_errors!(GetResultErrors {
    BadRequest = 400: "Malformed result id",
    NotFound = 404: "Result not found",
});
api_errors!(DeleteResultErrors: writes {
    BadRequest = 400: "Malformed result id",
    NotFound = 404: "Result not found",
});

fn to_api(r: &ResultRecord, with_extraction: bool, schema: Option<SchemaRef>) -> ResultItem {
    ResultItem {
        id: r.id.clone(),
        schema_id: r.schema_id.clone(),
        file_name: r.file_name.clone(),
        status: "SUCCESS".into(),
        extraction: with_extraction.then(|| serde_json::from_str(&r.extraction).unwrap_or(Value::Null)),
        created_at: format_ms(r.created_at),
        updated_at: format_ms(r.updated_at),
        schema,
    }
}

/// Writes a result as a list item: the keys of [`ResultItem`], in its order and with the
/// values `to_api` gives them, straight from the row, only those `fields` keeps (no
/// `serde_json::Value` tree per item but the extraction's, when it was asked for).
/// Hand-written as the exports' items are (see `exports::write_item`); a test compares it
/// with the single-result GET.
fn write_item(
    out: &mut JsonOut,
    (r, schema): &(ResultRecord, Option<SchemaRef>),
    fields: Fields<'_>,
    with_extraction: bool,
) {
    out.object(fields, |o| {
        o.str("id", &r.id);
        o.str("schema_id", &r.schema_id);
        o.opt_str("file_name", r.file_name.as_deref());
        o.str("status", "SUCCESS");
        if with_extraction {
            o.serde("extraction", &serde_json::from_str(&r.extraction).unwrap_or(Value::Null));
        }
        o.time("createdAt", r.created_at);
        o.time("updatedAt", r.updated_at);
        if let Some(schema) = schema {
            o.opt_object("schema", Some(schema), |o, s| {
                o.str("id", &s.id);
                o.str("name", &s.name);
            });
        }
    });
}

fn schema_missing() -> ApiError {
    ApiError::not_found("Schema not found")
}

#[OpenApi(prefix_path = "/v1")]
impl ResultsApi {
    /// Store a result
    ///
    /// Stores one extraction result. `extraction` must be a JSON object; its values are kept
    /// exactly as sent, and exported by their JSON type.
    #[oai(path = "/results", method = "post", tag = "ApiTags::Results")]
    async fn create_result(
        &self,
        auth: ApiKeyAuth,
        state: Data<&Arc<AppState>>,
        /// Makes a retry safe: a repeat with the same key, method, path and body within 24
        /// hours gets the first answer again (with `Idempotent-Replayed: true`) and changes
        /// nothing; see "Safe retries" in the API description. 1–255 visible ASCII characters.
        #[oai(name = "Idempotency-Key")]
        _idempotency_key: poem_openapi::param::Header<Option<String>>,
        body: JsonBody<CreateResult>,
    ) -> Result<ResultCreated, CreateResultErrors> {
        let body = body.0;
        let schema_id = body.schema_id.to_string();
        let created_at = match body.created_at.as_deref() {
            Some(s) => parse_instant(s, DayEnd::Start).map_err(|m| ApiError::bad_request(format!("createdAt: {m}")))?,
            None => now_ms(),
        };
        let new = NewResult {
            file_name: body.file_name.map(|t| t.0),
            created_at,
            extraction: serde_json::Value::Object(body.extraction.0).to_string(),
        };
        let team = auth.0.id;
        let rec = with_writer(&state, move |c| {
            crate::db::schemas::get(c, &team, &schema_id)?.ok_or_else(schema_missing)?;
            let ids = crate::db::results::insert_in(c, &team, &schema_id, [new])?;
            crate::db::results::get(c, &team, &ids[0])?.ok_or_else(|| ApiError::internal("stored result vanished"))
        })
        .await?;
        Ok(ResultCreated::Created(Json(to_api(&rec, true, None))))
    }

    /// Upload results in bulk
    ///
    /// NDJSON, one `{"extraction": {...}, "file_name"?, "createdAt"?}` per line. All or
    /// nothing: a bad line is a 400 whose message names its line number, and nothing is
    /// stored. Blank lines are skipped. Bodies over the configured limit (`--max-body`) get 413.
    #[oai(path = "/schemas/:id/results", method = "post", tag = "ApiTags::Results")]
    async fn upload_results(
        &self,
        auth: ApiKeyAuth,
        state: Data<&Arc<AppState>>,
        /// Schema UUID
        id: Path<uuid::Uuid>,
        /// Makes a retry safe: a repeat with the same key, method, path and body within 24
        /// hours gets the first answer again (with `Idempotent-Replayed: true`) and changes
        /// nothing; see "Safe retries" in the API description. 1–255 visible ASCII characters.
        #[oai(name = "Idempotency-Key")]
        _idempotency_key: poem_openapi::param::Header<Option<String>>,
        body: Ndjson,
    ) -> Result<BulkCreated, BulkErrors> {
        let schema_id = id.0.to_string();
        let team = auth.0.id;
        let now = now_ms();
        // first the whole body, checked line by line, into a private file: the write
        // connection is not held while the client is still sending
        let dir = state.data_dir.uploads();
        let spool =
            body.stream_into(move |input| crate::import::spool(&dir, now, input).map_err(ApiError::from)).await?;
        let n = with_writer_alone(&state, move |c| {
            let mut spool = spool;
            crate::db::schemas::get(c, &team, &schema_id)?.ok_or_else(schema_missing)?;
            spool.import_into(c, &team, &schema_id, now).map_err(ApiError::from)
        })
        .await?;
        Ok(BulkCreated::Created(Json(Inserted { inserted: n })))
    }

    /// List results
    ///
    /// Paginated, newest first by default. `search` matches the file name. Extractions are
    /// left out unless `include_extraction=true`.
    #[allow(clippy::too_many_arguments)]
    #[oai(path = "/results", method = "get", tag = "ApiTags::Results")]
    async fn list_results(
        &self,
        auth: ApiKeyAuth,
        state: Data<&Arc<AppState>>,
        /// Page number (min 1).
        #[oai(default = "default_page", validator(minimum(value = "1")))]
        page: Query<u32>,
        /// Items per page (1–100).
        #[oai(default = "default_limit", validator(minimum(value = "1"), maximum(value = "100")))]
        limit: Query<u32>,
        /// Field to sort by; ties break by id.
        sort_by: Query<Option<ResultSortBy>>,
        /// Sort direction (default `desc`).
        sort_order: Query<Option<SortOrder>>,
        /// Case-insensitive substring of the file name; at most 200 characters.
        #[oai(validator(max_length = 200))]
        search: Query<Option<String>>,
        /// Only results created at or after this ISO 8601 time (a bare date: its start).
        created_after: Query<Option<String>>,
        /// Only results created at or before this ISO 8601 time (a bare date: its end).
        created_before: Query<Option<String>>,
        /// Comma-separated fields each item carries: id, schema_id, file_name, status, extraction, createdAt, updatedAt, schema.
        fields: Query<Option<String>>,
        /// `schema`: each item gains `schema: {id, name}`.
        include: Query<Option<String>>,
        /// Only results of this schema (UUID).
        schema_id: Query<Option<String>>,
        /// Include each result's extraction (default false).
        #[oai(default)]
        include_extraction: Query<bool>,
    ) -> Result<ResultListOk, ListResultsErrors> {
        let col = match sort_by.0 {
            None | Some(ResultSortBy::CreatedAt) => "created_at",
            Some(ResultSortBy::UpdatedAt) => "updated_at",
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
        .check(ListSpec { sort_column: col, fields: RESULT_FIELDS, includes: Includes::Schema })?;
        let schema_filter =
            schema_id.0.as_deref().filter(|s| !s.is_empty()).map(|s| parse_id("schema_id", s)).transpose()?;
        let with_extraction = include_extraction.0;
        let team = auth.0.id;
        let counts = state.list_counts.clone();
        let fetch = move |c: &mut Conn, q: &ListQuery, with_schema: bool| {
            let (rows, total) =
                crate::db::results::list(c, &team, schema_filter.as_deref(), with_extraction, q, Some(&counts))?;
            if !with_schema {
                return Ok((rows.into_iter().map(|r| (r, None)).collect(), total));
            }
            let mut ids: Vec<String> = rows.iter().map(|r| r.schema_id.clone()).collect();
            ids.sort();
            ids.dedup();
            let names = crate::db::schemas::names(c, &team, &ids)?;
            let rows = rows
                .into_iter()
                .map(|r| {
                    let name =
                        names.iter().find(|(id, _)| *id == r.schema_id).map(|(_, n)| n.clone()).unwrap_or_default();
                    let schema = SchemaRef { id: r.schema_id.clone(), name };
                    (r, Some(schema))
                })
                .collect();
            Ok((rows, total))
        };
        let page = list.fetch(&state, fetch).await?;
        Ok(ResultListOk::Ok(page.json(|out, row, fields, _| write_item(out, row, fields, with_extraction))?))
    }

    /// Get a result
    #[oai(path = "/results/:id", method = "get", tag = "ApiTags::Results")]
    async fn get_result(
        &self,
        auth: ApiKeyAuth,
        state: Data<&Arc<AppState>>,
        /// Result UUID
        id: Path<uuid::Uuid>,
    ) -> Result<ResultOk, GetResultErrors> {
        let id = id.0.to_string();
        let team = auth.0.id;
        let rec = with_db(&state, move |c| Ok(crate::db::results::get(c, &team, &id)?)).await?;
        let rec = rec.ok_or_else(|| ApiError::not_found("Result not found"))?;
        Ok(ResultOk::Ok(Json(to_api(&rec, true, None))))
    }

    /// Delete a result
    ///
    /// Exports already COMPLETED keep their file.
    #[oai(path = "/results/:id", method = "delete", tag = "ApiTags::Results")]
    async fn delete_result(
        &self,
        auth: ApiKeyAuth,
        state: Data<&Arc<AppState>>,
        /// Result UUID
        id: Path<uuid::Uuid>,
    ) -> Result<ResultDeleted, DeleteResultErrors> {
        let id = id.0.to_string();
        let team = auth.0.id;
        if !with_writer(&state, move |c| Ok(crate::db::results::delete(c, &team, &id)?)).await? {
            return Err(ApiError::not_found("Result not found").into());
        }
        Ok(ResultDeleted::Ok(Json(Message::new("Result deleted successfully"))))
    }
}
