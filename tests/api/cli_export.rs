//! `exports-api export` has every option of `POST /v1/exports`, writes the server's bytes for
//! each, refuses what the API refuses with the same words (the field called by its flag), and
//! says which `--out` it cannot write, writing nothing.

use serde_json::{json, Value};

use crate::helpers::{self, bin, run, text};

/// The command-line name of an API field: `options.delimiter` → `--delimiter`.
fn flag_of(api_field: &str) -> String {
    let name = api_field.trim_start_matches("options.");
    let name = match name {
        "start_date" => "start",
        "end_date" => "end",
        "schema_id" => "schema",
        n => n,
    };
    format!("--{}", name.replace('_', "-"))
}

/// `export` arguments for a `POST /v1/exports` body.
fn args_of(body: &Value) -> Vec<String> {
    let mut args = vec!["export".to_string()];
    for (k, v) in body.as_object().unwrap() {
        match v {
            Value::Object(options) => {
                for (k, v) in options {
                    match v {
                        Value::Bool(b) => args.push(format!("{}={b}", flag_of(k))),
                        Value::String(s) => args.extend([flag_of(k), s.clone()]),
                        other => panic!("option {k}: {other}"),
                    }
                }
            }
            Value::String(s) => args.extend([flag_of(k), s.clone()]),
            Value::Array(a) => {
                let list: Vec<&str> = a.iter().map(|v| v.as_str().unwrap()).collect();
                args.extend([flag_of(k), list.join(",")]);
            }
            other => panic!("{k}: {other}"),
        }
    }
    args
}

