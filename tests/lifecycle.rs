//! Behaviour over time: deleting running and queued exports, retention, and crash recovery
//! with the real binary (api.md "Exports": DELETE semantics, status rules, "A job whose process
//! died mid-run is taken up again at the next start"; "Running it": `--retention`).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::TestApp;
use serde_json::{json, Value};

/// The 30k-result data set, generated once per test binary.
fn big_data() -> &'static (Value, String) {
    static DATA: OnceLock<(Value, String)> = OnceLock::new();
    DATA.get_or_init(|| common::gen_results(30_000, 11))
}

fn exports_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("exports")
}

/// Files under `<data_dir>/exports/` whose name mentions `export_id` (the file, its temporary).
fn files_for(data_dir: &Path, export_id: &str) -> Vec<String> {
    match std::fs::read_dir(exports_dir(data_dir)) {
        Ok(rd) => rd
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().to_string())
            .filter(|n| n.contains(export_id))
            .collect(),
        Err(_) => Vec::new(),
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for entry in rd.flatten() {
            let p = entry.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

fn temp_files(dir: &Path) -> Vec<PathBuf> {
    walk(dir)
        .into_iter()
        .filter(|p| {
            let n = p.file_name().unwrap().to_string_lossy().to_lowercase();
            n.ends_with(".tmp") || n.ends_with(".part") || n.ends_with(".partial")
        })
        .collect()
}

fn full_range(expand: bool) -> Value {
    let mut body = json!({"start_date": "2024-01-01", "end_date": "2024-03-31"});
    if expand {
        body["expand_array"] = json!("line_items");
    }
    body
}

async fn create_export(app: &TestApp, schema_id: &str, mut body: Value) -> String {
    body["schema_id"] = json!(schema_id);
    let r = app.post_json("/v1/exports", &body).send().await.unwrap();
    let status = r.status();
    let v: Value = r.json().await.unwrap();
    assert_eq!(status, 201, "create export: {v}");
    assert_eq!(v["status"], "PENDING", "{v}");
    v["id"].as_str().unwrap().to_string()
}

async fn status_of(app: &TestApp, id: &str) -> (u16, Value) {
    let r = app.get(&format!("/v1/exports/{id}")).send().await.unwrap();
    let s = r.status().as_u16();
    (s, r.json().await.unwrap_or(Value::Null))
}

/// Polls until the export is PROCESSING (true) or has already finished (false).
async fn until_processing(app: &TestApp, id: &str) -> bool {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        let (s, v) = status_of(app, id).await;
        assert_eq!(s, 200, "GET export {id}: {v}");
        match v["status"].as_str() {
            Some("PROCESSING") => return true,
            Some("COMPLETED") | Some("FAILED") => return false,
            _ => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
    panic!("export {id} was not picked up in 60 s");
}

async fn download(client: &reqwest::Client, url: &str) -> Vec<u8> {
    let r = client.get(url).send().await.unwrap();
    assert_eq!(r.status(), 200, "download {url}");
    r.bytes().await.unwrap().to_vec()
}

/// A small export (one day) completes normally and downloads whole.
async fn small_export_completes(app: &TestApp, schema_id: &str) {
    let e = app
        .export_and_wait(&json!({"schema_id": schema_id, "start_date": "2024-01-02", "end_date": "2024-01-02"}))
        .await;
    assert_eq!(e["status"], "COMPLETED", "{e}");
    assert!(e["row_count"].as_u64().unwrap() > 0, "{e}");
    let bytes = download(&app.client, &app.download_url(e["id"].as_str().unwrap()).await).await;
    assert_eq!(e["file_size"].as_u64(), Some(bytes.len() as u64), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_processing_export_cancels_it_and_leaves_no_file() {
    let app = common::spawn_app().await;
    let (schema, nd) = big_data();
    let sid = app.create_schema(schema).await["id"].as_str().unwrap().to_string();
    assert_eq!(app.upload_ndjson(&sid, nd.clone()).await, 30_000);

    let mut caught = None;
    for attempt in 0..2 {
        let id = create_export(&app, &sid, full_range(true)).await;
        if until_processing(&app, &id).await {
            caught = Some(id);
            break;
        }
        if attempt == 0 {
            eprintln!("note: export {id} completed before it was seen PROCESSING; retrying with more data");
            let (_, more) = common::gen_results(30_000, 12);
            app.upload_ndjson(&sid, more).await;
        }
    }

    match caught {
        None => eprintln!("note: exports complete too fast to catch one PROCESSING; skipping the cancel checks"),
        Some(id) => {
            eprintln!("files of the PROCESSING export before DELETE: {:?}", files_for(&app.data_dir, &id));
            let r = app.delete(&format!("/v1/exports/{id}")).send().await.unwrap();
            let deleted_at = Instant::now();
            let status = r.status();
            let body: Value = r.json().await.unwrap();
            assert_eq!(status, 200, "DELETE of a PROCESSING export: {body}");
            assert_eq!(body["message"], "Export deleted successfully");

            // api.md: "a PROCESSING job is cancelled within a second and leaves no file behind"
            let mut left = files_for(&app.data_dir, &id);
            while !left.is_empty() && deleted_at.elapsed() < Duration::from_millis(1500) {
                tokio::time::sleep(Duration::from_millis(25)).await;
                left = files_for(&app.data_dir, &id);
            }
            assert!(left.is_empty(), "files of the deleted PROCESSING export after 1.5 s: {left:?}");

            let (s, v) = status_of(&app, &id).await;
            assert_eq!(s, 404, "GET of a deleted export: {v}");
            let r = app.get(&format!("/v1/exports/{id}/download")).send().await.unwrap();
            common::assert_error(r, 404).await;

            // and it does not come back: no late rename, no late COMPLETED
            tokio::time::sleep(Duration::from_millis(700)).await;
            assert!(files_for(&app.data_dir, &id).is_empty(), "a file reappeared for the deleted export {id}");
            assert_eq!(status_of(&app, &id).await.0, 404);
        }
    }

    // the workers are still healthy: other exports complete normally
    small_export_completes(&app, &sid).await;
    let big =
        app.export_and_wait(&json!({"schema_id": sid, "start_date": "2024-01-01", "end_date": "2024-01-10"})).await;
    assert_eq!(big["status"], "COMPLETED", "{big}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_pending_export_means_it_never_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let app = common::spawn_app_with(tmp.path().to_path_buf(), |cfg| cfg.workers = 1).await;
    let (schema, nd) = big_data();
    let sid = app.create_schema(schema).await["id"].as_str().unwrap().to_string();
    assert_eq!(app.upload_ndjson(&sid, nd.clone()).await, 30_000);

    let long = create_export(&app, &sid, full_range(true)).await;
    let busy = until_processing(&app, &long).await;
    let day = json!({"start_date": "2024-01-02", "end_date": "2024-01-02"});
    let short: Vec<String> = {
        let mut v = Vec::new();
        for _ in 0..3 {
            v.push(create_export(&app, &sid, day.clone()).await);
        }
        v
    };
    let victim = short[1].clone();
    let (s, v) = status_of(&app, &victim).await;
    assert_eq!(s, 200);
    if !busy || v["status"] != "PENDING" {
        eprintln!(
            "note: the single worker was not busy (long export busy={busy}, victim {}); the PENDING case is not exercised",
            v["status"]
        );
    }
    let r = app.delete(&format!("/v1/exports/{victim}")).send().await.unwrap();
    assert_eq!(r.status(), 200, "DELETE of a PENDING export");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["message"], "Export deleted successfully");

    // while the others run to the end, the deleted one never shows up again
    let others: Vec<&String> = std::iter::once(&long).chain(short.iter().filter(|x| **x != victim)).collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut finished: Vec<Value> = Vec::new();
    loop {
        assert!(files_for(&app.data_dir, &victim).is_empty(), "a file was written for the deleted PENDING export");
        let (s, v) = status_of(&app, &victim).await;
        assert_eq!(s, 404, "deleted PENDING export came back: {v}");
        finished.clear();
        for id in &others {
            let (s, v) = status_of(&app, id).await;
            assert_eq!(s, 200, "{v}");
            if v["status"] == "COMPLETED" || v["status"] == "FAILED" {
                finished.push(v);
            }
        }
        if finished.len() == others.len() {
            break;
        }
        assert!(Instant::now() < deadline, "the other exports did not finish in 60 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for v in &finished {
        assert_eq!(v["status"], "COMPLETED", "{v}");
    }
    // the two short ones made the same file
    let a = download(&app.client, &app.download_url(&short[0]).await).await;
    let b = download(&app.client, &app.download_url(&short[2]).await).await;
    assert_eq!(a, b);

    let list: Value = app.get("/v1/exports?limit=100").send().await.unwrap().json().await.unwrap();
    let ids: Vec<&str> = list["data"].as_array().unwrap().iter().map(|x| x["id"].as_str().unwrap()).collect();
    assert!(!ids.contains(&victim.as_str()), "deleted export listed: {ids:?}");
    assert_eq!(ids.len(), 3, "{ids:?}");
    assert!(files_for(&app.data_dir, &victim).is_empty());
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_deletes_old_finished_exports_at_start() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    let one_sec = Some(Duration::from_secs(1));

    let app = common::spawn_app_with(dir.clone(), |cfg| cfg.retention = one_sec).await;
    let (schema, nd) = common::gen_results(60, 21);
    let sid = app.create_schema(&schema).await["id"].as_str().unwrap().to_string();
    app.upload_ndjson(&sid, nd).await;
    let e = app.export_and_wait(&json!({"schema_id": sid, "start_date": "2024-01-01", "end_date": "2024-03-31"})).await;
    assert_eq!(e["status"], "COMPLETED", "{e}");
    let id = e["id"].as_str().unwrap().to_string();
    assert_eq!(files_for(&dir, &id), vec![format!("{id}.csv")]);
    app.stop().await;

    tokio::time::sleep(Duration::from_millis(1500)).await;
    let app = common::spawn_app_with(dir.clone(), |cfg| cfg.retention = one_sec).await;
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (s, _) = status_of(&app, &id).await;
        let files = files_for(&dir, &id);
        if s == 404 && files.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "export older than the retention still there 5 s after start: GET {s}, files {files:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let list: Value = app.get("/v1/exports").send().await.unwrap().json().await.unwrap();
    assert_eq!(list["meta"]["total"], 0, "{list}");
    app.stop().await;

    // retention None keeps them
    let app = common::spawn_app_with(dir.clone(), |cfg| cfg.retention = None).await;
    let e2 =
        app.export_and_wait(&json!({"schema_id": sid, "start_date": "2024-01-01", "end_date": "2024-03-31"})).await;
    assert_eq!(e2["status"], "COMPLETED", "{e2}");
    let id2 = e2["id"].as_str().unwrap().to_string();
    let bytes = download(&app.client, &app.download_url(&id2).await).await;
    app.stop().await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let app = common::spawn_app_with(dir.clone(), |cfg| cfg.retention = None).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (s, v) = status_of(&app, &id2).await;
    assert_eq!(s, 200, "export kept with retention None: {v}");
    assert_eq!(v["status"], "COMPLETED");
    assert_eq!(files_for(&dir, &id2), vec![format!("{id2}.csv")]);
    assert_eq!(download(&app.client, &app.download_url(&id2).await).await, bytes);
    app.stop().await;
}

// ---------------------------------------------------------------------------------------------
// crash recovery with the real binary

const CRASH_KEY: &str = "test-key-crash-0123456789";
const CRASH_SIGNING_KEY: &str = "crash-signing-key-0123456789abcdef0123456789";

/// A running `exports-api serve`; killed (SIGKILL) when dropped.
struct Server {
    child: Option<Child>,
    base: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl Server {
    async fn start(data_dir: &Path, log: &Path) -> Server {
        let port = free_port();
        let listen = format!("127.0.0.1:{port}");
        let log = std::fs::OpenOptions::new().create(true).append(true).open(log).unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_exports-api"));
        for (k, _) in std::env::vars() {
            if k.starts_with("EXPORTS_") {
                cmd.env_remove(k);
            }
        }
        let child = cmd
            .args(["serve", "--listen", &listen, "--data-dir"])
            .arg(data_dir)
            .env("EXPORTS_API_KEY", CRASH_KEY)
            .env("EXPORTS_WORKERS", "1")
            .env("EXPORTS_SIGNING_KEY", CRASH_SIGNING_KEY)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start exports-api serve");
        let mut server = Server { child: Some(child), base: format!("http://{listen}") };
        server.wait_healthy().await;
        server
    }

    async fn wait_healthy(&mut self) {
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(st) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("exports-api serve exited at start: {st}");
            }
            if let Ok(r) = client.get(format!("{}/healthz", self.base)).send().await {
                if r.status() == 200 {
                    return;
                }
            }
            assert!(Instant::now() < deadline, "exports-api serve not healthy in 30 s");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn kill(&mut self) {
        let mut c = self.child.take().unwrap();
        c.kill().unwrap();
        c.wait().unwrap();
    }

    fn req(&self, client: &reqwest::Client, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        client.request(method, format!("{}{path}", self.base)).header("x-api-key", CRASH_KEY)
    }

    async fn export(&self, client: &reqwest::Client, id: &str) -> Value {
        let r = self.req(client, reqwest::Method::GET, &format!("/v1/exports/{id}")).send().await.unwrap();
        assert_eq!(r.status(), 200, "GET export {id}");
        r.json().await.unwrap()
    }

    async fn create_export(&self, client: &reqwest::Client, body: &Value) -> String {
        let r = self.req(client, reqwest::Method::POST, "/v1/exports").json(body).send().await.unwrap();
        assert_eq!(r.status(), 201, "create export");
        let v: Value = r.json().await.unwrap();
        v["id"].as_str().unwrap().to_string()
    }

    /// Polls until COMPLETED or FAILED; returns the final JSON and every status seen.
    async fn wait_export(&self, client: &reqwest::Client, id: &str) -> (Value, Vec<String>) {
        let mut seen = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let v = self.export(client, id).await;
            let s = v["status"].as_str().unwrap().to_string();
            if seen.last() != Some(&s) {
                seen.push(s.clone());
            }
            if s == "COMPLETED" || s == "FAILED" {
                return (v, seen);
            }
            assert!(Instant::now() < deadline, "export {id} did not finish in 60 s (seen {seen:?})");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    async fn download(&self, client: &reqwest::Client, id: &str) -> Vec<u8> {
        let r = self.req(client, reqwest::Method::GET, &format!("/v1/exports/{id}/download")).send().await.unwrap();
        assert_eq!(r.status(), 200, "download URL of {id}");
        let v: Value = r.json().await.unwrap();
        download(client, v["url"].as_str().unwrap()).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_mid_export_the_job_resumes_and_completes_whole() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let logdir = tempfile::tempdir().unwrap();
    let log = logdir.path().join("serve.log");
    let client = reqwest::Client::new();

    let mut server = Server::start(&dir, &log).await;
    let (schema, nd) = big_data();
    let r = server.req(&client, reqwest::Method::POST, "/v1/schemas").json(schema).send().await.unwrap();
    assert_eq!(r.status(), 201);
    let sid = r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_string();
    let upload = |body: String| {
        server
            .req(&client, reqwest::Method::POST, &format!("/v1/schemas/{sid}/results"))
            .header("content-type", "application/x-ndjson")
            .body(body)
            .send()
    };
    let r = upload(nd.clone()).await.unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(r.json::<Value>().await.unwrap()["inserted"], 30_000);

    let mut body = full_range(true);
    body["schema_id"] = json!(sid);
    let mut caught = None;
    for attempt in 0..2 {
        let id = server.create_export(&client, &body).await;
        let deadline = Instant::now() + Duration::from_secs(60);
        let processing = loop {
            let v = server.export(&client, &id).await;
            match v["status"].as_str().unwrap() {
                "PROCESSING" => break true,
                "COMPLETED" | "FAILED" => break false,
                _ => {}
            }
            assert!(Instant::now() < deadline, "export not picked up in 60 s");
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        if processing {
            caught = Some(id);
            break;
        }
        if attempt == 0 {
            eprintln!("note: export completed before it was seen PROCESSING; retrying with more data");
            let (_, more) = common::gen_results(30_000, 12);
            let r = upload(more).await.unwrap();
            assert_eq!(r.status(), 201);
        }
    }
    let Some(id) = caught else {
        eprintln!("note: exports complete too fast to kill one mid-run; skipping the crash checks");
        return;
    };

    // SIGKILL mid-run
    tokio::time::sleep(Duration::from_millis(150)).await;
    server.kill();
    let leftovers = temp_files(&dir);
    eprintln!("after SIGKILL: temporary files {leftovers:?}");

    let server = Server::start(&dir, &log).await;
    let (resumed, seen) = server.wait_export(&client, &id).await;
    assert_eq!(resumed["status"], "COMPLETED", "resumed export: {resumed}; log: {}", tail(&log));
    // api.md: "Status moves only PENDING → PROCESSING → COMPLETED or FAILED"
    assert!(!seen.iter().any(|s| s == "PENDING"), "a PROCESSING job stepped back to PENDING: {seen:?}");
    let resumed_bytes = server.download(&client, &id).await;
    assert_eq!(resumed["file_size"].as_u64(), Some(resumed_bytes.len() as u64), "{resumed}");
    let records = csv::Reader::from_reader(&resumed_bytes[..])
        .records()
        .collect::<Result<Vec<_>, _>>()
        .expect("the resumed export's file is valid CSV")
        .len() as u64;
    assert_eq!(resumed["row_count"].as_u64(), Some(records), "row_count vs records in the file");

    // a fresh export of the same range and options, made now, is byte-identical
    let fresh_id = server.create_export(&client, &body).await;
    let (fresh, _) = server.wait_export(&client, &fresh_id).await;
    assert_eq!(fresh["status"], "COMPLETED", "{fresh}");
    assert_eq!(resumed["row_count"], fresh["row_count"], "row_count: resumed vs fresh");
    assert_eq!(resumed["file_size"], fresh["file_size"], "file_size: resumed vs fresh");
    let fresh_bytes = server.download(&client, &fresh_id).await;
    assert!(resumed_bytes == fresh_bytes, "the resumed export's file differs from a fresh run's");

    let leftovers = temp_files(&dir);
    assert!(leftovers.is_empty(), "temporary files left after recovery: {leftovers:?}");
    drop(server);
}

fn tail(log: &Path) -> String {
    let s = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}
