//! Black-box tests of what surrounds every route: API keys, team isolation, the JSON error
//! shape for routing and parse failures, and the health, OpenAPI and docs endpoints.

use crate::helpers::{assert_error, send, spawn_app, TestApp};
use reqwest::Method;
use serde_json::{json, Value};

const UNKNOWN_ID: &str = "019760a0-0001-7000-8000-000000000001";

// ---------------------------------------------------------------------------------------------
// helpers

/// The JSON error shape, with `error` the status's reason phrase; returns the message.
async fn assert_error_reason(resp: reqwest::Response, status: u16, what: &str) -> String {
    assert_eq!(resp.status().as_u16(), status, "{what}");
    let ct = resp.headers().get("content-type").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
    assert!(ct.starts_with("application/json"), "{what}: content-type {ct}");
    let text = resp.text().await.unwrap();
    let v: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{what}: not JSON ({e}): {text}"));
    assert_eq!(v["statusCode"].as_u64(), Some(status as u64), "{what}: {v}");
    let reason = reqwest::StatusCode::from_u16(status).unwrap().canonical_reason().unwrap();
    assert_eq!(v["error"], reason, "{what}: {v}");
    let msg = v["message"].as_str().unwrap_or_else(|| panic!("{what}: message: {v}")).to_string();
    assert!(!msg.is_empty(), "{what}: {v}");
    msg
}

fn schema_body(name: &str) -> Value {
    json!({"name": name, "description": "d", "schema": {"fields": [
        {"key": "n", "type": "integer"},
        {"key": "items", "type": "array"}
    ]}})
}

/// The first team's resources: a schema with a result and a COMPLETED export.
struct Fixture {
    app: TestApp,
    schema: String,
    result: String,
    export: String,
}

async fn fixture() -> Fixture {
    let app = spawn_app().await;
    let schema = app.create_schema(&schema_body("first team schema")).await["id"].as_str().unwrap().to_string();
    let (status, r) = send(app.post_json(
        "/v1/results",
        &json!({"schema_id": schema, "extraction": {"n": 1}, "createdAt": "2024-01-10T00:00:00.000Z"}),
    ))
    .await;
    assert_eq!(status, 201, "{r}");
    let result = r["id"].as_str().unwrap().to_string();
    let e =
        app.export_and_wait(&json!({"schema_id": schema, "start_date": "2024-01-01", "end_date": "2024-01-31"})).await;
    assert_eq!(e["status"], "COMPLETED", "{e}");
    let export = e["id"].as_str().unwrap().to_string();
    Fixture { app, schema, result, export }
}

/// Every /v1 route: method, path, JSON body (or NDJSON for the upload).
fn routes(f: &Fixture) -> Vec<(Method, String, Option<Value>, bool)> {
    let (s, r, e) = (&f.schema, &f.result, &f.export);
    let export_body = json!({"schema_id": s, "start_date": "2024-01-01", "end_date": "2024-01-31"});
    vec![
        (Method::GET, "/v1/team".into(), None, false),
        (Method::GET, "/v1/exports".into(), None, false),
        (Method::POST, "/v1/exports".into(), Some(export_body), false),
        (Method::GET, format!("/v1/exports/{e}"), None, false),
        (Method::DELETE, format!("/v1/exports/{e}"), None, false),
        (Method::GET, format!("/v1/exports/{e}/download"), None, false),
        (Method::GET, "/v1/schemas".into(), None, false),
        (Method::POST, "/v1/schemas".into(), Some(schema_body("intruder")), false),
        (Method::GET, format!("/v1/schemas/{s}"), None, false),
        (Method::PATCH, format!("/v1/schemas/{s}"), Some(json!({"name": "hijacked"})), false),
        (Method::DELETE, format!("/v1/schemas/{s}"), None, false),
        (Method::POST, format!("/v1/schemas/{s}/results"), None, true),
        (Method::GET, "/v1/results".into(), None, false),
        (Method::POST, "/v1/results".into(), Some(json!({"schema_id": s, "extraction": {"n": 2}})), false),
        (Method::GET, format!("/v1/results/{r}"), None, false),
        (Method::DELETE, format!("/v1/results/{r}"), None, false),
    ]
}

