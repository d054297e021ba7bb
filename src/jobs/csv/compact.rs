//! Compact JSON text of an array or object value, written straight from its checked source
//! text, as `JsonValue::write_compact` writes the parsed value (Python's
//! `json.dumps(v, separators=(",", ":"), ensure_ascii=False)`).

use super::scan::decode_string;
use crate::jobs::json::{is_repr_literal, write_float_literal, write_json_string, JsonValue};

/// Objects with more keys than this are written through the parsed value (its repeated-key
/// handling is linear; the check here is not).
const MAX_DIRECT_KEYS: usize = 64;

/// Reusable buffers of the compact writer.
#[derive(Debug, Default)]
pub(super) struct CompactScratch {
    keys: Vec<(usize, usize)>,
    text: String,
}

/// Appends the compact JSON of `src`, a value the scan has checked.
///
/// Stored extractions are mostly compact already, so the text is copied in runs: only
/// whitespace, strings with escapes and numbers Python writes otherwise break a run.
pub(super) fn write_compact(src: &str, out: &mut String, scratch: &mut CompactScratch) {
    let start = out.len();
    scratch.keys.clear();
    let mut w = Writer { s: src, b: src.as_bytes(), pos: 0, run: 0, scratch };
    if w.value(out).is_some() {
        w.flush(out, w.pos);
        return;
    }
    // a repeated key (its first position, its last value), a key with escapes, or a very
    // wide object: as the parsed value has it
    out.truncate(start);
    match JsonValue::parse(src) {
        Ok(v) => v.write_compact(out),
        Err(_) => debug_assert!(false, "the scan checked this value"),
    }
}

struct Writer<'a, 's> {
    s: &'a str,
    b: &'a [u8],
    pos: usize,
    /// Where the source text not yet copied (and to be copied as is) starts.
    run: usize,
    scratch: &'s mut CompactScratch,
}

impl Writer<'_, '_> {
    /// Copies the pending run up to `to`.
    #[inline]
    fn flush(&mut self, out: &mut String, to: usize) {
        out.push_str(&self.s[self.run..to]);
        self.run = to;
    }

    /// Skips whitespace, which is not copied.
    #[inline]
    fn ws(&mut self, out: &mut String) {
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
    fn value(&mut self, out: &mut String) -> Option<()> {
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
                        self.pos += 1; // the key's `"`
                        let (ks, ke, escaped) = self.string();
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
                    let text = &mut self.scratch.text;
                    text.clear();
                    decode_string(&self.s[s..e], text);
                    write_json_string(text, out);
                    self.run = self.pos;
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
                    write_float_literal(lit, true, out);
                    self.run = self.pos;
                } else if lit == "-0" {
                    self.flush(out, start);
                    out.push('0');
                    self.run = self.pos;
                }
            }
        }
        Some(())
    }
}
