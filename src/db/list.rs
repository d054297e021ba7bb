//! The one query behind every list: a page of a team's rows and their exact total, read from
//! indexes (the count and the page's row ids) and then the page's rows alone.
//!
//! One text serves both databases (see db/sql.rs) but for four differences, branched on
//! here: a deep page's ids are SQLite's `rowid`s and PostgreSQL's `id`s; `search` is
//! SQLite's `LIKE` (ASCII case-insensitive) and PostgreSQL's `ILIKE` over the columns' text;
//! SQLite reads total and page inside a savepoint, PostgreSQL inside a `REPEATABLE READ READ
//! ONLY` transaction (one snapshot for the stamp, the count, the bookmarks and the page);
//! and a team key that is not a UUID selects nothing on PostgreSQL (its ids are `uuid`s).

use super::sql::{Arg, Row, Sql};
use rusqlite::types::Value;

use super::bookmarks::Walk;
use super::counts::{self, ListCounts};
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
    /// The sort columns that an update of a row may change (the others are set once, when
    /// the row is inserted): bookmarks in lists sorted by them also watch updates.
    pub moving: &'a [&'a str],
    /// The sort columns with a covering (team column, sort column, id) index: only lists
    /// sorted by them keep bookmarks (making one for another column would sort the list).
    pub indexed: &'a [&'a str],
    /// On SQLite, the team column and `id` hold UUIDs as 16 bytes (`results`, see db/ids.rs),
    /// not text. (On PostgreSQL every id is a `uuid`, whatever this says.)
    pub binary_ids: bool,
}

/// One page of a team's rows and the total count, with the filters every list shares
/// (`created_after`, `created_before`, `search`); `team_key` is the value of
/// `src.team_column`. Ties in
/// the sort order break by id, so paging is stable. `from_row` makes each row of the page
/// into a `T` (on SQLite it gets `Row::Lite`, on PostgreSQL `Row::Pg`).
///
/// With `counts`, the total of a list without `search` is remembered between requests while
/// the table is unchanged (see `counts`), and so are bookmarks that let a deep page start
/// near its first row (see `bookmarks`). Total and page are read in one read transaction
/// (on PostgreSQL one snapshot; inside a caller's transaction there, whose statements may
/// each see another snapshot, nothing is remembered).
pub(crate) fn list_page<T>(
    conn: &dyn Sql,
    src: &ListSource,
    team_key: &str,
    q: &ListQuery,
    counts: Option<&ListCounts>,
    from_row: impl FnMut(&Row) -> DbResult<T>,
) -> DbResult<(Vec<T>, u64)> {
    if let Some(lite) = conn.lite() {
        // a savepoint is a read transaction here, and nests inside a caller's transaction
        lite.execute_batch("SAVEPOINT list_page")?;
        let out = page_in_snapshot(conn, src, team_key, q, counts, from_row);
        lite.execute_batch("RELEASE list_page")?;
        return out;
    }
    let pg = conn.pg().expect("a connection is SQLite's or PostgreSQL's");
    if q.search.as_deref().is_some_and(|s| s.contains('\0')) {
        // PostgreSQL refuses a text holding NUL (no stored text has one): nothing matches
        return Ok((Vec::new(), 0));
    }
    if pg.in_transaction() {
        return page_in_snapshot(conn, src, team_key, q, None, from_row);
    }
    pg.read_snapshot(|| page_in_snapshot(conn, src, team_key, q, counts, from_row))
}

