//! Results are stored with their ids as 16 bytes since migration 7 (README, "Import and
//! upload"). A database of the layout before (ids as text), filled through the API, answers
//! exactly as it did once the app has migrated it: every list (by team, by schema, both orders,
//! deep pages from bookmarks, ties in createdAt ordered by id), every result, the errors, and
//! the export's file.

use std::path::Path;

use crate::helpers::{self, TestApp};
use serde_json::{json, Value};

/// Results in the old layout: the `results` table of migration 1, ids as text, and the
/// database marked as schema version 6, as a binary from before migration 7 left it.
fn back_to_text_ids(data_dir: &Path) {
    let db = rusqlite::Connection::open(data_dir.join("exports.db")).unwrap();
    let text = |c: &str| {
        let h = format!("lower(hex({c}))");
        format!(
            "substr({h}, 1, 8) || '-' || substr({h}, 9, 4) || '-' || substr({h}, 13, 4) || '-' || substr({h}, 17, 4) \
             || '-' || substr({h}, 21)"
        )
    };
    db.execute_batch(&format!(
        "BEGIN;
         CREATE TABLE results_old (
             id          TEXT PRIMARY KEY,
             team_id     TEXT NOT NULL REFERENCES teams(id),
             schema_id   TEXT NOT NULL REFERENCES schemas(id),
             file_name   TEXT,
             extraction  TEXT NOT NULL,
             created_at  INTEGER NOT NULL,
             updated_at  INTEGER NOT NULL
         );
         INSERT INTO results_old (rowid, id, team_id, schema_id, file_name, extraction, created_at, updated_at)
             SELECT rowid, {}, {}, {}, file_name, extraction, created_at, updated_at FROM results ORDER BY rowid;
         DROP TABLE results;
         ALTER TABLE results_old RENAME TO results;
         CREATE INDEX results_schema_created ON results(schema_id, created_at, id);
         CREATE INDEX results_team_created ON results(team_id, created_at, id);
         CREATE TRIGGER results_deleted AFTER DELETE ON results
             BEGIN UPDATE row_deletions SET n = n + 1 WHERE tbl = 'results'; END;
         PRAGMA user_version = 6;
         COMMIT;",
        text("id"),
        text("team_id"),
        text("schema_id")
    ))
    .unwrap();
}

/// The storage class of every result id (`text` or `blob`), and the schema version.
fn stored_as(data_dir: &Path) -> (String, i64) {
    let db = rusqlite::Connection::open(data_dir.join("exports.db")).unwrap();
    let kinds = db
        .query_row(
            "SELECT group_concat(DISTINCT typeof(id) || ',' || typeof(team_id) || ',' || typeof(schema_id)) FROM results",
            [],
            |r| r.get(0),
        )
        .unwrap();
    (kinds, db.query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap())
}

