//! Issue 5, points 4–6: no 500 for a busy database (503 with Retry-After) or a full disk
//! (507, and the service keeps serving), private files whatever the umask, and a quiet log that
//! never holds a download token or an API key.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::helpers;
use crate::helpers::{assert_error, poll_until, spawn_app_with, within, ServeCmd, Served, TestApp};
use serde_json::{json, Value};

const BUSY_TIMEOUT: Duration = Duration::from_millis(200);

fn small_schema(name: &str) -> Value {
    json!({"name": name, "schema": {"fields": [
        {"key": "invoice_number", "label": "Invoice", "type": "string"},
        {"key": "total", "label": "Total", "type": "number"}
    ]}})
}

/// `n` results for `small_schema`, January 2024, each about `pad` bytes of text.
fn small_results(n: usize, pad: usize) -> String {
    let filler = "x".repeat(pad);
    (0..n)
        .map(|i| {
            format!(
                "{{\"file_name\":\"f{i}.pdf\",\"createdAt\":\"2024-01-15T10:00:00.000Z\",\"extraction\":{{\"invoice_number\":\"INV-{i}-{filler}\",\"total\":{i}}}}}\n"
            )
        })
        .collect()
}

fn january(schema_id: &str) -> Value {
    json!({"schema_id": schema_id, "start_date": "2024-01-01", "end_date": "2024-01-31"})
}

async fn total(app: &TestApp, path: &str) -> u64 {
    let v: Value = app.get(path).send().await.unwrap().json().await.unwrap();
    v["meta"]["total"].as_u64().unwrap_or_else(|| panic!("{path}: {v}"))
}

/// A connection of our own that holds the database's write lock, as an `import` does.
fn hold_write_lock(data_dir: &Path) -> rusqlite::Connection {
    let c = rusqlite::Connection::open(data_dir.join("exports.db")).unwrap();
    c.busy_timeout(Duration::from_secs(10)).unwrap();
    c.execute_batch("BEGIN IMMEDIATE").unwrap();
    c
}

// ---------------------------------------------------------------------------------------
// 503 on a busy database

