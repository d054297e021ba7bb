//! Compact JSON text of an array or object value, written straight from its checked source
//! text, as `JsonValue::write_compact` writes the parsed value (Python's
//! `json.dumps(v, separators=(",", ":"), ensure_ascii=False)`).

use super::scan::decode_string;
use crate::jobs::json::{write_float_literal, write_json_string, JsonValue};

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
pub(super) fn write_compact(src: &str, out: &mut String, scratch: &mut CompactScratch) {
    let start = out.len();
    scratch.keys.clear();
    let mut w = Writer { s: src, b: src.as_bytes(), pos: 0, scratch };
    if w.value(out).is_none() {
        // a repeated key (its first position, its last value), a key with escapes, or a
        // very wide object: as the parsed value has it
        out.truncate(start);
        match JsonValue::parse(src) {
            Ok(v) => v.write_compact(out),
            Err(_) => debug_assert!(false, "the scan checked this value"),
        }
    }
}

struct Writer<'a, 's> {
    s: &'a str,
    b: &'a [u8],
    pos: usize,
    scratch: &'s mut CompactScratch,
}

impl Writer<'_, '_> {
    #[inline]
    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.b.get(self.pos) {
            self.pos += 1;
        }
    }

    /// Skips a string whose `"` has been read; returns its raw content and whether it has
    /// escapes.
    fn string(&mut self) -> (usize, usize, bool) {
        let start = self.pos;
        let mut escaped = false;
        while let Some(&c) = self.b.get(self.pos) {
            match c {
                b'"' => break,
                b'\\' => {
                    escaped = true;
                    self.pos += 2;
                }
                _ => self.pos += 1,
            }
        }
        let end = self.pos.min(self.b.len());
        self.pos += 1;
        (start, end, escaped)
    }

    /// `None` when the value must be written through the parsed tree.
    fn value(&mut self, out: &mut String) -> Option<()> {
        self.ws();
        let start = self.pos;
        match *self.b.get(self.pos)? {
            b'{' => {
                self.pos += 1;
                out.push('{');
                let base = self.scratch.keys.len();
                self.ws();
                if self.b.get(self.pos) == Some(&b'}') {
                    self.pos += 1;
                } else {
                    loop {
                        self.ws();
                        self.pos += 1; // the key's `"`
                        let (ks, ke, escaped) = self.string();
                        let key = &self.b[ks..ke];
                        let level = &self.scratch.keys[base..];
                        if escaped || level.len() >= MAX_DIRECT_KEYS || level.iter().any(|&(a, e)| &self.b[a..e] == key)
                        {
                            return None;
                        }
                        if self.scratch.keys.len() > base {
                            out.push(',');
                        }
                        self.scratch.keys.push((ks, ke));
                        out.push('"');
                        out.push_str(&self.s[ks..ke]);
                        out.push_str("\":");
                        self.ws();
                        self.pos += 1; // `:`
                        self.value(out)?;
                        self.ws();
                        let sep = *self.b.get(self.pos)?;
                        self.pos += 1;
                        if sep == b'}' {
                            break;
                        }
                    }
                }
                self.scratch.keys.truncate(base);
                out.push('}');
            }
            b'[' => {
                self.pos += 1;
                out.push('[');
                self.ws();
                if self.b.get(self.pos) == Some(&b']') {
                    self.pos += 1;
                } else {
                    loop {
                        self.value(out)?;
                        self.ws();
                        let sep = *self.b.get(self.pos)?;
                        self.pos += 1;
                        if sep == b']' {
                            break;
                        }
                        out.push(',');
                    }
                }
                out.push(']');
            }
            b'"' => {
                self.pos += 1;
                let (s, e, escaped) = self.string();
                if escaped {
                    let text = &mut self.scratch.text;
                    text.clear();
                    decode_string(&self.s[s..e], text);
                    write_json_string(text, out);
                } else {
                    out.push('"');
                    out.push_str(&self.s[s..e]);
                    out.push('"');
                }
            }
            b't' => {
                self.pos += 4;
                out.push_str("true");
            }
            b'f' => {
                self.pos += 5;
                out.push_str("false");
            }
            b'n' => {
                self.pos += 4;
                out.push_str("null");
            }
            b'N' => {
                self.pos += 3;
                out.push_str("NaN");
            }
            b'I' => {
                self.pos += 8;
                out.push_str("Infinity");
            }
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
                if float {
                    write_float_literal(lit, true, out);
                } else if lit == "-0" {
                    out.push('0');
                } else {
                    out.push_str(lit);
                }
            }
        }
        Some(())
    }
}
