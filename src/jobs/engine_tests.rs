//! The export engine against the engine as it was (the tree-based formatter, one thread):
//! byte for byte on the generated data set plus awkward rows, for every option and
//! `expand_array`, with any number of formatting threads; and stopping and failing midway.

use std::io::Write;

use super::engine::{write_export, write_records, EngineError, ExportSpec};
use crate::db::{self, schemas::SchemaRow};
use crate::domain::export::{CsvOptions, HeaderStyle, DELIMITERS};
use crate::domain::result::{parse_ndjson_line, NewResult};
use crate::domain::schema::SchemaDef;
use crate::jobs::csv::{CsvPlan, TestResult};

/// The fixture schema's id (stored results hold it as a UUID's 16 bytes).
const SCHEMA_ID: &str = "019760a0-0001-7000-8000-000000000051";

struct Fixture {
    _dir: tempfile::TempDir,
    pool: db::LitePool,
    schema: SchemaRow,
}

/// `count` results from gen_results.py, and rows no generator writes.
fn fixture(count: usize) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("gen");
    let st = std::process::Command::new("python3")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/bench/gen_results.py"))
        .args(["--count", &count.to_string(), "--seed", "11", "--out"])
        .arg(&data)
        .status()
        .expect("python3 runs ../shared/bench/gen_results.py");
    assert!(st.success());
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(data.join("schema.json")).unwrap()).unwrap();
    let definition: SchemaDef = serde_json::from_value(doc["schema"].clone()).unwrap();
    let pool = db::open(&dir.path().join("db.sqlite"), 2, std::time::Duration::from_secs(5)).unwrap();
    let mut conn = pool.get().unwrap();
    let team = db::keys::create_team(&conn, "t").unwrap();
    let schema = SchemaRow {
        id: SCHEMA_ID.into(),
        team_id: team.id.clone(),
        name: "Invoices".into(),
        description: None,
        definition,
        created_at: 0,
        updated_at: 0,
    };
    db::schemas::insert(&conn, &schema).unwrap();
    let nd = std::fs::read_to_string(data.join("results.ndjson")).unwrap();
    let mut rows: Vec<NewResult> = nd.lines().filter_map(|l| parse_ndjson_line(l, 0).unwrap()).collect();
    let t = rows[rows.len() / 2].created_at;
    let awkward = [
        "not json",
        "[1, 2]",
        r#"{"invoice_number": "=1+1", "invoice_number": "-dup wins", "line_items": {"x": 1}}"#,
        r#"{"line_items": [1, null, {"description": "a\"b", "quantity": -0, "amount": 1e400}, []], "tags": "x"}"#,
        r#"{"billing_address": {"city": "Z\u00fcrich", "city": "\ud83d\ude00"}, "billing_address": {"street": "\ud800"}}"#,
        r#"{"tags": [{"b": 1, "a": 2, "b": 3}], "total": 1E+2, "subtotal": 0.1e-9, "tax": NaN}"#,
        r#"{"line_items": [{"description": "x"}], "line_items": []}"#,
        r#"{"notes": "line\r\nbreak; | tab	", "paid": true, "page_count": 123456789012345678901234567890}"#,
        "{\"notes\": \"unterminated}",
        "  {\"notes\": \"padded\"}  ",
    ];
    for (i, e) in awkward.iter().enumerate() {
        // same createdAt as generated rows: ordered by id among them
        rows.push(NewResult {
            file_name: (i % 2 == 0).then(|| format!("=awk{i}.pdf")),
            created_at: t,
            extraction: e.to_string(),
        });
    }
    db::results::insert_many(&mut conn, &team.id, SCHEMA_ID, rows).unwrap();
    drop(conn);
    Fixture { _dir: dir, pool, schema }
}

/// The export as the engine wrote it before: tree-based formatter, one thread, writes of
/// whole rows once 64 KiB have gathered, a flush at the end (a gzip stream's bytes depend on
/// all of these).
fn reference_export(conn: &rusqlite::Connection, spec: &ExportSpec) -> Vec<u8> {
    if spec.options.gzip {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        reference_records(conn, spec, &mut gz);
        return gz.finish().unwrap();
    }
    let mut out = Vec::new();
    reference_records(conn, spec, &mut out);
    out
}

