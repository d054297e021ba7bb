//! Deep pages of the lists, which start from remembered bookmarks (a bookmark every 3 rows
//! here, so that a few dozen rows cross many), are exactly the rows a plain sort of the
//! list's items gives, in every sort order and filter, and stay so when rows are added and
//! deleted between calls.

use crate::helpers;
use serde_json::{json, Value};

async fn spawn() -> (helpers::TestApp, tempfile::TempDir) {
    let tmp = tempfile::tempdir().unwrap();
    let app = helpers::spawn_app_with(tmp.path().to_path_buf(), |c| {
        c.limits.list_bookmark_every = 3;
        c.limits.rate_limit = 0;
        c.limits.max_queued_exports = 0;
    })
    .await;
    (app, tmp)
}

async fn get(app: &helpers::TestApp, path: &str) -> Value {
    let r = app.get(path).send().await.unwrap();
    assert_eq!(r.status(), 200, "{path}");
    r.json().await.unwrap()
}

/// Every item of a list (at most 100), in whatever order: page 1 of limit 100 starts at no
/// bookmark.
async fn all_items(app: &helpers::TestApp, path: &str) -> Vec<Value> {
    let sep = if path.contains('?') { '&' } else { '?' };
    let v = get(app, &format!("{path}{sep}limit=100&page=1")).await;
    let items = v["data"].as_array().unwrap().clone();
    assert_eq!(v["meta"]["total"].as_u64(), Some(items.len() as u64), "at most 100 items: {path}");
    items
}

/// The ids of `items` sorted by `field` then id, as the API documents.
fn sorted_ids(items: &[Value], field: &str, descending: bool) -> Vec<String> {
    let mut keys: Vec<(String, String)> =
        items.iter().map(|i| (i[field].as_str().unwrap().to_string(), i["id"].as_str().unwrap().to_string())).collect();
    keys.sort_by(|a, b| {
        let o = a.cmp(b);
        if descending {
            o.reverse()
        } else {
            o
        }
    });
    keys.into_iter().map(|(_, id)| id).collect()
}

/// Reads every page of `path` with page sizes 1, 4 and 7 and compares it with `expected`,
/// including `meta` and the empty page past the end.
async fn assert_pages(app: &helpers::TestApp, path: &str, expected: &[String]) {
    for limit in [1usize, 4, 7] {
        let pages = expected.len().div_ceil(limit);
        // deepest first: the bookmarks are made by the deepest request, then reused
        for page in (1..=pages + 1).rev() {
            let v = get(app, &format!("{path}&limit={limit}&page={page}")).await;
            let ids: Vec<&str> = v["data"].as_array().unwrap().iter().map(|i| i["id"].as_str().unwrap()).collect();
            let want: Vec<&str> = expected.iter().skip((page - 1) * limit).take(limit).map(String::as_str).collect();
            assert_eq!(ids, want, "{path} limit {limit} page {page}");
            assert_eq!(v["meta"]["total"].as_u64(), Some(expected.len() as u64), "{path}");
            assert_eq!(v["meta"]["totalPages"].as_u64(), Some(pages as u64), "{path}");
        }
    }
}

fn ndjson(from: usize, n: usize) -> String {
    // createdAt repeats (every value three times), so ties break by id
    (from..from + n)
        .map(|i| {
            format!(
                "{{\"extraction\": {{\"total\": {i}}}, \"file_name\": \"f{i}.pdf\", \"createdAt\": \"2024-01-{:02}T00:00:00.000Z\"}}\n",
                1 + (i / 3) % 28
            )
        })
        .collect()
}

