//! The plan-directed scan of one extraction: a single pass over the JSON text that checks
//! it is valid (exactly what `JsonValue::parse` accepts) and records, for every column of
//! the plan, where its value lies in the text. Nothing is allocated per row: values the
//! schema does not name are skipped, the rest are borrowed slices of the text.
//!
//! It resolves objects as `JsonValue` does: a repeated key takes its last value (each
//! occurrence resets what an earlier one recorded), and an extraction that is not valid
//! JSON, or not an object, has no values.

use std::ops::Range;

use super::bytes::string_stop;
use super::Node;
use crate::jobs::json::{is_high_surrogate, is_repr_literal, simple_escape, surrogate_pair, MAX_DEPTH};

/// What a recorded value is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Missing,
    Null,
    True,
    False,
    /// An integer literal (the span is its text).
    Int,
    /// A number with a fraction or exponent, or `NaN`/`Infinity`/`-Infinity`.
    Float,
    /// A string without escapes (the span is its content, without the quotes).
    Str,
    /// A string with escapes (the span is its raw content, without the quotes).
    StrEsc,
    /// An array or object (the span is its whole text).
    Compound,
}

/// Where one value lies in the extraction text.
#[derive(Debug, Clone, Copy)]
pub(super) struct Span {
    pub start: usize,
    pub end: usize,
    pub kind: Kind,
    /// A `Compound` column value whose text is already its compact JSON (see [`Tidy`]): the
    /// CSV field is the text itself, quoted, without a second walk through it.
    pub tidy: bool,
}

impl Span {
    pub const MISSING: Span = Span { start: 0, end: 0, kind: Kind::Missing, tidy: false };

    const fn new(start: usize, end: usize, kind: Kind) -> Span {
        Span { start, end, kind, tidy: false }
    }
}

/// The keys the plan looks for in one object, and what each one's value feeds.
#[derive(Debug, Clone, Default)]
struct Level {
    entries: Vec<Entry>,
}

#[derive(Debug, Clone)]
struct Entry {
    key: String,
    /// Columns that hold this value as is (a scalar, or compact JSON).
    slots: Vec<usize>,
    /// An object field: the level of its sub-fields and the columns they fill (reset at each
    /// occurrence of the key).
    object: Option<(usize, Vec<Range<usize>>)>,
    /// The expanded array (at the root only).
    expand: bool,
}

/// How the expanded array's elements are read.
#[derive(Debug, Clone, Copy)]
enum ItemMode {
    /// Objects: each element fills `width` item columns from the level `level`.
    Objects { level: usize, width: usize },
    /// Scalars: each element is one item column.
    Scalars,
}

/// The scan plan: the levels of keys to pick out, compiled from the CSV plan's columns.
#[derive(Debug, Clone)]
pub(super) struct ScanPlan {
    levels: Vec<Level>,
    slot_count: usize,
    items: Option<ItemMode>,
}

/// The values found in one extraction (reused from row to row).
#[derive(Debug, Default)]
pub(super) struct RowSpans {
    /// One per column outside the expanded array, in column order.
    pub slots: Vec<Span>,
    /// The expanded array's elements: `item_width` spans each.
    pub items: Vec<Span>,
    pub item_count: usize,
    key: String,
    /// The keys of the objects open in a tidy check (see [`Tidy`]).
    tidy_keys: Vec<(usize, usize)>,
}

impl ScanPlan {
    /// `root` are the columns outside the expanded array (before it, then after it);
    /// `expand` the expanded array's key and item columns (`None` for scalars).
    pub(super) fn new(root: &[&[Node]], expand: Option<(&str, Option<&[Node]>)>) -> ScanPlan {
        let mut levels = vec![Level::default()];
        let mut next = 0;
        for nodes in root {
            add_nodes(&mut levels, 0, nodes, &mut next);
        }
        let slot_count = next;
        let items = expand.map(|(key, children)| {
            let e = entry(&mut levels, 0, key);
            levels[0].entries[e].expand = true;
            match children {
                Some(children) => {
                    levels.push(Level::default());
                    let level = levels.len() - 1;
                    let mut width = 0;
                    add_nodes(&mut levels, level, children, &mut width);
                    ItemMode::Objects { level, width }
                }
                None => ItemMode::Scalars,
            }
        });
        ScanPlan { levels, slot_count, items }
    }

