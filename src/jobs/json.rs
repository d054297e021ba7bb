//! A JSON value that keeps what the CSV export needs: whether a number was written as an
//! integer or with a fraction/exponent, and the order of object keys.
//!
//! Numbers are rendered as Python renders them (`str(int)`, `repr(float)`), and compact JSON
//! text as Python's `json.dumps(v, separators=(",", ":"), ensure_ascii=False)` writes it, so
//! that the export agrees byte for byte with an independent Python-like implementation.

use std::collections::HashMap;
use std::fmt::Write as _;

/// One JSON value.
///
/// Objects keep their keys in stored order. When a document repeats a key, the object keeps
/// the key at the position of its first occurrence with the value of its last one, which is
/// what Python's `json.loads` does; lookups therefore see the last occurrence.
#[derive(Debug, Clone, PartialEq)]
pub enum JsonValue {
    Null,
    Bool(bool),
    /// An integer literal, as its decimal text (`10`, `-5`, `18446744073709551615`).
    Int(String),
    /// A number written with a fraction or an exponent (`1250.0`, `1e3`).
    Float(f64),
    Str(String),
    Array(Vec<JsonValue>),
    Object(Vec<(String, JsonValue)>),
}

impl JsonValue {
    /// Parses JSON text as Python's `json.loads` reads it: numbers are read exactly
    /// (correctly rounded, unlike serde_json without its `float_roundtrip` feature, which can
    /// be one unit in the last place off for 16-17 digit literals), integer literals keep all
    /// their digits whatever their size (`-0` is the integer `0`), a repeated key keeps its
    /// first position and its last value, `NaN`/`Infinity`/`-Infinity` are accepted, and a lone
    /// UTF-16 surrogate escape becomes U+FFFD. Whitespace may surround the value; anything
    /// else after it is an error.
    pub fn parse(text: &str) -> Result<JsonValue, String> {
        let mut p = Parser { text, bytes: text.as_bytes(), pos: 0 };
        let v = p.value(0)?;
        p.skip_ws();
        if p.pos != p.bytes.len() {
            return p.err("trailing characters");
        }
        Ok(v)
    }

    /// The value of `key` when this is an object (the last occurrence of a repeated key).
    pub fn get(&self, key: &str) -> Option<&JsonValue> {
        match self {
            JsonValue::Object(entries) => object_get(entries, key),
            _ => None,
        }
    }

    /// Appends compact JSON text, as Python's
    /// `json.dumps(v, separators=(",", ":"), ensure_ascii=False)` writes it.
    pub fn write_compact(&self, out: &mut String) {
        match self {
            JsonValue::Null => out.push_str("null"),
            JsonValue::Bool(true) => out.push_str("true"),
            JsonValue::Bool(false) => out.push_str("false"),
            JsonValue::Int(text) => out.push_str(text),
            JsonValue::Float(f) => {
                if f.is_finite() {
                    write_float(*f, out)
                } else if f.is_nan() {
                    out.push_str("NaN")
                } else if *f > 0.0 {
                    out.push_str("Infinity")
                } else {
                    out.push_str("-Infinity")
                }
            }
            JsonValue::Str(s) => write_json_string(s, out),
            JsonValue::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    item.write_compact(out);
                }
                out.push(']');
            }
            JsonValue::Object(entries) => {
                out.push('{');
                for (i, (key, value)) in entries.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write_json_string(key, out);
                    out.push(':');
                    value.write_compact(out);
                }
                out.push('}');
            }
        }
    }

    /// The compact JSON text (see [`JsonValue::write_compact`]).
    pub fn to_compact_string(&self) -> String {
        let mut out = String::new();
        self.write_compact(&mut out);
        out
    }
}

/// The value of `key` among an object's entries; the last occurrence wins.
pub fn object_get<'a>(entries: &'a [(String, JsonValue)], key: &str) -> Option<&'a JsonValue> {
    entries.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v)
}

