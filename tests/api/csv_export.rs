//! The export CSV, checked cell by cell and byte by byte against an independent implementation
//! of `shared/spec/csv.md`, on the awkward data set from `shared/bench/gen_results.py`.
//!
//! Tests named `options_*` exercise the optional `options` object (csv.md, "Options").

use std::collections::HashMap;
use std::io::Read;

use crate::helpers;
use crate::helpers::TestApp;
use serde_json::{json, Map, Value};

// ---------------------------------------------------------------------------------------------
// An independent implementation of csv.md
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct Field {
    key: String,
    label: Option<String>,
    ty: String,
    fields: Option<Vec<Field>>,
}

fn parse_fields(v: &Value) -> Vec<Field> {
    v.as_array()
        .expect("fields is an array")
        .iter()
        .map(|f| Field {
            key: f["key"].as_str().expect("key").to_string(),
            label: f.get("label").and_then(Value::as_str).map(str::to_string),
            ty: f["type"].as_str().expect("type").to_string(),
            fields: f.get("fields").filter(|x| !x.is_null()).map(parse_fields),
        })
        .collect()
}

/// How the CSV is written (csv.md, "Options").
#[derive(Debug, Clone)]
struct Opts {
    delimiter: char,
    bom: bool,
    label_header: bool,
    formula_guard: bool,
    gzip: bool,
}

impl Default for Opts {
    fn default() -> Self {
        Opts { delimiter: ',', bom: false, label_header: false, formula_guard: true, gzip: false }
    }
}

#[derive(Debug, Clone)]
enum Col {
    Id,
    FileName,
    CreatedAt,
    /// A value at a path of object keys inside the extraction.
    Path(Vec<String>),
    /// A sub-field of the element of the expanded array (array of objects).
    ExpandSub(String),
    /// The element itself (array of scalars).
    ExpandWhole,
}

#[derive(Debug, Clone)]
struct Column {
    name: String,
    col: Col,
}

fn columns(fields: &[Field], expand: Option<&str>, label_header: bool) -> Vec<Column> {
    let mut out = vec![
        Column { name: "id".into(), col: Col::Id },
        Column { name: "file_name".into(), col: Col::FileName },
        Column { name: "createdAt".into(), col: Col::CreatedAt },
    ];
    walk_columns(fields, &[], &[], expand, label_header, &mut out);
    out
}

fn walk_columns(
    fields: &[Field],
    keys: &[String],
    labels: &[String],
    expand: Option<&str>,
    label_header: bool,
    out: &mut Vec<Column>,
) {
    let top = keys.is_empty();
    for f in fields {
        let mut k = keys.to_vec();
        k.push(f.key.clone());
        let mut l = labels.to_vec();
        l.push(f.label.clone().unwrap_or_else(|| f.key.clone()));
        let name = |k: &[String], l: &[String]| {
            if label_header {
                l.join(" / ")
            } else {
                k.join(".")
            }
        };
        if f.ty == "object" {
            walk_columns(f.fields.as_deref().unwrap_or(&[]), &k, &l, expand, label_header, out);
        } else if top && f.ty == "array" && expand == Some(f.key.as_str()) {
            match &f.fields {
                Some(subs) => {
                    for s in subs {
                        let mut sk = k.clone();
                        sk.push(s.key.clone());
                        let mut sl = l.clone();
                        sl.push(s.label.clone().unwrap_or_else(|| s.key.clone()));
                        out.push(Column { name: name(&sk, &sl), col: Col::ExpandSub(s.key.clone()) });
                    }
                }
                None => out.push(Column { name: name(&k, &l), col: Col::ExpandWhole }),
            }
        } else {
            out.push(Column { name: name(&k, &l), col: Col::Path(k) });
        }
    }
}

