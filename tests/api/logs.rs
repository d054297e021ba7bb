//! Issue 8, logs, from the real binary: `--log-format json` writes one flat JSON object per
//! line (a request's lines carry its `request_id`, the same as the `x-request-id` it got);
//! each job state change is one line with its figures; text logs piped to a file have no
//! colour codes; `/healthz` and `/metrics` request lines are DEBUG.

use serde_json::{json, Value};

use crate::helpers::{invoices, poll_until, within, ServeCmd, Served};

const KEY: &str = "logs-test-key-0123456789";

struct Client<'a> {
    s: &'a Served,
    http: reqwest::Client,
}

impl Client<'_> {
    fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.http.get(self.s.url(path)).header("x-api-key", KEY)
    }

    fn post(&self, path: &str) -> reqwest::RequestBuilder {
        self.http.post(self.s.url(path)).header("x-api-key", KEY)
    }

    /// Creates a schema with `n` results and exports them; returns the COMPLETED export.
    async fn export(&self, n: usize) -> Value {
        let (schema, ndjson) = invoices(n, 3);
        let r = self.post("/v1/schemas").json(&schema).send().await.unwrap();
        assert_eq!(r.status(), 201);
        let schema_id = r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_string();
        let r = self
            .post(&format!("/v1/schemas/{schema_id}/results"))
            .header("content-type", "application/x-ndjson")
            .body(ndjson)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        let body = json!({"schema_id": schema_id, "start_date": "2024-01-01", "end_date": "2024-03-31"});
        let r = self.post("/v1/exports").json(&body).header("x-request-id", "create-1").send().await.unwrap();
        assert_eq!(r.status(), 201);
        let id = r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_string();
        let id = &id;
        poll_until(within(60), "the export to complete", || async move {
            let v: Value = self.get(&format!("/v1/exports/{id}")).send().await.unwrap().json().await.unwrap();
            assert_ne!(v["status"], "FAILED", "{v}");
            (v["status"] == "COMPLETED").then_some(v)
        })
        .await
    }
}

/// Every line of `log`, parsed; panics on one that is not a JSON object.
fn json_lines(log: &str) -> Vec<Value> {
    log.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"));
            assert!(v.is_object(), "{l}");
            v
        })
        .collect()
}

fn find<'a>(lines: &'a [Value], what: &str, pred: impl Fn(&Value) -> bool) -> &'a Value {
    lines.iter().find(|l| pred(l)).unwrap_or_else(|| panic!("no {what} line in\n{lines:#?}"))
}

#[tokio::test]
async fn json_logs_are_one_flat_object_per_line_with_the_request_id() {
    let tmp = tempfile::tempdir().unwrap();
    let s = ServeCmd::new(&tmp.path().join("data"))
        .args(&["--log-format", "json", "--workers", "1"])
        .env("EXPORTS_API_KEY", KEY)
        .start()
        .await;
    let c = Client { s: &s, http: reqwest::Client::new() };
    let done = c.export(40).await;
    let id = done["id"].as_str().unwrap();
    let r = c.get(&format!("/v1/exports/{id}")).header("x-request-id", "read-1").send().await.unwrap();
    assert_eq!(r.status(), 200);
    let generated = c.get("/v1/exports").send().await.unwrap().headers()["x-request-id"].to_str().unwrap().to_string();
    assert_eq!(reqwest::get(s.url("/healthz")).await.unwrap().status(), 200);
    assert_eq!(reqwest::get(s.url("/metrics")).await.unwrap().status(), 200);
    let r = c.http.delete(s.url(&format!("/v1/exports/{id}"))).header("x-api-key", KEY).header("x-request-id", "del-1");
    assert_eq!(r.send().await.unwrap().status(), 200);
    let log = s.stop().await.stderr;
    let lines = json_lines(&log);
    let team_id = done["team_id"].as_str().map(str::to_string);

    for l in &lines {
        for key in ["timestamp", "level", "message", "target"] {
            assert!(l.get(key).is_some(), "{key} missing: {l}");
        }
        assert!(chrono::DateTime::parse_from_rfc3339(l["timestamp"].as_str().unwrap()).is_ok(), "{l}");
        for nested in ["fields", "span", "spans"] {
            assert!(l.get(nested).is_none(), "fields are flat, not under `{nested}`: {l}");
        }
    }
    let start = find(&lines, "start-up", |l| l["message"].as_str().unwrap().contains(" listening on "));
    let block = start["message"].as_str().unwrap();
    for part in ["public URL", "docs", "metrics", "data folder", "workers      1", "rate limit", "connections"] {
        assert!(block.contains(part), "{part} missing from the start-up block:\n{block}");
    }

    let read = find(&lines, "request", |l| l["message"] == "request" && l["request_id"] == "read-1");
    assert_eq!(read["level"], "INFO");
    assert_eq!(read["method"], "GET");
    assert_eq!(read["route"], "/v1/exports/:id");
    assert_eq!(read["status"], 200);
    assert!(read["duration_ms"].is_u64(), "{read}");
    assert_eq!(read["path"], format!("/v1/exports/{id}"));
    assert!(read["team_id"].as_str().is_some_and(|t| !t.is_empty()), "{read}");
    let team_id = team_id.unwrap_or_else(|| read["team_id"].as_str().unwrap().to_string());
    find(&lines, "generated-id request", |l| l["message"] == "request" && l["request_id"] == generated.as_str());
    // the probe and the scrape are DEBUG: not in an INFO log
    for quiet in ["/healthz", "/metrics"] {
        assert!(!lines.iter().any(|l| l["route"] == quiet), "{quiet} logged at INFO");
    }

    // one line per job state change, with its figures; the ones caused by a request carry its id
    let export = |state: &str| {
        find(&lines, state, |l| l["export_id"] == id && l["export_status"] == state && l["team_id"] == team_id.as_str())
    };
    assert_eq!(export("PENDING")["request_id"], "create-1");
    assert_eq!(export("PROCESSING")["attempt"], 1);
    let completed = export("COMPLETED");
    assert_eq!(completed["rows"], done["row_count"]);
    assert_eq!(completed["bytes"], done["file_size"]);
    assert!(completed["duration_ms"].is_u64() && completed["attempts"] == 1, "{completed}");
    let deleted = export("deleted");
    assert_eq!(deleted["request_id"], "del-1");
    assert_eq!(deleted["was"], "COMPLETED");
}

