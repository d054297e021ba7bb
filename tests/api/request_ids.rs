//! Issue 8, request ids: every answer carries `x-request-id` (the client's own when sane, else
//! a new UUIDv7), and a 5xx message quotes it so that a user can report it.

use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::{assert_error, beside, invoices, spawn_app, spawn_app_with, spawn_app_without_workers, TestApp};

fn id_of(r: &reqwest::Response) -> String {
    r.headers().get("x-request-id").expect("an x-request-id header").to_str().unwrap().to_string()
}

fn assert_generated(id: &str) {
    let u = uuid::Uuid::parse_str(id).unwrap_or_else(|e| panic!("generated id {id:?}: {e}"));
    assert_eq!(u.get_version_num(), 7, "{id}");
}

#[tokio::test]
async fn a_sane_client_id_is_echoed_on_every_answer() {
    let app = spawn_app().await;
    for (path, key, status) in
        [("/v1/exports", true, 200), ("/v1/exports", false, 401), ("/nope", false, 404), ("/healthz", false, 200)]
    {
        for sent in ["abc", "req-2024.01:42_x", &"z".repeat(128)] {
            let mut rb = app.client.get(app.url(path)).header("x-request-id", sent);
            if key {
                rb = rb.header("x-api-key", &app.api_key);
            }
            let r = rb.send().await.unwrap();
            assert_eq!(r.status(), status, "{path}");
            assert_eq!(id_of(&r), sent, "{path}");
        }
    }
    app.stop().await;
}

#[tokio::test]
async fn an_id_is_generated_when_absent_or_not_sane() {
    let app = spawn_app().await;
    let a = id_of(&app.get("/v1/exports").send().await.unwrap());
    let b = id_of(&app.get("/v1/exports").send().await.unwrap());
    assert_generated(&a);
    assert_generated(&b);
    assert_ne!(a, b, "each request its own id");
    let too_long = "z".repeat(129);
    for insane in ["has space", "a/b", "<x>", "quote\"", too_long.as_str(), ""] {
        let r = app.get("/v1/exports").header("x-request-id", insane).send().await.unwrap();
        assert_eq!(r.status(), 200);
        let id = id_of(&r);
        assert_ne!(id, insane);
        assert_generated(&id);
    }
    // a body-less error of the HTTP parser (hyper's own 431) has one too
    let mut rb = app.client.get(app.url("/v1/exports"));
    for i in 0..120 {
        rb = rb.header(format!("x-h{i}"), "v");
    }
    let r = rb.send().await.unwrap();
    assert_eq!(r.status(), 431);
    assert_generated(&id_of(&r));
    app.stop().await;
}

/// An export whose row the server cannot read (its options are not JSON): a 500.
async fn corrupt_export(app: &TestApp) -> String {
    let (schema, ndjson) = invoices(3, 1);
    let schema = app.create_schema(&schema).await;
    let schema_id = schema["id"].as_str().unwrap();
    app.upload_ndjson(schema_id, ndjson).await;
    let body = json!({"schema_id": schema_id, "start_date": "2024-01-01", "end_date": "2024-03-31"});
    let r = app.post_json("/v1/exports", &body).send().await.unwrap();
    assert_eq!(r.status(), 201);
    let id = r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_string();
    let changed = beside(&app.data_dir, |c| {
        c.exec("UPDATE exports SET options = 'not json' WHERE id = ?1", exports_api::db::sql::args![&id]).unwrap()
    });
    assert_eq!(changed, 1);
    id
}

#[tokio::test]
async fn a_500_names_the_request_id_the_client_sent_or_was_given() {
    let tmp = tempfile::tempdir().unwrap();
    let app = spawn_app_without_workers(tmp.path().to_path_buf(), |_| {}).await;
    let id = corrupt_export(&app).await;
    let path = format!("/v1/exports/{id}");

    let r = app.get(&path).header("x-request-id", "support-case-17").send().await.unwrap();
    assert_eq!(id_of(&r), "support-case-17");
    let msg = assert_error(r, 500).await;
    assert!(msg.ends_with("(request id support-case-17)"), "{msg}");
    assert!(!msg.contains("not json"), "the cause stays in the log: {msg}");

    let r = app.get(&path).send().await.unwrap();
    let given = id_of(&r);
    assert_generated(&given);
    let msg = assert_error(r, 500).await;
    assert!(msg.ends_with(&format!("(request id {given})")), "{msg}");
    // a 4xx message is left as it was
    let r = app.get("/v1/exports/not-a-uuid").header("x-request-id", "x4").send().await.unwrap();
    assert!(!assert_error(r, 400).await.contains("request id"));
    app.stop().await;
}

#[tokio::test]
async fn a_503_of_a_busy_database_names_the_request_id() {
    crate::sqlite_only!();
    let tmp = tempfile::tempdir().unwrap();
    let app = spawn_app_with(tmp.path().to_path_buf(), |c| c.limits.busy_timeout = Duration::from_millis(200)).await;
    let lock = rusqlite::Connection::open(app.data_dir.join("exports.db")).unwrap();
    lock.execute_batch("BEGIN IMMEDIATE").unwrap();
    let body = json!({"name": "busy", "schema": {"fields": [{"key": "a", "label": "A", "type": "string"}]}});
    let r = app.post_json("/v1/schemas", &body).header("x-request-id", "busy-1").send().await.unwrap();
    assert!(r.headers().contains_key("retry-after"));
    let msg = assert_error(r, 503).await;
    assert!(msg.contains("busy") && msg.ends_with("(request id busy-1)"), "{msg}");
    lock.execute_batch("ROLLBACK").unwrap();
    app.stop().await;
}