/// [`list_page`]'s work, inside the read transaction it opened.
fn page_in_snapshot<T>(
    conn: &dyn Sql,
    src: &ListSource,
    team_key: &str,
    q: &ListQuery,
    counts: Option<&ListCounts>,
    mut from_row: impl FnMut(&Row) -> DbResult<T>,
) -> DbResult<(Vec<T>, u64)> {
    let pg = conn.pg().is_some();
    let table = src.table.split(' ').next().unwrap_or(src.table);
    // only lists without `search` have a covering index to count and bookmark
    let counts = counts.filter(|_| q.search.is_none());
    let moving = src.moving.contains(&q.sort_column);
    let stamp = match counts {
        Some(_) => counts::stamp(conn, table, moving)?,
        None => None,
    };
    let sql = list_sql(src, team_key, q, None, pg);
    let count = || -> DbResult<u64> { query_count(conn, &sql.count, &sql.args) };
    let page = |sql: &str, args: &[Value], from_row: &mut dyn FnMut(&Row) -> DbResult<T>| {
        let mut rows = Vec::with_capacity(q.limit.min(1000) as usize);
        query_each(conn, sql, args, &mut |r| {
            rows.push(from_row(r)?);
            Ok(())
        })?;
        Ok::<_, super::DbError>(rows)
    };
    let (Some(counts), Some(stamp)) = (counts, stamp) else {
        let total = count()?;
        let rows = page(&sql.page, &sql.args, &mut from_row)?;
        return Ok((rows, total));
    };
    let list = format!("{table}\0{}\0{team_key}\0{:?}\0{:?}", src.team_column, q.created_after, q.created_before);
    let total = counts.total(stamp, &list, count)?;
    let offset = q.offset() as u64;
    if offset >= total {
        return Ok((Vec::new(), total)); // past the end, which is exact in this transaction
    }
    let walk_sql = |bound: bool| walk_sql(src, team_key, q, bound, counts.marks.every(), pg);
    let walk = Walk {
        conn,
        key: format!("{list}\0{}\0{}", q.sort_column, q.descending),
        stamp,
        args: &sql.args,
        walk_sql: &walk_sql,
    };
    let mark = match src.indexed.contains(&q.sort_column) {
        true => counts.marks.seek(&walk, offset)?,
        false => None,
    };
    let rows = match mark {
        Some((at, (value, id))) => {
            let mut args = sql.args.clone();
            args.push(value);
            args.push(id);
            page(&list_sql(src, team_key, q, Some(offset - at), pg).page, &args, &mut from_row)?
        }
        None => page(&sql.page, &sql.args, &mut from_row)?,
    };
    Ok((rows, total))
}

/// The count of `sql`, an index-only `COUNT(*)`.
fn query_count(conn: &dyn Sql, sql: &str, args: &[Value]) -> DbResult<u64> {
    if let Some(lite) = conn.lite() {
        let mut stmt = lite.prepare_cached(sql)?;
        return Ok(stmt.query_row(rusqlite::params_from_iter(args.iter()), |r| r.get::<_, i64>(0))? as u64);
    }
    Ok(conn.one(sql, &pg_args(args), |r| r.int(0))? as u64)
}

/// Runs `sql` and calls `f` with each row. On SQLite the arguments are bound as they are (the
/// list's own rusqlite path, as fast as before the seam); on PostgreSQL through the seam.
pub(crate) fn query_each(
    conn: &dyn Sql,
    sql: &str,
    args: &[Value],
    f: &mut dyn FnMut(&Row) -> DbResult<()>,
) -> DbResult<()> {
    if let Some(lite) = conn.lite() {
        let mut stmt = lite.prepare_cached(sql)?;
        let mut rows = stmt.query(rusqlite::params_from_iter(args.iter()))?;
        while let Some(r) = rows.next()? {
            f(&Row::Lite(r))?;
        }
        return Ok(());
    }
    conn.each(sql, &pg_args(args), f)
}

/// A list's arguments as the seam takes them on PostgreSQL (borrowed, no copy of a text).
/// Its values are the filter's (integers, texts, a NULL team key) and bookmarks read from
/// PostgreSQL (integers and texts, `bookmarks::value`).
fn pg_args(values: &[Value]) -> Vec<Arg<'_>> {
    values
        .iter()
        .map(|v| match v {
            Value::Null => Arg::Null,
            Value::Integer(i) => Arg::Int(*i),
            Value::Text(s) => Arg::Text(s),
            Value::Blob(b) => Arg::Bytes(b),
            // never made for PostgreSQL (see above); NULL matches no row, should one be
            Value::Real(_) => Arg::Null,
        })
        .collect()
}

