//! The `application/x-ndjson` request body of the bulk results upload: read with a size
//! limit (413 beyond it) and handed, chunk by chunk as it arrives, to a blocking thread
//! (the upload spools it to a file, checking each line: `import::spool`), so the body is never
//! held whole in memory, and a bad line stops the upload at once.

use std::sync::Arc;

use futures_util::StreamExt;
use hyper::body::Bytes;
use poem::http::StatusCode;
use poem::{Request, RequestBody};
use poem_openapi::payload::{ParsePayload, Payload};
use poem_openapi::registry::{MetaSchema, MetaSchemaRef};

use super::linger::discard_rest;
use crate::error::ApiError;
use crate::import::ImportError;
use crate::state::AppState;

/// Newline-delimited JSON: one `{"extraction": {...}, "file_name"?, "createdAt"?}` per line.
/// Blank lines are skipped; at least one result is required.
pub struct Ndjson {
    body: poem::Body,
    limit: usize,
}

impl Payload for Ndjson {
    const CONTENT_TYPE: &'static str = "application/x-ndjson";

    fn check_content_type(content_type: &str) -> bool {
        let essence = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
        matches!(
            essence.as_str(),
            "application/x-ndjson" | "application/ndjson" | "application/jsonl" | "application/x-jsonlines"
        )
    }

    fn schema_ref() -> MetaSchemaRef {
        MetaSchemaRef::Inline(Box::new(MetaSchema {
            description: Some(
                "One JSON object per line: {\"extraction\": {...}, \"file_name\": \"a.pdf\", \"createdAt\": \"2024-01-31T12:00:00.000Z\"}",
            ),
            ..MetaSchema::new("string")
        }))
    }
}

impl ParsePayload for Ndjson {
    const IS_REQUIRED: bool = true;

    async fn from_request(request: &Request, body: &mut RequestBody) -> poem::Result<Self> {
        let limit = request.data::<Arc<AppState>>().map(|s| s.limits.max_body).unwrap_or(usize::MAX);
        Ok(Ndjson { body: body.take()?, limit })
    }
}

/// What the body reader hands the importing thread.
enum Piece {
    Bytes(Bytes),
    /// The body ended. Without it (the reader refused the body or was dropped), the import
    /// is abandoned and nothing is stored.
    End,
}

impl Ndjson {
    /// Streams the body into `import` (for the upload, `import::spool`), which runs on the
    /// blocking pool and reads it through the iterator it is given, while this task reads the
    /// body from the connection: the two meet in a small bounded channel, so the body is never
    /// held whole. A body over the limit, or one that cannot be read, abandons the import (the
    /// iterator yields `Err`), and the rest of the body is read and thrown away
    /// ([`discard_rest`]). The answer is `import`'s, or the refusal.
    pub async fn stream_into<T, F>(self, import: F) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnOnce(&mut (dyn Iterator<Item = Result<Bytes, ImportError>> + Send)) -> Result<T, ApiError>
            + Send
            + 'static,
    {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Piece>(CHUNKS_AHEAD);
        let span = tracing::Span::current();
        let task = tokio::task::spawn_blocking(move || {
            let _entered = span.enter();
            let mut input = std::iter::from_fn(move || match rx.blocking_recv() {
                Some(Piece::Bytes(b)) => Some(Ok(b)),
                Some(Piece::End) => None,
                None => Some(Err(ImportError::Input("the upload was abandoned".into()))),
            });
            import(&mut input)
        });
        let mut stream = self.body.into_bytes_stream();
        let mut received = 0usize;
        let refused = loop {
            match stream.next().await {
                None => {
                    let _ = tx.send(Piece::End).await;
                    break None;
                }
                Some(Err(e)) => break Some(ApiError::bad_request(format!("could not read the request body: {e}"))),
                Some(Ok(chunk)) => {
                    received += chunk.len();
                    if received > self.limit {
                        discard_rest(stream);
                        break Some(upload_too_large(self.limit));
                    }
                    if tx.send(Piece::Bytes(chunk)).await.is_err() {
                        // the import stopped (a bad line, a database error): it says why
                        discard_rest(stream);
                        break None;
                    }
                }
            }
        };
        drop(tx);
        let imported = task.await.map_err(ApiError::internal)?;
        match refused {
            Some(e) => Err(e),
            None => imported,
        }
    }
}

/// Body chunks read ahead of the importing thread at most.
const CHUNKS_AHEAD: usize = 16;

/// 413 for an upload over `--max-body`.
pub fn upload_too_large(limit: usize) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("The body is larger than the limit of {limit} bytes; split the upload or raise --max-body"),
    )
}

/// Whether a request goes to the NDJSON upload, `POST /v1/schemas/{id}/results`, whose body
/// limit is `--max-body` (every other body is JSON, limited by `--max-json-body`).
pub fn is_upload(method: &poem::http::Method, path: &str) -> bool {
    let mut parts = path.split('/');
    *method == poem::http::Method::POST
        && matches!(
            (parts.next(), parts.next(), parts.next(), parts.next(), parts.next(), parts.next()),
            (Some(""), Some("v1"), Some("schemas"), Some(id), Some("results"), None) if !id.is_empty()
        )
}

super::content_type::body_extractor!(Ndjson, "the upload is NDJSON, one JSON object per line");