fn request(app: &TestApp, method: &Method, path: &str, body: &Option<Value>, ndjson: bool) -> reqwest::RequestBuilder {
    let mut rb = app.client.request(method.clone(), app.url(path));
    if let Some(b) = body {
        rb = rb.json(b);
    }
    if ndjson {
        rb = rb.header("content-type", "application/x-ndjson").body("{\"extraction\": {\"n\": 3}}\n");
    }
    rb
}

/// Checks that the first team's data is exactly as the fixture left it.
async fn assert_untouched(f: &Fixture) {
    let app = &f.app;
    let (status, s) = send(app.get(&format!("/v1/schemas/{}", f.schema))).await;
    assert_eq!(status, 200, "schema still there: {s}");
    assert_eq!(s["name"], "first team schema", "schema not renamed");
    let (status, _) = send(app.get(&format!("/v1/results/{}", f.result))).await;
    assert_eq!(status, 200, "result still there");
    let (status, _) = send(app.get(&format!("/v1/exports/{}", f.export))).await;
    assert_eq!(status, 200, "export still there");
    for (path, n) in [("/v1/schemas", 1), ("/v1/results", 1), ("/v1/exports", 1)] {
        let (_, l) = send(app.get(path)).await;
        assert_eq!(l["meta"]["total"], n, "{path}: {l}");
    }
}

