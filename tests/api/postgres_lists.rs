//! The lists on PostgreSQL against the same rows on SQLite (a fresh database of the test
//! cluster, helpers/pg_cluster.rs, beside a SQLite file): every list function
//! (`db::exports::list`, `results::list`, `schemas::list`, `webhooks::list`) answers the same
//! rows in the same order and the same total on both databases, for every sort order and
//! direction, date filter, search and page, with the totals cache and bookmarks and without;
//! and the cache and bookmarks stay exact on PostgreSQL across inserts, updates and deletions.
//! On a table of many teams, a team's list reads indexes only (PostgreSQL's own scan counts).
//!
//! These call the store directly: they test the lists alone, whatever else of the store is
//! ported to PostgreSQL yet.

use std::time::Duration;

use exports_api::db::counts::ListCounts;
use exports_api::db::sql::{args, Arg};
use exports_api::db::{self, pg, Pool, Sql};
use exports_api::domain::export::CsvOptions;
use exports_api::domain::list::ListQuery;

use crate::helpers::pg_database;

/// The same database on SQLite and on PostgreSQL, filled by [`Both::exec`].
struct Both {
    lite: Pool,
    pg: Pool,
    _dir: tempfile::TempDir,
}

fn both(test: &str) -> Option<Both> {
    let url = pg_database(test)?;
    let dir = tempfile::tempdir().unwrap();
    let lite = db::open(&dir.path().join("exports.db"), 2, Duration::from_secs(5)).unwrap();
    let pg = pg::open(&url, 2).unwrap();
    Some(Both { lite: Pool::Lite(lite), pg: Pool::Pg(pg), _dir: dir })
}

impl Both {
    /// Runs one statement, in the seam's one text, on both databases.
    fn exec(&self, sql: &str, a: &[Arg]) {
        for pool in [&self.lite, &self.pg] {
            pool.get().unwrap().exec(sql, a).unwrap_or_else(|e| panic!("{sql}: {e}"));
        }
    }
}

/// A UUID whose text sorts by `n` among the fixtures' (ties in a sort order break by id).
fn id(kind: u8, n: u32) -> String {
    // scrambled, so that id order is not insertion order
    let m = n.wrapping_mul(2_654_435_761) % 1_000_003;
    format!("{m:08x}-0000-4000-8000-{kind:02x}{n:010x}")
}

const T1: u8 = 1;
const T2: u8 = 2;

fn team(t: u8) -> String {
    id(0xa0 + t, t as u32)
}

/// Two teams; schemas, exports, results and webhook endpoints with ties in every sort column,
/// texts that need `LIKE`'s escapes and differ in case.
fn fill(b: &Both) {
    for t in [T1, T2] {
        b.exec("INSERT INTO teams (id, name, created_at) VALUES (?1, ?2, 0)", args![&team(t), &format!("team {t}")]);
    }
    let names = ["Invoices", "receipts", "Bank_Statements", "100% forms", "INVOICES 2"];
    for (i, name) in names.iter().enumerate() {
        let t = if i == 4 { T2 } else { T1 };
        let description = (i % 2 == 0).then(|| format!("Scanned {name} of the ops team"));
        b.exec(
            "INSERT INTO schemas (id, team_id, name, description, definition, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, '{\"fields\":[]}', ?5, ?6)",
            args![&id(0xb0, i as u32), &team(t), *name, description.as_deref(), (i / 2) as i64, (10 - i) as i64],
        );
    }
    for i in 0..70 {
        add_export(b, i);
    }
    for i in 0..64u32 {
        let t = if i % 9 == 0 { T2 } else { T1 };
        let schema = if t == T2 { id(0xb0, 4) } else { id(0xb0, i % 2) };
        let file = (i % 3 != 0).then(|| format!("Scan_{i}.PDF"));
        b.exec(
            "INSERT INTO results (id, team_id, schema_id, file_name, extraction, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            &[
                Arg::Key(&id(0xc0, i)),
                Arg::Key(&team(t)),
                Arg::Key(&schema),
                Arg::from(file.as_deref()),
                Arg::Text(&format!("{{\"n\":{i}}}")),
                Arg::Int((i / 4) as i64),
                Arg::Int((i % 5) as i64),
            ],
        );
    }
    for i in 0..15u32 {
        let t = if i % 5 == 4 { T2 } else { T1 };
        let description = (i % 2 == 1).then(|| format!("Ops hook #{i}"));
        b.exec(
            "INSERT INTO webhook_endpoints (id, team_id, url, events, description, secret, created_at, updated_at)
             VALUES (?1, ?2, ?3, '[\"*\"]', ?4, 'secret', ?5, ?6)",
            args![
                &id(0xd0, i),
                &team(t),
                &format!("https://hooks.example/{i}"),
                description.as_deref(),
                (i / 2) as i64,
                (i % 4) as i64
            ],
        );
    }
}

