//! The plan-directed scan against the tree-based oracle (`reference.rs`): byte for byte, on
//! random schemas, random extractions and every option.

use super::*;
use serde_json::{json, Value};

use crate::domain::rng::Rng;

/// Keys fields may have; the last ones need escapes or are not ASCII (a plan does not check
/// keys, and the scan must match them as the parser decodes them).
const KEYS: &[&str] = &["a", "b", "c", "vendor", "items", "tags", "o", "total", "k\u{e9}y", "q\"k", "s/l"];
const TYPES: &[&str] = &["string", "number", "integer", "boolean", "date", "array", "object"];

fn random_fields(rng: &mut Rng, depth: usize) -> Vec<Value> {
    let n = 1 + rng.below(if depth == 0 { 7 } else { 4 });
    let mut keys: Vec<&str> = KEYS.to_vec();
    let mut fields = Vec::new();
    for _ in 0..n.min(keys.len()) {
        let key = keys.remove(rng.below(keys.len()));
        let ty = *rng.pick(TYPES);
        let mut f = json!({"key": key, "type": ty});
        if rng.percent(50) {
            f["label"] = json!(*rng.pick(&["Label", "=Sum", "Tax, %", "Straße", ""]));
        }
        if ty == "object" && depth < 2 {
            f["fields"] = Value::Array(random_fields(rng, depth + 1));
        } else if ty == "object" {
            f["type"] = json!("string");
        }
        if ty == "array" && depth < 2 && rng.percent(60) {
            f["fields"] = Value::Array(random_fields(rng, depth + 1));
        }
        fields.push(f);
    }
    fields
}

const NUMBERS: &[&str] = &[
    "0",
    "-0",
    "7",
    "-45",
    "10",
    "123456789012345678901234567890",
    "-99999999999999999999",
    "1.5",
    "-0.0",
    "0.0",
    "100.0",
    "19.99",
    "0.1",
    "0.30000000000000004",
    "1.10",
    "0.0001",
    "0.00001",
    "1e5",
    "1E+5",
    "-2.5e-7",
    "1.0e-7",
    "2.5e-300",
    "5e-324",
    "1e400",
    "-1e400",
    "1.7976931348623157e308",
    "123456789.123456789",
    "1234567890123456.0",
    "123456789012345.6",
    "9007199254740993.0",
    "2220360000000000.25",
    "0.5e1",
    "1e16",
    "1e15",
    "NaN",
    "Infinity",
    "-Infinity",
    "12345678901234567890.5",
    "0e0",
    "-0e-0",
];

const STRING_PIECES: &[&str] = &[
    "plain",
    "Acme",
    ", ",
    "\\\"",
    "\\n",
    "\\r\\n",
    "\\t",
    "\\\\",
    "\\/",
    "=",
    "+",
    "-",
    "@",
    "\u{e9}t\u{e9}",
    "\u{6771}\u{4eac}",
    "\\u00e9",
    "\\ud83d\\ude00",
    "\\ud800",
    "\\udc00x",
    "\\ud800\\u0041",
    "\\u0000",
    "\\u001f",
    " ",
    ";",
    "|",
    "'",
    "\\b\\f",
    "\u{1F600}",
];

fn random_string(rng: &mut Rng, out: &mut String) {
    out.push('"');
    // often a formula-like or empty start
    for _ in 0..rng.below(5) {
        out.push_str(rng.pick::<&str>(STRING_PIECES));
    }
    out.push('"');
}

fn ws(rng: &mut Rng, out: &mut String) {
    if rng.percent(15) {
        out.push_str(rng.pick::<&str>(&[" ", "\n", "\t", "\r\n  ", "  "]));
    }
}

/// A random value, shaped like `field` often (when given), anything otherwise.
fn random_value(rng: &mut Rng, field: Option<&Value>, depth: usize, out: &mut String) {
    ws(rng, out);
    let ty = field.and_then(|f| f["type"].as_str()).filter(|_| rng.percent(80));
    let sub = field.and_then(|f| f.get("fields")).and_then(Value::as_array);
    let choice = match ty {
        Some("string" | "date") => 0,
        Some("number" | "integer") => 1,
        Some("boolean") => 2,
        Some("array") => 4,
        Some("object") => 5,
        _ => rng.below(if depth > 3 { 4 } else { 6 }),
    };
    match choice {
        0 => random_string(rng, out),
        1 => out.push_str(rng.pick::<&str>(NUMBERS)),
        2 => out.push_str(rng.pick::<&str>(&["true", "false"])),
        3 => out.push_str("null"),
        4 => {
            out.push('[');
            let n = rng.below(5);
            for i in 0..n {
                if i > 0 {
                    out.push(',');
                }
                match sub {
                    Some(sub) if rng.percent(85) => random_object(rng, Some(sub), depth + 1, out),
                    _ => random_value(rng, None, depth + 1, out),
                }
                ws(rng, out);
            }
            out.push(']');
        }
        _ => random_object(rng, sub, depth + 1, out),
    }
    ws(rng, out);
}