#[tokio::test]
async fn a_locked_database_answers_503_with_retry_after_and_changes_nothing() {
    crate::sqlite_only!();
    let tmp = tempfile::tempdir().unwrap();
    let app = spawn_app_with(tmp.path().to_path_buf(), |c| c.limits.busy_timeout = BUSY_TIMEOUT).await;
    let schema = app.create_schema(&small_schema("locked")).await;
    let schema_id = schema["id"].as_str().unwrap();

    let lock = hold_write_lock(&app.data_dir);
    for (path, body) in [("/v1/exports", january(schema_id)), ("/v1/schemas", small_schema("second"))] {
        let started = Instant::now();
        let r = app.post_json(path, &body).send().await.unwrap();
        // the wait is bounded by the busy timeout, not SQLite's default or the client's patience
        assert!(started.elapsed() < Duration::from_secs(5), "{path} waited {:?}", started.elapsed());
        let retry: u64 = r
            .headers()
            .get("retry-after")
            .unwrap_or_else(|| panic!("{path}: no Retry-After"))
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(retry >= 1, "{path}: Retry-After {retry}");
        let msg = assert_error(r, 503).await;
        assert!(msg.contains("busy") && msg.contains("retry"), "{path}: {msg}");
    }
    // reads go on while another process writes
    assert_eq!(total(&app, "/v1/exports").await, 0, "a refused export must not be stored");
    assert_eq!(total(&app, "/v1/schemas").await, 1, "a refused schema must not be stored");
    lock.execute_batch("ROLLBACK").unwrap();
    drop(lock);

    let r = app.post_json("/v1/exports", &january(schema_id)).send().await.unwrap();
    assert_eq!(r.status(), 201, "once the lock is gone the same request succeeds");
    let r = app.post_json("/v1/schemas", &small_schema("second")).send().await.unwrap();
    assert_eq!(r.status(), 201);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_export_worker_waits_out_a_busy_database_instead_of_failing() {
    // the real binary, for its log: the worker says when the database made it wait
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let server = ServeCmd::new(&data)
        .args(&["--workers", "1", "--busy-timeout", "1s"])
        .env("EXPORTS_API_KEY", API_KEY)
        .env("RUST_LOG", "info,exports_api=debug")
        .start()
        .await;
    let http = reqwest::Client::new();
    let get = |path: String| http.get(server.url(&path)).header("x-api-key", API_KEY).send();
    let r = http.post(server.url("/v1/schemas")).header("x-api-key", API_KEY).json(&small_schema("busy-worker")).send();
    let r = r.await.unwrap();
    assert_eq!(r.status(), 201);
    let schema_id = r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_string();
    let r = http
        .post(server.url(&format!("/v1/schemas/{schema_id}/results")))
        .header("x-api-key", API_KEY)
        .header("content-type", "application/x-ndjson")
        .body(small_results(60_000, 20))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);

    // Catch an export while it is PROCESSING (its worker writing the file), then hold the
    // write lock over the moment it records its outcome.
    for _attempt in 0..5 {
        let r = http.post(server.url("/v1/exports")).header("x-api-key", API_KEY).json(&january(&schema_id)).send();
        let r = r.await.unwrap();
        assert_eq!(r.status(), 201);
        let id = r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_string();
        let (get_ref, id_ref) = (&get, &id);
        poll_until(within(30), "the export to be picked up", move || async move {
            let v: Value = get_ref(format!("/v1/exports/{id_ref}")).await.unwrap().json().await.unwrap();
            (v["status"] != "PENDING").then_some(())
        })
        .await;
        let lock = hold_write_lock(&data);
        let status_now = |c: &rusqlite::Connection| -> String {
            c.query_row("SELECT status FROM exports WHERE id = ?1", [&id], |r| r.get(0)).unwrap()
        };
        if status_now(&lock) != "PROCESSING" {
            lock.execute_batch("ROLLBACK").unwrap();
            eprintln!("export {id} finished before the lock was taken; trying again");
            continue;
        }
        // The file takes its final name in the same write that records COMPLETED, which
        // needs the lock we hold; the worker's write gives up at least once (and says so).
        let file = data.join("exports").join(format!("{id}.csv"));
        let waiting = format!("export_id={id}");
        poll_until(within(90), "the worker to find the database busy", || {
            let log = server.stderr();
            std::future::ready(
                log.lines()
                    .any(|l| l.contains(&waiting) && l.contains("waiting to record the export's outcome"))
                    .then_some(()),
            )
        })
        .await;
        // written whole, but not under its final name while the export is not COMPLETED
        assert!(
            data.join("exports").join(format!(".{id}.tmp")).exists(),
            "the written file is kept under its temporary name"
        );
        assert!(!file.exists(), "a file must not take its final name before its export is COMPLETED");
        assert_eq!(status_now(&lock), "PROCESSING", "a busy database must not fail the job");
        lock.execute_batch("ROLLBACK").unwrap();
        drop(lock);
        let done = poll_until(within(60), "the export to finish", move || async move {
            let v: Value = get_ref(format!("/v1/exports/{id_ref}")).await.unwrap().json().await.unwrap();
            matches!(v["status"].as_str(), Some("COMPLETED" | "FAILED")).then_some(v)
        })
        .await;
        assert_eq!(done["status"], "COMPLETED", "{done}");
        assert_eq!(done["row_count"], 60_000, "{done}");
        assert!(file.exists(), "the COMPLETED export's file has its final name");
        server.stop().await;
        return;
    }
    panic!("exports finished too fast to be caught while PROCESSING");
}

// ---------------------------------------------------------------------------------------
// 507 on a full disk (root only: a tiny tmpfs)

