//! The first hour, through the API: a body sent with the wrong `Content-Type` gets a 415
//! that says what to send, and an unknown value of an enum query parameter (`sort_by`,
//! `sort_order`, `status`) gets a 400 that lists the allowed ones, each list's own.

use serde_json::{json, Value};

use crate::helpers::{self, assert_error, spawn_app};

async fn total(app: &helpers::TestApp, path: &str) -> u64 {
    let v: Value = app.get(path).send().await.unwrap().json().await.unwrap();
    v["meta"]["total"].as_u64().unwrap_or_else(|| panic!("{path}: {v}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_415_says_which_content_type_to_send_and_nothing_is_stored() {
    let app = spawn_app().await;
    let schema = app.create_schema(&helpers::invoice_schema()).await;
    let sid = schema["id"].as_str().unwrap().to_string();
    let body = json!({"name": "x", "fields": [{"key": "a", "type": "string"}]}).to_string();
    let json_routes = [
        (reqwest::Method::POST, "/v1/schemas".to_string()),
        (reqwest::Method::PATCH, format!("/v1/schemas/{sid}")),
        (reqwest::Method::POST, "/v1/exports".to_string()),
        (reqwest::Method::POST, "/v1/results".to_string()),
    ];
    for (method, path) in &json_routes {
        // curl -d sends a form type; a client may send none at all
        for sent in [Some("application/x-www-form-urlencoded"), Some("text/plain"), None] {
            let mut rb = app.client.request(method.clone(), app.url(path)).header("x-api-key", &app.api_key);
            if let Some(ct) = sent {
                rb = rb.header("content-type", ct);
            }
            let msg = assert_error(rb.body(body.clone()).send().await.unwrap(), 415).await;
            assert!(msg.contains("`Content-Type: application/json`"), "{method} {path} ({sent:?}): {msg}");
            match sent {
                Some(ct) => assert!(msg.contains(ct), "the message names what was sent, {ct}: {msg}"),
                None => assert!(msg.contains("no Content-Type header"), "{msg}"),
            }
        }
    }
    // the bulk upload wants NDJSON, and says so to a client that sends it as JSON
    let line = json!({"extraction": {"invoice_number": "A-1"}}).to_string();
    let upload = format!("/v1/schemas/{sid}/results");
    for sent in ["application/json", "text/plain"] {
        let r = app.client.post(app.url(&upload)).header("x-api-key", &app.api_key).header("content-type", sent);
        let msg = assert_error(r.body(line.clone()).send().await.unwrap(), 415).await;
        assert!(msg.contains("`Content-Type: application/x-ndjson`") && msg.contains(sent), "{sent}: {msg}");
    }
    // nothing was stored or changed
    assert_eq!(total(&app, "/v1/schemas").await, 1);
    assert_eq!(total(&app, "/v1/exports").await, 0);
    assert_eq!(total(&app, "/v1/results").await, 0);
    let now: Value = app.get(&format!("/v1/schemas/{sid}")).send().await.unwrap().json().await.unwrap();
    assert_eq!(now, schema);
    // and the type the message names is accepted
    assert_eq!(app.upload_ndjson(&sid, format!("{line}\n")).await, 1);
    app.stop().await;
}

/// The allowed values of each enum query parameter of `GET path`, from the served OpenAPI
/// document.
fn enum_params(doc: &Value, path: &str) -> Vec<(String, Vec<String>)> {
    let params = doc["paths"][path]["get"]["parameters"].as_array().unwrap_or_else(|| panic!("{path} has parameters"));
    params
        .iter()
        .filter_map(|p| {
            let schema = &p["schema"];
            let schema = match schema["$ref"].as_str() {
                Some(r) => &doc["components"]["schemas"][r.trim_start_matches("#/components/schemas/")],
                None => schema,
            };
            let values = schema["enum"].as_array()?.iter().map(|v| v.as_str().unwrap().to_string()).collect();
            Some((p["name"].as_str().unwrap().to_string(), values))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_sort_by_lists_the_allowed_values_of_that_list() {
    let app = spawn_app().await;
    let doc: Value = app.client.get(app.url("/openapi.json")).send().await.unwrap().json().await.unwrap();
    let mut sort_bys = Vec::new();
    for path in ["/v1/exports", "/v1/schemas", "/v1/results"] {
        let params = enum_params(&doc, path);
        let names: Vec<&str> = params.iter().map(|(n, _)| n.as_str()).collect();
        assert!(names.contains(&"sort_by") && names.contains(&"sort_order"), "{path}: {names:?}");
        for (name, allowed) in &params {
            let r = app.get(path).query(&[(name.as_str(), "nope")]).send().await.unwrap();
            let msg = assert_error(r, 400).await;
            assert_eq!(
                msg,
                format!("query parameter `{name}`: 'nope' is not one of the allowed values: {}", allowed.join(", ")),
                "{path}?{name}=nope"
            );
            // every value the message lists is taken
            for value in allowed {
                let r = app.get(path).query(&[(name.as_str(), value.as_str())]).send().await.unwrap();
                assert_eq!(r.status(), 200, "{path}?{name}={value}");
            }
            if name == "sort_by" {
                sort_bys.push(allowed.clone());
            }
        }
    }
    // each list names its own columns (schemas sort by name, exports by status, ...)
    assert_eq!(sort_bys.len(), 3);
    assert!(sort_bys[0] != sort_bys[1] && sort_bys[1] != sort_bys[2], "{sort_bys:?}");
    app.stop().await;
}
