//! The signed download route: `/files/teams/{team_id}/{export_id}/{name}.{csv,jsonl,xlsx}?expires=&token=`.
//! Needs no API key; the HMAC signature is the authority. Serves the file from disk (or, with
//! `--storage-proxy`, from the S3 object) in a stream, with `Range` (206/416),
//! `ETag`/`If-None-Match` (304) and `HEAD`. With S3 and no proxy, download URLs are presigned
//! S3 URLs instead, and this route is not used.
//!
//! hyper cannot `sendfile`, so the body is read in large chunks on a blocking thread and
//! handed to hyper through a short queue: few system calls and no copy besides the read
//! itself (hyper writes each chunk with `writev`). A download holds at most
//! `(QUEUED_CHUNKS + 2) × CHUNK_BYTES` of memory, whatever the file's size.

use std::sync::Arc;

use poem::http::{header, StatusCode};
use poem::web::Data;
use poem::{Body, IntoResponse, Request, Response};
use poem_openapi::param::{Path, Query};
use poem_openapi::registry::{
    MetaHeader, MetaMediaType, MetaResponse, MetaResponses, MetaSchema, MetaSchemaRef, Registry,
};
use poem_openapi::types::Type;
use poem_openapi::{ApiResponse, OpenApi};
use std::io::{Read, Seek};

use crate::api::{with_db, ApiTags};
use crate::db::exports::ExportRow;
use crate::domain::export::ExportStatus;
use crate::domain::naming::export_base_name;
use crate::domain::time::format_ms;
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;
use crate::storage::Source;

/// The download URL of a COMPLETED export and its expiry (Unix seconds): a presigned S3 URL
/// when its file is an object served straight from the bucket, else our signed route.
pub fn signed_url(state: &AppState, row: &ExportRow) -> (String, i64) {
    let name = export_base_name(row.schema_name.as_deref().unwrap_or("export"), row.start_ms, row.end_ms);
    let file_name = format!("{name}.{}", row.options.format.extension(row.options.gzip));
    let expires = chrono::Utc::now().timestamp() + state.url_ttl.as_secs() as i64;
    let content_type = row.options.format.content_type(row.options.gzip);
    let disposition = format!("attachment; filename=\"{file_name}\"");
    if let Some(url) = state.store.presigned_get(&row.id, row.options.gzip, &disposition, content_type, expires) {
        return (url, expires);
    }
    let path = format!("/files/teams/{}/{}/{file_name}", row.team_id, row.id);
    let token = state.signer.sign(&path, expires);
    (format!("{}{path}?expires={expires}&token={token}", state.public_url), expires)
}

pub struct FilesApi;

