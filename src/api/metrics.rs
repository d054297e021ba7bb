//! `GET /metrics`: the Prometheus text exposition of `crate::metrics` (see there for the list).
//!
//! Not part of the OpenAPI document (like `/docs`), needs no API key and is never rate
//! limited, like `/healthz`: a Prometheus server scrapes it. It names no team and no export,
//! but it does tell how busy the service is: keep it off the public side of a reverse proxy,
//! or turn it off with `--metrics false` (then it is a 404).

use std::sync::Arc;

use poem::web::Data;
use poem::{handler, Response};

use crate::api::with_db;
use crate::error::ApiError;
use crate::state::AppState;

/// The metrics, with the gauges that need the database or the disk read now: the PENDING
/// count (from an index) and the size of the database: on SQLite its file and its WAL (two
/// `stat`s), on PostgreSQL `pg_database_size` (the whole database, its indexes included).
#[handler]
pub async fn metrics(state: Data<&Arc<AppState>>) -> Result<Response, ApiError> {
    let (queued, database_bytes) = with_db(&state, move |c| {
        let queued = crate::db::exports::count_pending(c)?;
        Ok((queued, crate::db::database_size(c)?))
    })
    .await?;
    let text = state.metrics.render(queued, database_bytes);
    Ok(Response::builder().content_type(crate::metrics::CONTENT_TYPE).body(text))
}
