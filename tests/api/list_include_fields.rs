//! `include=schema` together with `fields`: the included object stays, the other keys go.

use crate::helpers;
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn include_schema_survives_fields() {
    let app = helpers::spawn_app().await;
    let schema = app
        .create_schema(&json!({"name": "Receipts", "schema": {"fields": [{"key": "total", "type": "number"}]}}))
        .await;
    let sid = schema["id"].as_str().unwrap();
    let r = app
        .post_json("/v1/results", &json!({"schema_id": sid, "extraction": {"total": 1}, "file_name": "r.pdf"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let r = app
        .post_json("/v1/exports", &json!({"schema_id": sid, "start_date": "2000-01-01", "end_date": "2100-01-01"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);

    for path in ["/v1/exports?fields=id,status&include=schema", "/v1/results?fields=id&include=schema"] {
        let v: Value = app.get(path).send().await.unwrap().json().await.unwrap();
        let item = v["data"][0].as_object().unwrap_or_else(|| panic!("{path}: {v}"));
        let mut keys: Vec<&str> = item.keys().map(String::as_str).collect();
        keys.sort();
        let want: Vec<&str> =
            if path.contains("status") { vec!["id", "schema", "status"] } else { vec!["id", "schema"] };
        assert_eq!(keys, want, "{path}");
        assert_eq!(item["schema"], json!({"id": sid, "name": "Receipts"}), "{path}");
    }
    // without include, fields alone decide
    let v: Value = app.get("/v1/exports?fields=id").send().await.unwrap().json().await.unwrap();
    assert_eq!(v["data"][0].as_object().unwrap().keys().collect::<Vec<_>>(), vec!["id"]);
    app.stop().await;
}
