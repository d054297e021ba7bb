//! `/v1/schemas`: the typed fields of a team's extraction results.

use std::sync::Arc;

use poem::web::Data;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::types::{Example, MaybeUndefined};
use poem_openapi::{ApiResponse, Enum, Object, OpenApi};

use super::auth::ApiKeyAuth;
use super::list::{default_limit, default_page, fields_param, ListParams, Meta, SortOrder, Sparse};
use super::text::Text;
use super::{parse_id, with_db, ApiTags};
use crate::api_errors;
use crate::app::AppState;
use crate::db::schemas::{DeleteOutcome, SchemaRow};
use crate::domain::list::PageMeta;
use crate::domain::schema::{FieldDef, SchemaDef};
use crate::domain::time::{format_ms, now_ms};
use crate::error::ApiError;

pub struct SchemasApi;

/// A field's type.
#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq)]
#[oai(rename_all = "lowercase")]
pub enum FieldTypeApi {
    String,
    Number,
    Integer,
    Boolean,
    Date,
    Datetime,
    Object,
    Array,
}

/// One field of a schema.
#[derive(Object, Clone, Debug)]
pub struct SchemaField {
    /// The key in the extraction object: `[A-Za-z_][A-Za-z0-9_]*`, unique among its siblings.
    pub key: Text,
    /// The field's type. Values are exported by their JSON type whatever this says.
    #[oai(rename = "type")]
    pub ty: FieldTypeApi,
    /// A human label, used for CSV headers with `options.header = "label"`.
    #[oai(skip_serializing_if_is_none)]
    pub label: Option<Text>,
    /// Sub-fields: required and non-empty for `object`; optional for `array` (present: an
    /// array of objects with these sub-fields; absent: an array of scalars); not allowed
    /// on scalar types.
    #[oai(skip_serializing_if_is_none)]
    pub fields: Option<Vec<SchemaField>>,
}

/// A schema definition.
#[derive(Object, Clone, Debug)]
pub struct SchemaBody {
    /// The fields, in the order their CSV columns appear.
    pub fields: Vec<SchemaField>,
}

/// A schema.
#[derive(Object, Clone)]
#[oai(example)]
pub struct Schema {
    /// Schema UUID.
    pub id: String,
    /// Schema name (also names download files: `invoices_2024-01-01_2024-01-31.csv`).
    pub name: String,
    /// Free text.
    pub description: Option<String>,
    /// The fields.
    pub schema: SchemaBody,
    #[oai(rename = "createdAt")]
    pub created_at: String,
    #[oai(rename = "updatedAt")]
    pub updated_at: String,
}

/// A new schema.
#[derive(Object)]
#[oai(example)]
pub struct CreateSchema {
    /// Schema name, 1–200 characters.
    pub name: Text,
    /// Free text.
    pub description: Option<Text>,
    /// The fields.
    pub schema: SchemaBody,
}

/// Changes to a schema; absent members stay as they are. Exports already COMPLETED keep
/// their file; exports that have not run yet use the new fields.
#[derive(Object)]
pub struct PatchSchema {
    /// New name.
    pub name: Option<Text>,
    /// New description; `null` clears it.
    pub description: MaybeUndefined<Text>,
    /// New fields.
    pub schema: Option<SchemaBody>,
}

/// A page of schemas.
#[derive(Object)]
pub struct SchemaList {
    pub data: Vec<Sparse<Schema>>,
    pub meta: Meta,
}

/// A confirmation.
#[derive(Object)]
pub struct Message {
    pub message: String,
}

fn seed_fields() -> Vec<SchemaField> {
    let f = |key: &str, ty, label: &str| SchemaField { key: key.into(), ty, label: Some(label.into()), fields: None };
    vec![
        f("invoice_number", FieldTypeApi::String, "Invoice number"),
        f("total", FieldTypeApi::Number, "Total"),
        SchemaField {
            key: "line_items".into(),
            ty: FieldTypeApi::Array,
            label: Some("Line items".into()),
            fields: Some(vec![
                f("description", FieldTypeApi::String, "Description"),
                f("amount", FieldTypeApi::Number, "Amount"),
            ]),
        },
    ]
}

impl Example for Schema {
    fn example() -> Self {
        Schema {
            id: "019760a0-0001-7000-8000-000000000001".into(),
            name: "Invoices".into(),
            description: Some("Supplier invoices with line items".into()),
            schema: SchemaBody { fields: seed_fields() },
            created_at: "2024-01-31T12:00:00.000Z".into(),
            updated_at: "2024-01-31T12:00:00.000Z".into(),
        }
    }
}

impl Example for CreateSchema {
    fn example() -> Self {
        CreateSchema {
            name: "Invoices".into(),
            description: Some("Supplier invoices with line items".into()),
            schema: SchemaBody { fields: seed_fields() },
        }
    }
}

fn to_def(body: &SchemaBody) -> Result<SchemaDef, ApiError> {
    use poem_openapi::types::ToJSON;
    let v = serde_json::json!({ "fields": body.fields.to_json() });
    let def: SchemaDef = serde_json::from_value(v).map_err(|e| ApiError::bad_request(format!("schema: {e}")))?;
    def.validate().map_err(ApiError::bad_request)?;
    Ok(def)
}

