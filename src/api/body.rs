//! `JsonBody<T>`: a JSON request body checked against `T`'s documented schema before it is
//! parsed, so that a missing or mistyped member is named in the 400 message
//! (`options.delimiter must be a string, not a number`) instead of an internal type name.
//! The body is read through `--max-json-body` and the nesting limit, whatever its framing.

use std::sync::Arc;

use futures_util::StreamExt;
use poem::http::StatusCode;
use poem::{Request, RequestBody};
use poem_openapi::impl_apirequest_for_payload;
use poem_openapi::payload::{Json, ParsePayload, Payload};
use poem_openapi::registry::{MetaSchema, MetaSchemaRef, Registry};
use poem_openapi::types::{ParseFromJSON, Type};
use serde_json::Value;

use super::linger::discard_rest;
use super::types::json_kind;
use crate::config::DEFAULT_MAX_JSON_BODY;
use crate::domain::nesting::NestingScan;
use crate::error::{clean_parse_message, ApiError};
use crate::state::AppState;

pub struct JsonBody<T>(pub T);

impl<T: Type> Payload for JsonBody<T> {
    const CONTENT_TYPE: &'static str = "application/json; charset=utf-8";

    fn check_content_type(content_type: &str) -> bool {
        <Json<T> as Payload>::check_content_type(content_type)
    }

    fn schema_ref() -> MetaSchemaRef {
        T::schema_ref()
    }

    fn register(registry: &mut Registry) {
        T::register(registry);
    }
}

impl<T: ParseFromJSON> ParsePayload for JsonBody<T> {
    const IS_REQUIRED: bool = true;

    async fn from_request(request: &Request, body: &mut RequestBody) -> poem::Result<Self> {
        let limit = request.data::<Arc<AppState>>().map_or(DEFAULT_MAX_JSON_BODY, |s| s.limits.max_json_body);
        let bytes = read_limited(body, limit).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(ApiError::bad_request("the request body is empty: send a JSON object").into());
        }
        let value: Value = serde_json::from_slice(&bytes)
            .map_err(|e| ApiError::bad_request(format!("the request body is not valid JSON: {e}")))?;
        let mut registry = Registry::new();
        T::register(&mut registry);
        let root_ref = T::schema_ref();
        let root = resolve(&registry, &root_ref);
        if let Some(schema) = root {
            check(&registry, schema, &value, "").map_err(ApiError::bad_request)?;
        }
        T::parse_from_json(Some(value.clone())).map(JsonBody).map_err(|e| {
            let msg = e.into_message();
            let unknown = msg.find("unknown field `").and_then(|i| msg[i + 15..].split('`').next());
            let located =
                unknown.zip(root).and_then(|(key, schema)| locate_unknown(&registry, schema, &value, "", key));
            ApiError::bad_request(located.unwrap_or_else(|| clean_parse_message(&msg))).into()
        })
    }
}

impl_apirequest_for_payload!(JsonBody<T>, T: ParseFromJSON);

/// Reads the body as it arrives, whatever its framing (`Content-Length` or chunked): 413 as
/// soon as it passes `limit` bytes, 400 as soon as it nests too deeply, without waiting for
/// the rest (which is then thrown away, see `linger`).
async fn read_limited(body: &mut RequestBody, limit: usize) -> Result<Vec<u8>, ApiError> {
    let mut stream = body
        .take()
        .map_err(|e| ApiError::bad_request(format!("could not read the request body: {e}")))?
        .into_bytes_stream();
    let mut bytes = Vec::new();
    let mut nesting = NestingScan::default();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| ApiError::bad_request(format!("could not read the request body: {e}")))?;
        let refused = if bytes.len() + chunk.len() > limit {
            Some(json_body_too_large(limit))
        } else {
            nesting.feed(&chunk).err().map(|e| ApiError::bad_request(format!("the request body: {e}")))
        };
        if let Some(e) = refused {
            discard_rest(stream);
            return Err(e);
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(bytes)
}

/// 413 for a JSON body over `--max-json-body`.
pub fn json_body_too_large(limit: usize) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("The JSON body is larger than the limit of {limit} bytes; send less, or raise --max-json-body"),
    )
}

fn resolve<'a>(registry: &'a Registry, r: &'a MetaSchemaRef) -> Option<&'a MetaSchema> {
    match r {
        MetaSchemaRef::Inline(s) => Some(s),
        MetaSchemaRef::Reference(name) => registry.schemas.get(name),
    }
}

fn expected(ty: &str) -> &str {
    match ty {
        "string" => "a string",
        "integer" => "an integer",
        "number" => "a number",
        "boolean" => "a boolean (true or false)",
        "object" => "a JSON object",
        "array" => "an array",
        other => other,
    }
}

