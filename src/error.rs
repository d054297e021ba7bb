//! Errors as the HTTP API shows them. One shape everywhere:
//! `{"statusCode": 404, "error": "Not Found", "message": "Export not found"}`.
//! `ApiError` is what handlers raise; `to_json_error` turns anything else poem raises (parse
//! failures, unknown routes, wrong methods, missing keys) into the same shape.

use std::collections::HashMap;
use std::sync::Arc;

use poem::http::StatusCode;
use poem::{Endpoint, Middleware, Response};
use poem_openapi::error::{ContentTypeError, ParseParamError, ParsePathError};
use poem_openapi::registry::{MetaParamIn, MetaSchemaRef, Registry};
use poem_openapi::types::Example;
use poem_openapi::{Object, OpenApi};

use crate::db::DbError;
use crate::domain::request_id::RequestId;
use crate::import::ImportError;
use crate::storage::StorageError;

/// The body of every error response.
#[derive(Debug, Clone, Object, serde::Serialize)]
#[oai(example)]
pub struct ErrorBody {
    /// The HTTP status code, repeated.
    #[oai(rename = "statusCode")]
    #[serde(rename = "statusCode")]
    pub status_code: u16,
    /// The status code's reason phrase.
    pub error: String,
    /// What was wrong, in words that tell the caller what to change.
    pub message: String,
}

impl Example for ErrorBody {
    fn example() -> Self {
        ErrorBody { status_code: 404, error: "Not Found".into(), message: "Export not found".into() }
    }
}

impl ErrorBody {
    pub fn new(status: StatusCode, message: impl Into<String>) -> ErrorBody {
        ErrorBody {
            status_code: status.as_u16(),
            error: status.canonical_reason().unwrap_or("Error").to_string(),
            message: message.into(),
        }
    }

    pub fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status_code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        Response::builder()
            .status(status)
            .content_type("application/json; charset=utf-8")
            .body(serde_json::to_vec(&self).expect("error body serializes"))
    }
}

/// An error a handler answers with.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{status}: {message}")]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    /// Seconds the caller should wait before trying again (`Retry-After`), for 429 and 503.
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError { status, message: message.into(), retry_after: None }
    }
    /// 429: a limit was reached; the message says which. `retry_after` in seconds.
    pub fn too_many(m: impl Into<String>, retry_after: u64) -> ApiError {
        ApiError { retry_after: Some(retry_after.max(1)), ..ApiError::new(StatusCode::TOO_MANY_REQUESTS, m) }
    }
    /// 503: the service cannot answer now (database busy); `retry_after` in seconds.
    pub fn unavailable(m: impl Into<String>, retry_after: u64) -> ApiError {
        ApiError { retry_after: Some(retry_after.max(1)), ..ApiError::new(StatusCode::SERVICE_UNAVAILABLE, m) }
    }
    /// 507: the disk is full; nothing was stored.
    pub fn insufficient_storage(m: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::INSUFFICIENT_STORAGE, m)
    }
    pub fn bad_request(m: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, m)
    }
    pub fn not_found(m: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, m)
    }
    pub fn conflict(m: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::CONFLICT, m)
    }
    pub fn forbidden(m: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, m)
    }
    /// 415: the body came with another `Content-Type` than the route reads, or none; the
    /// message says what to send (`what` describes the body: `the request body is JSON`).
    pub fn unsupported_media_type(what: &str, expected: &str, sent: Option<&str>) -> ApiError {
        let had = match sent {
            // the client's own text, cut short: enough to recognise it
            Some(ct) => format!("this request had `Content-Type: {}`", ct.chars().take(100).collect::<String>()),
            None => "this request had no Content-Type header".to_string(),
        };
        ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("{what}: send it with `Content-Type: {expected}` ({had})"),
        )
    }
    /// A failure that is not the caller's fault: logged with its cause, shown without it.
    pub fn internal(cause: impl std::fmt::Display) -> ApiError {
        tracing::error!(%cause, "internal error");
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "Internal server error; the cause is in the server log")
    }

    pub fn body(&self) -> ErrorBody {
        ErrorBody::new(self.status, self.message.clone())
    }

    /// The JSON error response, with `Retry-After` where the error has one.
    pub fn to_response(&self) -> Response {
        let mut resp = self.body().into_response();
        if let Some(secs) = self.retry_after {
            resp.headers_mut().insert(poem::http::header::RETRY_AFTER, secs.into());
        }
        resp
    }
}