fn from_def(def: &SchemaDef) -> SchemaBody {
    fn field(f: &FieldDef) -> SchemaField {
        use crate::domain::schema::FieldType as T;
        SchemaField {
            key: f.key.clone().into(),
            ty: match f.ty {
                T::String => FieldTypeApi::String,
                T::Number => FieldTypeApi::Number,
                T::Integer => FieldTypeApi::Integer,
                T::Boolean => FieldTypeApi::Boolean,
                T::Date => FieldTypeApi::Date,
                T::Datetime => FieldTypeApi::Datetime,
                T::Object => FieldTypeApi::Object,
                T::Array => FieldTypeApi::Array,
            },
            label: f.label.clone().map(Text),
            fields: f.fields.as_ref().map(|v| v.iter().map(field).collect()),
        }
    }
    SchemaBody { fields: def.fields.iter().map(field).collect() }
}

pub fn to_api(row: &SchemaRow) -> Schema {
    Schema {
        id: row.id.clone(),
        name: row.name.clone(),
        description: row.description.clone(),
        schema: from_def(&row.definition),
        created_at: format_ms(row.created_at),
        updated_at: format_ms(row.updated_at),
    }
}

fn check_name(name: &str) -> Result<String, ApiError> {
    let n = name.trim();
    if n.is_empty() || n.chars().count() > 200 {
        return Err(ApiError::bad_request("name must be 1 to 200 characters"));
    }
    Ok(n.to_string())
}

/// `sort_by` for schemas.
#[derive(Enum, Clone, Copy)]
pub enum SchemaSortBy {
    #[oai(rename = "createdAt")]
    CreatedAt,
    #[oai(rename = "updatedAt")]
    UpdatedAt,
    #[oai(rename = "name")]
    Name,
}

const SCHEMA_FIELDS: &[&str] = &["id", "name", "description", "schema", "createdAt", "updatedAt"];

#[derive(ApiResponse)]
pub enum SchemaCreated {
    /// Schema created.
    #[oai(status = 201)]
    Created(Json<Schema>),
}

#[derive(ApiResponse)]
pub enum SchemaOk {
    /// The schema.
    #[oai(status = 200)]
    Ok(Json<Schema>),
}

#[derive(ApiResponse)]
pub enum SchemaListOk {
    /// A page of schemas.
    #[oai(status = 200)]
    Ok(Json<SchemaList>),
}

#[derive(ApiResponse)]
pub enum SchemaDeleted {
    /// Schema deleted.
    #[oai(status = 200)]
    Ok(Json<Message>),
}

api_errors!(CreateSchemaErrors {
    BadRequest = 400: "Invalid request body or schema definition",
    Unauthorized = 401: "Missing or invalid API key",
});
api_errors!(ListSchemasErrors {
    BadRequest = 400: "Invalid query parameter",
    Unauthorized = 401: "Missing or invalid API key",
});
api_errors!(GetSchemaErrors {
    BadRequest = 400: "Malformed schema id",
    Unauthorized = 401: "Missing or invalid API key",
    NotFound = 404: "Schema not found",
});
api_errors!(DeleteSchemaErrors {
    BadRequest = 400: "Malformed schema id",
    Unauthorized = 401: "Missing or invalid API key",
    NotFound = 404: "Schema not found",
    Conflict = 409: "Results or exports still refer to the schema",
});

fn not_found() -> ApiError {
    ApiError::not_found("Schema not found")
}

#[OpenApi(prefix_path = "/v1")]
impl SchemasApi {
    /// Create a schema
    ///
    /// Defines the fields of an extraction. Their order is the CSV column order.
    #[oai(path = "/schemas", method = "post", tag = "ApiTags::Schemas")]
    async fn create_schema(
        &self,
        auth: ApiKeyAuth,
        state: Data<&Arc<AppState>>,
        body: Json<CreateSchema>,
    ) -> Result<SchemaCreated, CreateSchemaErrors> {
        let now = now_ms();
        let row = SchemaRow {
            id: uuid::Uuid::now_v7().to_string(),
            team_id: auth.0.id,
            name: check_name(&body.name)?,
            description: body.0.description.map(|t| t.0),
            definition: to_def(&body.0.schema)?,
            created_at: now,
            updated_at: now,
        };
        let row = with_db(&state, move |c| {
            crate::db::schemas::insert(c, &row)?;
            Ok(row)
        })
        .await?;
        Ok(SchemaCreated::Created(Json(to_api(&row))))
    }