/// Python's `repr(float)`: shortest round-trip digits, always with a fraction or an exponent.
fn py_float(f: f64) -> String {
    let a = f.abs();
    if a != 0.0 && !(1e-4..1e16).contains(&a) {
        let s = format!("{f:e}");
        let (m, e) = s.split_once('e').unwrap();
        let e: i32 = e.parse().unwrap();
        return format!("{m}e{}{:02}", if e < 0 { '-' } else { '+' }, e.abs());
    }
    let s = format!("{f}");
    if s.contains('.') {
        s
    } else {
        format!("{s}.0")
    }
}

fn fmt_number(n: &serde_json::Number) -> String {
    if let Some(u) = n.as_u64() {
        u.to_string()
    } else if let Some(i) = n.as_i64() {
        i.to_string()
    } else {
        py_float(n.as_f64().unwrap())
    }
}

fn json_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Compact JSON text, keys in their stored order, numbers as written.
fn compact(v: &Value, out: &mut String) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&fmt_number(n)),
        Value::String(s) => json_string(s, out),
        Value::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                compact(x, out);
            }
            out.push(']');
        }
        Value::Object(o) => {
            out.push('{');
            for (i, (k, x)) in o.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                json_string(k, out);
                out.push(':');
                compact(x, out);
            }
            out.push('}');
        }
    }
}

fn guard(s: &str, opts: &Opts) -> String {
    if opts.formula_guard && s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{s}")
    } else {
        s.to_string()
    }
}

fn render(v: Option<&Value>, opts: &Opts) -> String {
    match v {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => guard(s, opts),
        Some(Value::Number(n)) => fmt_number(n),
        Some(Value::Bool(b)) => b.to_string(),
        Some(other) => {
            let mut s = String::new();
            compact(other, &mut s);
            s
        }
    }
}

#[derive(Debug, Clone)]
struct Res {
    id: String,
    file_name: Option<String>,
    created_at: String,
    extraction: Value,
}

fn at_path<'a>(root: &'a Value, path: &[String]) -> Option<&'a Value> {
    let mut cur = root;
    for k in path {
        cur = cur.as_object()?.get(k)?;
    }
    Some(cur)
}

/// The expected records (header first), as cell strings.
fn expected_records(fields: &[Field], results: &[Res], expand: Option<&str>, opts: &Opts) -> Vec<Vec<String>> {
    let cols = columns(fields, expand, opts.label_header);
    let mut sorted: Vec<&Res> = results.iter().collect();
    sorted.sort_by(|a, b| (&a.created_at, &a.id).cmp(&(&b.created_at, &b.id)));
    let mut out = vec![cols.iter().map(|c| c.name.clone()).collect::<Vec<_>>()];
    for r in sorted {
        let elems: Vec<Option<&Value>> = match expand {
            Some(k) => match r.extraction.get(k).and_then(Value::as_array) {
                Some(a) if !a.is_empty() => a.iter().map(Some).collect(),
                _ => vec![None],
            },
            None => vec![None],
        };
        for elem in elems {
            let rec = cols
                .iter()
                .map(|c| match &c.col {
                    Col::Id => r.id.clone(),
                    Col::FileName => r.file_name.as_deref().map(|s| guard(s, opts)).unwrap_or_default(),
                    Col::CreatedAt => r.created_at.clone(),
                    Col::Path(p) => render(at_path(&r.extraction, p), opts),
                    Col::ExpandSub(sub) => render(elem.and_then(Value::as_object).and_then(|o| o.get(sub)), opts),
                    Col::ExpandWhole => render(elem, opts),
                })
                .collect();
            out.push(rec);
        }
    }
    out
}

/// RFC 4180 as csv.md has it: quote only when needed, `\r\n` after every record.
fn write_csv(records: &[Vec<String>], opts: &Opts) -> Vec<u8> {
    let mut s = String::new();
    if opts.bom {
        s.push('\u{feff}');
    }
    for rec in records {
        for (i, cell) in rec.iter().enumerate() {
            if i > 0 {
                s.push(opts.delimiter);
            }
            if cell.contains([opts.delimiter, '"', '\r', '\n']) {
                s.push('"');
                s.push_str(&cell.replace('"', "\"\""));
                s.push('"');
            } else {
                s.push_str(cell);
            }
        }
        s.push_str("\r\n");
    }
    s.into_bytes()
}

