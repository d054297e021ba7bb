//! `Idempotency-Key` on every `POST` under `/v1`: the first request with a key runs and its
//! answer is kept for 24 hours per team; a repeat (same method, path and body) gets that
//! answer again with `Idempotent-Replayed: true` and nothing is done twice. Mounted around
//! the API routes, so every POST has it without a line in its handler.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use poem::http::{header, HeaderValue, Method, StatusCode};
use poem::{Body, Endpoint, IntoResponse, Request, Response};
use sha2::{Digest, Sha256};

use crate::db::idempotency::{self as store, KeyedRequest, Reservation, StoredAnswer, StoredKey, KEY_LIFETIME_MS};
use crate::error::{to_json_error, ApiError};
use crate::state::AppState;

/// The request header.
pub const HEADER: &str = "idempotency-key";
/// The header on a replayed answer.
pub const REPLAYED: &str = "idempotent-replayed";

/// How long a request waits for another one with the same key to finish before it gets 409.
const WAIT_FOR_FIRST: Duration = Duration::from_secs(5);
/// How often it looks meanwhile.
const WAIT_PACE: Duration = Duration::from_millis(25);
/// `Retry-After` of that 409, in seconds.
const RETRY_AFTER: u64 = 1;

/// The middleware: see the module docs. Requests without the header pass through untouched.
pub async fn around<E: Endpoint>(ep: Arc<E>, mut req: Request) -> poem::Result<Response> {
    let Some(raw) = req.headers().get(HEADER) else {
        return ep.call(req).await.map(IntoResponse::into_response);
    };
    if req.method() != Method::POST || !req.uri().path().starts_with("/v1/") {
        return ep.call(req).await.map(IntoResponse::into_response);
    }
    let key = match check_key(raw) {
        Ok(k) => k,
        Err(e) => return Ok(e.to_response()),
    };
    let Some(state) = req.data::<Arc<AppState>>().cloned() else {
        return ep.call(req).await.map(IntoResponse::into_response);
    };
    // no team, no key: the route answers 401 itself
    let api_key = req.headers().get("x-api-key").and_then(|v| v.to_str().ok()).map(str::to_string);
    let team = match api_key {
        Some(k) => match crate::api::auth::team_for_key(&state, &k).await {
            Ok(t) => t,
            Err(e) => return Ok(e.to_response()),
        },
        None => None,
    };
    let Some(team) = team else {
        return ep.call(req).await.map(IntoResponse::into_response);
    };
    // a replay never reaches the route's key check: the log still names the team
    if let Some(slot) = req.extensions().get::<crate::api::request_log::RequestTeam>() {
        slot.set(&team.id);
    }
    let path = req.uri().path().to_string();
    let upload = crate::api::ndjson::is_upload(req.method(), &path);
    let mut keyed =
        KeyedRequest { team_id: team.id, key, method: req.method().to_string(), path, body_hash: String::new() };
    match run(&ep, &mut req, &state, &mut keyed, upload).await {
        Ok(resp) => Ok(resp),
        Err(e) => Ok(e.to_response()),
    }
}

/// 1–255 visible ASCII characters, or a 400 saying so.
fn check_key(raw: &HeaderValue) -> Result<String, ApiError> {
    let b = raw.as_bytes();
    if b.is_empty() || b.len() > 255 || !b.iter().all(|c| (0x21..=0x7e).contains(c)) {
        return Err(ApiError::bad_request(
            "Idempotency-Key must be 1 to 255 visible ASCII characters (no spaces or control characters)",
        ));
    }
    Ok(String::from_utf8_lossy(b).into_owned())
}

async fn run<E: Endpoint>(
    ep: &Arc<E>,
    req: &mut Request,
    state: &Arc<AppState>,
    keyed: &mut KeyedRequest,
    upload: bool,
) -> Result<Response, ApiError> {
    // a JSON body is small (--max-json-body): read and hashed first; an upload is hashed as
    // the route streams it, or read through when the key turns out to be in use
    if !upload {
        let limit = state.limits.max_json_body;
        let body = read_limited(req.take_body(), limit, crate::api::body::json_body_too_large).await?;
        keyed.body_hash = json_hash(&body);
        req.set_body(Body::from(body));
    }
    let deadline = Instant::now() + WAIT_FOR_FIRST;
    loop {
        let existing = match reserve(state, keyed).await? {
            Reservation::Reserved => return first(ep, req, state, keyed, upload).await,
            Reservation::Existing(existing) => existing,
        };
        if upload && keyed.body_hash.is_empty() {
            let body = req.take_body();
            keyed.body_hash = drain_hash(body, state.limits.max_body).await?;
        }
        if existing.method != keyed.method
            || existing.path != keyed.path
            || (!existing.body_hash.is_empty() && existing.body_hash != keyed.body_hash)
        {
            return Err(reused(&keyed.key));
        }
        if let Some(answer) = existing.answer {
            return Ok(replay(answer));
        }
        // the first request still runs: wait for its answer, or for it to give the key up
        loop {
            if Instant::now() >= deadline {
                return Err(in_flight());
            }
            tokio::time::sleep(WAIT_PACE).await;
            match lookup(state, keyed).await? {
                Some(StoredKey { answer: Some(answer), body_hash, .. }) => {
                    if body_hash != keyed.body_hash {
                        return Err(reused(&keyed.key));
                    }
                    return Ok(replay(answer));
                }
                Some(_) => continue,
                // released (a 5xx, a dropped request): this one may do the work
                None => break,
            }
        }
        if upload {
            // its body was read to compare it: it cannot run now
            return Err(in_flight());
        }
    }
}

