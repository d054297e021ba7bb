//! The one test harness: the real application in-process (`spawn_app`, same wiring as
//! `serve`) or as a child process (`process`), test data (`data`), an S3 emulator (`s3`), a
//! throwaway PostgreSQL cluster (`pg_cluster`), and the checks and polling every test module
//! shares.
#![allow(dead_code)]

mod data;
mod pg_cluster;
mod process;
mod receiver;
mod s3;

pub use data::*;
pub use pg_cluster::*;
pub use process::*;
pub use receiver::*;
pub use s3::*;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use exports_api::app::App;
use exports_api::config::Config;
use serde_json::Value;

/// The pace of every poll: well under the default rate limit of 100 requests a second.
pub const POLL_PACE: Duration = Duration::from_millis(20);

/// Calls `check` every `POLL_PACE` until it returns `Some`, and returns that; panics naming
/// `what` once `deadline` has passed. The one way tests wait for something to happen.
pub async fn poll_until<T, F, Fut>(deadline: Instant, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(POLL_PACE).await;
    }
}

/// `Instant::now() + secs`.
pub fn within(secs: u64) -> Instant {
    Instant::now() + Duration::from_secs(secs)
}

/// Sends a request; returns status and JSON body (panics with the text if it is not JSON).
pub async fn send(rb: reqwest::RequestBuilder) -> (u16, Value) {
    let r = rb.send().await.unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    let v = serde_json::from_str(&text).unwrap_or_else(|e| panic!("status {status}, body is not JSON ({e}): {text}"));
    (status, v)
}

/// Checks `YYYY-MM-DDTHH:MM:SS.sssZ` and returns the instant.
pub fn assert_time(v: &Value, what: &str) -> chrono::DateTime<chrono::Utc> {
    let s = v.as_str().unwrap_or_else(|| panic!("{what}: expected a time string, got {v}"));
    let b = s.as_bytes();
    assert!(
        b.len() == 24
            && b[4] == b'-'
            && b[7] == b'-'
            && b[10] == b'T'
            && b[13] == b':'
            && b[16] == b':'
            && b[19] == b'.'
            && b[23] == b'Z',
        "{what}: '{s}' is not YYYY-MM-DDTHH:MM:SS.sssZ"
    );
    chrono::DateTime::parse_from_rfc3339(s).unwrap_or_else(|e| panic!("{what}: '{s}': {e}")).with_timezone(&chrono::Utc)
}

/// Polls until the clock has passed `time` (an API timestamp, millisecond precision), so
/// that what is created next gets a later timestamp.
pub async fn clock_past(time: &Value) {
    let t = assert_time(time, "clock_past");
    poll_until(within(5), "the clock to pass a timestamp", || {
        std::future::ready((chrono::Utc::now() > t).then_some(()))
    })
    .await
}

/// A UUIDv7 in lowercase hyphenated form.
pub fn assert_uuid_v7(v: &Value, what: &str) {
    let s = v.as_str().unwrap_or_else(|| panic!("{what}: expected a UUID string, got {v}"));
    let u = uuid::Uuid::parse_str(s).unwrap_or_else(|e| panic!("{what}: '{s}': {e}"));
    assert_eq!(u.get_version_num(), 7, "{what}: '{s}' is not a UUIDv7");
    assert_eq!(s, u.hyphenated().to_string(), "{what}: lowercase hyphenated form");
}

