//! formats.md through the real app: `xlsx` read back with calamine cell by cell, `jsonl`
//! line by line, `columns` and `options.timezone`, each compared with values computed here
//! from the NDJSON that was uploaded; the refusals; the download's type and name.

use calamine::{open_workbook_from_rs, Data, Reader, Xlsx};
use chrono::{DateTime, NaiveDate, NaiveDateTime};
use serde_json::{json, Value};

use crate::helpers::{self, TestApp};

/// A schema with one field of every type, and results that stress each (leading zeros, a
/// formula look-alike, an integer beyond 2^53, dates that parse and ones that do not).
fn schema() -> Value {
    json!({"name": "Receipts: Q1/2024", "schema": {"fields": [
        {"key": "code", "label": "Code", "type": "string"},
        {"key": "total", "label": "Total", "type": "number"},
        {"key": "big", "type": "integer"},
        {"key": "paid", "type": "boolean"},
        {"key": "when", "type": "datetime"},
        {"key": "day", "type": "date"},
        {"key": "addr", "type": "object", "fields": [{"key": "city", "type": "string"}]},
        {"key": "items", "type": "array", "fields": [{"key": "sku", "type": "string"}, {"key": "qty", "type": "number"}]},
        {"key": "tags", "type": "array"}
    ]}})
}

const RESULTS: &str = r#"{"extraction": {"code": "007", "total": 12.5, "big": 123456789012345678, "paid": true, "when": "2024-03-31T01:00:00Z", "day": "2024-01-05", "addr": {"city": "Zürich"}, "items": [{"sku": "A-1", "qty": 1}, {"sku": "=B", "qty": 2.5}], "tags": ["eu", "q1"]}, "file_name": "a.pdf", "createdAt": "2024-03-31T00:30:00Z"}
{"extraction": {"code": "=1+1", "total": null, "big": 42, "paid": false, "when": "not a date", "day": "05/01/2024", "items": [], "tags": []}, "createdAt": "2024-10-27T00:59:59.999Z"}
{"extraction": {"code": "say \"hi\"\n", "total": 1e3, "when": "2024-10-27T01:00:00.5+00:00", "day": "2024-02-29", "addr": null, "items": [{"sku": "C", "qty": -0.25}], "tags": [{"a": 1}]}, "file_name": "+c.pdf", "createdAt": "2024-06-01T12:00:00Z"}
{"extraction": {"when": "2024-01-05T20:00:00-05:00", "addr": {"city": "Kolkata"}}, "createdAt": "2024-01-05T23:00:00Z"}
"#;

struct Setup {
    app: TestApp,
    schema_id: String,
    /// The uploaded results in export order (createdAt, then id).
    results: Vec<Value>,
}

async fn setup() -> Setup {
    let app = helpers::spawn_app().await;
    let schema_id = app.create_schema(&schema()).await["id"].as_str().unwrap().to_string();
    assert_eq!(app.upload_ndjson(&schema_id, RESULTS).await, 4);
    let mut results: Vec<Value> = RESULTS.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    results.sort_by_key(|r| ms(r["createdAt"].as_str().unwrap()));
    Setup { app, schema_id, results }
}

fn ms(rfc3339: &str) -> i64 {
    DateTime::parse_from_rfc3339(rfc3339).unwrap().timestamp_millis()
}

impl Setup {
    fn body(&self, extra: Value) -> Value {
        let mut b = json!({"schema_id": self.schema_id, "start_date": "2024-01-01", "end_date": "2024-12-31"});
        b.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        b
    }

    /// Runs an export; returns its JSON, the download's bytes, content type and file name.
    async fn export(&self, extra: Value) -> (Value, Vec<u8>, String, String) {
        let e = self.app.export_and_wait(&self.body(extra)).await;
        assert_eq!(e["status"], "COMPLETED", "{e}");
        let url = self.app.download_url(e["id"].as_str().unwrap()).await;
        let r = self.app.client.get(&url).send().await.unwrap();
        assert_eq!(r.status(), 200);
        let header = |h: &str| r.headers().get(h).unwrap().to_str().unwrap().to_string();
        let (ct, cd) = (header("content-type"), header("content-disposition"));
        let path = reqwest::Url::parse(&url).unwrap().path().to_string();
        let name = path.rsplit('/').next().unwrap().to_string();
        assert!(cd.contains(&name), "{cd} names {name}");
        (e, r.bytes().await.unwrap().to_vec(), ct, name)
    }

    async fn refused(&self, extra: Value) -> String {
        let r = self.app.post_json("/v1/exports", &self.body(extra)).send().await.unwrap();
        helpers::assert_error(r, 400).await
    }
}

