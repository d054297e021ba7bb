//! A JSON writer for list bodies: items written key by key straight into the response's one
//! buffer.
//!
//! Hand-written for the list hot path (`GET /v1/exports` under load, issue 6): through serde
//! every string went through serde_json's byte-at-a-time escaper and every time through
//! `fmt` (together a quarter of the instructions of a request, callgrind); here strings that
//! need no escape (ids, names, times: nearly all) are copied whole after a check the compiler
//! vectorises, and the others go to serde_json, so the bytes are serde_json's either way.

use serde::Serialize;

use crate::domain::time::{format_ms, rfc3339_ms};

/// The fields a list request keeps (`fields=`).
#[derive(Clone, Copy)]
pub struct Fields<'a>(pub(super) Option<&'a [String]>);

impl<'a> Fields<'a> {
    /// Every field.
    pub const ALL: Fields<'static> = Fields(None);

    /// Whether the item keeps the key `name`.
    pub fn has(self, name: &str) -> bool {
        self.0.is_none_or(|f| f.iter().any(|n| n == name))
    }

    /// The names kept; `None`: every field.
    pub fn names(self) -> Option<&'a [String]> {
        self.0
    }
}

/// A JSON text being written.
pub struct JsonOut {
    pub(super) buf: Vec<u8>,
    /// The first error of a `serde` value (none can fail that lists write: kept, not ignored).
    pub(super) err: Option<serde_json::Error>,
}

impl JsonOut {
    pub(super) fn with_capacity(n: usize) -> JsonOut {
        JsonOut { buf: Vec::with_capacity(n), err: None }
    }

    /// Writes an object whose members `body` writes, leaving out those `fields` does not keep.
    pub fn object(&mut self, fields: Fields<'_>, body: impl FnOnce(&mut Obj<'_, '_>)) {
        self.buf.push(b'{');
        body(&mut Obj { out: self, fields, empty: true });
        self.buf.push(b'}');
    }

    /// Writes `v` as serde_json writes it.
    pub fn serde(&mut self, v: &impl Serialize) {
        if let Err(e) = serde_json::to_writer(&mut self.buf, v) {
            self.err.get_or_insert(e);
        }
    }

    pub(super) fn raw(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// A JSON string, escaped as serde_json escapes it.
    fn str(&mut self, s: &str) {
        if needs_escape(s.as_bytes()) {
            self.serde(&s);
        } else {
            self.buf.reserve(s.len() + 2);
            self.buf.push(b'"');
            self.buf.extend_from_slice(s.as_bytes());
            self.buf.push(b'"');
        }
    }

    fn int(&mut self, v: i64) {
        self.serde(&v);
    }

    fn time(&mut self, ms: i64) {
        match rfc3339_ms(ms) {
            Some(t) => {
                self.buf.push(b'"');
                self.buf.extend_from_slice(&t);
                self.buf.push(b'"');
            }
            None => self.str(&format_ms(ms)),
        }
    }
}

/// Whether serde_json escapes any byte of `s`: a control character, `"` or `\`. Branch-free
/// over 16-byte chunks, so it is vectorised; most strings are 24 to 36 bytes.
fn needs_escape(s: &[u8]) -> bool {
    let bad = |b: u8| (b < 0x20) | (b == b'"') | (b == b'\\');
    let mut chunks = s.chunks_exact(16);
    for c in &mut chunks {
        if c.iter().fold(false, |acc, &b| acc | bad(b)) {
            return true;
        }
    }
    chunks.remainder().iter().any(|&b| bad(b))
}

/// The members of an object being written.
pub struct Obj<'o, 'f> {
    out: &'o mut JsonOut,
    fields: Fields<'f>,
    empty: bool,
}

impl Obj<'_, '_> {
    /// Writes `"name":` when the object keeps `name`; says whether it did.
    fn key(&mut self, name: &'static str) -> bool {
        if !self.fields.has(name) {
            return false;
        }
        // the names are this crate's field names, which need no escaping
        debug_assert!(!needs_escape(name.as_bytes()));
        let buf = &mut self.out.buf;
        if !std::mem::take(&mut self.empty) {
            buf.push(b',');
        }
        buf.push(b'"');
        buf.extend_from_slice(name.as_bytes());
        buf.extend_from_slice(b"\":");
        true
    }

    pub fn str(&mut self, name: &'static str, v: &str) {
        if self.key(name) {
            self.out.str(v);
        }
    }

    /// A string, or `null`.
    pub fn opt_str(&mut self, name: &'static str, v: Option<&str>) {
        if self.key(name) {
            match v {
                Some(v) => self.out.str(v),
                None => self.out.raw(b"null"),
            }
        }
    }