fn join(path: &str, member: &str) -> String {
    if path.is_empty() {
        member.to_string()
    } else {
        format!("{path}.{member}")
    }
}

/// Checks `value` against `schema`: JSON types, required members, UUID format, enum values,
/// recursively through objects and arrays. Returns a message naming the member.
fn check(registry: &Registry, schema: &MetaSchema, value: &Value, path: &str) -> Result<(), String> {
    // a documented reference is wrapped: `allOf: [{$ref}, {description}]`
    if !schema.all_of.is_empty() {
        for part in &schema.all_of {
            if let Some(inner) = resolve(registry, part).filter(|s| s.ty != "object" || !s.properties.is_empty()) {
                check(registry, inner, value, path)?;
            }
        }
        return Ok(());
    }
    let what = if path.is_empty() { "the request body".to_string() } else { path.to_string() };
    let type_ok = match schema.ty {
        "string" => value.is_string(),
        "integer" => value.is_i64() || value.is_u64(),
        "number" => value.is_number(),
        "boolean" => value.is_boolean(),
        "object" => value.is_object(),
        "array" => value.is_array(),
        _ => true,
    };
    if !type_ok {
        return Err(format!("{what} must be {}, not {}", expected(schema.ty), json_kind(value)));
    }
    match value {
        Value::String(s) => {
            if schema.format == Some("uuid") && uuid::Uuid::parse_str(s).is_err() {
                return Err(format!("{what} must be a UUID (e.g. 019760a0-0001-7000-8000-000000000001), not {s:?}"));
            }
            let chars = s.chars().count();
            if let Some(min) = schema.min_length.filter(|m| chars < *m) {
                return Err(format!("{what} must be at least {min} character(s) long"));
            }
            if let Some(max) = schema.max_length.filter(|m| chars > *m) {
                return Err(format!("{what} must be at most {max} characters long"));
            }
            if !schema.enum_items.is_empty() && !schema.enum_items.iter().any(|e| e == value) {
                let allowed: Vec<String> = schema.enum_items.iter().map(|e| e.to_string()).collect();
                return Err(format!("{what} must be one of {}, not {s:?}", allowed.join(", ")));
            }
        }
        Value::Object(map) => {
            for name in &schema.required {
                if map.get(*name).is_none_or(Value::is_null) {
                    return Err(format!("{} is required", join(path, name)));
                }
            }
            for (name, prop) in &schema.properties {
                let (Some(v), Some(ps)) = (map.get(*name), resolve(registry, prop)) else { continue };
                if v.is_null() {
                    continue; // optional members may be null; required ones were checked above
                }
                check(registry, ps, v, &join(path, name))?;
            }
        }
        Value::Array(items) => {
            if let Some(min) = schema.min_items.filter(|m| items.len() < *m) {
                return Err(format!("{what} must have at least {min} item(s)"));
            }
            if let Some(item_schema) = schema.items.as_deref().and_then(|r| resolve(registry, r)) {
                for (i, v) in items.iter().enumerate() {
                    check(registry, item_schema, v, &format!("{what}[{i}]"))?;
                }
            }
        }
        _ => {}
    }
    Ok(())
}

/// Finds the object that holds the member `key` its schema does not define, and says where
/// it is and what is allowed there (`options: unknown member "foo"; allowed: ...`).
fn locate_unknown(registry: &Registry, schema: &MetaSchema, value: &Value, path: &str, key: &str) -> Option<String> {
    if !schema.all_of.is_empty() {
        return schema
            .all_of
            .iter()
            .filter_map(|part| resolve(registry, part))
            .find_map(|inner| locate_unknown(registry, inner, value, path, key));
    }
    match value {
        Value::Object(map) => {
            let known = |k: &str| schema.properties.iter().any(|(name, _)| *name == k);
            if !schema.properties.is_empty() && map.contains_key(key) && !known(key) {
                let allowed: Vec<&str> = schema.properties.iter().map(|(name, _)| *name).collect();
                let where_ = if path.is_empty() { "the request body".to_string() } else { path.to_string() };
                return Some(format!("{where_}: unknown member {key:?}; allowed: {}", allowed.join(", ")));
            }
            schema.properties.iter().find_map(|(name, prop)| {
                let (v, ps) = (map.get(*name)?, resolve(registry, prop)?);
                locate_unknown(registry, ps, v, &join(path, name), key)
            })
        }
        Value::Array(items) => {
            let item_schema = schema.items.as_deref().and_then(|r| resolve(registry, r))?;
            items
                .iter()
                .enumerate()
                .find_map(|(i, v)| locate_unknown(registry, item_schema, v, &format!("{path}[{i}]"), key))
        }
        _ => None,
    }
}
