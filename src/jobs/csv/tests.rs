use super::*;
use serde_json::json;

fn schema(v: serde_json::Value) -> SchemaDef {
    serde_json::from_value(json!({ "fields": v })).unwrap()
}

fn opts() -> CsvOptions {
    CsvOptions::default()
}

fn row(id: &str, extraction: &str) -> TestResult {
    TestResult {
        id: id.into(),
        file_name: Some(format!("{id}.pdf")),
        created_at_ms: 1_706_702_400_123,
        extraction: extraction.into(),
    }
}

/// Header and records as text, and the record count the plan reported.
fn render(plan: &CsvPlan, rows: &[TestResult]) -> (String, usize) {
    let mut out = Vec::new();
    plan.write_header(&mut out);
    let mut n = 0;
    for r in rows {
        n += plan.write_result(r, &mut out);
    }
    (String::from_utf8(out).unwrap(), n)
}

/// The data records only (without the header), as text.
fn records(plan: &CsvPlan, r: &TestResult) -> (String, usize) {
    let mut out = Vec::new();
    let n = plan.write_result(r, &mut out);
    (String::from_utf8(out).unwrap(), n)
}

const TS: &str = "2024-01-31T12:00:00.123Z";

#[test]
fn values_by_json_type() {
    let s = schema(json!([
        {"key": "s", "type": "string"},
        {"key": "n", "type": "number"},
        {"key": "i", "type": "integer"},
        {"key": "b", "type": "boolean"},
        {"key": "d", "type": "date"},
        {"key": "tags", "type": "array"},
        {"key": "x", "type": "string"},
    ]));
    let plan = CsvPlan::new(&s, None, &opts()).unwrap();
    assert_eq!(plan.header(), ["id", "file_name", "createdAt", "s", "n", "i", "b", "d", "tags", "x"]);
    assert_eq!(plan.column_count(), 10);
    let r =
        row("r1", r#"{"s": 10, "n": 1250.0, "i": 19.99, "b": false, "d": null, "tags": ["eu","q1"], "x": {"a": 1}}"#);
    let (text, n) = render(&plan, &[r]);
    assert_eq!(n, 1);
    assert_eq!(
        text,
        format!(
            "id,file_name,createdAt,s,n,i,b,d,tags,x\r\nr1,r1.pdf,{TS},10,1250.0,19.99,false,,\"[\"\"eu\"\",\"\"q1\"\"]\",\"{{\"\"a\"\":1}}\"\r\n"
        )
    );
    // missing keys, empty array, true, scientific floats, file_name None
    let mut r = row("r2", r#"{"tags": [], "b": true, "n": 1e16, "i": -5, "s": "plain text"}"#);
    r.file_name = None;
    assert_eq!(records(&plan, &r).0, format!("r2,,{TS},plain text,1e+16,-5,true,,[],\r\n"));
    let r = row("r3", r#"{"n": 0.00001, "i": 18446744073709551615, "s": "", "x": [1, 2.5, "a,b"]}"#);
    assert_eq!(
        records(&plan, &r).0,
        format!("r3,r3.pdf,{TS},,1e-05,18446744073709551615,,,,\"[1,2.5,\"\"a,b\"\"]\"\r\n")
    );
}

#[test]
fn timestamps_as_format_ms() {
    let mut values = vec![
        0,
        -1,
        1,
        999,
        1_706_702_400_123,
        951_782_400_000,     // 2000-02-29
        -62_167_219_200_000, // 0000-01-01
        -62_167_219_200_001,
        253_402_300_799_999, // 9999-12-31T23:59:59.999
        253_402_300_800_000,
        i64::MIN,
        i64::MAX,
        i64::MIN / 1000,
        8_210_298_412_799_999,
    ];
    let mut x: u64 = 42;
    for _ in 0..50_000 {
        x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        values.push((x >> 16) as i64 % 260_000_000_000_000 - 65_000_000_000_000);
    }
    for ms in values {
        let mut out = Vec::new();
        write_timestamp(ms, &mut out);
        assert_eq!(String::from_utf8(out).unwrap(), format_ms(ms), "{ms}");
    }
}

#[test]
fn bad_extractions_are_empty_objects() {
    let s = schema(json!([
        {"key": "a", "type": "string"},
        {"key": "o", "type": "object", "fields": [{"key": "b", "type": "string"}]},
        {"key": "items", "type": "array", "fields": [{"key": "x", "type": "string"}]},
    ]));
    let flat = CsvPlan::new(&s, None, &opts()).unwrap();
    let expanded = CsvPlan::new(&s, Some("items"), &opts()).unwrap();
    for bad in ["", "not json", "[1,2]", "\"str\"", "null", "42", "{\"a\": 1", "{\"a\":1} x"] {
        assert_eq!(records(&flat, &row("r", bad)), (format!("r,r.pdf,{TS},,,\r\n"), 1), "{bad}");
        assert_eq!(records(&expanded, &row("r", bad)), (format!("r,r.pdf,{TS},,,\r\n"), 1), "{bad}");
    }
}

#[test]
fn quoting() {
    let s = schema(json!([{"key": "v", "type": "string"}, {"key": "w", "type": "string"}]));
    let comma = CsvPlan::new(&s, None, &opts()).unwrap();
    let cases = [
        (r#""a,b""#, "\"a,b\""),
        (r#""say \"hi\"""#, "\"say \"\"hi\"\"\""),
        (r#""\"""#, "\"\"\"\""),
        (r#""line1\nline2""#, "\"line1\nline2\""),
        (r#""cr\rhere""#, "\"cr\rhere\""),
        (r#""tab\there""#, "tab\there"),
        (r#""semi;colon|pipe""#, "semi;colon|pipe"),
        (r#""  padded  ""#, "  padded  "),
        (r#""""#, ""),
        (r#""Müller & Söhne""#, "Müller & Söhne"),
    ];
    for (json_text, want) in cases {
        let r = row("r", &format!(r#"{{"v": {json_text}, "w": "z"}}"#));
        assert_eq!(records(&comma, &r).0, format!("r,r.pdf,{TS},{want},z\r\n"), "{json_text}");
    }
    // tab delimiter: tabs quote, commas do not
    let tab = CsvPlan::new(&s, None, &CsvOptions { delimiter: '\t', ..opts() }).unwrap();
    let r = row("r", r#"{"v": "a\tb", "w": "c,d"}"#);
    assert_eq!(records(&tab, &r).0, format!("r\tr.pdf\t{TS}\t\"a\tb\"\tc,d\r\n"));
    let mut h = Vec::new();
    tab.write_header(&mut h);
    assert_eq!(h, b"id\tfile_name\tcreatedAt\tv\tw\r\n");
    // semicolon and pipe
    let semi = CsvPlan::new(&s, None, &CsvOptions { delimiter: ';', ..opts() }).unwrap();
    let r = row("r", r#"{"v": "a;b", "w": "c,d"}"#);
    assert_eq!(records(&semi, &r).0, format!("r;r.pdf;{TS};\"a;b\";c,d\r\n"));
    let pipe = CsvPlan::new(&s, None, &CsvOptions { delimiter: '|', ..opts() }).unwrap();
    let r = row("r", r#"{"v": "a|b", "w": ["x,y"]}"#);
    assert_eq!(records(&pipe, &r).0, format!("r|r.pdf|{TS}|\"a|b\"|\"[\"\"x,y\"\"]\"\r\n"));
    // id and file_name are quoted by the same rule
    let mut r = row("a,b", r#"{}"#);
    r.file_name = Some("my \"file\".pdf".into());
    assert_eq!(records(&comma, &r).0, format!("\"a,b\",\"my \"\"file\"\".pdf\",{TS},,\r\n"));
    // an unsupported delimiter is refused
    assert!(CsvPlan::new(&s, None, &CsvOptions { delimiter: 'x', ..opts() }).is_err());
}

#[test]
fn formula_guard() {
    let s = schema(json!([
        {"key": "v", "type": "string"},
        {"key": "n", "type": "number"},
        {"key": "j", "type": "array"},
    ]));
    let on = CsvPlan::new(&s, None, &opts()).unwrap();
    let off = CsvPlan::new(&s, None, &CsvOptions { formula_guard: false, ..opts() }).unwrap();
    let cases = [
        (r#""=SUM(A1)""#, "'=SUM(A1)", "=SUM(A1)"),
        (r#""+1 Supplies""#, "'+1 Supplies", "+1 Supplies"),
        (r#""-minus""#, "'-minus", "-minus"),
        (r#""@home""#, "'@home", "@home"),
        (r#""\tx""#, "'\tx", "\tx"),
        (r#""\rx""#, "\"'\rx\"", "\"\rx\""),
        (r#""=HYPERLINK(\"http://x\")""#, "\"'=HYPERLINK(\"\"http://x\"\")\"", "\"=HYPERLINK(\"\"http://x\"\")\""),
        (r#""=a,b""#, "\"'=a,b\"", "\"=a,b\""),
        (r#""a=b""#, "a=b", "a=b"),
        (r#"" =x""#, " =x", " =x"),
        (r#""""#, "", ""),
    ];
    for (json_text, want_on, want_off) in cases {
        let r = row("r", &format!(r#"{{"v": {json_text}, "n": -5, "j": ["-x"]}}"#));
        let tail = ",-5,\"[\"\"-x\"\"]\"\r\n";
        assert_eq!(records(&on, &r).0, format!("r,r.pdf,{TS},{want_on}{tail}"), "{json_text}");
        assert_eq!(records(&off, &r).0, format!("r,r.pdf,{TS},{want_off}{tail}"), "{json_text}");
    }
    // numbers are never guarded, whatever the declared type; file_name is
    let mut r = row("r", r#"{"v": -1.5, "n": -0.0, "j": {"=k": "=v"}}"#);
    r.file_name = Some("=evil.pdf".into());
    assert_eq!(records(&on, &r).0, format!("r,'=evil.pdf,{TS},-1.5,-0.0,\"{{\"\"=k\"\":\"\"=v\"\"}}\"\r\n"));
    assert_eq!(records(&off, &r).0, format!("r,=evil.pdf,{TS},-1.5,-0.0,\"{{\"\"=k\"\":\"\"=v\"\"}}\"\r\n"));
    // a tab-delimited guarded tab is quoted
    let tab = CsvPlan::new(&s, None, &CsvOptions { delimiter: '\t', ..opts() }).unwrap();
    let r = row("r", r#"{"v": "\tx"}"#);
    assert_eq!(records(&tab, &r).0, format!("r\tr.pdf\t{TS}\t\"'\tx\"\t\t\r\n"));
}

fn nested_schema() -> SchemaDef {
    schema(json!([
        {"key": "a", "type": "string"},
        {"key": "o", "label": "Outer", "type": "object", "fields": [
            {"key": "x", "label": "X", "type": "number"},
            {"key": "in", "type": "object", "fields": [
                {"key": "y", "label": "Y", "type": "string"},
                {"key": "z", "type": "boolean"}
            ]},
            {"key": "list", "label": "List", "type": "array"}
        ]},
        {"key": "b", "label": "B, with comma", "type": "integer"},
    ]))
}

#[test]
fn nested_objects() {
    let plan = CsvPlan::new(&nested_schema(), None, &opts()).unwrap();
    assert_eq!(plan.header(), ["id", "file_name", "createdAt", "a", "o.x", "o.in.y", "o.in.z", "o.list", "b"]);
    let cases = [
        (r#"{"a": "A", "o": {"x": 1, "in": {"y": "Y", "z": true}, "list": [1]}, "b": 2}"#, "A,1,Y,true,[1],2"),
        (r#"{"a": "A", "o": null, "b": 2}"#, "A,,,,,2"),
        (r#"{"a": "A", "b": 2}"#, "A,,,,,2"),
        (r#"{"a": "A", "o": "text", "b": 2}"#, "A,,,,,2"),
        (r#"{"a": "A", "o": [1, 2], "b": 2}"#, "A,,,,,2"),
        (r#"{"a": "A", "o": {"x": 1.5, "in": 7}, "b": 2}"#, "A,1.5,,,,2"),
        (r#"{"a": "A", "o": {"in": {"y": {"k": [1]}}, "x": null}}"#, "A,,\"{\"\"k\"\":[1]}\",,,"),
        (r#"{"o": {"x": 1, "x": 2}}"#, ",2,,,,"),
    ];
    for (extraction, want) in cases {
        assert_eq!(records(&plan, &row("r", extraction)).0, format!("r,r.pdf,{TS},{want}\r\n"), "{extraction}");
    }
}

#[test]
fn header_cells_are_guarded_like_text() {
    let s = schema(json!([
        {"key": "a", "label": "=HYPERLINK(\"http://x\",\"y\")", "type": "string"},
        {"key": "o", "label": "@Outer", "type": "object", "fields": [{"key": "x", "label": "-X", "type": "number"}]},
        {"key": "b", "label": "+b, c", "type": "string"},
        {"key": "c", "label": "Plain", "type": "string"},
    ]));
    let label = CsvOptions { header: HeaderStyle::Label, ..opts() };
    let mut h = Vec::new();
    CsvPlan::new(&s, None, &label).unwrap().write_header(&mut h);
    assert_eq!(
        String::from_utf8(h).unwrap(),
        "id,file_name,createdAt,\"'=HYPERLINK(\"\"http://x\"\",\"\"y\"\")\",'@Outer / -X,\"'+b, c\",Plain\r\n"
    );
    let mut h = Vec::new();
    CsvPlan::new(&s, None, &CsvOptions { formula_guard: false, ..label }).unwrap().write_header(&mut h);
    assert_eq!(
        String::from_utf8(h).unwrap(),
        "id,file_name,createdAt,\"=HYPERLINK(\"\"http://x\"\",\"\"y\"\")\",@Outer / -X,\"+b, c\",Plain\r\n"
    );
}

#[test]
fn label_headers() {
    let label = CsvOptions { header: HeaderStyle::Label, ..opts() };
    let plan = CsvPlan::new(&nested_schema(), None, &label).unwrap();
    assert_eq!(
        plan.header(),
        [
            "id",
            "file_name",
            "createdAt",
            "a",
            "Outer / X",
            "Outer / in / Y",
            "Outer / in / z",
            "Outer / List",
            "B, with comma"
        ]
    );
    let mut h = Vec::new();
    plan.write_header(&mut h);
    assert_eq!(
        String::from_utf8(h).unwrap(),
        "id,file_name,createdAt,a,Outer / X,Outer / in / Y,Outer / in / z,Outer / List,\"B, with comma\"\r\n"
    );
    let s = schema(json!([
        {"key": "n", "label": "Number", "type": "string"},
        {"key": "items", "label": "Line items", "type": "array", "fields": [
            {"key": "d", "label": "Description", "type": "string"},
            {"key": "q", "type": "number"}
        ]},
        {"key": "tags", "label": "Tags", "type": "array"},
    ]));
    let plan = CsvPlan::new(&s, Some("items"), &label).unwrap();
    assert_eq!(
        plan.header(),
        ["id", "file_name", "createdAt", "Number", "Line items / Description", "Line items / q", "Tags"]
    );
    let plan = CsvPlan::new(&s, Some("tags"), &label).unwrap();
    assert_eq!(plan.header(), ["id", "file_name", "createdAt", "Number", "Line items", "Tags"]);
    let plan = CsvPlan::new(&s, Some("items"), &opts()).unwrap();
    assert_eq!(plan.header(), ["id", "file_name", "createdAt", "n", "items.d", "items.q", "tags"]);
}

fn items_schema() -> SchemaDef {
    schema(json!([
        {"key": "n", "type": "string"},
        {"key": "items", "type": "array", "fields": [
            {"key": "d", "type": "string"},
            {"key": "q", "type": "number"},
            {"key": "o", "type": "object", "fields": [{"key": "k", "type": "string"}]}
        ]},
        {"key": "tags", "type": "array"},
        {"key": "t", "type": "number"},
    ]))
}

#[test]
fn expands_objects() {
    let plan = CsvPlan::new(&items_schema(), Some("items"), &opts()).unwrap();
    assert_eq!(plan.header(), ["id", "file_name", "createdAt", "n", "items.d", "items.q", "items.o.k", "tags", "t"]);
    let r = row(
        "r",
        r#"{"n": "=N", "items": [{"d": "one", "q": 1, "o": {"k": "K"}}, 5, {"q": 2.50, "d": "a,b", "extra": 1}, null, "s", {"o": "x", "d": {"z": 1}}], "tags": ["t"], "t": 9}"#,
    );
    let (text, n) = records(&plan, &r);
    assert_eq!(n, 6);
    let head = format!("r,r.pdf,{TS},'=N");
    let tail = ",\"[\"\"t\"\"]\",9\r\n";
    assert_eq!(
        text,
        [
            format!("{head},one,1,K{tail}"),
            format!("{head},,,{tail}"),
            format!("{head},\"a,b\",2.5,{tail}"),
            format!("{head},,,{tail}"),
            format!("{head},,,{tail}"),
            format!("{head},\"{{\"\"z\"\":1}}\",,{tail}"),
        ]
        .concat()
    );
}

#[test]
fn expands_scalars() {
    let plan = CsvPlan::new(&items_schema(), Some("tags"), &opts()).unwrap();
    assert_eq!(plan.header(), ["id", "file_name", "createdAt", "n", "items", "tags", "t"]);
    let r =
        row("r", r#"{"n": "N", "items": [], "tags": ["a", 1, null, {"k": 1}, "=x", -2, 0.5, true, "x,y"], "t": 1}"#);
    let (text, n) = records(&plan, &r);
    assert_eq!(n, 9);
    let cells = ["a", "1", "", "\"{\"\"k\"\":1}\"", "'=x", "-2", "0.5", "true", "\"x,y\""];
    let want: String = cells.iter().map(|c| format!("r,r.pdf,{TS},N,[],{c},1\r\n")).collect();
    assert_eq!(text, want);
    let off = CsvPlan::new(&items_schema(), Some("tags"), &CsvOptions { formula_guard: false, ..opts() }).unwrap();
    let r = row("r", r#"{"tags": ["=x"]}"#);
    assert_eq!(records(&off, &r).0, format!("r,r.pdf,{TS},,,=x,\r\n"));
}

#[test]
fn empty_arrays_give_one_record() {
    let objects = CsvPlan::new(&items_schema(), Some("items"), &opts()).unwrap();
    let scalars = CsvPlan::new(&items_schema(), Some("tags"), &opts()).unwrap();
    let cases = [
        ("[]", "[]"),
        ("null", ""),
        ("\"text\"", "text"),
        ("{\"d\": \"x\"}", "\"{\"\"d\"\":\"\"x\"\"}\""),
        ("3", "3"),
        ("false", "false"),
    ];
    for (items, cell) in cases {
        let r = row("r", &format!(r#"{{"n": "N", "items": {items}, "tags": {items}, "t": 1}}"#));
        // the expanded columns are empty; the other array holds the value as it is
        assert_eq!(records(&objects, &r), (format!("r,r.pdf,{TS},N,,,,{cell},1\r\n"), 1), "{items}");
        assert_eq!(records(&scalars, &r), (format!("r,r.pdf,{TS},N,{cell},,1\r\n"), 1), "{items}");
    }
    let r = row("r", r#"{"n": "N"}"#);
    assert_eq!(records(&objects, &r), (format!("r,r.pdf,{TS},N,,,,,\r\n"), 1));
    assert_eq!(records(&scalars, &r), (format!("r,r.pdf,{TS},N,,,\r\n"), 1));
}

#[test]
fn expand_array_must_be_a_top_level_array() {
    let s = nested_schema();
    assert!(CsvPlan::new(&s, Some("o"), &opts()).is_err());
    assert!(CsvPlan::new(&s, Some("list"), &opts()).is_err());
    assert!(CsvPlan::new(&s, Some("o.list"), &opts()).is_err());
    assert!(CsvPlan::new(&s, Some("nope"), &opts()).is_err());
    assert!(CsvPlan::new(&items_schema(), Some("items"), &opts()).is_ok());
}

#[test]
fn expanded_array_first_in_schema() {
    let s = schema(json!([
        {"key": "items", "type": "array", "fields": [{"key": "a", "type": "string"}]},
    ]));
    let plan = CsvPlan::new(&s, Some("items"), &opts()).unwrap();
    let r = row("r", r#"{"items": [{"a": "1"}, {"a": "2"}]}"#);
    let (text, n) = render(&plan, &[r]);
    assert_eq!(n, 2);
    assert_eq!(text, format!("id,file_name,createdAt,items.a\r\nr,r.pdf,{TS},1\r\nr,r.pdf,{TS},2\r\n"));
}

/// Runs a generated data set through the plan and reads it back with the `csv` crate.
#[test]
fn generated_data_round_trips() {
    use serde_json::value::RawValue;
    use std::collections::HashMap;

    let dir = tempfile::tempdir().unwrap();
    let status = std::process::Command::new("python3")
        .arg("/work/shared/bench/gen_results.py")
        .args(["--count", "200", "--out"])
        .arg(dir.path())
        .status();
    match status {
        Ok(s) if s.success() => {}
        other => {
            println!("note: skipping generated_data_round_trips: python3 / gen_results.py unavailable ({other:?})");
            return;
        }
    }
    let schema_doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("schema.json")).unwrap()).unwrap();
    let schema: SchemaDef = serde_json::from_value(schema_doc["schema"].clone()).unwrap();
    let ndjson = std::fs::read_to_string(dir.path().join("results.ndjson")).unwrap();

    #[derive(serde::Deserialize)]
    struct Line<'a> {
        file_name: String,
        #[serde(rename = "createdAt")]
        created_at: String,
        #[serde(borrow)]
        extraction: &'a RawValue,
    }
    let lines: Vec<Line> = ndjson.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 200);
    let rows: Vec<TestResult> = lines
        .iter()
        .enumerate()
        .map(|(i, l)| TestResult {
            id: format!("res-{i:04}"),
            file_name: Some(l.file_name.clone()),
            created_at_ms: crate::domain::time::parse_instant(&l.created_at, crate::domain::time::DayEnd::Start)
                .unwrap(),
            extraction: l.extraction.get().to_string(),
        })
        .collect();

    let guard = |s: &str| -> String {
        if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
            format!("'{s}")
        } else {
            s.to_string()
        }
    };
    // The expected cell of a raw JSON value: Python already wrote numbers as repr() and
    // arrays/objects compactly, so the raw text is the cell, except strings and null.
    let expect = |raw: Option<&&RawValue>| -> String {
        match raw.map(|r| r.get()) {
            None | Some("null") => String::new(),
            Some(t) if t.starts_with('"') => guard(&serde_json::from_str::<String>(t).unwrap()),
            Some(t) => t.to_string(),
        }
    };

    for expand in [Some("line_items"), None] {
        let plan = CsvPlan::new(&schema, expand, &opts()).unwrap();
        let mut out = Vec::new();
        plan.write_header(&mut out);
        let mut reported = 0;
        for r in &rows {
            reported += plan.write_result(r, &mut out);
        }
        let mut reader = csv::ReaderBuilder::new().has_headers(true).from_reader(out.as_slice());
        let header: Vec<String> = reader.headers().unwrap().iter().map(String::from).collect();
        assert_eq!(header, plan.header());
        let col = |name: &str| header.iter().position(|h| h == name).unwrap();
        let records: Vec<csv::StringRecord> = reader.records().map(|r| r.unwrap()).collect();
        assert_eq!(records.len(), reported);
        assert!(records.iter().all(|r| r.len() == header.len()));

        let mut next = 0;
        let mut expected_total = 0;
        let mut saw_multi = false;
        for (i, l) in lines.iter().enumerate() {
            let ex: HashMap<String, &RawValue> = serde_json::from_str(l.extraction.get()).unwrap();
            let items: Vec<HashMap<String, &RawValue>> = serde_json::from_str(ex["line_items"].get()).unwrap();
            let n = match expand {
                Some(_) => items.len().max(1),
                None => 1,
            };
            saw_multi |= n > 1;
            expected_total += n;
            for k in 0..n {
                let rec = &records[next + k];
                assert_eq!(&rec[col("id")], format!("res-{i:04}"));
                assert_eq!(&rec[col("file_name")], guard(&l.file_name));
                assert_eq!(&rec[col("createdAt")], l.created_at);
                for key in ["vendor_name", "vendor_tax_id", "total", "paid", "page_count", "notes", "tags"] {
                    assert_eq!(&rec[col(key)], expect(ex.get(key)), "result {i} {key}");
                }
                let addr: Option<HashMap<String, &RawValue>> =
                    serde_json::from_str(ex["billing_address"].get()).unwrap();
                for sub in ["street", "city", "country"] {
                    let want = addr.as_ref().map(|a| expect(a.get(sub))).unwrap_or_default();
                    assert_eq!(&rec[col(&format!("billing_address.{sub}"))], want, "result {i} {sub}");
                }
                match expand {
                    Some(_) => {
                        for sub in ["description", "quantity", "unit_price", "amount"] {
                            let want = items.get(k).map(|it| expect(it.get(sub))).unwrap_or_default();
                            assert_eq!(&rec[col(&format!("line_items.{sub}"))], want, "result {i} item {k} {sub}");
                        }
                    }
                    None => assert_eq!(&rec[col("line_items")], ex["line_items"].get()),
                }
            }
            next += n;
        }
        assert_eq!(next, records.len());
        assert_eq!(expected_total, reported);
        if expand.is_some() {
            assert!(saw_multi && reported > 200);
        }
    }
}

/// The scan marks an array or object column whose text is already its compact JSON
/// (`Span::tidy`), which the CSV then copies with one search instead of walking it again;
/// anything the compact writer would rewrite is not marked. Either way the field is what the
/// compact writer writes.
#[test]
fn tidy_compound_values_are_copied_and_the_rest_rewritten() {
    let s = schema(json!([{"key": "a", "type": "array"}, {"key": "o", "type": "object"}]));
    let plan = CsvPlan::new(&s, None, &opts()).unwrap();
    let mut spans = plan.scan.spans();
    let cases = [
        (r#"[{"x":1,"y":"p\nq \"r\" \\ \t\b\f"},2.5,-1,[],{}]"#, true),
        (r#"[1,"a;b",true,null,NaN,-Infinity,-0.0]"#, true),
        (r#"[1, 2]"#, false),
        ("[1,\n2]", false),
        (r#"[{"x":1,"x":2}]"#, false),
        (r#"[{"x":1},{"x":2}]"#, true),
        (r#"[{"x":{"y":1},"y":2}]"#, true),
        (r#"[1e5]"#, false),
        (r#"[1.50]"#, false),
        (r#"[-0]"#, false),
        (r#"["\u0041"]"#, false),
        (r#"["\/"]"#, false),
        (r#"[{"k\u0041":1}]"#, false),
    ];
    for (value, tidy) in cases {
        for doc in [format!(r#"{{"a":{value}}}"#), format!(r#"{{"o":{{}},"a":{value}}}"#)] {
            plan.scan.scan(&doc, &mut spans);
            let span = spans.slots[0];
            assert_eq!((span.kind, span.tidy), (scan::Kind::Compound, tidy), "{doc}");
            // the field is the compact writer's, whichever way it was written
            let (got, _) = records(&plan, &row("r", &doc));
            let mut want = Vec::new();
            let mut scratch = CompactScratch::default();
            if !write_compact_field(value, b',', &mut want, &mut scratch) {
                let mut text = String::new();
                write_compact(value, &mut text);
                plan.write_text(&text, false, &mut want);
            }
            let want = String::from_utf8(want).unwrap();
            assert!(got.contains(&format!(",{want},")), "{doc}: {got} lacks {want}");
        }
    }
    // a wide object is left to the writer that handles it
    let wide = format!("[{{{}}}]", (0..70).map(|i| format!(r#""k{i}":{i}"#)).collect::<Vec<_>>().join(","));
    plan.scan.scan(&format!(r#"{{"a":{wide}}}"#), &mut spans);
    assert!(!spans.slots[0].tidy);
}