/// Status and body of every answer the test compares.
async fn answers(app: &TestApp, sid: &str, other_team: &str) -> Vec<(String, u16, String)> {
    let mut paths: Vec<String> = Vec::new();
    for page in 1..=14 {
        paths.push(format!("/v1/results?limit=100&page={page}&include_extraction=true"));
    }
    // deep pages (bookmarks every 500 rows), both orders, by team and by schema, with filters
    for order in ["asc", "desc"] {
        for filter in ["", "&created_after=2024-02-01", &format!("&schema_id={sid}")] {
            for page in [1, 71, 72, 150, 185, 186, 400] {
                paths.push(format!("/v1/results?limit=7&page={page}&sort_order={order}{filter}"));
            }
        }
    }
    paths.push(format!("/v1/results?schema_id={sid}&limit=50&page=3&fields=id,schema_id,createdAt&include=schema"));
    paths.push("/v1/results?search=tie&sort_order=asc&limit=100".into());
    paths.push("/v1/results?sort_by=updatedAt&sort_order=asc&limit=20&page=30".into());
    paths.push(format!("/v1/results?schema_id={}", uuid::Uuid::nil()));
    // single results, the first, the ties and the last ones of the schema's list
    let all: Value = app
        .get(&format!("/v1/results?schema_id={sid}&limit=100&sort_order=asc"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ids: Vec<String> =
        all["data"].as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap().to_string()).collect();
    assert_eq!(ids.len(), 100);
    for id in ids.iter().step_by(9) {
        paths.push(format!("/v1/results/{id}"));
    }
    paths.push(format!("/v1/results/{}", uuid::Uuid::nil()));
    paths.push(format!("/v1/results/{}", ids[0].to_uppercase()));
    let mut out = Vec::new();
    for path in paths {
        let r = app.get(&path).send().await.unwrap();
        out.push((path, r.status().as_u16(), r.text().await.unwrap()));
    }
    // another team sees none of them
    let r = app.client.get(app.url("/v1/results")).header("x-api-key", other_team).send().await.unwrap();
    out.push(("other team".into(), r.status().as_u16(), r.text().await.unwrap()));
    let r = app.client.get(app.url(&format!("/v1/results/{}", ids[0]))).header("x-api-key", other_team).send().await;
    let r = r.unwrap();
    out.push(("other team's get".into(), r.status().as_u16(), r.text().await.unwrap()));
    // a schema with results is not deleted; the message counts them
    let r = app.delete(&format!("/v1/schemas/{sid}")).send().await.unwrap();
    out.push(("delete schema".into(), r.status().as_u16(), r.text().await.unwrap()));
    out
}

/// The CSV file of a flat export of the whole range.
async fn export_file(app: &TestApp, sid: &str) -> Vec<u8> {
    let e = app.export_and_wait(&json!({"schema_id": sid, "start_date": "2024-01-01", "end_date": "2024-12-31"})).await;
    assert_eq!(e["status"], "COMPLETED", "{e}");
    let url = app.download_url(e["id"].as_str().unwrap()).await;
    let r = app.client.get(url).send().await.unwrap();
    assert_eq!(r.status(), 200);
    r.bytes().await.unwrap().to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_with_text_ids_answers_the_same_once_migrated() {
    // SQLite's migration 7 of its own file; PostgreSQL's ids are uuid from its first schema
    crate::sqlite_only!();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    let app = helpers::spawn_app_with(dir.clone(), |_| {}).await;
    let (schema, nd) = helpers::invoices(1300, 5);
    let sid = app.create_schema(&schema).await["id"].as_str().unwrap().to_string();
    assert_eq!(app.upload_ndjson(&sid, nd).await, 1300);
    // ties in createdAt, ordered by id, in two uploads (so their ids interleave with nothing)
    let ties: String = (0..30)
        .map(|i| {
            format!(
                "{{\"file_name\": \"tie{i}.pdf\", \"createdAt\": \"2024-02-01T00:00:00Z\", \"extraction\": {{}}}}\n"
            )
        })
        .collect();
    assert_eq!(app.upload_ndjson(&sid, ties.clone()).await, 30);
    assert_eq!(app.upload_ndjson(&sid, ties).await, 30);
    // a deleted result: a gap in the rowids
    let first: Value = app.get("/v1/results?limit=1").send().await.unwrap().json().await.unwrap();
    let gone = first["data"][0]["id"].as_str().unwrap().to_string();
    assert_eq!(app.delete(&format!("/v1/results/{gone}")).send().await.unwrap().status(), 200);
    let other_team = app.new_team_key("other");
    let file = export_file(&app, &sid).await;
    let before = answers(&app, &sid, &other_team).await;
    app.stop().await;

    // the same results in the layout before: the app migrates them at its start ...
    back_to_text_ids(&dir);
    assert_eq!(stored_as(&dir), ("text,text,text".to_string(), 6));
    let app = helpers::spawn_app_with(dir.clone(), |_| {}).await;
    assert_eq!(stored_as(&dir), ("blob,blob,blob".to_string(), 7), "migrated at the start");
    // ... and answers as before, byte for byte
    let after = answers(&app, &sid, &other_team).await;
    assert_eq!(after.len(), before.len());
    for (a, b) in after.iter().zip(&before) {
        assert_eq!(a, b);
    }
    assert!(export_file(&app, &sid).await == file, "the export's file is the same");
    let deleted = app.get(&format!("/v1/results/{gone}")).send().await.unwrap();
    assert_eq!(deleted.status(), 404);
    app.stop().await;
}
