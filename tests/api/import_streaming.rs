//! Issue 6, import: the NDJSON upload streams (the server's memory stays flat, whatever the
//! body's size), is spooled to a private temporary file that never outlives the request, does
//! not hold the write connection while the body arrives, and is still all or nothing; and
//! `import` and the upload store exactly what was sent.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::helpers;
use crate::helpers::{assert_error, poll_until, spawn_app, spawn_app_with, within, ServeCmd, TestApp};
use serde_json::{json, Value};

async fn total(app: &TestApp, schema_id: &str) -> u64 {
    let v: Value =
        app.get(&format!("/v1/results?schema_id={schema_id}&limit=1")).send().await.unwrap().json().await.unwrap();
    v["meta"]["total"].as_u64().unwrap_or_else(|| panic!("{v}"))
}

async fn new_schema(app: &TestApp) -> String {
    let s = app.create_schema(&json!({"name": "S", "schema": {"fields": [{"key": "n", "type": "integer"}]}})).await;
    s["id"].as_str().unwrap().to_string()
}

fn upload(app: &TestApp, schema_id: &str, body: impl Into<reqwest::Body>) -> reqwest::RequestBuilder {
    app.client
        .post(app.url(&format!("/v1/schemas/{schema_id}/results")))
        .header("x-api-key", &app.api_key)
        .header("content-type", "application/x-ndjson")
        .body(body)
}

/// A good line of about `pad` + 100 bytes.
fn line(i: usize, pad: usize) -> String {
    format!(
        "{{\"file_name\":\"doc-{i}.pdf\",\"createdAt\":\"2024-01-01T00:00:00.000Z\",\"extraction\":{{\"n\":{i},\"pad\":\"{}\"}}}}\n",
        "x".repeat(pad)
    )
}

/// The upload temporary files in the data folder, with their sizes.
fn spooled(app: &TestApp) -> Vec<(PathBuf, u64)> {
    let dir = exports_api::data_dir::DataDir::new(&app.data_dir).uploads();
    let mut files: Vec<(PathBuf, u64)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap())
        .map(|e| (e.path(), e.metadata().unwrap().len()))
        .collect();
    files.sort();
    files
}

/// Polls `cond` until it holds; panics after 30 s.
async fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    poll_until(within(30), what, || std::future::ready(cond().then_some(()))).await
}

/// An upload whose body the test sends piece by piece: returns the sender of the pieces
/// (dropping it ends the body) and the task that waits for the answer.
fn upload_in_pieces(
    app: &TestApp,
    schema_id: &str,
) -> (tokio::sync::mpsc::Sender<Vec<u8>>, tokio::task::JoinHandle<(u16, Value)>) {
    let (tx, rx) = tokio::sync::mpsc::channel::<Vec<u8>>(4);
    let body =
        futures_util::stream::unfold(
            rx,
            |mut rx| async move { rx.recv().await.map(|b| (Ok::<_, std::io::Error>(b), rx)) },
        );
    let req = upload(app, schema_id, reqwest::Body::wrap_stream(body));
    let task = tokio::spawn(async move {
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.json::<Value>().await.unwrap())
    });
    (tx, task)
}

