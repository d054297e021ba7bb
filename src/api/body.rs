//! `JsonBody<T>`: a JSON request body checked against `T`'s documented schema before it is
//! parsed, so that a missing or mistyped member is named in the 400 message
//! (`options.delimiter must be a string, not a number`) instead of an internal type name.
//! The body is read through `--max-json-body` and the nesting limit, whatever its framing.

use std::sync::Arc;

use futures_util::StreamExt;
use poem::http::StatusCode;
use poem::{Request, RequestBody};
use poem_openapi::payload::{Json, ParsePayload, Payload};
use poem_openapi::registry::{MetaSchema, MetaSchemaRef, Registry};
use poem_openapi::types::{ParseFromJSON, Type};
use serde_json::Value;

use super::linger::discard_rest;
use super::types::json_kind;
use crate::config::DEFAULT_MAX_JSON_BODY;
use crate::domain::nesting::NestingScan;
use crate::error::ApiError;
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
            let refused = root.and_then(|schema| refused_member::<T>(&registry, schema, &value));
            let message = refused.unwrap_or_else(|| {
                // `check` covers what the schema documents: this is a rule it does not show
                tracing::debug!(reason = %e.into_message(), "a request body passed the schema check but did not parse");
                "the request body does not match its documented schema (see /docs)".to_string()
            });
            ApiError::bad_request(message).into()
        })
    }
}

super::content_type::body_extractor!(JsonBody<T>, "the request body is JSON", T: ParseFromJSON);

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

/// A member the schema does not define, and where it is.
struct Unknown {
    /// The object holding it, as steps from the root.
    at: Vec<Step>,
    /// The object holding it, as a user writes it (`options`, `schema.fields[0]`).
    path: String,
    key: String,
    allowed: Vec<&'static str>,
}

#[derive(Clone)]
enum Step {
    Member(String),
    Item(usize),
}

impl Unknown {
    fn message(&self) -> String {
        let where_ = if self.path.is_empty() { "the request body" } else { &self.path };
        format!("{where_}: unknown member {:?}; allowed: {}", self.key, self.allowed.join(", "))
    }

    fn remove_from(&self, value: &mut Value) {
        let mut v = value;
        for step in &self.at {
            let next = match step {
                Step::Member(k) => v.get_mut(k.as_str()),
                Step::Item(i) => v.get_mut(*i),
            };
            let Some(next) = next else { return };
            v = next;
        }
        if let Some(map) = v.as_object_mut() {
            map.remove(&self.key);
        }
    }
}

/// The member the parse refused: objects that deny unknown members say so only in the
/// parser's English message, so it is found by trial instead (on this error path only). The
/// members the schema does not define are the candidates; the body without them must parse,
/// and the refused one is the first that, kept alone, makes it fail.
fn refused_member<T: ParseFromJSON>(registry: &Registry, schema: &MetaSchema, value: &Value) -> Option<String> {
    let mut unknown = Vec::new();
    collect_unknown(registry, schema, value, &mut Vec::new(), "", &mut unknown);
    let without = |keep: Option<usize>| {
        let mut v = value.clone();
        for (_, u) in unknown.iter().enumerate().filter(|(i, _)| Some(*i) != keep) {
            u.remove_from(&mut v);
        }
        v
    };
    if unknown.is_empty() || T::parse_from_json(Some(without(None))).is_err() {
        return None;
    }
    (0..unknown.len()).find(|i| T::parse_from_json(Some(without(Some(*i)))).is_err()).map(|i| unknown[i].message())
}

/// Every member of `value` its schema does not define, depth first.
fn collect_unknown(
    registry: &Registry,
    schema: &MetaSchema,
    value: &Value,
    at: &mut Vec<Step>,
    path: &str,
    out: &mut Vec<Unknown>,
) {
    if !schema.all_of.is_empty() {
        for inner in schema.all_of.iter().filter_map(|part| resolve(registry, part)) {
            collect_unknown(registry, inner, value, at, path, out);
        }
        return;
    }
    match value {
        Value::Object(map) => {
            if schema.properties.is_empty() {
                return; // a free-form object (an extraction): any member is fine
            }
            for key in map.keys().filter(|k| !schema.properties.iter().any(|(name, _)| name == k)) {
                out.push(Unknown {
                    at: at.clone(),
                    path: path.to_string(),
                    key: key.clone(),
                    allowed: schema.properties.iter().map(|(name, _)| *name).collect(),
                });
            }
            for (name, prop) in &schema.properties {
                let (Some(v), Some(ps)) = (map.get(*name), resolve(registry, prop)) else { continue };
                at.push(Step::Member(name.to_string()));
                collect_unknown(registry, ps, v, at, &join(path, name), out);
                at.pop();
            }
        }
        Value::Array(items) => {
            let Some(item_schema) = schema.items.as_deref().and_then(|r| resolve(registry, r)) else { return };
            for (i, v) in items.iter().enumerate() {
                at.push(Step::Item(i));
                collect_unknown(registry, item_schema, v, at, &format!("{path}[{i}]"), out);
                at.pop();
            }
        }
        _ => {}
    }
}