// ---------------------------------------------------------------------------------------------
// API keys

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_v1_route_needs_a_valid_key() {
    let f = fixture().await;
    let app = &f.app;
    let all = routes(&f);
    assert_eq!(all.len(), 16);
    for (method, path, body, nd) in &all {
        let what = format!("{method} {path}");
        let r = request(app, method, path, body, *nd).send().await.unwrap();
        assert_error_reason(r, 401, &format!("{what} without a key")).await;
        for key in ["wrong-key", "", "test-key-defaulT", "test-key-default-but-longer"] {
            let r = request(app, method, path, body, *nd).header("x-api-key", key).send().await.unwrap();
            assert_error_reason(r, 401, &format!("{what} with key {key:?}")).await;
        }
        let r = request(app, method, path, body, *nd)
            .header("authorization", "Bearer test-key-default")
            .send()
            .await
            .unwrap();
        assert_error_reason(r, 401, &format!("{what} with the key in Authorization")).await;
    }
    // Nothing above changed anything.
    assert_untouched(&f).await;
    // The right key works on the same routes (reads only here).
    for (method, path, _, _) in all.iter().filter(|r| r.0 == Method::GET) {
        let (status, v) = send(request(app, method, path, &None, false).header("x-api-key", &app.api_key)).await;
        assert_eq!(status, 200, "{method} {path}: {v}");
    }
    f.app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_team_sees_nothing_of_the_first() {
    let f = fixture().await;
    let app = &f.app;
    let other = app.new_team_key("other");
    assert!(!other.is_empty() && other != app.api_key);
    let as_other = |method: Method, path: &str| app.client.request(method, app.url(path)).header("x-api-key", &other);

    // Reads, changes and deletes of the first team's ids: 404, exactly as unknown ids.
    let (s, r, e) = (&f.schema, &f.result, &f.export);
    let cases: Vec<(reqwest::RequestBuilder, String, reqwest::RequestBuilder)> = vec![
        (
            as_other(Method::GET, &format!("/v1/schemas/{s}")),
            s.clone(),
            as_other(Method::GET, &format!("/v1/schemas/{UNKNOWN_ID}")),
        ),
        (
            as_other(Method::PATCH, &format!("/v1/schemas/{s}")).json(&json!({"name": "hijacked"})),
            s.clone(),
            as_other(Method::PATCH, &format!("/v1/schemas/{UNKNOWN_ID}")).json(&json!({"name": "hijacked"})),
        ),
        (
            as_other(Method::DELETE, &format!("/v1/schemas/{s}")),
            s.clone(),
            as_other(Method::DELETE, &format!("/v1/schemas/{UNKNOWN_ID}")),
        ),
        (
            as_other(Method::GET, &format!("/v1/results/{r}")),
            r.clone(),
            as_other(Method::GET, &format!("/v1/results/{UNKNOWN_ID}")),
        ),
        (
            as_other(Method::DELETE, &format!("/v1/results/{r}")),
            r.clone(),
            as_other(Method::DELETE, &format!("/v1/results/{UNKNOWN_ID}")),
        ),
        (
            as_other(Method::GET, &format!("/v1/exports/{e}")),
            e.clone(),
            as_other(Method::GET, &format!("/v1/exports/{UNKNOWN_ID}")),
        ),
        (
            as_other(Method::GET, &format!("/v1/exports/{e}/download")),
            e.clone(),
            as_other(Method::GET, &format!("/v1/exports/{UNKNOWN_ID}/download")),
        ),
        (
            as_other(Method::DELETE, &format!("/v1/exports/{e}")),
            e.clone(),
            as_other(Method::DELETE, &format!("/v1/exports/{UNKNOWN_ID}")),
        ),
        (
            as_other(Method::POST, "/v1/exports")
                .json(&json!({"schema_id": s, "start_date": "2024-01-01", "end_date": "2024-01-31"})),
            s.clone(),
            as_other(Method::POST, "/v1/exports")
                .json(&json!({"schema_id": UNKNOWN_ID, "start_date": "2024-01-01", "end_date": "2024-01-31"})),
        ),
        (
            as_other(Method::POST, "/v1/results").json(&json!({"schema_id": s, "extraction": {"n": 9}})),
            s.clone(),
            as_other(Method::POST, "/v1/results").json(&json!({"schema_id": UNKNOWN_ID, "extraction": {"n": 9}})),
        ),
        (
            as_other(Method::POST, &format!("/v1/schemas/{s}/results"))
                .header("content-type", "application/x-ndjson")
                .body("{\"extraction\": {\"n\": 9}}\n"),
            s.clone(),
            as_other(Method::POST, &format!("/v1/schemas/{UNKNOWN_ID}/results"))
                .header("content-type", "application/x-ndjson")
                .body("{\"extraction\": {\"n\": 9}}\n"),
        ),
    ];
    for (i, (theirs, id, unknown)) in cases.into_iter().enumerate() {
        let msg = assert_error(theirs.send().await.unwrap(), 404).await;
        let msg_unknown = assert_error(unknown.send().await.unwrap(), 404).await;
        assert_eq!(
            msg.replace(id.as_str(), "ID"),
            msg_unknown.replace(UNKNOWN_ID, "ID"),
            "case {i}: another team's id answers exactly as an unknown id"
        );
    }

    // Its lists are empty.
    for path in ["/v1/schemas", "/v1/results", "/v1/exports"] {
        let (status, l) = send(as_other(Method::GET, path)).await;
        assert_eq!(status, 200, "{path}: {l}");
        assert_eq!(l["data"], json!([]), "{path}");
        assert_eq!(l["meta"]["total"], 0, "{path}: {l}");
    }
    let (_, l) = send(as_other(Method::GET, "/v1/results").query(&[("schema_id", s.as_str())])).await;
    assert_eq!(l["meta"]["total"], 0, "{l}");
    let (_, l) = send(as_other(Method::GET, "/v1/exports").query(&[("search", s.as_str())])).await;
    assert_eq!(l["meta"]["total"], 0, "{l}");

    // Nothing of the first team changed.
    assert_untouched(&f).await;

    // The other team's own resources work for it and are invisible to the first.
    let (status, own) = send(as_other(Method::POST, "/v1/schemas").json(&schema_body("other schema"))).await;
    assert_eq!(status, 201, "{own}");
    let own_id = own["id"].as_str().unwrap();
    let (status, res) =
        send(as_other(Method::POST, "/v1/results").json(&json!({"schema_id": own_id, "extraction": {"n": 5}}))).await;
    assert_eq!(status, 201, "{res}");
    let (status, _) = send(as_other(Method::GET, &format!("/v1/schemas/{own_id}"))).await;
    assert_eq!(status, 200);
    assert_error(app.get(&format!("/v1/schemas/{own_id}")).send().await.unwrap(), 404).await;
    assert_error(app.get(&format!("/v1/results/{}", res["id"].as_str().unwrap())).send().await.unwrap(), 404).await;
    let r = app
        .post_json("/v1/exports", &json!({"schema_id": own_id, "start_date": "2024-01-01", "end_date": "2024-01-31"}))
        .send()
        .await
        .unwrap();
    assert_error(r, 404).await;
    assert_untouched(&f).await;
    f.app.stop().await;
}

// ---------------------------------------------------------------------------------------------
// routing and parse errors

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_routes_wrong_methods_and_bad_ids_answer_json_errors() {
    let app = spawn_app().await;
    let key = |rb: reqwest::RequestBuilder| rb.header("x-api-key", &app.api_key);

    for path in ["/v1/nope", "/nope", "/v1/exports/019760a0-0001-7000-8000-000000000001/nope", "/v2/exports"] {
        let r = key(app.client.get(app.url(path))).send().await.unwrap();
        assert_error_reason(r, 404, &format!("GET {path}")).await;
    }

    let id = UNKNOWN_ID;
    for (method, path) in [
        (Method::PUT, "/v1/exports".to_string()),
        (Method::DELETE, "/v1/exports".to_string()),
        (Method::PATCH, "/v1/exports".to_string()),
        (Method::PUT, format!("/v1/exports/{id}")),
        (Method::PATCH, format!("/v1/exports/{id}")),
        (Method::POST, format!("/v1/exports/{id}/download")),
        (Method::PUT, "/v1/schemas".to_string()),
        (Method::POST, format!("/v1/schemas/{id}")),
        (Method::GET, format!("/v1/schemas/{id}/results")),
        (Method::PUT, format!("/v1/results/{id}")),
        (Method::DELETE, "/v1/results".to_string()),
    ] {
        let r = key(app.client.request(method.clone(), app.url(&path))).send().await.unwrap();
        assert_error_reason(r, 405, &format!("{method} {path}")).await;
    }

    for (method, path) in [
        (Method::GET, "/v1/exports/not-a-uuid"),
        (Method::GET, "/v1/exports/123"),
        (Method::GET, "/v1/exports/019760a0-0001-7000-8000-00000000000Z"),
        (Method::DELETE, "/v1/exports/not-a-uuid"),
        (Method::GET, "/v1/exports/not-a-uuid/download"),
        (Method::GET, "/v1/schemas/not-a-uuid"),
        (Method::PATCH, "/v1/schemas/not-a-uuid"),
        (Method::DELETE, "/v1/schemas/not-a-uuid"),
        (Method::POST, "/v1/schemas/not-a-uuid/results"),
        (Method::GET, "/v1/results/not-a-uuid"),
        (Method::DELETE, "/v1/results/not-a-uuid"),
    ] {
        let mut rb = key(app.client.request(method.clone(), app.url(path)));
        if method == Method::PATCH {
            rb = rb.json(&json!({"name": "x"}));
        }
        if method == Method::POST {
            rb = rb.header("content-type", "application/x-ndjson").body("{\"extraction\": {}}\n");
        }
        let r = rb.send().await.unwrap();
        let msg = assert_error_reason(r, 400, &format!("{method} {path}")).await;
        assert!(
            msg.contains("not-a-uuid") || msg.contains("123") || msg.contains("UUID") || msg.contains("id"),
            "{msg}"
        );
    }

    // A query value of the wrong type is a 400 in the JSON shape too, never 422 or text.
    for path in ["/v1/exports?limit=abc", "/v1/schemas?page=x", "/v1/results?include_extraction=perhaps"] {
        let r = key(app.client.get(app.url(path))).send().await.unwrap();
        assert_error_reason(r, 400, path).await;
    }
    // A body that is not JSON.
    let r = key(app.client.post(app.url("/v1/schemas")))
        .header("content-type", "application/json")
        .body("nope")
        .send()
        .await
        .unwrap();
    assert_error_reason(r, 400, "POST /v1/schemas with a non-JSON body").await;
    // A JSON body sent with another content type: 400 or 415, in the JSON shape.
    for path in ["/v1/schemas", "/v1/exports", "/v1/results"] {
        let r =
            key(app.client.post(app.url(path))).header("content-type", "text/plain").body("{}").send().await.unwrap();
        let status = r.status().as_u16();
        assert!(status == 400 || status == 415, "POST {path} as text/plain: {status}");
        assert_error_reason(r, status, &format!("POST {path} as text/plain")).await;
    }
    app.stop().await;
}

// ---------------------------------------------------------------------------------------------
// around the API

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_answers_ok_without_a_key() {
    let app = spawn_app().await;
    let r = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let ct = r.headers().get("content-type").unwrap().to_str().unwrap().to_string();
    assert!(ct.starts_with("application/json"), "{ct}");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v, json!({"status": "ok"}));
    app.stop().await;
}