// ---------------------------------------------------------------------------------------
// The upload is spooled first: the writer is free while the body arrives, and the
// temporary file never outlives the request

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_writes_answer_while_a_big_upload_is_being_received() {
    let app = spawn_app().await;
    let sid = new_schema(&app).await;
    let (tx, task) = upload_in_pieces(&app, &sid);
    let first: String = (0..1000).map(|i| line(i, 1000)).collect();
    tx.send(first.into_bytes()).await.unwrap();
    wait_for("the upload to reach its temporary file", || spooled(&app).iter().any(|(_, n)| *n > 0)).await;

    // the body is still open: every other write goes through, uploads included
    let r = app.post_json("/v1/results", &json!({"schema_id": sid, "extraction": {"n": -1}})).send().await.unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(app.upload_ndjson(&sid, line(7, 10)).await, 1);
    assert!(!new_schema(&app).await.is_empty());
    assert_eq!(total(&app, &sid).await, 2, "nothing of the open upload is stored yet");

    let rest: String = (1000..2000).map(|i| line(i, 1000)).collect();
    tx.send(rest.into_bytes()).await.unwrap();
    drop(tx);
    let (status, v) = task.await.unwrap();
    assert_eq!((status, v), (201, json!({"inserted": 2000})));
    assert_eq!(total(&app, &sid).await, 2002);
    assert_eq!(spooled(&app), Vec::<(PathBuf, u64)>::new(), "the temporary file is gone");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_disconnects_mid_upload_leaves_nothing() {
    let app = spawn_app().await;
    let sid = new_schema(&app).await;
    let (tx, task) = upload_in_pieces(&app, &sid);
    let first: String = (0..1000).map(|i| line(i, 1000)).collect();
    tx.send(first.into_bytes()).await.unwrap();
    wait_for("the upload to reach its temporary file", || spooled(&app).iter().any(|(_, n)| *n > 0)).await;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for (path, _) in spooled(&app) {
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600, "{}", path.display());
        }
    }
    // the client goes away with the body half sent
    task.abort();
    let _ = task.await;
    drop(tx);
    wait_for("the temporary file to be removed", || spooled(&app).is_empty()).await;
    assert_eq!(total(&app, &sid).await, 0);
    assert_eq!(app.upload_ndjson(&sid, line(1, 10)).await, 1);
    assert_eq!(total(&app, &sid).await, 1);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leftover_temporary_files_are_removed_at_start() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let app = spawn_app_with(data.clone(), |_| {}).await;
    app.stop().await;
    let dir = exports_api::data_dir::DataDir::new(&data).uploads();
    let stale = dir.join("01936b2e-0000-7000-8000-000000000000.ndjson.part");
    std::fs::write(&stale, "{\"extraction\":{}}\n").unwrap();
    let app = spawn_app_with(data.clone(), |_| {}).await;
    assert!(!stale.exists(), "a crashed run's upload file is removed at start");
    app.stop().await;
}