#[OpenApi]
impl FilesApi {
    /// Download an export file
    ///
    /// The URL handed out by `GET /v1/exports/{id}/download`; it needs no API key. `GET`
    /// and `HEAD` answer 200 with the format's content type (`text/csv; charset=utf-8` for
    /// `.csv`, `application/x-ndjson` for `.jsonl`, `application/gzip` for `.csv.gz` and
    /// `.jsonl.gz`, `application/vnd.openxmlformats-officedocument.spreadsheetml.sheet` for
    /// `.xlsx`), `Content-Disposition: attachment`, `Content-Length`, `ETag` and
    /// `Accept-Ranges: bytes`; a single `Range` gives 206 (416 when it lies past the end);
    /// `If-None-Match` with the ETag gives 304. A missing or wrong signature, or any change
    /// to the path or `expires`, is 403; so is an expired link (its message says so). A
    /// deleted export is 404. Downloads count towards the per-address rate limit
    /// (`--rate-limit`): over it, 429 with `Retry-After`.
    #[allow(clippy::too_many_arguments)]
    #[oai(path = "/files/teams/:team_id/:export_id/:name", method = "get", tag = "ApiTags::Files")]
    async fn download_file(
        &self,
        req: &Request,
        state: Data<&Arc<AppState>>,
        /// Team UUID
        team_id: Path<String>,
        /// Export UUID
        export_id: Path<String>,
        /// File name, e.g. `invoices_2024-01-01_2024-01-31.csv` (`.csv.gz`, `.jsonl`,
        /// `.jsonl.gz`, `.xlsx` by format)
        name: Path<String>,
        /// Expiry, Unix seconds
        expires: Query<Option<String>>,
        /// Signature
        token: Query<Option<String>>,
    ) -> FileReply {
        match serve(req, &state, &team_id.0, &export_id.0, &name.0, expires.0, token.0).await {
            Ok(resp) => FileReply(resp),
            Err(e) => FileReply(e.to_response()),
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn serve(
    req: &Request,
    state: &Arc<AppState>,
    team_id: &str,
    export_id: &str,
    name: &str,
    expires: Option<String>,
    token: Option<String>,
) -> Result<Response, ApiError> {
    let (Some(expires_text), Some(token)) = (expires, token) else {
        return Err(ApiError::forbidden("This download link is not signed: it needs its expires and token parameters"));
    };
    let path = req.uri().path();
    let expires: i64 = expires_text
        .parse()
        .map_err(|_| ApiError::forbidden("Invalid signature: the link was altered or not issued by this service"))?;
    if !state.signer.verify(path, expires, &token) {
        return Err(ApiError::forbidden("Invalid signature: the link was altered or not issued by this service"));
    }
    if chrono::Utc::now().timestamp() > expires {
        return Err(ApiError::forbidden(format!(
            "This download link expired at {}; get a new one from GET /v1/exports/{export_id}/download",
            format_ms(expires.saturating_mul(1000))
        )));
    }
    let (team, id) = (team_id.to_string(), export_id.to_string());
    let row = with_db(state, move |c| Ok(crate::db::exports::get(c, &team, &id)?)).await?;
    let row = row
        .filter(|r| r.status == ExportStatus::Completed)
        .ok_or_else(|| ApiError::not_found("Export not found: it was deleted"))?;
    let opened = state.store.open_read(&row.id, row.options.gzip).await?;
    let size = opened.size;
    // a local file's ETag is its export's id and size (an export's file never changes); an
    // object has its own
    let etag = opened.etag.unwrap_or_else(|| format!("\"{}-{size}\"", row.id));
    let content_type = row.options.format.content_type(row.options.gzip);
    let common = |b: poem::ResponseBuilder| {
        b.header(header::ETAG, etag.as_str())
            .header(header::ACCEPT_RANGES, "bytes")
            .header(header::CACHE_CONTROL, "private, no-cache")
    };

    if let Some(inm) = req.headers().get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()) {
        if etag_matches(inm, &etag) {
            return Ok(common(Response::builder().status(StatusCode::NOT_MODIFIED)).finish());
        }
    }
    let range_applies = match req.headers().get(header::IF_RANGE).and_then(|v| v.to_str().ok()) {
        Some(ir) => ir.trim() == etag,
        None => true,
    };
    let range = if range_applies {
        req.headers().get(header::RANGE).and_then(|v| v.to_str().ok()).map(|r| parse_range(r, size))
    } else {
        None
    };
    let disposition = format!("attachment; filename=\"{name}\"");
    let (status, start, len) = match range {
        Some(RangeSpec::Satisfiable(start, end)) => (StatusCode::PARTIAL_CONTENT, start, end - start + 1),
        Some(RangeSpec::Unsatisfiable) => {
            let mut resp = ErrorBody::new(
                StatusCode::RANGE_NOT_SATISFIABLE,
                format!("The requested range is not satisfiable: the file has {size} bytes"),
            )
            .into_response();
            resp.headers_mut().insert(header::CONTENT_RANGE, format!("bytes */{size}").parse().expect("header"));
            resp.headers_mut().insert(header::ACCEPT_RANGES, "bytes".parse().expect("header"));
            return Ok(resp);
        }
        Some(RangeSpec::Ignore) | None => (StatusCode::OK, 0, size),
    };
    let mut b = common(Response::builder().status(status))
        .content_type(content_type)
        .header(header::CONTENT_DISPOSITION, disposition)
        .header(header::CONTENT_LENGTH, len.to_string());
    if status == StatusCode::PARTIAL_CONTENT {
        b = b.header(header::CONTENT_RANGE, format!("bytes {start}-{}/{size}", start + len - 1));
    }
    if req.method() == poem::http::Method::HEAD || len == 0 {
        return Ok(b.body(Body::empty()));
    }
    let body = match opened.source {
        Source::File(file) => stream_file(file, start, len),
        Source::Object(object) => Body::from_bytes_stream(object.stream(start, len)),
    };
    Ok(b.body(counted(body, state.metrics.download_bytes.clone())))
}

/// Bytes read from the file per chunk.
const CHUNK_BYTES: usize = 2 << 20;
/// Chunks read ahead of the one hyper is writing.
const QUEUED_CHUNKS: usize = 1;

/// `len` bytes of `file` from `start`, read on a blocking thread in `CHUNK_BYTES` chunks. The
/// reader stops as soon as the client goes away (the queue's receiver is dropped).
fn stream_file(mut file: std::fs::File, start: u64, len: u64) -> Body {
    let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<Vec<u8>>>(QUEUED_CHUNKS);
    tokio::task::spawn_blocking(move || {
        if start > 0 {
            if let Err(e) = file.seek(std::io::SeekFrom::Start(start)) {
                let _ = tx.blocking_send(Err(e));
                return;
            }
        }
        let mut left = len;
        while left > 0 {
            let want = left.min(CHUNK_BYTES as u64);
            let mut buf = Vec::with_capacity(want as usize);
            let chunk = match (&mut file).take(want).read_to_end(&mut buf) {
                Ok(0) => Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "the export file became shorter while it was being sent",
                )),
                Ok(n) => {
                    left -= n as u64;
                    Ok(buf)
                }
                Err(e) => Err(e),
            };
            let failed = chunk.is_err();
            if tx.blocking_send(chunk).is_err() || failed {
                return;
            }
        }
    });
    Body::from_bytes_stream(futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|chunk| (chunk, rx))
    }))
}