    /// List schemas
    ///
    /// Paginated, newest first by default. `search` matches name and description.
    #[allow(clippy::too_many_arguments)]
    #[oai(path = "/schemas", method = "get", tag = "ApiTags::Schemas")]
    async fn list_schemas(
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
        sort_by: Query<Option<SchemaSortBy>>,
        /// Sort direction (default `desc`).
        sort_order: Query<Option<SortOrder>>,
        /// Case-insensitive substring of name or description.
        search: Query<Option<String>>,
        /// Only schemas created at or after this ISO 8601 time (a bare date: its start).
        created_after: Query<Option<String>>,
        /// Only schemas created at or before this ISO 8601 time (a bare date: its end).
        created_before: Query<Option<String>>,
        /// Comma-separated fields each item carries: id, name, description, schema, createdAt, updatedAt.
        fields: Query<Option<String>>,
        /// Related resources to include; schemas have none.
        include: Query<Option<String>>,
    ) -> Result<SchemaListOk, ListSchemasErrors> {
        let col = match sort_by.0 {
            None | Some(SchemaSortBy::CreatedAt) => "created_at",
            Some(SchemaSortBy::UpdatedAt) => "updated_at",
            Some(SchemaSortBy::Name) => "name",
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
        let fields = fields_param(fields.0.as_deref(), SCHEMA_FIELDS)?;
        if let Some(inc) = include.0.as_deref().filter(|s| !s.trim().is_empty()) {
            return Err(ApiError::bad_request(format!(
                "include: unknown relation '{inc}'; schemas have none to include"
            ))
            .into());
        }
        let team = auth.0.id;
        let (rows, meta) = with_db(&state, move |c| {
            let (rows, total) = crate::db::schemas::list(c, &team, &q)?;
            Ok((rows, PageMeta::new(&q, total)))
        })
        .await?;
        let data = rows.iter().map(|r| Sparse::new(&to_api(r), fields.as_deref())).collect();
        Ok(SchemaListOk::Ok(Json(SchemaList { data, meta: meta.into() })))
    }

    /// Get a schema
    #[oai(path = "/schemas/:id", method = "get", tag = "ApiTags::Schemas")]
    async fn get_schema(
        &self,
        auth: ApiKeyAuth,
        state: Data<&Arc<AppState>>,
        /// Schema UUID
        id: Path<String>,
    ) -> Result<SchemaOk, GetSchemaErrors> {
        let id = parse_id("id", &id.0)?;
        let team = auth.0.id;
        let row = with_db(&state, move |c| Ok(crate::db::schemas::get(c, &team, &id)?)).await?;
        Ok(SchemaOk::Ok(Json(to_api(&row.ok_or_else(not_found)?))))
    }

    /// Update a schema
    ///
    /// Changes name, description and/or fields. Exports already COMPLETED keep their file;
    /// exports that have not run yet use the new fields.
    #[oai(path = "/schemas/:id", method = "patch", tag = "ApiTags::Schemas")]
    async fn update_schema(
        &self,
        auth: ApiKeyAuth,
        state: Data<&Arc<AppState>>,
        /// Schema UUID
        id: Path<String>,
        body: Json<PatchSchema>,
    ) -> Result<SchemaOk, GetSchemaErrors> {
        let id = parse_id("id", &id.0)?;
        let name = body.0.name.as_deref().map(check_name).transpose()?;
        let def = body.0.schema.as_ref().map(to_def).transpose()?;
        let description = body.0.description;
        let team = auth.0.id;
        let row = with_db(&state, move |c| {
            let tx = c
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                .map_err(crate::db::DbError::from)?;
            let Some(mut row) = crate::db::schemas::get(&tx, &team, &id)? else {
                return Err(not_found());
            };
            if let Some(n) = name {
                row.name = n;
            }
            match description {
                MaybeUndefined::Value(d) => row.description = Some(d.0),
                MaybeUndefined::Null => row.description = None,
                MaybeUndefined::Undefined => {}
            }
            if let Some(d) = def {
                row.definition = d;
            }
            row.updated_at = now_ms().max(row.updated_at);
            crate::db::schemas::update(&tx, &row)?;
            tx.commit().map_err(crate::db::DbError::from)?;
            Ok(row)
        })
        .await?;
        Ok(SchemaOk::Ok(Json(to_api(&row))))
    }

    /// Delete a schema
    ///
    /// Only a schema no result or export refers to can be deleted (409 otherwise: delete
    /// those first).
    #[oai(path = "/schemas/:id", method = "delete", tag = "ApiTags::Schemas")]
    async fn delete_schema(
        &self,
        auth: ApiKeyAuth,
        state: Data<&Arc<AppState>>,
        /// Schema UUID
        id: Path<String>,
    ) -> Result<SchemaDeleted, DeleteSchemaErrors> {
        let id = parse_id("id", &id.0)?;
        let team = auth.0.id;
        match with_db(&state, move |c| Ok(crate::db::schemas::delete(c, &team, &id)?)).await? {
            DeleteOutcome::Deleted => {
                Ok(SchemaDeleted::Ok(Json(Message { message: "Schema deleted successfully".into() })))
            }
            DeleteOutcome::NotFound => Err(not_found().into()),
            DeleteOutcome::InUse(results, exports) => Err(ApiError::conflict(format!(
                "The schema is still used by {results} result(s) and {exports} export(s); delete those first"
            ))
            .into()),
        }
    }
}
