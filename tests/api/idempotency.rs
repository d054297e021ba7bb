//! Issue 10, idempotency: a POST under `/v1` with an `Idempotency-Key` runs once; repeats get
//! the first answer with `Idempotent-Replayed: true`, another request with the key a 422,
//! concurrent repeats one export; 5xx answers are not kept; keys are per team and swept after
//! 24 hours (by an injected clock).

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::*;
use exports_api::db::sql::args;

fn schema(name: &str) -> Value {
    json!({"name": name, "schema": {"fields": [{"key": "total", "type": "number"}]}})
}

fn export_body(schema_id: &str) -> Value {
    json!({"schema_id": schema_id, "start_date": "2024-01-01", "end_date": "2024-01-31"})
}

async fn total(app: &TestApp, path: &str) -> u64 {
    let (_, v) = send(app.get(path)).await;
    v["meta"]["total"].as_u64().unwrap_or_else(|| panic!("{path}: {v}"))
}

/// Status, the replay header, and the body text.
async fn post_keyed(app: &TestApp, path: &str, key: &str, body: &str) -> (u16, Option<String>, String) {
    let r = app
        .client
        .post(app.url(path))
        .header("x-api-key", &app.api_key)
        .header("content-type", "application/json")
        .header("idempotency-key", key)
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let replayed = r.headers().get("idempotent-replayed").map(|v| v.to_str().unwrap().to_string());
    (status, replayed, r.text().await.unwrap())
}

fn stored_keys(app: &TestApp) -> i64 {
    beside(&app.data_dir, |c| c.one("SELECT COUNT(*) FROM idempotency_keys", &[], |r| r.int(0)).unwrap())
}

#[tokio::test]
async fn a_replay_gets_the_same_answer_and_creates_nothing() {
    let app = spawn_app().await;
    let s = app.create_schema(&schema("s")).await;
    let id = s["id"].as_str().unwrap();
    let body = export_body(id).to_string();

    let (status, replayed, first) = post_keyed(&app, "/v1/exports", "create-1", &body).await;
    assert_eq!(status, 201, "{first}");
    assert_eq!(replayed, None);
    // the same body with other spacing and key order is the same request
    let reordered = format!(r#"{{ "end_date": "2024-01-31", "start_date": "2024-01-01",   "schema_id": "{id}" }}"#);
    for again in [&body, &reordered] {
        let (status, replayed, text) = post_keyed(&app, "/v1/exports", "create-1", again).await;
        assert_eq!(status, 201);
        assert_eq!(replayed.as_deref(), Some("true"));
        assert_eq!(text, first, "the stored answer, byte for byte");
    }
    assert_eq!(total(&app, "/v1/exports").await, 1, "the replays created nothing");

    // another key is another request
    let (status, replayed, other) = post_keyed(&app, "/v1/exports", "create-2", &body).await;
    assert_eq!((status, replayed), (201, None));
    assert_ne!(other, first);
    assert_eq!(total(&app, "/v1/exports").await, 2);

    // a 4xx answer is kept too
    let bad = json!({"schema_id": id, "start_date": "nope", "end_date": "2024-01-31"}).to_string();
    let (status, _, refused) = post_keyed(&app, "/v1/exports", "bad-1", &bad).await;
    assert_eq!(status, 400);
    let (status, replayed, again) = post_keyed(&app, "/v1/exports", "bad-1", &bad).await;
    assert_eq!((status, replayed.as_deref(), again), (400, Some("true"), refused));
    app.stop().await;
}

#[tokio::test]
async fn an_upload_is_compared_byte_for_byte_and_not_stored_twice() {
    let app = spawn_app().await;
    let s = app.create_schema(&schema("s")).await;
    let path = format!("/v1/schemas/{}/results", s["id"].as_str().unwrap());
    let nd = "{\"extraction\": {\"total\": 1}, \"createdAt\": \"2024-01-02\"}\n{\"extraction\": {\"total\": 2}}\n";
    let upload = |body: &'static str| {
        app.client
            .post(app.url(&path))
            .header("x-api-key", &app.api_key)
            .header("content-type", "application/x-ndjson")
            .header("idempotency-key", "upload-1")
            .body(body)
            .send()
    };
    let first = upload(nd).await.unwrap();
    assert_eq!(first.status(), 201);
    let first = first.text().await.unwrap();
    let again = upload(nd).await.unwrap();
    assert_eq!(again.status(), 201);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    assert_eq!(again.text().await.unwrap(), first);
    assert_eq!(total(&app, "/v1/results").await, 2, "the replay stored nothing");
    // one byte more is another body
    let other =
        upload("{\"extraction\": {\"total\": 1}, \"createdAt\": \"2024-01-02\"}\n{\"extraction\": {\"total\": 2}} \n")
            .await
            .unwrap();
    let msg = assert_error(other, 422).await;
    assert!(msg.contains("another request"), "{msg}");
    assert_eq!(total(&app, "/v1/results").await, 2);
    app.stop().await;
}

