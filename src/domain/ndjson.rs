//! NDJSON result uploads cut into batches: bytes arrive in chunks of any size, whole lines
//! are gathered into blocks of about a target size and parsed, and each parsed block (its
//! text plus where each result's parts lie in it) is handed on. Nothing is copied per line:
//! the extraction and, usually, the file name are slices of the block.

use std::borrow::Cow;
use std::ops::Range;

use super::result::parse_line;

/// A line that is not a valid result, by its 1-based number in the whole body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct LineError {
    pub line: usize,
    pub message: String,
}

/// One result of a [`Batch`], borrowing from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResultRef<'a> {
    pub file_name: Option<&'a str>,
    pub created_at: i64,
    /// The extraction's JSON text, exactly as sent.
    pub extraction: &'a str,
}

#[derive(Debug)]
enum FileName {
    None,
    /// As sent, in the block's text.
    Slice(Range<usize>),
    /// Unescaped (the JSON string had escapes).
    Owned(String),
}

#[derive(Debug)]
struct Row {
    file_name: FileName,
    created_at: i64,
    extraction: Range<usize>,
}

/// Whole lines and the results parsed from them.
#[derive(Debug)]
pub struct Batch {
    text: String,
    rows: Vec<Row>,
}

impl Batch {
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    pub fn results(&self) -> impl Iterator<Item = ResultRef<'_>> {
        self.rows.iter().map(|r| ResultRef {
            file_name: match &r.file_name {
                FileName::None => None,
                FileName::Slice(s) => Some(&self.text[s.clone()]),
                FileName::Owned(s) => Some(s.as_str()),
            },
            created_at: r.created_at,
            extraction: &self.text[r.extraction.clone()],
        })
    }
}

/// Cuts a body into batches of whole lines of at least `target` bytes (the last may be
/// smaller) and parses them. Lines are numbered across the whole body.
pub struct Splitter {
    now: i64,
    target: usize,
    /// Lines parsed so far.
    line_no: usize,
    pending: Vec<u8>,
    /// Where the last `\n` in `pending` is, if any.
    last_newline: Option<usize>,
}

impl Splitter {
    /// `now` is the creation time of results without `createdAt`.
    pub fn new(now: i64, target: usize) -> Splitter {
        Splitter { now, target, line_no: 0, pending: Vec::new(), last_newline: None }
    }

    /// Takes the next bytes of the body; gives a batch once `target` bytes of whole lines
    /// are pending, or the first bad line's error.
    pub fn feed(&mut self, chunk: &[u8]) -> Result<Option<Batch>, LineError> {
        let base = self.pending.len();
        self.pending.extend_from_slice(chunk);
        if let Some(i) = chunk.iter().rposition(|b| *b == b'\n') {
            self.last_newline = Some(base + i);
        }
        match self.last_newline {
            Some(end) if self.pending.len() >= self.target => {
                let rest = self.pending.split_off(end + 1);
                let block = std::mem::replace(&mut self.pending, rest);
                self.last_newline = None;
                self.parse(block).map(Some)
            }
            _ => Ok(None),
        }
    }

    /// The body has ended: parses what is pending (the last line needs no `\n`).
    pub fn finish(mut self) -> Result<Option<Batch>, LineError> {
        if self.pending.is_empty() {
            return Ok(None);
        }
        let block = std::mem::take(&mut self.pending);
        self.parse(block).map(Some)
    }

    /// Parses whole lines (the last may lack its `\n`).
    fn parse(&mut self, block: Vec<u8>) -> Result<Batch, LineError> {
        let text = match String::from_utf8(block) {
            Ok(t) => t,
            Err(e) => return Err(self.first_error(e.as_bytes())),
        };
        let mut rows = Vec::with_capacity(text.len() / 512 + 1);
        let body = text.strip_suffix('\n').unwrap_or(&text);
        let base = text.as_ptr() as usize;
        let offset = |s: &str| {
            let start = s.as_ptr() as usize - base;
            start..start + s.len()
        };
        for line in body.split('\n') {
            self.line_no += 1;
            let parsed = parse_line(line, self.now).map_err(|message| LineError { line: self.line_no, message })?;
            if let Some(r) = parsed {
                rows.push(Row {
                    file_name: match r.file_name {
                        None => FileName::None,
                        Some(Cow::Borrowed(s)) => FileName::Slice(offset(s)),
                        Some(Cow::Owned(s)) => FileName::Owned(s),
                    },
                    created_at: r.created_at,
                    extraction: offset(r.extraction),
                });
            }
        }
        Ok(Batch { text, rows })
    }

