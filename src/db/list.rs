//! The one query behind every list: a page of a team's rows and their exact total, read from
//! indexes (the count and the page's row ids) and then the page's rows alone.

use rusqlite::types::Value;
use rusqlite::Connection;

use super::counts::ListCounts;
use super::DbResult;
use crate::domain::list::ListQuery;

/// What a list query reads: a table (or join), its columns, the prefix of the listed table's
/// columns in it (`"e."` in a join, else `""`), and the expressions `search` matches.
pub(crate) struct ListSource<'a> {
    /// The listed table alone, with its alias if `prefix` has one (`"exports e"`): what the
    /// count and the page's keys read when no `search` needs the joined columns.
    pub table: &'a str,
    pub from: &'a str,
    /// The column that selects the team's rows (`team_id`), or another key that implies the
    /// team (`schema_id` of a schema known to be the team's).
    pub team_column: &'a str,
    pub columns: &'a str,
    pub prefix: &'a str,
    pub search: &'a [&'a str],
}

/// One page of a team's rows and the total count, with the filters every list shares
/// (`created_after`, `created_before`, `search`); `team_key` is the value of
/// `src.team_column`. Ties in
/// the sort order break by id, so paging is stable.
///
/// With `counts`, the total of a list without filters is remembered between requests while
/// the table is unchanged (see `counts`). Total and page are read in one read transaction.
pub(crate) fn list_page<T>(
    conn: &Connection,
    src: &ListSource,
    team_key: &str,
    q: &ListQuery,
    counts: Option<&ListCounts>,
    from_row: impl FnMut(&rusqlite::Row) -> rusqlite::Result<T>,
) -> DbResult<(Vec<T>, u64)> {
    // a savepoint is a read transaction here, and nests inside a caller's transaction
    conn.execute_batch("SAVEPOINT list_page")?;
    let out = list_page_in(conn, src, team_key, q, counts, from_row);
    conn.execute_batch("RELEASE list_page")?;
    out
}

fn list_page_in<T>(
    conn: &Connection,
    src: &ListSource,
    team_key: &str,
    q: &ListQuery,
    counts: Option<&ListCounts>,
    from_row: impl FnMut(&rusqlite::Row) -> rusqlite::Result<T>,
) -> DbResult<(Vec<T>, u64)> {
    let sql = list_sql(src, team_key, q);
    let args = rusqlite::params_from_iter(sql.args.iter());
    let count = || -> DbResult<u64> { Ok(conn.query_row(&sql.count, args.clone(), |r| r.get::<_, i64>(0))? as u64) };
    let unfiltered = q.search.is_none() && q.created_after.is_none() && q.created_before.is_none();
    let table = src.table.split(' ').next().unwrap_or(src.table);
    let total = match counts.filter(|_| unfiltered) {
        Some(counts) => counts.total(conn, table, src.team_column, team_key, count)?,
        None => count()?,
    };
    let mut stmt = conn.prepare(&sql.page)?;
    let rows = stmt.query_map(args, from_row)?.collect::<Result<Vec<_>, _>>()?;
    Ok((rows, total))
}

/// A list's two statements and their arguments.
struct ListSql {
    count: String,
    page: String,
    args: Vec<Value>,
}

fn list_sql(src: &ListSource, team_key: &str, q: &ListQuery) -> ListSql {
    let p = src.prefix;
    let mut filter = format!("{p}{} = ?1", src.team_column);
    let mut args: Vec<Value> = vec![team_key.to_string().into()];
    if let Some(t) = q.created_after {
        args.push(t.into());
        filter.push_str(&format!(" AND {p}created_at >= ?{}", args.len()));
    }
    if let Some(t) = q.created_before {
        args.push(t.into());
        filter.push_str(&format!(" AND {p}created_at <= ?{}", args.len()));
    }
    if let Some(s) = &q.search {
        args.push(like_pattern(s).into());
        let n = args.len();
        let any: Vec<String> = src.search.iter().map(|c| format!("COALESCE({c}, '') LIKE ?{n} ESCAPE '\\'")).collect();
        filter.push_str(&format!(" AND ({})", any.join(" OR ")));
    }
    // Only `search` may read the joined table: without it, count and page the listed table
    // alone, on its (team_id, sort column, id) indexes.
    let keys_from = if q.search.is_some() { src.from } else { src.table };
    let dir = if q.descending { "DESC" } else { "ASC" };
    let order = format!("{p}{sort} {dir}, {p}id {dir}", sort = q.sort_column);
    // The page's row ids come from the index alone (a deep OFFSET skips index entries, not
    // rows); only the page's own rows are read whole.
    let page = format!(
        "SELECT {cols} FROM {from} WHERE {p}rowid IN \
         (SELECT {p}rowid FROM {keys_from} WHERE {filter} ORDER BY {order} LIMIT {limit} OFFSET {offset}) \
         ORDER BY {order}",
        cols = src.columns,
        from = src.from,
        limit = q.limit,
        offset = q.offset()
    );
    ListSql { count: format!("SELECT COUNT(*) FROM {keys_from} WHERE {filter}"), page, args }
}

