//! Issue 11: several replicas on one PostgreSQL database and one bucket (moto). Two apps
//! complete 100 exports created through both, each exactly once, both claiming some, every
//! file downloadable from either; a replica SIGKILLed mid-export has its job finished by the
//! other once the job's lease lapses (attempt counted), the file whole.
//!
//! Run only when the PostgreSQL tests are on (`pg_database` returns `None` with
//! `EXPORTS_TEST_PG=off`) and the S3 ones too (`moto`, `EXPORTS_TEST_S3=off`).
//!
//! The queue's rules alone (claims, leases, takeover, NOTIFY) are tested through the store's
//! functions in `pg_jobs.rs`; these run the whole app on PostgreSQL.

use std::collections::HashSet;
use std::path::Path;

use exports_api::config::Database;
use serde_json::{json, Value};

use crate::helpers::{self, moto, pg_client, pg_database, poll_until, spawn_app_with, within, ServeCmd, TestApp};

/// `exports_jobs_total{status="COMPLETED"}` of an app's `/metrics`: the jobs its workers
/// completed.
async fn completed_here(app: &TestApp) -> u64 {
    let text = app.client.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("exports_jobs_total{status=\"COMPLETED\"} "))
        .expect("exports_jobs_total{status=\"COMPLETED\"} in /metrics")
        .trim()
        .parse()
        .unwrap()
}

/// Export `id`'s file, through its download URL (presigned: straight from the bucket).
async fn download_bytes(app: &TestApp, id: &str) -> Vec<u8> {
    let url = app.download_url(id).await;
    let r = app.client.get(&url).send().await.unwrap();
    assert_eq!(r.status(), 200, "download of {id}");
    r.bytes().await.unwrap().to_vec()
}

