//! The `application/x-ndjson` request body of the bulk results upload: read with a size
//! limit (413 beyond it) and parsed line by line as it arrives, so the raw body is never held
//! whole and a bad line stops the upload at once.

use std::sync::Arc;

use futures_util::StreamExt;
use poem::http::StatusCode;
use poem::{Request, RequestBody};
use poem_openapi::payload::{ParsePayload, Payload};
use poem_openapi::registry::{MetaSchema, MetaSchemaRef};

use super::linger::discard_rest;
use crate::app::AppState;
use crate::domain::result::{parse_ndjson_line, NewResult};
use crate::domain::time::now_ms;
use crate::error::ApiError;

/// Newline-delimited JSON: one `{"extraction": {...}, "file_name"?, "createdAt"?}` per line,
/// parsed. Blank lines are skipped; at least one result is required.
pub struct Ndjson(pub Vec<NewResult>);

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
        let mut stream = body.take()?.into_bytes_stream();
        let mut lines = LineParser { now: now_ms(), line_no: 0, pending: Vec::new(), rows: Vec::new() };
        let mut received = 0usize;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| ApiError::bad_request(format!("could not read the request body: {e}")))?;
            received += chunk.len();
            let fed = if received > limit { Err(upload_too_large(limit)) } else { lines.feed(&chunk) };
            if let Err(e) = fed {
                discard_rest(stream);
                return Err(e.into());
            }
        }
        Ok(Ndjson(lines.finish()?))
    }
}

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

/// Splits bytes into lines across chunk boundaries and parses each complete line.
struct LineParser {
    now: i64,
    line_no: usize,
    pending: Vec<u8>,
    rows: Vec<NewResult>,
}

impl LineParser {
    fn feed(&mut self, mut chunk: &[u8]) -> Result<(), ApiError> {
        while let Some(i) = chunk.iter().position(|b| *b == b'\n') {
            self.pending.extend_from_slice(&chunk[..i]);
            self.line()?;
            chunk = &chunk[i + 1..];
        }
        self.pending.extend_from_slice(chunk);
        Ok(())
    }

    fn line(&mut self) -> Result<(), ApiError> {
        self.line_no += 1;
        let n = self.line_no;
        let text = std::str::from_utf8(&self.pending)
            .map_err(|_| ApiError::bad_request(format!("line {n}: not valid UTF-8; nothing was stored")))?;
        match parse_ndjson_line(text, self.now) {
            Ok(Some(r)) => self.rows.push(r),
            Ok(None) => {}
            Err(m) => return Err(ApiError::bad_request(format!("line {n}: {m}; nothing was stored"))),
        }
        self.pending.clear();
        Ok(())
    }

    fn finish(mut self) -> Result<Vec<NewResult>, ApiError> {
        if !self.pending.is_empty() {
            self.line()?;
        }
        if self.rows.is_empty() {
            return Err(ApiError::bad_request("the body has no results: send one JSON object per line"));
        }
        Ok(self.rows)
    }
}

use poem_openapi::impl_apirequest_for_payload;
impl_apirequest_for_payload!(Ndjson);

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_in_chunks(text: &str, size: usize) -> Result<Vec<NewResult>, ApiError> {
        let mut p = LineParser { now: 7, line_no: 0, pending: Vec::new(), rows: Vec::new() };
        for chunk in text.as_bytes().chunks(size) {
            p.feed(chunk)?;
        }
        p.finish()
    }

    #[test]
    fn lines_split_across_chunks() {
        let text = "{\"extraction\":{\"a\":\"Müller\"}}\r\n\n{\"extraction\":{\"b\":1.0},\"file_name\":\"x.pdf\"}";
        for size in [1, 2, 3, 7, 1000] {
            let rows = parse_in_chunks(text, size).unwrap();
            assert_eq!(rows.len(), 2, "chunk size {size}");
            assert_eq!(rows[0].extraction, "{\"a\":\"Müller\"}");
            assert_eq!(rows[1].file_name.as_deref(), Some("x.pdf"));
            assert_eq!(rows[1].created_at, 7);
        }
    }

    #[test]
    fn bad_lines_are_named() {
        let err = parse_in_chunks("{\"extraction\":{}}\n\n{\"extraction\":[]}\n", 4).unwrap_err();
        assert!(err.message.starts_with("line 3:"), "{}", err.message);
        let err = parse_in_chunks("\n \n", 4).unwrap_err();
        assert!(err.message.contains("no results"), "{}", err.message);
        let mut bytes = b"{\"extraction\":{}}\n".to_vec();
        bytes.extend_from_slice(b"{\"extraction\":{\"a\":\"\xff\"}}\n");
        let mut p = LineParser { now: 0, line_no: 0, pending: Vec::new(), rows: Vec::new() };
        let err = p.feed(&bytes).unwrap_err();
        assert!(err.message.starts_with("line 2: not valid UTF-8"), "{}", err.message);
    }
}