    /// An array of strings, or `null`.
    pub fn opt_strs(&mut self, name: &'static str, v: Option<&[String]>) {
        if self.key(name) {
            match v {
                Some(v) => {
                    self.out.buf.push(b'[');
                    for (i, s) in v.iter().enumerate() {
                        if i > 0 {
                            self.out.buf.push(b',');
                        }
                        self.out.str(s);
                    }
                    self.out.buf.push(b']');
                }
                None => self.out.raw(b"null"),
            }
        }
    }

    pub fn int(&mut self, name: &'static str, v: i64) {
        if self.key(name) {
            self.out.int(v);
        }
    }

    /// A whole number, or `null`.
    pub fn opt_int(&mut self, name: &'static str, v: Option<i64>) {
        if self.key(name) {
            match v {
                Some(v) => self.out.int(v),
                None => self.out.raw(b"null"),
            }
        }
    }

    pub fn bool(&mut self, name: &'static str, v: bool) {
        if self.key(name) {
            self.out.raw(if v { b"true" } else { b"false" });
        }
    }

    /// A time as `format_ms` shows it.
    pub fn time(&mut self, name: &'static str, ms: i64) {
        if self.key(name) {
            self.out.time(ms);
        }
    }

    /// A time, or `null`.
    pub fn opt_time(&mut self, name: &'static str, ms: Option<i64>) {
        if self.key(name) {
            match ms {
                Some(ms) => self.out.time(ms),
                None => self.out.raw(b"null"),
            }
        }
    }

    /// An object with every member `body` writes, or `null` when `v` is `None`.
    pub fn opt_object<T>(&mut self, name: &'static str, v: Option<T>, body: impl FnOnce(&mut Obj<'_, '_>, T)) {
        if self.key(name) {
            match v {
                Some(v) => self.out.object(Fields::ALL, |o| body(o, v)),
                None => self.out.raw(b"null"),
            }
        }
    }

    /// `v` as serde_json writes it.
    pub fn serde(&mut self, name: &'static str, v: &impl Serialize) {
        if self.key(name) {
            self.out.serde(v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn written(body: impl FnOnce(&mut Obj<'_, '_>)) -> String {
        let mut out = JsonOut::with_capacity(0);
        out.object(Fields::ALL, body);
        assert!(out.err.is_none());
        String::from_utf8(out.buf).unwrap()
    }

    /// Every string comes out as serde_json writes it, whichever path it takes.
    #[test]
    fn strings_are_serde_jsons() {
        let mut cases: Vec<String> = ["", "plain", "a\"b", "back\\slash", "tab\there", "nl\n", "\u{1f}", "\u{7f}"]
            .into_iter()
            .map(String::from)
            .collect();
        cases.push("é😀 Müller & Söhne — 東京".into());
        for at in [0, 1, 15, 16, 17, 31, 32, 40] {
            for bad in ['"', '\\', '\u{0}', '\n', '\u{1b}'] {
                let mut s: String = "x".repeat(41);
                s.replace_range(at..at + 1, &bad.to_string());
                cases.push(s);
            }
        }
        for s in &cases {
            let got = written(|o| o.str("k", s));
            assert_eq!(got, format!("{{\"k\":{}}}", serde_json::to_string(s).unwrap()), "{s:?}");
        }
    }

    #[test]
    fn members_nulls_numbers_and_fields() {
        let keep = ["b".to_string(), "d".to_string()];
        let mut out = JsonOut::with_capacity(0);
        out.object(Fields(Some(&keep)), |o| {
            o.int("a", 1);
            o.opt_int("b", None);
            o.bool("c", true);
            o.opt_object("d", Some(-5), |o, v| {
                o.int("n", v);
                o.opt_str("s", None);
                o.opt_strs("l", Some(&["x".to_string(), "y\"".to_string()]));
            });
        });
        assert_eq!(String::from_utf8(out.buf).unwrap(), r#"{"b":null,"d":{"n":-5,"s":null,"l":["x","y\""]}}"#);
        let all = written(|o| {
            o.int("min", i64::MIN);
            o.opt_time("t", Some(0));
            o.time("far", i64::MAX);
            o.opt_strs("none", None);
        });
        let far = serde_json::to_string(&format_ms(i64::MAX)).unwrap();
        assert_eq!(
            all,
            format!(r#"{{"min":-9223372036854775808,"t":"1970-01-01T00:00:00.000Z","far":{far},"none":null}}"#)
        );
    }
}
