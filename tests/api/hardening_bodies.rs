//! Request bodies bounded whatever their framing, one nesting limit on every route (NDJSON
//! lines and `import` included), `search` capped, and the formula guard on header cells.

use std::process::Output;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::helpers;
use exports_api::domain::list::MAX_SEARCH_CHARS;
use exports_api::domain::nesting::MAX_NESTING;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const MB: u64 = 1 << 20;

/// What a raw HTTP/1.1 request with a chunked body got back.
struct Answer {
    status: u16,
    body: Value,
    /// Body bytes the generator had produced when the answer arrived.
    produced: u64,
}

/// Sends `method path` to `addr` with a `Transfer-Encoding: chunked` body produced on the
/// fly: `prefix`, then `filler` bytes until `total` bytes were produced, then `suffix` (so
/// the body is complete and valid if the server reads it all). Returns as soon as the whole
/// answer has arrived, and how much of the body had been produced by then.
async fn send_chunked(addr: &str, method: &str, path: &str, key: &str, body: (&str, u8, u64, &str)) -> Answer {
    let (prefix, filler, total, suffix) = body;
    let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let (mut rd, mut wr) = stream.into_split();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nx-api-key: {key}\r\ncontent-type: application/json\r\n\
         transfer-encoding: chunked\r\n\r\n"
    );
    let produced = Arc::new(AtomicU64::new(0));
    let counter = produced.clone();
    let (prefix, suffix) = (prefix.as_bytes().to_vec(), suffix.as_bytes().to_vec());
    let writer = tokio::spawn(async move {
        wr.write_all(head.as_bytes()).await?;
        let filler = vec![filler; 64 * 1024];
        let mut pieces = vec![prefix.as_slice()];
        loop {
            for piece in pieces.drain(..) {
                counter.fetch_add(piece.len() as u64, Ordering::SeqCst);
                wr.write_all(format!("{:x}\r\n", piece.len()).as_bytes()).await?;
                wr.write_all(piece).await?;
                wr.write_all(b"\r\n").await?;
            }
            let done = counter.load(Ordering::SeqCst);
            if done >= total {
                break;
            }
            let n = filler.len().min((total - done) as usize);
            pieces.push(&filler[..n]);
        }
        wr.write_all(format!("{:x}\r\n", suffix.len()).as_bytes()).await?;
        wr.write_all(&suffix).await?;
        wr.write_all(b"\r\n0\r\n\r\n").await?;
        counter.fetch_add(suffix.len() as u64, Ordering::SeqCst);
        wr.flush().await?;
        Ok::<_, std::io::Error>(wr)
    });
    let read = async {
        let mut buf = Vec::new();
        let mut tmp = [0u8; 8192];
        loop {
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buf[..end]).to_string();
                let status: u16 = head.split(' ').nth(1).and_then(|s| s.parse().ok()).expect("status line");
                let len: usize = head
                    .lines()
                    .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_string()))
                    .and_then(|v| v.parse().ok())
                    .expect("the answer has a Content-Length");
                if buf.len() >= end + 4 + len {
                    let body = serde_json::from_slice(&buf[end + 4..end + 4 + len]).expect("a JSON body");
                    return (status, body);
                }
            }
            let n = rd.read(&mut tmp).await.expect("read the answer");
            assert!(n > 0, "connection closed before a whole answer: {:?}", String::from_utf8_lossy(&buf));
            buf.extend_from_slice(&tmp[..n]);
        }
    };
    let (status, body) = tokio::time::timeout(Duration::from_secs(120), read).await.expect("an answer within 120 s");
    let produced = produced.load(Ordering::SeqCst);
    writer.abort();
    Answer { status, body, produced }
}

fn addr_of(app: &helpers::TestApp) -> String {
    app.base_url.trim_start_matches("http://").to_string()
}