#[tokio::test]
async fn the_key_with_another_body_or_path_is_a_422_and_bad_keys_a_400() {
    let app = spawn_app().await;
    let s = app.create_schema(&schema("s")).await;
    let id = s["id"].as_str().unwrap();
    let (status, _, _) = post_keyed(&app, "/v1/exports", "k", &export_body(id).to_string()).await;
    assert_eq!(status, 201);
    let other = json!({"schema_id": id, "start_date": "2024-01-01", "end_date": "2024-02-28"}).to_string();
    for (path, body) in [("/v1/exports", other), ("/v1/schemas", schema("t").to_string())] {
        let r = app
            .post_json(path, &serde_json::from_str(&body).unwrap())
            .header("idempotency-key", "k")
            .send()
            .await
            .unwrap();
        let msg = assert_error(r, 422).await;
        assert!(msg.contains("already used for another request"), "{path}: {msg}");
    }
    assert_eq!(total(&app, "/v1/exports").await, 1);
    assert_eq!(total(&app, "/v1/schemas").await, 1);

    for bad in ["has space".to_string(), "k".repeat(256), "é".to_string()] {
        let r =
            app.post_json("/v1/schemas", &schema("u")).header("idempotency-key", bad.as_str()).send().await.unwrap();
        let msg = assert_error(r, 400).await;
        assert!(msg.contains("Idempotency-Key"), "{msg}");
    }
    assert_eq!(total(&app, "/v1/schemas").await, 1, "a refused key changes nothing");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_with_one_key_create_one_export() {
    let app = spawn_app().await;
    let s = app.create_schema(&schema("s")).await;
    let body = export_body(s["id"].as_str().unwrap()).to_string();
    let answers = futures_util::future::join_all((0..8).map(|_| post_keyed(&app, "/v1/exports", "same", &body))).await;
    let created: Vec<&String> = answers.iter().filter(|a| a.0 == 201).map(|a| &a.2).collect();
    assert!(!created.is_empty(), "{answers:?}");
    assert!(created.iter().all(|b| *b == created[0]), "every 201 is the one answer: {answers:?}");
    assert_eq!(answers.iter().filter(|a| a.0 == 201 && a.1.is_none()).count(), 1, "one did the work: {answers:?}");
    for (status, _, text) in &answers {
        assert!(*status == 201 || *status == 409, "{status}: {text}");
    }
    assert_eq!(total(&app, "/v1/exports").await, 1);
    app.stop().await;
}

#[tokio::test]
async fn a_5xx_answer_is_not_kept_so_a_retry_runs() {
    let app = spawn_app().await;
    let s = app.create_schema(&schema("s")).await;
    let id = s["id"].as_str().unwrap();
    // a schema row no code writes: creating an export from it is a 500
    let set_definition = |def: &str| {
        beside(&app.data_dir, |c| c.exec("UPDATE schemas SET definition = ?2 WHERE id = ?1", args![id, def]))
    };
    let good = beside(&app.data_dir, |c| {
        c.one("SELECT definition FROM schemas WHERE id = ?1", args![id], |r| r.text(0)).unwrap()
    });
    assert_eq!(set_definition("not json").unwrap(), 1);
    let body = export_body(id).to_string();
    let (status, replayed, text) = post_keyed(&app, "/v1/exports", "retry-me", &body).await;
    assert_eq!((status, replayed), (500, None), "{text}");

    assert_eq!(set_definition(&good).unwrap(), 1);
    let (status, replayed, text) = post_keyed(&app, "/v1/exports", "retry-me", &body).await;
    assert_eq!((status, replayed), (201, None), "the retry ran: {text}");
    assert_eq!(total(&app, "/v1/exports").await, 1);
    app.stop().await;
}

#[tokio::test]
async fn another_teams_key_is_its_own() {
    let app = spawn_app().await;
    let other_key = app.new_team_key("acme");
    let body = schema("same").to_string();
    let (status, _, mine) = post_keyed(&app, "/v1/schemas", "shared", &body).await;
    assert_eq!(status, 201);
    let r = app
        .client
        .post(app.url("/v1/schemas"))
        .header("x-api-key", other_key.trim())
        .header("content-type", "application/json")
        .header("idempotency-key", "shared")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    assert!(r.headers().get("idempotent-replayed").is_none());
    let theirs: Value = r.json().await.unwrap();
    let mine: Value = serde_json::from_str(&mine).unwrap();
    assert_ne!(theirs["id"], mine["id"], "a schema of their own");
    app.stop().await;
}

#[tokio::test]
async fn keys_are_swept_after_24_hours() {
    let tmp = tempfile::tempdir().unwrap();
    let offset = Arc::new(AtomicI64::new(0));
    let clock_offset = offset.clone();
    let app = spawn_app_with(tmp.path().to_path_buf(), move |c| {
        c.tuning.clock = exports_api::domain::time::Clock::new(move || {
            chrono::Utc::now().timestamp_millis() + clock_offset.load(Ordering::SeqCst)
        });
        c.tuning.sweep_every = Duration::from_millis(50);
    })
    .await;
    let (status, _, _) = post_keyed(&app, "/v1/schemas", "day-old", &schema("a").to_string()).await;
    assert_eq!(status, 201);
    assert_eq!(stored_keys(&app), 1);
    offset.store(23 * 3600 * 1000, Ordering::SeqCst);
    let (status, replayed, _) = post_keyed(&app, "/v1/schemas", "day-old", &schema("a").to_string()).await;
    assert_eq!((status, replayed.as_deref()), (201, Some("true")), "still kept after 23 hours");

    offset.store(24 * 3600 * 1000 + 60_000, Ordering::SeqCst);
    poll_until(within(10), "the key to be swept", || std::future::ready((stored_keys(&app) == 0).then_some(()))).await;
    // the key is free again: another request with it runs
    let (status, replayed, _) = post_keyed(&app, "/v1/schemas", "day-old", &schema("b").to_string()).await;
    assert_eq!((status, replayed), (201, None));
    assert_eq!(total(&app, "/v1/schemas").await, 2);
    app.stop().await;
}

/// While the first upload with a key is still arriving, a repeat waits, then gets 409 with
/// `Retry-After`; once the first is answered, a repeat of the same bytes is its replay (the
/// first body was hashed as it streamed).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeat_while_the_first_runs_gets_409_then_the_replay() {
    let app = spawn_app().await;
    let s = app.create_schema(&schema("s")).await;
    let path = format!("/v1/schemas/{}/results", s["id"].as_str().unwrap());
    let (part1, part2) = ("{\"extraction\": {\"total\": 1}}\n", "{\"extraction\": {\"total\": 2}}\n");
    let request = |body: reqwest::Body| {
        app.client
            .post(app.url(&path))
            .header("x-api-key", &app.api_key)
            .header("content-type", "application/x-ndjson")
            .header("idempotency-key", "slow-upload")
            .body(body)
            .send()
    };
    let (tx, rx) = tokio::sync::mpsc::channel::<Vec<u8>>(4);
    let body =
        futures_util::stream::unfold(
            rx,
            |mut rx| async move { rx.recv().await.map(|b| (Ok::<_, std::io::Error>(b), rx)) },
        );
    let first = tokio::spawn(request(reqwest::Body::wrap_stream(body)));
    tx.send(part1.as_bytes().to_vec()).await.unwrap();
    // the first request holds the key while its body is still arriving
    poll_until(within(10), "the first request to reserve the key", || {
        std::future::ready((stored_keys(&app) == 1).then_some(()))
    })
    .await;

    let whole = format!("{part1}{part2}");
    let busy = request(whole.clone().into()).await.unwrap();
    assert_eq!(busy.headers().get("retry-after").map(|v| v.to_str().unwrap().to_string()).as_deref(), Some("1"));
    let msg = assert_error(busy, 409).await;
    assert!(msg.contains("still being processed"), "{msg}");
    assert_eq!(total(&app, "/v1/results").await, 0, "nothing stored yet");

    tx.send(part2.as_bytes().to_vec()).await.unwrap();
    drop(tx);
    let first = first.await.unwrap().unwrap();
    assert_eq!(first.status(), 201);
    assert!(first.headers().get("idempotent-replayed").is_none());
    let first = first.text().await.unwrap();
    let again = request(whole.into()).await.unwrap();
    assert_eq!(again.status(), 201);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    assert_eq!(again.text().await.unwrap(), first);
    assert_eq!(total(&app, "/v1/results").await, 2, "stored once");
    app.stop().await;
}

