//! Rate limits and per-team quotas (issue 5, point 5): 429 with `Retry-After`, the JSON error
//! shape and a message naming the limit; `/healthz` never limited; `--rate-limit 0` off.

use crate::helpers;
use crate::helpers::{assert_error, spawn_app_with, TestApp};
use serde_json::{json, Value};

const LIST: &str = "/v1/exports";

/// A 429 in the JSON shape with a whole-second `Retry-After` of at least 1; returns the message.
async fn assert_429(resp: reqwest::Response) -> String {
    let retry =
        resp.headers().get("retry-after").map(|v| v.to_str().unwrap().to_string()).expect("a 429 has Retry-After");
    let secs: u64 = retry.parse().unwrap_or_else(|_| panic!("Retry-After is whole seconds: {retry}"));
    assert!(secs >= 1, "Retry-After {secs}");
    assert_error(resp, 429).await
}

async fn app_with_rate(rate: u32) -> (TestApp, tempfile::TempDir) {
    let tmp = tempfile::tempdir().unwrap();
    let app = spawn_app_with(tmp.path().to_path_buf(), |c| c.limits.rate_limit = rate).await;
    (app, tmp)
}

/// Sends `GET path` with the header `x-api-key: key(i)` (none when `None`) for i in 0..n, one
/// after another, until the first 429; returns the statuses before it and the 429 itself.
async fn until_429(
    app: &TestApp,
    path: &str,
    n: usize,
    key: impl Fn(usize) -> Option<String>,
) -> (Vec<u16>, Option<reqwest::Response>) {
    let mut before = Vec::new();
    for i in 0..n {
        let mut req = app.client.get(app.url(path));
        if let Some(k) = key(i) {
            req = req.header("x-api-key", k);
        }
        let resp = req.send().await.unwrap();
        if resp.status() == 429 {
            return (before, Some(resp));
        }
        before.push(resp.status().as_u16());
    }
    (before, None)
}

#[tokio::test]
async fn a_key_over_its_rate_gets_429_and_other_keys_and_the_address_do_not() {
    let (app, _tmp) = app_with_rate(5).await;
    let other = app.new_team_key("other");
    let key = app.api_key.clone();
    let (ok, limited) = until_429(&app, LIST, 500, |_| Some(key.clone())).await;
    // burst of 2N = 10: the first ten quick requests pass
    assert!(ok.len() >= 10, "only {} requests passed before the first 429", ok.len());
    assert!(ok.iter().all(|s| *s == 200), "{ok:?}");
    let msg = assert_429(limited.expect("the key was never limited")).await;
    assert!(msg.contains("rate limit of 5 requests per second per API key"), "{msg}");
    assert!(msg.contains("--rate-limit") && msg.contains("retry after"), "{msg}");

    // another key from the same address has its own budget
    let r = app.client.get(app.url(LIST)).header("x-api-key", &other).send().await.unwrap();
    assert_eq!(r.status(), 200, "the second key is not limited");
    // the valid key's traffic was not charged to the address: a request without a key is
    // still answered 401, not 429
    let r = app.client.get(app.url(LIST)).send().await.unwrap();
    assert_error(r, 401).await;
    app.stop().await;
}

#[tokio::test]
async fn fresh_wrong_keys_from_one_address_get_401_then_429_and_a_valid_key_still_works() {
    let (app, _tmp) = app_with_rate(5).await;
    let key = app.api_key.clone();
    assert_eq!(app.get(LIST).send().await.unwrap().status(), 200);
    // a fresh random key each time: cannot dodge the per-address limit
    let (before, limited) = until_429(&app, LIST, 500, |i| Some(format!("exp_wrong-{i}-{}", i * 7919))).await;
    assert!(before.len() >= 10, "only {} wrong keys before the first 429", before.len());
    assert!(before.len() < 500);
    assert!(before.iter().all(|s| *s == 401), "{before:?}");
    let msg = assert_429(limited.expect("wrong keys were never limited")).await;
    assert!(msg.contains("per client address") && msg.contains("--rate-limit"), "{msg}");
    // more fresh keys keep being refused...
    let (before, limited) = until_429(&app, LIST, 20, |i| Some(format!("exp_more-wrong-{i}"))).await;
    assert!(limited.is_some(), "20 more wrong keys all answered: {before:?}");
    // ...while the valid key from the same address is served
    let r = app.client.get(app.url(LIST)).header("x-api-key", &key).send().await.unwrap();
    assert_eq!(r.status(), 200);
    app.stop().await;
}

#[tokio::test]
async fn requests_without_a_key_and_downloads_are_limited_per_address() {
    let (app, _tmp) = app_with_rate(5).await;
    let (before, limited) = until_429(&app, LIST, 500, |_| None).await;
    assert!(before.len() >= 10 && before.len() < 500, "{} before the first 429", before.len());
    assert!(before.iter().all(|s| *s == 401), "{before:?}");
    let msg = assert_429(limited.unwrap()).await;
    assert!(msg.contains("per client address"), "{msg}");
    app.stop().await;

    // signed downloads need no key: counted per address too
    let (app, _tmp) = app_with_rate(5).await;
    let file = "/files/teams/t/019760a0-0050-7000-8000-000000000050/x.csv?expires=1&token=bad";
    let (before, limited) = until_429(&app, file, 500, |_| None).await;
    assert!(before.len() >= 10 && before.len() < 500, "{} before the first 429", before.len());
    assert!(before.iter().all(|s| *s == 403), "{before:?}");
    assert_429(limited.unwrap()).await;
    app.stop().await;
}

