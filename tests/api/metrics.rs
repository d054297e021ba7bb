//! Issue 8, metrics: `GET /metrics` in the Prometheus text format, read with a real parser
//! (`prometheus-parse`), moves with the service's work; `--metrics false` turns it off.

use std::collections::HashMap;

use exports_api::db::sql::args;
use prometheus_parse::{Scrape, Value as Sample};
use serde_json::{json, Value};

use crate::helpers::{invoices, is_uuid, spawn_app, spawn_app_without_workers, ServeCmd, TestApp};

/// The metrics, parsed; every sample line of the text is checked to have been understood.
struct Metrics(Scrape);

impl Metrics {
    async fn scrape(base_url: &str) -> Metrics {
        let r = reqwest::get(format!("{base_url}/metrics")).await.unwrap();
        assert_eq!(r.status(), 200);
        let ct = r.headers()["content-type"].to_str().unwrap().to_string();
        assert!(ct.starts_with("text/plain; version=0.0.4"), "{ct}");
        let text = r.text().await.unwrap();
        let scrape = Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).expect("the text format parses");
        // a line the parser skipped would hide a sample: every sample line was read (a
        // histogram's bucket lines become one sample)
        let lines = text.lines().filter(|l| !l.starts_with('#') && !l.is_empty()).count();
        let read: usize =
            scrape.samples.iter().map(|s| if let Sample::Histogram(b) = &s.value { b.len() } else { 1 }).sum();
        assert_eq!(lines, read, "unparsed lines in\n{text}");
        Metrics(scrape)
    }

    /// The value of `name` with exactly these labels (0 when there is no such series).
    fn get(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let want: HashMap<String, String> = labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        self.0
            .samples
            .iter()
            .find(|s| s.metric == name && *s.labels == want)
            .map(|s| match &s.value {
                Sample::Counter(v) | Sample::Gauge(v) | Sample::Untyped(v) => *v,
                other => panic!("{name}: not a number: {other:?}"),
            })
            .unwrap_or(0.0)
    }

    fn labels_of(&self, name: &str, label: &str) -> Vec<String> {
        self.0
            .samples
            .iter()
            .filter(|s| s.metric == name)
            .filter_map(|s| s.labels.get(label))
            .map(String::from)
            .collect()
    }
}

/// A schema and `n` invoices of January to March 2024; returns the schema id.
async fn with_results(app: &TestApp, n: usize) -> String {
    let (schema, ndjson) = invoices(n, 8);
    let schema = app.create_schema(&schema).await;
    let id = schema["id"].as_str().unwrap().to_string();
    assert_eq!(app.upload_ndjson(&id, ndjson).await, n as u64);
    id
}

