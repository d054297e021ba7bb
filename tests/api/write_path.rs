//! Writes of the API and of the export workers share one write connection: none of them waits
//! in SQLite's busy handler, so none fails for a lock held by this same process.

use std::time::Duration;

use crate::helpers;
use serde_json::{json, Value};

#[tokio::test]
async fn concurrent_writes_never_meet_a_busy_database_while_workers_export() {
    let tmp = tempfile::tempdir().unwrap();
    // a busy handler that gives up at once: any lock contention inside the process would
    // surface as a 503
    let app = helpers::spawn_app_with(tmp.path().to_path_buf(), |c| {
        c.limits.busy_timeout = Duration::from_millis(1);
        c.workers = 2;
    })
    .await;
    let (schema, nd) = helpers::invoices(1000, 11);
    let schema_id = app.create_schema(&schema).await["id"].as_str().unwrap().to_string();
    assert_eq!(app.upload_ndjson(&schema_id, nd).await, 1000);

    let export = json!({"schema_id": schema_id, "start_date": "2000-01-01", "end_date": "2100-01-01",
                        "expand_array": "line_items"});
    let mut tasks = Vec::new();
    for i in 0..40 {
        let (client, key, base) = (app.client.clone(), app.api_key.clone(), app.base_url.clone());
        let body = if i % 2 == 0 {
            (format!("{base}/v1/exports"), export.clone())
        } else {
            (
                format!("{base}/v1/schemas"),
                json!({"name": format!("s{i}"), "schema": {"fields": [{"key": "a", "type": "string"}]}}),
            )
        };
        tasks.push(tokio::spawn(async move {
            let r = client.post(&body.0).header("x-api-key", key).json(&body.1).send().await.unwrap();
            let status = r.status().as_u16();
            let v: Value = r.json().await.unwrap();
            (status, v)
        }));
    }
    let mut exports = Vec::new();
    for t in tasks {
        let (status, v) = t.await.unwrap();
        assert_eq!(status, 201, "{v}");
        if v["status"].is_string() {
            exports.push(v["id"].as_str().unwrap().to_string());
        }
    }
    // and the workers recorded every outcome through the same connection
    for id in exports {
        let done = app.wait_export(&id).await;
        assert_eq!(done["status"], "COMPLETED", "{done}");
    }
    app.stop().await;
}

#[tokio::test]
async fn a_post_during_a_large_upload_waits_for_the_writer_instead_of_failing() {
    let tmp = tempfile::tempdir().unwrap();
    let app = helpers::spawn_app_with(tmp.path().to_path_buf(), |c| {
        c.limits.busy_timeout = Duration::from_millis(1);
        c.limits.rate_limit = 0;
    })
    .await;
    let (schema, nd) = helpers::invoices(20_000, 12);
    let schema_id = app.create_schema(&schema).await["id"].as_str().unwrap().to_string();
    let upload = {
        let (client, key, url) =
            (app.client.clone(), app.api_key.clone(), app.url(&format!("/v1/schemas/{schema_id}/results")));
        tokio::spawn(async move {
            let r = client
                .post(url)
                .header("x-api-key", key)
                .header("content-type", "application/x-ndjson")
                .body(nd)
                .send()
                .await
                .unwrap();
            r.status().as_u16()
        })
    };
    // writes of our own while the upload runs: each must succeed, none may meet a lock
    let mut posted = 0;
    while !upload.is_finished() {
        let body = json!({"name": format!("during-{posted}"), "schema": {"fields": [{"key": "a", "type": "string"}]}});
        let r = app.post_json("/v1/schemas", &body).send().await.unwrap();
        let status = r.status().as_u16();
        let v: Value = r.json().await.unwrap();
        assert_eq!(status, 201, "write {posted} during the upload: {v}");
        posted += 1;
    }
    assert_eq!(upload.await.unwrap(), 201);
    assert!(posted > 0);
    app.stop().await;
}