/// A random object: the schema's keys (some missing, some repeated), and unknown members.
fn random_object(rng: &mut Rng, fields: Option<&Vec<Value>>, depth: usize, out: &mut String) {
    let mut members: Vec<(String, Option<&Value>)> = Vec::new();
    if let Some(fields) = fields {
        for f in fields {
            if rng.percent(85) {
                members.push((f["key"].as_str().unwrap().to_string(), Some(f)));
            }
        }
    }
    for _ in 0..rng.below(3) {
        members.push((rng.pick(&["extra", "zz", "a", "o", "x"]).to_string(), None));
    }
    // repeated keys: the last occurrence counts
    if !members.is_empty() && rng.percent(20) {
        let m = members[rng.below(members.len())].clone();
        members.push(m);
    }
    // shuffle
    for i in (1..members.len()).rev() {
        members.swap(i, rng.below(i + 1));
    }
    out.push('{');
    for (i, (key, field)) in members.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        ws(rng, out);
        // a key may be written with escapes
        let mut text = String::new();
        crate::jobs::json::write_json_string(key, &mut text);
        if rng.percent(10) && key.starts_with('a') {
            text = text.replacen('a', "\\u0061", 1);
        }
        out.push_str(&text);
        ws(rng, out);
        out.push(':');
        if depth > 6 {
            out.push('1');
        } else {
            random_value(rng, *field, depth, out);
        }
    }
    ws(rng, out);
    out.push('}');
}

/// Damages a document so that it is (usually) not valid JSON any more.
fn damage(rng: &mut Rng, doc: &mut String) {
    match rng.below(7) {
        0 => {
            let mut cut = rng.below(doc.len().max(1));
            while !doc.is_char_boundary(cut) {
                cut -= 1;
            }
            doc.truncate(cut);
        }
        1 => doc.push_str(" x"),
        2 => doc.insert(1, '\u{1}'),
        3 => *doc = doc.replacen(":", ":\"\\x\",", 1),
        4 => *doc = format!("{}{}", "[".repeat(300), doc),
        5 => *doc = doc.replacen("\"", "\"\n", 1),
        _ => *doc = doc.replacen(",", ",,", 1),
    }
}

fn random_options(rng: &mut Rng) -> CsvOptions {
    CsvOptions {
        delimiter: *rng.pick(&DELIMITERS),
        bom: false,
        header: *rng.pick(&[HeaderStyle::Key, HeaderStyle::Label]),
        formula_guard: rng.percent(50),
        gzip: false,
        ..CsvOptions::default()
    }
}

/// Asserts both formatters write the same bytes and counts for `rows`.
fn assert_same(plan: &CsvPlan, rows: &[TestResult], context: &str) {
    let mut scratch = plan.scratch();
    for row in rows {
        let mut new = Vec::new();
        let mut old = Vec::new();
        let n_new = plan.write_row(
            &row.id,
            row.file_name.as_deref(),
            row.created_at_ms,
            &row.extraction,
            &mut new,
            &mut scratch,
        );
        let n_old = plan.write_result_reference(row, &mut old);
        assert!(
            new == old && n_new == n_old,
            "{context}\nextraction: {}\nnew ({n_new}): {:?}\nold ({n_old}): {:?}",
            row.extraction,
            String::from_utf8_lossy(&new),
            String::from_utf8_lossy(&old)
        );
    }
}

#[test]
fn scan_agrees_with_the_tree_on_random_schemas_and_values() {
    let mut rng = Rng(0x5EED_0006);
    for case in 0..400 {
        let fields = random_fields(&mut rng, 0);
        let schema: SchemaDef = serde_json::from_value(json!({ "fields": fields })).unwrap();
        let arrays: Vec<&str> =
            fields.iter().filter(|f| f["type"] == "array").map(|f| f["key"].as_str().unwrap()).collect();
        let mut rows = Vec::new();
        for i in 0..40 {
            let mut doc = String::new();
            ws(&mut rng, &mut doc);
            match rng.below(30) {
                0 => random_value(&mut rng, None, 5, &mut doc),
                _ => random_object(&mut rng, Some(&fields), 0, &mut doc),
            }
            ws(&mut rng, &mut doc);
            if rng.percent(8) {
                damage(&mut rng, &mut doc);
            }
            let file_name = match rng.below(4) {
                0 => None,
                1 => Some("=cmd|' /C calc'!A0".to_string()),
                2 => Some("inv\"oice, \u{e9}\n.pdf".to_string()),
                _ => Some(format!("f{i}.pdf")),
            };
            let created_at_ms = *rng.pick(&[0, 1_706_702_400_123, -1, 253_402_300_800_000, -62_135_596_800_001]);
            rows.push(TestResult { id: format!("r{i}"), file_name, created_at_ms, extraction: doc });
        }
        let options = random_options(&mut rng);
        let expand: Vec<Option<&str>> = std::iter::once(None).chain(arrays.iter().map(|k| Some(*k))).collect();
        for e in expand {
            let plan = CsvPlan::new(&schema, e, &options).unwrap();
            assert_same(&plan, &rows, &format!("case {case}, expand {e:?}, options {options:?}, schema {fields:?}"));
        }
    }
}