    /// The first error in a block that is not all UTF-8: a bad line before the first
    /// non-UTF-8 one, or that one.
    fn first_error(&mut self, block: &[u8]) -> LineError {
        let block = block.strip_suffix(b"\n").unwrap_or(block);
        for line in block.split(|b| *b == b'\n') {
            self.line_no += 1;
            let err = |message: String| LineError { line: self.line_no, message };
            match std::str::from_utf8(line) {
                Err(_) => return err("not valid UTF-8".into()),
                Ok(l) => {
                    if let Err(m) = parse_line(l, self.now) {
                        return err(m);
                    }
                }
            }
        }
        LineError { line: self.line_no, message: "not valid UTF-8".into() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::result::{parse_ndjson_line, NewResult};

    /// Everything the splitter gives for `text` fed in pieces of `size`, as owned results.
    fn split(text: &[u8], size: usize, target: usize) -> Result<(Vec<NewResult>, usize), LineError> {
        let mut s = Splitter::new(7, target);
        let mut out = Vec::new();
        let mut batches = 0;
        let mut take = |b: Batch, out: &mut Vec<NewResult>| {
            batches += 1;
            out.extend(b.results().map(|r| NewResult {
                file_name: r.file_name.map(str::to_string),
                created_at: r.created_at,
                extraction: r.extraction.to_string(),
            }))
        };
        for chunk in text.chunks(size) {
            if let Some(b) = s.feed(chunk)? {
                take(b, &mut out);
            }
        }
        if let Some(b) = s.finish()? {
            take(b, &mut out);
        }
        Ok((out, batches))
    }

    fn line(i: usize) -> String {
        format!(
            "{{\"file_name\":\"d\\\"{i}.pdf\",\"createdAt\":\"2024-01-0{}T00:00:00.000Z\",\"extraction\":{{\"n\":{i},\"s\":\"Müller\"}}}}",
            1 + i % 9
        )
    }

    #[test]
    fn any_chunking_gives_the_results_of_parsing_line_by_line() {
        let mut text = String::new();
        for i in 0..50 {
            text.push_str(&line(i));
            text.push_str(if i % 7 == 0 { "\r\n\n" } else { "\n" });
            if i % 11 == 0 {
                text.push_str(&format!("{{\"extraction\":{{\"plain\":{i}}},\"file_name\":\"p{i}.pdf\"}}\n"));
            }
        }
        text.push_str(&line(99)); // no final newline
        let expected: Vec<NewResult> = text.split('\n').filter_map(|l| parse_ndjson_line(l, 7).unwrap()).collect();
        for size in [1, 2, 3, 7, 100, 1000, 100_000] {
            for target in [1, 50, 300, 4096, 1 << 20] {
                let (got, batches) = split(text.as_bytes(), size, target).unwrap();
                assert_eq!(got.len(), expected.len(), "size {size} target {target}");
                for (g, e) in got.iter().zip(&expected) {
                    assert_eq!(
                        (&g.file_name, g.created_at, &g.extraction),
                        (&e.file_name, e.created_at, &e.extraction)
                    );
                }
                if target == 1 && size >= 1000 {
                    assert!(batches > 1);
                }
            }
        }
    }

    #[test]
    fn the_first_bad_line_is_named_whatever_the_chunking() {
        let mut text = String::new();
        for i in 0..30 {
            text.push_str(&line(i));
            text.push('\n');
        }
        let good_lines = 30;
        for (bad, message) in [
            ("{\"extraction\":[]}", "extraction must be a JSON object"),
            ("{not json", "not a JSON object"),
            ("{\"extraction\":{},\"createdAt\":\"2024-02-30T00:00:00.000Z\"}", "createdAt"),
        ] {
            let body = format!("{text}\n{bad}\n{}\n{{\"extraction\":[2]}}\n", line(1));
            for size in [1, 5, 64, 100_000] {
                for target in [1, 200, 1 << 20] {
                    let err = split(body.as_bytes(), size, target).unwrap_err();
                    assert_eq!(err.line, good_lines + 2, "{bad} size {size} target {target}");
                    assert!(err.message.contains(message), "{}", err.message);
                }
            }
        }
        // not UTF-8, after a bad line and before one
        let mut body = format!("{}\n", line(0)).into_bytes();
        body.extend_from_slice(b"{\"extraction\":{\"a\":\"\xff\"}}\n{\"extraction\":[]}\n");
        let err = split(&body, 1000, 1 << 20).unwrap_err();
        assert_eq!((err.line, err.message.as_str()), (2, "not valid UTF-8"));
        let mut body = format!("{}\n{{\"extraction\":1}}\n", line(0)).into_bytes();
        body.extend_from_slice(b"{\"extraction\":{\"a\":\"\xff\"}}\n");
        let err = split(&body, 1000, 1 << 20).unwrap_err();
        assert_eq!(err.line, 2, "{err}");
        // UTF-8 split across chunks is fine
        let (got, _) = split(line(3).as_bytes(), 1, 1).unwrap();
        assert_eq!(got.len(), 1);
    }

    #[test]
    fn blank_bodies_give_no_results() {
        let (got, _) = split(b"\n \r\n\n", 2, 1).unwrap();
        assert!(got.is_empty());
        assert!(split(b"", 2, 1).unwrap().0.is_empty());
    }
}
