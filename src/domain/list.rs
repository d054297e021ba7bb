//! List parameters shared by `GET /v1/exports`, `/v1/schemas` and `/v1/results`, checked
//! and turned into what the database layer needs.

/// The longest `search` value, in characters (the lists document it as `maxLength`). Longer
/// patterns are refused by SQLite's `LIKE` and would not be a useful search anyway.
pub const MAX_SEARCH_CHARS: usize = 200;

/// A validated list request. `sort_column` is a column name from a fixed allow-list, never
/// user text.
#[derive(Debug, Clone)]
pub struct ListQuery {
    pub page: u32,
    pub limit: u32,
    pub sort_column: &'static str,
    pub descending: bool,
    pub search: Option<String>,
    pub created_after: Option<i64>,
    pub created_before: Option<i64>,
}

impl ListQuery {
    pub fn offset(&self) -> i64 {
        (self.page as i64 - 1) * self.limit as i64
    }
}

/// `{"page", "limit", "total", "totalPages"}`
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageMeta {
    pub page: u32,
    pub limit: u32,
    pub total: u64,
    pub total_pages: u64,
}

impl PageMeta {
    pub fn new(q: &ListQuery, total: u64) -> PageMeta {
        PageMeta { page: q.page, limit: q.limit, total, total_pages: total.div_ceil(q.limit as u64) }
    }
}

/// Splits `fields=id,status` and checks every name against `allowed`. Empty parts are
/// ignored; an unknown name is an error naming it and listing what is allowed.
pub fn parse_fields(param: &str, allowed: &[&str]) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for name in param.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        if !allowed.contains(&name) {
            return Err(format!("fields: unknown field '{name}'; allowed: {}", allowed.join(", ")));
        }
        if !out.iter().any(|n: &String| n == name) {
            out.push(name.to_string());
        }
    }
    if out.is_empty() {
        return Err(format!("fields: name at least one field; allowed: {}", allowed.join(", ")));
    }
    Ok(out)
}

/// Checks `include=schema`-style parameters; returns whether `schema` was asked for.
pub fn parse_include(param: &str, allowed: &[&str]) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for name in param.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        if !allowed.contains(&name) {
            return Err(format!("include: unknown relation '{name}'; allowed: {}", allowed.join(", ")));
        }
        out.push(name.to_string());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_checked() {
        let allowed = ["id", "status", "createdAt"];
        assert_eq!(parse_fields("id, status,id", &allowed).unwrap(), vec!["id", "status"]);
        assert!(parse_fields("id,nope", &allowed).unwrap_err().contains("nope"));
        assert!(parse_fields(",", &allowed).is_err());
    }

    #[test]
    fn meta_counts_pages() {
        let q = ListQuery {
            page: 2,
            limit: 20,
            sort_column: "created_at",
            descending: true,
            search: None,
            created_after: None,
            created_before: None,
        };
        assert_eq!(PageMeta::new(&q, 41).total_pages, 3);
        assert_eq!(PageMeta::new(&q, 40).total_pages, 2);
        assert_eq!(PageMeta::new(&q, 0).total_pages, 0);
        assert_eq!(q.offset(), 20);
    }
}
