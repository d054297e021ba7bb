//! Byte searches eight bytes at a time (SWAR), for the hot loops of the scan and the CSV
//! writer.

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
#[inline]
pub(super) fn string_stop(b: &[u8], mut from: usize) -> usize {
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
            let set = [b',', b'"', b'\r', b'\n'];
            assert_eq!(contains_any(&b, set), b.iter().any(|c| set.contains(c)), "{b:?}");
        }
    }
}