/// Appends a number as Python's `repr(float)` writes it: the shortest digits that round-trip
/// (ties between equally short candidates go to the one nearest the exact value, then to the
/// even digit, as Python's dtoa does), positional when the decimal exponent `e` satisfies
/// `-4 <= e < 16` (always with a fractional digit: `1250.0`, `0.0001`, `-0.0`), scientific
/// otherwise (`1e+16`, `1.5e-05`, `1.2345e+20`). Non-finite values (`NaN`, `Infinity`, or a
/// literal out of range such as `1e400`) are written `inf`, `-inf`, `nan`, as Python does.
pub fn write_float(f: f64, out: &mut String) {
    if f.is_nan() {
        out.push_str("nan");
        return;
    }
    if f.is_sign_negative() {
        out.push('-');
    }
    let a = f.abs();
    if a.is_infinite() {
        out.push_str("inf");
        return;
    }
    let (digits, exp) = shortest_digits(a);
    let digits = digits.bytes();
    if digits.is_empty() {
        out.push_str("0.0");
        return;
    }
    let n = digits.len() as i32;
    if (-4..16).contains(&exp) {
        if exp >= 0 {
            let int_len = exp + 1;
            if n > int_len {
                push_ascii(out, &digits[..int_len as usize]);
                out.push('.');
                push_ascii(out, &digits[int_len as usize..]);
            } else {
                push_ascii(out, digits);
                for _ in n..int_len {
                    out.push('0');
                }
                out.push_str(".0");
            }
        } else {
            out.push_str("0.");
            for _ in 0..(-exp - 1) {
                out.push('0');
            }
            push_ascii(out, digits);
        }
    } else {
        push_ascii(out, &digits[..1]);
        if n > 1 {
            out.push('.');
            push_ascii(out, &digits[1..]);
        }
        out.push('e');
        out.push(if exp < 0 { '-' } else { '+' });
        let e = exp.unsigned_abs();
        if e < 10 {
            out.push('0');
        }
        let _ = write!(out, "{e}");
    }
}

/// Appends ASCII bytes (digits) to a string.
fn push_ascii(out: &mut String, bytes: &[u8]) {
    for &b in bytes {
        debug_assert!(b.is_ascii());
        out.push(b as char);
    }
}

/// The shortest round-trip decimal digits of a finite `a >= 0` (ASCII, no leading or trailing
/// zeros; empty for zero) and the decimal exponent of the first digit: `a = d.ddd × 10^exp`.
///
/// The digits come from serde_json's float writer, which breaks ties between equally short
/// candidates to even, as Python's `repr` does; `format!("{:e}")` does not (it writes
/// `2220360000000000.3` for the double `2220360000000000.25`, Python `...0.2`).
fn shortest_digits(a: f64) -> (StackBuf, i32) {
    let mut text = StackBuf::new();
    // at most 24 bytes (`-1.7976931348623157e308`)
    serde_json::to_writer(&mut text, &a).expect("float fits the buffer");
    let s = text.bytes();
    let (mantissa, exp10) = match s.iter().position(|&b| b == b'e' || b == b'E') {
        Some(i) => {
            let (sign, mut rest) = match s[i + 1..].split_first() {
                Some((b'-', r)) => (-1, r),
                Some((b'+', r)) => (1, r),
                _ => (1, &s[i + 1..]),
            };
            let mut e: i32 = 0;
            while let Some((&d, r)) = rest.split_first() {
                e = e * 10 + i32::from(d - b'0');
                rest = r;
            }
            (&s[..i], sign * e)
        }
        None => (s, 0),
    };
    let int_len = mantissa.iter().position(|&b| b == b'.').unwrap_or(mantissa.len());
    // value = 0.<mantissa digits> × 10^point, before stripping leading zeros
    let mut point = int_len as i32 + exp10;
    let mut digits = StackBuf::new();
    for &b in mantissa.iter().filter(|&&b| b != b'.') {
        if digits.len == 0 && b == b'0' {
            point -= 1;
            continue;
        }
        digits.buf[digits.len] = b;
        digits.len += 1;
    }
    while digits.len > 0 && digits.buf[digits.len - 1] == b'0' {
        digits.len -= 1;
    }
    (digits, point - 1)
}

