//! Behaviour over time: deleting running and queued exports, retention, and crash recovery
//! with the real binary (api.md "Exports": DELETE semantics, status rules, "A job whose process
//! died mid-run is taken up again at the next start"; "Running it": `--retention`).

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::helpers;
use crate::helpers::{poll_until, walk, within, ServeCmd, Served, TestApp};
use serde_json::{json, Value};

/// Results in the big data set: enough that an export with `line_items` expanded (about
/// 100,000 rows, seconds in a debug build) is seen PROCESSING, deleted and killed mid-run.
const BIG: usize = 30_000;

/// The big data set, generated once per test binary.
fn big_data() -> &'static (Value, String) {
    static DATA: OnceLock<(Value, String)> = OnceLock::new();
    DATA.get_or_init(|| helpers::invoices(BIG, 11))
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

fn temp_files(dir: &Path) -> Vec<PathBuf> {
    walk(dir)
        .into_iter()
        .filter(|p| {
            let n = p.file_name().unwrap().to_string_lossy().to_lowercase();
            n.ends_with(".tmp") || n.ends_with(".part") || n.ends_with(".partial")
        })
        .collect()
}

/// The whole period, `line_items` expanded: the slow export of the data set.
fn slow_export() -> Value {
    json!({"start_date": "2024-01-01", "end_date": "2024-03-31", "expand_array": "line_items"})
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

/// Polls until the export is PROCESSING; fails if it finishes first (the data set is then
/// too small for this machine: raise `BIG`).
async fn until_processing(app: &TestApp, id: &str) {
    poll_until(within(60), &format!("export {id} to be picked up"), move || async move {
        let (s, v) = status_of(app, id).await;
        assert_eq!(s, 200, "GET export {id}: {v}");
        match v["status"].as_str() {
            Some("PROCESSING") => Some(()),
            Some("COMPLETED") | Some("FAILED") => panic!("export {id} finished before it was seen PROCESSING: {v}"),
            _ => None,
        }
    })
    .await
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
    // one worker: once a later export has completed, the cancelled one is over
    let tmp = tempfile::tempdir().unwrap();
    let app = helpers::spawn_app_with(tmp.path().to_path_buf(), |cfg| cfg.workers = 1).await;
    let (schema, nd) = big_data();
    let sid = app.create_schema(schema).await["id"].as_str().unwrap().to_string();
    assert_eq!(app.upload_ndjson(&sid, nd.clone()).await, BIG as u64);

    let id = create_export(&app, &sid, slow_export()).await;
    until_processing(&app, &id).await;
    eprintln!("files of the PROCESSING export before DELETE: {:?}", files_for(&app.data_dir, &id));
    let r = app.delete(&format!("/v1/exports/{id}")).send().await.unwrap();
    let deleted_at = Instant::now();
    let status = r.status();
    let body: Value = r.json().await.unwrap();
    assert_eq!(status, 200, "DELETE of a PROCESSING export: {body}");
    assert_eq!(body["message"], "Export deleted successfully");

    // api.md: "a PROCESSING job is cancelled within a second and leaves no file behind"
    poll_until(deleted_at + Duration::from_millis(1500), "the deleted PROCESSING export's files to go (1.5 s)", || {
        std::future::ready(files_for(&app.data_dir, &id).is_empty().then_some(()))
    })
    .await;

    let (s, v) = status_of(&app, &id).await;
    assert_eq!(s, 404, "GET of a deleted export: {v}");
    let r = app.get(&format!("/v1/exports/{id}/download")).send().await.unwrap();
    helpers::assert_error(r, 404).await;

    // the worker is still healthy: other exports complete normally
    small_export_completes(&app, &sid).await;
    // and the deleted one, whose worker has moved on, does not come back: no late rename,
    // no late COMPLETED
    assert!(files_for(&app.data_dir, &id).is_empty(), "a file reappeared for the deleted export {id}");
    assert_eq!(status_of(&app, &id).await.0, 404);
    let big =
        app.export_and_wait(&json!({"schema_id": sid, "start_date": "2024-01-01", "end_date": "2024-01-10"})).await;
    assert_eq!(big["status"], "COMPLETED", "{big}");
    assert!(files_for(&app.data_dir, &id).is_empty(), "a file reappeared for the deleted export {id}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_pending_export_means_it_never_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let app = helpers::spawn_app_with(tmp.path().to_path_buf(), |cfg| cfg.workers = 1).await;
    let (schema, nd) = big_data();
    let sid = app.create_schema(schema).await["id"].as_str().unwrap().to_string();
    assert_eq!(app.upload_ndjson(&sid, nd.clone()).await, BIG as u64);

    let long = create_export(&app, &sid, slow_export()).await;
    until_processing(&app, &long).await;
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
    assert_eq!(v["status"], "PENDING", "the single worker should still be busy with the long export: {v}");
    let r = app.delete(&format!("/v1/exports/{victim}")).send().await.unwrap();
    assert_eq!(r.status(), 200, "DELETE of a PENDING export");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["message"], "Export deleted successfully");

    // while the others run to the end, the deleted one never shows up again
    let others: Vec<&String> = std::iter::once(&long).chain(short.iter().filter(|x| **x != victim)).collect();
    let (app_ref, victim_ref, others_ref) = (&app, &victim, &others);
    let finished = poll_until(within(60), "the other exports to finish", move || async move {
        assert!(
            files_for(&app_ref.data_dir, victim_ref).is_empty(),
            "a file was written for the deleted PENDING export"
        );
        let (s, v) = status_of(app_ref, victim_ref).await;
        assert_eq!(s, 404, "deleted PENDING export came back: {v}");
        let mut finished = Vec::new();
        for id in others_ref {
            let (s, v) = status_of(app_ref, id).await;
            assert_eq!(s, 200, "{v}");
            if v["status"] == "COMPLETED" || v["status"] == "FAILED" {
                finished.push(v);
            }
        }
        (finished.len() == others_ref.len()).then_some(finished)
    })
    .await;
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
    crate::local_files_only!();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    // short, so that the test waits little for an export to be older than it
    let retention = Duration::from_millis(200);

    let app = helpers::spawn_app_with(dir.clone(), |cfg| cfg.retention = Some(retention)).await;
    let (schema, nd) = helpers::invoices(60, 21);
    let sid = app.create_schema(&schema).await["id"].as_str().unwrap().to_string();
    app.upload_ndjson(&sid, nd).await;
    let e = app.export_and_wait(&json!({"schema_id": sid, "start_date": "2024-01-01", "end_date": "2024-03-31"})).await;
    assert_eq!(e["status"], "COMPLETED", "{e}");
    let id = e["id"].as_str().unwrap().to_string();
    assert_eq!(files_for(&dir, &id), vec![format!("{id}.csv")]);
    app.stop().await;

    // once the export is older than the retention, a start deletes it
    older_than(&e, retention).await;
    let app = helpers::spawn_app_with(dir.clone(), |cfg| cfg.retention = Some(retention)).await;
    let (app_ref, id_ref, dir_ref) = (&app, &id, &dir);
    poll_until(within(5), "the export older than the retention to go after a start", move || async move {
        let (s, _) = status_of(app_ref, id_ref).await;
        (s == 404 && files_for(dir_ref, id_ref).is_empty()).then_some(())
    })
    .await;
    let list: Value = app.get("/v1/exports").send().await.unwrap().json().await.unwrap();
    assert_eq!(list["meta"]["total"], 0, "{list}");
    app.stop().await;

    // retention None keeps them
    let app = helpers::spawn_app_with(dir.clone(), |cfg| cfg.retention = None).await;
    let e2 =
        app.export_and_wait(&json!({"schema_id": sid, "start_date": "2024-01-01", "end_date": "2024-03-31"})).await;
    assert_eq!(e2["status"], "COMPLETED", "{e2}");
    let id2 = e2["id"].as_str().unwrap().to_string();
    let bytes = download(&app.client, &app.download_url(&id2).await).await;
    app.stop().await;
    older_than(&e2, retention).await;
    let app = helpers::spawn_app_with(dir.clone(), |cfg| cfg.retention = None).await;
    // a sweep runs as the workers start; by the time a new export has run, one would have
    let e3 =
        app.export_and_wait(&json!({"schema_id": sid, "start_date": "2024-01-02", "end_date": "2024-01-02"})).await;
    assert_eq!(e3["status"], "COMPLETED", "{e3}");
    let (s, v) = status_of(&app, &id2).await;
    assert_eq!(s, 200, "export kept with retention None: {v}");
    assert_eq!(v["status"], "COMPLETED");
    assert_eq!(files_for(&dir, &id2), vec![format!("{id2}.csv")]);
    assert_eq!(download(&app.client, &app.download_url(&id2).await).await, bytes);
    app.stop().await;
}

/// Polls until the clock is past the export's last change plus `age`.
async fn older_than(export: &Value, age: Duration) {
    let at = helpers::assert_time(&export["updatedAt"], "updatedAt") + age;
    poll_until(within(10), "the export to grow old", || std::future::ready((chrono::Utc::now() > at).then_some(())))
        .await
}

// ---------------------------------------------------------------------------------------------
// crash recovery with the real binary

const CRASH_KEY: &str = "test-key-crash-0123456789";
const CRASH_SIGNING_KEY: &str = "crash-signing-key-0123456789abcdef0123456789";

/// `exports-api serve` with one worker and fixed keys; killed (SIGKILL) when dropped.
struct Server(Served);

impl Server {
    async fn start(data_dir: &Path) -> Server {
        Server(
            ServeCmd::new(data_dir)
                .env("EXPORTS_API_KEY", CRASH_KEY)
                .env("EXPORTS_WORKERS", "1")
                .env("EXPORTS_SIGNING_KEY", CRASH_SIGNING_KEY)
                .start()
                .await,
        )
    }

    fn kill(&mut self) {
        self.0.kill()
    }

    fn req(&self, client: &reqwest::Client, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        client.request(method, self.0.url(path)).header("x-api-key", CRASH_KEY)
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
        let seen = std::cell::RefCell::new(Vec::<String>::new());
        let seen_ref = &seen;
        let v = poll_until(within(60), &format!("export {id} to finish"), move || async move {
            let v = self.export(client, id).await;
            let s = v["status"].as_str().unwrap().to_string();
            let mut seen = seen_ref.borrow_mut();
            if seen.last() != Some(&s) {
                seen.push(s.clone());
            }
            (s == "COMPLETED" || s == "FAILED").then_some(v)
        })
        .await;
        (v, seen.into_inner())
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
    let client = reqwest::Client::new();

    let mut server = Server::start(&dir).await;
    let (schema, nd) = big_data();
    let r = server.req(&client, reqwest::Method::POST, "/v1/schemas").json(schema).send().await.unwrap();
    assert_eq!(r.status(), 201);
    let sid = r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_string();
    let r = server
        .req(&client, reqwest::Method::POST, &format!("/v1/schemas/{sid}/results"))
        .header("content-type", "application/x-ndjson")
        .body(nd.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(r.json::<Value>().await.unwrap()["inserted"], BIG);

    let mut body = slow_export();
    body["schema_id"] = json!(sid);
    let id = server.create_export(&client, &body).await;
    // mid-run: the export's temporary file has been written to
    let temp = exports_api::data_dir::export_temp_in(&exports_api::data_dir::DataDir::new(&dir).exports(), &id);
    let (srv, client_ref, id_ref, temp_ref) = (&server, &client, &id, &temp);
    poll_until(within(60), "the export to be writing its file", move || async move {
        if std::fs::metadata(temp_ref).is_ok_and(|m| m.len() > 0) {
            return Some(());
        }
        let v = srv.export(client_ref, id_ref).await;
        assert!(
            matches!(v["status"].as_str(), Some("PENDING" | "PROCESSING")),
            "the export finished before it could be killed mid-run (raise BIG): {v}"
        );
        None
    })
    .await;

    // SIGKILL mid-run
    server.kill();
    let leftovers = temp_files(&dir);
    eprintln!("after SIGKILL: temporary files {leftovers:?}");

    let server = Server::start(&dir).await;
    let (resumed, seen) = server.wait_export(&client, &id).await;
    assert_eq!(resumed["status"], "COMPLETED", "resumed export: {resumed}; log: {}", tail(&server.0.stderr()));
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

fn tail(s: &str) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}