fn assert_json_error(a: &Answer, status: u16) -> String {
    assert_eq!(a.status, status, "{}", a.body);
    assert_eq!(a.body["statusCode"], status, "{}", a.body);
    assert!(a.body["error"].as_str().is_some_and(|e| !e.is_empty()), "{}", a.body);
    a.body["message"].as_str().expect("message").to_string()
}

async fn total(app: &helpers::TestApp, path: &str) -> u64 {
    let v: Value = app.get(path).send().await.unwrap().json().await.unwrap();
    v["meta"]["total"].as_u64().unwrap_or_else(|| panic!("{path}: {v}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunked_json_bodies_over_the_limit_get_413_at_once_and_store_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let app = helpers::spawn_app_with(tmp.path().to_path_buf(), |c| c.limits.max_json_body = 64 * 1024).await;
    let schema =
        app.create_schema(&json!({"name": "Original", "schema": {"fields": [{"key": "a", "type": "string"}]}})).await;
    let sid = schema["id"].as_str().unwrap().to_string();
    let addr = addr_of(&app);
    // each body is valid JSON, padded with 300 MB of whitespace: read whole, it would be stored
    let fields = r#"{"fields":[{"key":"a","type":"string"}]}"#;
    let cases = [
        ("POST", "/v1/results".to_string(), format!(r#"{{"schema_id":"{sid}","extraction":{{"a":"x"}}"#)),
        (
            "POST",
            "/v1/exports".to_string(),
            format!(r#"{{"schema_id":"{sid}","start_date":"2024-01-01","end_date":"2024-12-31""#),
        ),
        ("POST", "/v1/schemas".to_string(), format!(r#"{{"name":"Big","schema":{fields}"#)),
        ("PATCH", format!("/v1/schemas/{sid}"), r#"{"name":"Renamed""#.to_string()),
    ];
    for (method, path, prefix) in &cases {
        let a = send_chunked(&addr, method, path, &app.api_key, (prefix, b' ', 300 * MB, "}")).await;
        let msg = assert_json_error(&a, 413);
        eprintln!("{method} {path}: answered after {} KB of 300 MB", a.produced / 1024);
        assert!(msg.contains("65536") && msg.contains("--max-json-body"), "{method} {path}: {msg}");
        // answered long before the client could have sent it all (socket buffers hold a few MB)
        assert!(a.produced < 32 * MB, "{method} {path}: {} MB produced before the answer", a.produced / MB);
    }
    assert_eq!(total(&app, "/v1/results").await, 0, "a result was stored");
    assert_eq!(total(&app, "/v1/exports").await, 0, "an export was stored");
    assert_eq!(total(&app, "/v1/schemas").await, 1, "a schema was stored");
    let v: Value = app.get(&format!("/v1/schemas/{sid}")).send().await.unwrap().json().await.unwrap();
    assert_eq!(v["name"], "Original", "the schema was changed");

    // under the limit, chunked bodies are read as before
    let prefix = format!(r#"{{"schema_id":"{sid}","extraction":{{"a":"x"}}"#);
    let a = send_chunked(&addr, "POST", "/v1/results", &app.api_key, (&prefix, b' ', 32 * 1024, "}")).await;
    assert_eq!(a.status, 201, "{}", a.body);
    assert_eq!(total(&app, "/v1/results").await, 1);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_early_content_length_check_uses_each_routes_limit() {
    let tmp = tempfile::tempdir().unwrap();
    let app = helpers::spawn_app_with(tmp.path().to_path_buf(), |c| {
        c.limits.max_json_body = 64 * 1024;
        c.limits.max_body = 4 << 20;
    })
    .await;
    let sid = app.create_schema(&json!({"name": "S", "schema": {"fields": [{"key": "a", "type": "string"}]}})).await
        ["id"]
        .as_str()
        .unwrap()
        .to_string();
    // a JSON body of 100 KB with a Content-Length: over --max-json-body
    let body = json!({"schema_id": sid, "extraction": {"a": "x".repeat(100 * 1024)}});
    let r = app.post_json("/v1/results", &body).send().await.unwrap();
    let msg = helpers::assert_error(r, 413).await;
    assert!(msg.contains("65536") && msg.contains("--max-json-body"), "{msg}");
    // answered from the header alone, before any of the body is sent
    let mut stream = tokio::net::TcpStream::connect(addr_of(&app)).await.unwrap();
    let head = format!(
        "POST /v1/results HTTP/1.1\r\nHost: x\r\nx-api-key: {}\r\ncontent-type: application/json\r\n\
         content-length: {}\r\n\r\n",
        app.api_key,
        2 << 20
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut answer = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut answer))
        .await
        .expect("an answer before the body is sent")
        .unwrap();
    drop(stream);
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("--max-json-body"), "{answer}");
    // an NDJSON upload of 1 MB is under --max-body: the JSON limit does not apply to it
    let line = format!("{}\n", json!({"extraction": {"a": "y".repeat(1000)}}));
    let n = app.upload_ndjson(&sid, line.repeat(1000)).await;
    assert_eq!(n, 1000);
    // and over --max-body it is refused, naming that flag
    let r = app
        .client
        .post(app.url(&format!("/v1/schemas/{sid}/results")))
        .header("x-api-key", &app.api_key)
        .header("content-type", "application/x-ndjson")
        .body(line.repeat(5000))
        .send()
        .await
        .unwrap();
    let msg = helpers::assert_error(r, 413).await;
    assert!(msg.contains("--max-body"), "{msg}");
    assert_eq!(total(&app, "/v1/results").await, 1000);
    app.stop().await;
}

/// Writes the whole request, then reads the answer, as most HTTP libraries do; returns the
/// status and the JSON body.
async fn send_all_then_read(addr: &str, request: &[u8]) -> (u16, Value) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let io = async {
        if let Err(e) = stream.write_all(request).await {
            panic!("the connection was reset while the request was sent: {e}");
        }
        let mut buf = Vec::new();
        let mut tmp = [0u8; 8192];
        loop {
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buf[..end]).to_string();
                let len: usize = head
                    .lines()
                    .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_string()))
                    .and_then(|v| v.parse().ok())
                    .expect("Content-Length");
                if buf.len() >= end + 4 + len {
                    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).expect("status");
                    return (status, serde_json::from_slice(&buf[end + 4..end + 4 + len]).expect("JSON body"));
                }
            }
            let n = stream.read(&mut tmp).await.expect("read the answer");
            assert!(n > 0, "closed before a whole answer");
            buf.extend_from_slice(&tmp[..n]);
        }
    };
    tokio::time::timeout(Duration::from_secs(60), io).await.expect("an answer within 60 s")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_sends_everything_before_reading_still_gets_the_answer() {
    let tmp = tempfile::tempdir().unwrap();
    let app = helpers::spawn_app_with(tmp.path().to_path_buf(), |c| c.limits.max_json_body = 64 * 1024).await;
    let sid = app.create_schema(&json!({"name": "S", "schema": {"fields": [{"key": "a", "type": "string"}]}})).await
        ["id"]
        .as_str()
        .unwrap()
        .to_string();
    let addr = addr_of(&app);
    let key = &app.api_key;
    // 12 MB: more than the socket buffers hold, less than what the server throws away
    let size = 12 << 20;
    let json = format!(r#"{{"schema_id":"{sid}","extraction":{{"a":"{}"}}}}"#, "x".repeat(size));
    let head = |path: &str, ct: &str, framing: &str| {
        format!("POST {path} HTTP/1.1\r\nHost: x\r\nx-api-key: {key}\r\ncontent-type: {ct}\r\n{framing}\r\n\r\n")
    };
    // over --max-json-body, announced by Content-Length
    let mut req = head("/v1/results", "application/json", &format!("content-length: {}", json.len()));
    req.push_str(&json);
    let (status, body) = send_all_then_read(&addr, req.as_bytes()).await;
    assert_eq!(status, 413, "{body}");
    // over --max-json-body, chunked
    let mut req = head("/v1/results", "application/json", "transfer-encoding: chunked");
    for piece in json.as_bytes().chunks(64 * 1024) {
        req.push_str(&format!("{:x}\r\n{}\r\n", piece.len(), std::str::from_utf8(piece).unwrap()));
    }
    req.push_str("0\r\n\r\n");
    let (status, body) = send_all_then_read(&addr, req.as_bytes()).await;
    assert_eq!(status, 413, "{body}");
    // an upload whose first line is bad, followed by 12 MB of good lines
    let good = format!("{}\n", json!({"extraction": {"a": "y".repeat(1000)}})).repeat(size / 1000);
    let nd = format!("{{\"extraction\": [1]}}\n{good}");
    let path = format!("/v1/schemas/{sid}/results");
    let mut req = head(&path, "application/x-ndjson", &format!("content-length: {}", nd.len()));
    req.push_str(&nd);
    let (status, body) = send_all_then_read(&addr, req.as_bytes()).await;
    assert_eq!(status, 400, "{body}");
    assert!(body["message"].as_str().unwrap().starts_with("line 1:"), "{body}");
    assert_eq!(total(&app, "/v1/results").await, 0);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_100_mb_chunked_body_leaves_the_servers_memory_flat() {
    let tmp = tempfile::tempdir().unwrap();
    let key = "test-key-memory-0123456789";
    let server =
        helpers::ServeCmd::new(tmp.path()).args(&["--max-json-body", "1MB"]).env("EXPORTS_API_KEY", key).start().await;
    let addr = server.addr.clone();
    let client = reqwest::Client::new();
    let r = client
        .post(format!("http://{addr}/v1/schemas"))
        .header("x-api-key", key)
        .json(&json!({"name": "S", "schema": {"fields": [{"key": "a", "type": "string"}]}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let sid = r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_string();
    let before = server.peak_rss();

    let prefix = format!(r#"{{"schema_id":"{sid}","extraction":{{"a":"x"}}"#);
    let a = send_chunked(&addr, "POST", "/v1/results", key, (&prefix, b' ', 100 * MB, "}")).await;
    let peak = server.peak_rss();
    eprintln!("server peak RSS: {} MB before, {} MB after a 100 MB chunked body", before / MB, peak / MB);
    assert!(peak < 60 * MB, "the server's peak RSS reached {} MB (status {})", peak / MB, a.status);
    let msg = assert_json_error(&a, 413);
    assert!(msg.contains("--max-json-body"), "{msg}");
    eprintln!("answered after {} KB of 100 MB", a.produced / 1024);

    let r = client.get(format!("http://{addr}/v1/results")).header("x-api-key", key).send().await.unwrap();
    assert_eq!(r.json::<Value>().await.unwrap()["meta"]["total"], 0, "the body was stored");
}

/// `{"extraction": {"a": [[...]]}}` whose extraction nests `depth` levels (the line one more).
fn nested_line(depth: usize) -> String {
    format!(r#"{{"extraction":{{"a":{}{}}}}}"#, "[".repeat(depth - 1), "]".repeat(depth - 1))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deep_ndjson_lines_are_refused_naming_the_line_over_http_and_in_import() {
    let tmp = tempfile::tempdir().unwrap();
    let app = helpers::spawn_app_with(tmp.path().to_path_buf(), |_| {}).await;
    let sid = app.create_schema(&json!({"name": "S", "schema": {"fields": [{"key": "a", "type": "string"}]}})).await
        ["id"]
        .as_str()
        .unwrap()
        .to_string();
    let deep = format!(r#"{{"extraction":{{"a":{}{}}}}}"#, "[".repeat(100_000), "]".repeat(100_000));
    let body = format!("{{\"extraction\":{{\"a\":\"ok\"}}}}\n{deep}\n");
    let r = app
        .client
        .post(app.url(&format!("/v1/schemas/{sid}/results")))
        .header("x-api-key", &app.api_key)
        .header("content-type", "application/x-ndjson")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    let msg = helpers::assert_error(r, 400).await;
    assert!(msg.starts_with("line 2:"), "{msg}");
    assert!(msg.contains(&format!("nested more than {MAX_NESTING} levels")), "{msg}");
    assert!(msg.contains("nothing was stored"), "{msg}");
    assert_eq!(total(&app, "/v1/results").await, 0, "a line was stored");

    // the same file through `import`, beside the server
    let file = tmp.path().join("deep.ndjson");
    std::fs::write(&file, &body).unwrap();
    let out: Output = helpers::bin_for(tmp.path())
        .args(["import", "--schema", &sid, file.to_str().unwrap(), "--data-dir"])
        .arg(tmp.path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "import of a deep line succeeded");
    assert!(err.contains("line 2:") && err.contains(&format!("nested more than {MAX_NESTING} levels")), "{err}");
    assert_eq!(total(&app, "/v1/results").await, 0, "import stored a line");

    // at the limit, a line is stored and reads back as sent (not as null)
    let ok = nested_line(MAX_NESTING - 1);
    assert_eq!(app.upload_ndjson(&sid, format!("{ok}\n")).await, 1);
    let v: Value = app.get("/v1/results?include_extraction=true").send().await.unwrap().json().await.unwrap();
    let sent: Value = serde_json::from_str(&ok).unwrap();
    assert_eq!(v["data"][0]["extraction"], sent["extraction"]);
    app.stop().await;
}

/// `{"<member>": [[...]]}` nesting `depth` levels in all, after `head` members.
fn nested_body(head: &str, depth: usize) -> String {
    format!(r#"{{{head}"deep":{}{}}}"#, "[".repeat(depth - 1), "]".repeat(depth - 1))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_bodies_nested_past_the_limit_get_400_on_every_route() {
    let app = helpers::spawn_app().await;
    let sid = app.create_schema(&json!({"name": "S", "schema": {"fields": [{"key": "a", "type": "string"}]}})).await
        ["id"]
        .as_str()
        .unwrap()
        .to_string();
    let fields = r#"{"fields":[{"key":"a","type":"string"}]}"#;
    let cases = [
        ("POST", "/v1/results".to_string(), format!(r#""schema_id":"{sid}","extraction":{{"a":"x"}},"#)),
        (
            "POST",
            "/v1/exports".to_string(),
            format!(r#""schema_id":"{sid}","start_date":"2024-01-01","end_date":"2024-01-02","#),
        ),
        ("POST", "/v1/schemas".to_string(), format!(r#""name":"Deep","schema":{fields},"#)),
        ("PATCH", format!("/v1/schemas/{sid}"), r#""name":"Renamed","#.to_string()),
    ];
    for (method, path, head) in &cases {
        let r = app
            .client
            .request(method.parse().unwrap(), app.url(path))
            .header("x-api-key", &app.api_key)
            .header("content-type", "application/json")
            .body(nested_body(head, MAX_NESTING + 1))
            .send()
            .await
            .unwrap();
        let msg = helpers::assert_error(r, 400).await;
        assert!(msg.contains(&format!("nested more than {MAX_NESTING} levels")), "{method} {path}: {msg}");
    }
    assert_eq!(total(&app, "/v1/results").await, 0);
    assert_eq!(total(&app, "/v1/exports").await, 0);
    assert_eq!(total(&app, "/v1/schemas").await, 1);
    let v: Value = app.get(&format!("/v1/schemas/{sid}")).send().await.unwrap().json().await.unwrap();
    assert_eq!(v["name"], "S");

    // an extraction at the limit is stored and reads back as sent
    let ok = nested_line(MAX_NESTING - 1);
    let mut body: Value = serde_json::from_str(&ok).unwrap();
    body["schema_id"] = json!(sid);
    let r = app.post_json("/v1/results", &body).send().await.unwrap();
    assert_eq!(r.status(), 201);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["extraction"], body["extraction"]);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_search_is_a_400_naming_the_cap() {
    let app = helpers::spawn_app().await;
    let long = "a".repeat(50_000);
    let at_cap = "é".repeat(MAX_SEARCH_CHARS);
    let over = "%".repeat(MAX_SEARCH_CHARS + 1);
    for list in ["/v1/exports", "/v1/schemas", "/v1/results"] {
        for s in [&long, &over] {
            let r = app.get(list).query(&[("search", s)]).send().await.unwrap();
            let msg = helpers::assert_error(r, 400).await;
            assert!(msg.contains("search") && msg.contains(&MAX_SEARCH_CHARS.to_string()), "{list}: {msg}");
        }
        let r = app.get(list).query(&[("search", &at_cap)]).send().await.unwrap();
        assert_eq!(r.status(), 200, "{list}");
    }
    app.stop().await;
}

#[test]
fn the_document_states_the_limits() {
    let doc: Value = serde_json::from_str(&exports_api::app::openapi_json()).unwrap();
    for list in ["/v1/exports", "/v1/schemas", "/v1/results"] {
        let params = doc["paths"][list]["get"]["parameters"].as_array().unwrap();
        let search = params.iter().find(|p| p["name"] == "search").unwrap();
        assert_eq!(search["schema"]["maxLength"], MAX_SEARCH_CHARS, "{list}");
        assert!(search["description"].as_str().unwrap().contains(&MAX_SEARCH_CHARS.to_string()), "{list}");
    }
    let nesting = format!("nested more than {MAX_NESTING} levels");
    for (path, method) in [
        ("/v1/exports", "post"),
        ("/v1/schemas", "post"),
        ("/v1/schemas/{id}", "patch"),
        ("/v1/results", "post"),
        ("/v1/schemas/{id}/results", "post"),
    ] {
        let responses = &doc["paths"][path][method]["responses"];
        assert!(responses.get("413").is_some(), "{method} {path} does not document 413");
        let bad = responses["400"]["description"].as_str().unwrap();
        assert!(bad.contains(&nesting), "{method} {path}: {bad}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_labels_get_the_formula_guard() {
    let app = helpers::spawn_app().await;
    let label = r#"=HYPERLINK("http://x","y")"#;
    let schema = app
        .create_schema(&json!({"name": "Guard", "schema": {"fields": [
            {"key": "a", "label": label, "type": "string"},
            {"key": "b", "label": "Plain", "type": "string"},
        ]}}))
        .await;
    let sid = schema["id"].as_str().unwrap();
    let r = app
        .post_json(
            "/v1/results",
            &json!({"schema_id": sid, "extraction": {"a": "=1+1", "b": "x"}, "createdAt": "2024-01-15"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    for (guard, want_label, want_value) in [(true, format!("'{label}"), "'=1+1"), (false, label.to_string(), "=1+1")] {
        let e = app
            .export_and_wait(&json!({"schema_id": sid, "start_date": "2024-01-01", "end_date": "2024-01-31",
                "options": {"header": "label", "formula_guard": guard}}))
            .await;
        assert_eq!(e["status"], "COMPLETED", "{e}");
        let url = app.download_url(e["id"].as_str().unwrap()).await;
        let text = app.client.get(&url).send().await.unwrap().text().await.unwrap();
        let mut rd = csv::Reader::from_reader(text.as_bytes());
        let header: Vec<String> = rd.headers().unwrap().iter().map(String::from).collect();
        assert_eq!(header, ["id", "file_name", "createdAt", want_label.as_str(), "Plain"], "guard {guard}");
        let row = rd.records().next().unwrap().unwrap();
        assert_eq!(&row[3], want_value, "guard {guard}");
    }
    app.stop().await;
}
