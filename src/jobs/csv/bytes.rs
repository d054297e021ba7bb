//! Byte searches eight bytes at a time (SWAR), for the hot loops of the scan and the CSV
//! writer. Hand-written because it earns its place: `memchr` finds one to three given bytes,
//! these stops are "a quote, a backslash or any control byte", checked per 8 or 16 bytes.

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// Nonzero when some byte of `w` is zero (the classic test: the lowest flagged byte is the
/// first zero byte; flags above it may be false).
#[inline(always)]
fn zero_bytes(w: u64) -> u64 {
    w.wrapping_sub(ONES) & !w & HIGHS
}

#[inline(always)]
fn word(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

/// The position of the first byte at or after `from` that is `"`, `\` or below 0x20 (the
/// end of a string's plain run), or `b.len()`.
///
/// On x86_64, 16 bytes at a time with SSE2 (part of every x86_64 CPU, so no detection):
/// every string of every extraction goes through here twice (scan, compact writer), and
/// the exact position comes from the mask (callgrind: string scanning 116M -> 95M
/// instructions, 4% of a whole export's, against the 8-byte SWAR loop).
#[cfg(target_arch = "x86_64")]
#[inline]
pub(super) fn string_stop(b: &[u8], mut from: usize) -> usize {
    use std::arch::x86_64::{
        __m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_min_epu8, _mm_movemask_epi8, _mm_or_si128, _mm_set1_epi8,
    };
    while from + 16 <= b.len() {
        // SAFETY: SSE2 is in the x86_64 baseline; the unaligned load reads b[from..from + 16],
        // inside `b` by the loop condition.
        let mask = unsafe {
            let v = _mm_loadu_si128(b.as_ptr().add(from).cast::<__m128i>());
            let quote = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'"' as i8));
            let backslash = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'\\' as i8));
            // v <= 0x1f (unsigned) exactly when min(v, 0x1f) == v
            let control = _mm_cmpeq_epi8(_mm_min_epu8(v, _mm_set1_epi8(0x1f)), v);
            _mm_movemask_epi8(_mm_or_si128(_mm_or_si128(quote, backslash), control)) as u32
        };
        if mask != 0 {
            return from + mask.trailing_zeros() as usize;
        }
        from += 16;
    }
    string_stop_swar(b, from)
}

#[cfg(not(target_arch = "x86_64"))]
#[inline]
pub(super) fn string_stop(b: &[u8], from: usize) -> usize {
    string_stop_swar(b, from)
}

/// [`string_stop`] eight bytes at a time.
#[inline]
pub(super) fn string_stop_swar(b: &[u8], mut from: usize) -> usize {
    while from + 8 <= b.len() {
        let w = word(b, from);
        let hit = zero_bytes(w ^ (ONES * b'"' as u64))
            | zero_bytes(w ^ (ONES * b'\\' as u64))
            | (w.wrapping_sub(ONES * 0x20) & !w & HIGHS);
        if hit != 0 {
            // the lowest flagged byte is exact (a borrow only runs upwards, past a true
            // hit), so the stop is found without a bytewise rescan of the word
            return from + (hit.trailing_zeros() / 8) as usize;
        }
        from += 8;
    }
    while from < b.len() {
        let c = b[from];
        if c == b'"' || c == b'\\' || c < 0x20 {
            return from;
        }
        from += 1;
    }
    b.len()
}

/// Appends `b` with every `"` doubled (the inside of a quoted CSV field). memchr rather than
/// a byte loop: compact JSON columns (arrays of objects) are long and quoted, and the loop was
/// the hottest spot of the export (perf: 12% of all).
pub(super) fn push_doubling_quotes(b: &[u8], out: &mut Vec<u8>) {
    let mut start = 0;
    for i in memchr::memchr_iter(b'"', b) {
        out.extend_from_slice(&b[start..=i]);
        out.push(b'"');
        start = i + 1;
    }
    out.extend_from_slice(&b[start..]);
}

/// True when `b` holds any of the four bytes `set`.
#[inline]
pub(super) fn contains_any(b: &[u8], set: [u8; 4]) -> bool {
    let mut at = 0;
    while at + 8 <= b.len() {
        let w = word(b, at);
        let hit = zero_bytes(w ^ (ONES * set[0] as u64))
            | zero_bytes(w ^ (ONES * set[1] as u64))
            | zero_bytes(w ^ (ONES * set[2] as u64))
            | zero_bytes(w ^ (ONES * set[3] as u64));
        if hit != 0 {
            return true;
        }
        at += 8;
    }
    b[at..].iter().any(|c| set.contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn searches_agree_with_bytewise_ones() {
        let alphabet = [b'a', b'"', b'\\', 0x1f, 0x20, 0x7f, 0x80, 0xc3, 0xff, b',', b'\n', b'\r', b';'];
        let mut x: u64 = 99;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let len = (x % 40) as usize;
            let b: Vec<u8> = (0..len).map(|i| alphabet[((x >> (i % 60)) as usize + i * 7) % alphabet.len()]).collect();
            let from = (x as usize / 3) % (len + 1);
            let want = b[from..].iter().position(|&c| c == b'"' || c == b'\\' || c < 0x20).map_or(len, |p| p + from);
            assert_eq!(string_stop(&b, from), want, "{b:?} from {from}");
            assert_eq!(string_stop_swar(&b, from), want, "{b:?} from {from}");
            let set = [b',', b'"', b'\r', b'\n'];
            assert_eq!(contains_any(&b, set), b.iter().any(|c| set.contains(c)), "{b:?}");
        }
    }
}