/// Seconds a client is told to wait (`Retry-After`) when the database was busy.
const BUSY_RETRY_AFTER: u64 = 2;

/// The message of a 507: the disk is full and the request changed nothing.
pub const DISK_FULL_MESSAGE: &str = "The server's disk is full, so nothing was stored. Try again once space has \
been freed on the server (deleting old exports helps).";

impl From<DbError> for ApiError {
    fn from(e: DbError) -> Self {
        match e {
            DbError::Busy(e) => {
                // expected while an import runs; the request's own log line says 503
                tracing::debug!(cause = %e, "database busy: a request waited out the busy timeout");
                ApiError::unavailable(
                    "The database is busy: another process (such as an `exports-api import`) is writing to it. \
Nothing was changed; retry after the time in Retry-After.",
                    BUSY_RETRY_AFTER,
                )
            }
            DbError::PgUnavailable(e) => {
                tracing::warn!(cause = %e, "database unavailable: a request was refused");
                ApiError::unavailable(
                    "The database is busy or unavailable. Nothing was changed; retry after the time in Retry-After.",
                    BUSY_RETRY_AFTER,
                )
            }
            DbError::Full(e) => {
                tracing::error!(cause = %e, "disk full: a write was refused");
                ApiError::insufficient_storage(DISK_FULL_MESSAGE)
            }
            DbError::PgFull(e) => {
                tracing::error!(cause = %e, "database disk full: a write was refused");
                ApiError::insufficient_storage(DISK_FULL_MESSAGE)
            }
            DbError::Io(e) if crate::data_dir::is_disk_full(&e) => {
                tracing::error!(cause = %e, "disk full: a write was refused");
                ApiError::insufficient_storage(DISK_FULL_MESSAGE)
            }
            DbError::Interrupted(why) => {
                tracing::warn!(cause = why, "a write was interrupted");
                ApiError::unavailable(format!("The write did not happen ({why}). Nothing was changed; retry."), 1)
            }
            DbError::Pool(e) => {
                tracing::error!(cause = %e, "database pool exhausted or unavailable");
                ApiError::unavailable("The database is busy or unavailable; try again shortly", BUSY_RETRY_AFTER)
            }
            e => ApiError::internal(e),
        }
    }
}

/// A file store that failed a download: a file that is gone is a 404; an object store that
/// refuses or does not answer is a 502 (the cause is logged, not shown).
impl From<StorageError> for ApiError {
    fn from(e: StorageError) -> Self {
        if e.is_not_found() {
            return ApiError::not_found("Export not found: its file is gone");
        }
        match e {
            StorageError::Object(e) => {
                tracing::error!(cause = %e, "the object store failed a request");
                ApiError::new(
                    StatusCode::BAD_GATEWAY,
                    "The object store holding export files did not answer as expected; try again shortly",
                )
            }
            e => ApiError::internal(e),
        }
    }
}

/// The answer to an upload that stored nothing.
impl From<ImportError> for ApiError {
    fn from(e: ImportError) -> Self {
        match e {
            ImportError::Line(l) => ApiError::bad_request(format!("{l}; nothing was stored")),
            ImportError::NoResults => ApiError::bad_request("the body has no results: send one JSON object per line"),
            ImportError::Input(m) => ApiError::bad_request(m),
            ImportError::Db(e) => e.into(),
        }
    }
}

impl poem::error::ResponseError for ApiError {
    fn status(&self) -> StatusCode {
        self.status
    }
    fn as_response(&self) -> Response {
        self.to_response()
    }
}