fn add_export(b: &Both, i: u32) {
    let t = if i % 7 == 3 { T2 } else { T1 };
    let schema = if t == T2 { id(0xb0, 4) } else { id(0xb0, i % 4) };
    let status = ["PENDING", "PROCESSING", "COMPLETED", "FAILED"][(i % 4) as usize];
    let expand = i.is_multiple_of(4).then_some("line_items");
    let options = serde_json::to_string(&CsvOptions::default()).unwrap();
    let done = (i % 4 == 2).then_some(i as i64);
    b.exec(
        "INSERT INTO exports (id, team_id, schema_id, status, start_ms, end_ms, expand_array, options, row_count,
             file_size, error, attempts, created_at, updated_at, completed_at, results_done, results_total)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)",
        args![
            &id(0xe0, i),
            &team(t),
            &schema,
            status,
            (i % 5) as i64,
            (i % 4) as i64,
            expand,
            &options,
            done,
            done.map(|n| n * 100),
            (i % 4 == 3).then_some("it broke"),
            (i % 3) as i64,
            (i / 3) as i64,
            ((i * 7) % 13) as i64,
            done,
            done,
            done
        ],
    );
}

fn query(sort_column: &'static str, descending: bool, limit: u32, filters: &Filters) -> ListQuery {
    ListQuery {
        page: 1,
        limit,
        sort_column,
        descending,
        search: filters.2.map(str::to_string),
        created_after: filters.0,
        created_before: filters.1,
    }
}