/// `body`, adding each piece's size to `exports_download_bytes_total` as it is handed to the
/// connection: a download cut short counts what was sent, a range only its bytes.
fn counted(body: Body, sent: prometheus::IntCounter) -> Body {
    use futures_util::StreamExt;
    Body::from_bytes_stream(body.into_bytes_stream().inspect(move |piece| {
        if let Ok(bytes) = piece {
            sent.inc_by(bytes.len() as u64);
        }
    }))
}

fn etag_matches(if_none_match: &str, etag: &str) -> bool {
    if_none_match.trim() == "*"
        || if_none_match.split(',').map(|t| t.trim().trim_start_matches("W/")).any(|t| t == etag)
}

#[derive(Debug, PartialEq, Eq)]
enum RangeSpec {
    /// Inclusive byte positions.
    Satisfiable(u64, u64),
    Unsatisfiable,
    /// Malformed, or several ranges: serve the whole file (RFC 9110 allows ignoring Range).
    Ignore,
}

fn parse_range(h: &str, size: u64) -> RangeSpec {
    let Some(spec) = h.trim().strip_prefix("bytes=") else { return RangeSpec::Ignore };
    if spec.contains(',') {
        return RangeSpec::Ignore;
    }
    let Some((a, b)) = spec.trim().split_once('-') else { return RangeSpec::Ignore };
    let (a, b) = (a.trim(), b.trim());
    if a.is_empty() {
        // suffix: the last N bytes
        let Ok(n) = b.parse::<u64>() else { return RangeSpec::Ignore };
        if n == 0 || size == 0 {
            return RangeSpec::Unsatisfiable;
        }
        return RangeSpec::Satisfiable(size.saturating_sub(n), size - 1);
    }
    let Ok(start) = a.parse::<u64>() else { return RangeSpec::Ignore };
    let end = if b.is_empty() {
        size.saturating_sub(1)
    } else {
        match b.parse::<u64>() {
            Ok(e) if e >= start => e.min(size.saturating_sub(1)),
            _ => return RangeSpec::Ignore,
        }
    };
    if start >= size {
        return RangeSpec::Unsatisfiable;
    }
    RangeSpec::Satisfiable(start, end)
}

/// The file route's response: documented here, built by hand so its headers stay exact.
pub struct FileReply(Response);

impl IntoResponse for FileReply {
    fn into_response(self) -> Response {
        self.0
    }
}

fn header_doc(name: &str, description: &str) -> MetaHeader {
    MetaHeader {
        name: name.to_string(),
        description: Some(description.to_string()),
        required: false,
        deprecated: false,
        schema: String::schema_ref(),
    }
}