/// Numbers of every shape as values, in arrays (compact JSON) and as expanded scalars.
#[test]
fn numbers_of_every_shape_agree() {
    let schema: SchemaDef = serde_json::from_value(json!({"fields": [
        {"key": "n", "type": "number"}, {"key": "arr", "type": "array"}, {"key": "o", "type": "string"}
    ]}))
    .unwrap();
    let mut rng = Rng(42);
    let mut lits: Vec<String> = NUMBERS.iter().map(|s| s.to_string()).collect();
    for _ in 0..3000 {
        let mut s = String::new();
        if rng.percent(30) {
            s.push('-');
        }
        let int = rng.next_u64() % 10u64.pow(1 + rng.below(18) as u32);
        s.push_str(&int.to_string());
        if rng.percent(70) {
            s.push('.');
            let frac =
                format!("{:0width$}", rng.next_u64() % 10u64.pow(1 + rng.below(17) as u32), width = 1 + rng.below(6));
            s.push_str(&frac);
        }
        if rng.percent(30) {
            s.push_str(&format!("e{}{}", rng.pick(&["", "+", "-"]), rng.below(330)));
        }
        lits.push(s);
    }
    let rows: Vec<TestResult> = lits
        .iter()
        .enumerate()
        .map(|(i, n)| TestResult {
            id: format!("{i}"),
            file_name: None,
            created_at_ms: 0,
            extraction: format!(r#"{{"n": {n}, "arr": [{n}, {{"x": {n}}}], "o": {{"y": [{n}]}}}}"#),
        })
        .collect();
    for expand in [None, Some("arr")] {
        let plan = CsvPlan::new(&schema, expand, &CsvOptions::default()).unwrap();
        assert_same(&plan, &rows, "numbers");
    }
}

/// Repeated keys: the value of the last occurrence at its first position (compact JSON of
/// objects), as the parser resolves them; deep nesting at the parser's limit.
#[test]
fn repeated_keys_and_nesting_limits_agree() {
    let schema: SchemaDef = serde_json::from_value(json!({"fields": [
        {"key": "a", "type": "string"},
        {"key": "o", "type": "object", "fields": [{"key": "x", "type": "string"}, {"key": "y", "type": "string"}]},
        {"key": "items", "type": "array", "fields": [{"key": "x", "type": "number"}]},
        {"key": "raw", "type": "string"},
    ]}))
    .unwrap();
    let deep = |n: usize| format!("{}1{}", "[".repeat(n), "]".repeat(n));
    let docs = [
        r#"{"a": 1, "a": 2}"#.to_string(),
        r#"{"o": {"x": 1, "y": 2}, "o": {"y": 3}}"#.to_string(),
        r#"{"o": {"x": 1}, "o": 5}"#.to_string(),
        r#"{"o": {"x": 1, "x": 2, "y": null}}"#.to_string(),
        r#"{"items": [{"x": 1}], "items": [{"x": 2}, 3, {"x": 4, "x": 5}]}"#.to_string(),
        r#"{"items": [{"x": 1}], "items": null}"#.to_string(),
        r#"{"raw": {"k": 1, "j": 2, "k": 3}}"#.to_string(),
        r#"{"raw": {"k": {"a": 1, "a": [2]}, "\u006b": 3}}"#.to_string(),
        r#"{"raw": {"k\"": 1, "k\u0022": 2}}"#.to_string(),
        format!(
            r#"{{"raw": {{{}}}}}"#,
            (0..100).map(|i| format!(r#""k{}": {i}"#, i % 70)).collect::<Vec<_>>().join(",")
        ),
        format!(r#"{{"raw": {}}}"#, deep(254)),
        format!(r#"{{"raw": {}}}"#, deep(255)),
        format!(r#"{{"raw": {}}}"#, deep(256)),
        format!(r#"{{"items": [{{"x": {}}}], "a": "z"}}"#, deep(253)),
        format!(r#"{{"items": [{{"x": {}}}], "a": "z"}}"#, deep(254)),
        format!(r#"{{"o": {{"x": {}}}, "a": "z"}}"#, deep(254)),
        format!(r#"{{"o": {{"x": {}}}, "a": "z"}}"#, deep(255)),
        "[1]".to_string(),
        "\"a\"".to_string(),
        " {\"a\": \"x\"} \n".to_string(),
        "{\"a\": \"x\"} {}".to_string(),
        "{\"a\": tru}".to_string(),
        "{\"a\": \"\\u12\"}".to_string(),
        "{\"a\": \"\\ud800\\u12\"}".to_string(),
        "{\"a\": -}".to_string(),
        "{\"a\": 01}".to_string(),
        "{\"a\": 1.}".to_string(),
        "{\"a\": 1e}".to_string(),
        "{\"a\": -Infinity, \"raw\": [-Infinity, NaN, 1e999]}".to_string(),
        "".to_string(),
    ];
    let rows: Vec<TestResult> = docs
        .iter()
        .enumerate()
        .map(|(i, d)| TestResult { id: i.to_string(), file_name: None, created_at_ms: 0, extraction: d.clone() })
        .collect();
    for expand in [None, Some("items")] {
        let plan = CsvPlan::new(&schema, expand, &CsvOptions::default()).unwrap();
        assert_same(&plan, &rows, "edge cases");
    }
}

#[test]
fn float_literals_copied_as_is_are_what_python_writes() {
    let mut rng = Rng(7);
    for _ in 0..200_000 {
        let digits = 1 + rng.below(17);
        let mut s: String = (0..digits).map(|_| char::from(b'0' + rng.below(10) as u8)).collect();
        let dot = rng.below(digits);
        s.insert(dot.max(1), '.');
        if s.ends_with('.') {
            s.push('0');
        }
        let mut fast = String::new();
        crate::jobs::json::write_float_literal(&s, false, &mut fast);
        let mut slow = String::new();
        crate::jobs::json::write_float(s.parse().unwrap(), &mut slow);
        assert_eq!(fast, slow, "{s}");
    }
}

/// Arrays and objects written as CSV fields in one pass: whitespace dropped, escapes
/// rewritten (`\u00e9` -> `é`, `\/` -> `/`, `\"` kept and doubled), numbers as Python
/// writes them, and quotes only when the compact text holds `"`, the delimiter, CR or LF
/// (`[1,2]` is quoted under `,` but not under `;`).
#[test]
fn compact_json_fields_agree_under_every_delimiter() {
    let schema: SchemaDef = serde_json::from_value(json!({"fields": [
        {"key": "a", "type": "array"}, {"key": "o", "type": "object"}
    ]}))
    .unwrap();
    let values = [
        "[]",
        "{}",
        "[1]",
        "[1,2]",
        "[ 1 , 2 ]",
        "[-0, 1.0, 1e5, 1.10, -0.0, 2.5e-7]",
        "[true,false,null]",
        "[\"a\"]",
        "[\"a,b\", \"c;d\", \"e|f\"]",
        "[\"\\u00e9\\/x\", \"q\\\"uote\", \"tab\\tnl\\ncr\\r\"]",
        "{\"k\" : [ {\"x\" :1 ,\"y\":\"v\"} ]}",
        "{\"k\":1,\"k\":2}",
        "{\"k\\u00e9\":1}",
        "\n[\r\n\t{\"description\": \"Support\\nplan\", \"quantity\": 14, \"unit_price\": 34.23}\n]",
        "[\"=SUM(A1)\", \"+1\", \"-x\", \"@me\"]",
        "[[[]], [{}], [[1, [2, [3]]]]]",
    ];
    let mut rows = Vec::new();
    for (i, v) in values.iter().enumerate() {
        rows.push(TestResult {
            id: format!("{i}"),
            file_name: None,
            created_at_ms: 0,
            extraction: format!("{{\"a\": {v}, \"o\": {{\"in\": {v}}}}}"),
        });
    }
    for delimiter in DELIMITERS {
        for formula_guard in [false, true] {
            let options = CsvOptions { delimiter, formula_guard, ..CsvOptions::default() };
            let plan = CsvPlan::new(&schema, None, &options).unwrap();
            assert_same(&plan, &rows, &format!("delimiter {delimiter:?}, guard {formula_guard}"));
        }
    }
    // the quoting decision itself, not only agreement with the reference
    let plan = CsvPlan::new(&schema, None, &CsvOptions { delimiter: ';', ..CsvOptions::default() }).unwrap();
    let mut out = Vec::new();
    plan.write_result(&rows[3], &mut out);
    assert_eq!(String::from_utf8(out).unwrap(), "3;;1970-01-01T00:00:00.000Z;[1,2];\"{\"\"in\"\":[1,2]}\"\r\n");
}
