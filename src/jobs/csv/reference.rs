//! The tree-based formatter the engine used before the plan-directed scan: each extraction
//! parsed into a `JsonValue`, then walked. Kept, for tests only, as the oracle the fast
//! path must agree with byte for byte.

use super::{push_n, CsvPlan, Expanded, Node, TestResult};
use crate::jobs::json::{object_get, write_float, JsonValue};

impl CsvPlan {
    /// What [`CsvPlan::write_result`] wrote before the scan: same contract.
    pub(crate) fn write_result_reference(&self, row: &TestResult, out: &mut Vec<u8>) -> usize {
        let parsed = JsonValue::parse(&row.extraction).ok();
        let root: &[(String, JsonValue)] = match &parsed {
            Some(JsonValue::Object(entries)) => entries,
            _ => &[],
        };
        let d = self.delimiter;
        let mut scratch = String::new();

        let start = out.len();
        self.write_text(&row.id, false, out);
        out.push(d);
        if let Some(name) = &row.file_name {
            self.write_text(name, self.formula_guard, out);
        }
        out.push(d);
        super::write_timestamp(row.created_at_ms, out);
        self.write_nodes(&self.before, root, out, &mut scratch);

        let Some((key, cols)) = &self.expand else {
            out.extend_from_slice(b"\r\n");
            return 1;
        };
        let items: &[JsonValue] = match object_get(root, key) {
            Some(JsonValue::Array(items)) => items,
            _ => &[],
        };
        if items.is_empty() {
            push_n(out, d, cols.width());
            self.write_nodes(&self.after, root, out, &mut scratch);
            out.extend_from_slice(b"\r\n");
            return 1;
        }
        let head_end = out.len();
        let mut tail = Vec::new();
        self.write_nodes(&self.after, root, &mut tail, &mut scratch);
        tail.extend_from_slice(b"\r\n");
        for (i, item) in items.iter().enumerate() {
            if i > 0 {
                out.extend_from_within(start..head_end);
            }
            match cols {
                Expanded::Objects { children, width } => match item {
                    JsonValue::Object(entries) => self.write_nodes(children, entries, out, &mut scratch),
                    _ => push_n(out, d, *width),
                },
                Expanded::Scalars => {
                    out.push(d);
                    self.write_value(Some(item), out, &mut scratch);
                }
            }
            out.extend_from_slice(&tail);
        }
        items.len()
    }

    /// Writes the columns of `nodes` for the object `obj`, each preceded by the delimiter.
    fn write_nodes(&self, nodes: &[Node], obj: &[(String, JsonValue)], out: &mut Vec<u8>, scratch: &mut String) {
        for node in nodes {
            match node {
                Node::Value(key) => {
                    out.push(self.delimiter);
                    self.write_value(object_get(obj, key), out, scratch);
                }
                Node::Object { key, children, width } => match object_get(obj, key) {
                    Some(JsonValue::Object(entries)) => self.write_nodes(children, entries, out, scratch),
                    _ => push_n(out, self.delimiter, *width),
                },
            }
        }
    }

    /// Writes one value by its JSON type: nothing for missing/null, the string (guarded),
    /// the number's text, `true`/`false`, or the compact JSON of an array/object.
    fn write_value(&self, value: Option<&JsonValue>, out: &mut Vec<u8>, scratch: &mut String) {
        match value {
            None | Some(JsonValue::Null) => {}
            Some(JsonValue::Bool(true)) => out.extend_from_slice(b"true"),
            Some(JsonValue::Bool(false)) => out.extend_from_slice(b"false"),
            Some(JsonValue::Int(text)) => self.write_text(text, false, out),
            Some(JsonValue::Float(f)) => {
                scratch.clear();
                write_float(*f, scratch);
                self.write_text(scratch, false, out);
            }
            Some(JsonValue::Str(s)) => self.write_text(s, self.formula_guard, out),
            Some(v @ (JsonValue::Array(_) | JsonValue::Object(_))) => {
                scratch.clear();
                v.write_compact(scratch);
                self.write_text(scratch, false, out);
            }
        }
    }
}
