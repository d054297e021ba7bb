//! Webhooks (events.md, "Webhooks"): real receivers on loopback get one signed POST per
//! event, retried until a 2xx, from a queue that survives restarts; a hanging receiver
//! delays nobody else; rotated secrets sign what follows; deleted endpoints get nothing more.

use exports_api::db::sql::args;
use serde_json::{json, Value};

use crate::helpers::{
    self, assert_error, poll_until, send, signature_valid, spawn_app_with, spawn_app_without_workers, within, Receiver,
    Reply, ServeCmd, TestApp,
};

/// Retry waits a hundredth of the service's: 0.3 s, 1.2 s, 6 s, …
const FAST: f64 = 0.01;

async fn app_with_scale(scale: f64) -> (TestApp, tempfile::TempDir) {
    let tmp = tempfile::tempdir().unwrap();
    let app = spawn_app_with(tmp.path().to_path_buf(), |c| c.webhooks.retry_scale = scale).await;
    (app, tmp)
}

/// Creates an endpoint; returns (id, secret).
async fn hook(app: &TestApp, url: &str, events: &[&str]) -> (String, String) {
    let (status, v) = send(app.post_json("/v1/webhooks", &json!({"url": url, "events": events}))).await;
    assert_eq!(status, 201, "{v}");
    helpers::assert_uuid_v7(&v["id"], "webhook id");
    let secret = v["secret"].as_str().unwrap().to_string();
    (v["id"].as_str().unwrap().to_string(), secret)
}

async fn deliveries(app: &TestApp, id: &str) -> Vec<Value> {
    let (status, v) = send(app.get(&format!("/v1/webhooks/{id}/deliveries"))).await;
    assert_eq!(status, 200, "{v}");
    v["data"].as_array().unwrap().clone()
}

/// A schema with `n` results; returns its id.
async fn schema_with_results(app: &TestApp, n: usize) -> String {
    let (schema, nd) = helpers::invoices(n, 7);
    let s = app.create_schema(&schema).await;
    let id = s["id"].as_str().unwrap().to_string();
    assert_eq!(app.upload_ndjson(&id, nd).await as usize, n);
    id
}

fn export_body(schema_id: &str) -> Value {
    json!({"schema_id": schema_id, "start_date": "2024-01-01", "end_date": "2024-03-31"})
}

async fn completed_export(app: &TestApp, schema_id: &str) -> Value {
    let e = app.export_and_wait(&export_body(schema_id)).await;
    assert_eq!(e["status"], "COMPLETED", "{e}");
    e
}