/// A tmpfs mounted for the test; unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    /// Mounts a tmpfs of `size` (e.g. `4m`) on `dir`, or says why it cannot.
    fn mount(dir: &Path, size: &str) -> Result<Tmpfs, String> {
        let uid = Command::new("id").arg("-u").output().map_err(|e| format!("cannot run id: {e}"))?;
        if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
            return Err("not running as root, so no tmpfs can be mounted".into());
        }
        std::fs::create_dir_all(dir).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size},mode=0700"), "tmpfs"])
            .arg(dir)
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !out.status.success() {
            return Err(format!("mount -t tmpfs failed: {}", String::from_utf8_lossy(&out.stderr).trim()));
        }
        Ok(Tmpfs(dir.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let ok = Command::new("umount").arg(&self.0).status().is_ok_and(|s| s.success());
        if !ok {
            let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }
}

/// Writes a file until the disk refuses more; returns its path.
fn fill_disk(dir: &Path) -> PathBuf {
    let path = dir.join("filler");
    let mut f = std::fs::File::create(&path).unwrap();
    let chunk = vec![0u8; 16 * 1024];
    loop {
        if let Err(e) = f.write_all(&chunk).and_then(|()| f.sync_data()) {
            assert_eq!(e.raw_os_error(), Some(28), "expected ENOSPC, got {e}");
            break;
        }
    }
    path
}

#[tokio::test]
async fn a_full_disk_answers_507_and_the_service_keeps_serving() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let disk = match Tmpfs::mount(&data, "6m") {
        Ok(d) => d,
        Err(why) => {
            eprintln!("skipped: {why}");
            return;
        }
    };
    let app = spawn_app_with(data.clone(), |_| {}).await;
    let schema = app.create_schema(&small_schema("full")).await;
    let schema_id = schema["id"].as_str().unwrap().to_string();
    let filler = fill_disk(&data);

    let upload = small_results(3000, 300); // about 1 MB
    let r = app
        .client
        .post(app.url(&format!("/v1/schemas/{schema_id}/results")))
        .header("x-api-key", &app.api_key)
        .header("content-type", "application/x-ndjson")
        .body(upload.clone())
        .send()
        .await
        .unwrap();
    let msg = assert_error(r, 507).await;
    assert!(msg.contains("disk is full"), "{msg}");
    let r = app.post_json("/v1/schemas", &small_schema("another")).send().await.unwrap();
    let status = r.status();
    assert!(status == 507 || status == 201, "a small write may still fit, but never a 500: {status}");

    // the service keeps answering, and nothing of the upload was stored
    let r = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let r = app.get(&format!("/v1/schemas/{schema_id}")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(total(&app, "/v1/results").await, 0);

    // space freed: the same upload goes through
    std::fs::remove_file(&filler).unwrap();
    assert_eq!(app.upload_ndjson(&schema_id, upload).await, 3000);
    app.stop().await;
    drop(disk);
}

#[tokio::test]
async fn an_export_that_runs_out_of_disk_fails_with_a_disk_full_error_and_leaves_no_file() {
    crate::local_files_only!();
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let exports = data.join("exports");
    let disk = match Tmpfs::mount(&exports, "256k") {
        Ok(d) => d,
        Err(why) => {
            eprintln!("skipped: {why}");
            return;
        }
    };
    let app = spawn_app_with(data.clone(), |_| {}).await;
    let schema = app.create_schema(&small_schema("big")).await;
    let schema_id = schema["id"].as_str().unwrap().to_string();
    app.upload_ndjson(&schema_id, small_results(3000, 300)).await; // about 1 MB of CSV

    let done = app.export_and_wait(&january(&schema_id)).await;
    assert_eq!(done["status"], "FAILED", "{done}");
    let error = done["error"].as_str().unwrap();
    assert!(error.starts_with("disk full"), "{error}");
    let left: Vec<_> = std::fs::read_dir(&exports).unwrap().flatten().map(|e| e.file_name()).collect();
    assert!(left.is_empty(), "the temporary file must be removed: {left:?}");

    // the service goes on: health, reads, and an export that fits
    assert_eq!(app.client.get(app.url("/healthz")).send().await.unwrap().status(), 200);
    let small = app.create_schema(&small_schema("small")).await;
    let small_id = small["id"].as_str().unwrap().to_string();
    app.upload_ndjson(&small_id, small_results(10, 10)).await;
    let done = app.export_and_wait(&january(&small_id)).await;
    assert_eq!(done["status"], "COMPLETED", "{done}");
    app.stop().await;
    drop(disk);
}

// ---------------------------------------------------------------------------------------
// The real binary: file modes and the log

const API_KEY: &str = "log-test-key-0123456789";

/// `exports-api serve` under umask 022 (a common default that makes files world-readable),
/// one worker, the log collected.
async fn start_served(data_dir: &Path) -> Served {
    ServeCmd::new(data_dir).args(&["--workers", "1"]).env("EXPORTS_API_KEY", API_KEY).umask(0o022).start().await
}

struct Client {
    http: reqwest::Client,
    /// Requests sent, to compare with the log.
    sent: std::cell::Cell<usize>,
}

impl Client {
    async fn send(&self, rb: reqwest::RequestBuilder) -> reqwest::Response {
        self.sent.set(self.sent.get() + 1);
        rb.send().await.unwrap()
    }
}

/// Creates a schema, uploads results, exports them and waits; returns the export's JSON.
async fn make_export(s: &Served, c: &Client) -> Value {
    let http = c.http.clone();
    let r = c.send(http.post(s.url("/v1/schemas")).header("x-api-key", API_KEY).json(&small_schema("modes"))).await;
    assert_eq!(r.status(), 201);
    let schema_id = r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_string();
    let r = c
        .send(
            http.post(s.url(&format!("/v1/schemas/{schema_id}/results")))
                .header("x-api-key", API_KEY)
                .header("content-type", "application/x-ndjson")
                .body(small_results(50, 10)),
        )
        .await;
    assert_eq!(r.status(), 201);
    let r = c.send(http.post(s.url("/v1/exports")).header("x-api-key", API_KEY).json(&january(&schema_id))).await;
    assert_eq!(r.status(), 201);
    let id = r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_string();
    let (http, id) = (&http, &id);
    poll_until(within(60), "the export to complete", move || async move {
        let r = c.send(http.get(s.url(&format!("/v1/exports/{id}"))).header("x-api-key", API_KEY)).await;
        let v: Value = r.json().await.unwrap();
        assert!(v["status"] != "FAILED", "{v}");
        (v["status"] == "COMPLETED").then_some(v)
    })
    .await
}

#[cfg(unix)]
fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).unwrap_or_else(|e| panic!("{}: {e}", p.display())).permissions().mode() & 0o777
}

