//! The objects of `/v1/schemas` and their conversions to the domain's schema definition.

use poem_openapi::types::{Example, MaybeUndefined};
use poem_openapi::{Enum, Object};

use crate::api::list::{Meta, Sparse};
use crate::api::types::Text;
use crate::db::schemas::SchemaRow;
use crate::domain::schema::{FieldDef, FieldType, SchemaDef, SchemaName};
use crate::domain::time::format_ms;
use crate::error::ApiError;

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

impl From<FieldType> for FieldTypeApi {
    fn from(t: FieldType) -> Self {
        match t {
            FieldType::String => FieldTypeApi::String,
            FieldType::Number => FieldTypeApi::Number,
            FieldType::Integer => FieldTypeApi::Integer,
            FieldType::Boolean => FieldTypeApi::Boolean,
            FieldType::Date => FieldTypeApi::Date,
            FieldType::Datetime => FieldTypeApi::Datetime,
            FieldType::Object => FieldTypeApi::Object,
            FieldType::Array => FieldTypeApi::Array,
        }
    }
}

impl From<FieldTypeApi> for FieldType {
    fn from(t: FieldTypeApi) -> Self {
        match t {
            FieldTypeApi::String => FieldType::String,
            FieldTypeApi::Number => FieldType::Number,
            FieldTypeApi::Integer => FieldType::Integer,
            FieldTypeApi::Boolean => FieldType::Boolean,
            FieldTypeApi::Date => FieldType::Date,
            FieldTypeApi::Datetime => FieldType::Datetime,
            FieldTypeApi::Object => FieldType::Object,
            FieldTypeApi::Array => FieldType::Array,
        }
    }
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
    #[oai(skip_serializing_if_is_none, validator(min_items = 1))]
    pub fields: Option<Vec<SchemaField>>,
}

/// A schema definition.
#[derive(Object, Clone, Debug)]
pub struct SchemaBody {
    /// The fields, in the order their CSV columns appear.
    #[oai(validator(min_items = 1))]
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
    #[oai(nullable)]
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
    #[oai(validator(min_length = 1, max_length = 200))]
    pub name: Text,
    /// Free text.
    #[oai(nullable)]
    pub description: Option<Text>,
    /// The fields.
    pub schema: SchemaBody,
}

/// Changes to a schema; absent members stay as they are. Exports already COMPLETED keep
/// their file; exports that have not run yet use the new fields.
#[derive(Object)]
pub struct PatchSchema {
    /// New name, 1–200 characters.
    #[oai(nullable, validator(min_length = 1, max_length = 200))]
    pub name: Option<Text>,
    /// New description; `null` clears it.
    #[oai(nullable)]
    pub description: MaybeUndefined<Text>,
    /// New fields.
    #[oai(nullable)]
    pub schema: Option<SchemaBody>,
}

/// A page of schemas.
#[derive(Object)]
pub struct SchemaList {
    pub data: Vec<Sparse<Schema>>,
    pub meta: Meta,
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

impl From<&SchemaField> for FieldDef {
    fn from(f: &SchemaField) -> Self {
        FieldDef {
            key: f.key.0.clone(),
            ty: f.ty.into(),
            label: f.label.as_ref().map(|l| l.0.clone()),
            fields: f.fields.as_ref().map(|v| v.iter().map(FieldDef::from).collect()),
        }
    }
}

impl From<&FieldDef> for SchemaField {
    fn from(f: &FieldDef) -> Self {
        SchemaField {
            key: f.key.clone().into(),
            ty: f.ty.into(),
            label: f.label.clone().map(Text),
            fields: f.fields.as_ref().map(|v| v.iter().map(SchemaField::from).collect()),
        }
    }
}

/// The domain's definition, checked by every rule of a schema (the message names the field).
pub(super) fn to_def(body: &SchemaBody) -> Result<SchemaDef, ApiError> {
    SchemaDef::new(body.fields.iter().map(FieldDef::from).collect()).map_err(ApiError::bad_request)
}

pub(super) fn from_def(def: &SchemaDef) -> SchemaBody {
    SchemaBody { fields: def.fields.iter().map(SchemaField::from).collect() }
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

/// A schema name, by the domain's one rule.
pub(super) fn check_name(name: &str) -> Result<String, ApiError> {
    SchemaName::parse(name).map(SchemaName::into_string).map_err(ApiError::bad_request)
}
