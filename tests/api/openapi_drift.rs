//! The committed `openapi/openapi.json` must be what the service serves and what
//! `exports-api openapi` prints (api.md: "the committed `openapi/openapi.json` is its output").

use std::path::Path;
use std::process::Command;

use crate::helpers;
use serde_json::Value;

const FIX: &str =
    "openapi/openapi.json is out of date: run `cargo run -- openapi > openapi/openapi.json` and commit the result";

fn committed() -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("openapi/openapi.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}\n{FIX}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}\n{FIX}", path.display()))
}

fn from_cli() -> Value {
    let data = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_exports-api"))
        .arg("openapi")
        .env("EXPORTS_DATA_DIR", data.path())
        .output()
        .expect("run exports-api openapi");
    assert!(out.status.success(), "`exports-api openapi` failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("`exports-api openapi` prints JSON")
}

/// The first place where two JSON documents differ, as a JSON pointer with both values.
fn first_difference(a: &Value, b: &Value, at: &str) -> Option<String> {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            for (k, v) in x {
                let p = format!("{at}/{}", k.replace('~', "~0").replace('/', "~1"));
                match y.get(k) {
                    Some(w) => {
                        if let Some(d) = first_difference(v, w, &p) {
                            return Some(d);
                        }
                    }
                    None => return Some(format!("{p}: only on the left")),
                }
            }
            y.keys()
                .find(|k| !x.contains_key(*k))
                .map(|k| format!("{at}/{}: only on the right", k.replace('~', "~0").replace('/', "~1")))
        }
        (Value::Array(x), Value::Array(y)) => {
            for (i, (v, w)) in x.iter().zip(y).enumerate() {
                if let Some(d) = first_difference(v, w, &format!("{at}/{i}")) {
                    return Some(d);
                }
            }
            (x.len() != y.len()).then(|| format!("{at}: {} items vs {}", x.len(), y.len()))
        }
        _ => (a != b).then(|| {
            let short = |v: &Value| {
                let s = v.to_string();
                if s.len() > 200 {
                    format!("{}…", &s[..s.char_indices().nth(200).map_or(s.len(), |(i, _)| i)])
                } else {
                    s
                }
            };
            format!("{}: {} vs {}", if at.is_empty() { "/" } else { at }, short(a), short(b))
        }),
    }
}

fn assert_same(left: &Value, left_name: &str, right: &Value, right_name: &str) {
    if left != right {
        let d = first_difference(left, right, "").unwrap_or_else(|| "(key order only)".into());
        panic!("{left_name} differs from {right_name}; first difference at {d}\n{FIX}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn served_openapi_equals_committed_file() {
    let app = helpers::spawn_app().await;
    let r = app.client.get(app.url("/openapi.json")).send().await.unwrap();
    assert_eq!(r.status(), 200, "GET /openapi.json");
    let served: Value = r.json().await.expect("GET /openapi.json is JSON");
    assert!(served["openapi"].as_str().is_some_and(|v| v.starts_with("3.")), "not OpenAPI 3");
    assert_same(&served, "GET /openapi.json", &committed(), "openapi/openapi.json");
    app.stop().await;
}

#[test]
fn cli_openapi_equals_committed_file() {
    assert_same(&from_cli(), "`exports-api openapi`", &committed(), "openapi/openapi.json");
}

#[test]
fn difference_finder_points_at_the_change() {
    let a = serde_json::json!({"paths": {"/v1/x": {"get": {"summary": "a"}}}, "n": [1, 2]});
    let b = serde_json::json!({"paths": {"/v1/x": {"get": {"summary": "b"}}}, "n": [1, 2]});
    assert_eq!(first_difference(&a, &b, "").unwrap(), "/paths/~1v1~1x/get/summary: \"a\" vs \"b\"");
    let c = serde_json::json!({"paths": {"/v1/x": {"get": {"summary": "a"}}}, "n": [1]});
    assert_eq!(first_difference(&a, &c, "").unwrap(), "/n: 2 items vs 1");
    assert_eq!(first_difference(&a, &a, ""), None);
}
