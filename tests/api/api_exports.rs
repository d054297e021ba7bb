//! Black-box tests of the Exports API proper (the seed's four calls): create, list, download,
//! delete, with the shapes, status codes and list parameters of `spec/api.md`.

use std::collections::HashSet;

use crate::helpers;
use crate::helpers::{
    assert_error, assert_time, assert_uuid_v7, clock_past, poll_until, send, spawn_app, within, TestApp,
};
use serde_json::{json, Value};

/// Every key of an export object: api.md's, with `format` and `columns` (formats.md) and
/// `progress` (events.md).
const EXPORT_KEYS: [&str; 16] = [
    "id",
    "schema_id",
    "status",
    "start_date",
    "end_date",
    "expand_array",
    "format",
    "columns",
    "options",
    "row_count",
    "progress",
    "file_size",
    "error",
    "createdAt",
    "updatedAt",
    "completedAt",
];

const UNKNOWN_SCHEMA: &str = "019760a0-0001-7000-8000-000000000001";

// ---------------------------------------------------------------------------------------------
// helpers

fn schema_body(name: &str) -> Value {
    json!({
        "name": name,
        "description": "schema for export tests",
        "schema": {"fields": [
            {"key": "invoice_number", "type": "string", "label": "Invoice number"},
            {"key": "total", "type": "number"},
            {"key": "address", "type": "object", "fields": [
                {"key": "city", "type": "string"},
                {"key": "phones", "type": "array"}
            ]},
            {"key": "items", "type": "array", "fields": [
                {"key": "sku", "type": "string"},
                {"key": "qty", "type": "integer"}
            ]},
            {"key": "tags", "type": "array"}
        ]}
    })
}

/// One NDJSON line: a result created at `created_at` with `items` line items.
fn result_line(n: usize, created_at: &str, items: usize) -> Value {
    let items: Vec<Value> = (0..items).map(|i| json!({"sku": format!("SKU-{n}-{i}"), "qty": i + 1})).collect();
    json!({
        "file_name": format!("invoice-{n}.pdf"),
        "createdAt": created_at,
        "extraction": {
            "invoice_number": format!("INV-{n}"),
            "total": 10.5,
            "address": {"city": "Berlin", "phones": ["1", "2"]},
            "items": items,
            "tags": ["a", "b"]
        }
    })
}

fn ndjson(lines: &[Value]) -> String {
    let mut s = String::new();
    for l in lines {
        s.push_str(&l.to_string());
        s.push('\n');
    }
    s
}

/// A schema with three results in January 2024 (2, 0 and 3 line items); returns its id.
async fn schema_with_results(app: &TestApp, name: &str) -> String {
    let schema = app.create_schema(&schema_body(name)).await;
    let id = schema["id"].as_str().unwrap().to_string();
    let nd = ndjson(&[
        result_line(1, "2024-01-05T10:00:00.000Z", 2),
        result_line(2, "2024-01-15T10:00:00.000Z", 0),
        result_line(3, "2024-01-25T10:00:00.000Z", 3),
    ]);
    assert_eq!(app.upload_ndjson(&id, nd).await, 3);
    id
}

async fn create_export(app: &TestApp, body: &Value) -> Value {
    let (status, v) = send(app.post_json("/v1/exports", body)).await;
    assert_eq!(status, 201, "create export {body}: {v}");
    v
}

fn keys_of(v: &Value) -> Vec<String> {
    v.as_object().unwrap_or_else(|| panic!("not an object: {v}")).keys().cloned().collect()
}

fn assert_export_keys(v: &Value) {
    let mut got = keys_of(v);
    got.sort();
    let mut want: Vec<String> = EXPORT_KEYS.iter().map(|s| s.to_string()).collect();
    want.sort();
    assert_eq!(got, want, "export object keys: {v}");
}

/// Polls an export until COMPLETED/FAILED, checking at every step that the figures are null
/// while the export is not COMPLETED.
async fn wait_checking(app: &TestApp, id: &str) -> Value {
    poll_until(within(15), &format!("export {id} to finish"), move || async move {
        let (status, v) = send(app.get(&format!("/v1/exports/{id}"))).await;
        assert_eq!(status, 200, "{v}");
        assert_export_keys(&v);
        let st = v["status"].as_str().unwrap().to_string();
        assert!(["PENDING", "PROCESSING", "COMPLETED", "FAILED"].contains(&st.as_str()), "{v}");
        if st == "PENDING" {
            assert!(v["progress"].is_null(), "progress must be null while {st}: {v}");
        }
        if st != "COMPLETED" && st != "PROCESSING" {
            assert!(v["row_count"].is_null(), "row_count must be null while {st}: {v}");
        }
        if st != "COMPLETED" {
            assert!(v["file_size"].is_null(), "file_size must be null while {st}: {v}");
            assert!(v["completedAt"].is_null(), "completedAt must be null while {st}: {v}");
        }
        if st != "FAILED" {
            assert!(v["error"].is_null(), "error must be null unless FAILED: {v}");
        }
        (st == "COMPLETED" || st == "FAILED").then_some(v)
    })
    .await
}

async fn list(app: &TestApp, query: &[(&str, &str)]) -> Value {
    let (status, v) = send(app.get("/v1/exports").query(query)).await;
    assert_eq!(status, 200, "GET /v1/exports {query:?}: {v}");
    assert!(v["data"].is_array(), "{v}");
    v
}