/// Whether the list is filtered by its team (or team key) alone: its (team, sort column, id)
/// index gives its rows in order with no other condition to check.
fn is_team_only(q: &ListQuery) -> bool {
    q.search.is_none() && q.created_after.is_none() && q.created_before.is_none()
}

/// A list's two statements and their arguments.
struct ListSql {
    count: String,
    page: String,
    args: Vec<Value>,
}

/// A list's filter and its arguments; with `bound`, also the keyset condition that starts
/// the list at a bookmark, whose sort value and id are the two arguments after these. `pg`:
/// in PostgreSQL's dialect.
fn filter(src: &ListSource, team_key: &str, q: &ListQuery, bound: bool, pg: bool) -> (String, Vec<Value>) {
    let p = src.prefix;
    let mut filter = format!("{p}{} = ?1", src.team_column);
    // NULL equals nothing: a key that is not a UUID selects no row where keys are UUIDs
    let team = match (src.binary_ids, pg) {
        (true, false) => super::ids::key(team_key).map_or(Value::Null, |k| Value::Blob(k.to_vec())),
        (false, false) => team_key.to_string().into(),
        // every id is a `uuid` on PostgreSQL (the text converts where the column is one)
        (_, true) => super::ids::key(team_key).map_or(Value::Null, |_| team_key.to_string().into()),
    };
    let mut args: Vec<Value> = vec![team];
    // From a bookmark in a list sorted by created_at, the bookmark starts the index range, not
    // the created_at bound on the same side (which it implies): a unary `+` keeps SQLite from
    // using that bound for the range, so it seeks to the bookmark instead of walking to it.
    let keyset = bound && q.sort_column == "created_at";
    if let Some(t) = q.created_after {
        args.push(t.into());
        let plus = if keyset && !q.descending { "+" } else { "" };
        filter.push_str(&format!(" AND {plus}{p}created_at >= ?{}", args.len()));
    }
    if let Some(t) = q.created_before {
        args.push(t.into());
        let plus = if keyset && q.descending { "+" } else { "" };
        filter.push_str(&format!(" AND {plus}{p}created_at <= ?{}", args.len()));
    }
    if let Some(s) = &q.search {
        args.push(like_pattern(s).into());
        let n = args.len();
        let any: Vec<String> = match pg {
            false => src.search.iter().map(|c| format!("COALESCE({c}, '') LIKE ?{n} ESCAPE '\\'")).collect(),
            // ILIKE: case-insensitive like SQLite's LIKE (which folds ASCII letters only; ILIKE
            // folds as the column's collation does: ASCII only for the "C" ones, status and
            // names); the cast reads `uuid` ids as their text
            true => src.search.iter().map(|c| format!("CAST({c} AS TEXT) ILIKE ?{n} ESCAPE '\\'")).collect(),
        };
        filter.push_str(&format!(" AND ({})", any.join(" OR ")));
    }
    if bound {
        // a row value comparison: SQLite seeks the (team, sort column, id) index to it
        let cmp = if q.descending { "<=" } else { ">=" };
        let n = args.len();
        filter.push_str(&format!(" AND ({p}{}, {p}id) {cmp} (?{}, ?{})", q.sort_column, n + 1, n + 2));
    }
    (filter, args)
}

fn order(src: &ListSource, q: &ListQuery) -> String {
    let p = src.prefix;
    let dir = if q.descending { "DESC" } else { "ASC" };
    format!("{p}{sort} {dir}, {p}id {dir}", sort = q.sort_column)
}

