//! The JSON text parser: numbers read exactly, repeated keys as Python resolves them.

use std::collections::HashMap;

use super::{is_high_surrogate, simple_escape, surrogate_pair, JsonValue};

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

/// How deeply arrays/objects may nest in [`JsonValue::parse`]. More than the API accepts
/// (`domain::nesting::MAX_NESTING`), so that every stored extraction exports, older rows
/// stored before that limit existed included.
pub(crate) const MAX_DEPTH: usize = 256;
const _: () = assert!(MAX_DEPTH >= crate::domain::nesting::MAX_NESTING);

/// A JSON text parser that reads numbers exactly (see [`JsonValue::parse`]).
/// Parses one JSON document (see [`JsonValue::parse`]).
pub(super) fn parse_document(text: &str) -> Result<JsonValue, String> {
    let mut p = Parser { text, bytes: text.as_bytes(), pos: 0 };
    let v = p.value(0)?;
    p.skip_ws();
    if p.pos != p.bytes.len() {
        return p.err("trailing characters");
    }
    Ok(v)
}

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
                        b'u' => {
                            let c = self.hex4()?;
                            let ch = if is_high_surrogate(c) {
                                // a pair when a low one follows
                                let save = self.pos;
                                if self.eat("\\u") {
                                    let pair = surrogate_pair(c, self.hex4()?);
                                    if pair.is_none() {
                                        self.pos = save;
                                    }
                                    pair
                                } else {
                                    None
                                }
                            } else {
                                char::from_u32(c)
                            };
                            // a lone surrogate cannot be held in UTF-8 text
                            out.push(ch.unwrap_or('\u{fffd}'));
                        }
                        _ => match simple_escape(e) {
                            Some(c) => out.push(c),
                            None => {
                                self.pos -= 1;
                                return self.err("invalid escape");
                            }
                        },
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
