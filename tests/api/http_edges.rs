//! HTTP details a generic client relies on: `Allow` on 405, empty query values read as
//! "not set", and request bodies checked against the documented schema.

use crate::helpers;
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn method_not_allowed_lists_the_allowed_methods() {
    let app = helpers::spawn_app().await;
    let r = app.client.put(app.url("/v1/exports")).header("x-api-key", &app.api_key).send().await.unwrap();
    let allow = r.headers().get("allow").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
    helpers::assert_error(r, 405).await;
    let mut methods: Vec<&str> = allow.split(", ").collect();
    methods.sort();
    assert_eq!(methods, vec!["GET", "HEAD", "POST"]);

    let id = "019760a0-0050-7000-8000-000000000050";
    let r =
        app.client.post(app.url(&format!("/v1/exports/{id}"))).header("x-api-key", &app.api_key).send().await.unwrap();
    let allow = r.headers().get("allow").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
    helpers::assert_error(r, 405).await;
    let mut methods: Vec<&str> = allow.split(", ").collect();
    methods.sort();
    assert_eq!(methods, vec!["DELETE", "GET", "HEAD"]);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_query_values_mean_not_set() {
    let app = helpers::spawn_app().await;
    for path in [
        "/v1/exports?search=&created_after=&created_before=&fields=&include=",
        "/v1/schemas?search=&created_after=&created_before=&fields=&include=",
        "/v1/results?search=&created_after=&created_before=&fields=&include=&schema_id=",
    ] {
        let r = app.get(path).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["meta"]["page"], 1, "{path}");
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_are_checked_against_their_schema() {
    let app = helpers::spawn_app().await;
    let schema = app.create_schema(&json!({"name": "S", "schema": {"fields": [{"key": "a", "type": "string"}]}})).await;
    let sid = schema["id"].as_str().unwrap();
    let cases = [
        ("/v1/results", json!({"schema_id": sid, "extraction": null})),
        ("/v1/results", json!({"schema_id": sid, "extraction": [1, 2]})),
        ("/v1/results", json!({"schema_id": "", "extraction": {}})),
        ("/v1/exports", json!({"schema_id": sid, "start_date": "", "end_date": "2024-01-01"})),
        (
            "/v1/exports",
            json!({"schema_id": sid, "start_date": "2024-01-01", "end_date": "2024-01-02", "options": {"delimiter": ""}}),
        ),
        (
            "/v1/exports",
            json!({"schema_id": sid, "start_date": "2024-01-01", "end_date": "2024-01-02", "expand_array": ""}),
        ),
        ("/v1/schemas", json!({"name": "", "schema": {"fields": [{"key": "a", "type": "string"}]}})),
        ("/v1/schemas", json!({"name": "x", "schema": {"fields": []}})),
    ];
    for (path, body) in cases {
        let r = app.post_json(path, &body).send().await.unwrap();
        let msg = helpers::assert_error(r, 400).await;
        assert!(!msg.is_empty(), "{path} {body}");
    }
    let r = app.patch_json(&format!("/v1/schemas/{sid}"), &json!({"name": ""})).send().await.unwrap();
    helpers::assert_error(r, 400).await;
    // nothing was created
    let v: Value = app.get("/v1/results").send().await.unwrap().json().await.unwrap();
    assert_eq!(v["meta"]["total"], 0);
    let v: Value = app.get("/v1/exports").send().await.unwrap().json().await.unwrap();
    assert_eq!(v["meta"]["total"], 0);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_bodies_are_explained_by_member() {
    let app = helpers::spawn_app().await;
    let sid = "019760a0-0001-7000-8000-000000000001";
    let cases = [
        ("/v1/exports", json!({"start_date": "2024-01-01", "end_date": "2024-01-02"}), "schema_id is required"),
        (
            "/v1/exports",
            json!({"schema_id": "x", "start_date": "2024-01-01", "end_date": "2024-01-02"}),
            "schema_id must be a UUID",
        ),
        (
            "/v1/exports",
            json!({"schema_id": sid, "start_date": 5, "end_date": "2024-01-02"}),
            "start_date must be a string",
        ),
        (
            "/v1/exports",
            json!({"schema_id": sid, "start_date": "2024-01-01", "end_date": "2024-01-02", "options": {"bom": "yes"}}),
            "options.bom must be a boolean",
        ),
        (
            "/v1/exports",
            json!({"schema_id": sid, "start_date": "2024-01-01", "end_date": "2024-01-02", "options": {"header": "nope"}}),
            "options.header must be one of",
        ),
        (
            "/v1/schemas",
            json!({"name": "x", "schema": {"fields": [{"key": "a", "type": "text"}]}}),
            "schema.fields[0].type must be one of",
        ),
        (
            "/v1/schemas",
            json!({"name": "x", "schema": {"fields": [{"key": "a", "type": "string", "label": 5}]}}),
            "schema.fields[0].label must be a string",
        ),
        (
            "/v1/schemas",
            json!({"name": "", "schema": {"fields": [{"key": "a", "type": "string"}]}}),
            "name must be at least 1",
        ),
        (
            "/v1/exports",
            json!({"schema_id": sid, "start_date": "2024-01-01", "end_date": "2024-01-02", "options": {"foo": 1}}),
            "options: unknown member \"foo\"; allowed: delimiter, bom, header, formula_guard, gzip",
        ),
        (
            // the top level takes unknown members; the options do not: the message names the right one
            "/v1/exports",
            json!({"schema_id": sid, "start_date": "2024-01-01", "end_date": "2024-01-02", "x": 1, "options": {"bar": 2}}),
            "options: unknown member \"bar\"",
        ),
        ("/v1/schemas", json!([1]), "the request body must be a JSON object"),
        ("/v1/results", json!({"schema_id": sid, "extraction": "text"}), "extraction must be a JSON object"),
    ];
    for (path, body, want) in cases {
        let r = app.post_json(path, &body).send().await.unwrap();
        let msg = helpers::assert_error(r, 400).await;
        assert!(msg.contains(want), "{path} {body}: {msg}");
        assert!(!msg.contains("occurred while parsing"), "{msg}");
    }
    let r = app.get("/v1/exports?limit=500").send().await.unwrap();
    let msg = helpers::assert_error(r, 400).await;
    assert!(msg.contains("limit") && msg.contains("100"), "{msg}");
    for (query, want) in [
        ("/v1/exports?limit=0", "query parameter `limit`: must be at least 1"),
        ("/v1/schemas?limit=abc", "query parameter `limit`: not a whole number"),
        ("/v1/results?page=4294967296", "query parameter `page`: must be at most 4294967295"),
        ("/v1/exports?sort_by=nope", "query parameter `sort_by`: 'nope' is not one of the allowed values: createdAt, updatedAt, status, start_date, end_date"),
        ("/v1/results?include_extraction=maybe", "query parameter `include_extraction`: must be true or false"),
    ] {
        let msg = helpers::assert_error(app.get(query).send().await.unwrap(), 400).await;
        assert_eq!(msg.trim_end_matches(" (see /docs)"), want, "{query}");
    }
    let r = app.get("/v1/exports/not-a-uuid").send().await.unwrap();
    let msg = helpers::assert_error(r, 400).await;
    assert!(msg.contains("UUID"), "{msg}");
    app.stop().await;
}