/// The list's count and page; with `from_mark`, the page starts that many rows after a
/// bookmark (see `filter`) instead of at the page's offset. `pg`: in PostgreSQL's dialect.
fn list_sql(src: &ListSource, team_key: &str, q: &ListQuery, from_mark: Option<u64>, pg: bool) -> ListSql {
    let p = src.prefix;
    let (filter, args) = filter(src, team_key, q, from_mark.is_some(), pg);
    // Only `search` may read the joined table: without it, count and page the listed table
    // alone, on its (team_id, sort column, id) indexes.
    let keys_from = if q.search.is_some() { src.from } else { src.table };
    let order = order(src, q);
    // The page's row ids come from the index alone (a deep OFFSET skips index entries, not
    // rows); only the page's own rows are read whole. The first page of a list filtered by
    // its team alone skips nothing: it walks the (team, sort column, id) index and reads
    // each row as it comes, in order, with no list of ids to build and no second sort of
    // whole rows (GET /v1/exports?limit=20 as the bench asks it: -30% of its SQLite work).
    let first_page = from_mark.is_none() && q.offset() == 0 && is_team_only(q);
    let page = if first_page {
        format!(
            "SELECT {cols} FROM {from} WHERE {filter} ORDER BY {order} LIMIT {limit}",
            cols = src.columns,
            from = src.from,
            limit = q.limit
        )
    } else {
        // SQLite's rows are found by rowid, PostgreSQL's by their primary key
        let key = if pg { "id" } else { "rowid" };
        format!(
            "SELECT {cols} FROM {from} WHERE {p}{key} IN \
             (SELECT {p}{key} FROM {keys_from} WHERE {filter} ORDER BY {order} LIMIT {limit} OFFSET {offset}) \
             ORDER BY {order}",
            cols = src.columns,
            from = src.from,
            limit = q.limit,
            offset = from_mark.unwrap_or(q.offset() as u64)
        )
    };
    ListSql { count: format!("SELECT COUNT(*) FROM {keys_from} WHERE {filter}"), page, args }
}