#[cfg(unix)]
#[tokio::test]
async fn data_files_are_private_whatever_the_umask_and_old_ones_are_tightened() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let server = start_served(&data).await;
    let c = Client { http: reqwest::Client::new(), sent: Default::default() };
    let export = make_export(&server, &c).await;
    let file = data.join("exports").join(format!("{}.csv", export["id"].as_str().unwrap()));

    let expect = [
        (data.clone(), 0o700),
        (data.join("exports"), 0o700),
        (data.join("exports.db"), 0o600),
        (data.join("exports.db-wal"), 0o600),
        (data.join("exports.db-shm"), 0o600),
        (data.join("signing.key"), 0o600),
        (data.join("serve.lock"), 0o600),
        (file.clone(), 0o600),
    ];
    for (path, want) in &expect {
        assert_eq!(mode(path), *want, "{} is {:o}", path.display(), mode(path));
    }
    server.stop().await;

    // a data folder from an older version, world-readable: tightened at the next start
    for (path, want) in &expect {
        if path.exists() {
            let loose = if *want == 0o700 { 0o755 } else { 0o644 };
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(loose)).unwrap();
        }
    }
    let server = start_served(&data).await;
    for (path, want) in &expect {
        if path.exists() {
            assert_eq!(mode(path), *want, "after a restart {} is {:o}", path.display(), mode(path));
        }
    }
    server.stop().await;
}

