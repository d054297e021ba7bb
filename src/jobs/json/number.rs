//! Numbers as Python prints them, and JSON string escapes. Hand-written because it earns its
//! place: the CSV must match Python's `repr(float)` byte for byte (csv.md), which neither
//! `ryu` nor std's formatting does (exponent thresholds, ties, `-0.0`).

use std::fmt::Write as _;

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

/// Appends a checked JSON number literal with a fraction or exponent (or `NaN`, `Infinity`,
/// `-Infinity`) as [`write_float`] writes its value; with `json`, non-finite values are
/// written `NaN`, `Infinity`, `-Infinity` instead, as compact JSON text has them.
///
/// A positional literal of at most 15 significant digits whose fraction has no trailing
/// zero (or is a single `0`) and whose exponent is at least -4 already is that text: such a
/// decimal is the only one of 15 or fewer digits that rounds to its double, so it is the
/// shortest round trip, and Python writes it positionally. It is copied without parsing.
pub fn write_float_literal(lit: &str, json: bool, out: &mut String) {
    if is_repr_literal(lit.as_bytes()) {
        out.push_str(lit);
        return;
    }
    let f = lit.parse::<f64>().unwrap_or(f64::NAN);
    if json && !f.is_finite() {
        out.push_str(if f.is_nan() {
            "NaN"
        } else if f > 0.0 {
            "Infinity"
        } else {
            "-Infinity"
        });
    } else {
        write_float(f, out);
    }
}

/// True when `lit` (`-?D+\.D+`, no exponent) is written by Python's `repr` as is.
pub fn is_repr_literal(lit: &[u8]) -> bool {
    let body = lit.strip_prefix(b"-").unwrap_or(lit);
    let Some(dot) = body.iter().position(|&b| b == b'.') else {
        return false;
    };
    let (int, frac) = (&body[..dot], &body[dot + 1..]);
    if int.is_empty() || frac.is_empty() || !int.iter().chain(frac).all(u8::is_ascii_digit) {
        return false;
    }
    if int.len() > 1 && int[0] == b'0' {
        return false;
    }
    if frac != b"0" && frac.last() == Some(&b'0') {
        return false;
    }
    let digits = int.len() + frac.len();
    match int.iter().chain(frac).position(|&b| b != b'0') {
        // zero: `0.0` or `-0.0`
        None => frac == b"0",
        Some(first) => {
            // the decimal exponent of the first significant digit
            let exp = int.len() as i64 - 1 - first as i64;
            exp >= -4 && digits - first <= 15
        }
    }
}