// ---------------------------------------------------------------------------------------------
// Talking to the service
// ---------------------------------------------------------------------------------------------

/// The data set: the schema body, the NDJSON text, and each line parsed.
struct DataSet {
    schema: Value,
    ndjson: String,
    lines: Vec<Value>,
}

fn data_set(count: usize, seed: u64) -> DataSet {
    // Python's data on purpose: the reference below formats numbers as Python's repr, and the
    // spec's cases were written against this generator's awkward values
    let (schema, ndjson) = helpers::gen_results(count, seed);
    let lines = ndjson.lines().map(|l| serde_json::from_str(l).expect("NDJSON line")).collect();
    DataSet { schema, ndjson, lines }
}

/// Every result of a schema: file_name → id, paging through `GET /v1/results`.
async fn result_ids(app: &TestApp, schema_id: &str) -> HashMap<String, String> {
    let mut map = HashMap::new();
    let mut page = 1;
    loop {
        let path = format!("/v1/results?schema_id={schema_id}&limit=100&sort_by=createdAt&sort_order=asc&page={page}");
        let r = app.get(&path).send().await.unwrap();
        assert_eq!(r.status(), 200, "GET {path}");
        let v: Value = r.json().await.unwrap();
        let data = v["data"].as_array().expect("data array");
        if data.is_empty() {
            break;
        }
        for item in data {
            let id = item["id"].as_str().expect("result id").to_string();
            // a result without a file name is keyed by "" (at most one per data set)
            let name = item["file_name"].as_str().unwrap_or("").to_string();
            assert!(map.insert(name.clone(), id).is_none(), "file_name {name} listed twice");
        }
        page += 1;
        assert!(page < 10_000, "paging never ends");
    }
    map
}

/// Creates the schema, uploads the data set, and returns (schema id, fields, results with ids).
async fn load(app: &TestApp, ds: &DataSet) -> (String, Vec<Field>, Vec<Res>) {
    let schema = app.create_schema(&ds.schema).await;
    let schema_id = schema["id"].as_str().unwrap().to_string();
    let inserted = app.upload_ndjson(&schema_id, ds.ndjson.clone()).await;
    assert_eq!(inserted as usize, ds.lines.len(), "inserted");
    let ids = result_ids(app, &schema_id).await;
    assert_eq!(ids.len(), ds.lines.len(), "results listed");
    let results = ds
        .lines
        .iter()
        .map(|l| {
            let name = l["file_name"].as_str().unwrap_or("").to_string();
            Res {
                id: ids.get(&name).unwrap_or_else(|| panic!("no id for {name}")).clone(),
                file_name: l["file_name"].as_str().map(str::to_string),
                created_at: l["createdAt"].as_str().unwrap().to_string(),
                extraction: l["extraction"].clone(),
            }
        })
        .collect();
    (schema_id, parse_fields(&ds.schema["schema"]["fields"]), results)
}

/// GETs a signed URL (no API key): status, headers, body.
async fn fetch(app: &TestApp, url: &str) -> (u16, reqwest::header::HeaderMap, Vec<u8>) {
    let r = app.client.get(url).send().await.unwrap();
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let body = r.bytes().await.unwrap().to_vec();
    (status, headers, body)
}

/// Exports, waits, downloads; returns (final export JSON, raw downloaded bytes).
async fn export_download(app: &TestApp, body: &Value) -> (Value, Vec<u8>) {
    let e = app.export_and_wait(body).await;
    assert_eq!(e["status"], "COMPLETED", "export did not complete: {e}");
    let url = app.download_url(e["id"].as_str().unwrap()).await;
    let (status, _, bytes) = fetch(app, &url).await;
    assert_eq!(status, 200, "download {url}: {}", String::from_utf8_lossy(&bytes));
    (e, bytes)
}