#[tokio::test]
async fn rate_limit_zero_turns_limits_off() {
    for rate in [1, 0] {
        let (app, _tmp) = app_with_rate(rate).await;
        let key = app.api_key.clone();
        let mut limited = 0;
        for i in 0..300 {
            let k = match i % 3 {
                0 => Some(key.clone()),
                1 => Some(format!("wrong-{i}")),
                _ => None,
            };
            let (_, r) = until_429(&app, LIST, 1, |_| k.clone()).await;
            limited += usize::from(r.is_some());
        }
        if rate == 0 {
            assert_eq!(limited, 0, "--rate-limit 0 must not limit");
        } else {
            assert!(limited > 0, "--rate-limit 1 never limited 300 quick requests");
        }
        app.stop().await;
    }
}

#[tokio::test]
async fn health_docs_and_spec_are_never_limited() {
    let (app, _tmp) = app_with_rate(1).await;
    let (_, limited) = until_429(&app, LIST, 500, |_| None).await;
    assert_429(limited.expect("the address was never limited")).await;
    // keep the address over its limit while probing: the probes are answered all the same
    let mut limited = 0;
    for _ in 0..50 {
        let r = app.client.get(app.url(LIST)).send().await.unwrap();
        limited += usize::from(r.status() == 429);
        for path in ["/healthz", "/openapi.json", "/", "/docs"] {
            let r = app.client.get(app.url(path)).send().await.unwrap();
            assert_eq!(r.status(), 200, "{path}");
        }
    }
    assert!(limited > 0, "the address was not over its limit during the probes");
    app.stop().await;
}

// ---------------------------------------------------------------------------------------------
// per-team quotas

fn schema() -> Value {
    json!({"name": "quota", "schema": {"fields": [{"key": "n", "type": "string"}]}})
}

fn export_body(schema_id: &str) -> Value {
    json!({"schema_id": schema_id, "start_date": "2020-01-01", "end_date": "2030-12-31"})
}

#[tokio::test]
async fn concurrent_creates_over_the_queued_cap_yield_exactly_the_cap() {
    let tmp = tempfile::tempdir().unwrap();
    let app = helpers::spawn_app_without_workers(tmp.path().to_path_buf(), |c| c.limits.max_queued_exports = 3).await;
    let r = app.post_json("/v1/schemas", &schema()).send().await.unwrap();
    assert_eq!(r.status(), 201);
    let schema_id = r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_string();

    let sends = (0..12).map(|_| app.post_json("/v1/exports", &export_body(&schema_id)).send());
    let answers = futures_util::future::join_all(sends).await;
    let mut created = Vec::new();
    let mut refused = 0;
    for r in answers {
        let r = r.unwrap();
        match r.status().as_u16() {
            201 => created.push(r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_string()),
            429 => {
                let msg = assert_429(r).await;
                assert!(msg.contains("--max-queued-exports") && msg.contains("delete"), "{msg}");
                refused += 1;
            }
            s => panic!("unexpected status {s}"),
        }
    }
    assert_eq!(created.len(), 3, "exactly the cap is queued");
    assert_eq!(refused, 9);
    let list: Value = app.get("/v1/exports").send().await.unwrap().json().await.unwrap();
    assert_eq!(list["meta"]["total"], 3, "the refused creates stored nothing: {list}");

    // deleting one makes room for one
    let r = app.delete(&format!("/v1/exports/{}", created[0])).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let r = app.post_json("/v1/exports", &export_body(&schema_id)).send().await.unwrap();
    assert_eq!(r.status(), 201);
    let r = app.post_json("/v1/exports", &export_body(&schema_id)).send().await.unwrap();
    assert_429(r).await;

    app.stop().await;
}

#[tokio::test]
async fn a_team_at_its_storage_quota_gets_429_until_it_deletes_exports() {
    let tmp = tempfile::tempdir().unwrap();
    let app = spawn_app_with(tmp.path().to_path_buf(), |c| c.limits.max_export_storage = Some(10)).await;
    let schema_id = app.create_schema(&schema()).await["id"].as_str().unwrap().to_string();
    app.upload_ndjson(&schema_id, "{\"file_name\":\"a.pdf\",\"extraction\":{\"n\":\"some text\"}}\n").await;
    let done = app.export_and_wait(&export_body(&schema_id)).await;
    assert_eq!(done["status"], "COMPLETED", "{done}");
    let size = done["file_size"].as_u64().unwrap();
    assert!(size >= 10, "the file is over the 10-byte quota: {size}");

    let r = app.post_json("/v1/exports", &export_body(&schema_id)).send().await.unwrap();
    let msg = assert_429(r).await;
    assert!(msg.contains("--max-export-storage"), "{msg}");
    assert!(msg.contains(&format!("{size} bytes")) && msg.contains("limit of 10 bytes"), "{msg}");
    assert!(msg.contains("delete"), "{msg}");
    // another team is not affected
    let other = app.new_team_key("other");
    let r = app.client.post(app.url("/v1/schemas")).header("x-api-key", &other).json(&schema()).send().await.unwrap();
    let other_schema = r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_string();
    let r =
        app.client.post(app.url("/v1/exports")).header("x-api-key", &other).json(&export_body(&other_schema)).send();
    assert_eq!(r.await.unwrap().status(), 201);

    let id = done["id"].as_str().unwrap();
    assert_eq!(app.delete(&format!("/v1/exports/{id}")).send().await.unwrap().status(), 200);
    let r = app.post_json("/v1/exports", &export_body(&schema_id)).send().await.unwrap();
    assert_eq!(r.status(), 201, "room again after the delete");
    app.stop().await;
}