fn reference_records<W: Write>(conn: &rusqlite::Connection, spec: &ExportSpec, sink: &mut W) {
    let plan = CsvPlan::new(spec.schema, spec.expand_array, spec.options).unwrap();
    let mut csv = Vec::new();
    if spec.options.bom {
        csv.extend_from_slice(b"\xEF\xBB\xBF");
    }
    plan.write_header(&mut csv);
    db::results::stream_for_export(conn, spec.schema_id, spec.start_ms, spec.end_ms, |r| {
        let row = TestResult {
            id: r.id.to_string(),
            file_name: r.file_name.map(str::to_string),
            created_at_ms: r.created_at,
            extraction: String::from_utf8(r.extraction.to_vec()).expect("stored text is UTF-8"),
        };
        plan.write_result_reference(&row, &mut csv);
        if csv.len() >= 64 * 1024 {
            sink.write_all(&csv).unwrap();
            csv.clear();
        }
        Ok::<bool, EngineError>(true)
    })
    .unwrap();
    sink.write_all(&csv).unwrap();
    sink.flush().unwrap();
}

fn spec<'a>(f: &'a Fixture, expand: Option<&'a str>, options: &'a CsvOptions) -> ExportSpec<'a> {
    ExportSpec {
        schema_id: &f.schema.id,
        schema_name: &f.schema.name,
        schema: &f.schema.definition,
        temp_dir: f._dir.path(),
        start_ms: i64::MIN,
        end_ms: i64::MAX,
        expand_array: expand,
        options,
    }
}

#[test]
fn byte_identical_to_the_tree_engine_for_every_option() {
    let f = fixture(1500);
    let conn = f.pool.get().unwrap();
    let mut combos = 0;
    for (i, delimiter) in DELIMITERS.into_iter().enumerate() {
        for bom in [false, true] {
            for header in [HeaderStyle::Key, HeaderStyle::Label] {
                for formula_guard in [true, false] {
                    // gzip on a few combinations (its bytes depend on the writes, not the options)
                    for gzip in [false, true] {
                        if gzip && (i > 0 || formula_guard || header == HeaderStyle::Label) {
                            continue;
                        }
                        let options =
                            CsvOptions { delimiter, bom, header, formula_guard, gzip, ..CsvOptions::default() };
                        for expand in [None, Some("line_items"), Some("tags")] {
                            let spec = spec(&f, expand, &options);
                            let expected = reference_export(&conn, &spec);
                            let threads = 1 + (i + combos) % 3;
                            let mut got = Vec::new();
                            let plan = CsvPlan::new(spec.schema, spec.expand_array, spec.options).unwrap();
                            let records = if gzip {
                                let mut gz = flate2::write::GzEncoder::new(&mut got, flate2::Compression::default());
                                let n = write_records(&conn, &spec, &plan, &mut gz, threads, |_| false).unwrap();
                                gz.finish().unwrap();
                                n
                            } else {
                                write_records(&conn, &spec, &plan, &mut got, threads, |_| false).unwrap()
                            };
                            assert!(
                                got == expected,
                                "{options:?}, expand {expand:?}, {threads} threads: {} bytes, expected {}",
                                got.len(),
                                expected.len()
                            );
                            let records = records.unwrap();
                            assert!(records >= 1510, "{records}");
                            combos += 1;
                        }
                    }
                }
            }
        }
    }
    assert_eq!(combos, 96 + 6);
    // and through the public entry point, which picks the number of threads
    let options = CsvOptions { gzip: true, bom: true, ..CsvOptions::default() };
    let spec = spec(&f, Some("line_items"), &options);
    let mut got = Vec::new();
    write_export(&conn, &spec, &mut got, |_| false).unwrap();
    assert!(got == reference_export(&conn, &spec));
}

#[test]
fn stops_when_asked_between_batches() {
    // two batches (~750 results each, by their bytes) are well under half of these
    let f = fixture(4000);
    let conn = f.pool.get().unwrap();
    let options = CsvOptions::default();
    let spec = spec(&f, None, &options);
    let mut asked = 0;
    let mut out = Vec::new();
    let written = write_export(&conn, &spec, &mut out, |_| {
        asked += 1;
        asked == 2
    })
    .unwrap();
    assert_eq!(written, None);
    assert_eq!(asked, 2, "asked again after it said stop");
    // it stopped early: not everything was written
    let full = reference_export(&conn, &spec);
    assert!(out.len() < full.len() / 2, "{} of {} bytes", out.len(), full.len());
}

/// A sink that fails once it has taken `left` bytes.
struct FailingSink {
    left: usize,
}