#[tokio::test]
async fn an_export_its_download_and_its_deletion_move_the_counters() {
    let app = spawn_app().await;
    let schema_id = with_results(&app, 120).await;
    let before = Metrics::scrape(&app.base_url).await;
    assert_eq!(before.get("exports_jobs_total", &[("status", "COMPLETED")]), 0.0);
    assert_eq!(before.get("exports_storage_bytes", &[]), 0.0);
    assert!(before.get("exports_database_bytes", &[]) > 0.0, "the database has a size");

    let done = app
        .export_and_wait(&json!({"schema_id": schema_id, "start_date": "2024-01-01", "end_date": "2024-03-31"}))
        .await;
    assert_eq!(done["status"], "COMPLETED", "{done}");
    let (id, rows, size) =
        (done["id"].as_str().unwrap(), done["row_count"].as_f64().unwrap(), done["file_size"].as_f64().unwrap());
    assert!(rows > 0.0 && size > 0.0, "{done}");
    let after = Metrics::scrape(&app.base_url).await;
    assert_eq!(after.get("exports_jobs_total", &[("status", "COMPLETED")]), 1.0);
    assert_eq!(after.get("exports_jobs_total", &[("status", "FAILED")]), 0.0);
    assert_eq!(after.get("exports_rows_written_total", &[]), rows);
    assert_eq!(after.get("exports_bytes_written_total", &[]), size);
    assert_eq!(after.get("exports_storage_bytes", &[]), size);
    assert_eq!(after.get("exports_job_duration_seconds_count", &[("status", "COMPLETED")]), 1.0);
    assert_eq!(after.get("exports_jobs_running", &[]), 0.0);
    assert_eq!(after.get("exports_jobs_queued", &[]), 0.0);
    // the polls of the export were counted under their template, never their id
    let polled =
        after.get("http_requests_total", &[("method", "GET"), ("route", "/v1/exports/:id"), ("status", "200")]);
    assert!(polled >= 1.0, "GET /v1/exports/:id counted");
    assert!(
        after.get("http_request_duration_seconds_count", &[("method", "GET"), ("route", "/v1/exports/:id")]) >= polled
    );
    assert_eq!(
        after.get("http_requests_total", &[("method", "POST"), ("route", "/v1/exports"), ("status", "201")]),
        1.0
    );

    // a range, then the whole file: the bytes sent, each time
    let url = app.download_url(id).await;
    let r = app.client.get(&url).header("range", "bytes=0-99").send().await.unwrap();
    assert_eq!(r.status(), 206);
    assert_eq!(r.bytes().await.unwrap().len(), 100);
    let ranged = Metrics::scrape(&app.base_url).await;
    assert_eq!(ranged.get("exports_download_bytes_total", &[]), 100.0);
    let whole = app.client.get(&url).send().await.unwrap().bytes().await.unwrap();
    assert_eq!(whole.len() as f64, size);
    let downloaded = Metrics::scrape(&app.base_url).await;
    assert_eq!(downloaded.get("exports_download_bytes_total", &[]), 100.0 + size);
    let files = "/files/teams/:team_id/:export_id/:name";
    assert_eq!(downloaded.get("http_requests_total", &[("method", "GET"), ("route", files), ("status", "206")]), 1.0);

    let r = app.delete(&format!("/v1/exports/{id}")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let r = app.client.get(app.url("/no/such/route/0197")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    let deleted = Metrics::scrape(&app.base_url).await;
    assert_eq!(deleted.get("exports_jobs_total", &[("status", "deleted")]), 1.0);
    assert_eq!(deleted.get("exports_storage_bytes", &[]), 0.0, "the file is gone");
    assert_eq!(
        deleted.get("http_requests_total", &[("method", "GET"), ("route", "unmatched"), ("status", "404")]),
        1.0
    );

    // no label names a team, an export or a raw path
    for route in deleted.labels_of("http_requests_total", "route") {
        assert!(route == "unmatched" || route.starts_with('/'), "{route}");
        assert!(!route.contains("such"), "a raw path in a route label: {route}");
    }
    for sample in &deleted.0.samples {
        for value in sample.labels.values() {
            assert!(!value.split('/').any(is_uuid), "an id in a label of {}: {value}", sample.metric);
        }
    }
    app.stop().await;
}

#[tokio::test]
async fn queued_jobs_are_counted_at_scrape_time() {
    let tmp = tempfile::tempdir().unwrap();
    let app = spawn_app_without_workers(tmp.path().to_path_buf(), |_| {}).await;
    let schema_id = with_results(&app, 5).await;
    for _ in 0..3 {
        let body = json!({"schema_id": schema_id, "start_date": "2024-01-01", "end_date": "2024-01-31"});
        let r = app.post_json("/v1/exports", &body).send().await.unwrap();
        assert_eq!(r.status(), 201);
    }
    let m = Metrics::scrape(&app.base_url).await;
    assert_eq!(m.get("exports_jobs_queued", &[]), 3.0);
    assert_eq!(m.get("exports_jobs_running", &[]), 0.0);
    let r = app.delete(&format!("/v1/exports/{}", first_export(&app).await)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(Metrics::scrape(&app.base_url).await.get("exports_jobs_queued", &[]), 2.0);
    app.stop().await;
}

async fn first_export(app: &TestApp) -> String {
    let v: Value = app.get("/v1/exports").send().await.unwrap().json().await.unwrap();
    v["data"][0]["id"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn metrics_need_no_key_are_not_rate_limited_and_are_not_in_the_openapi_document() {
    let tmp = tempfile::tempdir().unwrap();
    let app = crate::helpers::spawn_app_with(tmp.path().to_path_buf(), |c| c.limits.rate_limit = 1).await;
    // far past the burst of 2 a second for one address
    for _ in 0..10 {
        let r = app.client.get(app.url("/metrics")).send().await.unwrap();
        assert_eq!(r.status(), 200);
    }
    let spec: Value = app.client.get(app.url("/openapi.json")).send().await.unwrap().json().await.unwrap();
    assert!(spec["paths"].get("/metrics").is_none());
    app.stop().await;
}

#[tokio::test]
async fn metrics_false_turns_the_route_off() {
    let tmp = tempfile::tempdir().unwrap();
    for (how, dir) in [("--metrics false", "flag"), ("EXPORTS_METRICS=false", "env"), ("default", "on")] {
        let cmd = ServeCmd::new(&tmp.path().join(dir));
        let cmd = match dir {
            "flag" => cmd.args(&["--metrics", "false"]),
            "env" => cmd.env("EXPORTS_METRICS", "false"),
            _ => cmd,
        };
        let s = cmd.start().await;
        let status = reqwest::get(s.url("/metrics")).await.unwrap().status();
        assert_eq!(status, if dir == "on" { 200 } else { 404 }, "{how}");
        assert_eq!(reqwest::get(s.url("/healthz")).await.unwrap().status(), 200);
        let off = s.stderr().contains("metrics      off");
        assert_eq!(off, dir != "on", "{how}: the start-up block says whether it is on:\n{}", s.stderr());
    }
}

/// A job that was interrupted `MAX_ATTEMPTS` times is failed by the worker that would have
/// taken it, without running: that FAILED is counted like any other.
#[tokio::test]
async fn a_job_failed_at_claim_is_counted() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    let app = spawn_app_without_workers(dir.clone(), |_| {}).await;
    let schema_id = with_results(&app, 5).await;
    let body = json!({"schema_id": schema_id, "start_date": "2024-01-01", "end_date": "2024-01-31"});
    let r = app.post_json("/v1/exports", &body).send().await.unwrap();
    assert_eq!(r.status(), 201);
    let id = first_export(&app).await;
    app.stop().await;
    // as a process that died while running it, the third time
    let n = crate::helpers::beside(&dir, |c| {
        c.exec(
            "UPDATE exports SET status = 'PROCESSING', claimed_by = 'a-run-that-died', attempts = 3 WHERE id = ?1",
            args![&id],
        )
    });
    assert_eq!(n.unwrap(), 1);

    let app = crate::helpers::spawn_app_with(dir, |_| {}).await;
    let failed = crate::helpers::poll_until(crate::helpers::within(10), "the job to be failed", || async {
        let v: Value = app.get(&format!("/v1/exports/{id}")).send().await.unwrap().json().await.unwrap();
        (v["status"] == "FAILED").then_some(v)
    })
    .await;
    assert!(failed["error"].as_str().unwrap().contains("interrupted 3 times"), "{failed}");
    let m = Metrics::scrape(&app.base_url).await;
    assert_eq!(m.get("exports_jobs_total", &[("status", "FAILED")]), 1.0);
    assert_eq!(m.get("exports_jobs_total", &[("status", "COMPLETED")]), 0.0);
    app.stop().await;
}
