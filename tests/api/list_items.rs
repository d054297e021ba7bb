//! A list item is the single item's JSON: the lists write their bodies straight from their
//! rows (not through the objects the single GETs use), so every key, its place and its value
//! formatting are compared here, byte for byte, across the options that change an item.

use crate::helpers::{self, send};
use serde_json::{json, Map, Value};

/// The single item as the list shows it: only `keep`'s keys (all when `None`), plus `extra`
/// at the end (what `include=schema` adds).
fn trimmed(single: &Value, keep: Option<&[&str]>, extra: Option<(&str, Value)>) -> String {
    let mut out = Map::new();
    for (k, v) in single.as_object().unwrap() {
        if keep.is_none_or(|keep| keep.contains(&k.as_str())) {
            out.insert(k.clone(), v.clone());
        }
    }
    if let Some((k, v)) = extra {
        out.insert(k.into(), v);
    }
    serde_json::to_string(&Value::Object(out)).unwrap()
}

/// The body of `GET path` as text (200 asserted), and parsed (keys keep their order).
async fn get_text(app: &helpers::TestApp, path: &str) -> (String, Value) {
    let r = app.get(path).send().await.unwrap();
    assert_eq!(r.status(), 200, "{path}");
    let ct = r.headers()["content-type"].to_str().unwrap().to_string();
    assert_eq!(ct, "application/json; charset=utf-8", "{path}");
    let text = r.text().await.unwrap();
    let v: Value = serde_json::from_str(&text).unwrap();
    // re-writing a parsed body gives its bytes back, so items can be compared as text
    assert_eq!(serde_json::to_string(&v).unwrap(), text, "{path}");
    (text, v)
}