/// The one place every error becomes HTTP: errors that already carry a JSON response keep
/// it; everything else gets the JSON shape with a message for the caller.
pub async fn to_json_error(err: poem::Error) -> Response {
    let status = err.status();
    if err.is_from_response() {
        let resp = err.into_response();
        let is_json = resp
            .headers()
            .get(poem::http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/json"));
        if is_json {
            return resp;
        }
        let text = resp.into_body().into_string().await.unwrap_or_default();
        return ErrorBody::new(status, fallback_message(status, text)).into_response();
    }
    if let Some(e) = err.downcast_ref::<ApiError>() {
        return e.to_response();
    }
    if status.is_server_error() {
        tracing::error!(cause = %err, "request failed");
    }
    // poem-openapi's typed errors get our words, built from their fields, never from their text
    let message = if let Some(e) = err.downcast_ref::<ParseParamError>() {
        // `QueryErrors` answers these with the rule the value broke; this is the fallback
        format!("query parameter `{}`: not a valid value (see /docs)", e.name)
    } else if err.is::<ParsePathError>() {
        // every path parameter of the API is a UUID (the file route's are text, which always parses)
        "the id in the path is not a valid UUID (e.g. 019760a0-0050-7000-8000-000000000050)".to_string()
    } else if let Some(e) = err.downcast_ref::<ContentTypeError>() {
        match e {
            ContentTypeError::NotSupported { content_type } => {
                format!("the `Content-Type` requested by the client is not supported: {content_type}")
            }
            ContentTypeError::ExpectContentType => {
                "the client request does not include the `Content-Type` header".to_string()
            }
        }
    } else {
        match status {
            StatusCode::UNAUTHORIZED => {
                "Missing or invalid API key: send a valid key in the x-api-key header".to_string()
            }
            StatusCode::NOT_FOUND => "Not found: no such route; the API is described at /docs".to_string(),
            StatusCode::METHOD_NOT_ALLOWED => {
                "Method not allowed on this route; the API is described at /docs".to_string()
            }
            StatusCode::INTERNAL_SERVER_ERROR => "Internal server error; the cause is in the server log".to_string(),
            _ => fallback_message(status, err.to_string()),
        }
    };
    ErrorBody::new(status, message).into_response()
}

/// The answer to a handler that panicked (poem's `CatchPanic`): a 500 in the JSON shape. The
/// panic itself is logged by the panic hook, with the request's id.
pub fn panic_response(_panic: Box<dyn std::any::Any + Send>) -> Response {
    ErrorBody::new(StatusCode::INTERNAL_SERVER_ERROR, "Internal server error; the cause is in the server log")
        .into_response()
}

/// Largest 5xx body read to add the request id to; ours are a few hundred bytes.
const MAX_ERROR_BODY: usize = 64 * 1024;

/// A 5xx answer's message ends with `(request id X)`, so a user can quote it and an operator
/// find the request's log lines. Whatever raised it (a handler, a panic, the database), the
/// body is the JSON error shape; other answers pass through untouched.
pub async fn quote_request_id(resp: Response, id: &RequestId) -> Response {
    let status = resp.status();
    if !status.is_server_error() {
        return resp;
    }
    let (mut parts, body) = resp.into_parts();
    let is_json = parts
        .headers
        .get(poem::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    let sent = if is_json { body.into_bytes_limit(MAX_ERROR_BODY).await.ok() } else { None };
    let mut error = sent
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .and_then(|v| Some(ErrorBody::new(status, v.get("message")?.as_str()?)))
        .unwrap_or_else(|| ErrorBody::new(status, "Internal server error; the cause is in the server log"));
    error.message = format!("{} (request id {id})", error.message.trim_end());
    parts.headers.remove(poem::http::header::CONTENT_LENGTH);
    parts.headers.insert(
        poem::http::header::CONTENT_TYPE,
        poem::http::HeaderValue::from_static("application/json; charset=utf-8"),
    );
    Response::from_parts(parts, serde_json::to_vec(&error).expect("error body serializes").into())
}

/// What a query parameter accepts, from the API's typed metadata (the same rules the OpenAPI
/// document shows).
#[derive(Debug, Clone, Default, PartialEq)]
struct ParamRule {
    /// JSON Schema type: `integer`, `boolean`, `string`, ...
    ty: &'static str,
    format: Option<&'static str>,
    /// The values of an enum, as the client writes them; empty for other types.
    allowed: Vec<String>,
    minimum: Option<f64>,
    maximum: Option<f64>,
    max_length: Option<usize>,
}

impl ParamRule {
    fn from_schema(registry: &Registry, schema: &MetaSchemaRef) -> Option<ParamRule> {
        let s = match schema {
            MetaSchemaRef::Inline(s) => s.as_ref(),
            MetaSchemaRef::Reference(name) => registry.schemas.get(name)?,
        };
        Some(ParamRule {
            ty: s.ty,
            format: s.format,
            allowed: s.enum_items.iter().map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string)).collect(),
            minimum: s.minimum,
            maximum: s.maximum,
            max_length: s.max_length,
        })
    }

    /// What is wrong with `value`, in words (`must be at most 100`).
    fn explain(&self, value: Option<&str>) -> String {
        let value = value.unwrap_or_default();
        if !self.allowed.is_empty() {
            // the client's own text, cut short: enough to recognise it
            let shown: String = value.chars().take(50).collect();
            return format!("'{shown}' is not one of the allowed values: {}", self.allowed.join(", "));
        }
        match self.ty {
            "integer" => {
                let unsigned = self.format.is_some_and(|f| f.starts_with("uint"));
                let (negative, digits) = match value.strip_prefix('-') {
                    Some(rest) if !unsigned => (true, rest),
                    _ => (false, value.strip_prefix('+').unwrap_or(value)),
                };
                if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                    return "not a whole number".into();
                }
                // more digits than i128 holds: past any limit
                let n = digits.parse::<i128>().unwrap_or(i128::MAX);
                let n = if negative { -n } else { n };
                let (lowest, highest) = match self.format {
                    Some("uint32") => (0, i128::from(u32::MAX)),
                    Some("int32") => (i128::from(i32::MIN), i128::from(i32::MAX)),
                    Some("int64") => (i128::from(i64::MIN), i128::from(i64::MAX)),
                    _ => (0, i128::from(u64::MAX)),
                };
                let max = self.maximum.map_or(highest, |m| (m as i128).min(highest));
                let min = self.minimum.map_or(lowest, |m| (m as i128).max(lowest));
                if n > max {
                    format!("must be at most {max}")
                } else if n < min {
                    format!("must be at least {min}")
                } else {
                    "not a valid value (see /docs)".into()
                }
            }
            "boolean" => "must be true or false".into(),
            "string" => match self.max_length {
                Some(max) if value.chars().count() > max => format!("must be at most {max} characters long"),
                _ => "not a valid value (see /docs)".into(),
            },
            _ => "not a valid value (see /docs)".into(),
        }
    }
}