async fn check_results(app: &helpers::TestApp, sid: &str) {
    for (filter, keep) in [
        ("", None),
        ("&created_after=2024-01-05", Some("2024-01-05")),
        ("&created_before=2024-01-20&created_after=2024-01-03", None),
    ] {
        for schema in [String::new(), format!("&schema_id={sid}")] {
            for (order, desc) in [("desc", true), ("asc", false)] {
                let base = format!("/v1/results?sort_order={order}{filter}{schema}");
                let mut items = all_items(app, &base).await;
                if let Some(after) = keep {
                    // an independent check of the filter itself
                    items.retain(|i| i["createdAt"].as_str().unwrap() >= after);
                }
                assert_pages(app, &base, &sorted_ids(&items, "createdAt", desc)).await;
            }
        }
    }
    // sort_by=updatedAt has no bookmarks' index, and the same answers
    let base = "/v1/results?sort_by=updatedAt&sort_order=asc";
    let items = all_items(app, base).await;
    assert_pages(app, base, &sorted_ids(&items, "updatedAt", false)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deep_result_pages_equal_the_sorted_list_across_orders_filters_inserts_and_deletes() {
    let (app, _tmp) = spawn().await;
    let schema = json!({"name": "Deep", "schema": {"fields": [{"key": "total", "type": "number"}]}});
    let sid = app.create_schema(&schema).await["id"].as_str().unwrap().to_string();
    let other = app.create_schema(&json!({"name": "Other", "schema": schema["schema"]})).await;
    let other = other["id"].as_str().unwrap().to_string();
    assert_eq!(app.upload_ndjson(&sid, ndjson(0, 40)).await, 40);
    assert_eq!(app.upload_ndjson(&other, ndjson(100, 12)).await, 12);
    check_results(&app, &sid).await;

    // rows added between calls (also to the other schema, which moves the team's list only)
    assert_eq!(app.upload_ndjson(&sid, ndjson(40, 9)).await, 9);
    check_results(&app, &sid).await;
    assert_eq!(app.upload_ndjson(&other, ndjson(200, 5)).await, 5);
    check_results(&app, &sid).await;

    // rows deleted between calls: the first, one in the middle, the newest
    let items = all_items(&app, &format!("/v1/results?schema_id={sid}&sort_order=asc")).await;
    let ids = sorted_ids(&items, "createdAt", false);
    for id in [&ids[0], &ids[17], &ids[ids.len() - 1]] {
        let r = app.delete(&format!("/v1/results/{id}")).send().await.unwrap();
        assert!(r.status().is_success(), "delete: {}", r.status());
    }
    check_results(&app, &sid).await;
    // a delete and an insert (whose rowid may reuse the deleted one's) between two calls
    let r = app.delete(&format!("/v1/results/{}", ids[5])).send().await.unwrap();
    assert!(r.status().is_success(), "delete: {}", r.status());
    assert_eq!(app.upload_ndjson(&sid, ndjson(300, 1)).await, 1);
    check_results(&app, &sid).await;
    let total = get(&app, &format!("/v1/results?schema_id={sid}")).await["meta"]["total"].as_u64();
    assert_eq!(total, Some(40 + 9 - 3 - 1 + 1));
    app.stop().await;
}

/// Polls until the team has no export waiting or running (at most 60 s).
async fn wait_all_done(app: &helpers::TestApp) {
    helpers::poll_until(helpers::within(60), "the exports to finish", move || async move {
        let items = all_items(app, "/v1/exports?sort_order=asc").await;
        items.iter().all(|i| matches!(i["status"].as_str(), Some("COMPLETED" | "FAILED"))).then_some(())
    })
    .await
}

async fn check_exports(app: &helpers::TestApp) {
    for (sort_by, field) in [
        ("createdAt", "createdAt"),
        ("updatedAt", "updatedAt"),
        ("status", "status"),
        ("start_date", "start_date"),
        ("end_date", "end_date"),
    ] {
        for (order, desc) in [("desc", true), ("asc", false)] {
            let base = format!("/v1/exports?sort_by={sort_by}&sort_order={order}");
            let items = all_items(app, &base).await;
            assert_pages(app, &base, &sorted_ids(&items, field, desc)).await;
        }
    }
}

async fn create_exports(app: &helpers::TestApp, sid: &str, days: std::ops::Range<u32>) -> Vec<String> {
    let mut ids = Vec::new();
    for d in days {
        // start dates repeat (every value twice), so ties break by id
        let start = format!("2024-01-{:02}", 1 + (d / 2) % 28);
        let body = json!({"schema_id": sid, "start_date": start, "end_date": "2024-02-15"});
        let r = app.post_json("/v1/exports", &body).send().await.unwrap();
        assert_eq!(r.status(), 201);
        ids.push(r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_string());
    }
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deep_export_pages_equal_the_sorted_list_in_every_sort_order_while_jobs_run_and_rows_go() {
    let (app, _tmp) = spawn().await;
    let schema = json!({"name": "Deep", "schema": {"fields": [{"key": "total", "type": "number"}]}});
    let sid = app.create_schema(&schema).await["id"].as_str().unwrap().to_string();
    assert_eq!(app.upload_ndjson(&sid, ndjson(0, 30)).await, 30);
    let ids = create_exports(&app, &sid, 0..30).await;
    wait_all_done(&app).await;
    check_exports(&app).await;

    // new jobs change status and updatedAt after they were listed: read deep pages sorted by
    // them right after creating, then again once the jobs are done
    create_exports(&app, &sid, 30..36).await;
    for sort_by in ["status", "updatedAt"] {
        let _ = get(&app, &format!("/v1/exports?sort_by={sort_by}&limit=1&page=30")).await;
    }
    wait_all_done(&app).await;
    check_exports(&app).await;

    for id in [&ids[0], &ids[13], &ids[29]] {
        let r = app.delete(&format!("/v1/exports/{id}")).send().await.unwrap();
        assert!(r.status().is_success(), "delete: {}", r.status());
    }
    check_exports(&app).await;
    let v = get(&app, "/v1/exports?limit=1").await;
    assert_eq!(v["meta"]["total"].as_u64(), Some(33));
    app.stop().await;
}
