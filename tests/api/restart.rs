//! What survives a restart on the same data folder (api.md: "A job whose process died mid-run
//! is taken up again at the next start", "A URL stays valid across restarts (the key persists)").

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::helpers;
use crate::helpers::{walk, TestApp};
use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

/// `path?query` of a URL, without scheme and authority.
fn path_and_query(url: &str) -> &str {
    let rest = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
    &rest[rest.find('/').expect("URL has a path")..]
}

async fn download(app: &TestApp, url: &str) -> (u16, Vec<u8>) {
    let r = app.client.get(url).send().await.unwrap();
    (r.status().as_u16(), r.bytes().await.unwrap().to_vec())
}

async fn get_export(app: &TestApp, id: &str) -> Value {
    let r = app.get(&format!("/v1/exports/{id}")).send().await.unwrap();
    assert_eq!(r.status(), 200, "GET export {id}");
    r.json().await.unwrap()
}

/// Schema + results + one COMPLETED export; returns (schema id, export JSON, URL, file bytes).
async fn completed_export(app: &TestApp, count: usize) -> (String, Value, String, Vec<u8>) {
    let (schema, nd) = helpers::invoices(count, 3);
    let s = app.create_schema(&schema).await;
    let sid = s["id"].as_str().unwrap().to_string();
    assert_eq!(app.upload_ndjson(&sid, nd).await as usize, count);
    let e = app.export_and_wait(&json!({"schema_id": sid, "start_date": "2024-01-01", "end_date": "2024-03-31"})).await;
    assert_eq!(e["status"], "COMPLETED", "{e}");
    assert_eq!(e["row_count"].as_u64(), Some(count as u64), "{e}");
    let url = app.download_url(e["id"].as_str().unwrap()).await;
    let (status, bytes) = download(app, &url).await;
    assert_eq!(status, 200, "download before restart");
    assert_eq!(e["file_size"].as_u64(), Some(bytes.len() as u64));
    (sid, e, url, bytes)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exports_urls_and_pending_jobs_survive_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();

    let app = helpers::spawn_app_with(dir.clone(), |_| {}).await;
    let (sid, e1, url1, bytes1) = completed_export(&app, 1500).await;
    let id1 = e1["id"].as_str().unwrap().to_string();

    // more results, then an export created right before the stop: PENDING or PROCESSING at
    // stop time, or perhaps already done; either way it must end COMPLETED and whole
    let (_, first) = helpers::invoices(1500, 3);
    let (_, more) = helpers::invoices(6000, 4);
    let expected_rows: u64 = first
        .lines()
        .chain(more.lines())
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            v["extraction"]["line_items"].as_array().map_or(1, |a| a.len().max(1)) as u64
        })
        .sum();
    app.upload_ndjson(&sid, more).await;
    let r = app
        .post_json(
            "/v1/exports",
            &json!({"schema_id": sid, "start_date": "2024-01-01", "end_date": "2024-03-31", "expand_array": "line_items"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let created: Value = r.json().await.unwrap();
    let id2 = created["id"].as_str().unwrap().to_string();
    assert_eq!(created["status"], "PENDING", "{created}");
    let at_stop = get_export(&app, &id2).await;
    eprintln!("export created before the stop was {} at stop time", at_stop["status"]);
    app.stop().await;

    let app = helpers::spawn_app_with(dir.clone(), |_| {}).await;

    // the COMPLETED export is still there, unchanged
    let again = get_export(&app, &id1).await;
    assert_eq!(again["status"], "COMPLETED", "{again}");
    for k in ["row_count", "file_size", "completedAt", "start_date", "end_date"] {
        assert_eq!(again[k], e1[k], "{k} after restart");
    }
    let list: Value = app.get("/v1/exports?limit=100").send().await.unwrap().json().await.unwrap();
    let listed = list["data"]
        .as_array()
        .expect("data")
        .iter()
        .find(|x| x["id"] == id1.as_str())
        .unwrap_or_else(|| panic!("export {id1} not listed after restart: {list}"));
    assert_eq!(listed["status"], "COMPLETED");

    // the old URL, on the new server, still downloads the same bytes
    let old_on_new = format!("{}{}", app.base_url, path_and_query(&url1));
    let (status, bytes) = download(&app, &old_on_new).await;
    assert_eq!(status, 200, "URL from before the restart: {old_on_new}");
    assert_eq!(bytes, bytes1, "same file after restart");

    // the job created just before the stop completes after the restart, with every record
    let e2 = app.wait_export(&id2).await;
    assert_eq!(e2["status"], "COMPLETED", "{e2}");
    let url2 = app.download_url(&id2).await;
    let (status, file2) = download(&app, &url2).await;
    assert_eq!(status, 200);
    assert_eq!(e2["file_size"].as_u64(), Some(file2.len() as u64), "file_size");
    let mut rdr = csv::ReaderBuilder::new().has_headers(true).from_reader(&file2[..]);
    let records = rdr.records().count() as u64;
    assert_eq!(records, expected_rows, "records in the resumed job's file (line_items expanded)");
    assert_eq!(e2["row_count"].as_u64(), Some(records), "row_count vs records in the file");
    // the same export run now, on a quiet server, gives the same figures
    let e3 = app
        .export_and_wait(&json!({"schema_id": sid, "start_date": "2024-01-01", "end_date": "2024-03-31", "expand_array": "line_items"}))
        .await;
    assert_eq!(e3["status"], "COMPLETED", "{e3}");
    assert_eq!(e2["row_count"], e3["row_count"], "resumed job's row_count vs a fresh run");
    assert_eq!(e2["file_size"], e3["file_size"], "resumed job's file_size vs a fresh run");
    let (_, file3) = download(&app, &app.download_url(e3["id"].as_str().unwrap()).await).await;
    assert_eq!(file2, file3, "the resumed job's file is whole");
    // and nothing is left half-written in the data folder
    for f in walk(&dir) {
        let name = f.file_name().unwrap().to_string_lossy().to_lowercase();
        assert!(!name.ends_with(".tmp") && !name.ends_with(".part"), "leftover temporary file {f:?}");
    }
    app.stop().await;
}

/// Files in the data folder that look like the generated signing key.
fn key_files(dir: &Path) -> Vec<PathBuf> {
    walk(dir)
        .into_iter()
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy().to_lowercase();
            let db = [".db", ".sqlite", ".sqlite3", "-wal", "-shm", "-journal", ".csv", ".gz"]
                .iter()
                .any(|s| name.ends_with(s));
            !db && ["key", "secret", "signing", "hmac"].iter().any(|w| name.contains(w))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_signing_key_persists_with_mode_0600() {
    // PostgreSQL needs the key configured (every replica signs alike): nothing is generated
    crate::sqlite_only!();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();

    let app = helpers::spawn_app_with(dir.clone(), |cfg| cfg.signing_key = None).await;
    let (_, e, url1, bytes1) = completed_export(&app, 200).await;
    app.stop().await;

    // the URL was not signed with the fixed test key: a key was generated
    let pq = path_and_query(&url1);
    let (path, query) = pq.split_once('?').unwrap();
    let mut expires = "";
    let mut token = "";
    for kv in query.split('&') {
        match kv.split_once('=') {
            Some(("expires", v)) => expires = v,
            Some(("token", v)) => token = v,
            _ => {}
        }
    }
    let mut mac = Hmac::<Sha256>::new_from_slice(helpers::SIGNING_KEY).unwrap();
    mac.update(format!("GET\n{path}\n{expires}").as_bytes());
    let with_test_key = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    assert_ne!(token, with_test_key, "signing_key = None still signed with the test key");

    let keys = key_files(&dir);
    assert!(!keys.is_empty(), "no signing key file in the data folder; files: {:?}", walk(&dir));
    let mut contents = Vec::new();
    for k in &keys {
        let mode = std::fs::metadata(k).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{k:?} has mode {mode:o}, want 600");
        contents.push(std::fs::read(k).unwrap());
    }

    let app = helpers::spawn_app_with(dir.clone(), |cfg| cfg.signing_key = None).await;
    let (status, bytes) = download(&app, &format!("{}{}", app.base_url, pq)).await;
    assert_eq!(status, 200, "URL from run 1 in run 2 (the generated key must persist)");
    assert_eq!(bytes, bytes1);
    // the key file is unchanged
    for (k, c) in keys.iter().zip(&contents) {
        assert_eq!(&std::fs::read(k).unwrap(), c, "{k:?} changed across restart");
        let mode = std::fs::metadata(k).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{k:?} has mode {mode:o} after restart, want 600");
    }
    let id = e["id"].as_str().unwrap();
    let url2 = app.download_url(id).await;
    let (status, bytes) = download(&app, &url2).await;
    assert_eq!(status, 200);
    assert_eq!(bytes, bytes1);
    app.stop().await;
}