impl ApiResponse for FileReply {
    fn meta() -> MetaResponses {
        let binary =
            || MetaSchemaRef::Inline(Box::new(MetaSchema { format: Some("binary"), ..MetaSchema::new("string") }));
        let file_content = || {
            vec![
                MetaMediaType { content_type: "text/csv; charset=utf-8", schema: binary() },
                MetaMediaType { content_type: "application/gzip", schema: binary() },
                MetaMediaType { content_type: "application/x-ndjson", schema: binary() },
                MetaMediaType {
                    content_type: "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                    schema: binary(),
                },
            ]
        };
        let file_headers = || {
            vec![
                header_doc(
                    "Content-Disposition",
                    "attachment; filename=\"{name}\" (`.csv`, `.csv.gz`, `.jsonl`, `.jsonl.gz` or `.xlsx`)",
                ),
                header_doc("Content-Length", "Bytes in this response"),
                header_doc("ETag", "Identifies this file; send it back in If-None-Match"),
                header_doc("Accept-Ranges", "bytes"),
            ]
        };
        let error = |status: u16, description: &'static str| MetaResponse {
            description,
            status: Some(status),
            status_range: None,
            content: vec![MetaMediaType {
                content_type: "application/json; charset=utf-8",
                schema: ErrorBody::schema_ref(),
            }],
            headers: vec![],
        };
        let mut partial_headers = file_headers();
        partial_headers.push(header_doc("Content-Range", "bytes START-END/SIZE"));
        MetaResponses {
            responses: vec![
                MetaResponse {
                    description: "The whole file",
                    status: Some(200),
                    status_range: None,
                    content: file_content(),
                    headers: file_headers(),
                },
                MetaResponse {
                    description: "The requested byte range",
                    status: Some(206),
                    status_range: None,
                    content: file_content(),
                    headers: partial_headers,
                },
                MetaResponse {
                    description: "Not modified: the ETag in If-None-Match matches",
                    status: Some(304),
                    status_range: None,
                    content: vec![],
                    headers: vec![header_doc("ETag", "Identifies this file")],
                },
                error(403, "Missing or wrong signature, altered path or expiry, or an expired link"),
                error(404, "The export was deleted"),
                error(416, "The range lies past the end of the file"),
                MetaResponse {
                    headers: vec![MetaHeader {
                        required: true,
                        schema: u64::schema_ref(),
                        ..header_doc("Retry-After", "Seconds to wait before trying again")
                    }],
                    ..error(
                        429,
                        "Too many requests from your address: downloads count towards the per-address rate limit \
                         (`--rate-limit`); wait `Retry-After` seconds",
                    )
                },
            ],
        }
    }

    fn register(registry: &mut Registry) {
        ErrorBody::register(registry);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-99", 1000), RangeSpec::Satisfiable(0, 99));
        assert_eq!(parse_range("bytes=100-", 1000), RangeSpec::Satisfiable(100, 999));
        assert_eq!(parse_range("bytes=-50", 1000), RangeSpec::Satisfiable(950, 999));
        assert_eq!(parse_range("bytes=-5000", 1000), RangeSpec::Satisfiable(0, 999));
        assert_eq!(parse_range("bytes=900-5000", 1000), RangeSpec::Satisfiable(900, 999));
        assert_eq!(parse_range("bytes=1000-", 1000), RangeSpec::Unsatisfiable);
        assert_eq!(parse_range("bytes=0-1,5-6", 1000), RangeSpec::Ignore);
        assert_eq!(parse_range("items=0-1", 1000), RangeSpec::Ignore);
        assert_eq!(parse_range("bytes=5-1", 1000), RangeSpec::Ignore);
    }

    /// Files larger than a chunk arrive whole and in order, from any start and for any length.
    #[tokio::test]
    async fn streams_files_of_several_chunks_exactly() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.csv");
        let content: Vec<u8> = (0..(2 * CHUNK_BYTES + 12345)).map(|i| (i * 7 % 251) as u8).collect();
        std::fs::write(&path, &content).unwrap();
        let size = content.len() as u64;
        for (start, len) in [(0, size), (1, size - 1), (CHUNK_BYTES as u64 - 3, CHUNK_BYTES as u64 + 10), (size - 1, 1)]
        {
            let file = std::fs::File::open(&path).unwrap();
            let got = stream_file(file, start, len).into_vec().await.unwrap();
            assert!(got == content[start as usize..(start + len) as usize], "start {start}, len {len}");
        }
    }

    /// A file cut short while it is sent ends the body with an error, not with missing bytes.
    #[tokio::test]
    async fn a_file_shorter_than_announced_fails_the_body() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.csv");
        std::fs::write(&path, vec![b'x'; 1000]).unwrap();
        let file = std::fs::File::open(&path).unwrap();
        assert!(stream_file(file, 0, 2000).into_vec().await.is_err());
    }

    #[test]
    fn etags() {
        assert!(etag_matches("\"a-1\"", "\"a-1\""));
        assert!(etag_matches("\"x\", W/\"a-1\"", "\"a-1\""));
        assert!(etag_matches("*", "\"a-1\""));
        assert!(!etag_matches("\"a-2\"", "\"a-1\""));
    }
}
