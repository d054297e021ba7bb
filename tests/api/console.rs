//! The browser console's server side: `GET /v1/team`, and the embedded files at `/`,
//! `/assets/…` and `/favicon.ico` with their content types, policy and cache headers.
//! (The console itself is tested in a real browser: `tests/e2e/`.)

use crate::helpers::{assert_error, send, spawn_app};
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn team_answers_the_keys_own_team() {
    let app = spawn_app().await;
    let (status, v) = send(app.get("/v1/team")).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["name"], "default", "{v}");
    let default_id = v["id"].as_str().unwrap().to_string();
    assert!(crate::helpers::is_uuid(&default_id), "{v}");
    assert_eq!(v.as_object().unwrap().len(), 2, "only id and name: {v}");

    let other = app.new_team_key("acme");
    let (status, v) = send(app.client.get(app.url("/v1/team")).header("x-api-key", other.trim())).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["name"], "acme", "{v}");
    assert_ne!(v["id"], default_id.as_str(), "{v}");

    let r = app.client.get(app.url("/v1/team")).header("x-api-key", "not-a-key-at-all").send().await.unwrap();
    assert_error(r, 401).await;
    app.stop().await;
}

fn header(r: &reqwest::Response, name: &str) -> String {
    r.headers().get(name).map(|v| v.to_str().unwrap().to_string()).unwrap_or_default()
}

/// The page and every module it loads (found by following `src=`, `href=` and `import … from`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_and_its_modules_are_served_with_policy_and_validators() {
    let app = spawn_app().await;
    let mut todo = vec!["/".to_string()];
    let mut seen = std::collections::BTreeSet::new();
    while let Some(path) = todo.pop() {
        if !seen.insert(path.clone()) {
            continue;
        }
        let r = app.client.get(app.url(&path)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
        let ct = header(&r, "content-type");
        let want = match path.rsplit('.').next().unwrap() {
            "js" => "text/javascript",
            "css" => "text/css",
            "svg" => "image/svg+xml",
            _ => "text/html",
        };
        assert!(ct.starts_with(want), "{path}: content-type {ct}");
        let csp = header(&r, "content-security-policy");
        assert!(csp.contains("default-src 'self'") && csp.contains("script-src 'self'"), "{path}: {csp}");
        assert!(!csp.contains("unsafe-inline"), "{path}: {csp}");
        assert_eq!(header(&r, "cache-control"), "no-cache", "{path}");
        assert_eq!(header(&r, "x-content-type-options"), "nosniff", "{path}");
        let etag = header(&r, "etag");
        assert!(etag.starts_with('"') && etag.len() > 10, "{path}: etag {etag}");
        let text = r.text().await.unwrap();
        assert!(
            !text.contains("http://") && !text.contains("https://") || path.ends_with(".svg"),
            "{path} names an outside URL"
        );
        // a browser revalidating gets 304 with no body
        let r = app.client.get(app.url(&path)).header("if-none-match", &etag).send().await.unwrap();
        assert_eq!(r.status(), 304, "{path}");
        assert_eq!(header(&r, "etag"), etag);
        assert!(r.bytes().await.unwrap().is_empty());
        // what it refers to
        let dir = path.rsplit_once('/').map(|(d, _)| d.to_string()).unwrap_or_default();
        for (open, close) in [("src=\"", '"'), ("href=\"", '"'), ("from '", '\'')] {
            for part in text.split(open).skip(1) {
                let target = &part[..part.find(close).unwrap()];
                if target.starts_with('#') || target.starts_with("/docs") {
                    continue;
                }
                let abs = match target.strip_prefix("./") {
                    Some(rel) => format!("{dir}/{rel}"),
                    None => target.to_string(),
                };
                todo.push(abs);
            }
        }
    }
    for want in ["/assets/app.js", "/assets/style.css", "/assets/exports.js", "/assets/favicon.svg"] {
        assert!(seen.contains(want), "{want} not reached: {seen:?}");
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn favicon_missing_assets_and_docs() {
    let app = spawn_app().await;
    let r = app.client.get(app.url("/favicon.ico")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(header(&r, "content-type").starts_with("image/"), "{}", header(&r, "content-type"));
    let body = r.bytes().await.unwrap();
    assert_eq!(&body[..4], &[0, 0, 1, 0], "an ICO file");

    let r = app.client.head(app.url("/")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(header(&r, "content-type").starts_with("text/html"));

    let r = app.client.get(app.url("/assets/nothing-here.js")).send().await.unwrap();
    assert_error(r, 404).await;
    let r = app.client.get(app.url("/assets/../Cargo.toml")).send().await.unwrap();
    assert_ne!(r.status(), 200);

    // Swagger UI keeps working: no console policy on it (it runs inline script)
    let r = app.client.get(app.url("/docs")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(header(&r, "content-security-policy").is_empty());
    // the API is not answered by the console
    let (status, v): (u16, Value) = send(app.get("/v1/exports")).await;
    assert_eq!(status, 200, "{v}");
    app.stop().await;
}
