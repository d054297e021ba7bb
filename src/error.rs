//! Errors as the HTTP API shows them. One shape everywhere:
//! `{"statusCode": 404, "error": "Not Found", "message": "Export not found"}`.
//! `ApiError` is what handlers raise; `to_json_error` turns anything else poem raises (parse
//! failures, unknown routes, wrong methods, missing keys) into the same shape.

use poem::http::StatusCode;
use poem::Response;
use poem_openapi::types::Example;
use poem_openapi::Object;

use crate::db::DbError;

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
            DbError::Full(e) => {
                tracing::error!(cause = %e, "disk full: a write was refused");
                ApiError::insufficient_storage(DISK_FULL_MESSAGE)
            }
            DbError::Io(e) if is_disk_full(&e) => {
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

/// Whether an I/O error means the disk (or the user's quota) is full: ENOSPC or EDQUOT.
pub fn is_disk_full(e: &std::io::Error) -> bool {
    matches!(e.kind(), std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded)
        || e.raw_os_error() == Some(28)
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
    let message = match status {
        StatusCode::UNAUTHORIZED => "Missing or invalid API key: send a valid key in the x-api-key header".to_string(),
        StatusCode::NOT_FOUND => "Not found: no such route; the API is described at /docs".to_string(),
        StatusCode::METHOD_NOT_ALLOWED => "Method not allowed on this route; the API is described at /docs".to_string(),
        StatusCode::INTERNAL_SERVER_ERROR => "Internal server error; the cause is in the server log".to_string(),
        StatusCode::BAD_REQUEST => clean_parse_message(&err.to_string()),
        _ => fallback_message(status, err.to_string()),
    };
    ErrorBody::new(status, message).into_response()
}

/// Rewrites poem-openapi's parse errors for people: drops internal type names and the
/// "(occurred while parsing ...)" trail, and states validator limits in words.
pub fn clean_parse_message(msg: &str) -> String {
    let mut s = msg.to_string();
    while let Some(i) = s.find(" (occurred while parsing \"") {
        let end = s[i + 1..].find(')').map(|j| i + 1 + j + 1).unwrap_or(s.len());
        s.replace_range(i..end, "");
    }
    s = s.replace("parse request payload error: ", "");
    if let Some(rest) = s.strip_prefix("failed to parse path `") {
        let _ = rest;
        return "the id in the path is not a valid UUID (e.g. 019760a0-0050-7000-8000-000000000050)".into();
    }
    if let Some(rest) = s.strip_prefix("failed to parse parameter `") {
        if let Some(j) = rest.find("`: ") {
            s = format!("query parameter `{}`: {}", &rest[..j], &rest[j + 3..]);
        }
    }
    // `failed to parse "TypeName": ` names an internal type: drop it
    while let Some(i) = s.find("failed to parse \"") {
        let after = i + "failed to parse \"".len();
        match s[after..].find("\": ") {
            Some(j) => s.replace_range(i..after + j + 3, ""),
            None => break,
        }
    }
    let words = [
        ("verification failed. ", ""),
        ("Expect a valid enumeration value.", "not one of the allowed values (see /docs)"),
        ("invalid digit found in string", "not a whole number"),
        (", exclusive: false)", ")"),
    ];
    for (from, to) in words {
        s = s.replace(from, to);
    }
    for (call, say) in [
        ("maximum(", "must be at most {}"),
        ("minimum(", "must be at least {}"),
        ("minLength(", "must be at least {} character(s) long"),
        ("maxLength(", "must be at most {} characters long"),
        ("minItems(", "must have at least {} item(s)"),
        ("pattern(", "must match {}"),
    ] {
        if let Some(i) = s.find(call) {
            if let Some(j) = s[i..].rfind(')') {
                let inner = s[i + call.len()..i + j].to_string();
                s.replace_range(i..i + j + 1, &say.replace("{}", &inner));
            }
        }
    }
    s.trim().to_string()
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
    use super::clean_parse_message as clean;

    #[test]
    fn parse_messages_read_well() {
        assert_eq!(
            clean("failed to parse parameter `limit`: verification failed. maximum(100, exclusive: false)"),
            "query parameter `limit`: must be at most 100"
        );
        assert_eq!(
            clean("failed to parse parameter `sort_by`: failed to parse \"ExportSortBy\": Expect a valid enumeration value. (occurred while parsing \"optional_ExportSortBy\")"),
            "query parameter `sort_by`: not one of the allowed values (see /docs)"
        );
        assert_eq!(
            clean("parse request payload error: failed to parse \"ExportOptionsInput\": unknown field `foo`. (occurred while parsing \"optional_ExportOptionsInput\") (occurred while parsing \"CreateExport\")"),
            "unknown field `foo`."
        );
        assert!(clean("failed to parse path `param0`: failed to parse \"string_uuid\": invalid length: found 3")
            .contains("UUID"));
        assert_eq!(
            clean("failed to parse \"CreateSchema\": field `name` verification failed. minLength(1)"),
            "field `name` must be at least 1 character(s) long"
        );
    }
}