/// `(id, attempts, status)` of every export in the database.
fn attempts(url: &str) -> Vec<(String, i64, String)> {
    let rows = pg_client(url).query("SELECT CAST(id AS TEXT), attempts, status FROM exports", &[]).unwrap();
    rows.iter().map(|r| (r.get(0), r.get(1), r.get(2))).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_replicas_complete_100_exports_each_exactly_once() {
    let Some(url) = tokio::task::spawn_blocking(|| pg_database("replicas::exactly_once")).await.unwrap() else {
        return;
    };
    let Some(moto) = moto("replicas::exactly_once") else { return };
    let bucket = moto.bucket().await;
    let storage = moto.storage(&bucket, "exports", false);
    let tmp = tempfile::tempdir().unwrap();
    let replica = |name: &str| {
        let (url, storage) = (url.clone(), storage.clone());
        spawn_app_with(tmp.path().join(name), move |c| {
            c.database = Some(Database::Postgres(url));
            c.storage = storage;
            c.workers = 2;
            c.limits.max_queued_exports = 0;
            c.limits.rate_limit = 0;
        })
    };
    let a = replica("a").await;
    let b = replica("b").await;

    let schema = a.create_schema(&helpers::invoice_schema()).await;
    let sid = schema["id"].as_str().unwrap().to_string();
    let (_, nd) = helpers::invoices(200, 3);
    assert_eq!(b.upload_ndjson(&sid, nd).await, 200);

    let body = json!({"schema_id": sid, "start_date": "2024-01-01", "end_date": "2024-03-31"});
    let mut ids = Vec::new();
    for i in 0..100 {
        let app = if i % 2 == 0 { &a } else { &b };
        let r = app.post_json("/v1/exports", &body).send().await.unwrap();
        assert_eq!(r.status(), 201, "create export {i}");
        ids.push(r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_string());
    }
    let mut finished = Vec::new();
    for (i, id) in ids.iter().enumerate() {
        // read through either replica
        let v = if i % 3 == 0 { a.wait_export(id).await } else { b.wait_export(id).await };
        assert_eq!(v["status"], "COMPLETED", "{v}");
        finished.push(v);
    }

    let url2 = url.clone();
    let rows = tokio::task::spawn_blocking(move || attempts(&url2)).await.unwrap();
    assert_eq!(rows.len(), 100);
    assert!(rows.iter().all(|(_, n, s)| *n == 1 && s == "COMPLETED"), "a job ran more than once: {rows:?}");
    let (by_a, by_b) = (completed_here(&a).await, completed_here(&b).await);
    eprintln!("completed: replica A {by_a}, replica B {by_b}");
    assert_eq!(by_a + by_b, 100, "each export completed once");
    assert!(by_a > 0 && by_b > 0, "both replicas ran exports: {by_a} and {by_b}");

    // every file from either replica, the same bytes
    let first = download_bytes(&a, &ids[0]).await;
    for (i, id) in ids.iter().enumerate() {
        let (x, y) = (download_bytes(&a, id).await, download_bytes(&b, id).await);
        assert_eq!(x, y, "export {i} differs by replica");
        assert_eq!(x, first, "export {i}: same range and options, same file");
        assert_eq!(finished[i]["file_size"].as_u64(), Some(x.len() as u64));
    }
    let distinct: HashSet<&String> = ids.iter().collect();
    assert_eq!(distinct.len(), 100);
    a.stop().await;
    b.stop().await;
}

const KEY: &str = "test-key-replicas-0123456789";
const SIGNING: &str = "replicas-signing-key-0123456789abcdef0123456789";
const BIG: usize = 30_000;

/// A replica of the real binary on `url` and the bucket, with one worker, a 2 s lease, and
/// exports slowed down (200 ms a batch of 1,024 results: 6 s for `BIG`) so that one is caught
/// running whatever the machine's speed.
async fn serve(dir: &Path, url: &str, endpoint: &str, bucket: &str) -> helpers::Served {
    ServeCmd::new(dir)
        .args(&["--database-url", url, "--storage-url", &format!("s3://{bucket}/exports"), "--job-lease", "2s"])
        .args(&["--export-batch-pause-ms", "200"])
        .env("EXPORTS_API_KEY", KEY)
        .env("EXPORTS_SIGNING_KEY", SIGNING)
        .env("EXPORTS_WORKERS", "1")
        .env("EXPORTS_S3_ENDPOINT", endpoint)
        .env("AWS_ACCESS_KEY_ID", helpers::S3_KEY_ID)
        .env("AWS_SECRET_ACCESS_KEY", helpers::S3_SECRET)
        .start()
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_killed_mid_export_has_its_job_finished_by_another() {
    let Some(url) = tokio::task::spawn_blocking(|| pg_database("replicas::killed")).await.unwrap() else { return };
    let Some(moto) = moto("replicas::killed") else { return };
    let bucket = moto.bucket().await;
    let tmp = tempfile::tempdir().unwrap();
    let mut first = serve(&tmp.path().join("a"), &url, &moto.endpoint, &bucket).await;
    let a = TestApp::remote(&first.base_url(), KEY);
    let (schema, nd) = helpers::invoices(BIG, 11);
    let sid = a.create_schema(&schema).await["id"].as_str().unwrap().to_string();
    assert_eq!(a.upload_ndjson(&sid, nd).await, BIG as u64);
    let body =
        json!({"schema_id": sid, "start_date": "2024-01-01", "end_date": "2024-03-31", "expand_array": "line_items"});
    let r = a.post_json("/v1/exports", &body).send().await.unwrap();
    assert_eq!(r.status(), 201);
    let id = r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_string();

    // mid-run: the first replica has read some of the range
    let (a_ref, id_ref) = (&a, &id);
    poll_until(within(60), "the export to be running", move || async move {
        let v: Value = a_ref.get(&format!("/v1/exports/{id_ref}")).send().await.unwrap().json().await.unwrap();
        assert!(
            matches!(v["status"].as_str(), Some("PENDING" | "PROCESSING")),
            "the export finished before it could be killed mid-run: {v}"
        );
        (v["progress"]["results_done"].as_u64().unwrap_or(0) > 0).then_some(())
    })
    .await;
    let second = serve(&tmp.path().join("b"), &url, &moto.endpoint, &bucket).await;
    first.kill();

    let b = TestApp::remote(&second.base_url(), KEY);
    let done = b.wait_export(&id).await;
    assert_eq!(done["status"], "COMPLETED", "{done}\nlog of the second replica:\n{}", second.stderr());
    let url2 = url.clone();
    let rows = tokio::task::spawn_blocking(move || attempts(&url2)).await.unwrap();
    assert_eq!(rows, vec![(id.clone(), 2, "COMPLETED".to_string())], "taken over once, the attempt counted");
    assert!(second.stderr().contains("export completed"), "the second replica finished it");

    let bytes = download_bytes(&b, &id).await;
    assert_eq!(done["file_size"].as_u64(), Some(bytes.len() as u64));
    let records = csv::Reader::from_reader(&bytes[..]).records().collect::<Result<Vec<_>, _>>().expect("valid CSV");
    assert_eq!(done["row_count"].as_u64(), Some(records.len() as u64));
    // a fresh export of the same range, by the surviving replica alone, is byte-identical
    let fresh = b.export_and_wait(&body).await;
    assert_eq!(fresh["status"], "COMPLETED", "{fresh}");
    assert!(download_bytes(&b, fresh["id"].as_str().unwrap()).await == bytes, "the taken-over file differs");
}