/// How each byte is escaped in a JSON string: 0 = as is, `u` = `\u00xx`, else `\` + that byte.
static JSON_ESCAPE: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 0x20 {
        t[i] = b'u';
        i += 1;
    }
    t[b'\n' as usize] = b'n';
    t[b'\r' as usize] = b'r';
    t[b'\t' as usize] = b't';
    t[0x08] = b'b';
    t[0x0c] = b'f';
    t[b'"' as usize] = b'"';
    t[b'\\' as usize] = b'\\';
    t
};

/// Appends `s` as a JSON string literal, escaped exactly as serde_json (and Python's
/// `json.dumps(..., ensure_ascii=False)`) escape it: `\"`, `\\`, `\b`, `\f`, `\n`, `\r`, `\t`,
/// other control characters below U+0020 as `\u00xx`; everything else as is.
pub fn write_json_string(s: &str, out: &mut String) {
    out.push('"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let esc = JSON_ESCAPE[b as usize];
        if esc == 0 {
            continue;
        }
        // `i` is at an ASCII byte, hence a char boundary.
        out.push_str(&s[start..i]);
        out.push('\\');
        if esc == b'u' {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            out.push_str("u00");
            out.push(HEX[(b >> 4) as usize] as char);
            out.push(HEX[(b & 0xf) as usize] as char);
        } else {
            out.push(esc as char);
        }
        start = i + 1;
    }
    out.push_str(&s[start..]);
    out.push('"');
}

/// A small fixed byte buffer for formatting a float without allocating.
struct StackBuf {
    buf: [u8; 48],
    len: usize,
}

impl StackBuf {
    fn new() -> Self {
        StackBuf { buf: [0; 48], len: 0 }
    }