/// A UUID in its hyphenated text form, any version.
pub fn is_uuid(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

/// Every file under `dir`, recursively (none if `dir` is missing).
pub fn walk(dir: &Path) -> Vec<PathBuf> {
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

/// Whether the suite runs on PostgreSQL: `EXPORTS_TEST_DB=postgres` (the default is SQLite).
/// Every app the harness starts then uses a database of its own on the test cluster
/// (`pg_cluster`), the same one again when it is restarted on the same data folder.
pub fn on_postgres() -> bool {
    std::env::var("EXPORTS_TEST_DB").is_ok_and(|v| v == "postgres")
}

/// Skips the test (returns from it, saying so on stderr) when the suite keeps export files in
/// S3: for tests of the files in the data folder themselves (their names, their removal, a
/// full disk); `object_storage.rs` tests the same behaviours on the bucket.
#[macro_export]
macro_rules! local_files_only {
    () => {
        if $crate::helpers::on_s3() {
            eprintln!("SKIPPED on S3: this test is about export files in the data folder");
            return;
        }
    };
}

/// Skips the test (returns from it, saying so on stderr) when the suite runs on PostgreSQL:
/// for tests of the SQLite file itself (its pages, locks, WAL, or rows written beside the app).
#[macro_export]
macro_rules! sqlite_only {
    () => {
        if $crate::helpers::on_postgres() {
            eprintln!("SKIPPED on PostgreSQL: this test is about the SQLite database file");
            return;
        }
    };
}

/// The suite's PostgreSQL database of each data folder (see [`suite_database`]).
fn suite_databases() -> std::sync::MutexGuard<'static, std::collections::HashMap<PathBuf, String>> {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};
    static DATABASES: OnceLock<Mutex<HashMap<PathBuf, String>>> = OnceLock::new();
    DATABASES.get_or_init(Default::default).lock().unwrap()
}

/// The PostgreSQL database an app the harness started on `data_dir` uses, when the suite runs
/// on PostgreSQL (for the command-line tools run on that folder: see `process::run`).
pub fn suite_database_of(data_dir: &Path) -> Option<String> {
    suite_databases().get(data_dir).cloned()
}

/// Runs `f` on the database of the app on `data_dir` (its SQLite file, or the suite's
/// PostgreSQL database), beside the app: for a test that reads or changes rows the API does
/// not show or cannot make. The queries are the store's portable form (`?1`, `Arg`s; see
/// `exports_api::db::sql`). Runs on a thread of its own: PostgreSQL's blocking client must not
/// run inside the test's runtime.
pub fn beside<T: Send>(data_dir: &Path, f: impl FnOnce(&dyn exports_api::db::Sql) -> T + Send) -> T {
    std::thread::scope(|s| {
        s.spawn(|| match suite_database_of(data_dir) {
            Some(url) => {
                let pool = exports_api::db::Pool::Pg(exports_api::db::pg::open(&url, 1).expect("the suite's database"));
                let conn = pool.get().expect("a connection to the suite's database");
                f(&*conn)
            }
            None => f(&rusqlite::Connection::open(data_dir.join("exports.db")).expect("the app's SQLite database")),
        })
        .join()
        .expect("a query beside the app panicked")
    })
}

/// The PostgreSQL database of the app on `data_dir` when the suite runs on PostgreSQL (made
/// on first use; also for the command-line tools and checks a test runs beside that app);
/// `None` on SQLite.
pub async fn suite_database(data_dir: &Path) -> Option<String> {
    if !on_postgres() {
        return None;
    }
    if let Some(url) = suite_database_of(data_dir) {
        return Some(url);
    }
    let url = tokio::task::spawn_blocking(|| pg_database("the suite on PostgreSQL"))
        .await
        .unwrap()
        .expect("EXPORTS_TEST_DB=postgres needs the PostgreSQL tests on (EXPORTS_TEST_PG is off)");
    suite_databases().insert(data_dir.to_path_buf(), url.clone());
    Some(url)
}

/// Whether the suite keeps export files in S3: `EXPORTS_TEST_STORAGE=s3` (moto, see `s3`), with
/// downloads through the app's own signed route (`--storage-proxy true`: moto checks no
/// signatures, so the expiry and tampering tests need our route). The default is the data
/// folder.
pub fn on_s3() -> bool {
    std::env::var("EXPORTS_TEST_STORAGE").is_ok_and(|v| v == "s3")
}

/// The bucket of the app on `data_dir` when the suite keeps files in S3 (made on first use,
/// the same one again when the app restarts on that folder).
async fn suite_storage(data_dir: &Path) -> Option<exports_api::storage::StorageConfig> {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};
    static BUCKETS: OnceLock<Mutex<HashMap<PathBuf, String>>> = OnceLock::new();
    if !on_s3() {
        return None;
    }
    let moto = tokio::task::spawn_blocking(|| moto("the suite on S3")).await.unwrap()?;
    let known = BUCKETS.get_or_init(Default::default).lock().unwrap().get(data_dir).cloned();
    let bucket = match known {
        Some(b) => b,
        None => {
            let b = moto.bucket().await;
            BUCKETS.get_or_init(Default::default).lock().unwrap().insert(data_dir.to_path_buf(), b.clone());
            b
        }
    };
    Some(moto.storage(&bucket, "exports", true))
}