    pub(super) fn spans(&self) -> RowSpans {
        RowSpans { slots: vec![Span::MISSING; self.slot_count], ..RowSpans::default() }
    }

    /// Records the values of `text` in `spans`. An invalid document, or one that is not an
    /// object, leaves every value missing.
    pub(super) fn scan(&self, text: &str, spans: &mut RowSpans) {
        spans.slots.fill(Span::MISSING);
        spans.items.clear();
        spans.item_count = 0;
        let RowSpans { slots, items, item_count, key, tidy_keys } = spans;
        let mut s = Scanner { b: text.as_bytes(), pos: 0, tidy: Tidy { on: false, ok: false, keys: tidy_keys } };
        s.ws();
        let ok = s.peek() == Some(b'{') && {
            s.pos += 1;
            let mut items = Items { spans: items, count: item_count };
            s.object(self, 0, 0, slots, &mut items, key).is_ok() && {
                s.ws();
                s.pos == s.b.len()
            }
        };
        if !ok {
            spans.slots.fill(Span::MISSING);
            spans.items.clear();
            spans.item_count = 0;
        }
    }

    /// The entry of `key` at `level`, if the plan wants it.
    /// `hint` is where the search starts (members mostly come in schema order); it moves
    /// past the entry found.
    fn find(&self, level: usize, raw: &[u8], escaped: bool, buf: &mut String, hint: &mut usize) -> Option<usize> {
        let entries = &self.levels[level].entries;
        if !escaped {
            let (head, from_hint) = entries.split_at((*hint).min(entries.len()));
            let found = from_hint
                .iter()
                .position(|e| e.key.as_bytes() == raw)
                .map(|i| i + head.len())
                .or_else(|| head.iter().position(|e| e.key.as_bytes() == raw));
            if let Some(i) = found {
                *hint = i + 1;
            }
            return found;
        }
        buf.clear();
        // `raw` lies between two quotes of valid UTF-8 text, at ASCII bytes
        decode_string(std::str::from_utf8(raw).ok()?, buf);
        entries.iter().position(|e| e.key == *buf)
    }
}

fn entry(levels: &mut [Level], level: usize, key: &str) -> usize {
    let entries = &mut levels[level].entries;
    match entries.iter().position(|e| e.key == key) {
        Some(i) => i,
        None => {
            entries.push(Entry { key: key.to_string(), slots: Vec::new(), object: None, expand: false });
            entries.len() - 1
        }
    }
}

/// Adds the columns of `nodes` at `level`, numbering them from `next`. Keys repeated within
/// one level (not in a valid schema, but the plan allows them) share one entry.
fn add_nodes(levels: &mut Vec<Level>, level: usize, nodes: &[Node], next: &mut usize) {
    for node in nodes {
        match node {
            Node::Value(key) => {
                let e = entry(levels, level, key);
                levels[level].entries[e].slots.push(*next);
                *next += 1;
            }
            Node::Object { key, children, .. } => {
                let e = entry(levels, level, key);
                let child = match &levels[level].entries[e].object {
                    Some((child, _)) => *child,
                    None => {
                        levels.push(Level::default());
                        let child = levels.len() - 1;
                        levels[level].entries[e].object = Some((child, Vec::new()));
                        child
                    }
                };
                let start = *next;
                add_nodes(levels, child, children, next);
                if let Some((_, ranges)) = &mut levels[level].entries[e].object {
                    ranges.push(start..*next);
                }
            }
        }
    }
}

struct Items<'a> {
    spans: &'a mut Vec<Span>,
    count: &'a mut usize,
}

/// Invalid JSON.
struct Invalid;

type Scan<T> = Result<T, Invalid>;

struct Scanner<'a> {
    b: &'a [u8],
    pos: usize,
    tidy: Tidy<'a>,
}

