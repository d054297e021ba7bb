//! Issue 11, `serve --role`: API processes and worker processes sharing one PostgreSQL
//! database and one file store scale apart. A worker answers only `/healthz` and `/metrics`;
//! an API process runs no export itself. With SQLite, only `--role all` starts.

use exports_api::config::{Database, Role};
use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn api_and_worker_roles_need_a_shared_postgresql_database() {
    for role in [Role::Api, Role::Worker] {
        let tmp = tempfile::tempdir().unwrap();
        let mut cfg = exports_api::config::Config::for_tests(tmp.path().to_path_buf());
        cfg.role = role;
        cfg.database = None;
        let err = exports_api::app::App::build(cfg).await.err().expect("refused on SQLite");
        let text = format!("{err:#}");
        assert!(text.contains("needs a PostgreSQL database") && text.contains("--role all"), "{text}");
        assert!(!tmp.path().join("exports.db").exists(), "a refused start created the database");
    }
}

#[tokio::test]
async fn an_api_process_and_a_worker_process_share_the_work() {
    let Some(url) = tokio::task::spawn_blocking(|| pg_database("roles")).await.unwrap() else { return };
    let files = tempfile::tempdir().unwrap();
    let shared = |c: &mut exports_api::config::Config, role: Role| {
        c.database = Some(Database::Postgres(url.clone()));
        c.storage.location = Some(exports_api::storage::Location::Local(files.path().to_path_buf()));
        c.role = role;
    };
    let (api_dir, worker_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let api = spawn_app_with(api_dir.path().to_path_buf(), |c| shared(c, Role::Api)).await;
    let worker = spawn_app_with(worker_dir.path().to_path_buf(), |c| shared(c, Role::Worker)).await;

    // the worker serves no API, and says where it is
    let r = worker.get("/v1/team").send().await.unwrap();
    assert_eq!(r.status(), 404);
    let body: serde_json::Value = r.json().await.unwrap();
    assert!(body["message"].as_str().unwrap().contains("--role worker"), "{body}");
    assert_eq!(worker.client.get(worker.url("/healthz")).send().await.unwrap().status(), 200);

    // an export created on the API process is run by the worker process
    let (schema, nd) = invoices(300, 7);
    let sid = api.create_schema(&schema).await["id"].as_str().unwrap().to_string();
    assert_eq!(api.upload_ndjson(&sid, nd).await, 300);
    let e = api.export_and_wait(&json!({"schema_id": sid, "start_date": "2024-01-01", "end_date": "2024-03-31"})).await;
    assert_eq!(e["status"], "COMPLETED", "{e}");
    let jobs_run = |text: &str| {
        text.lines()
            .filter(|l| l.starts_with("exports_jobs_total{") && l.contains("COMPLETED"))
            .map(|l| l.split_whitespace().last().unwrap().parse::<f64>().unwrap())
            .sum::<f64>()
    };
    let metrics = |app: &TestApp| {
        let c = app.client.clone();
        let u = app.url("/metrics");
        async move { c.get(u).send().await.unwrap().text().await.unwrap() }
    };
    assert_eq!(jobs_run(&metrics(&api).await), 0.0, "the API process ran an export");
    assert_eq!(jobs_run(&metrics(&worker).await), 1.0, "the worker process did not run it");
    // and the API process serves its file
    let link: serde_json::Value = api
        .get(&format!("/v1/exports/{}/download", e["id"].as_str().unwrap()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let csv = api.client.get(link["url"].as_str().unwrap()).send().await.unwrap();
    assert_eq!(csv.status(), 200);
    let bytes = csv.bytes().await.unwrap();
    assert_eq!(Some(bytes.len() as u64), e["file_size"].as_u64(), "{e}");
    assert!(e["row_count"].as_u64().unwrap() >= 300, "{e}");
    api.stop().await;
    worker.stop().await;
}
