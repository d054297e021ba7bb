//! Schema definitions: the typed fields an extraction is expected to have.

use serde::{Deserialize, Serialize};

/// The type of one schema field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FieldType {
    String,
    Number,
    Integer,
    Boolean,
    Date,
    Datetime,
    Object,
    Array,
}

impl FieldType {
    pub const ALL: [&'static str; 8] =
        ["string", "number", "integer", "boolean", "date", "datetime", "object", "array"];

    pub fn as_str(self) -> &'static str {
        FieldType::ALL[self as usize]
    }
}

/// One field of a schema. `fields` holds the sub-fields of an `object` (required) or of an
/// `array` of objects (optional: absent means an array of scalars).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FieldDef {
    pub key: String,
    #[serde(rename = "type")]
    pub ty: FieldType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fields: Option<Vec<FieldDef>>,
}

/// The `schema` member of a schema object: `{"fields": [...]}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SchemaDef {
    pub fields: Vec<FieldDef>,
}

impl SchemaDef {
    /// The top-level field with this key.
    pub fn field(&self, key: &str) -> Option<&FieldDef> {
        self.fields.iter().find(|f| f.key == key)
    }

    /// Checks every rule of a schema definition; the message names the offending field by
    /// its path (`schema.fields[2].fields[0].key`).
    pub fn validate(&self) -> Result<(), String> {
        if self.fields.is_empty() {
            return Err("schema.fields must contain at least one field".into());
        }
        validate_fields(&self.fields, "schema.fields", 1)
    }
}

const MAX_DEPTH: usize = 16;

fn validate_fields(fields: &[FieldDef], path: &str, depth: usize) -> Result<(), String> {
    if depth > MAX_DEPTH {
        return Err(format!("{path}: fields are nested more than {MAX_DEPTH} levels deep"));
    }
    let mut seen = std::collections::HashSet::new();
    for (i, f) in fields.iter().enumerate() {
        let here = format!("{path}[{i}]");
        if !valid_key(&f.key) {
            return Err(format!(
                "{here}.key '{}' is not a valid key: use letters, digits and '_', not starting with a digit",
                f.key
            ));
        }
        if !seen.insert(f.key.as_str()) {
            return Err(format!("{here}.key '{}' is used twice at the same level", f.key));
        }
        match (f.ty, &f.fields) {
            (FieldType::Object, None) => {
                return Err(format!("{here} ('{}') is an object and needs a non-empty 'fields'", f.key))
            }
            (FieldType::Object | FieldType::Array, Some(sub)) => {
                if sub.is_empty() {
                    return Err(format!("{here}.fields ('{}') must not be empty", f.key));
                }
                validate_fields(sub, &format!("{here}.fields"), depth + 1)?;
            }
            (FieldType::Array, None) => {}
            (_, Some(_)) => {
                return Err(format!(
                    "{here} ('{}') is a {} and cannot have 'fields' (only object and array can)",
                    f.key,
                    f.ty.as_str()
                ))
            }
            (_, None) => {}
        }
    }
    Ok(())
}

/// `[A-Za-z_][A-Za-z0-9_]*`
pub fn valid_key(key: &str) -> bool {
    let mut chars = key.chars();
    match chars.next() {
        Some(c) if c.is_ascii_alphabetic() || c == '_' => {}
        _ => return false,
    }
    chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(v: serde_json::Value) -> SchemaDef {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn accepts_nested() {
        let s = parse(serde_json::json!({"fields": [
            {"key": "a", "type": "string"},
            {"key": "o", "type": "object", "fields": [{"key": "b", "type": "number"}]},
            {"key": "items", "type": "array", "fields": [{"key": "x", "type": "integer"}]},
            {"key": "tags", "type": "array"}
        ]}));
        assert_eq!(s.validate(), Ok(()));
    }

    #[test]
    fn rejects_bad() {
        let cases = [
            serde_json::json!({"fields": []}),
            serde_json::json!({"fields": [{"key": "1a", "type": "string"}]}),
            serde_json::json!({"fields": [{"key": "a", "type": "string"}, {"key": "a", "type": "number"}]}),
            serde_json::json!({"fields": [{"key": "o", "type": "object"}]}),
            serde_json::json!({"fields": [{"key": "o", "type": "object", "fields": []}]}),
            serde_json::json!({"fields": [{"key": "s", "type": "string", "fields": [{"key": "x", "type": "string"}]}]}),
            serde_json::json!({"fields": [{"key": "o", "type": "object", "fields": [{"key": "a-b", "type": "string"}]}]}),
        ];
        for c in cases {
            assert!(parse(c.clone()).validate().is_err(), "{c}");
        }
    }
}