/// Whether the array or object a column takes as is is already written as its compact JSON
/// (what `compact::write_compact_field` would write): no white space outside strings, no
/// escape in any string but those written back as they are (`\"`, `\\`, `\b`, `\f`, `\n`,
/// `\r`, `\t`), every number as it is written (no `-0`, fractions as Python's
/// `repr` writes them, no exponent), no repeated key, no object wider than the compact
/// writer takes. Worked out during the scan's own walk over the value, so that the usual
/// case (stored extractions are compact JSON) costs one pass instead of two: the compact
/// writer's walk was a fifth of an export's instructions (callgrind, generated data).
/// Hand-written because it lives inside the scan, on the hot path.
struct Tidy<'a> {
    /// A column's value is being walked.
    on: bool,
    /// Nothing seen so far needs rewriting (meaningful while `on`).
    ok: bool,
    /// The raw keys of the objects open inside the value, outermost first.
    keys: &'a mut Vec<(usize, usize)>,
}

impl Scanner<'_> {
    #[inline]
    fn peek(&self) -> Option<u8> {
        self.b.get(self.pos).copied()
    }

    /// After a member or an item: `,` (more follow: false) or `close` (the end: true), each
    /// consumed; white space before it is skipped.
    fn closed_after_item(&mut self, close: u8) -> Scan<bool> {
        self.ws();
        match self.peek() {
            Some(b',') => {
                self.pos += 1;
                Ok(false)
            }
            Some(c) if c == close => {
                self.pos += 1;
                Ok(true)
            }
            _ => Err(Invalid),
        }
    }

    #[inline]
    fn ws(&mut self) {
        if let Some(b' ' | b'\t' | b'\n' | b'\r') = self.b.get(self.pos) {
            // compact JSON has none (harmless outside a tidy check, which starts afresh)
            self.tidy.ok = false;
            while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.b.get(self.pos) {
                self.pos += 1;
            }
        }
    }

    fn eat(&mut self, lit: &[u8]) -> bool {
        if self.b[self.pos..].starts_with(lit) {
            self.pos += lit.len();
            true
        } else {
            false
        }
    }

    /// The members of an object whose `{` has been read, at nesting `depth`, recording the
    /// values `level` names.
    fn object(
        &mut self,
        plan: &ScanPlan,
        level: usize,
        depth: usize,
        slots: &mut [Span],
        items: &mut Items,
        key: &mut String,
    ) -> Scan<()> {
        self.ws();
        if self.peek() == Some(b'}') {
            self.pos += 1;
            return Ok(());
        }
        let mut hint = 0;
        loop {
            self.ws();
            if self.peek() != Some(b'"') {
                return Err(Invalid);
            }
            self.pos += 1;
            let start = self.pos;
            let escaped = self.string_body()?;
            let raw = &self.b[start..self.pos - 1];
            self.ws();
            if self.peek() != Some(b':') {
                return Err(Invalid);
            }
            self.pos += 1;
            match plan.find(level, raw, escaped, key, &mut hint) {
                None => {
                    self.value(depth + 1)?;
                }
                Some(e) => self.member(plan, &plan.levels[level].entries[e], depth + 1, slots, items, key)?,
            }
            if self.closed_after_item(b'}')? {
                return Ok(());
            }
        }
    }

    /// The value of a member the plan wants.
    fn member(
        &mut self,
        plan: &ScanPlan,
        e: &Entry,
        depth: usize,
        slots: &mut [Span],
        items: &mut Items,
        key: &mut String,
    ) -> Scan<()> {
        if let Some((_, ranges)) = &e.object {
            for r in ranges {
                slots[r.clone()].fill(Span::MISSING);
            }
        }
        if e.expand {
            items.spans.clear();
            *items.count = 0;
        }
        self.ws();
        let start = self.pos;
        let span = match (self.peek(), &e.object, e.expand) {
            (Some(b'{'), Some((child, _)), _) => {
                if depth >= MAX_DEPTH {
                    return Err(Invalid);
                }
                self.pos += 1;
                let mut none = Vec::new();
                let mut zero = 0;
                self.object(plan, *child, depth, slots, &mut Items { spans: &mut none, count: &mut zero }, key)?;
                Span::new(start, self.pos, Kind::Compound)
            }
            (Some(b'['), _, true) => {
                if depth >= MAX_DEPTH {
                    return Err(Invalid);
                }
                self.pos += 1;
                self.elements(plan, depth, items, key)?;
                Span::new(start, self.pos, Kind::Compound)
            }
            (Some(b'{' | b'['), _, _) if !e.slots.is_empty() => {
                self.tidy.on = true;
                self.tidy.ok = true;
                self.tidy.keys.clear();
                let walked = self.value(depth);
                self.tidy.on = false;
                let mut span = walked?;
                span.tidy = self.tidy.ok;
                span
            }
            _ => self.value(depth)?,
        };
        for &s in &e.slots {
            slots[s] = span;
        }
        Ok(())
    }

    /// The elements of the expanded array, whose `[` has been read.
    fn elements(&mut self, plan: &ScanPlan, depth: usize, items: &mut Items, key: &mut String) -> Scan<()> {
        self.ws();
        if self.peek() == Some(b']') {
            self.pos += 1;
            return Ok(());
        }
        loop {
            self.ws();
            *items.count += 1;
            match plan.items {
                Some(ItemMode::Objects { level, width }) => {
                    let base = items.spans.len();
                    items.spans.resize(base + width, Span::MISSING);
                    if self.peek() == Some(b'{') {
                        if depth + 1 >= MAX_DEPTH {
                            return Err(Invalid);
                        }
                        self.pos += 1;
                        let mut none = Vec::new();
                        let mut zero = 0;
                        let slots = &mut items.spans[base..];
                        self.object(
                            plan,
                            level,
                            depth + 1,
                            slots,
                            &mut Items { spans: &mut none, count: &mut zero },
                            key,
                        )?;
                    } else {
                        self.value(depth + 1)?;
                    }
                }
                _ => {
                    let span = self.value(depth + 1)?;
                    items.spans.push(span);
                }
            }
            if self.closed_after_item(b']')? {
                return Ok(());
            }
        }
    }

    /// Checks and skips one value at nesting `depth`; returns where it lies.
    fn value(&mut self, depth: usize) -> Scan<Span> {
        self.ws();
        let start = self.pos;
        let kind = match self.peek() {
            None => return Err(Invalid),
            Some(open @ (b'{' | b'[')) => {
                if depth >= MAX_DEPTH {
                    return Err(Invalid);
                }
                self.pos += 1;
                if open == b'{' {
                    self.skip_object(depth)?;
                } else {
                    self.skip_array(depth)?;
                }
                Kind::Compound
            }
            Some(b'"') => {
                self.pos += 1;
                let escaped = self.string_body()?;
                let kind = if escaped { Kind::StrEsc } else { Kind::Str };
                return Ok(Span::new(start + 1, self.pos - 1, kind));
            }
            Some(b'-' | b'0'..=b'9') => self.number()?,
            Some(_) if self.eat(b"true") => Kind::True,
            Some(_) if self.eat(b"false") => Kind::False,
            Some(_) if self.eat(b"null") => Kind::Null,
            Some(_) if self.eat(b"NaN") || self.eat(b"Infinity") => Kind::Float,
            Some(_) => return Err(Invalid),
        };
        Ok(Span::new(start, self.pos, kind))
    }

    fn skip_object(&mut self, depth: usize) -> Scan<()> {
        self.ws();
        if self.peek() == Some(b'}') {
            self.pos += 1;
            return Ok(());
        }
        let base = self.tidy.keys.len();
        loop {
            self.ws();
            if self.peek() != Some(b'"') {
                return Err(Invalid);
            }
            self.pos += 1;
            let start = self.pos;
            self.string_body()?;
            if self.tidy.on && self.tidy.ok {
                let key = (start, self.pos - 1);
                let level = &self.tidy.keys[base..];
                if level.len() >= super::compact::MAX_DIRECT_KEYS
                    || level.iter().any(|&(a, e)| self.b[a..e] == self.b[key.0..key.1])
                {
                    self.tidy.ok = false;
                }
                self.tidy.keys.push(key);
            }
            self.ws();
            if self.peek() != Some(b':') {
                return Err(Invalid);
            }
            self.pos += 1;
            self.value(depth + 1)?;
            if self.closed_after_item(b'}')? {
                self.tidy.keys.truncate(base);
                return Ok(());
            }
        }
    }

    fn skip_array(&mut self, depth: usize) -> Scan<()> {
        self.ws();
        if self.peek() == Some(b']') {
            self.pos += 1;
            return Ok(());
        }
        loop {
            self.value(depth + 1)?;
            if self.closed_after_item(b']')? {
                return Ok(());
            }
        }
    }

    /// `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`, or `-Infinity`.
    fn number(&mut self) -> Scan<Kind> {
        let start = self.pos;
        if self.eat(b"-") && self.eat(b"Infinity") {
            return Ok(Kind::Float);
        }
        let int_start = self.pos;
        let n = self.digits();
        if n == 0 || (n > 1 && self.b[int_start] == b'0') {
            return Err(Invalid);
        }
        let mut kind = Kind::Int;
        if self.peek() == Some(b'.') {
            self.pos += 1;
            if self.digits() == 0 {
                return Err(Invalid);
            }
            kind = Kind::Float;
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.pos += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.pos += 1;
            }
            if self.digits() == 0 {
                return Err(Invalid);
            }
            kind = Kind::Float;
        }
        if self.tidy.on && self.tidy.ok {
            let lit = &self.b[start..self.pos];
            self.tidy.ok = match kind {
                Kind::Int => lit != b"-0",
                _ => is_repr_literal(lit),
            };
        }
        Ok(kind)
    }

    #[inline]
    fn digits(&mut self) -> usize {
        let s = self.pos;
        while let Some(b'0'..=b'9') = self.b.get(self.pos) {
            self.pos += 1;
        }
        self.pos - s
    }

    /// Checks and skips the rest of a string whose `"` has been read; true when it has
    /// escapes.
    #[inline]
    fn string_body(&mut self) -> Scan<bool> {
        let mut escaped = false;
        loop {
            self.pos = string_stop(self.b, self.pos);
            match self.peek() {
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(escaped);
                }
                Some(b'\\') => {
                    escaped = true;
                    self.pos += 1;
                    match self.peek() {
                        // written back as they are (`json::write_json_string`)
                        Some(b'"' | b'\\' | b'b' | b'f' | b'n' | b'r' | b't') => self.pos += 1,
                        // `\/` is written `/`
                        Some(b'/') => {
                            self.tidy.ok = false;
                            self.pos += 1;
                        }
                        // `\u` is written as the character, or in lower case
                        Some(b'u') => {
                            self.tidy.ok = false;
                            self.pos += 1;
                            match self.b.get(self.pos..self.pos + 4) {
                                Some(hex) if hex.iter().all(u8::is_ascii_hexdigit) => self.pos += 4,
                                _ => return Err(Invalid),
                            }
                        }
                        _ => return Err(Invalid),
                    }
                }
                // the end of the text, or a control character
                _ => return Err(Invalid),
            }
        }
    }
}