/// Answers a query parameter poem-openapi could not parse (`ParseParamError`) with the rule
/// the sent value broke (`query parameter `limit`: must be at most 100`), from the API's typed
/// metadata and the request's query, instead of poem's wording.
///
/// On every request: it keeps a copy of the method and URI (reference-counted, no allocation)
/// so that the query can be read if the endpoint fails; nothing else happens unless it fails
/// that way.
#[derive(Clone)]
pub struct QueryErrors(Arc<Vec<OperationParams>>);

/// The query parameters of one operation: its method, its path template's segments (`{id}`
/// matches any segment) and each parameter's rule by name. A name may mean different things
/// on different operations (`sort_by` of exports and of schemas).
struct OperationParams {
    method: String,
    template: Vec<String>,
    rules: HashMap<String, ParamRule>,
}

impl OperationParams {
    fn matches(&self, method: &str, segments: &[&str]) -> bool {
        self.method.eq_ignore_ascii_case(method)
            && self.template.len() == segments.len()
            && self.template.iter().zip(segments).all(|(t, s)| t.starts_with('{') || t == s)
    }
}

impl QueryErrors {
    /// The rules of every query parameter of `A`'s operations.
    pub fn for_api<A: OpenApi>() -> QueryErrors {
        let mut registry = Registry::new();
        A::register(&mut registry);
        let mut operations = Vec::new();
        for api in A::meta() {
            for path in &api.paths {
                for op in &path.operations {
                    let rules = op
                        .params
                        .iter()
                        .filter(|p| matches!(p.in_type, MetaParamIn::Query))
                        .filter_map(|p| Some((p.name.clone(), ParamRule::from_schema(&registry, &p.schema)?)))
                        .collect();
                    operations.push(OperationParams {
                        method: op.method.to_string(),
                        template: path.path.split('/').map(str::to_string).collect(),
                        rules,
                    });
                }
            }
        }
        QueryErrors(Arc::new(operations))
    }

    fn explain(&self, name: &str, method: &poem::http::Method, uri: &poem::http::Uri) -> String {
        // the first value, as poem-openapi reads it
        let value = uri.query().and_then(|q| {
            serde_urlencoded::from_str::<Vec<(String, String)>>(q)
                .ok()?
                .into_iter()
                .find_map(|(k, v)| (k == name).then_some(v))
        });
        let segments: Vec<&str> = uri.path().split('/').collect();
        let rule = self.0.iter().find(|op| op.matches(method.as_str(), &segments)).and_then(|op| op.rules.get(name));
        let why = match rule {
            Some(rule) => rule.explain(value.as_deref()),
            None => "not a valid value (see /docs)".into(),
        };
        format!("query parameter `{name}`: {why}")
    }
}

