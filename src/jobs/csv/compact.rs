//! Compact JSON text of an array or object value, written straight from its checked source
//! text, as `JsonValue::write_compact` writes the parsed value (Python's
//! `json.dumps(v, separators=(",", ":"), ensure_ascii=False)`), and as a CSV field in the
//! same pass (quoted, inner `"` doubled).

use super::scan::decode_string;
use crate::jobs::json::{is_repr_literal, write_float_literal, write_json_string, JsonValue};

/// Objects with more keys than this are written through the parsed value (its repeated-key
/// handling is linear; the check here is not).
pub(super) const MAX_DIRECT_KEYS: usize = 64;

/// Reusable buffers of the compact writer.
#[derive(Debug, Default)]
pub(super) struct CompactScratch {
    keys: Vec<(usize, usize)>,
    text: String,
    json: String,
}

/// Appends the compact JSON of `src` (a value the scan has checked) through the parsed
/// value: the way for what [`write_compact_field`] leaves.
pub(super) fn write_compact(src: &str, out: &mut String) {
    match JsonValue::parse(src) {
        Ok(v) => v.write_compact(out),
        Err(_) => debug_assert!(false, "the scan checked this value"),
    }
}

/// Appends the compact JSON of `src`, a value the scan has checked, as one CSV field: in
/// quotes with inner `"` doubled when it holds `"`, `delimiter`, CR or LF, as is otherwise.
/// False (and nothing appended) for a value with a repeated key, a key with escapes or a
/// very wide object: the caller writes those through [`write_compact`].
///
/// Hand-written single pass on the hot path: the compact JSON columns (arrays of objects)
/// are the longest fields of an export, and writing them to a string first, then searching
/// and doubling its quotes, cost three passes (perf: a third of the formatting time). Stored
/// extractions are mostly compact already, so the text is copied in runs; the only `"` in a
/// run are the quotes around strings, which the walk meets anyway and doubles there.
pub(super) fn write_compact_field(src: &str, delimiter: u8, out: &mut Vec<u8>, scratch: &mut CompactScratch) -> bool {
    let open = out.len();
    out.push(b'"');
    scratch.keys.clear();
    let mut w = Writer { s: src, b: src.as_bytes(), pos: 0, run: 0, quoted: false, scratch };
    if w.value(out).is_none() {
        out.truncate(open);
        return false;
    }
    w.flush(out, w.pos);
    if w.quoted || super::bytes::contains_any(&out[open + 1..], [delimiter, b'"', b'\r', b'\n']) {
        out.push(b'"');
    } else {
        // no quote needed (say `[1]`): drop the opening one
        out.copy_within(open + 1.., open);
        out.pop();
    }
    true
}

/// Appends `src`, an array or object whose text is already its compact JSON (a tidy span of
/// the scan, see `scan::Tidy`), as the CSV field [`write_compact_field`] would write: quoted
/// with inner `"` doubled when it holds `"` or `delimiter` (a tidy text has no CR or LF), as
/// is otherwise. Hand-written: one search and one copy in runs, on the hot path.
pub(super) fn write_tidy_field(src: &str, delimiter: u8, out: &mut Vec<u8>) {
    let b = src.as_bytes();
    if memchr::memchr2(b'"', delimiter, b).is_none() {
        out.extend_from_slice(b);
        return;
    }
    out.reserve(b.len() + b.len() / 8 + 2);
    out.push(b'"');
    super::bytes::push_doubling_quotes(b, out);
    out.push(b'"');
}

struct Writer<'a, 's> {
    s: &'a str,
    b: &'a [u8],
    pos: usize,
    /// Where the source text not yet copied (and to be copied as is) starts.
    run: usize,
    /// Whether a `"` was written (doubled): the field must be quoted.
    quoted: bool,
    scratch: &'s mut CompactScratch,
}

impl Writer<'_, '_> {
    /// Copies the pending run up to `to`.
    #[inline]
    fn flush(&mut self, out: &mut Vec<u8>, to: usize) {
        out.extend_from_slice(&self.b[self.run..to]);
        self.run = to;
    }

    /// Writes the `"` at `at` (the source's, outside any run) doubled.
    #[inline]
    fn quote(&mut self, out: &mut Vec<u8>, at: usize) {
        self.flush(out, at);
        out.extend_from_slice(b"\"\"");
        self.quoted = true;
        self.run = at + 1;
    }

    /// Appends the text of `scratch.text` (a string's, a number's) with `"` doubled.
    fn push_doubled(&mut self, out: &mut Vec<u8>, text: &str) {
        let bytes = text.as_bytes();
        let mut start = 0;
        for i in memchr::memchr_iter(b'"', bytes) {
            out.extend_from_slice(&bytes[start..=i]);
            out.push(b'"');
            start = i + 1;
            self.quoted = true;
        }
        out.extend_from_slice(&bytes[start..]);
    }