/// `created_after`, `created_before`, `search`.
type Filters = (Option<i64>, Option<i64>, Option<&'static str>);

/// Every page of `q` (and one past the end) on both databases, plain and with `counts`, gives
/// the same rows (as `show` writes them) and total; returns the total.
fn assert_same_pages<R>(
    b: &Both,
    q: &ListQuery,
    counts: &(ListCounts, ListCounts),
    list: impl Fn(&dyn Sql, &ListQuery, Option<&ListCounts>) -> (Vec<R>, u64),
    show: impl Fn(&R) -> String,
) -> u64 {
    let (lite, pg) = (b.lite.get().unwrap(), b.pg.get().unwrap());
    let (_, total) = list(&*lite, q, None);
    let pages = total.div_ceil(q.limit as u64) as u32 + 1;
    let mut seen = 0;
    for page in 1..=pages {
        let q = ListQuery { page, ..q.clone() };
        let answers = [
            list(&*lite, &q, None),
            list(&*lite, &q, Some(&counts.0)),
            list(&*pg, &q, None),
            list(&*pg, &q, Some(&counts.1)),
        ];
        let shown: Vec<(Vec<String>, u64)> =
            answers.iter().map(|(rows, n)| (rows.iter().map(&show).collect(), *n)).collect();
        for (i, s) in shown.iter().enumerate().skip(1) {
            assert_eq!(s, &shown[0], "answer {i} (1: SQLite cached, 2: PostgreSQL, 3: PostgreSQL cached) of {q:?}");
        }
        seen += shown[0].0.len() as u64;
    }
    assert_eq!(seen, total, "the pages hold the total: {q:?}");
    total
}

const EXPORT_SORTS: [&str; 5] = ["created_at", "updated_at", "status", "start_ms", "end_ms"];

fn export_filters() -> Vec<Filters> {
    vec![
        (None, None, None),
        (Some(5), None, None),
        (Some(3), Some(15), None),
        (None, Some(9), None),
        (None, None, Some("invoice")),
        (None, None, Some("COMPLETED")),
        (None, None, Some("_")),
        (None, None, Some("%")),
        (Some(4), None, Some("line")),
        (None, None, Some("-4000-8000-e0")),
        (None, None, Some("nothing like it")),
    ]
}

fn check_exports(b: &Both, counts: &(ListCounts, ListCounts)) -> u64 {
    let mut totals = 0;
    for t in [T1, T2] {
        let team = team(t);
        let list = |c: &dyn Sql, q: &ListQuery, n: Option<&ListCounts>| db::exports::list(c, &team, q, n).unwrap();
        let show = |r: &db::exports::ExportRow| serde_json::to_string(r).unwrap();
        for sort in EXPORT_SORTS {
            for descending in [true, false] {
                for f in export_filters() {
                    let limit = if f.2.is_some() { 9 } else { 4 };
                    totals += assert_same_pages(b, &query(sort, descending, limit, &f), counts, list, show);
                }
            }
        }
    }
    totals
}

#[test]
fn export_lists_answer_the_same_on_postgresql_as_on_sqlite_across_changes() {
    let Some(b) = both("postgres_lists::exports") else { return };
    fill(&b);
    // a bookmark every 3 rows: deep pages start from bookmarks
    let counts = (ListCounts::new(3), ListCounts::new(3));
    assert!(check_exports(&b, &counts) > 0);
    assert!(counts.1.hits() > 0, "PostgreSQL answered totals from memory");
    // inserts, sort-column updates, other updates and deletions, then every page again
    for i in 70..76 {
        add_export(&b, i);
    }
    check_exports(&b, &counts);
    b.exec("UPDATE exports SET status = 'COMPLETED', updated_at = 3 WHERE start_ms = 1", &[]);
    check_exports(&b, &counts);
    b.exec("UPDATE exports SET row_count = 7, error = NULL WHERE end_ms = 2", &[]);
    b.exec("UPDATE exports SET updated_at = 40 - updated_at WHERE attempts = 2", &[]);
    check_exports(&b, &counts);
    b.exec("DELETE FROM exports WHERE created_at = 4 OR end_ms = 3", &[]);
    add_export(&b, 76);
    check_exports(&b, &counts);
    // a schema renamed: the joined name is read as it is now, and searched
    b.exec("UPDATE schemas SET name = 'Renamed_invoices' WHERE name = 'receipts'", &[]);
    check_exports(&b, &counts);
}

#[test]
fn remembered_totals_on_postgresql_follow_inserts_and_deletions() {
    let Some(b) = both("postgres_lists::totals") else { return };
    fill(&b);
    let counts = ListCounts::default();
    let pg = b.pg.get().unwrap();
    let q = query("created_at", true, 20, &(None, None, None));
    let total = || db::exports::list(&*pg, &team(T1), &q, Some(&counts)).unwrap().1;
    let first = total();
    assert_eq!(counts.hits(), 0);
    assert_eq!(total(), first);
    assert_eq!(counts.hits(), 1, "an unchanged table answers from memory");
    add_export(&b, 100); // T1's
    assert_eq!(total(), first + 1);
    add_export(&b, 102); // T1's
    b.exec("DELETE FROM exports WHERE id = ?1", args![&id(0xe0, 102)]);
    assert_eq!(total(), first + 1, "an insert and a deletion: the count is taken again");
    let hits = counts.hits();
    assert_eq!(total(), first + 1);
    assert_eq!(counts.hits(), hits + 1);
    // the other team's rows change the table too, not this team's total
    add_export(&b, 108); // T2's
    assert_eq!(total(), first + 1);
    b.exec("DELETE FROM exports WHERE id = ?1", args![&id(0xe0, 108)]);
    assert_eq!(total(), first + 1);
    // a NUL in `search` (PostgreSQL's texts cannot hold one) matches nothing, not an error
    let q = query("created_at", true, 20, &(None, None, Some("a\0b")));
    assert_eq!(db::exports::list(&*pg, &team(T1), &q, Some(&counts)).unwrap().1, 0);
}

#[test]
fn result_schema_and_webhook_lists_answer_the_same_on_postgresql_as_on_sqlite() {
    let Some(b) = both("postgres_lists::others") else { return };
    fill(&b);
    let counts = (ListCounts::new(3), ListCounts::new(3));
    let filters: Vec<Filters> = vec![
        (None, None, None),
        (Some(3), None, None),
        (Some(2), Some(11), None),
        (None, None, Some("scan_1")),
        (None, None, Some(".pdf")),
        (None, None, Some("ops")),
        (None, None, Some("bank_")),
        (None, None, Some("100%")),
        (None, None, Some("INVOICES")),
    ];
    let show_result = |r: &db::results::ResultRecord| format!("{r:?}");
    for t in [T1, T2] {
        let team = team(t);
        // by team, by each schema (the team's own, another team's, and a text that is no id)
        let mut schemas: Vec<Option<String>> = vec![None, Some("not-a-uuid".into())];
        schemas.extend((0..5).map(|i| Some(id(0xb0, i))));
        for schema in &schemas {
            for with_extraction in [true, false] {
                let list = |c: &dyn Sql, q: &ListQuery, n: Option<&ListCounts>| {
                    db::results::list(c, &team, schema.as_deref(), with_extraction, q, n).unwrap()
                };
                for descending in [true, false] {
                    for f in &filters {
                        let q = query("created_at", descending, 5, f);
                        assert_same_pages(&b, &q, &counts, list, show_result);
                        let q = query("updated_at", descending, 7, f);
                        assert_same_pages(&b, &q, &counts, list, show_result);
                    }
                }
            }
        }
        let schema_list = |c: &dyn Sql, q: &ListQuery, _: Option<&ListCounts>| db::schemas::list(c, &team, q).unwrap();
        let show_schema = |r: &db::schemas::SchemaRow| format!("{r:?}");
        let webhook_list =
            |c: &dyn Sql, q: &ListQuery, _: Option<&ListCounts>| db::webhooks::list(c, &team, q).unwrap();
        let show_webhook = |r: &db::webhooks::EndpointRow| {
            format!("{} {} {:?} {:?} {} {}", r.id, r.url, r.events, r.description, r.created_at, r.updated_at)
        };
        for sort in ["created_at", "updated_at"] {
            for descending in [true, false] {
                for f in &filters {
                    assert_same_pages(&b, &query(sort, descending, 2, f), &counts, schema_list, show_schema);
                    assert_same_pages(&b, &query(sort, descending, 3, f), &counts, webhook_list, show_webhook);
                }
            }
        }
    }
    assert!(counts.1.hits() > 0, "PostgreSQL answered results totals from memory");
    // a search that matches: not every answer above was empty
    let pg = b.pg.get().unwrap();
    let (rows, total) = db::results::list(
        &*pg,
        &team(T1),
        None,
        false,
        &query("created_at", true, 5, &(None, None, Some("SCAN_1"))),
        None,
    )
    .unwrap();
    assert!(total > 5 && rows.len() == 5, "{total}");
}

/// `(seq_scan, idx_scan)` of the `exports` table as this session's statistics leave them
/// (flushed first: PostgreSQL 15 reports a backend's counts when it goes idle).
fn exports_scans(conn: &db::Conn) -> (i64, i64) {
    let pg = conn.pg().unwrap();
    pg.client().batch_execute("SELECT pg_stat_force_next_flush()").unwrap();
    let row =
        pg.client().query_one("SELECT seq_scan, idx_scan FROM pg_stat_user_tables WHERE relname = 'exports'", &[]);
    let row = row.unwrap();
    (row.get(0), row.get(1))
}

/// On a table of many teams, a team's count, first page, deep page, bookmarks and date filter
/// on PostgreSQL read the exports' indexes, never the whole table (the query plans SQLite's
/// unit tests check in db/list.rs, here by the server's own scan counts).
#[test]
fn postgresql_lists_of_a_team_read_indexes_not_the_table() {
    let Some(url) = pg_database("postgres_lists::plans") else { return };
    let pool = Pool::Pg(pg::open(&url, 1).unwrap());
    let conn = pool.get().unwrap();
    let options = serde_json::to_string(&CsvOptions::default()).unwrap();
    {
        let mut c = conn.pg().unwrap().client();
        c.batch_execute(
            "INSERT INTO teams SELECT md5(t::text)::uuid, 'team ' || t, 0 FROM generate_series(1, 40) t;
             INSERT INTO schemas VALUES (md5('s')::uuid, md5('1')::uuid, 'Invoices', NULL, '{\"fields\":[]}', 0, 0);",
        )
        .unwrap();
        c.execute(
            "INSERT INTO exports (id, team_id, schema_id, status, start_ms, end_ms, options, created_at, updated_at)
             SELECT md5('e' || g)::uuid, md5((g % 40 + 1)::text)::uuid, md5('s')::uuid,
                    (ARRAY['PENDING', 'PROCESSING', 'COMPLETED', 'FAILED'])[g % 4 + 1], g % 1000, g % 977, $1,
                    g, g % 5000
             FROM generate_series(1, 20000) g",
            &[&options],
        )
        .unwrap();
        c.batch_execute("VACUUM ANALYZE").unwrap();
    }
    let team: String =
        conn.pg().unwrap().client().query_one("SELECT CAST(md5('1')::uuid AS TEXT)", &[]).unwrap().get(0);
    let counts = ListCounts::new(100);
    for sort in ["created_at", "status", "updated_at"] {
        for after in [None, Some(10_001)] {
            for (page, counts) in [(1, None), (12, None), (12, Some(&counts)), (13, Some(&counts))] {
                let q = ListQuery { page, ..query(sort, true, 20, &(after, None, None)) };
                let before = exports_scans(&conn);
                let (rows, total) = db::exports::list(&*conn, &team, &q, counts).unwrap();
                let after_scans = exports_scans(&conn);
                assert_eq!(total, if after.is_some() { 250 } else { 500 }, "{q:?}");
                assert_eq!(rows.len() as u64, total.saturating_sub(q.offset() as u64).min(20), "{q:?}");
                assert_eq!(after_scans.0, before.0, "no scan of the whole table: {q:?}");
                assert!(after_scans.1 > before.1, "the indexes were read: {q:?}");
            }
        }
    }
}
