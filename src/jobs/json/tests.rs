use super::*;

fn parse(text: &str) -> JsonValue {
    JsonValue::parse(text).unwrap()
}

fn float(f: f64) -> String {
    let mut s = String::new();
    write_float(f, &mut s);
    s
}

fn compact(text: &str) -> String {
    parse(text).to_compact_string()
}

#[test]
fn renders_numbers_like_python() {
    let cases: &[(&str, &str)] = &[
        ("0", "0"),
        ("-0.0", "-0.0"),
        ("0.0", "0.0"),
        ("10", "10"),
        ("-5", "-5"),
        ("1250.0", "1250.0"),
        ("0.1", "0.1"),
        ("19.99", "19.99"),
        ("1e16", "1e+16"),
        ("1E16", "1e+16"),
        ("9999999999999998.0", "9999999999999998.0"),
        ("1234567890123456.7", "1234567890123456.8"),
        ("1.5e-5", "1.5e-05"),
        ("0.0001", "0.0001"),
        ("0.00001", "1e-05"),
        ("0.00012345", "0.00012345"),
        ("123456789012345680000.0", "1.2345678901234568e+20"),
        ("1.2345e20", "1.2345e+20"),
        ("1e300", "1e+300"),
        ("-1e-300", "-1e-300"),
        ("5e-324", "5e-324"),
        ("1.7976931348623157e308", "1.7976931348623157e+308"),
        ("1e3", "1000.0"),
        ("2220360000000000.25", "2220360000000000.2"),
        ("2220360000000000.75", "2220360000000000.8"),
        ("2.5E+2", "250.0"),
        ("100", "100"),
        ("18446744073709551615", "18446744073709551615"),
        ("-9223372036854775808", "-9223372036854775808"),
        ("9223372036854775807", "9223372036854775807"),
    ];
    for (text, want) in cases {
        assert_eq!(compact(text), *want, "{text}");
    }
    assert_eq!(parse(&u64::MAX.to_string()), JsonValue::Int(u64::MAX.to_string()));
    assert_eq!(parse(&i64::MIN.to_string()), JsonValue::Int(i64::MIN.to_string()));
    assert_eq!(parse("10"), JsonValue::Int("10".into()));
    assert_eq!(parse("1250.0"), JsonValue::Float(1250.0));
    assert_eq!(float(0.0), "0.0");
    assert_eq!(float(-0.0), "-0.0");
    assert_eq!(float(1e16), "1e+16");
    assert_eq!(float(1e15), "1000000000000000.0");
    assert_eq!(float(1.5e-5), "1.5e-05");
    assert_eq!(float(123456789012345680000.0), "1.2345678901234568e+20");
    assert_eq!(float(1e300), "1e+300");
    assert_eq!(float(f64::INFINITY), "inf");
    assert_eq!(float(f64::NEG_INFINITY), "-inf");
    assert_eq!(float(f64::NAN), "nan");
    // beyond the 64-bit range, and -0, as Python's int
    assert_eq!(compact("123456789012345678901234567890"), "123456789012345678901234567890");
    assert_eq!(compact("-0"), "0");
    assert_eq!(compact("1e400"), "Infinity");
    assert_eq!(compact("[NaN,-Infinity]"), "[NaN,-Infinity]");
    let mut cell = String::new();
    write_float(parse("1e400").as_float(), &mut cell);
    assert_eq!(cell, "inf");
}

impl JsonValue {
    fn as_float(&self) -> f64 {
        match self {
            JsonValue::Float(f) => *f,
            other => panic!("not a float: {other:?}"),
        }
    }
}