#[test]
fn every_api_field_of_a_new_export_has_a_flag() {
    let doc: Value = serde_json::from_slice(&bin().arg("openapi").output().unwrap().stdout).unwrap();
    let help = text(&bin().args(["export", "--help"]).output().unwrap().stdout);
    let schemas = &doc["components"]["schemas"];
    let mut fields: Vec<String> = Vec::new();
    for (k, _) in schemas["CreateExport"]["properties"].as_object().unwrap() {
        if k != "options" {
            fields.push(k.clone());
        }
    }
    for (k, _) in schemas["ExportOptionsInput"]["properties"].as_object().unwrap() {
        fields.push(format!("options.{k}"));
    }
    assert!(fields.len() >= 9, "{fields:?}");
    for field in &fields {
        let flag = flag_of(field);
        assert!(
            help.contains(&format!("{flag} ")) || help.contains(&format!("{flag}[=")),
            "{field}: no {flag} in\n{help}"
        );
    }
    // the API's own names work too
    for alias in ["--schema-id", "--start-date", "--end-date"] {
        assert!(help.contains(alias), "{alias}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_options_write_what_the_server_writes_and_bad_ones_are_refused_alike() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let files = tempfile::tempdir().unwrap();
    let app = helpers::spawn_app_with(dir.to_path_buf(), |_| {}).await;
    let (schema, nd) = helpers::invoices(300, 7);
    let sid = app.create_schema(&schema).await["id"].as_str().unwrap().to_string();
    app.upload_ndjson(&sid, nd).await;
    let range = json!({"schema_id": sid, "start_date": "2024-01-01", "end_date": "2024-03-31"});
    let with = |extra: Value| {
        let mut b = range.clone();
        b.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        b
    };

    let cases = [
        with(json!({"options": {"header": "label", "delimiter": ";", "bom": true}})),
        with(
            json!({"expand_array": "line_items", "options": {"delimiter": "\t", "formula_guard": false, "gzip": true}}),
        ),
        with(
            json!({"options": {"header": "key", "bom": false, "gzip": false, "formula_guard": true, "delimiter": "|"}}),
        ),
        with(
            json!({"format": "jsonl", "expand_array": "line_items", "columns": ["line_items.description", "createdAt", "total"],
                    "options": {"timezone": "Asia/Kolkata", "gzip": true}}),
        ),
        with(json!({"format": "csv", "columns": ["total", "id"], "options": {"timezone": "Europe/Paris"}})),
    ];
    for (i, body) in cases.iter().enumerate() {
        let e = app.export_and_wait(body).await;
        assert_eq!(e["status"], "COMPLETED", "{e}");
        let server = app.client.get(app.download_url(e["id"].as_str().unwrap()).await).send().await.unwrap();
        let server = server.bytes().await.unwrap().to_vec();
        let out_file = files.path().join(format!("case-{i}.csv"));
        let mut args = args_of(body);
        args.extend(["--out".into(), out_file.display().to_string()]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = run(dir, &args);
        assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
        assert!(std::fs::read(&out_file).unwrap() == server, "{args:?} differs from the server's file for {body}");
    }
    // the options really differ: a label header, a BOM, gzip
    let first = std::fs::read(files.path().join("case-0.csv")).unwrap();
    assert!(first.starts_with("\u{feff}".as_bytes()), "bom");
    assert!(std::fs::read(files.path().join("case-1.csv")).unwrap().starts_with(&[0x1f, 0x8b]), "gzip");

    // what the API refuses, the command line refuses with the same words, and writes nothing
    let refused = [
        with(json!({"start_date": "soon"})),
        with(json!({"end_date": "2024-13-45"})),
        with(json!({"start_date": "2024-04-01"})),
        with(json!({"options": {"delimiter": "x"}})),
        with(json!({"expand_array": "customer"})),
        with(json!({"expand_array": "nope"})),
    ];
    for body in &refused {
        let r = app.post_json("/v1/exports", body).send().await.unwrap();
        let api = helpers::assert_error(r, 400).await;
        let cli_words = ["options.delimiter", "start_date", "end_date"]
            .iter()
            .fold(api.clone(), |m, field| m.replace(field, &flag_of(field)));
        let out_file = files.path().join("refused.csv");
        let mut args = args_of(body);
        args.extend(["--out".into(), out_file.display().to_string()]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = run(dir, &args);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert_eq!(text(&out.stderr).trim(), format!("error: {cli_words}"), "API: {api}");
        assert!(!out_file.exists(), "{args:?} wrote {}", out_file.display());
    }
    // formats.md's refusals, with the flags' names
    let refused = [
        (with(json!({"options": {"timezone": "Mars/Olympus"}})), "options.timezone", "--timezone"),
        (with(json!({"format": "jsonl", "options": {"bom": true}})), "options.bom", "--bom"),
        (with(json!({"format": "xlsx", "options": {"gzip": true}})), "options.gzip", "--gzip"),
        (with(json!({"columns": ["total", "nope"]})), "columns:", "--columns:"),
    ];
    for (body, api_name, flag) in &refused {
        let r = app.post_json("/v1/exports", body).send().await.unwrap();
        let api = helpers::assert_error(r, 400).await;
        assert!(api.starts_with(api_name), "{api}");
        let cli_words = format!("{flag}{}", &api[api_name.len()..]).replace("to format ", "to --format ");
        let mut args = args_of(body);
        args.extend(["--out".into(), files.path().join("refused.csv").display().to_string()]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = run(dir, &args);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert_eq!(text(&out.stderr).trim(), format!("error: {cli_words}"), "API: {api}");
    }
    assert_eq!(std::fs::read_dir(files.path()).unwrap().count(), 5, "only the five good exports were written");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_out_that_cannot_be_written_is_named_and_nothing_is_written() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let app = helpers::spawn_app_with(dir.clone(), |_| {}).await;
    let (schema, nd) = helpers::invoices(20, 3);
    let sid = app.create_schema(&schema).await["id"].as_str().unwrap().to_string();
    app.upload_ndjson(&sid, nd).await;
    app.stop().await;
    let base = ["export", "--schema", &sid, "--start", "2024-01-01", "--end", "2024-12-31", "--out"];
    // every file outside the data folder, in order
    let files = || {
        let mut all = helpers::walk(tmp.path());
        all.retain(|p| !p.starts_with(&dir));
        all.sort();
        all
    };
    let before = files();

    let missing = tmp.path().join("missing").join("x.csv");
    let out = run(&dir, &[&base[..], &[missing.to_str().unwrap()]].concat());
    assert!(!out.status.success());
    let msg = text(&out.stderr);
    assert!(msg.contains(&missing.display().to_string()), "names the path: {msg}");
    assert!(msg.contains("does not exist") && msg.contains(&missing.parent().unwrap().display().to_string()), "{msg}");
    assert!(msg.contains("Nothing was written"), "{msg}");

    let folder = tmp.path();
    let out = run(&dir, &[&base[..], &[folder.to_str().unwrap()]].concat());
    assert!(!out.status.success());
    let msg = text(&out.stderr);
    assert!(msg.contains(&format!("--out {}: that is a folder", folder.display())), "{msg}");

    // a file where the folder should be
    let file = tmp.path().join("plain");
    std::fs::write(&file, "x").unwrap();
    let under = file.join("x.csv");
    let out = run(&dir, &[&base[..], &[under.to_str().unwrap()]].concat());
    assert!(!out.status.success());
    let msg = text(&out.stderr);
    assert!(msg.contains(&under.display().to_string()) && msg.contains("is not a folder"), "{msg}");

    let mut after = files();
    after.retain(|p| p != &file);
    assert_eq!(after, before, "a refused --out wrote nothing");
    assert!(!missing.parent().unwrap().exists(), "the missing folder was not created");
}