// ---------------------------------------------------------------------------------------
// All or nothing, and no temporary file left behind

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_line_near_the_end_of_a_big_upload_stores_nothing() {
    let app = spawn_app().await;
    let sid = new_schema(&app).await;
    // 24 MB: many batches are stored in the transaction before the bad line arrives
    let n = 24_000;
    let mut body = String::with_capacity(n * 1100);
    for i in 0..n {
        body.push_str(&line(i, 1000));
    }
    body.push_str("{\"extraction\": [\"not an object\"]}\n");
    body.push_str(&line(n, 10));
    let msg = assert_error(upload(&app, &sid, body).send().await.unwrap(), 400).await;
    assert!(msg.starts_with(&format!("line {}:", n + 1)), "{msg}");
    assert!(msg.contains("nothing was stored"), "{msg}");
    assert_eq!(total(&app, &sid).await, 0);
    assert_eq!(spooled(&app), Vec::<(PathBuf, u64)>::new(), "the temporary file is gone");
    // the transaction is gone: the next upload and writes go through at once
    assert_eq!(app.upload_ndjson(&sid, line(1, 10)).await, 1);
    assert_eq!(total(&app, &sid).await, 1);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_over_the_limit_stores_nothing_and_leaves_no_file() {
    let tmp = tempfile::tempdir().unwrap();
    let app = spawn_app_with(tmp.path().to_path_buf(), |c| c.limits.max_body = 4 << 20).await;
    let sid = new_schema(&app).await;
    let body: String = (0..12_000).map(|i| line(i, 1000)).collect(); // 12 MB, 4 MB allowed
                                                                     // streamed without a Content-Length, so the limit is met only while the body is spooled
    let chunks: Vec<Result<String, std::io::Error>> =
        body.as_bytes().chunks(64 * 1024).map(|c| Ok(String::from_utf8(c.to_vec()).unwrap())).collect();
    let stream = futures_util::stream::iter(chunks);
    let msg = assert_error(upload(&app, &sid, reqwest::Body::wrap_stream(stream)).send().await.unwrap(), 413).await;
    assert!(msg.contains("--max-body"), "{msg}");
    assert_eq!(total(&app, &sid).await, 0);
    assert_eq!(spooled(&app), Vec::<(PathBuf, u64)>::new(), "the temporary file is gone");
    assert_eq!(app.upload_ndjson(&sid, line(1, 10)).await, 1);
    app.stop().await;
}

// ---------------------------------------------------------------------------------------
// The real binary: memory stays flat while a body far larger than the budget streams in

const API_KEY: &str = "stream-test-key-0123456789";

#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_far_larger_than_the_memory_budget_streams() {
    let tmp = tempfile::tempdir().unwrap();
    let mut serve = ServeCmd::new(&tmp.path().join("data"))
        .args(&["--workers", "1", "--max-body", "512MB"])
        .env("EXPORTS_API_KEY", API_KEY);
    if let Some(url) = helpers::suite_database(&tmp.path().join("data")).await {
        // the COPY into PostgreSQL streams too
        serve = serve
            .args(&["--database-url", &url])
            .env("EXPORTS_SIGNING_KEY", "stream-test-signing-key-0123456789abcdef");
    }
    let s = serve.start().await;
    let http = reqwest::Client::new();
    let url = |p: &str| s.url(p);
    let r = http
        .post(url("/v1/schemas"))
        .header("x-api-key", API_KEY)
        .json(&json!({"name": "S", "schema": {"fields": [{"key": "n", "type": "integer"}]}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let sid = r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_string();
    let idle = s.peak_rss();

    // 80 MB of NDJSON, made as it is sent: twice the budget below
    let (rows, pad) = (20_000usize, 4000usize);
    let size: usize = (0..rows).map(|i| line(i, pad).len()).sum();
    assert!(size > 80_000_000, "{size}");
    let stream = futures_util::stream::iter((0..rows).map(move |i| Ok::<_, std::io::Error>(line(i, pad))));
    let r = http
        .post(url(&format!("/v1/schemas/{sid}/results")))
        .header("x-api-key", API_KEY)
        .header("content-type", "application/x-ndjson")
        .header("content-length", size.to_string())
        .body(reqwest::Body::wrap_stream(stream))
        .timeout(Duration::from_secs(600))
        .send()
        .await
        .unwrap();
    let status = r.status();
    let v: Value = r.json().await.unwrap();
    assert_eq!(status, 201, "{v}");
    assert_eq!(v["inserted"].as_u64(), Some(rows as u64));

    let grown = s.peak_rss().saturating_sub(idle);
    eprintln!("server peak RSS grew by {} MB for a {} MB upload", grown >> 20, size >> 20);
    assert!(grown < 40 << 20, "the server's peak memory grew by {} MB for a {} MB upload", grown >> 20, size >> 20);

    let v: Value = http
        .get(url(&format!("/v1/results?schema_id={sid}&limit=1&sort_order=asc&include_extraction=true")))
        .header("x-api-key", API_KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["meta"]["total"].as_u64(), Some(rows as u64), "{v}");
    assert_eq!(v["data"][0]["extraction"]["pad"].as_str().map(str::len), Some(pad));
}

// ---------------------------------------------------------------------------------------
// `import` and the upload store exactly what was sent

/// (file_name, created_at, extraction) of a schema's results, in the order they were stored:
/// in the data folder's SQLite file, or in the PostgreSQL database at `url`.
async fn stored(data_dir: &Path, url: Option<&str>, schema_id: &str) -> Vec<(Option<String>, i64, String)> {
    let schema = uuid::Uuid::parse_str(schema_id).unwrap();
    let sql = "SELECT file_name, created_at, extraction FROM results WHERE schema_id = $1 ORDER BY id";
    if let Some(url) = url {
        let url = url.to_string();
        let rows = tokio::task::spawn_blocking(move || helpers::pg_client(&url).query(sql, &[&schema]).unwrap());
        return rows.await.unwrap().iter().map(|r| (r.get(0), r.get(1), r.get(2))).collect();
    }
    let db = rusqlite::Connection::open(data_dir.join("exports.db")).unwrap();
    let mut st = db.prepare(&sql.replace('$', "?")).unwrap();
    // results keep their schema's id as the UUID's 16 bytes
    let rows = st.query_map([schema.as_bytes()], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?))).unwrap();
    rows.collect::<Result<_, _>>().unwrap()
}

/// What each non-blank line says, read independently of the service's parser: the
/// extraction's exact text, the file name, and createdAt (None: "now").
fn expected(ndjson: &str) -> Vec<(Option<String>, Option<i64>, String)> {
    #[derive(serde::Deserialize)]
    struct L<'a> {
        #[serde(borrow)]
        extraction: &'a serde_json::value::RawValue,
        file_name: Option<String>,
        #[serde(rename = "createdAt")]
        created_at: Option<String>,
    }
    ndjson
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let l: L = serde_json::from_str(l.trim()).unwrap();
            let at = l.created_at.map(|s| match chrono::DateTime::parse_from_rfc3339(&s) {
                Ok(t) => t.timestamp_millis(),
                Err(_) => chrono::NaiveDate::parse_from_str(&s, "%Y-%m-%d")
                    .unwrap()
                    .and_hms_opt(0, 0, 0)
                    .unwrap()
                    .and_utc()
                    .timestamp_millis(),
            });
            (l.file_name, at, l.extraction.get().to_string())
        })
        .collect()
}