#[test]
fn parser_reads_strict_json() {
    assert_eq!(
        parse(" \t\r\n{\"a\" : [ 1 , 2.0 ] } \n"),
        JsonValue::Object(vec![(
            "a".into(),
            JsonValue::Array(vec![JsonValue::Int("1".into()), JsonValue::Float(2.0)])
        )])
    );
    assert_eq!(parse("\"\\u00e9\\ud83d\\ude00\\/\\b\\f\""), JsonValue::Str("é😀/\u{8}\u{c}".into()));
    // lone surrogates become U+FFFD; a high one followed by a non-low escape keeps the latter
    assert_eq!(parse(r#""\ud800x""#), JsonValue::Str("\u{fffd}x".into()));
    assert_eq!(parse(r#""\udc00""#), JsonValue::Str("\u{fffd}".into()));
    assert_eq!(parse(r#""\ud800\u0041""#), JsonValue::Str("\u{fffd}A".into()));
    assert_eq!(parse(r#""Müller, 東京""#), JsonValue::Str("Müller, 東京".into()));
    assert_eq!(parse("[]"), JsonValue::Array(vec![]));
    assert_eq!(parse("{}"), JsonValue::Object(vec![]));
    assert_eq!(parse("-1.5E-3"), JsonValue::Float(-0.0015));
    assert_eq!("[true]".parse::<JsonValue>(), Ok(JsonValue::Array(vec![JsonValue::Bool(true)])));
    let bad = [
        "",
        " ",
        "{",
        "[1,]",
        "{\"a\":1,}",
        "{\"a\" 1}",
        "{a:1}",
        "01",
        "1.",
        ".5",
        "-",
        "1e",
        "+1",
        "--1",
        "\"abc",
        "\"a\nb\"",
        "\"\\x\"",
        "\"\\u12\"",
        "\"\\u12g4\"",
        "tru",
        "nul",
        "[1] x",
        "{} {}",
        "'a'",
        "[1 2]",
        "{\"a\":1 \"b\":2}",
        "Inf",
        "-NaN",
    ];
    for b in bad {
        assert!(JsonValue::parse(b).is_err(), "{b:?}");
    }
    // nesting is bounded (no stack overflow)
    let deep = "[".repeat(100_000);
    assert!(JsonValue::parse(&deep).is_err());
    let ok = format!("{}{}", "[".repeat(200), "]".repeat(200));
    assert!(JsonValue::parse(&ok).is_ok());
}

#[test]
fn parser_floats_are_correctly_rounded() {
    // serde_json's default parser reads this one a unit in the last place low
    assert_eq!(parse("123456789012345680000.0").as_float(), 123456789012345680000.0);
    assert_eq!(parse("0.30000000000000004").as_float(), 0.1 + 0.2);
    assert_eq!(parse("2.2250738585072014e-308").as_float(), f64::MIN_POSITIVE);
    assert_eq!(parse("1e-400").as_float(), 0.0);
}

#[test]
fn compact_json_like_python() {
    assert_eq!(compact(r#"["eu", "q1"]"#), r#"["eu","q1"]"#);
    assert_eq!(compact("[ ]"), "[]");
    assert_eq!(compact("{ }"), "{}");
    assert_eq!(compact(r#"{ "a" : 1 }"#), r#"{"a":1}"#);
    assert_eq!(
        compact(r#"{"z": 1.0, "a": [true, false, null, {"b": "c"}], "m": -2}"#),
        r#"{"z":1.0,"a":[true,false,null,{"b":"c"}],"m":-2}"#
    );
    // non-ASCII stays as is (ensure_ascii=False); escapes as serde_json writes them
    assert_eq!(compact(r#"["Müller", "東京", "\u00e9", "😀"]"#), "[\"Müller\",\"東京\",\"é\",\"😀\"]");
    assert_eq!(
        compact(r#"["a\"b\\c\/d\n\r\t\b\f\u0001\u001f\u007f"]"#),
        "[\"a\\\"b\\\\c/d\\n\\r\\t\\b\\f\\u0001\\u001f\u{7f}\"]"
    );
    // keys are escaped too
    assert_eq!(compact(r#"{"a\"b": "x\ny"}"#), r#"{"a\"b":"x\ny"}"#);
}

#[test]
fn escapes_exactly_as_serde_json() {
    let mut all = String::new();
    for c in (0u32..0x100).chain([0x2028, 0x2029, 0xfeff, 0x1f600]) {
        all.push(char::from_u32(c).unwrap());
    }
    for s in [all.as_str(), "", "plain", "end\"", "\u{1}start"] {
        let mut mine = String::new();
        write_json_string(s, &mut mine);
        assert_eq!(mine, serde_json::to_string(s).unwrap());
    }
}

#[test]
fn keeps_order_and_last_duplicate_wins() {
    let v = parse(r#"{"b": 1, "a": 2, "b": 3}"#);
    assert_eq!(v.get("b"), Some(&JsonValue::Int("3".into())));
    assert_eq!(v.get("a"), Some(&JsonValue::Int("2".into())));
    assert_eq!(v.get("c"), None);
    assert_eq!(v.to_compact_string(), r#"{"b":3,"a":2}"#);
    assert_eq!(JsonValue::Int("1".into()).get("a"), None);
    // also for large objects (indexed keys)
    let mut text = String::from("{");
    for i in 0..100 {
        text.push_str(&format!("\"k{i}\":{i},"));
    }
    text.push_str("\"k5\":\"last\",\"k99\":null}");
    let v = parse(&text);
    let JsonValue::Object(entries) = &v else { panic!() };
    assert_eq!(entries.len(), 100);
    assert_eq!(entries[5], ("k5".to_string(), JsonValue::Str("last".into())));
    assert_eq!(v.get("k99"), Some(&JsonValue::Null));
    // a hand-built object with duplicates: lookups still see the last one
    let built = JsonValue::Object(vec![("x".into(), JsonValue::Bool(true)), ("x".into(), JsonValue::Bool(false))]);
    assert_eq!(built.get("x"), Some(&JsonValue::Bool(false)));
}

#[test]
fn matches_python_repr_on_many_floats() {
    use std::io::Write;
    use std::process::{Command, Stdio};
    // Deterministic pseudo-random doubles over many magnitudes.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut floats = Vec::new();
    for i in 0..20_000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let f = if i % 3 == 0 {
            f64::from_bits(x)
        } else if i % 3 == 1 {
            // exact quarters near 2^50..2^53: many ties between shortest candidates
            ((x >> 11) as f64) * 0.25
        } else {
            // "everyday" numbers with 0-4 decimals at various scales
            let scale = 10f64.powi((x % 25) as i32 - 8);
            ((x >> 20) % 1_000_000) as f64 / 100.0 * scale
        };
        if f.is_finite() {
            floats.push(f);
        }
    }
    let child = Command::new("python3")
        .args([
            "-c",
            "import sys,struct\nfor l in sys.stdin:\n    print(repr(struct.unpack('<d', bytes.fromhex(l.strip()))[0]))",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn();
    let Ok(mut child) = child else {
        println!("note: python3 not available, skipping the repr comparison");
        return;
    };
    let mut input = String::new();
    for f in &floats {
        for b in f.to_le_bytes() {
            input.push_str(&format!("{b:02x}"));
        }
        input.push('\n');
    }
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let output = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    let text = String::from_utf8(output.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), floats.len());
    for (f, want) in floats.iter().zip(lines) {
        assert_eq!(float(*f), want, "{f:?}");
        // and Python's text reads back to the same double
        assert_eq!(parse(want).as_float().to_bits(), f.to_bits(), "{want}");
    }
}