pub const SIGNING_KEY: &[u8] = b"test-signing-key-0123456789abcdef0123456789";

pub struct TestApp {
    pub base_url: String,
    pub api_key: String,
    pub data_dir: PathBuf,
    pub client: reqwest::Client,
    _tmp: Option<tempfile::TempDir>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    handle: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

/// Starts the app on a fresh data folder, with API key `test-key-default` for team `default`
/// and the fixed signing key `SIGNING_KEY`.
pub async fn spawn_app() -> TestApp {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().to_path_buf();
    let mut app = spawn_app_with(dir, |_| {}).await;
    app._tmp = Some(tmp);
    app
}

/// Starts the app on `data_dir` (kept by the caller), after `tweak` adjusts the config.
pub async fn spawn_app_with(data_dir: PathBuf, tweak: impl FnOnce(&mut Config)) -> TestApp {
    start(data_dir, tweak, true).await
}

/// Like `spawn_app_with`, with the export workers stopped: every export stays PENDING.
pub async fn spawn_app_without_workers(data_dir: PathBuf, tweak: impl FnOnce(&mut Config)) -> TestApp {
    start(data_dir, tweak, false).await
}

async fn start(data_dir: PathBuf, tweak: impl FnOnce(&mut Config), workers: bool) -> TestApp {
    let mut cfg = Config::for_tests(data_dir.clone());
    cfg.api_key = Some("test-key-default".into());
    cfg.signing_key = Some(SIGNING_KEY.to_vec());
    if let Some(url) = suite_database(&data_dir).await {
        cfg.database = Some(exports_api::config::Database::Postgres(url));
    }
    if let Some(storage) = suite_storage(&data_dir).await {
        cfg.storage = storage;
    }
    tweak(&mut cfg);
    let api_key = cfg.api_key.clone().unwrap_or_default();
    let app = App::build(cfg).await.expect("app builds");
    if !workers {
        app.state().jobs.stop_soon();
    }
    let base_url = app.base_url().to_string();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let handle = tokio::spawn(app.run_until_stopped(async move {
        let _ = rx.await;
    }));
    TestApp {
        base_url,
        api_key,
        data_dir,
        client: reqwest::Client::new(),
        _tmp: None,
        stop: Some(tx),
        handle: Some(handle),
    }
}

impl TestApp {
    /// A client of a server started elsewhere (e.g. the real binary through `ServeCmd`), with
    /// the same request helpers; `stop` does nothing.
    pub fn remote(base_url: &str, api_key: &str) -> TestApp {
        TestApp {
            base_url: base_url.to_string(),
            api_key: api_key.to_string(),
            data_dir: PathBuf::new(),
            client: reqwest::Client::new(),
            _tmp: None,
            stop: None,
            handle: None,
        }
    }

    /// Stops the server and its workers, and waits until they are gone.
    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.handle.take() {
            h.await.expect("server task").expect("server ran");
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base_url, path)
    }