/// This request holds the key: it runs, and its answer is kept unless it is a 5xx.
async fn first<E: Endpoint>(
    ep: &Arc<E>,
    req: &mut Request,
    state: &Arc<AppState>,
    keyed: &mut KeyedRequest,
    upload: bool,
) -> Result<Response, ApiError> {
    let mut guard = Held { state: state.clone(), keyed: keyed.clone(), kept: false };
    let hashed = Arc::new(Mutex::new(Hashing { hasher: Sha256::new(), ended: false }));
    if upload {
        let inner = req.take_body().into_bytes_stream();
        let seen = hashed.clone();
        let stream = futures_util::stream::unfold((Box::pin(inner), seen), |(mut inner, seen)| async move {
            match inner.next().await {
                Some(Ok(b)) => {
                    seen.lock().expect("hash lock").hasher.update(&b);
                    Some((Ok::<_, std::io::Error>(b), (inner, seen)))
                }
                Some(Err(e)) => Some((Err(e), (inner, seen))),
                None => {
                    seen.lock().expect("hash lock").ended = true;
                    None
                }
            }
        });
        req.set_body(Body::from_bytes_stream(stream));
    }
    let req = std::mem::take(req);
    let resp = match ep.call(req).await {
        Ok(r) => r.into_response(),
        Err(e) => to_json_error(e).await,
    };
    if upload {
        let h = std::mem::replace(&mut *hashed.lock().expect("hash lock"), Hashing::new());
        if !h.ended {
            // refused before its body was read: its hash is unknown, so the answer is not
            // kept (a retry runs again, and is refused again)
            return Ok(resp);
        }
        keyed.body_hash = format!("ndjson:{}", hex::encode(h.hasher.finalize()));
    }
    if resp.status().is_server_error() {
        return Ok(resp);
    }
    let (parts, body) = resp.into_parts();
    let bytes = body.into_vec().await.map_err(ApiError::internal)?;
    let answer = StoredAnswer {
        status: parts.status.as_u16(),
        content_type: parts.headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_string),
        body: bytes.clone(),
    };
    let (done, run_id) = (keyed.clone(), state.run_id.clone());
    match state.writer.run_async(move |c| store::finish(c, &done, &run_id, &answer)).await {
        Ok(_) => guard.kept = true,
        // the work is done: its answer goes out all the same, and the key is given up (a
        // retry would run again, which is better than hiding what happened)
        Err(e) => tracing::warn!(error = %e, "could not keep the answer to an Idempotency-Key request"),
    }
    Ok(Response::from_parts(parts, Body::from(bytes)))
}

struct Hashing {
    hasher: Sha256,
    ended: bool,
}

impl Hashing {
    fn new() -> Hashing {
        Hashing { hasher: Sha256::new(), ended: false }
    }
}

/// A reservation: given up when its request ends without a kept answer (a 5xx, an upload
/// refused unread, a dropped connection, a panic), so a retry runs.
struct Held {
    state: Arc<AppState>,
    keyed: KeyedRequest,
    kept: bool,
}

impl Drop for Held {
    fn drop(&mut self) {
        if !self.kept {
            let (k, run_id) = (self.keyed.clone(), self.state.run_id.clone());
            self.state.writer.send(move |c| {
                if let Err(e) = store::release(c, &k.team_id, &k.key, &run_id) {
                    tracing::warn!(error = %e, "could not release an idempotency key");
                }
            });
        }
    }
}

async fn reserve(state: &Arc<AppState>, keyed: &KeyedRequest) -> Result<Reservation, ApiError> {
    let (k, run_id) = (keyed.clone(), state.run_id.clone());
    let now = state.clock.now_ms();
    state.writer.run_async(move |c| Ok(store::reserve(c, &k, &run_id, now, now - KEY_LIFETIME_MS)?)).await
}