/// Escapes `%`, `_` and `\` for a `LIKE ... ESCAPE '\'` pattern and wraps it in `%`.
fn like_pattern(s: &str) -> String {
    let mut p = String::with_capacity(s.len() + 2);
    p.push('%');
    for c in s.chars() {
        if matches!(c, '%' | '_' | '\\') {
            p.push('\\');
        }
        p.push(c);
    }
    p.push('%');
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db() -> Connection {
        let mut c = Connection::open_in_memory().unwrap();
        super::super::migrations::migrate(&mut c).unwrap();
        c.execute_batch(
            "INSERT INTO teams VALUES ('t1', 'one', 0), ('t2', 'two', 0);
             INSERT INTO schemas VALUES ('s1', 't1', 'inv', NULL, '{}', 0, 0), ('s2', 't2', 'inv', NULL, '{}', 0, 0);",
        )
        .unwrap();
        c
    }

    fn query(sort_column: &'static str, descending: bool, after: Option<i64>) -> ListQuery {
        ListQuery {
            page: 1000,
            limit: 20,
            sort_column,
            descending,
            search: None,
            created_after: after,
            created_before: None,
        }
    }

    fn plan(c: &Connection, sql: &str, args: &[Value]) -> String {
        let mut stmt = c.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
        let rows = stmt.query_map(rusqlite::params_from_iter(args.iter()), |r| r.get::<_, String>(3)).unwrap();
        rows.map(Result::unwrap).collect::<Vec<_>>().join("\n")
    }

    /// The count and the page's row ids read a covering index, never the table, and only the
    /// page's own rows are sorted: deep pages and totals do not read the rows of the history.
    fn assert_index_only(c: &Connection, src: &ListSource, key: &str, q: &ListQuery) {
        let sql = list_sql(src, key, q);
        let count = plan(c, &sql.count, &sql.args);
        assert!(count.contains("COVERING INDEX") && !count.contains("SCAN"), "{q:?}\n{}\n{count}", sql.count);
        let page = plan(c, &sql.page, &sql.args);
        assert!(page.contains("COVERING INDEX"), "{q:?}\n{}\n{page}", sql.page);
        assert!(!page.lines().any(|l| l.starts_with("SCAN")), "{q:?}\n{}\n{page}", sql.page);
        assert!(page.matches("TEMP B-TREE").count() <= 1, "only the page itself is sorted: {q:?}\n{page}");
    }

    #[test]
    fn exports_lists_read_indexes_only_in_every_sort_order() {
        let c = db();
        let src = ListSource {
            table: "exports e",
            from: "exports e LEFT JOIN schemas s ON s.id = e.schema_id",
            team_column: "team_id",
            columns: "e.id, s.name",
            prefix: "e.",
            search: &["s.name"],
        };
        for sort in ["created_at", "updated_at", "status", "start_ms", "end_ms"] {
            for desc in [true, false] {
                for after in [None, Some(5)] {
                    assert_index_only(&c, &src, "t1", &query(sort, desc, after));
                }
            }
        }
    }

    #[test]
    fn results_lists_read_indexes_only() {
        let c = db();
        let src = ListSource {
            table: "results",
            from: "results",
            team_column: "team_id",
            columns: "id",
            prefix: "",
            search: &[],
        };
        for desc in [true, false] {
            for after in [None, Some(5)] {
                assert_index_only(&c, &src, "t1", &query("created_at", desc, after));
                let by_schema = ListSource { team_column: "schema_id", ..src };
                assert_index_only(&c, &by_schema, "s1", &query("created_at", desc, after));
            }
        }
    }

    fn add_result(c: &Connection, id: &str, team: &str, schema: &str) {
        c.execute("INSERT INTO results VALUES (?1, ?2, ?3, NULL, '{}', 1, 1)", [id, team, schema]).unwrap();
    }

    fn total(c: &Connection, counts: &ListCounts, team: &str) -> u64 {
        let src = ListSource {
            table: "results",
            from: "results",
            team_column: "team_id",
            columns: "id",
            prefix: "",
            search: &[],
        };
        let q = ListQuery { page: 1, ..query("created_at", true, None) };
        let (rows, total) = list_page(c, &src, team, &q, Some(counts), |r| r.get::<_, String>(0)).unwrap();
        assert_eq!(rows.len() as u64, total.min(20));
        total
    }

    #[test]
    fn remembered_totals_are_used_while_the_table_is_unchanged_and_stay_exact() {
        let c = db();
        let counts = ListCounts::default();
        for id in ["a", "b", "c"] {
            add_result(&c, id, "t1", "s1");
        }
        assert_eq!(total(&c, &counts, "t1"), 3);
        assert_eq!(counts.hits(), 0);
        assert_eq!(total(&c, &counts, "t1"), 3);
        assert_eq!(counts.hits(), 1, "an unchanged table answers from memory");

        add_result(&c, "d", "t2", "s2"); // another team's row changes the table
        assert_eq!(total(&c, &counts, "t1"), 3);
        assert_eq!(total(&c, &counts, "t2"), 1);
        add_result(&c, "e", "t1", "s1");
        assert_eq!(total(&c, &counts, "t1"), 4);
        // deleting the newest row and adding one reuses its rowid: the deletion count tells
        c.execute("DELETE FROM results WHERE id = 'e'", []).unwrap();
        add_result(&c, "f", "t2", "s2");
        assert_eq!(total(&c, &counts, "t1"), 3);
        assert_eq!(total(&c, &counts, "t2"), 2);
        c.execute("DELETE FROM results WHERE id = 'a'", []).unwrap();
        assert_eq!(total(&c, &counts, "t1"), 2);
        let hits = counts.hits();
        assert_eq!(total(&c, &counts, "t1"), 2);
        assert_eq!(counts.hits(), hits + 1);
    }
}