/// Parses CSV bytes with the `csv` crate; checks every record ends with `\r\n`.
fn parse_csv(text: &[u8], delimiter: u8) -> Vec<Vec<String>> {
    // framing, checked on the bytes: outside quotes, every \n follows a \r and every \r
    // precedes a \n; the file ends with \r\n
    assert!(text.ends_with(b"\r\n"), "the last record must end with \\r\\n");
    let mut quoted = false;
    let mut terminators = 0;
    for (i, &b) in text.iter().enumerate() {
        match b {
            b'"' => quoted = !quoted,
            b'\n' if !quoted => {
                assert!(i > 0 && text[i - 1] == b'\r', "bare \\n at byte {i} outside quotes");
                terminators += 1;
            }
            b'\r' if !quoted => {
                assert!(text.get(i + 1) == Some(&b'\n'), "bare \\r at byte {i} outside quotes");
            }
            _ => {}
        }
    }
    assert!(!quoted, "unterminated quoted field");
    let mut rdr = csv::ReaderBuilder::new().has_headers(false).delimiter(delimiter).flexible(false).from_reader(text);
    let mut out = Vec::new();
    for (i, rec) in rdr.records().enumerate() {
        let rec = rec.unwrap_or_else(|e| panic!("record {i} does not parse: {e}"));
        out.push(rec.iter().map(str::to_string).collect::<Vec<_>>());
    }
    assert_eq!(terminators, out.len(), "records vs \\r\\n record terminators");
    out
}