/// Appends the text of a checked string's raw content (escapes resolved as `JsonValue`
/// resolves them: a lone UTF-16 surrogate becomes U+FFFD).
pub(super) fn decode_string(raw: &str, out: &mut String) {
    let b = raw.as_bytes();
    let mut pos = 0;
    let mut run = 0;
    let hex4 = |at: usize| raw.get(at..at + 4).and_then(|h| u32::from_str_radix(h, 16).ok());
    while pos < b.len() {
        if b[pos] != b'\\' {
            pos += 1;
            continue;
        }
        out.push_str(&raw[run..pos]);
        let e = b.get(pos + 1).copied().unwrap_or(b'\\');
        pos += 2;
        match e {
            b'u' => {
                let c = hex4(pos).unwrap_or(0xFFFD);
                pos += 4;
                let ch = if is_high_surrogate(c) {
                    // a pair when a low one follows
                    match (b.get(pos..pos + 2), hex4(pos + 2).and_then(|lo| surrogate_pair(c, lo))) {
                        (Some(b"\\u"), Some(ch)) => {
                            pos += 6;
                            Some(ch)
                        }
                        _ => None,
                    }
                } else {
                    char::from_u32(c)
                };
                out.push(ch.unwrap_or('\u{fffd}'));
            }
            other => out.push(simple_escape(other).unwrap_or(other as char)),
        }
        run = pos;
    }
    out.push_str(&raw[run..]);
}
