//! Black-box tests of schemas and results: create, read, list, change, delete, the NDJSON
//! bulk upload, and the validation around them (`spec/api.md`, "Schemas" and "Results").

use std::collections::HashSet;

use crate::helpers;
use crate::helpers::{assert_error, assert_time, assert_uuid_v7, clock_past, send, spawn_app, TestApp};
use serde_json::{json, Value};

const UNKNOWN_ID: &str = "019760a0-0001-7000-8000-000000000001";
const SCHEMA_KEYS: [&str; 6] = ["createdAt", "description", "id", "name", "schema", "updatedAt"];
const RESULT_KEYS: [&str; 7] = ["createdAt", "extraction", "file_name", "id", "schema_id", "status", "updatedAt"];

// ---------------------------------------------------------------------------------------------
// helpers

fn fields() -> Value {
    json!({"fields": [
        {"key": "invoice_number", "type": "string", "label": "Invoice number"},
        {"key": "total", "type": "number"},
        {"key": "pages", "type": "integer"},
        {"key": "paid", "type": "boolean"},
        {"key": "issued", "type": "date"},
        {"key": "seen_at", "type": "datetime"},
        {"key": "billing_address", "type": "object", "label": "Billing", "fields": [
            {"key": "city", "type": "string"},
            {"key": "geo", "type": "object", "fields": [{"key": "lat", "type": "number"}]}
        ]},
        {"key": "line_items", "type": "array", "fields": [
            {"key": "sku", "type": "string"},
            {"key": "qty", "type": "integer"}
        ]},
        {"key": "tags", "type": "array"},
        {"key": "_private2", "type": "string"}
    ]})
}

fn schema_body(name: &str) -> Value {
    json!({"name": name, "description": format!("{name} description"), "schema": fields()})
}

async fn new_schema(app: &TestApp, name: &str) -> String {
    app.create_schema(&schema_body(name)).await["id"].as_str().unwrap().to_string()
}

fn sorted_keys(v: &Value) -> Vec<String> {
    let mut k: Vec<String> = v.as_object().unwrap_or_else(|| panic!("not an object: {v}")).keys().cloned().collect();
    k.sort();
    k
}

async fn list(app: &TestApp, path: &str, query: &[(&str, &str)]) -> Value {
    let (status, v) = send(app.get(path).query(query)).await;
    assert_eq!(status, 200, "GET {path} {query:?}: {v}");
    v
}

fn total(l: &Value) -> u64 {
    l["meta"]["total"].as_u64().unwrap_or_else(|| panic!("meta.total: {l}"))
}

fn ids(l: &Value) -> Vec<String> {
    l["data"].as_array().unwrap().iter().map(|e| e["id"].as_str().unwrap().to_string()).collect()
}

fn names(l: &Value) -> Vec<String> {
    l["data"].as_array().unwrap().iter().map(|e| e["name"].as_str().unwrap().to_string()).collect()
}

fn upload_req(app: &TestApp, schema_id: &str, body: &str, content_type: &str) -> reqwest::RequestBuilder {
    app.client
        .post(app.url(&format!("/v1/schemas/{schema_id}/results")))
        .header("x-api-key", &app.api_key)
        .header("content-type", content_type)
        .body(body.to_string())
}

/// True when `msg` mentions a line and has the number `n` standing on its own.
fn names_line(msg: &str, n: u32) -> bool {
    let has_number =
        msg.split(|c: char| !c.is_ascii_digit()).filter(|s| !s.is_empty()).any(|s| s.parse::<u32>() == Ok(n));
    msg.to_lowercase().contains("line") && has_number
}

async fn post_result(app: &TestApp, body: &Value) -> Value {
    let (status, v) = send(app.post_json("/v1/results", body)).await;
    assert_eq!(status, 201, "POST /v1/results {body}: {v}");
    v
}