/// Compares parsed records with the expected ones, cell by cell; then the bytes.
fn compare(actual: &[Vec<String>], expected: &[Vec<String>], what: &str) {
    assert!(!actual.is_empty(), "{what}: no header record");
    assert_eq!(actual[0], expected[0], "{what}: header");
    let mut problems = Vec::new();
    for (i, (a, e)) in actual.iter().zip(expected).enumerate().skip(1) {
        assert_eq!(a.len(), e.len(), "{what}: record {i} has {} fields, header has {}", a.len(), e.len());
        for (j, (ac, ec)) in a.iter().zip(e).enumerate() {
            if ac != ec && problems.len() < 15 {
                problems.push(format!(
                    "record {i} (id {}), column {:?}: expected {ec:?}, got {ac:?}",
                    e[0], expected[0][j]
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{what}: cells differ from csv.md:\n{}", problems.join("\n"));
    assert_eq!(
        actual.len(),
        expected.len(),
        "{what}: {} data records, expected {}",
        actual.len() - 1,
        expected.len() - 1
    );
}

fn compare_bytes(actual: &[u8], expected: &[u8], what: &str) {
    if actual == expected {
        return;
    }
    let at = actual.iter().zip(expected).position(|(a, b)| a != b).unwrap_or(actual.len().min(expected.len()));
    let lo = at.saturating_sub(60);
    panic!(
        "{what}: bytes differ from csv.md at byte {at} (lengths {} vs expected {}):\n got: {:?}\nwant: {:?}",
        actual.len(),
        expected.len(),
        String::from_utf8_lossy(&actual[lo..(at + 60).min(actual.len())]),
        String::from_utf8_lossy(&expected[lo..(at + 60).min(expected.len())]),
    );
}

/// The whole check of one export: figures, framing, encoding, every cell, every byte.
async fn check_export(
    app: &TestApp,
    schema_id: &str,
    fields: &[Field],
    results: &[Res],
    expand: Option<&str>,
    opts: &Opts,
    options: Option<Value>,
) {
    let mut body = json!({"schema_id": schema_id, "start_date": "2024-01-01", "end_date": "2024-03-31"});
    if let Some(k) = expand {
        body["expand_array"] = json!(k);
    }
    if let Some(o) = options {
        body["options"] = o;
    }
    let what = format!("export {body}");
    let (e, raw) = export_download(app, &body).await;
    assert_eq!(e["file_size"].as_u64(), Some(raw.len() as u64), "{what}: file_size vs downloaded bytes");

    let plain = if opts.gzip {
        assert!(raw.starts_with(&[0x1f, 0x8b]), "{what}: the file is not gzip");
        let mut out = Vec::new();
        flate2::read::MultiGzDecoder::new(&raw[..]).read_to_end(&mut out).expect("gunzip");
        out
    } else {
        raw
    };

    let text = if opts.bom {
        assert!(plain.starts_with(b"\xEF\xBB\xBF"), "{what}: no UTF-8 BOM although bom: true");
        &plain[3..]
    } else {
        assert!(!plain.starts_with(b"\xEF\xBB\xBF"), "{what}: a BOM was written although not asked for");
        &plain[..]
    };
    std::str::from_utf8(text).unwrap_or_else(|err| panic!("{what}: not UTF-8: {err}"));

    let expected = expected_records(fields, results, expand, opts);
    let actual = parse_csv(text, opts.delimiter as u8);
    compare(&actual, &expected, &what);
    assert_eq!(e["row_count"].as_u64(), Some(actual.len() as u64 - 1), "{what}: row_count vs data records in the file");
    compare_bytes(&plain, &write_csv(&expected, opts), &what);
}

async fn full_data_set_check(expand: Option<&str>) {
    let app = helpers::spawn_app().await;
    let ds = data_set(3000, 7);
    let (schema_id, fields, results) = load(&app, &ds).await;
    if let Some(k) = expand {
        // the data set must exercise the empty-array rule
        assert!(results.iter().any(|r| r.extraction[k].as_array().is_some_and(|a| a.is_empty())));
    }
    check_export(&app, &schema_id, &fields, &results, expand, &Opts::default(), None).await;
    app.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

#[test]
fn reference_number_formatting_is_python_repr() {
    let n = |s: &str| fmt_number(&serde_json::from_str::<serde_json::Number>(s).unwrap());
    assert_eq!(n("10"), "10");
    assert_eq!(n("-3"), "-3");
    assert_eq!(n("1250.0"), "1250.0");
    assert_eq!(n("0.0"), "0.0");
    assert_eq!(n("0.1"), "0.1");
    assert_eq!(n("19.99"), "19.99");
    assert_eq!(n("35999.6"), "35999.6");
    assert_eq!(n("1e+16"), "1e+16");
    assert_eq!(n("1.5e-05"), "1.5e-05");
    let mut s = String::new();
    compact(&json!({"a": [1, 2.5, "x\"\n"], "b": null, "c": true}), &mut s);
    assert_eq!(s, r#"{"a":[1,2.5,"x\"\n"],"b":null,"c":true}"#);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flat_export_matches_spec_cell_by_cell() {
    full_data_set_check(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expand_line_items_matches_spec_cell_by_cell() {
    full_data_set_check(Some("line_items")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expand_tags_matches_spec_cell_by_cell() {
    full_data_set_check(Some("tags")).await;
}

async fn post_result(app: &TestApp, schema_id: &str, name: &str, created: &str) -> String {
    let body = json!({"schema_id": schema_id, "file_name": name, "createdAt": created, "extraction": {"n": 1}});
    let r = app.post_json("/v1/results", &body).send().await.unwrap();
    let status = r.status();
    let v: Value = r.json().await.unwrap();
    assert_eq!(status, 201, "POST /v1/results: {v}");
    assert_eq!(v["createdAt"], created, "createdAt kept as given: {v}");
    v["id"].as_str().unwrap().to_string()
}

/// The file names in an export of `[start, end]`, in file order.
async fn exported_names(app: &TestApp, schema_id: &str, start: &str, end: &str) -> (Value, Vec<String>) {
    let body = json!({"schema_id": schema_id, "start_date": start, "end_date": end});
    let (e, bytes) = export_download(app, &body).await;
    let recs = parse_csv(&bytes, b',');
    assert_eq!(recs[0][..4], ["id", "file_name", "createdAt", "n"], "header");
    assert_eq!(e["row_count"].as_u64(), Some(recs.len() as u64 - 1), "row_count");
    (e, recs[1..].iter().map(|r| r[1].clone()).collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn date_range_bounds_are_inclusive_to_the_millisecond() {
    let app = helpers::spawn_app().await;
    let s =
        app.create_schema(&json!({"name": "Bounds", "schema": {"fields": [{"key": "n", "type": "integer"}]}})).await;
    let sid = s["id"].as_str().unwrap();
    for (name, at) in [
        ("before.pdf", "2024-02-10T09:59:59.999Z"),
        ("at-start.pdf", "2024-02-10T10:00:00.000Z"),
        ("inside.pdf", "2024-02-15T00:00:00.000Z"),
        ("at-end.pdf", "2024-02-20T18:30:00.500Z"),
        ("after.pdf", "2024-02-20T18:30:00.501Z"),
    ] {
        post_result(&app, sid, name, at).await;
    }
    let (_, names) = exported_names(&app, sid, "2024-02-10T10:00:00.000Z", "2024-02-20T18:30:00.500Z").await;
    assert_eq!(names, ["at-start.pdf", "inside.pdf", "at-end.pdf"], "[start, end] inclusive, 1 ms outside excluded");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bare_dates_cover_whole_days() {
    let app = helpers::spawn_app().await;
    let s = app.create_schema(&json!({"name": "Days", "schema": {"fields": [{"key": "n", "type": "integer"}]}})).await;
    let sid = s["id"].as_str().unwrap();
    for (name, at) in [
        ("dec31-last-ms.pdf", "2023-12-31T23:59:59.999Z"),
        ("jan01-first-ms.pdf", "2024-01-01T00:00:00.000Z"),
        ("jan15.pdf", "2024-01-15T12:00:00.000Z"),
        ("jan31-last-ms.pdf", "2024-01-31T23:59:59.999Z"),
        ("feb01-first-ms.pdf", "2024-02-01T00:00:00.000Z"),
    ] {
        post_result(&app, sid, name, at).await;
    }
    let (e, names) = exported_names(&app, sid, "2024-01-01", "2024-01-31").await;
    assert_eq!(names, ["jan01-first-ms.pdf", "jan15.pdf", "jan31-last-ms.pdf"], "bare dates mean whole days");
    assert_eq!(e["start_date"], "2024-01-01T00:00:00.000Z", "{e}");
    assert_eq!(e["end_date"], "2024-01-31T23:59:59.999Z", "{e}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reexport_after_schema_patch_uses_new_columns_and_old_file_is_unchanged() {
    let app = helpers::spawn_app().await;
    let fields = json!([
        {"key": "a", "type": "string"},
        {"key": "b", "type": "number"},
        {"key": "c", "type": "boolean"}
    ]);
    let s = app.create_schema(&json!({"name": "Reorder", "schema": {"fields": fields}})).await;
    let sid = s["id"].as_str().unwrap().to_string();
    let nd = [
        r#"{"file_name":"one.pdf","createdAt":"2024-01-05T00:00:00.000Z","extraction":{"a":"x, y","b":1.5,"c":true}}"#,
        r#"{"file_name":"two.pdf","createdAt":"2024-01-06T00:00:00.000Z","extraction":{"a":"=1+1","b":2,"c":false}}"#,
    ]
    .join("\n");
    app.upload_ndjson(&sid, nd).await;
    let body = json!({"schema_id": sid, "start_date": "2024-01-01", "end_date": "2024-01-31"});
    let (e1, bytes1) = export_download(&app, &body).await;
    let old = parse_csv(&bytes1, b',');
    assert_eq!(old[0], ["id", "file_name", "createdAt", "a", "b", "c"]);

    let new_fields = json!([
        {"key": "c", "type": "boolean"},
        {"key": "a", "type": "string"},
        {"key": "b", "type": "number"}
    ]);
    let r =
        app.patch_json(&format!("/v1/schemas/{sid}"), &json!({"schema": {"fields": new_fields}})).send().await.unwrap();
    assert_eq!(r.status(), 200, "PATCH schema: {}", r.text().await.unwrap());

    let (_, bytes2) = export_download(&app, &body).await;
    let new = parse_csv(&bytes2, b',');
    assert_eq!(new[0], ["id", "file_name", "createdAt", "c", "a", "b"], "re-export follows the new field order");
    assert_eq!(new.len(), 3);
    assert_eq!(new[1][3..], ["true", "x, y", "1.5"]);
    assert_eq!(new[2][3..], ["false", "'=1+1", "2"]);

    // the earlier COMPLETED export keeps its file, byte for byte
    let id1 = e1["id"].as_str().unwrap();
    let again: Value = app.get(&format!("/v1/exports/{id1}")).send().await.unwrap().json().await.unwrap();
    assert_eq!(again["status"], "COMPLETED", "{again}");
    assert_eq!(again["file_size"], e1["file_size"], "{again}");
    assert_eq!(again["row_count"], e1["row_count"], "{again}");
    let url1 = app.download_url(id1).await;
    let (status, _, bytes1_again) = fetch(&app, &url1).await;
    assert_eq!(status, 200);
    assert_eq!(bytes1_again, bytes1, "the earlier export's file changed after the schema PATCH");
    app.stop().await;
}

// ---- options -------------------------------------------------------------------------------

async fn options_check(options: Value, opts: Opts, expand: Option<&str>, tweak_schema: impl FnOnce(&mut Value)) {
    let app = helpers::spawn_app().await;
    let mut ds = data_set(400, 7);
    tweak_schema(&mut ds.schema);
    let (schema_id, fields, results) = load(&app, &ds).await;
    check_export(&app, &schema_id, &fields, &results, expand, &opts, Some(options)).await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn options_delimiter_semicolon() {
    let opts = Opts { delimiter: ';', ..Opts::default() };
    options_check(json!({"delimiter": ";"}), opts, None, |_| {}).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn options_delimiter_tab_expanded() {
    let opts = Opts { delimiter: '\t', ..Opts::default() };
    options_check(json!({"delimiter": "\t"}), opts, Some("line_items"), |_| {}).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn options_bom() {
    let opts = Opts { bom: true, ..Opts::default() };
    options_check(json!({"bom": true}), opts, None, |_| {}).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn options_header_label() {
    let opts = Opts { label_header: true, ..Opts::default() };
    // one top-level field and one nested field without a label: they fall back to the key
    let drop_labels = |schema: &mut Value| {
        let fields = schema["schema"]["fields"].as_array_mut().unwrap();
        for f in fields.iter_mut() {
            let f: &mut Map<String, Value> = f.as_object_mut().unwrap();
            if f["key"] == "page_count" {
                f.remove("label");
            }
            if f["key"] == "billing_address" {
                let subs = f["fields"].as_array_mut().unwrap();
                subs[2].as_object_mut().unwrap().remove("label");
            }
        }
    };
    options_check(json!({"header": "label"}), opts, None, drop_labels).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn options_header_label_expanded() {
    // expanded sub-fields are nested too: `Line items / Description`
    let opts = Opts { label_header: true, ..Opts::default() };
    options_check(json!({"header": "label"}), opts, Some("line_items"), |_| {}).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn options_formula_guard_false() {
    let opts = Opts { formula_guard: false, ..Opts::default() };
    options_check(json!({"formula_guard": false}), opts, Some("line_items"), |_| {}).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn options_gzip() {
    let app = helpers::spawn_app().await;
    let ds = data_set(400, 7);
    let (schema_id, fields, results) = load(&app, &ds).await;
    let opts = Opts { gzip: true, ..Opts::default() };
    check_export(&app, &schema_id, &fields, &results, None, &opts, Some(json!({"gzip": true}))).await;

    // the URL and the headers say gzip
    let body = json!({"schema_id": schema_id, "start_date": "2024-01-01", "end_date": "2024-03-31",
                      "options": {"gzip": true}});
    let e = app.export_and_wait(&body).await;
    let url = app.download_url(e["id"].as_str().unwrap()).await;
    let path = url.split('?').next().unwrap();
    assert!(path.ends_with("/invoices_2024-01-01_2024-03-31.csv.gz"), "gzip URL: {url}");
    let (status, headers, _) = fetch(&app, &url).await;
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "application/gzip");
    assert_eq!(headers["content-disposition"], "attachment; filename=\"invoices_2024-01-01_2024-03-31.csv.gz\"");
    app.stop().await;
}

// ---- hand-made edge cases --------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edge_cases_match_spec() {
    let schema = json!({
        "name": "Edge cases",
        "schema": {"fields": [
            {"key": "s", "type": "string"},
            {"key": "n", "type": "number"},
            {"key": "addr", "type": "object", "fields": [
                {"key": "city", "type": "string"},
                {"key": "geo", "type": "object", "fields": [
                    {"key": "lat", "type": "number"},
                    {"key": "lng", "type": "number"}
                ]}
            ]},
            {"key": "items", "type": "array", "fields": [
                {"key": "sku", "type": "string"},
                {"key": "qty", "type": "integer"}
            ]},
            {"key": "tags", "type": "array"},
            {"key": "flag", "type": "boolean"}
        ]}
    });
    let lines = [
        json!({"file_name": "a.pdf", "createdAt": "2024-01-10T00:00:00.000Z", "extraction":
            {"s": "plain", "n": 10, "addr": {"city": "Berlin", "geo": {"lat": 52.52, "lng": 13.4}},
             "items": [{"sku": "A", "qty": 1}, {"sku": "=B", "qty": 2}], "tags": ["x", "y"], "flag": true}}),
        json!({"file_name": "=evil.pdf", "createdAt": "2024-01-02T00:00:00.000Z", "extraction":
            {"s": "=cmd", "n": 1250.0, "addr": null, "items": null, "tags": [], "flag": false}}),
        json!({"createdAt": "2024-01-03T00:00:00.000Z", "extraction":
            {"s": "\tlead tab", "n": 0.1, "addr": "Main St", "items": "not an array", "tags": null}}),
        json!({"file_name": "d.pdf", "createdAt": "2024-01-04T00:00:00.000Z", "extraction":
            {"s": "\rlead cr", "n": -0.5, "addr": {"city": {"nested": "obj"}},
             "items": [1, {"sku": "C"}, null, {"qty": 3, "extra": "ignored"}],
             "tags": [{"k": "v"}, ["a"], 7, true, null, "-x", "Zürich – 東京"]}}),
        json!({"file_name": "e.pdf", "createdAt": "2024-01-05T00:00:00.000Z", "extraction":
            {"s": {"a": 1, "b": [1, 2]}, "n": "12", "addr": {"geo": {"lat": "north"}}, "tags": "solo"}}),
        json!({"file_name": "f.pdf", "createdAt": "2024-01-06T00:00:00.000Z", "extraction": {}}),
        json!({"file_name": "g.pdf", "createdAt": "2024-01-10T00:00:00.000Z", "extraction":
            {"s": "  spaces  ", "n": 19.99, "flag": "yes"}}),
        json!({"file_name": "h.pdf", "createdAt": "2024-01-10T00:00:00.000Z", "extraction":
            {"s": "quote \"q\", comma; semi\nnewline", "n": -7, "flag": null}}),
        json!({"file_name": "+i.pdf", "createdAt": "2024-01-01T00:00:00.000Z", "extraction":
            {"s": "+plus", "n": 3.0, "tags": ["@at", "-minus", "=eq", "+pl"]}}),
        json!({"file_name": "j.pdf", "createdAt": "2024-01-08T00:00:00.000Z", "extraction":
            {"s": "@at", "n": 0, "items": []}}),
    ];
    let ndjson: String = lines.iter().map(|l| format!("{l}\n")).collect();
    let ds = DataSet { schema, ndjson, lines: lines.to_vec() };
    let app = helpers::spawn_app().await;
    let (schema_id, fields, results) = load(&app, &ds).await;
    for expand in [None, Some("items"), Some("tags")] {
        check_export(&app, &schema_id, &fields, &results, expand, &Opts::default(), None).await;
    }
    app.stop().await;
}
