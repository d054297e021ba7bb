//! The one nesting limit of JSON the service accepts (request bodies, NDJSON lines, `import`),
//! checked by a byte scan before any parser sees the text: no recursion, no allocation, and
//! strings (escapes included) are skipped, so brackets inside them do not count.

/// How deeply objects and arrays may nest in a JSON request body or an NDJSON line, the
/// outermost object counting as 1. Below serde_json's own limit (127), so everything stored
/// reads back; the CSV engine's parser accepts more (`jobs::json`), so everything stored exports.
pub const MAX_NESTING: usize = 64;

/// A depth scan that can be fed a document in pieces (as a body arrives).
#[derive(Debug, Default, Clone)]
pub struct NestingScan {
    depth: usize,
    in_string: bool,
    escaped: bool,
}

/// The text nests objects/arrays more than [`MAX_NESTING`] levels deep.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("objects and arrays are nested more than {MAX_NESTING} levels deep; at most {MAX_NESTING} are allowed")]
pub struct TooDeep;

impl NestingScan {
    /// Scans the next piece of the document; `Err` as soon as the nesting passes the limit.
    /// Malformed JSON (unbalanced brackets) is left for the parser to report.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<(), TooDeep> {
        let mut i = 0;
        while i < bytes.len() {
            if self.in_string {
                if self.escaped {
                    // the byte right after a backslash is taken literally
                    self.escaped = false;
                    i += 1;
                    continue;
                }
                // jump to the next quote or backslash
                let Some(j) = bytes[i..].iter().position(|b| *b == b'"' || *b == b'\\') else {
                    return Ok(());
                };
                i += j;
                if bytes[i] == b'\\' {
                    self.escaped = true;
                } else {
                    self.in_string = false;
                }
            } else {
                match bytes[i] {
                    b'"' => self.in_string = true,
                    b'{' | b'[' => {
                        self.depth += 1;
                        if self.depth > MAX_NESTING {
                            return Err(TooDeep);
                        }
                    }
                    b'}' | b']' => self.depth = self.depth.saturating_sub(1),
                    _ => {}
                }
            }
            i += 1;
        }
        Ok(())
    }
}

/// Checks a whole document. Most have fewer opening brackets than the limit, and so cannot
/// pass it: counting them is several times faster than the scan (which `import` and the
/// upload would otherwise pay on every line).
pub fn check_nesting(text: &[u8]) -> Result<(), TooDeep> {
    if text.iter().filter(|b| matches!(b, b'{' | b'[')).count() <= MAX_NESTING {
        return Ok(());
    }
    NestingScan::default().feed(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nested(n: usize) -> String {
        format!("{}{}", "[".repeat(n), "]".repeat(n))
    }

    #[test]
    fn depth_is_counted_outside_strings() {
        assert!(check_nesting(nested(MAX_NESTING).as_bytes()).is_ok());
        assert_eq!(check_nesting(nested(MAX_NESTING + 1).as_bytes()), Err(TooDeep));
        assert!(check_nesting("[".repeat(100_000).as_bytes()).is_err());
        // siblings do not add up
        let wide = format!("[{}]", vec![nested(MAX_NESTING - 1); 50].join(","));
        assert!(check_nesting(wide.as_bytes()).is_ok());
        // brackets inside strings, escaped quotes and backslashes
        let s = format!(r#"{{"a":"{}","b":"\"[[[","c":"\\","d":"\\\"{{"}}"#, "[".repeat(1000));
        assert!(check_nesting(s.as_bytes()).is_ok());
        let s = format!(r#"{{"k":"\\"{}"#, "[".repeat(MAX_NESTING));
        assert!(check_nesting(s.as_bytes()).is_err(), "the string ended after an escaped backslash");
        assert!(check_nesting(r#"{"a":"é{[","b":{}}"#.as_bytes()).is_ok());
    }

    #[test]
    fn pieces_give_the_same_answer_as_the_whole() {
        let docs = [
            format!(r#"{{"a":"x\\\"[[[[","b":{}}}"#, nested(MAX_NESTING - 1)),
            format!(r#"{{"a":"\\","b":{}}}"#, nested(MAX_NESTING)),
            format!(r#"{{"a":"\"","b":{}}}"#, nested(MAX_NESTING)),
            format!(r#"["\\\\\"{}"]"#, "[".repeat(200)),
        ];
        for doc in &docs {
            let whole = check_nesting(doc.as_bytes());
            for size in [1, 2, 3, 5, 64] {
                let mut scan = NestingScan::default();
                let pieces = doc.as_bytes().chunks(size).try_for_each(|c| scan.feed(c));
                assert_eq!(pieces, whole, "{doc} in pieces of {size}");
            }
        }
        assert!(check_nesting(docs[0].as_bytes()).is_ok());
        assert!(check_nesting(docs[1].as_bytes()).is_err());
        assert!(check_nesting(docs[2].as_bytes()).is_err());
        assert!(check_nesting(docs[3].as_bytes()).is_ok());
    }
}