impl<E: Endpoint> Middleware<E> for QueryErrors {
    type Output = QueryErrorsEndpoint<E>;

    fn transform(&self, ep: E) -> Self::Output {
        QueryErrorsEndpoint { inner: ep, rules: self.clone() }
    }
}

pub struct QueryErrorsEndpoint<E> {
    inner: E,
    rules: QueryErrors,
}

impl<E: Endpoint> Endpoint for QueryErrorsEndpoint<E> {
    type Output = E::Output;

    async fn call(&self, req: poem::Request) -> poem::Result<Self::Output> {
        let (method, uri) = (req.method().clone(), req.uri().clone());
        self.inner.call(req).await.map_err(|e| match e.downcast_ref::<ParseParamError>() {
            Some(p) => ApiError::bad_request(self.rules.explain(p.name, &method, &uri)).into(),
            None => e,
        })
    }
}

fn fallback_message(status: StatusCode, text: String) -> String {
    let t = text.trim();
    if t.is_empty() {
        status.canonical_reason().unwrap_or("Error").to_string()
    } else {
        t.to_string()
    }
}

/// Declares an operation's error responses: each variant documents one status in the
/// OpenAPI document and carries the JSON error body. 401, 429, 500 and 503 are always there
/// (every operation using it needs a key, is rate limited and touches the database); 429 and
/// 503 carry `Retry-After`; unlisted statuses become 500.
#[macro_export]
macro_rules! api_errors {
    // `Name: keyed_json_body { … }` / `Name: keyed_writes { … }`: a POST, which may carry an
    // `Idempotency-Key` (api::idempotency answers 409 and 422 for it): those two added
    ($(#[$meta:meta])* $name:ident: keyed_json_body { $($body:tt)* }) => {
        $crate::api_errors!($(#[$meta])* $name: json_body {
            $($body)*
            Conflict = 409: "A request with the same `Idempotency-Key` is still running: retry after `Retry-After` seconds to get its answer",
            UnprocessableEntity = 422: "The `Idempotency-Key` was used in the last 24 hours for another request (another method, path or body): send a new key",
        });
    };
    ($(#[$meta:meta])* $name:ident: keyed_writes { $($body:tt)* }) => {
        $crate::api_errors!($(#[$meta])* $name: writes {
            $($body)*
            Conflict = 409: "A request with the same `Idempotency-Key` is still running: retry after `Retry-After` seconds to get its answer",
            UnprocessableEntity = 422: "The `Idempotency-Key` was used in the last 24 hours for another request (another method, path or body): send a new key",
        });
    };
    // `Name: json_body { … }`: an operation that takes a JSON body and writes: 413, 415 and 507
    // added (end each entry with a comma)
    ($(#[$meta:meta])* $name:ident: json_body { $($body:tt)* }) => {
        $crate::api_errors!($(#[$meta])* $name: writes {
            $($body)*
            PayloadTooLarge = 413: "The JSON body is larger than the configured limit (`--max-json-body`, default 1 MB)",
            UnsupportedMediaType = 415: "The body was not sent with `Content-Type: application/json`",
        });
    };
    // `Name: writes { … }`: an operation that writes: 507 added
    ($(#[$meta:meta])* $name:ident: writes { $($body:tt)* }) => {
        $crate::api_errors!($(#[$meta])* $name {
            $($body)*
            InsufficientStorage = 507: "The server's disk is full: nothing was stored or changed. Retry once space is freed",
        });
    };
    ($(#[$meta:meta])* $name:ident { $($variant:ident = $status:tt : $desc:literal),* $(,)? }) => {
        $(#[$meta])*
        #[derive(poem_openapi::ApiResponse, Debug)]
        pub enum $name {
            $(
                #[doc = $desc]
                #[oai(status = $status)]
                $variant(poem_openapi::payload::Json<$crate::error::ErrorBody>),
            )*
            /// Missing or invalid authentication: send a valid key in the `x-api-key` header.
            #[oai(status = 401)]
            Unauthorized(poem_openapi::payload::Json<$crate::error::ErrorBody>),
            /// Too many requests: a rate limit or quota was reached (the message says which).
            /// Wait `Retry-After` seconds.
            #[oai(status = 429)]
            TooManyRequests(
                poem_openapi::payload::Json<$crate::error::ErrorBody>,
                /// Seconds to wait before trying again.
                #[oai(header = "Retry-After")] u64,
            ),
            /// The database is busy or unavailable; try again after `Retry-After` seconds.
            #[oai(status = 503)]
            Unavailable(
                poem_openapi::payload::Json<$crate::error::ErrorBody>,
                /// Seconds to wait before trying again.
                #[oai(header = "Retry-After")] u64,
            ),
            /// Unexpected server error; logged with its cause.
            #[oai(status = 500)]
            Internal(poem_openapi::payload::Json<$crate::error::ErrorBody>),
        }

        impl From<$crate::error::ApiError> for $name {
            fn from(e: $crate::error::ApiError) -> Self {
                match e.status.as_u16() {
                    $( $status => $name::$variant(poem_openapi::payload::Json(e.body())), )*
                    401 => $name::Unauthorized(poem_openapi::payload::Json(e.body())),
                    429 => $name::TooManyRequests(poem_openapi::payload::Json(e.body()), e.retry_after.unwrap_or(1)),
                    503 => $name::Unavailable(poem_openapi::payload::Json(e.body()), e.retry_after.unwrap_or(1)),
                    _ => {
                        if e.status != poem::http::StatusCode::INTERNAL_SERVER_ERROR {
                            tracing::error!(status = %e.status, message = %e.message, "undeclared error status");
                        }
                        $name::Internal(poem_openapi::payload::Json(
                            $crate::error::ErrorBody::new(poem::http::StatusCode::INTERNAL_SERVER_ERROR, e.message),
                        ))
                    }
                }
            }
        }

        impl From<$crate::db::DbError> for $name {
            fn from(e: $crate::db::DbError) -> Self {
                $crate::error::ApiError::from(e).into()
            }
        }
    };
}

/// Declares an operation's success response: one status, one JSON body, documented.
#[macro_export]
macro_rules! api_ok {
    ($name:ident :: $variant:ident = $status:tt : $ty:ty, $desc:literal) => {
        #[derive(poem_openapi::ApiResponse)]
        pub enum $name {
            #[doc = $desc]
            #[oai(status = $status)]
            $variant(poem_openapi::payload::Json<$ty>),
        }
    };
}

#[cfg(test)]
mod tests {
    use super::ParamRule;

    fn rule(ty: &'static str) -> ParamRule {
        ParamRule { ty, ..ParamRule::default() }
    }

    /// A corrupt row is the server's fault: a 500 whose body does not show the row's content.
    #[test]
    fn a_corrupt_row_is_an_internal_error() {
        let e = crate::db::DbError::Corrupt { table: "exports", id: "x".into(), what: "unknown status \"?\"".into() };
        let api = super::ApiError::from(e);
        assert_eq!(api.status, poem::http::StatusCode::INTERNAL_SERVER_ERROR);
        assert!(!api.message.contains("status"), "{}", api.message);
    }

    #[test]
    fn query_values_are_explained_by_the_rule_they_break() {
        let limit = ParamRule { format: Some("uint32"), minimum: Some(1.0), maximum: Some(100.0), ..rule("integer") };
        assert_eq!(limit.explain(Some("500")), "must be at most 100");
        assert_eq!(limit.explain(Some("0")), "must be at least 1");
        for v in ["abc", "", "-1", "1.5"] {
            assert_eq!(limit.explain(Some(v)), "not a whole number", "{v:?}");
        }
        let page = ParamRule { format: Some("uint32"), minimum: Some(1.0), ..rule("integer") };
        assert_eq!(page.explain(Some("4294967296")), "must be at most 4294967295");
        assert_eq!(limit.explain(Some("99999999999999999999999999999999999999999")), "must be at most 100");
        let signed = ParamRule { format: Some("int32"), ..rule("integer") };
        assert_eq!(signed.explain(Some("-2147483649")), "must be at least -2147483648");
        let sort_by = ParamRule { allowed: vec!["createdAt".into(), "name".into()], ..rule("string") };
        assert_eq!(sort_by.explain(Some("nope")), "'nope' is not one of the allowed values: createdAt, name");
        let search = ParamRule { max_length: Some(200), ..rule("string") };
        assert_eq!(search.explain(Some(&"x".repeat(201))), "must be at most 200 characters long");
        assert_eq!(rule("boolean").explain(Some("maybe")), "must be true or false");
    }
}