fn ids(list: &Value) -> Vec<String> {
    list["data"].as_array().unwrap().iter().map(|e| e["id"].as_str().unwrap().to_string()).collect()
}

fn meta(list: &Value) -> (u64, u64, u64, u64) {
    let m = &list["meta"];
    (
        m["page"].as_u64().unwrap_or_else(|| panic!("meta.page: {m}")),
        m["limit"].as_u64().unwrap_or_else(|| panic!("meta.limit: {m}")),
        m["total"].as_u64().unwrap_or_else(|| panic!("meta.total: {m}")),
        m["totalPages"].as_u64().unwrap_or_else(|| panic!("meta.totalPages: {m}")),
    )
}

// ---------------------------------------------------------------------------------------------
// create

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_answers_201_pending_with_every_field() {
    let app = spawn_app().await;
    let schema_id = schema_with_results(&app, "invoices").await;
    let before = chrono::Utc::now() - chrono::Duration::seconds(2);
    let body = json!({
        "schema_id": schema_id,
        "start_date": "2024-01-01T00:00:00.000Z",
        "end_date": "2024-01-31T23:59:59.999Z"
    });
    let r = app.post_json("/v1/exports", &body).send().await.unwrap();
    assert_eq!(r.status(), 201);
    let ct = r.headers().get("content-type").unwrap().to_str().unwrap().to_string();
    assert!(ct.starts_with("application/json"), "{ct}");
    let v: Value = r.json().await.unwrap();
    assert_export_keys(&v);
    assert_uuid_v7(&v["id"], "id");
    assert_eq!(v["schema_id"], json!(schema_id));
    assert_eq!(v["status"], "PENDING", "a new export answers PENDING: {v}");
    assert_eq!(v["start_date"], "2024-01-01T00:00:00.000Z");
    assert_eq!(v["end_date"], "2024-01-31T23:59:59.999Z");
    assert!(v["expand_array"].is_null(), "{v}");
    assert!(v["options"].is_object() || v["options"].is_null(), "options: {v}");
    assert!(v["row_count"].is_null(), "{v}");
    assert!(v["file_size"].is_null(), "{v}");
    assert!(v["error"].is_null(), "{v}");
    assert!(v["completedAt"].is_null(), "{v}");
    let created = assert_time(&v["createdAt"], "createdAt");
    let updated = assert_time(&v["updatedAt"], "updatedAt");
    assert_eq!(created, updated, "a new export: createdAt == updatedAt: {v}");
    assert!(created >= before && created <= chrono::Utc::now() + chrono::Duration::seconds(2), "{v}");

    // GET answers the same object.
    let id = v["id"].as_str().unwrap().to_string();
    let (status, got) = send(app.get(&format!("/v1/exports/{id}"))).await;
    assert_eq!(status, 200);
    assert_export_keys(&got);
    for k in ["id", "schema_id", "start_date", "end_date", "expand_array", "createdAt"] {
        assert_eq!(got[k], v[k], "GET {k}: {got}");
    }

    // Completes with its figures.
    let done = wait_checking(&app, &id).await;
    assert_eq!(done["status"], "COMPLETED", "{done}");
    assert_eq!(done["row_count"].as_u64(), Some(3), "three results, no expansion: {done}");
    assert!(done["file_size"].as_u64().is_some_and(|n| n > 0), "file_size: {done}");
    let completed = assert_time(&done["completedAt"], "completedAt");
    assert!(completed >= created, "{done}");
    let updated = assert_time(&done["updatedAt"], "updatedAt");
    assert!(updated >= created, "{done}");
    assert!(done["error"].is_null(), "{done}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_echoes_expand_array_and_options_and_counts_expanded_rows() {
    let app = spawn_app().await;
    let schema_id = schema_with_results(&app, "invoices").await;
    let v = create_export(
        &app,
        &json!({
            "schema_id": schema_id,
            "start_date": "2024-01-01T00:00:00.000Z",
            "end_date": "2024-01-31T23:59:59.999Z",
            "expand_array": "items",
            "options": {"delimiter": ";", "gzip": true, "bom": true, "header": "label", "formula_guard": false}
        }),
    )
    .await;
    assert_eq!(v["expand_array"], "items");
    assert_eq!(v["options"]["delimiter"], ";", "{v}");
    assert_eq!(v["options"]["gzip"], true, "{v}");
    assert_eq!(v["options"]["bom"], true, "{v}");
    assert_eq!(v["options"]["header"], "label", "{v}");
    assert_eq!(v["options"]["formula_guard"], false, "{v}");
    let done = wait_checking(&app, v["id"].as_str().unwrap()).await;
    assert_eq!(done["status"], "COMPLETED", "{done}");
    // 2 items + 1 record for the empty array + 3 items.
    assert_eq!(done["row_count"].as_u64(), Some(6), "{done}");
    let url = app.download_url(v["id"].as_str().unwrap()).await;
    assert!(url.contains(".csv.gz?"), "gzip export URL ends .csv.gz: {url}");

    // Scalar array expansion: one record per tag.
    let v = create_export(
        &app,
        &json!({"schema_id": schema_id, "start_date": "2024-01-01", "end_date": "2024-01-31", "expand_array": "tags"}),
    )
    .await;
    let done = wait_checking(&app, v["id"].as_str().unwrap()).await;
    assert_eq!(done["row_count"].as_u64(), Some(6), "{done}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bare_dates_mean_whole_days() {
    let app = spawn_app().await;
    let schema = app.create_schema(&schema_body("edges")).await;
    let schema_id = schema["id"].as_str().unwrap();
    let nd = ndjson(&[
        result_line(1, "2023-12-31T23:59:59.999Z", 1),
        result_line(2, "2024-01-01T00:00:00.000Z", 1),
        result_line(3, "2024-01-31T23:59:59.999Z", 1),
        result_line(4, "2024-02-01T00:00:00.000Z", 1),
    ]);
    assert_eq!(app.upload_ndjson(schema_id, nd).await, 4);
    let v = create_export(&app, &json!({"schema_id": schema_id, "start_date": "2024-01-01", "end_date": "2024-01-31"}))
        .await;
    assert_eq!(v["start_date"], "2024-01-01T00:00:00.000Z", "{v}");
    assert_eq!(v["end_date"], "2024-01-31T23:59:59.999Z", "{v}");
    let done = wait_checking(&app, v["id"].as_str().unwrap()).await;
    assert_eq!(done["row_count"].as_u64(), Some(2), "both ends inclusive, whole days: {done}");

    // The same day as start and end is one whole day.
    let v = create_export(&app, &json!({"schema_id": schema_id, "start_date": "2024-01-31", "end_date": "2024-01-31"}))
        .await;
    assert_eq!(v["start_date"], "2024-01-31T00:00:00.000Z", "{v}");
    assert_eq!(v["end_date"], "2024-01-31T23:59:59.999Z", "{v}");
    let done = wait_checking(&app, v["id"].as_str().unwrap()).await;
    assert_eq!(done["row_count"].as_u64(), Some(1), "{done}");

    // Offsets are normalised to UTC with milliseconds.
    let v = create_export(
        &app,
        &json!({"schema_id": schema_id, "start_date": "2024-01-01T01:00:00+01:00", "end_date": "2024-01-31T23:59:59.999Z"}),
    )
    .await;
    assert_eq!(v["start_date"], "2024-01-01T00:00:00.000Z", "{v}");
    let done = wait_checking(&app, v["id"].as_str().unwrap()).await;
    assert_eq!(done["row_count"].as_u64(), Some(2), "{done}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_rejects_bad_bodies_with_400() {
    let app = spawn_app().await;
    let schema_id = schema_with_results(&app, "invoices").await;
    let ok = json!({"schema_id": schema_id, "start_date": "2024-01-01", "end_date": "2024-01-31"});
    let with = |k: &str, val: Value| {
        let mut b = ok.clone();
        b[k] = val;
        b
    };
    let without = |k: &str| {
        let mut b = ok.clone();
        b.as_object_mut().unwrap().remove(k);
        b
    };

    // Not JSON at all, and JSON that is not an object.
    for raw in ["{not json", "", "{\"schema_id\": ", "null", "[]", "\"text\"", "42"] {
        let r = app
            .client
            .post(app.url("/v1/exports"))
            .header("x-api-key", &app.api_key)
            .header("content-type", "application/json")
            .body(raw)
            .send()
            .await
            .unwrap();
        let msg = assert_error(r, 400).await;
        assert!(!msg.is_empty(), "{raw}");
    }

    let cases: Vec<(&str, Value)> = vec![
        ("empty object", json!({})),
        ("missing schema_id", without("schema_id")),
        ("missing start_date", without("start_date")),
        ("missing end_date", without("end_date")),
        ("schema_id a number", with("schema_id", json!(123))),
        ("schema_id null", with("schema_id", Value::Null)),
        ("start_date a number", with("start_date", json!(20240101))),
        ("end_date a boolean", with("end_date", json!(true))),
        ("expand_array a number", with("expand_array", json!(5))),
        ("expand_array a list", with("expand_array", json!(["items"]))),
        ("options a string", with("options", json!("csv"))),
        ("schema_id not a UUID", with("schema_id", json!("not-a-uuid"))),
        ("schema_id truncated", with("schema_id", json!("019760a0-0001-7000-8000"))),
        ("start_date words", with("start_date", json!("yesterday"))),
        ("start_date empty", with("start_date", json!(""))),
        ("end_date impossible day", with("end_date", json!("2024-02-30"))),
        ("end_date bad month", with("end_date", json!("2024-13-01T00:00:00Z"))),
        ("end_date bad hour", with("end_date", json!("2024-01-31T25:00:00Z"))),
        ("start after end", json!({"schema_id": schema_id, "start_date": "2024-02-01", "end_date": "2024-01-31"})),
        (
            "start after end by 1 ms",
            json!({"schema_id": schema_id, "start_date": "2024-01-31T00:00:00.001Z", "end_date": "2024-01-31T00:00:00.000Z"}),
        ),
        ("expand_array a string field", with("expand_array", json!("invoice_number"))),
        ("expand_array unknown", with("expand_array", json!("nope"))),
        ("expand_array an object", with("expand_array", json!("address"))),
        ("expand_array nested path", with("expand_array", json!("address.phones"))),
        ("expand_array nested key", with("expand_array", json!("phones"))),
        ("expand_array sub-field", with("expand_array", json!("items.sku"))),
        ("expand_array empty", with("expand_array", json!(""))),
        ("delimiter x", with("options", json!({"delimiter": "x"}))),
        ("delimiter two chars", with("options", json!({"delimiter": ";;"}))),
        ("delimiter empty", with("options", json!({"delimiter": ""}))),
        ("delimiter a number", with("options", json!({"delimiter": 44}))),
        ("header unknown", with("options", json!({"header": "fancy"}))),
        ("bom a string", with("options", json!({"bom": "yes"}))),
        ("gzip a number", with("options", json!({"gzip": 1}))),
        ("formula_guard a string", with("options", json!({"formula_guard": "no"}))),
    ];
    for (what, body) in cases {
        let r = app.post_json("/v1/exports", &body).send().await.unwrap();
        let status = r.status().as_u16();
        assert_eq!(status, 400, "{what}: {body}");
        let msg = assert_error(r, 400).await;
        assert!(msg.len() > 5, "{what}: message says what was wrong: {msg}");
    }

    // The message for a bad expand_array or start after end says so.
    let r = app.post_json("/v1/exports", &with("expand_array", json!("nope"))).send().await.unwrap();
    let msg = assert_error(r, 400).await;
    assert!(msg.contains("expand_array"), "{msg}");
    let r = app.post_json("/v1/exports", &with("options", json!({"delimiter": "x"}))).send().await.unwrap();
    let msg = assert_error(r, 400).await;
    assert!(msg.contains("delimiter"), "{msg}");

    // None of it created anything.
    let l = list(&app, &[]).await;
    assert_eq!(meta(&l).2, 0, "rejected requests create no export: {l}");

    // Valid edge cases are accepted: every delimiter, both array fields, start == end.
    for d in [",", ";", "\t", "|"] {
        create_export(&app, &with("options", json!({"delimiter": d}))).await;
    }
    create_export(&app, &with("expand_array", json!("items"))).await;
    create_export(&app, &with("expand_array", json!("tags"))).await;
    create_export(&app, &with("expand_array", Value::Null)).await;
    create_export(&app, &with("options", json!({}))).await;
    create_export(
        &app,
        &json!({"schema_id": schema_id, "start_date": "2024-01-31T00:00:00.000Z", "end_date": "2024-01-31T00:00:00.000Z"}),
    )
    .await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_rejects_unknown_option_names() {
    let app = spawn_app().await;
    let schema_id = schema_with_results(&app, "invoices").await;
    let r = app
        .post_json(
            "/v1/exports",
            &json!({"schema_id": schema_id, "start_date": "2024-01-01", "end_date": "2024-01-31", "options": {"delimeter": ";"}}),
        )
        .send()
        .await
        .unwrap();
    let msg = assert_error(r, 400).await;
    assert!(msg.contains("delimeter"), "the message names the unknown option: {msg}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_for_unknown_schema_is_404() {
    let app = spawn_app().await;
    let r = app
        .post_json(
            "/v1/exports",
            &json!({"schema_id": UNKNOWN_SCHEMA, "start_date": "2024-01-01", "end_date": "2024-01-31"}),
        )
        .send()
        .await
        .unwrap();
    let msg = assert_error(r, 404).await;
    assert!(msg.to_lowercase().contains("schema"), "{msg}");
    // A deleted schema is unknown too.
    let s = app.create_schema(&schema_body("short-lived")).await;
    let sid = s["id"].as_str().unwrap();
    let (status, _) = send(app.delete(&format!("/v1/schemas/{sid}"))).await;
    assert_eq!(status, 200);
    let r = app
        .post_json("/v1/exports", &json!({"schema_id": sid, "start_date": "2024-01-01", "end_date": "2024-01-31"}))
        .send()
        .await
        .unwrap();
    assert_error(r, 404).await;
    app.stop().await;
}

// ---------------------------------------------------------------------------------------------
// download

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn download_answers_url_and_expiry_once_completed() {
    let app = spawn_app().await;
    let schema_id = schema_with_results(&app, "invoices").await;
    let done = app
        .export_and_wait(&json!({"schema_id": schema_id, "start_date": "2024-01-01", "end_date": "2024-01-31"}))
        .await;
    assert_eq!(done["status"], "COMPLETED", "{done}");
    let id = done["id"].as_str().unwrap();
    let before = chrono::Utc::now();
    let (status, v) = send(app.get(&format!("/v1/exports/{id}/download"))).await;
    assert_eq!(status, 200, "{v}");
    let mut k = keys_of(&v);
    k.sort();
    assert_eq!(k, vec!["expiresAt", "url"], "{v}");
    let url = v["url"].as_str().unwrap();
    let expires_at = assert_time(&v["expiresAt"], "expiresAt");
    // The default TTL is an hour.
    let ttl = (expires_at - before).num_seconds();
    assert!((3500..=3700).contains(&ttl), "expiresAt about an hour ahead, got {ttl} s");
    let prefix = format!("{}/files/teams/", app.base_url);
    assert!(url.starts_with(&prefix), "{url} starts with {prefix}");
    assert!(url.contains(&format!("/{id}/")), "{url} carries the export id");
    assert!(url.contains(".csv?"), "{url}");
    assert!(url.contains("token="), "{url}");
    let expires: i64 = url
        .split(['?', '&'])
        .find_map(|p| p.strip_prefix("expires="))
        .unwrap_or_else(|| panic!("no expires in {url}"))
        .parse()
        .unwrap();
    assert_eq!(expires, expires_at.timestamp(), "expires in the URL and expiresAt agree");

    // The URL serves the file, without an API key, with as many bytes as file_size says.
    let r = reqwest::get(url).await.unwrap();
    assert_eq!(r.status(), 200);
    let ct = r.headers().get("content-type").unwrap().to_str().unwrap().to_string();
    assert!(ct.starts_with("text/csv"), "{ct}");
    let bytes = r.bytes().await.unwrap();
    assert_eq!(Some(bytes.len() as u64), done["file_size"].as_u64(), "file_size is the size served");
    let text = String::from_utf8(bytes.to_vec()).unwrap();
    assert!(text.starts_with("id,file_name,createdAt,"), "{text}");
    assert_eq!(text.matches("\r\n").count(), 4, "header + 3 records: {text}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn download_before_completion_is_409_naming_the_status() {
    let tmp = tempfile::tempdir().unwrap();
    // the export workers stopped: the job stays PENDING for as long as the test needs
    let app = helpers::spawn_app_without_workers(tmp.path().to_path_buf(), |_| {}).await;
    let schema_id = schema_with_results(&app, "invoices").await;
    let body = json!({"schema_id": schema_id, "start_date": "2024-01-01", "end_date": "2024-01-31"});
    let id = create_export(&app, &body).await["id"].as_str().unwrap().to_string();
    let r = app.get(&format!("/v1/exports/{id}/download")).send().await.unwrap();
    let msg = assert_error(r, 409).await;
    assert!(msg.to_uppercase().contains("PENDING"), "a 409 message names the status: {msg}");
    let (_, v) = send(app.get(&format!("/v1/exports/{id}"))).await;
    assert_eq!(v["status"], "PENDING", "{v}");
    app.stop().await;

    // with workers, the same job completes and downloads
    let app = helpers::spawn_app_with(tmp.path().to_path_buf(), |_| {}).await;
    let done = app.wait_export(&id).await;
    assert_eq!(done["status"], "COMPLETED");
    let (status, v) = send(app.get(&format!("/v1/exports/{id}/download"))).await;
    assert_eq!(status, 200, "{v}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn download_of_unknown_export_is_404() {
    let app = spawn_app().await;
    let r = app.get(&format!("/v1/exports/{UNKNOWN_SCHEMA}/download")).send().await.unwrap();
    let msg = assert_error(r, 404).await;
    assert!(msg.to_lowercase().contains("export"), "{msg}");
    let r = app.get(&format!("/v1/exports/{UNKNOWN_SCHEMA}")).send().await.unwrap();
    let msg = assert_error(r, 404).await;
    assert!(msg.to_lowercase().contains("export"), "{msg}");
    app.stop().await;
}

// ---------------------------------------------------------------------------------------------
// delete

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_answers_message_then_everything_is_404() {
    let app = spawn_app().await;
    let schema_id = schema_with_results(&app, "invoices").await;
    let done = app
        .export_and_wait(&json!({"schema_id": schema_id, "start_date": "2024-01-01", "end_date": "2024-01-31"}))
        .await;
    let id = done["id"].as_str().unwrap().to_string();
    let url = app.download_url(&id).await;

    let (status, v) = send(app.delete(&format!("/v1/exports/{id}"))).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v, json!({"message": "Export deleted successfully"}));

    assert_error(app.get(&format!("/v1/exports/{id}")).send().await.unwrap(), 404).await;
    assert_error(app.get(&format!("/v1/exports/{id}/download")).send().await.unwrap(), 404).await;
    assert_error(app.delete(&format!("/v1/exports/{id}")).send().await.unwrap(), 404).await;
    // The file went with it.
    assert_error(reqwest::get(&url).await.unwrap(), 404).await;
    let l = list(&app, &[]).await;
    assert_eq!(meta(&l).2, 0, "{l}");
    assert!(ids(&l).is_empty());

    // A job deleted right after creation never shows up again.
    let v = create_export(&app, &json!({"schema_id": schema_id, "start_date": "2024-01-01", "end_date": "2024-01-31"}))
        .await;
    let id = v["id"].as_str().unwrap().to_string();
    let (status, v) = send(app.delete(&format!("/v1/exports/{id}"))).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v, json!({"message": "Export deleted successfully"}));
    // once a job created after it has run, the workers are past the deleted one
    let later = app
        .export_and_wait(&json!({"schema_id": schema_id, "start_date": "2024-01-01", "end_date": "2024-01-31"}))
        .await;
    assert_eq!(later["status"], "COMPLETED", "{later}");
    assert_error(app.get(&format!("/v1/exports/{id}")).send().await.unwrap(), 404).await;
    let l = list(&app, &[]).await;
    assert_eq!(meta(&l).2, 1, "{l}");
    assert_eq!(ids(&l), vec![later["id"].as_str().unwrap().to_string()]);
    // Unknown id.
    assert_error(app.delete(&format!("/v1/exports/{UNKNOWN_SCHEMA}")).send().await.unwrap(), 404).await;
    app.stop().await;
}

// ---------------------------------------------------------------------------------------------
// lists

struct ListFixture {
    app: TestApp,
    alpha: String,
    beta: String,
    /// e1..e5 in creation order.
    e: Vec<Value>,
}

/// Five COMPLETED exports over two schemas, created a few ms apart.
async fn list_fixture() -> ListFixture {
    let app = spawn_app().await;
    let alpha = schema_with_results(&app, "Invoices Alpha").await;
    let beta = schema_with_results(&app, "Receipts Beta").await;
    let bodies = [
        json!({"schema_id": alpha, "start_date": "2024-01-01", "end_date": "2024-01-31"}),
        json!({"schema_id": alpha, "start_date": "2024-01-10", "end_date": "2024-01-20", "expand_array": "items"}),
        json!({"schema_id": beta, "start_date": "2024-01-05", "end_date": "2024-01-06"}),
        json!({"schema_id": alpha, "start_date": "2024-01-03", "end_date": "2024-02-28"}),
        json!({"schema_id": beta, "start_date": "2023-12-01", "end_date": "2024-01-31"}),
    ];
    let mut created = Vec::new();
    for b in &bodies {
        let c = create_export(&app, b).await;
        // the next one gets a later createdAt
        clock_past(&c["createdAt"]).await;
        created.push(c);
    }
    let mut e = Vec::new();
    for c in &created {
        let done = app.wait_export(c["id"].as_str().unwrap()).await;
        assert_eq!(done["status"], "COMPLETED", "{done}");
        e.push(done);
    }
    ListFixture { app, alpha, beta, e }
}

fn eid(f: &ListFixture, i: usize) -> String {
    f.e[i]["id"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_has_seed_shape_default_order_and_paging() {
    let f = list_fixture().await;
    let app = &f.app;
    let l = list(app, &[]).await;
    let mut k = keys_of(&l);
    k.sort();
    assert_eq!(k, vec!["data", "meta"], "{l}");
    let mut mk = keys_of(&l["meta"]);
    mk.sort();
    assert_eq!(mk, vec!["limit", "page", "total", "totalPages"], "{l}");
    assert_eq!(meta(&l), (1, 20, 5, 1));
    for item in l["data"].as_array().unwrap() {
        assert_export_keys(item);
        assert_eq!(item["status"], "COMPLETED");
    }
    // Default: createdAt, newest first.
    let want: Vec<String> = (0..5).rev().map(|i| eid(&f, i)).collect();
    assert_eq!(ids(&l), want, "default order is createdAt desc");
    // Items are the same objects as GET /v1/exports/{id}.
    let first = &l["data"][0];
    let (_, one) = send(app.get(&format!("/v1/exports/{}", eid(&f, 4)))).await;
    assert_eq!(first, &one);

    // Paging.
    let p1 = list(app, &[("limit", "2")]).await;
    assert_eq!(meta(&p1), (1, 2, 5, 3));
    assert_eq!(ids(&p1), want[0..2].to_vec());
    let p2 = list(app, &[("limit", "2"), ("page", "2")]).await;
    assert_eq!(meta(&p2), (2, 2, 5, 3));
    assert_eq!(ids(&p2), want[2..4].to_vec());
    let p3 = list(app, &[("limit", "2"), ("page", "3")]).await;
    assert_eq!(meta(&p3), (3, 2, 5, 3));
    assert_eq!(ids(&p3), want[4..5].to_vec());
    // Past the end: 200, empty data, true meta.
    let p4 = list(app, &[("limit", "2"), ("page", "4")]).await;
    assert_eq!(meta(&p4), (4, 2, 5, 3));
    assert_eq!(p4["data"], json!([]));
    let far = list(app, &[("page", "1000")]).await;
    assert_eq!(meta(&far), (1000, 20, 5, 1));
    assert_eq!(far["data"], json!([]));
    // Bounds that are allowed.
    assert_eq!(meta(&list(app, &[("limit", "1")]).await), (1, 1, 5, 5));
    assert_eq!(meta(&list(app, &[("limit", "100")]).await), (1, 100, 5, 1));
    f.app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_rejects_bad_parameters_naming_them() {
    let app = spawn_app().await;
    let cases: &[(&str, &str)] = &[
        ("limit", "0"),
        ("limit", "101"),
        ("limit", "-1"),
        ("limit", "abc"),
        ("limit", "1.5"),
        ("page", "0"),
        ("page", "-1"),
        ("page", "abc"),
        ("sort_by", "bogus"),
        ("sort_by", "name"),
        ("sort_by", "row_count; DROP TABLE exports"),
        ("sort_order", "up"),
        ("sort_order", "sideways"),
        ("created_after", "yesterday"),
        ("created_after", "2024-13-01T00:00:00Z"),
        ("created_before", "not a date"),
        ("created_before", "2024-01-32"),
        ("fields", "id,bogus"),
        ("fields", "password"),
        ("include", "bogus"),
        ("include", "schema,team"),
    ];
    app.assert_params_refused("/v1/exports", cases).await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_sorts_by_every_allowed_field() {
    let f = list_fixture().await;
    let app = &f.app;
    let all: Vec<String> = (0..5).map(|i| eid(&f, i)).collect();
    for sort_by in ["createdAt", "updatedAt", "status", "start_date", "end_date"] {
        for order in ["asc", "desc"] {
            let l = list(app, &[("sort_by", sort_by), ("sort_order", order)]).await;
            assert_eq!(meta(&l).2, 5);
            let vals: Vec<String> =
                l["data"].as_array().unwrap().iter().map(|e| e[sort_by].as_str().unwrap().to_string()).collect();
            let mut sorted = vals.clone();
            sorted.sort();
            if order == "desc" {
                sorted.reverse();
            }
            assert_eq!(vals, sorted, "sort_by={sort_by}&sort_order={order}");
            let mut got = ids(&l);
            got.sort();
            let mut want = all.clone();
            want.sort();
            assert_eq!(got, want);
        }
    }
    // Exact orders where values are distinct.
    let l = list(app, &[("sort_by", "createdAt"), ("sort_order", "asc")]).await;
    assert_eq!(ids(&l), all);
    let l = list(app, &[("sort_order", "asc")]).await;
    assert_eq!(ids(&l), all, "sort_order alone sorts by createdAt");
    let l = list(app, &[("sort_by", "start_date"), ("sort_order", "asc")]).await;
    assert_eq!(ids(&l), vec![eid(&f, 4), eid(&f, 0), eid(&f, 3), eid(&f, 2), eid(&f, 1)]);
    let l = list(app, &[("sort_by", "start_date")]).await;
    assert_eq!(ids(&l), vec![eid(&f, 1), eid(&f, 2), eid(&f, 3), eid(&f, 0), eid(&f, 4)], "default desc");
    let l = list(app, &[("sort_by", "end_date"), ("sort_order", "asc")]).await;
    assert_eq!(ids(&l)[0..2].to_vec(), vec![eid(&f, 2), eid(&f, 1)]);
    assert_eq!(ids(&l)[4], eid(&f, 3));
    f.app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_filters_on_created_range_inclusively() {
    let f = list_fixture().await;
    let app = &f.app;
    let c: Vec<String> = f.e.iter().map(|e| e["createdAt"].as_str().unwrap().to_string()).collect();
    for w in c.windows(2) {
        assert!(w[0] < w[1], "fixture exports have distinct createdAt: {c:?}");
    }
    let asc = [("sort_order", "asc")];
    let l = list(app, &[asc[0], ("created_after", &c[2])]).await;
    assert_eq!(ids(&l), vec![eid(&f, 2), eid(&f, 3), eid(&f, 4)], "created_after is inclusive");
    assert_eq!(meta(&l).2, 3);
    let l = list(app, &[asc[0], ("created_before", &c[2])]).await;
    assert_eq!(ids(&l), vec![eid(&f, 0), eid(&f, 1), eid(&f, 2)], "created_before is inclusive");
    let l = list(app, &[("created_after", &c[2]), ("created_before", &c[2])]).await;
    assert_eq!(ids(&l), vec![eid(&f, 2)]);
    let l = list(app, &[asc[0], ("created_after", &c[1]), ("created_before", &c[3])]).await;
    assert_eq!(ids(&l), vec![eid(&f, 1), eid(&f, 2), eid(&f, 3)]);
    assert_eq!(meta(&l), (1, 20, 3, 1));
    let l = list(app, &[("created_after", "2999-01-01T00:00:00.000Z")]).await;
    assert_eq!(meta(&l), (1, 20, 0, 0));
    let l = list(app, &[("created_before", "2000-01-01T00:00:00.000Z")]).await;
    assert_eq!(meta(&l).2, 0);
    let l = list(app, &[("created_after", "2000-01-01")]).await;
    assert_eq!(meta(&l).2, 5, "a bare date is accepted");
    f.app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_search_fields_and_include() {
    let f = list_fixture().await;
    let app = &f.app;
    let total = |l: &Value| meta(l).2;
    let set = |l: &Value| ids(l).into_iter().collect::<HashSet<_>>();
    let alpha_set: HashSet<String> = [0, 1, 3].iter().map(|&i| eid(&f, i)).collect();
    let beta_set: HashSet<String> = [2, 4].iter().map(|&i| eid(&f, i)).collect();

    // Schema name, case-insensitive.
    let l = list(app, &[("search", "alpha")]).await;
    assert_eq!(set(&l), alpha_set, "search on schema name");
    assert_eq!(total(&l), 3);
    let l = list(app, &[("search", "rEcEiPtS bEtA")]).await;
    assert_eq!(set(&l), beta_set);
    // Status, case-insensitive.
    assert_eq!(total(&list(app, &[("search", "completed")]).await), 5);
    assert_eq!(total(&list(app, &[("search", "PENDING")]).await), 0);
    // Schema id and export id.
    assert_eq!(set(&list(app, &[("search", f.beta.as_str())]).await), beta_set);
    let e3 = eid(&f, 2);
    let l = list(app, &[("search", &e3.to_uppercase())]).await;
    assert_eq!(ids(&l), vec![e3.clone()], "search on export id, case-insensitive");
    // expand_array.
    let l = list(app, &[("search", "ITEMS")]).await;
    assert_eq!(ids(&l), vec![eid(&f, 1)], "search on expand_array");
    // Nothing.
    let l = list(app, &[("search", "zzz-nothing")]).await;
    assert_eq!(meta(&l), (1, 20, 0, 0));
    assert_eq!(l["data"], json!([]));
    // Search with paging keeps the filtered total.
    let l = list(app, &[("search", "alpha"), ("limit", "2"), ("page", "2")]).await;
    assert_eq!(meta(&l), (2, 2, 3, 2));
    assert_eq!(ids(&l).len(), 1);

    // fields
    let l = list(app, &[("fields", "id,status")]).await;
    assert_eq!(total(&l), 5);
    for item in l["data"].as_array().unwrap() {
        let mut k = keys_of(item);
        k.sort();
        assert_eq!(k, vec!["id", "status"], "{item}");
    }
    let l = list(app, &[("fields", "schema_id,createdAt,row_count")]).await;
    for item in l["data"].as_array().unwrap() {
        let mut k = keys_of(item);
        k.sort();
        assert_eq!(k, vec!["createdAt", "row_count", "schema_id"], "{item}");
    }

    // include=schema
    let l = list(app, &[("include", "schema")]).await;
    assert_eq!(total(&l), 5);
    for item in l["data"].as_array().unwrap() {
        assert_export_keys(&{
            let mut i = item.clone();
            i.as_object_mut().unwrap().remove("schema");
            i
        });
        let s = &item["schema"];
        let mut k = keys_of(s);
        k.sort();
        assert_eq!(k, vec!["id", "name"], "{item}");
        assert_eq!(s["id"], item["schema_id"]);
        let want = if item["schema_id"] == json!(f.alpha) { "Invoices Alpha" } else { "Receipts Beta" };
        assert_eq!(s["name"], want, "{item}");
    }
    // Without include, no schema member.
    let l = list(app, &[]).await;
    assert!(l["data"][0].get("schema").is_none());
    f.app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_paging_is_stable_on_ties() {
    let app = spawn_app().await;
    let schema_id = schema_with_results(&app, "ties").await;
    let body = json!({"schema_id": schema_id, "start_date": "2024-01-01", "end_date": "2024-01-31"});
    let mut all = Vec::new();
    for _ in 0..7 {
        let v = create_export(&app, &body).await;
        all.push(v["id"].as_str().unwrap().to_string());
    }
    for id in &all {
        assert_eq!(app.wait_export(id).await["status"], "COMPLETED");
    }
    let mut want = all.clone();
    want.sort();
    // status, start_date and end_date are equal on all seven: only the id orders them.
    for sort_by in ["status", "start_date", "end_date", "createdAt", "updatedAt"] {
        for order in ["asc", "desc"] {
            let mut seen = Vec::new();
            for page in 1..=4 {
                let p = page.to_string();
                let l = list(&app, &[("sort_by", sort_by), ("sort_order", order), ("limit", "2"), ("page", &p)]).await;
                assert_eq!(meta(&l), (page, 2, 7, 4), "sort_by={sort_by}");
                seen.extend(ids(&l));
            }
            assert_eq!(seen.len(), 7, "sort_by={sort_by}&sort_order={order}: {seen:?}");
            let uniq: HashSet<&String> = seen.iter().collect();
            assert_eq!(uniq.len(), 7, "no duplicates across pages, sort_by={sort_by}&sort_order={order}: {seen:?}");
            let mut s = seen.clone();
            s.sort();
            assert_eq!(s, want, "no missing ids, sort_by={sort_by}&sort_order={order}");
            // The full list agrees with the pages.
            let full = list(&app, &[("sort_by", sort_by), ("sort_order", order), ("limit", "100")]).await;
            assert_eq!(ids(&full), seen, "pages agree with the full list, sort_by={sort_by}&sort_order={order}");
            if sort_by == "status" || sort_by == "start_date" {
                // Only ids decide: they come out in id order (either direction).
                let mut rev = want.clone();
                rev.reverse();
                assert!(
                    seen == want || seen == rev,
                    "ties broken by id, sort_by={sort_by}&sort_order={order}: {seen:?}"
                );
            }
        }
    }
    app.stop().await;
}

/// A row the service cannot read whole (options or status damaged in the database) answers
/// GET with a 500, but DELETE still removes it and its file: deleting it is the way out.
#[tokio::test]
async fn a_damaged_export_can_still_be_deleted() {
    crate::local_files_only!();
    let app = spawn_app().await;
    let schema_id = schema_with_results(&app, "Damaged").await;
    for (column, value) in [("options", "{\"delimiter\": 7}"), ("status", "DONE-ISH")] {
        let done = app
            .export_and_wait(&json!({"schema_id": schema_id, "start_date": "2000-01-01", "end_date": "2100-01-01"}))
            .await;
        assert_eq!(done["status"], "COMPLETED", "{done}");
        let id = done["id"].as_str().unwrap().to_string();
        let file = helpers::walk(&app.data_dir)
            .into_iter()
            .find(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with(&id)))
            .expect("the export's file");
        let sql = format!("UPDATE exports SET {column} = ?1 WHERE id = ?2");
        let changed =
            helpers::beside(&app.data_dir, |c| c.exec(&sql, exports_api::db::sql::args![value, &id]).unwrap());
        assert_eq!(changed, 1);
        let r = app.get(&format!("/v1/exports/{id}")).send().await.unwrap();
        assert_eq!(r.status(), 500, "{column}: the damaged row is reported, not guessed at");

        let (status, body) = send(app.delete(&format!("/v1/exports/{id}"))).await;
        assert_eq!(status, 200, "{column}: {body}");
        assert_eq!(body["message"], "Export deleted successfully");
        let r = app.get(&format!("/v1/exports/{id}")).send().await.unwrap();
        assert_eq!(r.status(), 404, "{column}");
        poll_until(within(5), "the damaged export's file to be removed", || async { (!file.exists()).then_some(()) })
            .await;
    }
    app.stop().await;
}