fn check(
    label: &str,
    got: &[(Option<String>, i64, String)],
    want: &[(Option<String>, Option<i64>, String)],
    now: (i64, i64),
) {
    assert_eq!(got.len(), want.len(), "{label}: count");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert_eq!(g.0, w.0, "{label}: file_name of line {}", i + 1);
        assert_eq!(g.2, w.2, "{label}: extraction of line {}", i + 1);
        match w.1 {
            Some(at) => assert_eq!(g.1, at, "{label}: createdAt of line {}", i + 1),
            None => assert!(g.1 >= now.0 && g.1 <= now.1, "{label}: line {} without createdAt: {}", i + 1, g.1),
        }
    }
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_and_upload_store_exactly_what_was_sent() {
    let tmp = tempfile::tempdir().unwrap();
    let data: PathBuf = tmp.path().join("data");
    let app = spawn_app_with(data.clone(), |_| {}).await;
    // Python's data on purpose: its JSON text (ensure_ascii=False, Python float repr) is the
    // "exactly what was sent" that must be stored unchanged
    let (schema, mut nd) = helpers::gen_results(3000, 11);
    // the awkward cases on top of the generated set: other createdAt forms, none, escapes,
    // blank and CRLF lines, and no final newline
    nd.push_str("\r\n\n   \n");
    nd.push_str("{\"extraction\":{\"a\":\"\\u00e9\\n\",\"b\":1.50e3},\"file_name\":\"we\\\"ird\\\\name.pdf\"}\r\n");
    nd.push_str("{\"createdAt\":\"2024-02-29\",\"extraction\":{ \"spaced\" : [ 1 , 2 ] }}\n");
    nd.push_str("{\"createdAt\":\"2024-03-01T10:00:00+02:00\",\"extraction\":{},\"file_name\":null}\n");
    nd.push_str("{\"createdAt\":\"2024-03-01T10:00:00.123456Z\",\"extraction\":{\"z\":\"東京\"}}");
    let want = expected(&nd);
    assert_eq!(want.len(), 3004);

    let a = app.create_schema(&schema).await["id"].as_str().unwrap().to_string();
    let file = tmp.path().join("results.ndjson");
    std::fs::write(&file, &nd).unwrap();
    let before = now_ms();
    // the command on the app's database (the data folder's, or --database-url's)
    let url = helpers::suite_database(&data).await;
    let mut import = vec!["import", "--schema", &a, file.to_str().unwrap()];
    if let Some(url) = &url {
        import.extend(["--database-url", url]);
    }
    helpers::cli(&data, &import);
    check("import", &stored(&data, url.as_deref(), &a).await, &want, (before, now_ms()));

    let b = app.create_schema(&schema).await["id"].as_str().unwrap().to_string();
    let before = now_ms();
    // in small pieces, so lines are split across chunks
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = nd.as_bytes().chunks(1000).map(|c| Ok(c.to_vec())).collect();
    let r = upload(&app, &b, reqwest::Body::wrap_stream(futures_util::stream::iter(chunks))).send().await.unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(r.json::<Value>().await.unwrap(), json!({"inserted": 3004}));
    check("upload", &stored(&data, url.as_deref(), &b).await, &want, (before, now_ms()));
    app.stop().await;
}