#[tokio::test]
async fn a_500_has_its_request_id_on_the_error_line_and_a_failed_export_its_error() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let s = ServeCmd::new(&data).args(&["--log-format", "json"]).env("EXPORTS_API_KEY", KEY).start().await;
    let c = Client { s: &s, http: reqwest::Client::new() };
    let done = c.export(5).await;
    let id = done["id"].as_str().unwrap();
    let db = rusqlite::Connection::open(data.join("exports.db")).unwrap();
    db.busy_timeout(std::time::Duration::from_secs(10)).unwrap();
    db.execute("UPDATE exports SET options = 'not json' WHERE id = ?1", [id]).unwrap();
    let r = c.get(&format!("/v1/exports/{id}")).header("x-request-id", "trace-500").send().await.unwrap();
    assert_eq!(r.status(), 500);

    // the exports folder replaced by a file: the next export cannot be written and FAILS
    std::fs::remove_dir_all(data.join("exports")).unwrap();
    std::fs::write(data.join("exports"), b"not a folder").unwrap();
    let schema_id = done["schema_id"].as_str().unwrap();
    let body = json!({"schema_id": schema_id, "start_date": "2024-01-01", "end_date": "2024-03-31"});
    let r = c.post("/v1/exports").json(&body).send().await.unwrap();
    assert_eq!(r.status(), 201);
    let failed_id = r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_string();
    let failed_id = &failed_id;
    let c = &c;
    let failed = poll_until(within(60), "the export to fail", || async move {
        let v: Value = c.get(&format!("/v1/exports/{failed_id}")).send().await.unwrap().json().await.unwrap();
        (v["status"] == "FAILED").then_some(v)
    })
    .await;
    let log = s.stop().await.stderr;
    let lines = json_lines(&log);
    let error = find(&lines, "ERROR", |l| l["level"] == "ERROR" && l["request_id"] == "trace-500");
    assert!(error["cause"].as_str().is_some_and(|c| c.contains("not json")), "the cause is logged: {error}");
    let request = find(&lines, "request", |l| l["message"] == "request" && l["request_id"] == "trace-500");
    assert_eq!(request["status"], 500);
    let line = find(&lines, "FAILED", |l| l["export_id"] == failed_id.as_str() && l["export_status"] == "FAILED");
    assert_eq!(line["error"], failed["error"], "the error the API shows: {line}");
    assert_eq!(line["attempts"], 1);
    assert!(line["duration_ms"].is_u64(), "{line}");
}

#[tokio::test]
async fn text_logs_have_no_colours_when_piped_and_quiet_routes_are_debug() {
    let tmp = tempfile::tempdir().unwrap();
    let s = ServeCmd::new(&tmp.path().join("data")).env("RUST_LOG", "debug").start().await;
    assert_eq!(reqwest::get(s.url("/healthz")).await.unwrap().status(), 200);
    let r = reqwest::Client::new().get(s.url("/metrics")).header("x-request-id", "scrape-1").send().await.unwrap();
    assert_eq!(r.status(), 200);
    let log = s.stop().await.stderr;
    assert!(!log.contains('\u{1b}'), "an escape code in a piped log:\n{log}");
    let line =
        log.lines().find(|l| l.contains("request_id=scrape-1") && l.contains(" request ")).expect("the scrape's line");
    assert!(line.contains(" DEBUG ") && line.contains("route=\"/metrics\"") && line.contains("status=200"), "{line}");
    let healthz =
        log.lines().find(|l| l.contains("route=\"/healthz\"") && l.contains(" request ")).expect("healthz line");
    assert!(healthz.contains(" DEBUG "), "{healthz}");
}
