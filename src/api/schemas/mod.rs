//! `/v1/schemas`: the typed fields of a team's extraction results.

use std::sync::Arc;

use poem::web::Data;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::types::MaybeUndefined;
use poem_openapi::{Enum, OpenApi};

use super::auth::ApiKeyAuth;
use super::body::JsonBody;
use super::list::{default_limit, default_page, Includes, ListParams, ListSpec, SortOrder, Sparse};
use super::{with_db, with_writer, ApiTags, Message};
use crate::db::schemas::{DeleteOutcome, SchemaRow};
use crate::domain::time::now_ms;
use crate::error::ApiError;
use crate::state::AppState;
use crate::{api_errors, api_list_ok, api_ok};

pub struct SchemasApi;

mod models;

pub use models::*;

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

api_ok!(SchemaCreated::Created = 201: Schema, "Schema created.");

api_ok!(SchemaOk::Ok = 200: Schema, "The schema.");

api_list_ok!(SchemaListOk::Ok = 200: SchemaList, "A page of schemas.");

api_ok!(SchemaDeleted::Ok = 200: Message, "Schema deleted.");

api_errors!(CreateSchemaErrors: keyed_json_body {
    BadRequest = 400: "Invalid request body or schema definition, or JSON nested more than 64 levels",
});
api_errors!(UpdateSchemaErrors: json_body {
    BadRequest = 400: "Malformed schema id, invalid request body or schema definition, or JSON nested more than 64 levels",
    NotFound = 404: "Schema not found",
});
api_errors!(ListSchemasErrors {
    BadRequest = 400: "Invalid query parameter",
});
api_errors!(GetSchemaErrors {
    BadRequest = 400: "Malformed schema id",
    NotFound = 404: "Schema not found",
});
api_errors!(DeleteSchemaErrors: writes {
    BadRequest = 400: "Malformed schema id",
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
        /// Makes a retry safe: a repeat with the same key, method, path and body within 24
        /// hours gets the first answer again (with `Idempotent-Replayed: true`) and changes
        /// nothing; see "Safe retries" in the API description. 1–255 visible ASCII characters.
        #[oai(name = "Idempotency-Key")]
        _idempotency_key: poem_openapi::param::Header<Option<String>>,
        body: JsonBody<CreateSchema>,
    ) -> Result<SchemaCreated, CreateSchemaErrors> {
        let now = now_ms();
        let row = SchemaRow {
            id: uuid::Uuid::now_v7().to_string(),
            team_id: auth.0.id,
            name: check_name(&body.0.name)?,
            description: body.0.description.map(|t| t.0),
            definition: to_def(&body.0.schema)?,
            created_at: now,
            updated_at: now,
        };
        let row = with_writer(&state, move |c| {
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
        /// Case-insensitive substring of name or description; at most 200 characters.
        #[oai(validator(max_length = 200))]
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
        .check(ListSpec { sort_column: col, fields: SCHEMA_FIELDS, includes: Includes::Nothing("schemas") })?;
        let team = auth.0.id;
        let page = list.fetch(&state, move |c, q, _| Ok(crate::db::schemas::list(c, &team, q)?)).await?;
        Ok(SchemaListOk::Ok(
            page.json(|out, r, fields, _| out.serde(&Sparse::<Schema>::new(&to_api(r), fields.names())))?,
        ))
    }

    /// Get a schema
    #[oai(path = "/schemas/:id", method = "get", tag = "ApiTags::Schemas")]
    async fn get_schema(
        &self,
        auth: ApiKeyAuth,
        state: Data<&Arc<AppState>>,
        /// Schema UUID
        id: Path<uuid::Uuid>,
    ) -> Result<SchemaOk, GetSchemaErrors> {
        let id = id.0.to_string();
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
        id: Path<uuid::Uuid>,
        body: JsonBody<PatchSchema>,
    ) -> Result<SchemaOk, UpdateSchemaErrors> {
        let id = id.0.to_string();
        let name = body.0.name.as_deref().map(check_name).transpose()?;
        let def = body.0.schema.as_ref().map(to_def).transpose()?;
        let description = body.0.description;
        let team = auth.0.id;
        let row = with_writer(&state, move |tx| {
            let Some(mut row) = crate::db::schemas::get(tx, &team, &id)? else {
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
            crate::db::schemas::update(tx, &row)?;
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
        id: Path<uuid::Uuid>,
    ) -> Result<SchemaDeleted, DeleteSchemaErrors> {
        let id = id.0.to_string();
        let team = auth.0.id;
        match with_writer(&state, move |c| Ok(crate::db::schemas::delete(c, &team, &id)?)).await? {
            DeleteOutcome::Deleted => Ok(SchemaDeleted::Ok(Json(Message::new("Schema deleted successfully")))),
            DeleteOutcome::NotFound => Err(not_found().into()),
            DeleteOutcome::InUse(results, exports) => Err(ApiError::conflict(format!(
                "The schema is still used by {results} result(s) and {exports} export(s); delete those first"
            ))
            .into()),
        }
    }
}
