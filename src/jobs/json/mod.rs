//! A JSON value that keeps what the CSV export needs: whether a number was written as an
//! integer or with a fraction/exponent, and the order of object keys.
//!
//! Numbers are rendered as Python renders them (`str(int)`, `repr(float)`), and compact JSON
//! text as Python's `json.dumps(v, separators=(",", ":"), ensure_ascii=False)` writes it, so
//! that the export agrees byte for byte with an independent Python-like implementation.

mod number;
mod parse;
#[cfg(test)]
mod tests;

pub use number::{is_repr_literal, write_float, write_float_literal, write_json_string};
pub(crate) use parse::MAX_DEPTH;

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
        parse::parse_document(text)
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

impl std::str::FromStr for JsonValue {
    type Err = String;

    /// [`JsonValue::parse`].
    fn from_str(text: &str) -> Result<JsonValue, String> {
        JsonValue::parse(text)
    }
}

/// The character a one-letter JSON escape (`\n`, `\"`, …) stands for; `None` for `u` and
/// for anything JSON does not allow after a backslash.
pub(crate) fn simple_escape(e: u8) -> Option<char> {
    Some(match e {
        b'"' => '"',
        b'\\' => '\\',
        b'/' => '/',
        b'b' => '\u{8}',
        b'f' => '\u{c}',
        b'n' => '\n',
        b'r' => '\r',
        b't' => '\t',
        _ => return None,
    })
}

/// Whether a `\uXXXX` code unit is a high surrogate, which a low one must follow.
pub(crate) fn is_high_surrogate(c: u32) -> bool {
    (0xD800..0xDC00).contains(&c)
}

/// The character a surrogate pair stands for; `None` when `lo` is not a low surrogate.
pub(crate) fn surrogate_pair(hi: u32, lo: u32) -> Option<char> {
    (0xDC00..0xE000).contains(&lo).then(|| char::from_u32(0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00))).flatten()
}