async fn openapi(app: &TestApp) -> Value {
    let r = app.client.get(app.url("/openapi.json")).send().await.unwrap();
    assert_eq!(r.status(), 200, "/openapi.json needs no key");
    let ct = r.headers().get("content-type").unwrap().to_str().unwrap().to_string();
    assert!(ct.starts_with("application/json"), "{ct}");
    r.json().await.unwrap()
}

/// The path in the document that matches `path` with any parameter names.
fn find_path<'a>(doc: &'a Value, path: &str) -> Option<(&'a String, &'a Value)> {
    let want: Vec<&str> = path.split('/').collect();
    doc["paths"].as_object()?.iter().find(|(p, _)| {
        let got: Vec<&str> = p.split('/').collect();
        got.len() == want.len()
            && got.iter().zip(&want).all(|(g, w)| g == w || (g.starts_with('{') && w.starts_with('{')))
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_document_lists_every_route_and_the_key_scheme() {
    let app = spawn_app().await;
    let doc = openapi(&app).await;
    let version = doc["openapi"].as_str().unwrap_or_else(|| panic!("openapi: {}", doc["openapi"]));
    assert!(version.starts_with("3."), "{version}");
    assert!(doc["info"]["title"].as_str().is_some_and(|t| !t.is_empty()));

    let routes: &[(&str, &[&str])] = &[
        ("/v1/exports", &["get", "post"]),
        ("/v1/exports/{id}", &["get", "delete"]),
        ("/v1/exports/{id}/download", &["get"]),
        ("/v1/schemas", &["get", "post"]),
        ("/v1/schemas/{id}", &["get", "patch", "delete"]),
        ("/v1/schemas/{id}/results", &["post"]),
        ("/v1/results", &["get", "post"]),
        ("/v1/results/{id}", &["get", "delete"]),
        ("/healthz", &["get"]),
    ];
    let all_paths: Vec<&String> = doc["paths"].as_object().unwrap().keys().collect();
    for (path, methods) in routes {
        let (_, item) = find_path(&doc, path).unwrap_or_else(|| panic!("{path} missing from {all_paths:?}"));
        for m in *methods {
            assert!(item.get(*m).is_some(), "{m} {path} missing");
        }
    }

    // The x-api-key scheme.
    let schemes = doc["components"]["securitySchemes"].as_object().expect("components.securitySchemes");
    let (name, _) = schemes
        .iter()
        .find(|(_, s)| {
            s["type"] == "apiKey"
                && s["in"] == "header"
                && s["name"].as_str().map(str::to_lowercase).as_deref() == Some("x-api-key")
        })
        .unwrap_or_else(|| panic!("no apiKey scheme on header x-api-key: {schemes:?}"));
    // ... and the /v1 operations use it.
    let (_, list_exports) = find_path(&doc, "/v1/exports").unwrap();
    let sec = list_exports["get"].get("security").or_else(|| doc.get("security")).expect("security on GET /v1/exports");
    assert!(sec.to_string().contains(name.as_str()), "{sec}");

    // List parameters of the seed.
    let params: Vec<&str> = list_exports["get"]["parameters"]
        .as_array()
        .expect("GET /v1/exports parameters")
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();
    for p in
        ["page", "limit", "sort_by", "sort_order", "search", "created_after", "created_before", "fields", "include"]
    {
        assert!(params.contains(&p), "GET /v1/exports parameter {p} missing: {params:?}");
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_document_lists_error_statuses() {
    let app = spawn_app().await;
    let doc = openapi(&app).await;
    let cases: &[(&str, &str, &[&str])] = &[
        ("/v1/exports", "post", &["201", "400", "401", "404"]),
        ("/v1/exports", "get", &["200", "400", "401"]),
        ("/v1/exports/{id}", "get", &["200", "401", "404"]),
        ("/v1/exports/{id}/download", "get", &["200", "401", "404", "409"]),
        ("/v1/exports/{id}", "delete", &["200", "401", "404"]),
        ("/v1/schemas", "post", &["201", "400", "401"]),
        ("/v1/schemas/{id}", "delete", &["200", "401", "404", "409"]),
        ("/v1/schemas/{id}/results", "post", &["201", "400", "401", "404", "413"]),
        ("/v1/results", "post", &["201", "400", "401", "404"]),
        ("/healthz", "get", &["200", "503"]),
    ];
    for (path, method, statuses) in cases {
        let (_, item) = find_path(&doc, path).unwrap_or_else(|| panic!("{path} missing"));
        let responses = item[*method]["responses"].as_object().unwrap_or_else(|| panic!("{method} {path} responses"));
        for s in *statuses {
            assert!(responses.contains_key(*s), "{method} {path}: response {s} missing; has {:?}", responses.keys());
        }
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_document_describes_the_file_route() {
    let app = spawn_app().await;
    let doc = openapi(&app).await;
    let paths: Vec<&String> = doc["paths"].as_object().unwrap().keys().collect();
    assert!(paths.iter().any(|p| p.starts_with("/files/")), "the signed download route is documented: {paths:?}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docs_are_served_from_the_binary() {
    let app = spawn_app().await;
    let r = app.client.get(app.url("/docs")).send().await.unwrap();
    assert_eq!(r.status(), 200, "/docs needs no key");
    let ct = r.headers().get("content-type").unwrap().to_str().unwrap().to_string();
    assert!(ct.starts_with("text/html"), "{ct}");
    let html = r.text().await.unwrap();
    assert!(html.to_lowercase().contains("swagger"), "Swagger UI");
    // No <script src> or <link href> points outside the service.
    let lower = html.to_lowercase();
    let mut local_refs = Vec::new();
    for tag in ["<script", "<link", "<img"] {
        let mut rest = lower.as_str();
        while let Some(i) = rest.find(tag) {
            let t = &rest[i..];
            let end = t.find('>').unwrap_or(t.len());
            let attrs = &t[..end];
            for attr in ["src=", "href="] {
                if let Some(j) = attrs.find(attr) {
                    let v = attrs[j + attr.len()..].trim_start_matches(['"', '\'']);
                    let v: String = v.chars().take_while(|c| !matches!(c, '"' | '\'' | ' ')).collect();
                    assert!(
                        !v.starts_with("http:") && !v.starts_with("https:") && !v.starts_with("//"),
                        "/docs loads an external resource: {attrs}"
                    );
                    if !v.is_empty() && !v.starts_with("data:") {
                        local_refs.push(v);
                    }
                }
            }
            rest = &t[end..];
        }
    }
    // Whatever it loads is served.
    let docs_url = reqwest::Url::parse(&app.url("/docs")).unwrap();
    for v in local_refs {
        let u = docs_url.join(&v).unwrap();
        let r = app.client.get(u.clone()).send().await.unwrap();
        assert_eq!(r.status(), 200, "{u} referenced by /docs");
    }
    app.stop().await;
}