    pub fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.client.get(self.url(path)).header("x-api-key", &self.api_key)
    }

    pub fn post_json(&self, path: &str, body: &Value) -> reqwest::RequestBuilder {
        self.client.post(self.url(path)).header("x-api-key", &self.api_key).json(body)
    }

    pub fn patch_json(&self, path: &str, body: &Value) -> reqwest::RequestBuilder {
        self.client.patch(self.url(path)).header("x-api-key", &self.api_key).json(body)
    }

    pub fn delete(&self, path: &str) -> reqwest::RequestBuilder {
        self.client.delete(self.url(path)).header("x-api-key", &self.api_key)
    }

    /// Creates a schema and returns its JSON.
    pub async fn create_schema(&self, body: &Value) -> Value {
        let r = self.post_json("/v1/schemas", body).send().await.unwrap();
        assert_eq!(r.status(), 201, "create schema");
        r.json().await.unwrap()
    }

    /// Uploads NDJSON results to a schema; returns how many were inserted.
    pub async fn upload_ndjson(&self, schema_id: &str, ndjson: impl Into<reqwest::Body>) -> u64 {
        let r = self
            .client
            .post(self.url(&format!("/v1/schemas/{schema_id}/results")))
            .header("x-api-key", &self.api_key)
            .header("content-type", "application/x-ndjson")
            .body(ndjson)
            .send()
            .await
            .unwrap();
        let status = r.status();
        let body: Value = r.json().await.unwrap();
        assert_eq!(status, 201, "upload: {body}");
        body["inserted"].as_u64().unwrap()
    }

    /// Creates an export and waits until it is COMPLETED or FAILED; returns its final JSON.
    pub async fn export_and_wait(&self, body: &Value) -> Value {
        let r = self.post_json("/v1/exports", body).send().await.unwrap();
        assert_eq!(r.status(), 201, "create export");
        let created: Value = r.json().await.unwrap();
        self.wait_export(created["id"].as_str().unwrap()).await
    }

    /// Polls an export until it is COMPLETED or FAILED (at most 60 s).
    pub async fn wait_export(&self, id: &str) -> Value {
        poll_until(within(60), &format!("export {id} to finish"), move || async move {
            let v: Value = self.get(&format!("/v1/exports/{id}")).send().await.unwrap().json().await.unwrap();
            matches!(v["status"].as_str(), Some("COMPLETED" | "FAILED")).then_some(v)
        })
        .await
    }

    /// The download URL of a COMPLETED export.
    pub async fn download_url(&self, id: &str) -> String {
        let r = self.get(&format!("/v1/exports/{id}/download")).send().await.unwrap();
        assert_eq!(r.status(), 200);
        let v: Value = r.json().await.unwrap();
        v["url"].as_str().unwrap().to_string()
    }

    /// Each `(name, value)` query parameter alone makes `GET path` a 400 whose message names
    /// the parameter.
    pub async fn assert_params_refused(&self, path: &str, cases: &[(&str, &str)]) {
        for (name, value) in cases {
            let r = self.get(path).query(&[(*name, *value)]).send().await.unwrap();
            assert_eq!(r.status(), 400, "{path}?{name}={value:?}");
            let msg = assert_error(r, 400).await;
            assert!(msg.contains(name), "the message for {path}?{name}={value:?} names the parameter: {msg}");
        }
    }

    /// Creates another team with its own key, through the command-line tool; returns the key.
    pub fn new_team_key(&self, team: &str) -> String {
        cli(&self.data_dir, &["teams", "create", team]);
        cli(&self.data_dir, &["keys", "create", "--team", team])
    }
}

/// Asserts the JSON error shape and status; returns the message.
pub async fn assert_error(resp: reqwest::Response, status: u16) -> String {
    assert_eq!(resp.status().as_u16(), status, "status");
    let ct = resp.headers().get("content-type").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
    assert!(ct.starts_with("application/json"), "content-type {ct}");
    let v: Value = resp.json().await.expect("JSON error body");
    assert_eq!(v["statusCode"].as_u64(), Some(status as u64), "{v}");
    assert!(v["error"].as_str().is_some_and(|s| !s.is_empty()), "{v}");
    let msg = v["message"].as_str().expect("message").to_string();
    assert!(!msg.is_empty(), "{v}");
    msg
}