// ---------------------------------------------------------------------------------------------
// schemas

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schema_create_get_and_list() {
    let app = spawn_app().await;
    let body = schema_body("invoices");
    let r = app.post_json("/v1/schemas", &body).send().await.unwrap();
    assert_eq!(r.status(), 201);
    let s: Value = r.json().await.unwrap();
    assert_eq!(sorted_keys(&s), SCHEMA_KEYS, "{s}");
    assert_uuid_v7(&s["id"], "id");
    assert_eq!(s["name"], "invoices");
    assert_eq!(s["description"], "invoices description");
    assert_eq!(s["schema"], fields(), "the definition comes back as sent");
    let c = assert_time(&s["createdAt"], "createdAt");
    let u = assert_time(&s["updatedAt"], "updatedAt");
    assert_eq!(c, u);
    let id = s["id"].as_str().unwrap();

    let (status, got) = send(app.get(&format!("/v1/schemas/{id}"))).await;
    assert_eq!(status, 200);
    assert_eq!(got, s, "GET answers the created object");

    let l = list(&app, "/v1/schemas", &[]).await;
    assert_eq!(l["meta"], json!({"page": 1, "limit": 20, "total": 1, "totalPages": 1}));
    assert_eq!(l["data"], json!([s]));

    assert_error(app.get(&format!("/v1/schemas/{UNKNOWN_ID}")).send().await.unwrap(), 404).await;
    assert_error(app.get("/v1/schemas/not-a-uuid").send().await.unwrap(), 400).await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schema_create_rejects_bad_definitions() {
    let app = spawn_app().await;
    let one = |f: Value| json!({"name": "bad", "description": "d", "schema": {"fields": [f]}});
    let cases: Vec<(&str, Value)> = vec![
        ("key starting with a digit", one(json!({"key": "1abc", "type": "string"}))),
        ("key with a dash", one(json!({"key": "a-b", "type": "string"}))),
        ("key with a space", one(json!({"key": "a b", "type": "string"}))),
        ("key with a dot", one(json!({"key": "a.b", "type": "string"}))),
        ("empty key", one(json!({"key": "", "type": "string"}))),
        ("non-ASCII key", one(json!({"key": "prénom", "type": "string"}))),
        ("missing key", one(json!({"type": "string"}))),
        ("key a number", one(json!({"key": 5, "type": "string"}))),
        (
            "duplicate key",
            json!({"name": "bad", "schema": {"fields": [
                {"key": "a", "type": "string"}, {"key": "a", "type": "number"}
            ]}}),
        ),
        (
            "duplicate nested key",
            one(json!({"key": "o", "type": "object", "fields": [
                {"key": "x", "type": "string"}, {"key": "x", "type": "string"}
            ]})),
        ),
        ("object without fields", one(json!({"key": "o", "type": "object"}))),
        ("object with empty fields", one(json!({"key": "o", "type": "object", "fields": []}))),
        ("fields on a string", one(json!({"key": "s", "type": "string", "fields": [{"key": "x", "type": "string"}]}))),
        ("fields on a number", one(json!({"key": "n", "type": "number", "fields": [{"key": "x", "type": "string"}]}))),
        ("unknown type", one(json!({"key": "t", "type": "text"}))),
        ("type in capitals", one(json!({"key": "t", "type": "STRING"}))),
        ("missing type", one(json!({"key": "t"}))),
        ("bad nested key", one(json!({"key": "o", "type": "object", "fields": [{"key": "9", "type": "string"}]}))),
        (
            "bad type deep down",
            one(json!({"key": "a", "type": "array", "fields": [
                {"key": "o", "type": "object", "fields": [{"key": "x", "type": "float"}]}
            ]})),
        ),
        ("no fields at all", json!({"name": "bad", "schema": {"fields": []}})),
        ("fields not a list", json!({"name": "bad", "schema": {"fields": {"key": "a", "type": "string"}}})),
        ("schema missing", json!({"name": "bad"})),
        ("schema not an object", json!({"name": "bad", "schema": "fields"})),
        ("name missing", json!({"schema": fields()})),
        ("body a list", json!([])),
    ];
    for (what, body) in cases {
        let r = app.post_json("/v1/schemas", &body).send().await.unwrap();
        assert_eq!(r.status(), 400, "{what}: {body}");
        let msg = assert_error(r, 400).await;
        assert!(msg.len() > 5, "{what}: {msg}");
    }
    // The message points at the offending key.
    let r = app.post_json("/v1/schemas", &one(json!({"key": "1abc", "type": "string"}))).send().await.unwrap();
    let msg = assert_error(r, 400).await;
    assert!(msg.contains("1abc"), "{msg}");
    let r = app.post_json("/v1/schemas", &one(json!({"key": "t", "type": "text"}))).send().await.unwrap();
    let msg = assert_error(r, 400).await;
    assert!(msg.contains("text") || msg.contains("type"), "{msg}");
    // Malformed JSON.
    let r = app
        .client
        .post(app.url("/v1/schemas"))
        .header("x-api-key", &app.api_key)
        .header("content-type", "application/json")
        .body("{\"name\": \"x\", ")
        .send()
        .await
        .unwrap();
    assert_error(r, 400).await;

    assert_eq!(total(&list(&app, "/v1/schemas", &[]).await), 0, "nothing was created");

    // Edge cases that are valid: underscore keys, the same key at different levels, array
    // of scalars, every type.
    app.create_schema(&json!({"name": "ok", "schema": {"fields": [
        {"key": "_", "type": "string"},
        {"key": "A_1", "type": "integer"},
        {"key": "o", "type": "object", "fields": [{"key": "A_1", "type": "string"}]},
        {"key": "arr", "type": "array"},
        {"key": "b", "type": "boolean"},
        {"key": "d", "type": "date"},
        {"key": "dt", "type": "datetime"},
        {"key": "n", "type": "number"}
    ]}}))
    .await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schema_list_parameters() {
    let app = spawn_app().await;
    for (name, desc) in [
        ("mid contracts", "Signed contracts"),
        ("alpha receipts", "Quarterly receipts"),
        ("zeta invoices", "Supplier bills"),
    ] {
        let s = app.create_schema(&json!({"name": name, "description": desc, "schema": fields()})).await;
        // the next one gets a later createdAt
        clock_past(&s["createdAt"]).await;
    }
    let l = list(&app, "/v1/schemas", &[]).await;
    assert_eq!(names(&l), vec!["zeta invoices", "alpha receipts", "mid contracts"], "createdAt desc");
    let l = list(&app, "/v1/schemas", &[("sort_by", "name"), ("sort_order", "asc")]).await;
    assert_eq!(names(&l), vec!["alpha receipts", "mid contracts", "zeta invoices"]);
    let l = list(&app, "/v1/schemas", &[("sort_by", "name"), ("sort_order", "desc")]).await;
    assert_eq!(names(&l), vec!["zeta invoices", "mid contracts", "alpha receipts"]);
    let l = list(&app, "/v1/schemas", &[("sort_by", "updatedAt"), ("sort_order", "asc")]).await;
    assert_eq!(names(&l), vec!["mid contracts", "alpha receipts", "zeta invoices"]);
    // Search: name and description, case-insensitive.
    let l = list(&app, "/v1/schemas", &[("search", "INVOICES")]).await;
    assert_eq!(names(&l), vec!["zeta invoices"]);
    let l = list(&app, "/v1/schemas", &[("search", "quarterly")]).await;
    assert_eq!(names(&l), vec!["alpha receipts"]);
    let l = list(&app, "/v1/schemas", &[("search", "receipts")]).await;
    assert_eq!(names(&l), vec!["alpha receipts"]);
    assert_eq!(total(&list(&app, "/v1/schemas", &[("search", "nothing-like-this")]).await), 0);
    // Paging.
    let l = list(&app, "/v1/schemas", &[("limit", "2"), ("page", "2")]).await;
    assert_eq!(l["meta"], json!({"page": 2, "limit": 2, "total": 3, "totalPages": 2}));
    assert_eq!(names(&l), vec!["mid contracts"]);
    let l = list(&app, "/v1/schemas", &[("limit", "2"), ("page", "3")]).await;
    assert_eq!(l["meta"], json!({"page": 3, "limit": 2, "total": 3, "totalPages": 2}));
    assert_eq!(l["data"], json!([]));
    // fields.
    let l = list(&app, "/v1/schemas", &[("fields", "id,name")]).await;
    for item in l["data"].as_array().unwrap() {
        assert_eq!(sorted_keys(item), vec!["id", "name"], "{item}");
    }
    // created_after / created_before, inclusive.
    let asc = list(&app, "/v1/schemas", &[("sort_order", "asc")]).await;
    let mid_created = asc["data"][1]["createdAt"].as_str().unwrap().to_string();
    let l = list(&app, "/v1/schemas", &[("created_after", &mid_created), ("created_before", &mid_created)]).await;
    assert_eq!(names(&l), vec!["alpha receipts"]);
    // Bad parameters name themselves.
    app.assert_params_refused(
        "/v1/schemas",
        &[
            ("sort_by", "status"),
            ("sort_by", "start_date"),
            ("sort_by", "bogus"),
            ("sort_order", "upward"),
            ("limit", "101"),
            ("limit", "0"),
            ("page", "0"),
            ("fields", "id,bogus"),
            ("include", "bogus"),
            ("created_after", "soon"),
            ("created_before", "later"),
        ],
    )
    .await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schema_patch_changes_what_is_sent_only() {
    let app = spawn_app().await;
    let s = app.create_schema(&schema_body("invoices")).await;
    let id = s["id"].as_str().unwrap();
    // the change gets a later updatedAt
    clock_past(&s["updatedAt"]).await;

    let (status, p) = send(app.patch_json(&format!("/v1/schemas/{id}"), &json!({"name": "bills"}))).await;
    assert_eq!(status, 200, "{p}");
    assert_eq!(sorted_keys(&p), SCHEMA_KEYS);
    assert_eq!(p["id"], s["id"]);
    assert_eq!(p["name"], "bills");
    assert_eq!(p["description"], s["description"], "description untouched");
    assert_eq!(p["schema"], s["schema"], "definition untouched");
    assert_eq!(p["createdAt"], s["createdAt"]);
    assert!(assert_time(&p["updatedAt"], "updatedAt") > assert_time(&s["updatedAt"], "updatedAt"), "{p}");
    let (_, got) = send(app.get(&format!("/v1/schemas/{id}"))).await;
    assert_eq!(got, p, "GET sees the change");

    let new_def = json!({"fields": [{"key": "only", "type": "string"}]});
    let (status, p) =
        send(app.patch_json(&format!("/v1/schemas/{id}"), &json!({"schema": new_def, "description": "new"}))).await;
    assert_eq!(status, 200, "{p}");
    assert_eq!(p["schema"], new_def);
    assert_eq!(p["description"], "new");
    assert_eq!(p["name"], "bills");

    // Invalid changes are refused and change nothing.
    for body in [
        json!({"schema": {"fields": [{"key": "1bad", "type": "string"}]}}),
        json!({"schema": {"fields": []}}),
        json!({"schema": {"fields": [{"key": "o", "type": "object"}]}}),
        json!({"schema": "nope"}),
    ] {
        let r = app.patch_json(&format!("/v1/schemas/{id}"), &body).send().await.unwrap();
        assert_eq!(r.status(), 400, "{body}");
        assert_error(r, 400).await;
    }
    let (_, got) = send(app.get(&format!("/v1/schemas/{id}"))).await;
    assert_eq!(got["schema"], new_def);
    assert_eq!(got["name"], "bills");

    assert_error(
        app.patch_json(&format!("/v1/schemas/{UNKNOWN_ID}"), &json!({"name": "x"})).send().await.unwrap(),
        404,
    )
    .await;
    assert_error(app.patch_json("/v1/schemas/xyz", &json!({"name": "x"})).send().await.unwrap(), 400).await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schema_delete_is_409_while_results_or_exports_refer_to_it() {
    let app = spawn_app().await;
    // Empty schema: deleted.
    let empty = new_schema(&app, "empty").await;
    let (status, v) = send(app.delete(&format!("/v1/schemas/{empty}"))).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(sorted_keys(&v), vec!["message"]);
    assert!(v["message"].as_str().is_some_and(|m| !m.is_empty()));
    assert_error(app.get(&format!("/v1/schemas/{empty}")).send().await.unwrap(), 404).await;
    assert_error(app.delete(&format!("/v1/schemas/{empty}")).send().await.unwrap(), 404).await;

    // With a result: 409 until the result is gone.
    let with_result = new_schema(&app, "with result").await;
    let r = post_result(&app, &json!({"schema_id": with_result, "extraction": {"total": 1}})).await;
    let msg = assert_error(app.delete(&format!("/v1/schemas/{with_result}")).send().await.unwrap(), 409).await;
    assert!(msg.to_lowercase().contains("result"), "the message says what refers to it: {msg}");
    let (status, _) = send(app.get(&format!("/v1/schemas/{with_result}"))).await;
    assert_eq!(status, 200, "still there");
    let (status, _) = send(app.delete(&format!("/v1/results/{}", r["id"].as_str().unwrap()))).await;
    assert_eq!(status, 200);
    let (status, v) = send(app.delete(&format!("/v1/schemas/{with_result}"))).await;
    assert_eq!(status, 200, "{v}");

    // With an export (and no results): 409 until the export is gone.
    let with_export = new_schema(&app, "with export").await;
    let e = app
        .export_and_wait(&json!({"schema_id": with_export, "start_date": "2024-01-01", "end_date": "2024-01-31"}))
        .await;
    assert_eq!(e["status"], "COMPLETED", "{e}");
    assert_eq!(e["row_count"].as_u64(), Some(0), "{e}");
    let msg = assert_error(app.delete(&format!("/v1/schemas/{with_export}")).send().await.unwrap(), 409).await;
    assert!(msg.to_lowercase().contains("export"), "{msg}");
    let (status, _) = send(app.delete(&format!("/v1/exports/{}", e["id"].as_str().unwrap()))).await;
    assert_eq!(status, 200);
    let (status, v) = send(app.delete(&format!("/v1/schemas/{with_export}"))).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(total(&list(&app, "/v1/schemas", &[]).await), 0);
    assert_error(app.delete("/v1/schemas/not-a-uuid").send().await.unwrap(), 400).await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schema_patch_keeps_completed_exports_downloadable() {
    let app = spawn_app().await;
    let sid = new_schema(&app, "invoices").await;
    let nd = (1..=3)
        .map(|i| {
            json!({"file_name": format!("f{i}.pdf"), "createdAt": format!("2024-01-0{i}T12:00:00.000Z"),
                   "extraction": {"invoice_number": format!("INV-{i}"), "total": i}})
            .to_string()
        })
        .collect::<Vec<_>>()
        .join("\n");
    assert_eq!(app.upload_ndjson(&sid, nd).await, 3);
    let e = app.export_and_wait(&json!({"schema_id": sid, "start_date": "2024-01-01", "end_date": "2024-01-31"})).await;
    assert_eq!(e["status"], "COMPLETED");
    let eid = e["id"].as_str().unwrap().to_string();
    let url1 = app.download_url(&eid).await;
    let before = reqwest::get(&url1).await.unwrap();
    assert_eq!(before.status(), 200);
    let before = before.bytes().await.unwrap();
    assert!(String::from_utf8_lossy(&before).contains("INV-2"));

    let (status, p) = send(app.patch_json(
        &format!("/v1/schemas/{sid}"),
        &json!({"name": "renamed", "schema": {"fields": [{"key": "something_else", "type": "string"}]}}),
    ))
    .await;
    assert_eq!(status, 200, "{p}");

    let (_, again) = send(app.get(&format!("/v1/exports/{eid}"))).await;
    assert_eq!(again["status"], "COMPLETED", "{again}");
    assert_eq!(again["row_count"], e["row_count"]);
    assert_eq!(again["file_size"], e["file_size"]);
    let url2 = app.download_url(&eid).await;
    for url in [&url1, &url2] {
        let r = reqwest::get(url.as_str()).await.unwrap();
        assert_eq!(r.status(), 200, "{url}");
        assert_eq!(r.bytes().await.unwrap(), before, "the file is unchanged: {url}");
    }
    app.stop().await;
}

/// api.md: "Request parse failures (bad JSON, wrong types, ...) are 400". A number or a
/// boolean where a string belongs is a wrong type, not a string to be made up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn string_members_reject_other_json_types() {
    let app = spawn_app().await;
    let sid = new_schema(&app, "invoices").await;
    let mut failures = Vec::new();
    let mut check = |what: &str, status: u16| {
        if status != 400 {
            failures.push(format!("{what}: {status}"));
        }
    };
    for (what, body) in [
        ("POST /v1/schemas name 7", json!({"name": 7, "schema": fields()})),
        ("POST /v1/schemas name true", json!({"name": true, "schema": fields()})),
        ("POST /v1/schemas description 7", json!({"name": "x", "description": 7, "schema": fields()})),
    ] {
        let r = app.post_json("/v1/schemas", &body).send().await.unwrap();
        check(what, r.status().as_u16());
    }
    for (what, body) in [
        ("PATCH /v1/schemas name 5", json!({"name": 5})),
        ("PATCH /v1/schemas description false", json!({"description": false})),
    ] {
        let r = app.patch_json(&format!("/v1/schemas/{sid}"), &body).send().await.unwrap();
        check(what, r.status().as_u16());
    }
    let r = app
        .post_json("/v1/results", &json!({"schema_id": sid, "extraction": {}, "file_name": 5}))
        .send()
        .await
        .unwrap();
    check("POST /v1/results file_name 5", r.status().as_u16());
    let r = upload_req(&app, &sid, "{\"extraction\": {}, \"file_name\": 5}\n", "application/x-ndjson")
        .send()
        .await
        .unwrap();
    check("NDJSON file_name 5", r.status().as_u16());
    assert!(failures.is_empty(), "wrong types accepted: {failures:?}");
    app.stop().await;
}

// ---------------------------------------------------------------------------------------------
// results

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn result_create_returns_extraction_exactly() {
    let app = spawn_app().await;
    let sid = new_schema(&app, "invoices").await;
    let before = chrono::Utc::now() - chrono::Duration::seconds(2);
    let raw_extraction = r#"{"zeta":1,"alpha":{"y":2,"x":[3,"b",null]},"amount":1250.0,"small":0.1,"pi":3.141592653589793,"big":12345678901234567890,"neg":-7,"text":"Müller \"q\"\nline, =1+1","flag":false,"nothing":null,"empty_obj":{},"empty_arr":[]}"#;
    let extraction: Value = serde_json::from_str(raw_extraction).unwrap();
    let body = json!({"schema_id": sid, "file_name": "scan 01.pdf", "extraction": extraction});
    let r = app.post_json("/v1/results", &body).send().await.unwrap();
    assert_eq!(r.status(), 201);
    let text = r.text().await.unwrap();
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(sorted_keys(&v), RESULT_KEYS, "{v}");
    assert_uuid_v7(&v["id"], "id");
    assert_eq!(v["schema_id"], json!(sid));
    assert_eq!(v["file_name"], "scan 01.pdf");
    assert_eq!(v["status"], "SUCCESS");
    let c = assert_time(&v["createdAt"], "createdAt");
    assert!(c >= before && c <= chrono::Utc::now() + chrono::Duration::seconds(2), "createdAt defaults to now: {v}");
    let u = assert_time(&v["updatedAt"], "updatedAt");
    assert!(u >= c && (u - c).num_milliseconds() < 1000, "updatedAt at creation: {v}");
    assert_eq!(v["extraction"], extraction, "values kept exactly (1250.0 stays a float, big stays an integer)");
    assert!(v["extraction"]["amount"].is_f64(), "{v}");
    assert_eq!(v["extraction"]["big"].as_u64(), Some(12345678901234567890), "{v}");
    // Key order, at both levels.
    let order: Vec<&String> = v["extraction"].as_object().unwrap().keys().collect();
    assert_eq!(
        order,
        ["zeta", "alpha", "amount", "small", "pi", "big", "neg", "text", "flag", "nothing", "empty_obj", "empty_arr"]
            .iter()
            .collect::<Vec<_>>()
    );
    let inner: Vec<&String> = v["extraction"]["alpha"].as_object().unwrap().keys().collect();
    assert_eq!(inner, ["y", "x"].iter().collect::<Vec<_>>());
    let pos = |k: &str| text.find(&format!("\"{k}\"")).unwrap_or_else(|| panic!("{k} in {text}"));
    assert!(pos("zeta") < pos("alpha") && pos("alpha") < pos("amount") && pos("y") < pos("x"), "{text}");
    assert!(text.contains("1250.0"), "1250.0 is kept as written: {text}");

    // GET answers the same, with the extraction.
    let id = v["id"].as_str().unwrap();
    let r = app.get(&format!("/v1/results/{id}")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    let got: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(got, v);
    let order2: Vec<&String> = got["extraction"].as_object().unwrap().keys().collect();
    assert_eq!(order2, order);
    assert!(text.contains("1250.0"), "{text}");

    // file_name is optional.
    let v = post_result(&app, &json!({"schema_id": sid, "extraction": {"a": 1}})).await;
    assert_eq!(sorted_keys(&v), RESULT_KEYS, "{v}");
    assert!(v["file_name"].is_null() || v["file_name"] == "", "{v}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn result_keeps_out_of_range_numbers_exactly() {
    let app = spawn_app().await;
    let sid = new_schema(&app, "numbers").await;
    let raw = format!(
        r#"{{"schema_id":"{sid}","extraction":{{"huge":123456789012345678901234567890,"precise":0.1000000000000000055511151231257827,"exp":1e3}}}}"#
    );
    let r = app
        .client
        .post(app.url("/v1/results"))
        .header("x-api-key", &app.api_key)
        .header("content-type", "application/json")
        .body(raw)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let id = serde_json::from_str::<Value>(&r.text().await.unwrap()).unwrap()["id"].as_str().unwrap().to_string();
    let text = app.get(&format!("/v1/results/{id}")).send().await.unwrap().text().await.unwrap();
    assert!(text.contains("123456789012345678901234567890"), "a big integer is kept digit for digit: {text}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn result_create_validation() {
    let app = spawn_app().await;
    let sid = new_schema(&app, "invoices").await;
    for (what, body) in [
        ("extraction a list", json!({"schema_id": sid, "extraction": [1, 2]})),
        ("extraction a string", json!({"schema_id": sid, "extraction": "{}"})),
        ("extraction a number", json!({"schema_id": sid, "extraction": 3})),
        ("extraction null", json!({"schema_id": sid, "extraction": null})),
        ("extraction missing", json!({"schema_id": sid})),
        ("schema_id missing", json!({"extraction": {}})),
        ("schema_id not a UUID", json!({"schema_id": "abc", "extraction": {}})),
        ("schema_id a number", json!({"schema_id": 1, "extraction": {}})),
        ("createdAt words", json!({"schema_id": sid, "extraction": {}, "createdAt": "last week"})),
        ("createdAt a number", json!({"schema_id": sid, "extraction": {}, "createdAt": 1700000000})),
        ("body a list", json!([{"schema_id": sid, "extraction": {}}])),
    ] {
        let r = app.post_json("/v1/results", &body).send().await.unwrap();
        assert_eq!(r.status(), 400, "{what}: {body}");
        assert_error(r, 400).await;
    }
    let r = app.post_json("/v1/results", &json!({"schema_id": sid, "extraction": [1]})).send().await.unwrap();
    let msg = assert_error(r, 400).await;
    assert!(msg.contains("extraction"), "{msg}");
    let r = app
        .client
        .post(app.url("/v1/results"))
        .header("x-api-key", &app.api_key)
        .header("content-type", "application/json")
        .body("{\"schema_id\":")
        .send()
        .await
        .unwrap();
    assert_error(r, 400).await;
    let r = app.post_json("/v1/results", &json!({"schema_id": UNKNOWN_ID, "extraction": {}})).send().await.unwrap();
    let msg = assert_error(r, 404).await;
    assert!(msg.to_lowercase().contains("schema"), "{msg}");
    assert_eq!(total(&list(&app, "/v1/results", &[]).await), 0, "nothing was stored");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn result_created_at_backfill_is_honoured() {
    let app = spawn_app().await;
    let sid = new_schema(&app, "invoices").await;
    let v = post_result(
        &app,
        &json!({"schema_id": sid, "extraction": {"n": 1}, "createdAt": "2023-05-06T07:08:09.123Z", "file_name": "old.pdf"}),
    )
    .await;
    assert_eq!(v["createdAt"], "2023-05-06T07:08:09.123Z", "{v}");
    let v2 =
        post_result(&app, &json!({"schema_id": sid, "extraction": {"n": 2}, "createdAt": "2023-05-06T09:08:09+02:00"}))
            .await;
    assert_eq!(v2["createdAt"], "2023-05-06T07:08:09.000Z", "normalised to UTC: {v2}");
    let (_, got) = send(app.get(&format!("/v1/results/{}", v["id"].as_str().unwrap()))).await;
    assert_eq!(got["createdAt"], "2023-05-06T07:08:09.123Z");
    // The backfilled time is what filters and exports go by.
    let l = list(
        &app,
        "/v1/results",
        &[("created_after", "2023-05-06T07:08:09.123Z"), ("created_before", "2023-05-06T07:08:09.123Z")],
    )
    .await;
    assert_eq!(ids(&l), vec![v["id"].as_str().unwrap().to_string()]);
    let e = app
        .export_and_wait(&json!({"schema_id": sid, "start_date": "2023-05-06", "end_date": "2023-05-06T07:08:09.122Z"}))
        .await;
    assert_eq!(e["row_count"].as_u64(), Some(1), "only the 07:08:09.000 result: {e}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ndjson_upload_is_counted_and_all_or_nothing() {
    let app = spawn_app().await;
    let sid = new_schema(&app, "invoices").await;
    let line = |i: u32| {
        json!({"file_name": format!("doc-{i}.pdf"), "createdAt": "2024-03-01T00:00:00.000Z", "extraction": {"n": i}})
            .to_string()
    };
    let good = format!("{}\n{}\n{}\n", line(1), line(2), line(3));
    let r = upload_req(&app, &sid, &good, "application/x-ndjson").send().await.unwrap();
    assert_eq!(r.status(), 201);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v, json!({"inserted": 3}));
    assert_eq!(total(&list(&app, "/v1/results", &[]).await), 3);
    let l = list(&app, "/v1/results", &[("include_extraction", "true"), ("sort_order", "asc")]).await;
    for item in l["data"].as_array().unwrap() {
        assert_eq!(item["schema_id"], json!(sid));
        assert_eq!(item["createdAt"], "2024-03-01T00:00:00.000Z");
        assert_eq!(item["status"], "SUCCESS");
        let n = item["extraction"]["n"].as_u64().unwrap();
        assert_eq!(item["file_name"], format!("doc-{n}.pdf"));
    }

    // A bad line anywhere: 400 naming it, and nothing from that body is stored.
    let bad_cases: Vec<(u32, String)> = vec![
        (3, format!("{}\n{}\n{{not json\n{}\n", line(4), line(5), line(6))),
        (2, format!("{}\n{}\n{}\n", line(4), json!({"extraction": [1, 2]}), line(6))),
        (1, format!("{}\n{}\n", json!({"file_name": "x"}), line(5))),
        (2, format!("{}\n{}\n", line(4), json!({"extraction": {}, "createdAt": "whenever"}))),
        (4, format!("{}\n{}\n{}\n[1]\n", line(4), line(5), line(6))),
        (2, format!("{}\n\"text\"\n", line(4))),
    ];
    for (n, body) in &bad_cases {
        let r = upload_req(&app, &sid, body, "application/x-ndjson").send().await.unwrap();
        assert_eq!(r.status(), 400, "bad line {n}: {body}");
        let msg = assert_error(r, 400).await;
        assert!(names_line(&msg, *n), "the message names line {n}: {msg}");
        assert_eq!(total(&list(&app, "/v1/results", &[]).await), 3, "nothing inserted after a bad line {n}");
    }

    // Wrong content type: a JSON error, nothing inserted.
    for ct in ["text/plain", "application/xml"] {
        let r = upload_req(&app, &sid, &good, ct).send().await.unwrap();
        let status = r.status().as_u16();
        assert!(status == 415 || status == 400, "content type {ct}: {status}");
        assert_error(r, status).await;
    }
    assert_eq!(total(&list(&app, "/v1/results", &[]).await), 3);

    // Unknown schema; malformed schema id.
    assert_error(upload_req(&app, UNKNOWN_ID, &good, "application/x-ndjson").send().await.unwrap(), 404).await;
    assert_error(upload_req(&app, "nope", &good, "application/x-ndjson").send().await.unwrap(), 400).await;
    assert_eq!(total(&list(&app, "/v1/results", &[]).await), 3);

    // No trailing newline, CRLF line ends: still whole lines.
    let crlf = format!("{}\r\n{}", line(7), line(8));
    assert_eq!(app.upload_ndjson(&sid, crlf).await, 2);
    assert_eq!(total(&list(&app, "/v1/results", &[]).await), 5);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn results_list_filters_and_extraction_flag() {
    let app = spawn_app().await;
    let a = new_schema(&app, "Alpha Schema").await;
    let b = new_schema(&app, "Beta Schema").await;
    let nd_a = [
        json!({"file_name": "Invoice-March.PDF", "createdAt": "2024-03-01T10:00:00.000Z", "extraction": {"k": "a1"}}),
        json!({"file_name": "receipt_april.png", "createdAt": "2024-04-01T10:00:00.000Z", "extraction": {"k": "a2"}}),
        json!({"createdAt": "2024-05-01T10:00:00.000Z", "extraction": {"k": "a3"}}),
    ]
    .iter()
    .map(|l| l.to_string() + "\n")
    .collect::<String>();
    assert_eq!(app.upload_ndjson(&a, nd_a).await, 3);
    let nd_b =
        json!({"file_name": "invoice-june.pdf", "createdAt": "2024-06-01T10:00:00.000Z", "extraction": {"k": "b1"}})
            .to_string();
    assert_eq!(app.upload_ndjson(&b, nd_b).await, 1);

    // Default: every result, newest first, no extraction.
    let l = list(&app, "/v1/results", &[]).await;
    assert_eq!(l["meta"], json!({"page": 1, "limit": 20, "total": 4, "totalPages": 1}));
    let created: Vec<&str> = l["data"].as_array().unwrap().iter().map(|e| e["createdAt"].as_str().unwrap()).collect();
    assert_eq!(
        created,
        vec![
            "2024-06-01T10:00:00.000Z",
            "2024-05-01T10:00:00.000Z",
            "2024-04-01T10:00:00.000Z",
            "2024-03-01T10:00:00.000Z"
        ]
    );
    let without: Vec<&str> = RESULT_KEYS.iter().copied().filter(|k| *k != "extraction").collect();
    for item in l["data"].as_array().unwrap() {
        assert_eq!(sorted_keys(item), without, "no extraction by default: {item}");
    }
    let l = list(&app, "/v1/results", &[("include_extraction", "false")]).await;
    assert!(l["data"][0].get("extraction").is_none());
    // With extraction.
    let l = list(&app, "/v1/results", &[("include_extraction", "true"), ("sort_order", "asc")]).await;
    let ks: Vec<&str> = l["data"].as_array().unwrap().iter().map(|e| e["extraction"]["k"].as_str().unwrap()).collect();
    assert_eq!(ks, vec!["a1", "a2", "a3", "b1"]);
    for item in l["data"].as_array().unwrap() {
        assert_eq!(sorted_keys(item), RESULT_KEYS);
    }
    // schema_id filter.
    let l = list(&app, "/v1/results", &[("schema_id", &a)]).await;
    assert_eq!(total(&l), 3);
    assert!(l["data"].as_array().unwrap().iter().all(|e| e["schema_id"] == json!(a)));
    let l = list(&app, "/v1/results", &[("schema_id", &b)]).await;
    assert_eq!(total(&l), 1);
    assert_eq!(total(&list(&app, "/v1/results", &[("schema_id", UNKNOWN_ID)]).await), 0);
    // search on file name, case-insensitive.
    let l = list(&app, "/v1/results", &[("search", "INVOICE")]).await;
    let found: HashSet<String> =
        l["data"].as_array().unwrap().iter().map(|e| e["file_name"].as_str().unwrap().to_string()).collect();
    assert_eq!(found, ["Invoice-March.PDF", "invoice-june.pdf"].iter().map(|s| s.to_string()).collect());
    let l = list(&app, "/v1/results", &[("search", ".png")]).await;
    assert_eq!(total(&l), 1);
    let l = list(&app, "/v1/results", &[("search", "invoice"), ("schema_id", &a)]).await;
    assert_eq!(total(&l), 1, "filters combine");
    // The date range.
    let l = list(
        &app,
        "/v1/results",
        &[("created_after", "2024-04-01T10:00:00.000Z"), ("created_before", "2024-05-01T10:00:00.000Z")],
    )
    .await;
    assert_eq!(total(&l), 2, "inclusive on both ends");
    // include=schema, fields.
    let l = list(&app, "/v1/results", &[("include", "schema")]).await;
    for item in l["data"].as_array().unwrap() {
        let s = &item["schema"];
        assert_eq!(sorted_keys(s), vec!["id", "name"], "{item}");
        assert_eq!(s["id"], item["schema_id"]);
        let want = if item["schema_id"] == json!(a) { "Alpha Schema" } else { "Beta Schema" };
        assert_eq!(s["name"], want);
    }
    let l = list(&app, "/v1/results", &[("fields", "id,file_name")]).await;
    for item in l["data"].as_array().unwrap() {
        assert_eq!(sorted_keys(item), vec!["file_name", "id"], "{item}");
    }
    // Paging.
    let l = list(&app, "/v1/results", &[("limit", "3"), ("page", "2")]).await;
    assert_eq!(l["meta"], json!({"page": 2, "limit": 3, "total": 4, "totalPages": 2}));
    assert_eq!(ids(&l).len(), 1);
    // Bad parameters.
    app.assert_params_refused(
        "/v1/results",
        &[
            ("schema_id", "not-a-uuid"),
            ("include_extraction", "maybe"),
            ("sort_by", "status"),
            ("sort_by", "name"),
            ("limit", "1000"),
            ("page", "x"),
            ("fields", "id,secret"),
            ("include", "team"),
            ("created_after", "2024-99-01"),
        ],
    )
    .await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn result_get_and_delete() {
    let app = spawn_app().await;
    let sid = new_schema(&app, "invoices").await;
    let keep = post_result(&app, &json!({"schema_id": sid, "extraction": {"keep": true}})).await;
    let v = post_result(&app, &json!({"schema_id": sid, "file_name": "x.pdf", "extraction": {"b": 2, "a": [1]}})).await;
    let id = v["id"].as_str().unwrap();
    let (status, got) = send(app.get(&format!("/v1/results/{id}"))).await;
    assert_eq!(status, 200);
    assert_eq!(got, v);
    assert_eq!(got["extraction"], json!({"b": 2, "a": [1]}));

    let (status, d) = send(app.delete(&format!("/v1/results/{id}"))).await;
    assert_eq!(status, 200, "{d}");
    assert_eq!(sorted_keys(&d), vec!["message"]);
    assert!(d["message"].as_str().is_some_and(|m| !m.is_empty()));
    assert_error(app.get(&format!("/v1/results/{id}")).send().await.unwrap(), 404).await;
    assert_error(app.delete(&format!("/v1/results/{id}")).send().await.unwrap(), 404).await;
    let l = list(&app, "/v1/results", &[]).await;
    assert_eq!(ids(&l), vec![keep["id"].as_str().unwrap().to_string()]);
    assert_error(app.get(&format!("/v1/results/{UNKNOWN_ID}")).send().await.unwrap(), 404).await;
    assert_error(app.get("/v1/results/123").send().await.unwrap(), 400).await;
    assert_error(app.delete("/v1/results/123").send().await.unwrap(), 400).await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ndjson_body_over_the_limit_is_413() {
    let tmp = tempfile::tempdir().unwrap();
    let app = helpers::spawn_app_with(tmp.path().to_path_buf(), |c| c.limits.max_body = 4096).await;
    let sid = new_schema(&app, "invoices").await;
    let line = json!({"extraction": {"text": "x".repeat(100)}}).to_string() + "\n";
    let big = line.repeat(100);
    assert!(big.len() > 4096);
    let r = upload_req(&app, &sid, &big, "application/x-ndjson").send().await.unwrap();
    assert_error(r, 413).await;
    assert_eq!(total(&list(&app, "/v1/results", &[]).await), 0, "nothing inserted");
    // Under the limit is fine.
    assert_eq!(app.upload_ndjson(&sid, line.repeat(3)).await, 3);
    app.stop().await;
}