#[tokio::test]
async fn the_log_has_one_line_per_request_no_token_no_key_and_sums_up_401s() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let server = start_served(&data).await;
    let c = Client { http: reqwest::Client::new(), sent: Default::default() };
    let http = c.http.clone();

    let export = make_export(&server, &c).await;
    let id = export["id"].as_str().unwrap();
    let r = c.send(http.get(server.url(&format!("/v1/exports/{id}/download"))).header("x-api-key", API_KEY)).await;
    assert_eq!(r.status(), 200);
    let url = r.json::<Value>().await.unwrap()["url"].as_str().unwrap().to_string();
    let token = url.split("token=").nth(1).unwrap().to_string();
    let r = c.send(http.get(&url)).await;
    assert_eq!(r.status(), 200, "the signed URL downloads");
    let _ = r.bytes().await.unwrap();
    // a query string on an API route is not logged either
    let r = c.send(http.get(server.url("/v1/exports?search=secret-search")).header("x-api-key", API_KEY)).await;
    assert_eq!(r.status(), 200);
    let r = c.send(http.get(server.url("/healthz"))).await;
    assert_eq!(r.status(), 200);
    let wrong_keys = 6;
    for i in 0..wrong_keys {
        let r = c.send(http.get(server.url("/v1/exports")).header("x-api-key", format!("wrong-key-{i}"))).await;
        assert_eq!(r.status(), 401);
    }
    let log = server.stop().await.stderr;
    let team_id = helpers::cli(&data, &["teams", "list"])
        .lines()
        .find_map(|l| l.strip_suffix("\tdefault"))
        .expect("team default")
        .to_string();

    assert!(!log.contains("token="), "a token parameter is in the log:\n{log}");
    assert!(!log.contains(&token), "the download token is in the log:\n{log}");
    assert!(!log.contains(API_KEY), "the API key is in the log:\n{log}");
    assert!(!log.contains("wrong-key-"), "a presented key is in the log:\n{log}");
    assert!(!log.contains("secret-search") && !log.contains("expires="), "a query string is in the log:\n{log}");

    let requests: Vec<&str> = log.lines().filter(|l| l.contains(" INFO ") && l.contains(" request ")).collect();
    // every request has its INFO line, except the 401s after the first from this address and
    // /healthz (DEBUG)
    assert_eq!(requests.len(), c.sent.get() - (wrong_keys - 1) - 1, "request lines:\n{}", requests.join("\n"));
    assert!(!requests.iter().any(|l| l.contains("path=/healthz")), "{log}");
    for l in &requests {
        let path = l.split(" path=").nth(1).and_then(|p| p.split_whitespace().next()).expect("path");
        assert!(!path.contains('?'), "{l}");
        assert!(l.contains("request_id=") && l.contains(" method=") && l.contains(" route="), "{l}");
        assert!(l.contains(" status=") && l.contains(" duration_ms="), "{l}");
        let authenticated = path.starts_with("/v1/") && !l.contains("status=401");
        assert_eq!(
            l.contains(&format!("team_id={team_id}")),
            authenticated,
            "team id on authenticated lines only: {l}"
        );
    }
    assert_eq!(requests.iter().filter(|l| l.contains("status=401")).count(), 1, "{log}");
    assert!(requests.iter().any(|l| l.contains("path=/files/teams/") && l.contains("status=200")), "{log}");
    let summary =
        log.lines().find(|l| l.contains("refused requests")).unwrap_or_else(|| panic!("no 401 summary:\n{log}"));
    assert!(summary.contains(&format!("{} more", wrong_keys - 1)) && summary.contains("127.0.0.1"), "{summary}");

    // nothing else at INFO per request: the other INFO lines are start, stop and the jobs
    let other_info: Vec<&str> = log
        .lines()
        .filter(|l| l.contains(" INFO ") && !l.contains(" request "))
        .filter(|l| {
            ![
                "export created",
                "export started",
                "export completed",
                "listening on",
                "shutting down",
                "EXPORTS_API_KEY",
            ]
            .iter()
            .any(|k| l.contains(k))
        })
        .collect();
    assert!(other_info.is_empty(), "unexpected INFO lines:\n{}", other_info.join("\n"));
}