impl Write for FailingSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if buf.len() > self.left {
            return Err(std::io::Error::other("disk on fire"));
        }
        self.left -= buf.len();
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn a_failing_write_ends_the_export_with_its_error() {
    let f = fixture(3000);
    let conn = f.pool.get().unwrap();
    let options = CsvOptions::default();
    let spec = spec(&f, Some("line_items"), &options);
    for left in [0, 100, 300_000] {
        let err = write_export(&conn, &spec, &mut FailingSink { left }, |_| false).unwrap_err();
        assert!(matches!(&err, EngineError::Io(e) if e.to_string() == "disk on fire"), "{err}");
    }
}

/// Stored text that is not UTF-8 (a database edited by hand) fails the export with a
/// database error naming the column, as reading it as text on the cursor did, now that the
/// formatting threads check it; a panicking or blocked export would hang the worker.
#[test]
fn an_extraction_that_is_not_utf8_fails_the_export() {
    let f = fixture(3000);
    let conn = f.pool.get().unwrap();
    // one row in the middle of the export, in the second batch
    let changed = conn
        .execute(
            "UPDATE results SET extraction = CAST(X'7B2278223A2280FF227D' AS TEXT)
             WHERE id = (SELECT id FROM results ORDER BY created_at, id LIMIT 1 OFFSET 1500)",
            [],
        )
        .unwrap();
    assert_eq!(changed, 1);
    let options = CsvOptions::default();
    let spec = spec(&f, None, &options);
    for threads in [1, 2, 3] {
        let plan = CsvPlan::new(spec.schema, None, &options).unwrap();
        let err = write_records(&conn, &spec, &plan, &mut Vec::new(), threads, |_| false).unwrap_err();
        assert!(
            matches!(&err, EngineError::Db(db::DbError::Sqlite(rusqlite::Error::Utf8Error(3, _)))),
            "{threads} threads: {err:?}"
        );
    }
}

/// The general row path (chosen columns) writes what the CSV path writes when the columns
/// chosen are all of them, in their order: for every option and `expand_array`.
#[test]
fn all_columns_chosen_write_the_default_bytes() {
    let f = fixture(300);
    let conn = f.pool.get().unwrap();
    for expand in [None, Some("line_items"), Some("tags")] {
        for header in [HeaderStyle::Key, HeaderStyle::Label] {
            let options = CsvOptions { header, delimiter: ';', ..CsvOptions::default() };
            let keys = CsvPlan::new(&f.schema.definition, expand, &CsvOptions::default()).unwrap().header();
            let chosen = CsvOptions { columns: Some(keys), ..options.clone() };
            let mut plain = Vec::new();
            write_export(&conn, &spec(&f, expand, &options), &mut plain, |_| false).unwrap();
            let mut general = Vec::new();
            write_export(&conn, &spec(&f, expand, &chosen), &mut general, |_| false).unwrap();
            assert!(plain == general, "{expand:?} {header:?}");
        }
    }
}

/// A workbook past its row limit goes on over sheets `Name (2)`, `Name (3)`, each with the
/// header row again; every row is written once, in order.
#[test]
fn workbooks_split_at_the_row_limit() {
    use calamine::{open_workbook_from_rs, Data, Reader, Xlsx};
    let f = fixture(120);
    let conn = f.pool.get().unwrap();
    let csv_options = CsvOptions::default();
    let mut csv = Vec::new();
    let rows = write_export(&conn, &spec(&f, None, &csv_options), &mut csv, |_| false).unwrap().unwrap();
    let ids: Vec<String> = csv::Reader::from_reader(&csv[..]).records().map(|r| r.unwrap()[0].to_string()).collect();
    let options = CsvOptions { format: crate::domain::export::ExportFormat::Xlsx, ..CsvOptions::default() };
    let mut xlsx = Vec::new();
    let written =
        super::engine::write_export_with(&conn, &spec(&f, None, &options), &mut xlsx, |_| false, 50).unwrap().unwrap();
    assert_eq!(written, rows);
    let mut book: Xlsx<_> = open_workbook_from_rs(std::io::Cursor::new(xlsx)).unwrap();
    let sheets = (rows as usize).div_ceil(49);
    let mut names = vec!["Invoices".to_string()];
    names.extend((2..=sheets).map(|n| format!("Invoices ({n})")));
    assert_eq!(book.sheet_names(), names);
    let header = CsvPlan::new(&f.schema.definition, None, &options).unwrap().header();
    let mut seen = Vec::new();
    for name in &names {
        let range = book.worksheet_range(name).unwrap();
        let mut r = range.rows();
        let head: Vec<String> = r.next().unwrap().iter().map(|c| c.to_string()).collect();
        assert_eq!(head, header, "{name}");
        for row in r {
            match &row[0] {
                Data::String(id) => seen.push(id.clone()),
                other => panic!("{other:?}"),
            }
        }
        assert!(range.height() <= 50, "{name}: {}", range.height());
    }
    assert_eq!(seen, ids);
    // nothing is left in the scratch folder
    assert_eq!(
        std::fs::read_dir(f._dir.path()).unwrap().filter(|e| e.as_ref().unwrap().path().extension().is_none()).count(),
        1
    );
}

