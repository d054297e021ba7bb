//! Issue 10, progress: a running export shows how far it has got (`row_count` and
//! `progress`), live while PROCESSING, and `{m, m, 100}` once COMPLETED.

use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::*;

const RESULTS: usize = 20_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_export_shows_growing_figures_then_one_hundred_percent() {
    let tmp = tempfile::tempdir().unwrap();
    // each batch of 1,024 rows waits a while: the job runs for a few seconds
    let app = spawn_app_with(tmp.path().to_path_buf(), |c| {
        c.workers = 1;
        c.tuning.export_batch_pause = Some(Duration::from_millis(250));
    })
    .await;
    // spread over 90 days from 2024-01-01: the export takes the first 45 days, about half
    let (schema, nd) = invoices(RESULTS, 7);
    let created = |l: &str| l.split("\"createdAt\":\"").nth(1).map(|t| t[..24].to_string()).unwrap();
    let in_range = nd.lines().filter(|l| created(l).as_str() < "2024-02-15").count() as i64;
    assert!(in_range > 5_000 && in_range < RESULTS as i64 - 5_000, "{in_range}");
    let schema = app.create_schema(&schema).await;
    let schema_id = schema["id"].as_str().unwrap();
    assert_eq!(app.upload_ndjson(schema_id, nd).await, RESULTS as u64);

    let body = json!({"schema_id": schema_id, "start_date": "2024-01-01", "end_date": "2024-02-14"});
    let (status, created) = send(app.post_json("/v1/exports", &body)).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["status"], "PENDING");
    assert!(created["progress"].is_null(), "no progress while PENDING: {created}");
    assert!(created["row_count"].is_null(), "{created}");
    let id = created["id"].as_str().unwrap().to_string();

    // every distinct figure seen while PROCESSING, until the job is done
    let seen: std::sync::Mutex<Vec<(i64, i64, i64)>> = Default::default();
    let done: Value = poll_until(within(60), "the export to finish", || {
        let (app, id, in_range) = (&app, &id, in_range);
        let seen = &seen;
        async move {
            let v: Value = app.get(&format!("/v1/exports/{id}")).send().await.unwrap().json().await.unwrap();
            match v["status"].as_str().unwrap() {
                "PROCESSING" if !v["progress"].is_null() => {
                    let p = &v["progress"];
                    assert_eq!(p["results_total"], in_range, "the range, counted when the job started: {v}");
                    let figures = (
                        v["row_count"].as_i64().unwrap(),
                        p["results_done"].as_i64().unwrap(),
                        p["percent"].as_i64().unwrap(),
                    );
                    assert_eq!(figures.2, figures.1 * 100 / in_range, "{v}");
                    let mut seen = seen.lock().unwrap();
                    if seen.last() != Some(&figures) {
                        seen.push(figures);
                    }
                    None
                }
                "COMPLETED" | "FAILED" => Some(v),
                _ => None,
            }
        }
    })
    .await;

    let seen = seen.into_inner().unwrap();
    assert_eq!(done["status"], "COMPLETED", "{done}");
    assert_eq!(done["row_count"], in_range);
    assert_eq!(done["progress"], json!({"results_done": in_range, "results_total": in_range, "percent": 100}));
    // figures only grow, and the job was seen part-way through more than once
    for w in seen.windows(2) {
        assert!(w[0].0 <= w[1].0 && w[0].1 <= w[1].1 && w[0].2 <= w[1].2, "figures went back: {seen:?}");
    }
    let partway: Vec<_> = seen.iter().filter(|f| f.0 > 0 && f.2 < 100).collect();
    assert!(partway.len() >= 2, "growing figures while PROCESSING, saw {seen:?}");
    assert!(partway.windows(2).any(|w| w[0].0 < w[1].0 && w[0].2 < w[1].2), "{seen:?}");

    // the list carries the same object, and `fields` can pick it
    let (_, list) = send(app.get("/v1/exports?fields=id,progress")).await;
    assert_eq!(list["data"][0]["progress"], done["progress"], "{list}");
    app.stop().await;
}