/// Two replicas on one PostgreSQL database (the scale-out setup): repeats of a keyed POST sent
/// to both at once, and again later to each, make one schema; every answer is that schema (or
/// a 409 while the first still runs), whichever replica got it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_replicas_on_one_postgres_database_run_a_key_once() {
    let Some(url) = tokio::task::spawn_blocking(|| pg_database("idempotency::two_replicas")).await.unwrap() else {
        return;
    };
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let on_pg =
        |c: &mut exports_api::config::Config| c.database = Some(exports_api::config::Database::Postgres(url.clone()));
    let a = spawn_app_with(dir_a.path().to_path_buf(), on_pg).await;
    let b = spawn_app_with(dir_b.path().to_path_buf(), on_pg).await;
    let body = schema("once").to_string();
    let mut sends = Vec::new();
    for i in 0..16 {
        let app = if i % 2 == 0 { &a } else { &b };
        sends.push(post_keyed(app, "/v1/schemas", "across-replicas", &body));
    }
    let answers = futures_util::future::join_all(sends).await;
    let ids: std::collections::HashSet<String> = answers
        .iter()
        .filter(|(status, ..)| *status == 201)
        .map(|(_, _, text)| serde_json::from_str::<Value>(text).unwrap()["id"].as_str().unwrap().to_string())
        .collect();
    assert!(answers.iter().all(|(s, ..)| *s == 201 || *s == 409), "{answers:?}");
    assert_eq!(ids.len(), 1, "one schema for one key: {answers:?}");
    let fresh = answers.iter().filter(|(s, replayed, _)| *s == 201 && replayed.is_none()).count();
    assert_eq!(fresh, 1, "one request ran, the others were replays: {answers:?}");
    for app in [&a, &b] {
        let (status, replayed, text) = post_keyed(app, "/v1/schemas", "across-replicas", &body).await;
        assert_eq!((status, replayed.as_deref()), (201, Some("true")), "{text}");
        assert!(ids.contains(serde_json::from_str::<Value>(&text).unwrap()["id"].as_str().unwrap()), "{text}");
    }
    let stored = tokio::task::spawn_blocking(move || {
        let mut c = pg_client(&url);
        let schemas: i64 = c.query_one("SELECT count(*) FROM schemas", &[]).unwrap().get(0);
        let keys: i64 = c.query_one("SELECT count(*) FROM idempotency_keys", &[]).unwrap().get(0);
        (schemas, keys)
    })
    .await
    .unwrap();
    assert_eq!(stored, (1, 1), "(schemas, idempotency keys) in the shared database");
    a.stop().await;
    b.stop().await;
}