/// Equal JSON, numbers compared by value (CSV writes them as Python's `repr`, JSON Lines
/// keeps their text).
fn same_json(a: &serde_json::Value, b: &serde_json::Value) -> bool {
    use serde_json::Value;
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            let (x, y) = (x.to_string().parse::<f64>().unwrap(), y.to_string().parse::<f64>().unwrap());
            x == y || (x.is_infinite() && y.is_infinite())
        }
        // a number too large for a double: its JSON text in JSON Lines, Infinity (then null here) in CSV
        (Value::Number(x), Value::Null) | (Value::Null, Value::Number(x)) => {
            x.to_string().parse::<f64>().is_ok_and(f64::is_infinite)
        }
        (Value::Array(x), Value::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same_json(x, y)),
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|((kx, vx), (ky, vy))| kx == ky && same_json(vx, vy))
        }
        _ => a == b,
    }
}

/// JSON Lines on the generated data and the awkward rows (invalid documents, repeated keys,
/// escapes, lone surrogates, NaN, huge numbers): every line is strict JSON, its keys are the
/// columns, and every value is the one the CSV export writes, by type.
#[test]
fn jsonl_lines_are_strict_json_with_the_csv_values() {
    use serde_json::Value;
    let f = fixture(400);
    let conn = f.pool.get().unwrap();
    for expand in [None, Some("line_items"), Some("tags")] {
        let csv_options = CsvOptions { formula_guard: false, ..CsvOptions::default() };
        let mut csv_bytes = Vec::new();
        write_export(&conn, &spec(&f, expand, &csv_options), &mut csv_bytes, |_| false).unwrap();
        let mut rdr = csv::Reader::from_reader(&csv_bytes[..]);
        let header: Vec<String> = rdr.headers().unwrap().iter().map(String::from).collect();
        let records: Vec<csv::StringRecord> = rdr.records().map(Result::unwrap).collect();
        let options = CsvOptions { format: crate::domain::export::ExportFormat::Jsonl, ..CsvOptions::default() };
        let mut out = Vec::new();
        let rows = write_export(&conn, &spec(&f, expand, &options), &mut out, |_| false).unwrap().unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.split_terminator('\n').collect();
        assert_eq!((lines.len(), records.len()), (rows as usize, rows as usize), "{expand:?}");
        for (line, rec) in lines.iter().zip(&records) {
            let obj: serde_json::Map<String, Value> =
                serde_json::from_str(line).unwrap_or_else(|e| panic!("{expand:?}: {e}: {line}"));
            assert_eq!(obj.keys().collect::<Vec<_>>(), header.iter().collect::<Vec<_>>());
            for ((name, v), field) in obj.iter().zip(rec.iter()) {
                let ok = match v {
                    // NaN and the infinities have no JSON text
                    Value::Null => {
                        field.is_empty() || matches!(field, "nan" | "inf" | "-inf" | "NaN" | "Infinity" | "-Infinity")
                    }
                    Value::Bool(b) => field == b.to_string(),
                    Value::String(s) => field == s,
                    Value::Number(_) => {
                        field.parse::<f64>().is_ok_and(|x| same_json(v, &serde_json::json!(x)))
                            || field.parse::<f64>().is_ok_and(|x| x.is_infinite())
                    }
                    Value::Array(_) | Value::Object(_) => {
                        // CSV writes NaN and the infinities as Python does; JSON Lines as null
                        let strict =
                            field.replace("-Infinity", "null").replace("Infinity", "null").replace("NaN", "null");
                        serde_json::from_str::<Value>(&strict).is_ok_and(|c| same_json(v, &c))
                    }
                };
                assert!(ok, "{expand:?} {name}: jsonl {v} vs csv {field:?}");
            }
        }
    }
}