/// Sets an export's row to a state a worker would leave it in (the workers are stopped).
fn set_state(db: &dyn exports_api::db::Sql, id: &str, sql: &str) {
    let n = db.exec(&format!("UPDATE exports SET {sql} WHERE id = ?1"), exports_api::db::sql::args![id]).unwrap();
    assert_eq!(n, 1, "{id}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_items_are_the_single_items() {
    let tmp = tempfile::tempdir().unwrap();
    let app = helpers::spawn_app_without_workers(tmp.path().to_path_buf(), |_| {}).await;
    let name = "Reçus \"2024\"\t\\ é 😀";
    let schema = app
        .create_schema(&json!({"name": name, "description": null, "schema": {"fields": [
            {"key": "total", "type": "number", "label": "Total"},
            {"key": "when", "type": "datetime"},
            {"key": "items", "type": "array", "fields": [{"key": "sku", "type": "string"}]}]}}))
        .await;
    let sid = schema["id"].as_str().unwrap().to_string();
    let results = [
        json!({"schema_id": sid, "extraction": {"total": 1.50, "when": "2024-03-31T01:30:00Z", "items": []}, "file_name": "a \"b\".pdf"}),
        json!({"schema_id": sid, "extraction": {"total": 12345678901234567890u64, "items": [{"sku": "x\u{1}"}]}, "createdAt": "1969-12-31T23:59:59.999Z"}),
        json!({"schema_id": sid, "extraction": {"total": -0.0, "nested": {"b": 1, "a": [null, true]}}, "createdAt": "9999-12-31T23:59:59.999Z"}),
    ];
    for body in &results {
        let (status, v) = send(app.post_json("/v1/results", body)).await;
        assert_eq!(status, 201, "{v}");
    }
    let exports = [
        json!({"schema_id": sid, "start_date": "1969-12-31T23:59:59.999Z", "end_date": "2100-02-28"}),
        json!({"schema_id": sid, "start_date": "2000-02-29", "end_date": "2000-02-29", "format": "xlsx",
            "columns": ["createdAt", "total"], "options": {"timezone": "Europe/Paris", "header": "label"}}),
        json!({"schema_id": sid, "start_date": "2024-01-01", "end_date": "2024-12-31", "format": "jsonl",
            "expand_array": "items", "options": {"gzip": true}}),
        json!({"schema_id": sid, "start_date": "2024-01-01", "end_date": "2024-12-31",
            "options": {"delimiter": "\t", "bom": true, "formula_guard": false, "timezone": "UTC"}}),
        json!({"schema_id": sid, "start_date": "2024-01-01", "end_date": "2024-12-31",
            "options": {"delimiter": "|"}}),
        json!({"schema_id": sid, "start_date": "0000-01-01", "end_date": "9999-12-31", "format": "csv"}),
    ];
    let mut ids = Vec::new();
    for body in &exports {
        let (status, v) = send(app.post_json("/v1/exports", body)).await;
        assert_eq!(status, 201, "{v}");
        ids.push(v["id"].as_str().unwrap().to_string());
    }
    // every state an item shows differently; the first stays PENDING
    helpers::beside(&app.data_dir, |db| {
        set_state(db, &ids[1], "status = 'PROCESSING', row_count = 7, results_done = 3, results_total = 9");
        set_state(
            db,
            &ids[2],
            "status = 'COMPLETED', row_count = 3, results_done = 3, results_total = 3, file_size = 1234, \
             completed_at = updated_at + 1500",
        );
        // COMPLETED before progress was recorded: the records stand in for it
        set_state(db, &ids[3], "status = 'COMPLETED', row_count = 5, file_size = 0, completed_at = 0");
        set_state(
            db,
            &ids[4],
            "status = 'FAILED', row_count = 2, results_done = 1, results_total = 4, \
             error = 'disk \"full\"\n\tline two ☃'",
        );
        set_state(db, &ids[5], "status = 'PROCESSING'"); // not counted yet: no progress
    });

    let mut singles = Vec::new();
    for id in &ids {
        let (_, v) = get_text(&app, &format!("/v1/exports/{id}")).await;
        singles.push(v);
    }
    let schema_ref = json!({"id": sid, "name": name});
    let cases: &[(&str, Option<&[&str]>, bool)] = &[
        ("", None, false),
        ("include=schema", None, true),
        ("fields=id,status", Some(&["id", "status"]), false),
        (
            "fields=completedAt,error,progress,row_count,options",
            Some(&["options", "row_count", "progress", "error", "completedAt"]),
            false,
        ),
        (
            "fields=updatedAt,createdAt,file_size,expand_array,end_date,start_date,schema_id",
            Some(&["schema_id", "start_date", "end_date", "expand_array", "file_size", "createdAt", "updatedAt"]),
            false,
        ),
        ("fields=schema", Some(&[]), false),
        ("include=schema&fields=progress", Some(&["progress"]), true),
        ("include=schema&fields=schema,id", Some(&["id"]), true),
    ];
    for sort in ["", "&sort_order=asc&sort_by=status"] {
        for (query, keep, with_schema) in cases {
            let has_id = keep.is_none_or(|k| k.contains(&"id"));
            if !sort.is_empty() && !has_id {
                continue; // without ids, only the default order (newest first) tells the items apart
            }
            let path = format!("/v1/exports?limit=100&{query}{sort}");
            let (_, list) = get_text(&app, &path).await;
            let data = list["data"].as_array().unwrap();
            assert_eq!(data.len(), ids.len(), "{path}");
            for (place, item) in data.iter().enumerate() {
                let at = match has_id {
                    true => ids.iter().position(|i| item["id"] == **i).unwrap(),
                    false => ids.len() - 1 - place,
                };
                let extra = with_schema.then(|| ("schema", schema_ref.clone()));
                let want = trimmed(&singles[at], *keep, extra);
                assert_eq!(serde_json::to_string(item).unwrap(), want, "{path}: export {}", ids[at]);
            }
            assert_eq!(list["meta"], json!({"page": 1, "limit": 100, "total": ids.len(), "totalPages": 1}), "{path}");
        }
    }
    // the states set above are what the items show
    let status: Vec<&str> = singles.iter().map(|s| s["status"].as_str().unwrap()).collect();
    assert_eq!(status, ["PENDING", "PROCESSING", "COMPLETED", "COMPLETED", "FAILED", "PROCESSING"]);
    assert_eq!(singles[1]["progress"], json!({"results_done": 3, "results_total": 9, "percent": 33}));
    assert_eq!(singles[3]["progress"], json!({"results_done": 5, "results_total": 5, "percent": 100}));
    assert_eq!(singles[3]["completedAt"], "1970-01-01T00:00:00.000Z");
    assert_eq!(singles[0]["start_date"], "1969-12-31T23:59:59.999Z");
    assert_eq!(singles[5]["start_date"], "0000-01-01T00:00:00.000Z");
    assert_eq!(singles[5]["end_date"], "9999-12-31T23:59:59.999Z");
    assert!(singles[0]["progress"].is_null() && singles[5]["progress"].is_null());

    // results, with and without their extraction
    let (_, all) = get_text(&app, "/v1/results?limit=100").await;
    let rids: Vec<String> = all["data"].as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap().into()).collect();
    assert_eq!(rids.len(), results.len());
    let mut singles = Vec::new();
    for id in &rids {
        singles.push(get_text(&app, &format!("/v1/results/{id}")).await.1);
    }
    let no_extraction = ["id", "schema_id", "file_name", "status", "createdAt", "updatedAt"];
    let cases: &[(&str, Option<&[&str]>, bool)] = &[
        ("", Some(&no_extraction), false),
        ("include_extraction=true", None, false),
        ("include_extraction=true&include=schema", None, true),
        ("include=schema&fields=id,file_name", Some(&["id", "file_name"]), true),
        ("include_extraction=true&fields=id,extraction,createdAt", Some(&["id", "extraction", "createdAt"]), false),
        ("fields=id,extraction", Some(&["id"]), false),
    ];
    for (query, keep, with_schema) in cases {
        let path = format!("/v1/results?limit=100&{query}");
        let (_, list) = get_text(&app, &path).await;
        for item in list["data"].as_array().unwrap() {
            let at = rids.iter().position(|i| i == item["id"].as_str().unwrap()).unwrap();
            let want = trimmed(&singles[at], *keep, with_schema.then(|| ("schema", schema_ref.clone())));
            assert_eq!(serde_json::to_string(item).unwrap(), want, "{path}: result {}", rids[at]);
        }
    }
    assert_eq!(singles.iter().filter(|r| r["file_name"].is_null()).count(), 2);

    // schemas
    let (_, single) = get_text(&app, &format!("/v1/schemas/{sid}")).await;
    for (query, keep) in [("", None), ("fields=schema,name", Some(&["name", "schema"][..]))] {
        let (_, list) = get_text(&app, &format!("/v1/schemas?{query}")).await;
        assert_eq!(serde_json::to_string(&list["data"][0]).unwrap(), trimmed(&single, keep, None), "{query}");
    }
    app.stop().await;
}
