//! The `application/x-ndjson` request body of the bulk results upload, read with a size
//! limit (413 beyond it).

use std::sync::Arc;

use futures_util::StreamExt;
use poem::http::StatusCode;
use poem::{Request, RequestBody};
use poem_openapi::payload::{ParsePayload, Payload};
use poem_openapi::registry::{MetaSchema, MetaSchemaRef};

use crate::app::AppState;
use crate::error::ApiError;

/// Newline-delimited JSON: one `{"extraction": {...}, "file_name"?, "createdAt"?}` per line.
pub struct Ndjson(pub Vec<u8>);

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
        let limit = request.data::<Arc<AppState>>().map(|s| s.max_body).unwrap_or(usize::MAX);
        let mut stream = body.take()?.into_bytes_stream();
        let mut buf = Vec::new();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| ApiError::bad_request(format!("could not read the request body: {e}")))?;
            if buf.len() + chunk.len() > limit {
                return Err(ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!("The body is larger than the limit of {limit} bytes; split the upload or raise --max-body"),
                )
                .into());
            }
            buf.extend_from_slice(&chunk);
        }
        Ok(Ndjson(buf))
    }
}

use poem_openapi::impl_apirequest_for_payload;
impl_apirequest_for_payload!(Ndjson);