async fn get_json(app: &TestApp, path: &str) -> Value {
    let (status, v) = send(app.get(path)).await;
    assert_eq!(status, 200, "{path}: {v}");
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_event_is_delivered_once_signed_with_the_endpoints_secret() {
    let (app, _tmp) = app_with_scale(FAST).await;
    let all = Receiver::start(&[], Reply::Status(200)).await;
    let failed_only = Receiver::start(&[], Reply::Status(200)).await;
    let (all_id, secret) = hook(&app, &all.url("/hooks/all"), &["*"]).await;
    let (failed_id, _) = hook(&app, &failed_only.url("/hooks/failed"), &["export.failed"]).await;

    let sid = schema_with_results(&app, 40).await;
    let export = completed_export(&app, &sid).await;
    let id = export["id"].as_str().unwrap();
    let got = all.wait_event("export.completed", id, 30).await;
    assert_eq!(got.path, "/hooks/all");
    assert!(got.header("content-type").unwrap().starts_with("application/json"), "{:?}", got.headers);
    assert!(signature_valid(&got, &secret), "the signature verifies: {:?}", got.header("x-exports-signature"));
    assert!(!signature_valid(&got, "whsec_another"), "a wrong secret does not verify");
    let body = got.json();
    assert_eq!(got.header("x-exports-event-id"), body["id"].as_str(), "header and body name the same event");
    helpers::assert_uuid_v7(&body["id"], "event id");
    helpers::assert_time(&body["createdAt"], "event createdAt");
    assert_eq!(body.as_object().unwrap().keys().collect::<Vec<_>>(), ["id", "type", "createdAt", "data"]);
    // `data` is the export object exactly as the API shows it
    assert_eq!(body["data"], get_json(&app, &format!("/v1/exports/{id}")).await, "{body}");

    let ds = poll_until(within(10), "the delivery to be recorded", || async {
        let ds = deliveries(&app, &all_id).await;
        (ds.first().is_some_and(|d| d["status"] == "succeeded")).then_some(ds)
    })
    .await;
    assert_eq!(ds.len(), 1, "{ds:?}");
    let d = &ds[0];
    assert_eq!(d["event_id"], body["id"]);
    assert_eq!(d["type"], "export.completed");
    assert_eq!(d["export_id"], id);
    assert_eq!(d["attempts"], 1);
    assert_eq!(d["last_status_code"], 200);
    assert!(d["last_error"].is_null() && d["next_attempt_at"].is_null(), "{d}");

    // deleting the export is an event too, with the export as it was
    let r = app.delete(&format!("/v1/exports/{id}")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let gone = all.wait_event("export.deleted", id, 30).await;
    assert!(signature_valid(&gone, &secret));
    assert_eq!(gone.json()["data"]["status"], "COMPLETED");
    assert_ne!(gone.json()["id"], body["id"], "a new event, a new id");

    // events are enqueued with the change: an endpoint subscribed to neither has no delivery
    assert!(deliveries(&app, &failed_id).await.is_empty());
    assert!(failed_only.received().is_empty());
    assert_eq!(all.received().len(), 2, "one request per event");

    // metrics count the outcomes
    let m = app.client.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(m.contains("exports_webhook_attempts_total{outcome=\"succeeded\"} 2"), "{m}");
    app.stop().await;
}

/// An export that fails (here: interrupted three times, so failed at its next claim) is an
/// `export.failed` event with the export's error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_export_is_an_export_failed_event() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    let receiver = Receiver::start(&[], Reply::Status(204)).await;
    let app = spawn_app_without_workers(dir.clone(), |c| c.webhooks.retry_scale = FAST).await;
    let (_, secret) = hook(&app, &receiver.url("/failed"), &["export.failed"]).await;
    let sid = schema_with_results(&app, 5).await;
    let (status, e) = send(app.post_json("/v1/exports", &export_body(&sid))).await;
    assert_eq!(status, 201, "{e}");
    let id = e["id"].as_str().unwrap().to_string();
    app.stop().await;
    let changed = helpers::beside(&dir, |c| {
        c.exec(
            "UPDATE exports SET status = 'PROCESSING', claimed_by = 'a-run-that-died', attempts = 3 WHERE id = ?1",
            args![&id],
        )
    });
    assert_eq!(changed.unwrap(), 1);

    let app = spawn_app_with(dir, |c| c.webhooks.retry_scale = FAST).await;
    let got = receiver.wait_event("export.failed", &id, 30).await;
    assert!(signature_valid(&got, &secret));
    let data = &got.json()["data"];
    assert_eq!(data["status"], "FAILED");
    assert!(data["error"].as_str().unwrap().contains("interrupted 3 times"), "{data}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_that_fails_twice_gets_exactly_one_success_after_the_retries() {
    let (app, _tmp) = app_with_scale(FAST).await;
    let receiver = Receiver::start(&[Reply::Status(500), Reply::Status(503)], Reply::Status(200)).await;
    let (hook_id, secret) = hook(&app, &receiver.url("/flaky"), &["export.completed"]).await;
    let sid = schema_with_results(&app, 10).await;
    let export = completed_export(&app, &sid).await;

    // between the attempts the delivery is pending, with what went wrong
    let pending = poll_until(within(30), "a failed attempt to be recorded", || async {
        let ds = deliveries(&app, &hook_id).await;
        ds.into_iter().find(|d| d["attempts"].as_i64() >= Some(1))
    })
    .await;
    if pending["status"] == "pending" {
        assert!(pending["last_status_code"] == 500 || pending["last_status_code"] == 503, "{pending}");
        assert!(pending["last_error"].as_str().unwrap().contains("answered 50"), "{pending}");
        helpers::assert_time(&pending["next_attempt_at"], "next_attempt_at");
    }
    let done = poll_until(within(30), "the delivery to succeed", || async {
        let ds = deliveries(&app, &hook_id).await;
        ds.into_iter().find(|d| d["status"] != "pending")
    })
    .await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["attempts"], 3, "{done}");
    assert_eq!(done["last_status_code"], 200, "{done}");
    // three requests, the same event each time, each signed; no request after the success
    let got = receiver.received();
    assert_eq!(got.len(), 3, "{got:?}");
    for r in &got {
        assert!(signature_valid(r, &secret));
        assert_eq!(r.json()["id"], done["event_id"]);
        assert_eq!(r.json()["data"]["id"], export["id"]);
        assert_eq!(r.body, got[0].body, "the same body at every attempt");
    }
    let m = app.client.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(m.contains("exports_webhook_attempts_total{outcome=\"retried\"} 2"), "{m}");
    assert!(m.contains("exports_webhook_attempts_total{outcome=\"succeeded\"} 1"), "{m}");
    app.stop().await;
}

/// A delivery that never gets a 2xx is `failed` once its (scaled) day of retries is over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_that_never_succeeds_ends_failed() {
    // a day is 8.6 s here
    let (app, _tmp) = app_with_scale(0.0001).await;
    let receiver = Receiver::start(&[], Reply::Status(500)).await;
    let (hook_id, _) = hook(&app, &receiver.url("/down"), &["*"]).await;
    let sid = schema_with_results(&app, 3).await;
    completed_export(&app, &sid).await;
    let d = poll_until(within(60), "the delivery to fail for good", || async {
        deliveries(&app, &hook_id).await.into_iter().find(|d| d["status"] == "failed")
    })
    .await;
    assert!(d["attempts"].as_i64().unwrap() >= 5, "{d}");
    assert_eq!(d["last_status_code"], 500);
    assert!(d["next_attempt_at"].is_null(), "{d}");
    assert_eq!(receiver.received().len() as i64, d["attempts"].as_i64().unwrap());
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_receiver_delays_neither_other_endpoints_nor_exports() {
    let (app, _tmp) = app_with_scale(FAST).await;
    let hanging = Receiver::start(&[], Reply::Hang).await;
    let healthy = Receiver::start(&[], Reply::Status(200)).await;
    // the hanging endpoint is created first, so its deliveries are picked first
    let (hanging_id, _) = hook(&app, &hanging.url("/hang"), &["export.completed"]).await;
    hook(&app, &healthy.url("/ok"), &["export.completed"]).await;
    let sid = schema_with_results(&app, 10).await;

    let first = completed_export(&app, &sid).await;
    healthy.wait_event("export.completed", first["id"].as_str().unwrap(), 30).await;
    hanging.wait_for(1, 30).await;
    // exports go on, and their events reach the healthy endpoint, while the hanging endpoint
    // has not answered its first request
    let second = completed_export(&app, &sid).await;
    healthy.wait_event("export.completed", second["id"].as_str().unwrap(), 30).await;
    let stuck = deliveries(&app, &hanging_id).await;
    assert_eq!(stuck.len(), 2, "{stuck:?}");
    assert!(
        stuck.iter().all(|d| d["status"] == "pending" && d["attempts"] == 0),
        "the hanging endpoint's first attempts are still open: {stuck:?}"
    );
    // and the API answers
    let (status, _) = send(app.get("/v1/webhooks")).await;
    assert_eq!(status, 200);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotating_the_secret_signs_later_deliveries_with_the_new_one() {
    let (app, _tmp) = app_with_scale(FAST).await;
    let receiver = Receiver::start(&[], Reply::Status(200)).await;
    let (id, old) = hook(&app, &receiver.url("/r"), &["export.completed"]).await;
    let sid = schema_with_results(&app, 5).await;
    let e1 = completed_export(&app, &sid).await;
    let r1 = receiver.wait_event("export.completed", e1["id"].as_str().unwrap(), 30).await;
    assert!(signature_valid(&r1, &old));

    let (status, rotated) = send(app.post_json(&format!("/v1/webhooks/{id}/rotate-secret"), &json!({}))).await;
    assert_eq!(status, 200, "{rotated}");
    let new = rotated["secret"].as_str().unwrap().to_string();
    assert!(new.starts_with("whsec_") && new != old, "{rotated}");
    assert_eq!(rotated["id"], id.as_str());
    // the secret is shown only when made
    let shown = get_json(&app, &format!("/v1/webhooks/{id}")).await;
    assert!(shown.get("secret").is_none(), "{shown}");

    let e2 = completed_export(&app, &sid).await;
    let r2 = receiver.wait_event("export.completed", e2["id"].as_str().unwrap(), 30).await;
    assert!(signature_valid(&r2, &new), "signed with the new secret");
    assert!(!signature_valid(&r2, &old), "not with the old one");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_endpoint_gets_nothing_more() {
    // retries every few tens of ms at first
    let (app, _tmp) = app_with_scale(0.001).await;
    let doomed = Receiver::start(&[], Reply::Status(500)).await;
    let control = Receiver::start(&[], Reply::Status(500)).await;
    let (doomed_id, _) = hook(&app, &doomed.url("/doomed"), &["*"]).await;
    hook(&app, &control.url("/control"), &["*"]).await;
    let sid = schema_with_results(&app, 5).await;
    let e1 = completed_export(&app, &sid).await;
    doomed.wait_for(1, 30).await;

    let r = app.delete(&format!("/v1/webhooks/{doomed_id}")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let at_delete = doomed.received().len();
    for path in [format!("/v1/webhooks/{doomed_id}"), format!("/v1/webhooks/{doomed_id}/deliveries")] {
        assert_error(app.get(&path).send().await.unwrap(), 404).await;
    }
    assert_error(app.delete(&format!("/v1/webhooks/{doomed_id}")).send().await.unwrap(), 404).await;

    // the control endpoint keeps getting retries of the first event and gets the second: by
    // then the deleted endpoint would have had both too
    let control_at_delete = control.received().len();
    let e2 = completed_export(&app, &sid).await;
    control.wait_event("export.completed", e2["id"].as_str().unwrap(), 30).await;
    poll_until(within(30), "two more retries at the control endpoint", || {
        let e1_id = e1["id"].clone();
        let n = control.received().iter().skip(control_at_delete).filter(|r| r.json()["data"]["id"] == e1_id).count();
        std::future::ready((n >= 2).then_some(()))
    })
    .await;
    let after = doomed.received();
    // an attempt already under way when it was deleted may still land; nothing after it
    assert!(after.len() <= at_delete + 1, "{} requests after the delete", after.len() - at_delete);
    assert!(after.iter().all(|r| r.json()["data"]["id"] == e1["id"]), "no later event reached it");
    app.stop().await;
}

#[tokio::test]
async fn bad_endpoints_are_400s_and_create_nothing() {
    let (app, _tmp) = app_with_scale(1.0).await;
    let cases: Vec<(Value, &str)> = vec![
        (json!({"url": "ftp://example.com/x", "events": ["*"]}), "http or https"),
        (json!({"url": "/relative", "events": ["*"]}), "url"),
        (json!({"url": "not a url", "events": ["*"]}), "url"),
        (json!({"url": "https://example.com/", "events": ["export.done"]}), "export.completed"),
        (json!({"url": "https://example.com/", "events": ["*", "export.failed"]}), "*"),
        (json!({"url": "https://example.com/", "events": []}), "events"),
        (json!({"url": "https://example.com/"}), "events"),
        (json!({"events": ["*"]}), "url"),
        (json!({"url": 7, "events": ["*"]}), "url"),
        (json!({"url": "https://example.com/", "events": ["*"], "description": "x".repeat(501)}), "description"),
        (json!({"url": "https://example.com/", "events": ["*"], "secret": "mine"}), "secret"),
    ];
    for (body, needle) in cases {
        let r = app.post_json("/v1/webhooks", &body).send().await.unwrap();
        let msg = assert_error(r, 400).await;
        assert!(msg.contains(needle), "{body}: {msg}");
    }
    let msg = assert_error(
        app.post_json("/v1/webhooks", &json!({"url": "https://example.com/", "events": ["export.done"]}))
            .send()
            .await
            .unwrap(),
        400,
    )
    .await;
    for allowed in ["export.completed", "export.failed", "export.deleted"] {
        assert!(msg.contains(allowed), "the message lists the allowed events: {msg}");
    }
    let list = get_json(&app, "/v1/webhooks").await;
    assert_eq!(list["meta"]["total"], 0, "{list}");

    // a valid one, seen by its own team only
    let (status, created) = send(app.post_json(
        "/v1/webhooks",
        &json!({"url": "https://example.com/hook", "events": ["export.failed"], "description": "ops"}),
    ))
    .await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap();
    let list = get_json(&app, "/v1/webhooks").await;
    assert_eq!(list["meta"]["total"], 1);
    assert_eq!(list["data"][0]["id"], id);
    assert_eq!(list["data"][0]["events"], json!(["export.failed"]));
    assert!(list["data"][0].get("secret").is_none(), "{list}");
    // paged and filtered like the other lists
    let trimmed = get_json(&app, "/v1/webhooks?fields=id,url&search=EXAMPLE.com&limit=5").await;
    assert_eq!(trimmed["meta"]["total"], 1, "{trimmed}");
    assert_eq!(trimmed["data"][0].as_object().unwrap().len(), 2, "{trimmed}");
    assert_eq!(get_json(&app, "/v1/webhooks?search=nowhere").await["meta"]["total"], 0);
    app.assert_params_refused("/v1/webhooks", &[("limit", "0"), ("fields", "secret"), ("sort_by", "url")]).await;
    app.assert_params_refused(&format!("/v1/webhooks/{id}/deliveries"), &[("limit", "101")]).await;
    let other = app.new_team_key("other-team");
    for (method, path) in [
        ("GET", format!("/v1/webhooks/{id}")),
        ("GET", format!("/v1/webhooks/{id}/deliveries")),
        ("POST", format!("/v1/webhooks/{id}/rotate-secret")),
        ("DELETE", format!("/v1/webhooks/{id}")),
    ] {
        let rb = match method {
            "GET" => app.client.get(app.url(&path)),
            "POST" => app.client.post(app.url(&path)),
            _ => app.client.delete(app.url(&path)),
        };
        assert_error(rb.header("x-api-key", &other).send().await.unwrap(), 404).await;
    }
    let theirs = app.client.get(app.url("/v1/webhooks")).header("x-api-key", &other).send().await.unwrap();
    assert_eq!(theirs.json::<Value>().await.unwrap()["meta"]["total"], 0);
    // still there, secret unchanged (its deliveries would verify as before)
    get_json(&app, &format!("/v1/webhooks/{id}")).await;
    assert_error(app.get("/v1/webhooks/not-a-uuid").send().await.unwrap(), 400).await;
    app.stop().await;
}

/// The real binary: deliveries queued while the receiver is down survive the server being
/// killed and are delivered after the next start; `--webhook-allow-private false` refuses
/// loopback URLs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_queued_before_a_restart_are_delivered_after_it() {
    let tmp = tempfile::tempdir().unwrap();
    let key = "restart-key-0123456789";
    let serve = || {
        ServeCmd::new(tmp.path()).env("EXPORTS_API_KEY", key).args(&["--webhook-retry-scale", "0.01", "--workers", "1"])
    };
    // a port with nobody listening (yet)
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("http://127.0.0.1:{port}/later");

    let server = serve().start().await;
    let app = TestApp::remote(&server.base_url(), key);
    let (hook_id, secret) = hook(&app, &url, &["export.completed"]).await;
    let sid = schema_with_results(&app, 20).await;
    let export = completed_export(&app, &sid).await;
    let failed = poll_until(within(30), "an attempt to fail (nobody listens)", || async {
        deliveries(&app, &hook_id).await.into_iter().find(|d| d["attempts"].as_i64() >= Some(1))
    })
    .await;
    assert_eq!(failed["status"], "pending", "{failed}");
    assert!(failed["last_status_code"].is_null(), "no answer: {failed}");
    assert!(!failed["last_error"].as_str().unwrap().is_empty());
    // killed between retries, as a crash would
    let mut server = server;
    server.kill();

    let receiver = Receiver::start_on(format!("127.0.0.1:{port}").parse().unwrap(), &[], Reply::Status(200)).await;
    let server = serve().start().await;
    let app = TestApp::remote(&server.base_url(), key);
    let got = receiver.wait_event("export.completed", export["id"].as_str().unwrap(), 60).await;
    assert!(signature_valid(&got, &secret));
    assert_eq!(got.json()["id"], failed["event_id"], "the event queued before the restart");
    let done = poll_until(within(30), "the delivery to be recorded", || async {
        deliveries(&app, &hook_id).await.into_iter().find(|d| d["status"] == "succeeded")
    })
    .await;
    assert!(done["attempts"].as_i64().unwrap() >= 2, "{done}");
    server.stop().await;

    // the same binary refusing private addresses
    let server = serve().args(&["--webhook-allow-private", "false"]).start().await;
    let app = TestApp::remote(&server.base_url(), key);
    for private in ["http://127.0.0.1/hook", "http://localhost:9/x", "http://[::1]/", "http://10.0.0.8/"] {
        let r = app.post_json("/v1/webhooks", &json!({"url": private, "events": ["*"]})).send().await.unwrap();
        let msg = assert_error(r, 400).await;
        assert!(msg.contains("--webhook-allow-private"), "{private}: {msg}");
    }
    let host = hostname();
    let resolves_private = tokio::net::lookup_host((host.as_str(), 0))
        .await
        .map(|mut a| a.any(|a| a.ip().is_loopback() || matches!(a.ip(), std::net::IpAddr::V4(v) if v.is_private())))
        .unwrap_or(false);
    if resolves_private {
        // a host name that resolves to a private address is refused when created ...
        let sneaky = Receiver::start_on("0.0.0.0:0".parse().unwrap(), &[], Reply::Status(200)).await;
        let sneaky_url = format!("http://{host}:{}/x", sneaky.addr.port());
        let r = app.post_json("/v1/webhooks", &json!({"url": sneaky_url, "events": ["*"]})).send().await.unwrap();
        let msg = assert_error(r, 400).await;
        assert!(msg.contains("--webhook-allow-private") && msg.contains(&host), "{msg}");
        server.stop().await;
        // ... and at delivery, after resolution: an endpoint created while private addresses
        // were allowed gets nothing once they are not
        let server = serve().start().await;
        let app = TestApp::remote(&server.base_url(), key);
        let (sneaky_id, _) = hook(&app, &sneaky_url, &["*"]).await;
        server.stop().await;
        let server = serve().args(&["--webhook-allow-private", "false"]).start().await;
        let app = TestApp::remote(&server.base_url(), key);
        let e = completed_export(&app, &sid).await;
        let refused = poll_until(within(30), "the delivery to be refused", || async {
            deliveries(&app, &sneaky_id)
                .await
                .into_iter()
                .find(|d| d["export_id"] == e["id"] && d["attempts"].as_i64() >= Some(1))
        })
        .await;
        assert!(refused["last_error"].as_str().unwrap().contains("--webhook-allow-private"), "{refused}");
        assert_eq!(refused["status"], "pending", "a refusal is a failed attempt, tried again");
        assert!(sneaky.received().is_empty());
        server.stop().await;
    } else {
        server.stop().await;
        eprintln!("skipped the resolution check: {host} does not resolve to a private address here");
    }
}

fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most buf.len() bytes into buf
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    assert_eq!(rc, 0);
    let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).to_string()
}