async fn lookup(state: &Arc<AppState>, keyed: &KeyedRequest) -> Result<Option<StoredKey>, ApiError> {
    let (team, key) = (keyed.team_id.clone(), keyed.key.clone());
    let since = state.clock.now_ms() - KEY_LIFETIME_MS;
    crate::api::with_db(state, move |c| Ok(store::get(c, &team, &key, since)?)).await
}

fn replay(answer: StoredAnswer) -> Response {
    let mut b = Response::builder().status(StatusCode::from_u16(answer.status).unwrap_or(StatusCode::OK));
    if let Some(ct) = answer.content_type {
        b = b.header(header::CONTENT_TYPE, ct);
    }
    b.header(REPLAYED, "true").body(answer.body)
}

fn reused(key: &str) -> ApiError {
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        format!(
            "The Idempotency-Key '{key}' was already used for another request (a different method, path or body) \
             in the last 24 hours; send a new key for a new request"
        ),
    )
}

fn in_flight() -> ApiError {
    ApiError {
        retry_after: Some(RETRY_AFTER),
        ..ApiError::conflict(
            "A request with this Idempotency-Key is still being processed; retry shortly to get its answer",
        )
    }
}

/// The body, at most `limit` bytes (else the error `too_large` makes).
async fn read_limited(body: Body, limit: usize, too_large: fn(usize) -> ApiError) -> Result<Vec<u8>, ApiError> {
    let mut stream = Box::pin(body.into_bytes_stream());
    let mut out = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| ApiError::bad_request(format!("The request body could not be read: {e}")))?;
        if out.len() + chunk.len() > limit {
            return Err(too_large(limit));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

/// Hash of an upload read through (at most `limit` bytes), byte for byte.
async fn drain_hash(body: Body, limit: usize) -> Result<String, ApiError> {
    let mut stream = Box::pin(body.into_bytes_stream());
    let (mut hasher, mut read) = (Sha256::new(), 0usize);
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| ApiError::bad_request(format!("The request body could not be read: {e}")))?;
        read += chunk.len();
        if read > limit {
            return Err(crate::api::ndjson::upload_too_large(limit));
        }
        hasher.update(&chunk);
    }
    Ok(format!("ndjson:{}", hex::encode(hasher.finalize())))
}

/// Hash of a JSON body after normalisation (parsed, keys sorted, re-serialised compactly),
/// so that spacing and key order do not make two requests differ; a body that is not JSON
/// is hashed as it is.
fn json_hash(bytes: &[u8]) -> String {
    match serde_json::from_slice::<serde_json::Value>(bytes) {
        Ok(v) => {
            let text = serde_json::to_vec(&sorted(v)).expect("a JSON value serialises");
            format!("json:{}", hex::encode(Sha256::digest(text)))
        }
        Err(_) => format!("raw:{}", hex::encode(Sha256::digest(bytes))),
    }
}

fn sorted(v: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match v {
        Value::Object(m) => {
            let mut entries: Vec<(String, Value)> = m.into_iter().map(|(k, v)| (k, sorted(v))).collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(entries.into_iter().collect())
        }
        Value::Array(a) => Value::Array(a.into_iter().map(sorted).collect()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_one_to_255_visible_ascii_characters() {
        for ok in ["a", "order-42/retry_1", &"k".repeat(255), "~!@#$%^&*()"] {
            assert!(check_key(&HeaderValue::from_str(ok).unwrap()).is_ok(), "{ok}");
        }
        for bad in ["", "has space", &"k".repeat(256), "tab\there"] {
            let v = HeaderValue::from_bytes(bad.as_bytes()).unwrap();
            assert_eq!(check_key(&v).unwrap_err().status, StatusCode::BAD_REQUEST, "{bad:?}");
        }
        let latin1 = HeaderValue::from_bytes(b"caf\xe9").unwrap();
        assert!(check_key(&latin1).is_err());
    }

    #[test]
    fn json_bodies_compare_after_normalisation() {
        let h = |s: &str| json_hash(s.as_bytes());
        assert_eq!(h(r#"{"a": 1, "b": {"y": [1, 2], "x": null}}"#), h(r#"{"b":{"x":null,"y":[1,2]},"a":1}"#));
        assert_ne!(h(r#"{"a": 1}"#), h(r#"{"a": 2}"#));
        assert_ne!(h(r#"{"a": [1, 2]}"#), h(r#"{"a": [2, 1]}"#));
        assert_ne!(h("not json"), h("not  json"));
    }
}
