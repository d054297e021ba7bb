//! Test harness: runs the real application (same wiring as `serve`) on a free port with a
//! fresh data folder, and talks to it over HTTP.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use exports_api::app::App;
use exports_api::config::Config;
use serde_json::Value;

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
    let mut cfg = Config::for_tests(data_dir.clone());
    cfg.api_key = Some("test-key-default".into());
    cfg.signing_key = Some(SIGNING_KEY.to_vec());
    tweak(&mut cfg);
    let api_key = cfg.api_key.clone().unwrap_or_default();
    let app = App::build(cfg).await.expect("app builds");
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
        for _ in 0..600 {
            let v: Value = self.get(&format!("/v1/exports/{id}")).send().await.unwrap().json().await.unwrap();
            match v["status"].as_str() {
                Some("COMPLETED") | Some("FAILED") => return v,
                _ => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
        panic!("export {id} did not finish in 60 s");
    }

    /// The download URL of a COMPLETED export.
    pub async fn download_url(&self, id: &str) -> String {
        let r = self.get(&format!("/v1/exports/{id}/download")).send().await.unwrap();
        assert_eq!(r.status(), 200);
        let v: Value = r.json().await.unwrap();
        v["url"].as_str().unwrap().to_string()
    }

    /// Creates another team with its own key, through the command-line tool; returns the key.
    pub fn new_team_key(&self, team: &str) -> String {
        cli(&self.data_dir, &["teams", "create", team]);
        cli(&self.data_dir, &["keys", "create", "--team", team])
    }
}

/// Runs the `exports-api` binary with `--data-dir`, returns its trimmed stdout; panics on failure.
pub fn cli(data_dir: &Path, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_exports-api"))
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .output()
        .expect("run exports-api");
    assert!(out.status.success(), "exports-api {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_string()
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

/// Generates the awkward benchmark data set with `../shared/bench/gen_results.py`; returns
/// (schema JSON, NDJSON text).
pub fn gen_results(count: usize, seed: u64) -> (Value, String) {
    let out = tempfile::tempdir().unwrap();
    // the project's shared folder lies beside the repository (also in CI)
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/bench/gen_results.py");
    assert!(
        script.exists(),
        "{} is missing: the tests expect the project's shared/ folder beside the repository",
        script.display()
    );
    let st = Command::new("python3")
        .arg(&script)
        .args(["--count", &count.to_string(), "--seed", &seed.to_string(), "--out"])
        .arg(out.path())
        .status()
        .expect("python3 runs gen_results.py");
    assert!(st.success());
    let schema = serde_json::from_str(&std::fs::read_to_string(out.path().join("schema.json")).unwrap()).unwrap();
    let nd = std::fs::read_to_string(out.path().join("results.ndjson")).unwrap();
    (schema, nd)
}