    fn bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl std::io::Write for StackBuf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        let end = self.len + b.len();
        if end > self.buf.len() {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        self.buf[self.len..end].copy_from_slice(b);
        self.len = end;
        Ok(b.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Objects with more entries than this index their keys in a hash map while being parsed,
/// so that repeated-key handling stays linear.
const LINEAR_KEY_SCAN: usize = 32;

/// Collects an object's entries: a repeated key keeps its first position and takes the last
/// value (Python's `json.loads`).
struct ObjectBuilder {
    entries: Vec<(String, JsonValue)>,
    index: Option<HashMap<String, usize>>,
}

impl ObjectBuilder {
    fn with_capacity(n: usize) -> Self {
        ObjectBuilder { entries: Vec::with_capacity(n.min(4096)), index: None }
    }

    fn insert(&mut self, key: String, value: JsonValue) {
        let existing = match &self.index {
            Some(ix) => ix.get(&key).copied(),
            None => self.entries.iter().position(|(k, _)| *k == key),
        };
        if let Some(i) = existing {
            self.entries[i].1 = value;
            return;
        }
        if let Some(ix) = &mut self.index {
            ix.insert(key.clone(), self.entries.len());
        }
        self.entries.push((key, value));
        if self.index.is_none() && self.entries.len() > LINEAR_KEY_SCAN {
            self.index = Some(self.entries.iter().enumerate().map(|(i, (k, _))| (k.clone(), i)).collect());
        }
    }

    fn finish(self) -> Vec<(String, JsonValue)> {
        self.entries
    }
}

/// How deeply arrays/objects may nest in [`JsonValue::parse`].
const MAX_DEPTH: usize = 256;

/// A JSON text parser that reads numbers exactly (see [`JsonValue::parse`]).
struct Parser<'a> {
    text: &'a str,
    bytes: &'a [u8],
    pos: usize,
}

type ParseResult<T> = Result<T, String>;

impl<'a> Parser<'a> {
    fn err<T>(&self, what: &str) -> ParseResult<T> {
        Err(format!("{what} at byte {}", self.pos))
    }

    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.bytes.get(self.pos) {
            self.pos += 1;
        }
    }

    fn eat(&mut self, lit: &str) -> bool {
        if self.bytes[self.pos..].starts_with(lit.as_bytes()) {
            self.pos += lit.len();
            true
        } else {
            false
        }
    }

    fn value(&mut self, depth: usize) -> ParseResult<JsonValue> {
        self.skip_ws();
        let Some(&b) = self.bytes.get(self.pos) else {
            return self.err("unexpected end of input");
        };
        match b {
            b'{' => {
                if depth >= MAX_DEPTH {
                    return self.err("nested too deeply");
                }
                self.pos += 1;
                let mut obj = ObjectBuilder::with_capacity(8);
                self.skip_ws();
                if self.bytes.get(self.pos) == Some(&b'}') {
                    self.pos += 1;
                    return Ok(JsonValue::Object(obj.finish()));
                }
                loop {
                    self.skip_ws();
                    if self.bytes.get(self.pos) != Some(&b'"') {
                        return self.err("expected a key");
                    }
                    self.pos += 1;
                    let key = self.string()?;
                    self.skip_ws();
                    if !self.eat(":") {
                        return self.err("expected ':'");
                    }
                    let value = self.value(depth + 1)?;
                    obj.insert(key, value);
                    self.skip_ws();
                    match self.bytes.get(self.pos) {
                        Some(b',') => self.pos += 1,
                        Some(b'}') => {
                            self.pos += 1;
                            return Ok(JsonValue::Object(obj.finish()));
                        }
                        _ => return self.err("expected ',' or '}'"),
                    }
                }
            }
            b'[' => {
                if depth >= MAX_DEPTH {
                    return self.err("nested too deeply");
                }
                self.pos += 1;
                let mut items = Vec::new();
                self.skip_ws();
                if self.bytes.get(self.pos) == Some(&b']') {
                    self.pos += 1;
                    return Ok(JsonValue::Array(items));
                }
                loop {
                    items.push(self.value(depth + 1)?);
                    self.skip_ws();
                    match self.bytes.get(self.pos) {
                        Some(b',') => self.pos += 1,
                        Some(b']') => {
                            self.pos += 1;
                            return Ok(JsonValue::Array(items));
                        }
                        _ => return self.err("expected ',' or ']'"),
                    }
                }
            }
            b'"' => {
                self.pos += 1;
                Ok(JsonValue::Str(self.string()?))
            }
            b'-' | b'0'..=b'9' => self.number(),
            _ if self.eat("true") => Ok(JsonValue::Bool(true)),
            _ if self.eat("false") => Ok(JsonValue::Bool(false)),
            _ if self.eat("null") => Ok(JsonValue::Null),
            // Python's json.loads accepts these too
            _ if self.eat("NaN") => Ok(JsonValue::Float(f64::NAN)),
            _ if self.eat("Infinity") => Ok(JsonValue::Float(f64::INFINITY)),
            _ => self.err("expected a value"),
        }
    }

    /// `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`, or `-Infinity`.
    fn number(&mut self) -> ParseResult<JsonValue> {
        let start = self.pos;
        if self.eat("-") && self.eat("Infinity") {
            return Ok(JsonValue::Float(f64::NEG_INFINITY));
        }
        let digits = |p: &mut Self| {
            let s = p.pos;
            while let Some(b'0'..=b'9') = p.bytes.get(p.pos) {
                p.pos += 1;
            }
            p.pos - s
        };
        let int_start = self.pos;
        let n = digits(self);
        if n == 0 || (n > 1 && self.bytes[int_start] == b'0') {
            return self.err("invalid number");
        }
        let mut is_float = false;
        if self.bytes.get(self.pos) == Some(&b'.') {
            self.pos += 1;
            if digits(self) == 0 {
                return self.err("invalid number");
            }
            is_float = true;
        }
        if let Some(b'e' | b'E') = self.bytes.get(self.pos) {
            self.pos += 1;
            if let Some(b'+' | b'-') = self.bytes.get(self.pos) {
                self.pos += 1;
            }
            if digits(self) == 0 {
                return self.err("invalid number");
            }
            is_float = true;
        }
        let text = &self.text[start..self.pos];
        if is_float {
            // std's parser is correctly rounded (serde_json's default one is not always)
            match text.parse::<f64>() {
                Ok(f) => Ok(JsonValue::Float(f)),
                Err(_) => self.err("invalid number"),
            }
        } else if text == "-0" {
            Ok(JsonValue::Int("0".into()))
        } else {
            Ok(JsonValue::Int(text.to_owned()))
        }
    }

    /// The rest of a string whose opening `"` has been read.
    fn string(&mut self) -> ParseResult<String> {
        let start = self.pos;
        // fast path: no escapes
        loop {
            match self.bytes.get(self.pos) {
                None => return self.err("unterminated string"),
                Some(b'"') => {
                    let s = self.text[start..self.pos].to_owned();
                    self.pos += 1;
                    return Ok(s);
                }
                Some(b'\\') => break,
                Some(0x00..=0x1f) => return self.err("control character in string"),
                Some(_) => self.pos += 1,
            }
        }
        let mut out = String::with_capacity(self.pos - start + 16);
        out.push_str(&self.text[start..self.pos]);
        loop {
            let run = self.pos;
            while let Some(&b) = self.bytes.get(self.pos) {
                if b == b'"' || b == b'\\' || b < 0x20 {
                    break;
                }
                self.pos += 1;
            }
            out.push_str(&self.text[run..self.pos]);
            match self.bytes.get(self.pos) {
                None => return self.err("unterminated string"),
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(out);
                }
                Some(b'\\') => {
                    self.pos += 1;
                    let Some(&e) = self.bytes.get(self.pos) else {
                        return self.err("unterminated string");
                    };
                    self.pos += 1;
                    match e {
                        b'"' => out.push('"'),
                        b'\\' => out.push('\\'),
                        b'/' => out.push('/'),
                        b'b' => out.push('\u{8}'),
                        b'f' => out.push('\u{c}'),
                        b'n' => out.push('\n'),
                        b'r' => out.push('\r'),
                        b't' => out.push('\t'),
                        b'u' => {
                            let c = self.hex4()?;
                            let ch = if (0xD800..0xDC00).contains(&c) {
                                // a high surrogate: a pair when a low one follows
                                let save = self.pos;
                                if self.eat("\\u") {
                                    let lo = self.hex4()?;
                                    if (0xDC00..0xE000).contains(&lo) {
                                        char::from_u32(0x10000 + ((c - 0xD800) << 10) + (lo - 0xDC00))
                                    } else {
                                        self.pos = save;
                                        None
                                    }
                                } else {
                                    None
                                }
                            } else {
                                char::from_u32(c)
                            };
                            // a lone surrogate cannot be held in UTF-8 text
                            out.push(ch.unwrap_or('\u{fffd}'));
                        }
                        _ => {
                            self.pos -= 1;
                            return self.err("invalid escape");
                        }
                    }
                }
                Some(_) => return self.err("control character in string"),
            }
        }
    }

    fn hex4(&mut self) -> ParseResult<u32> {
        let Some(hex) = self.text.get(self.pos..self.pos + 4) else {
            return self.err("invalid \\u escape");
        };
        if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return self.err("invalid \\u escape");
        }
        self.pos += 4;
        Ok(u32::from_str_radix(hex, 16).expect("hex digits"))
    }
}

impl std::str::FromStr for JsonValue {
    type Err = String;

    /// [`JsonValue::parse`].
    fn from_str(text: &str) -> Result<JsonValue, String> {
        JsonValue::parse(text)
    }
}

#[cfg(test)]
mod tests {
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
}
