//! The HTTP API, one file per resource. Doc comments here become the OpenAPI text.

pub mod auth;
pub mod body;
pub mod console;
pub mod content_type;
pub mod exports;
pub mod files;
pub mod health;
pub mod idempotency;
pub mod json_out;
pub mod linger;
pub mod list;
pub mod metrics;
pub mod ndjson;
pub mod rate_limit;
mod refusals;
pub mod request_log;
pub mod results;
pub mod route_template;
pub mod schemas;
pub mod team;
pub mod types;
pub mod webhooks;

use std::sync::Arc;

use poem_openapi::Tags;

use crate::db::Conn;
use crate::error::ApiError;
use crate::state::AppState;

/// Groups of operations in the documentation.
#[derive(Tags)]
pub enum ApiTags {
    /// Export jobs: create one, follow it, download its CSV file.
    Exports,
    /// Schemas: the typed fields your extraction results have.
    Schemas,
    /// Extraction results: one JSON object per document, the rows of an export.
    Results,
    /// The signed download links.
    Files,
    /// Your team: which team an API key belongs to.
    Team,
    /// Webhooks: your receivers get a signed POST when an export completes, fails or is
    /// deleted, instead of polling.
    Webhooks,
    /// Service health.
    Health,
}

/// A confirmation, e.g. `{"message": "Export deleted successfully"}`.
#[derive(poem_openapi::Object)]
pub struct Message {
    pub message: String,
}

impl Message {
    pub fn new(message: &str) -> Message {
        Message { message: message.to_string() }
    }
}

/// Runs database work off the async runtime, on tokio's blocking pool.
pub async fn with_db<T: Send + 'static>(
    state: &Arc<AppState>,
    f: impl FnOnce(&mut Conn) -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    let pool = state.pool.clone();
    // the request's span (its request id) on the lines logged meanwhile
    let span = tracing::Span::current();
    tokio::task::spawn_blocking(move || {
        let _entered = span.enter();
        let mut conn = pool.get()?;
        f(&mut conn)
    })
    .await
    .map_err(ApiError::internal)?
}

/// Runs a write on the writer thread (see `db::Writer`) inside a transaction, and answers
/// once it is committed; an `Err` from `f` undoes what it wrote. Reads inside `f` see the
/// database as the write leaves it.
pub async fn with_writer<T: Send + 'static>(
    state: &Arc<AppState>,
    f: impl FnOnce(&dyn crate::db::Sql) -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    state.writer.run_async(f).await
}

/// [`with_writer`] for a large write (a bulk upload): a transaction of its own, not shared
/// with other writes (see `db::Writer::run_alone_async`).
pub async fn with_writer_alone<T: Send + 'static>(
    state: &Arc<AppState>,
    f: impl FnOnce(&dyn crate::db::Sql) -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    state.writer.run_alone_async(f).await
}

/// Parses a path id as a UUID; anything else is a 400 naming the parameter.
pub fn parse_id(name: &str, value: &str) -> Result<String, ApiError> {
    uuid::Uuid::parse_str(value)
        .map(|u| u.to_string())
        .map_err(|_| ApiError::bad_request(format!("{name} '{value}' is not a valid UUID")))
}