    /// Skips whitespace, which is not copied.
    #[inline]
    fn ws(&mut self, out: &mut Vec<u8>) {
        if let Some(b' ' | b'\t' | b'\n' | b'\r') = self.b.get(self.pos) {
            self.flush(out, self.pos);
            while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.b.get(self.pos) {
                self.pos += 1;
            }
            self.run = self.pos;
        }
    }

    /// Skips a string whose `"` has been read; returns its raw content and whether it has
    /// escapes.
    fn string(&mut self) -> (usize, usize, bool) {
        let start = self.pos;
        let mut escaped = false;
        loop {
            self.pos = super::bytes::string_stop(self.b, self.pos);
            match self.b.get(self.pos) {
                Some(b'\\') => {
                    escaped = true;
                    self.pos += 2;
                }
                Some(b'"') | None => break,
                Some(_) => self.pos += 1,
            }
        }
        let end = self.pos.min(self.b.len());
        self.pos += 1;
        (start, end, escaped)
    }

    /// `None` when the value must be written through the parsed tree.
    fn value(&mut self, out: &mut Vec<u8>) -> Option<()> {
        self.ws(out);
        let start = self.pos;
        match *self.b.get(self.pos)? {
            b'{' => {
                self.pos += 1;
                let base = self.scratch.keys.len();
                self.ws(out);
                if self.b.get(self.pos) == Some(&b'}') {
                    self.pos += 1;
                } else {
                    loop {
                        self.ws(out);
                        self.quote(out, self.pos); // the key's `"`
                        self.pos += 1;
                        let (ks, ke, escaped) = self.string();
                        if !escaped {
                            self.quote(out, ke);
                        }
                        let key = &self.b[ks..ke];
                        let level = &self.scratch.keys[base..];
                        if escaped || level.len() >= MAX_DIRECT_KEYS || level.iter().any(|&(a, e)| &self.b[a..e] == key)
                        {
                            return None;
                        }
                        self.scratch.keys.push((ks, ke));
                        self.ws(out);
                        self.pos += 1; // `:`
                        self.value(out)?;
                        self.ws(out);
                        let sep = *self.b.get(self.pos)?;
                        self.pos += 1;
                        if sep == b'}' {
                            break;
                        }
                    }
                }
                self.scratch.keys.truncate(base);
            }
            b'[' => {
                self.pos += 1;
                self.ws(out);
                if self.b.get(self.pos) == Some(&b']') {
                    self.pos += 1;
                } else {
                    loop {
                        self.value(out)?;
                        self.ws(out);
                        let sep = *self.b.get(self.pos)?;
                        self.pos += 1;
                        if sep == b']' {
                            break;
                        }
                    }
                }
            }
            b'"' => {
                self.pos += 1;
                let (s, e, escaped) = self.string();
                if escaped {
                    self.flush(out, start);
                    let mut text = std::mem::take(&mut self.scratch.text);
                    let mut json = std::mem::take(&mut self.scratch.json);
                    text.clear();
                    json.clear();
                    decode_string(&self.s[s..e], &mut text);
                    write_json_string(&text, &mut json);
                    self.push_doubled(out, &json);
                    (self.scratch.text, self.scratch.json) = (text, json);
                    self.run = self.pos;
                } else {
                    self.quote(out, start);
                    self.quote(out, e);
                }
            }
            b't' | b'n' => self.pos += 4,
            b'f' => self.pos += 5,
            b'N' => self.pos += 3,
            b'I' => self.pos += 8,
            _ => {
                // a number (or -Infinity)
                let mut float = false;
                self.pos += 1;
                while let Some(&c) = self.b.get(self.pos) {
                    match c {
                        b'0'..=b'9' => {}
                        b'.' | b'e' | b'E' | b'+' | b'-' | b'I' | b'n' | b'f' | b'i' | b't' | b'y' => float = true,
                        _ => break,
                    }
                    self.pos += 1;
                }
                let lit = &self.s[start..self.pos];
                if float && lit != "-Infinity" && !is_repr_literal(lit.as_bytes()) {
                    self.flush(out, start);
                    let text = &mut self.scratch.text;
                    text.clear();
                    write_float_literal(lit, true, text);
                    out.extend_from_slice(text.as_bytes());
                    self.run = self.pos;
                } else if lit == "-0" {
                    self.flush(out, start);
                    out.push(b'0');
                    self.run = self.pos;
                }
            }
        }
        Some(())
    }
}