/// The value of column `name` (a key path) of a result, as the NDJSON has it.
fn value_at<'a>(r: &'a Value, name: &str) -> &'a Value {
    match name {
        "id" => &Value::Null,
        "file_name" | "createdAt" => &r[name],
        path => path.split('.').fold(&r["extraction"], |v, k| v.get(k).unwrap_or(&Value::Null)),
    }
}

const ALL: [&str; 12] =
    ["id", "file_name", "createdAt", "code", "total", "big", "paid", "when", "day", "addr.city", "items", "tags"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xlsx_cells_have_the_json_types() {
    let s = setup().await;
    let (e, bytes, ct, name) = s.export(json!({"format": "xlsx", "options": {"timezone": "Europe/Paris"}})).await;
    assert_eq!(ct, "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet");
    assert!(name.ends_with("_2024-01-01_2024-12-31.xlsx"), "{name}");
    assert_eq!((e["format"].as_str(), e["columns"].is_null()), (Some("xlsx"), true), "{e}");
    assert_eq!(e["options"]["timezone"], "Europe/Paris");
    assert_eq!(e["row_count"], 4);
    assert_eq!(e["file_size"].as_u64(), Some(bytes.len() as u64));

    // the header row: bold, frozen, with an autofilter over the columns and rows
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(&bytes)).unwrap();
    let mut part = |name: &str| {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut zip.by_name(name).unwrap(), &mut text).unwrap();
        text
    };
    let sheet = part("xl/worksheets/sheet1.xml");
    assert!(sheet.contains(r#"<autoFilter ref="A1:L5"/>"#), "{sheet}");
    assert!(sheet.contains(r#"ySplit="1""#) && sheet.contains(r#"state="frozen""#), "{sheet}");
    assert!(part("xl/styles.xml").contains("<b/>"), "a bold font");
    assert!(!sheet.contains("<f>"), "no formulas");

    let mut book: Xlsx<_> = open_workbook_from_rs(std::io::Cursor::new(bytes)).unwrap();
    assert_eq!(book.sheet_names(), vec!["Receipts_ Q1_2024".to_string()]);
    let range = book.worksheet_range("Receipts_ Q1_2024").unwrap();
    let rows: Vec<&[Data]> = range.rows().collect();
    assert_eq!(rows.len(), 5);
    let header: Vec<String> = rows[0].iter().map(|c| c.to_string()).collect();
    assert_eq!(header, ALL);
    let paris = |utc: &str| {
        let t = DateTime::parse_from_rfc3339(utc).unwrap().with_timezone(&chrono_tz::Europe::Paris);
        t.naive_local()
    };
    for (r, row) in s.results.iter().zip(&rows[1..]) {
        for (name, cell) in ALL.iter().zip(row.iter()) {
            let v = value_at(r, name);
            let want_datetime = match *name {
                "createdAt" => Some(paris(v.as_str().unwrap())),
                "when" => {
                    v.as_str().and_then(|t| DateTime::parse_from_rfc3339(t).ok()).map(|_| paris(v.as_str().unwrap()))
                }
                _ => None,
            };
            let want_date = (*name == "day")
                .then(|| v.as_str().and_then(|t| NaiveDate::parse_from_str(t, "%Y-%m-%d").ok()))
                .flatten();
            match (cell, v) {
                _ if *name == "id" => assert!(matches!(cell, Data::String(id) if helpers::is_uuid(id)), "{cell:?}"),
                (Data::DateTime(d), _) if want_datetime.is_some() => {
                    let got = d.as_datetime().unwrap();
                    let want: NaiveDateTime = want_datetime.unwrap();
                    assert!((got - want).num_milliseconds().abs() <= 1, "{name}: {got} != {want}");
                }
                (Data::DateTime(d), _) if want_date.is_some() => {
                    assert_eq!(d.as_datetime().unwrap().date(), want_date.unwrap(), "{name}");
                }
                (Data::Empty, Value::Null) => {}
                (Data::Bool(b), Value::Bool(w)) => assert_eq!(b, w),
                (Data::Float(f), Value::Number(n)) => {
                    assert!(n.as_i64().is_none_or(|i| i.unsigned_abs() <= 1 << 53), "{name}: {n} is exact");
                    assert_eq!(*f, n.as_f64().unwrap(), "{name}");
                }
                // integers beyond 2^53 are text: no digit lost
                (Data::String(t), Value::Number(n)) => {
                    assert!(n.as_i64().unwrap().unsigned_abs() > 1 << 53, "{name}: {n}");
                    assert_eq!(t, &n.to_string());
                }
                (Data::String(t), Value::String(w)) => assert_eq!(t, w, "{name}: text as it is, never a formula"),
                (Data::String(t), Value::Array(_) | Value::Object(_)) => {
                    assert_eq!(&serde_json::from_str::<Value>(t).unwrap(), v, "{name}");
                    assert!(!t.contains(": ") && !t.contains(", "), "compact: {t}");
                }
                other => panic!("{name}: {other:?}"),
            }
        }
    }
    // the awkward ones, by name
    let row_of = |code: &str| rows.iter().find(|r| r[3] == Data::String(code.into())).expect(code);
    assert_eq!(row_of("007")[5], Data::String("123456789012345678".into()), "leading zeros kept, big ints as text");
    assert_eq!(row_of("=1+1")[4], Data::Empty, "a formula look-alike is text; null is empty");
    assert!(matches!(row_of("007")[8], Data::DateTime(_)), "a date cell");

    // chosen columns and label headers in a workbook
    let (e, bytes, _, _) =
        s.export(json!({"format": "xlsx", "columns": ["total", "code"], "options": {"header": "label"}})).await;
    assert_eq!(e["columns"], json!(["total", "code"]));
    let mut book: Xlsx<_> = open_workbook_from_rs(std::io::Cursor::new(bytes)).unwrap();
    let range = book.worksheet_range("Receipts_ Q1_2024").unwrap();
    let rows: Vec<Vec<Data>> = range.rows().map(<[Data]>::to_vec).collect();
    assert_eq!(rows[0], [Data::String("Total".into()), Data::String("Code".into())]);
    assert_eq!(rows.len(), 5);
    assert!(rows.contains(&vec![Data::Float(12.5), Data::String("007".into())]), "{rows:?}");
    s.app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jsonl_lines_are_objects_of_the_ndjson_values_in_column_order() {
    let s = setup().await;
    let (e, bytes, ct, name) = s.export(json!({"format": "jsonl"})).await;
    assert_eq!(ct, "application/x-ndjson");
    assert!(name.ends_with(".jsonl"), "{name}");
    assert_eq!(e["format"], "jsonl");
    let text = String::from_utf8(bytes).unwrap();
    assert!(text.ends_with('\n'));
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4);
    for (r, line) in s.results.iter().zip(&lines) {
        let obj: serde_json::Map<String, Value> = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert_eq!(obj.keys().collect::<Vec<_>>(), ALL, "key order is the column order");
        for name in &ALL[1..] {
            let want = match *name {
                // no zone asked for: UTC with milliseconds, as in CSV
                "createdAt" => json!(chrono::DateTime::from_timestamp_millis(ms(r["createdAt"].as_str().unwrap()))
                    .unwrap()
                    .format("%Y-%m-%dT%H:%M:%S%.3fZ")
                    .to_string()),
                _ => value_at(r, name).clone(),
            };
            assert_eq!(obj[*name], want, "{name} in {line}");
        }
    }
    assert!(lines.iter().any(|l| l.contains(r#""big":123456789012345678,"#)), "numbers keep their text: {text}");
    assert!(lines.iter().any(|l| l.contains(r#""total":1e3"#)), "exact number text");
    assert!(lines.iter().any(|l| l.contains(r#""city":"Zürich""#) || l.contains("Zürich")), "UTF-8 as is");

    // gzip applies
    let (_, gz, ct, name) = s.export(json!({"format": "jsonl", "options": {"gzip": true}})).await;
    assert_eq!((ct.as_str(), name.ends_with(".jsonl.gz")), ("application/gzip", true));
    let mut plain = String::new();
    std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&gz[..]), &mut plain).unwrap();
    assert_eq!(plain, text);
    s.app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn columns_choose_and_order_and_unknown_or_repeated_names_are_refused() {
    let s = setup().await;
    let cols = ["total", "createdAt", "addr.city", "code"];
    let (e, bytes, ct, _) = s.export(json!({"columns": cols, "options": {"header": "label"}})).await;
    assert_eq!(ct, "text/csv; charset=utf-8");
    assert_eq!(e["columns"], json!(cols));
    let mut rdr = csv::Reader::from_reader(&bytes[..]);
    assert_eq!(rdr.headers().unwrap().iter().collect::<Vec<_>>(), ["Total", "createdAt", "addr / city", "Code"]);
    let records: Vec<csv::StringRecord> = rdr.records().map(Result::unwrap).collect();
    assert_eq!(records.len(), 4);
    assert_eq!(records[0].iter().collect::<Vec<_>>(), ["", "2024-01-05T23:00:00.000Z", "Kolkata", ""]);
    assert_eq!(records[1].iter().collect::<Vec<_>>(), ["12.5", "2024-03-31T00:30:00.000Z", "Zürich", "007"]);

    // expanded sub-columns, reordered, in JSON Lines
    let cols = ["items.qty", "code", "items.sku"];
    let (_, bytes, _, _) = s.export(json!({"format": "jsonl", "expand_array": "items", "columns": cols})).await;
    let lines: Vec<Value> =
        String::from_utf8(bytes).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let mut want = Vec::new();
    for r in &s.results {
        let items = r["extraction"]["items"].as_array().cloned().unwrap_or_default();
        let code = r["extraction"].get("code").cloned().unwrap_or(Value::Null);
        if items.is_empty() {
            want.push(json!({"items.qty": null, "code": code, "items.sku": null}));
        }
        for it in items {
            want.push(json!({"items.qty": it["qty"], "code": code, "items.sku": it["sku"]}));
        }
    }
    assert_eq!(lines, want);
    let keys: Vec<&String> = lines[0].as_object().unwrap().keys().collect();
    assert_eq!(keys, cols);

    for (cols, bad) in
        [(json!(["total", "nope"]), "\"nope\" is not a column"), (json!(["id", "id"]), "\"id\" is named twice")]
    {
        let msg = s.refused(json!({"columns": cols})).await;
        assert!(msg.contains(bad), "{msg}");
        assert!(
            msg.contains("id, file_name, createdAt, code, total, big, paid, when, day, addr.city, items, tags"),
            "{msg}"
        );
    }
    // with expand_array the sub-columns are the names, the array's own is not
    let msg = s.refused(json!({"expand_array": "items", "columns": ["items"]})).await;
    assert!(msg.contains("addr.city, items.sku, items.qty, tags"), "{msg}");
    let msg = s.refused(json!({"columns": []})).await;
    assert!(msg.contains("columns"), "{msg}");
    s.app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timezones_rewrite_created_at_and_datetime_strings() {
    let s = setup().await;
    let csv_of = |bytes: &[u8]| -> Vec<(String, String)> {
        let mut rdr = csv::Reader::from_reader(bytes);
        rdr.records().map(|r| r.unwrap()).map(|r| (r[0].to_string(), r[1].to_string())).collect()
    };
    let cols = json!(["createdAt", "when"]);
    let (_, paris, _, _) = s.export(json!({"columns": cols, "options": {"timezone": "Europe/Paris"}})).await;
    assert_eq!(
        csv_of(&paris),
        [
            ("2024-01-06T00:00:00.000+01:00", "2024-01-06T02:00:00.000+01:00"),
            // March: the last second before the change is +01:00, 01:00Z is already +02:00
            ("2024-03-31T01:30:00.000+01:00", "2024-03-31T03:00:00.000+02:00"),
            // October: still +02:00 just before 01:00Z, +01:00 from it
            ("2024-06-01T14:00:00.000+02:00", "2024-10-27T02:00:00.500+01:00"),
            ("2024-10-27T02:59:59.999+02:00", "not a date"),
        ]
        .map(|(a, b)| (a.to_string(), b.to_string()))
    );
    let (_, kolkata, _, _) = s.export(json!({"columns": cols, "options": {"timezone": "Asia/Kolkata"}})).await;
    assert_eq!(csv_of(&kolkata)[0], ("2024-01-06T04:30:00.000+05:30".into(), "2024-01-06T06:30:00.000+05:30".into()));
    let (_, utc, _, _) = s.export(json!({"format": "jsonl", "columns": cols, "options": {"timezone": "UTC"}})).await;
    let first: Value = serde_json::from_str(String::from_utf8(utc).unwrap().lines().next().unwrap()).unwrap();
    assert_eq!(first, json!({"createdAt": "2024-01-05T23:00:00.000Z", "when": "2024-01-06T01:00:00.000Z"}));

    let msg = s.refused(json!({"options": {"timezone": "Mars/Olympus"}})).await;
    assert!(msg.contains("options.timezone") && msg.contains("Mars/Olympus") && msg.contains("IANA"), "{msg}");
    s.app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn options_a_format_does_not_use_are_refused_by_name() {
    let s = setup().await;
    for (format, option, value) in [
        ("jsonl", "delimiter", json!(";")),
        ("jsonl", "bom", json!(true)),
        ("jsonl", "formula_guard", json!(false)),
        ("xlsx", "delimiter", json!(",")),
        ("xlsx", "bom", json!(false)),
        ("xlsx", "gzip", json!(true)),
    ] {
        let msg = s.refused(json!({"format": format, "options": {option: value}})).await;
        assert_eq!(msg, format!("options.{option} does not apply to format {format}; leave it out"));
    }
    let r = s.app.post_json("/v1/exports", &s.body(json!({"format": "pdf"}))).send().await.unwrap();
    helpers::assert_error(r, 400).await;
    // nothing was created
    let list: Value = s.app.get("/v1/exports").send().await.unwrap().json().await.unwrap();
    assert_eq!(list["meta"]["total"], 0, "{list}");
    s.app.stop().await;
}