/// The statement that makes a bookmark: the key `every` rows after a bookmark (`bound`) or
/// after the start, read from the index alone.
fn walk_sql(src: &ListSource, team_key: &str, q: &ListQuery, bound: bool, every: u64, pg: bool) -> String {
    let p = src.prefix;
    let (filter, _) = filter(src, team_key, q, bound, pg);
    format!(
        "SELECT {p}{sort}, {p}id FROM {table} WHERE {filter} ORDER BY {order} LIMIT 1 OFFSET {every}",
        sort = q.sort_column,
        table = src.table,
        order = order(src, q)
    )
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
    use rusqlite::Connection;

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
        // from a bookmark too, and the walk that makes bookmarks
        let mut bound = list_sql(src, key, q, Some(7), false);
        bound.args.extend([Value::Integer(1), Value::Text("x".into())]);
        let page = plan(c, &bound.page, &bound.args);
        // the index is sought to the bookmark: `(created_at,id)<(?,?)` in the plan
        let sought = page.lines().any(|l| l.contains("COVERING INDEX") && l.contains(",id)") && l.contains("(?,?)"));
        assert!(sought, "{q:?}\n{page}");
        assert!(!page.lines().any(|l| l.starts_with("SCAN")), "{q:?}\n{page}");
        for b in [false, true] {
            let walk = walk_sql(src, key, q, b, 500, false);
            let walk_plan = plan(c, &walk, &bound.args[..bound.args.len() - if b { 0 } else { 2 }]);
            assert!(walk_plan.contains("COVERING INDEX") && !walk_plan.contains("TEMP B-TREE"), "{walk}\n{walk_plan}");
        }
        let sql = list_sql(src, key, q, None, false);
        let count = plan(c, &sql.count, &sql.args);
        assert!(count.contains("COVERING INDEX") && !count.contains("SCAN"), "{q:?}\n{}\n{count}", sql.count);
        let page = plan(c, &sql.page, &sql.args);
        assert!(page.contains("COVERING INDEX"), "{q:?}\n{}\n{page}", sql.page);
        assert!(!page.lines().any(|l| l.starts_with("SCAN")), "{q:?}\n{}\n{page}", sql.page);
        assert!(page.matches("TEMP B-TREE").count() <= 1, "only the page itself is sorted: {q:?}\n{page}");
        // the first page: the rows in the index's order, no sort at all when only the team filters
        let first = ListQuery { page: 1, ..q.clone() };
        let sql = list_sql(src, key, &first, None, false);
        let page = plan(c, &sql.page, &sql.args);
        assert!(page.contains("INDEX"), "{first:?}\n{page}");
        assert!(!page.lines().any(|l| l.starts_with("SCAN")), "{first:?}\n{}\n{page}", sql.page);
        let sorts = page.matches("TEMP B-TREE").count();
        assert!(sorts <= usize::from(!is_team_only(&first)), "{first:?}\n{}\n{page}", sql.page);
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
            moving: &["status", "updated_at"],
            indexed: &["created_at", "updated_at", "status", "start_ms", "end_ms"],
            binary_ids: false,
        };
        for sort in ["created_at", "updated_at", "status", "start_ms", "end_ms"] {
            for desc in [true, false] {
                for after in [None, Some(5)] {
                    assert_index_only(&c, &src, "t1", &query(sort, desc, after));
                    let both = ListQuery { created_before: Some(9), ..query(sort, desc, after) };
                    assert_index_only(&c, &src, "t1", &both);
                }
            }
        }
    }

    #[test]
    fn results_lists_read_indexes_only() {
        let c = db();
        let src = results_src();
        for desc in [true, false] {
            for after in [None, Some(5)] {
                assert_index_only(&c, &src, T1, &query("created_at", desc, after));
                let both = ListQuery { created_before: Some(9), ..query("created_at", desc, after) };
                assert_index_only(&c, &src, T1, &both);
                let by_schema = ListSource { team_column: "schema_id", ..src };
                assert_index_only(&c, &by_schema, S1, &query("created_at", desc, after));
            }
        }
    }

    /// The results list by team, as the unit tests read it.
    fn results_src() -> ListSource<'static> {
        ListSource {
            table: "results",
            from: "results",
            team_column: "team_id",
            columns: "id",
            prefix: "",
            search: &[],
            moving: &[],
            indexed: &["created_at"],
            binary_ids: true,
        }
    }

    /// Teams and schemas of the results tests (results hold their ids as 16 bytes).
    const T1: &str = "00000000-0000-7000-8000-0000000000f1";
    const T2: &str = "00000000-0000-7000-8000-0000000000f2";
    const S1: &str = "00000000-0000-7000-8000-0000000000e1";
    const S2: &str = "00000000-0000-7000-8000-0000000000e2";

    /// Result `n` (`n` its id's last digits and its createdAt) of a team's schema.
    fn add_result(c: &Connection, n: u8, team: &str, schema: &str) {
        let key = |s: &str| super::super::ids::key(s).unwrap();
        let id = key(&format!("00000000-0000-7000-8000-0000000000{n:02x}"));
        c.execute(
            "INSERT INTO results VALUES (?1, ?2, ?3, NULL, '{}', ?4, 1)",
            rusqlite::params![id, key(team), key(schema), n],
        )
        .unwrap();
    }

    fn delete_result(c: &Connection, n: u8) {
        c.execute("DELETE FROM results WHERE created_at = ?1", [n]).unwrap();
    }

    fn total(c: &Connection, counts: &ListCounts, team: &str) -> u64 {
        let src = results_src();
        let q = ListQuery { page: 1, ..query("created_at", true, None) };
        let (rows, total) = list_page(c, &src, team, &q, Some(counts), |r: &Row| r.text(0)).unwrap();
        assert_eq!(rows.len() as u64, total.min(20));
        total
    }

    #[test]
    fn remembered_totals_are_used_while_the_table_is_unchanged_and_stay_exact() {
        let c = db();
        let counts = ListCounts::default();
        for n in [0xa, 0xb, 0xc] {
            add_result(&c, n, T1, S1);
        }
        assert_eq!(total(&c, &counts, T1), 3);
        assert_eq!(counts.hits(), 0);
        assert_eq!(total(&c, &counts, T1), 3);
        assert_eq!(counts.hits(), 1, "an unchanged table answers from memory");

        add_result(&c, 0xd, T2, S2); // another team's row changes the table
        assert_eq!(total(&c, &counts, T1), 3);
        assert_eq!(total(&c, &counts, T2), 1);
        add_result(&c, 0xe, T1, S1);
        assert_eq!(total(&c, &counts, T1), 4);
        // deleting the newest row and adding one reuses its rowid: the deletion count tells
        delete_result(&c, 0xe);
        add_result(&c, 0xf, T2, S2);
        assert_eq!(total(&c, &counts, T1), 3);
        assert_eq!(total(&c, &counts, T2), 2);
        delete_result(&c, 0xa);
        assert_eq!(total(&c, &counts, T1), 2);
        let hits = counts.hits();
        assert_eq!(total(&c, &counts, T1), 2);
        assert_eq!(counts.hits(), hits + 1);
    }

    fn exports_src() -> ListSource<'static> {
        ListSource {
            table: "exports e",
            from: "exports e LEFT JOIN schemas s ON s.id = e.schema_id",
            team_column: "team_id",
            columns: "e.id",
            prefix: "e.",
            search: &["s.name"],
            moving: &["status", "updated_at"],
            indexed: &["created_at", "updated_at", "status", "start_ms", "end_ms"],
            binary_ids: false,
        }
    }

    fn add_export(c: &Connection, i: i64, team: &str) {
        let status = ["PENDING", "COMPLETED", "FAILED"][(i % 3) as usize];
        c.execute(
            "INSERT INTO exports (id, team_id, schema_id, status, start_ms, end_ms, options, created_at, updated_at)
             VALUES (printf('x%04d', ?1 * 7919 % 10007), ?2, 's1', ?3, ?1 % 5, ?1 % 4, '{}', ?1 / 2, ?1 % 11)",
            rusqlite::params![i, team, status],
        )
        .unwrap();
    }

    /// Every page (limits 1 and 7, and one past the end) of every sort order and filter, from
    /// bookmarks, equals the plain OFFSET query's page.
    fn assert_pages_equal_offset(c: &Connection, counts: &ListCounts) {
        let src = exports_src();
        for sort in ["created_at", "updated_at", "status", "start_ms", "end_ms"] {
            for descending in [true, false] {
                for (after, before) in [(None, None), (Some(3), None), (Some(2), Some(15))] {
                    for limit in [1, 7] {
                        let q = |page| ListQuery {
                            page,
                            limit,
                            sort_column: sort,
                            descending,
                            search: None,
                            created_after: after,
                            created_before: before,
                        };
                        let id = |r: &Row| r.text(0);
                        let (_, total) = list_page(c, &src, "t1", &q(1), None, id).unwrap();
                        for page in (1..=total.div_ceil(limit as u64) as u32 + 1).rev() {
                            let plain = list_page(c, &src, "t1", &q(page), None, id).unwrap();
                            let marked = list_page(c, &src, "t1", &q(page), Some(counts), id).unwrap();
                            assert_eq!(marked, plain, "{:?}", q(page));
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn pages_from_bookmarks_equal_plain_offset_pages_across_inserts_updates_and_deletes() {
        let c = db();
        let counts = ListCounts::new(3);
        for i in 0..40 {
            add_export(&c, i, if i % 5 == 0 { "t2" } else { "t1" });
        }
        assert_pages_equal_offset(&c, &counts);
        assert!(counts.marks.held() > 0, "deep pages made bookmarks");
        for i in 40..46 {
            add_export(&c, i, "t1");
        }
        assert_pages_equal_offset(&c, &counts);
        // updates move rows in the status and updated_at orders, and only those
        c.execute("UPDATE exports SET status = 'PROCESSING', updated_at = 3 WHERE rowid % 4 = 1", []).unwrap();
        assert_pages_equal_offset(&c, &counts);
        c.execute("UPDATE exports SET updated_at = 100 - updated_at WHERE rowid % 3 = 0", []).unwrap();
        assert_pages_equal_offset(&c, &counts);
        c.execute("DELETE FROM exports WHERE rowid % 6 = 2 OR rowid = (SELECT max(rowid) FROM exports)", []).unwrap();
        add_export(&c, 46, "t1"); // may take the deleted newest row's rowid
        assert_pages_equal_offset(&c, &counts);
    }

    /// Results (ids stored as 16 bytes): every page of a team's and a schema's list, both
    /// orders, from bookmarks that end among equal createdAt, equals the plain OFFSET page,
    /// also after a delete; ids come back in the text's order.
    #[test]
    fn result_pages_from_bookmarks_equal_plain_offset_pages() {
        let c = db();
        let counts = ListCounts::new(3);
        let ids = |r: &Row| r.text(0);
        let created_at = |c: &Connection, id: &str| -> i64 {
            let id = super::super::ids::key(id).unwrap();
            c.query_row("SELECT created_at FROM results WHERE id = ?1", [id], |r| r.get(0)).unwrap()
        };
        // createdAt n / 4: ties of four, ids inserted out of their order
        for n in (0u32..60).map(|i| (i * 37 % 61) as u8) {
            let key = |s: &str| super::super::ids::key(s).unwrap();
            let id = key(&format!("00000000-0000-7000-8000-0000000000{n:02x}"));
            let (team, schema) = if n % 7 == 0 { (T2, S2) } else { (T1, S1) };
            c.execute(
                "INSERT INTO results VALUES (?1, ?2, ?3, NULL, '{}', ?4, 1)",
                rusqlite::params![id, key(team), key(schema), n / 4],
            )
            .unwrap();
        }
        let check = |c: &Connection| {
            for (src, key) in [(results_src(), T1), (ListSource { team_column: "schema_id", ..results_src() }, S1)] {
                for descending in [true, false] {
                    let q = |page| ListQuery { page, limit: 4, ..query("created_at", descending, Some(2)) };
                    let (all, total) = list_page(c, &src, key, &ListQuery { limit: 100, ..q(1) }, None, ids).unwrap();
                    assert_eq!(all.len() as u64, total);
                    assert!(total > 30);
                    for page in 1..=total.div_ceil(4) as u32 + 1 {
                        let marked = list_page(c, &src, key, &q(page), Some(&counts), ids).unwrap();
                        assert_eq!(marked, list_page(c, &src, key, &q(page), None, ids).unwrap(), "{:?}", q(page));
                        let start = ((page - 1) * 4) as usize;
                        assert_eq!(marked.0, all[start.min(all.len())..(start + 4).min(all.len())]);
                        // ties by id, in the text's order
                        for w in marked.0.windows(2) {
                            if created_at(c, &w[0]) == created_at(c, &w[1]) {
                                assert_eq!(w[0] < w[1], !descending, "{w:?}");
                            }
                        }
                    }
                }
            }
        };
        check(&c);
        assert!(counts.marks.held() > 0, "deep pages made bookmarks");
        c.execute("DELETE FROM results WHERE created_at = 9", []).unwrap();
        check(&c);
        // a key that is not a UUID selects nothing
        let (rows, total) =
            list_page(&c, &results_src(), "t1", &query("created_at", true, None), Some(&counts), ids).unwrap();
        assert_eq!((rows.len(), total), (0, 0));
    }

    #[test]
    fn bookmarks_stay_within_their_memory_bound() {
        let c = db();
        let counts = ListCounts::new(1);
        for i in 0..60 {
            add_export(&c, i, "t1");
        }
        let src = exports_src();
        // many lists (one per created_after value), each with up to 59 bookmarks
        for after in 0..1200 {
            let q = ListQuery { page: 60, limit: 1, created_after: Some(-after), ..query("created_at", true, None) };
            list_page(&c, &src, "t1", &q, Some(&counts), |r: &Row| r.text(0)).unwrap();
        }
        assert!(counts.marks.held() <= super::super::bookmarks::MAX_MARKS, "{}", counts.marks.held());
        assert!(counts.marks.lists() <= super::super::bookmarks::MAX_LISTS, "{}", counts.marks.lists());
        assert!(counts.marks.lists() > 1000);
    }
}
