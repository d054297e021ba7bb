//! Results, the bulk import and the export scan on a real PostgreSQL (the test cluster of
//! helpers/pg_cluster.rs, a fresh database per test), checked against SQLite: the same NDJSON
//! stores the same rows on both; the same rows export to the same bytes on both; a failed
//! import stores nothing and leaves the connection usable; the export cursor reads every row
//! once, in order, across its fetches; `import` and `export` on `--database-url` through the
//! real binary.

use std::path::Path;
use std::time::Duration;

use exports_api::db::{self, pg, results, DbError, Sql};
use exports_api::domain::export::{CsvOptions, ExportFormat};
use exports_api::domain::result::NewResult;
use exports_api::domain::schema::SchemaDef;
use exports_api::import::{self, ImportError};
use exports_api::jobs::engine::{write_export, ExportSpec};

use crate::helpers::{bin, invoice_schema, invoices, pg_client, pg_database, text};

/// A migrated PostgreSQL database with one team and its invoice schema.
struct PgStore {
    url: String,
    pool: db::Pool,
    writer: db::Writer,
    team: String,
    schema: String,
    def: SchemaDef,
}

fn definition() -> String {
    invoice_schema()["schema"].to_string()
}

fn pg_store(test: &str, connections: u32) -> Option<PgStore> {
    let url = pg_database(test)?;
    let pool = pg::open(&url, connections).unwrap();
    let (team, schema) = (uuid::Uuid::now_v7(), uuid::Uuid::now_v7());
    let mut c = pg_client(&url);
    c.execute("INSERT INTO teams (id, name, created_at) VALUES ($1, 'acme', 1)", &[&team]).unwrap();
    c.execute(
        "INSERT INTO schemas (id, team_id, name, description, definition, created_at, updated_at)
         VALUES ($1, $2, 'Invoices', NULL, $3, 1, 1)",
        &[&schema, &team, &definition()],
    )
    .unwrap();
    Some(PgStore {
        url,
        writer: db::Writer::postgres(pool.clone()),
        pool: db::Pool::Pg(pool),
        team: team.to_string(),
        schema: schema.to_string(),
        def: serde_json::from_str(&definition()).unwrap(),
    })
}

/// A new SQLite database at `path` holding the team and schema of `store` (same ids), and,
/// when `with_results`, every result of `store` (same ids, same values).
fn sqlite_mirror(store: &PgStore, path: &Path, with_results: bool) -> db::LitePool {
    let pool = db::open(path, 2, Duration::from_secs(5)).unwrap();
    let conn = pool.get().unwrap();
    conn.execute("INSERT INTO teams (id, name, created_at) VALUES (?1, 'acme', 1)", [&store.team]).unwrap();
    conn.execute(
        "INSERT INTO schemas (id, team_id, name, description, definition, created_at, updated_at)
         VALUES (?1, ?2, 'Invoices', NULL, ?3, 1, 1)",
        [&store.schema, &store.team, &definition()],
    )
    .unwrap();
    if with_results {
        let rows = pg_client(&store.url)
            .query("SELECT id, team_id, schema_id, file_name, extraction, created_at, updated_at FROM results", &[])
            .unwrap();
        conn.execute_batch("BEGIN").unwrap();
        for r in &rows {
            let (id, team, schema): (uuid::Uuid, uuid::Uuid, uuid::Uuid) = (r.get(0), r.get(1), r.get(2));
            conn.execute(
                "INSERT INTO results (id, team_id, schema_id, file_name, extraction, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                rusqlite::params![
                    id.as_bytes(),
                    team.as_bytes(),
                    schema.as_bytes(),
                    r.get::<_, Option<String>>(3),
                    r.get::<_, String>(4),
                    r.get::<_, i64>(5),
                    r.get::<_, i64>(6)
                ],
            )
            .unwrap();
        }
        conn.execute_batch("COMMIT").unwrap();
    }
    pool
}

/// NDJSON lines whose text must survive byte for byte: escapes, non-ASCII, spacing, key
/// order, long numbers, an odd file name.
const AWKWARD: &str = concat!(
    r#"{"extraction": {"z": 1, "a": "tab\there \"quoted\" back\\slash", "vendor_name": "Müller & Søn — 東京 🚀"}, "file_name": "scan 1\t(copy).pdf", "createdAt": "2024-02-01T00:00:00Z"}"#,
    "\n",
    r#"{"extraction":{  "total" : 12345678901234567890.000000001 ,"n":[1,2 , 3],"nul":"\u0000 \u00e9"},"createdAt":"2024-02-01T00:00:00Z"}"#,
    "\n",
    r#"{"createdAt": "2024-02-02T10:00:00.123Z", "extraction": {"invoice_number": "=1+2", "line_items": [{"description": "a,b\nc"}]}}"#,
    "\n",
);

/// `text` in chunks of `size` bytes, as the upload route or the CLI hand it over.
fn chunks(text: String, size: usize) -> impl Iterator<Item = Result<Vec<u8>, ImportError>> + Send + 'static {
    let bytes = text.into_bytes();
    let n = bytes.len().div_ceil(size);
    (0..n).map(move |i| Ok(bytes[i * size..((i + 1) * size).min(bytes.len())].to_vec()))
}

/// `(file_name, created_at, extraction)` of every result, sorted.
fn stored_pg(url: &str) -> Vec<(Option<String>, i64, String)> {
    let rows = pg_client(url).query("SELECT file_name, created_at, extraction FROM results", &[]).unwrap();
    let mut v: Vec<_> = rows.iter().map(|r| (r.get(0), r.get(1), r.get(2))).collect();
    v.sort();
    v
}

fn stored_lite(conn: &rusqlite::Connection) -> Vec<(Option<String>, i64, String)> {
    let mut stmt = conn.prepare("SELECT file_name, created_at, extraction FROM results").unwrap();
    let mut v: Vec<_> =
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?))).unwrap().collect::<Result<_, _>>().unwrap();
    v.sort();
    v
}

fn export_bytes(conn: &dyn Sql, schema_id: &str, def: &SchemaDef, options: &CsvOptions, temp: &Path) -> Vec<u8> {
    let spec = ExportSpec {
        schema_id,
        schema_name: "Invoices",
        schema: def,
        temp_dir: temp,
        start_ms: 0,
        end_ms: i64::MAX,
        expand_array: None,
        options,
    };
    let mut out = Vec::new();
    write_export(conn, &spec, &mut out, |_| false).unwrap().expect("not stopped");
    out
}

#[test]
fn an_import_on_postgres_stores_what_sqlite_stores_and_exports_the_same_bytes() {
    let Some(store) = pg_store("postgres_results::import_and_export", 2) else { return };
    let (_, mut nd) = invoices(12_000, 3);
    nd.push_str(AWKWARD);
    let lines = nd.lines().count() as u64;
    let now = 1_717_000_000_000;

    let (team, schema, input) = (store.team.clone(), store.schema.clone(), chunks(nd.clone(), 100_000));
    let n = store.writer.run(move |c| import::import(c, &team, &schema, now, input)).unwrap();
    assert_eq!(n, lines);

    let tmp = tempfile::tempdir().unwrap();
    let lite = sqlite_mirror(&store, &tmp.path().join("imported.db"), false);
    let conn = lite.get().unwrap();
    assert_eq!(import::import(&*conn, &store.team, &store.schema, now, chunks(nd, 100_000)).unwrap(), lines);
    let on_pg = stored_pg(&store.url);
    assert_eq!(on_pg.len() as u64, lines);
    assert!(on_pg == stored_lite(&conn), "PostgreSQL stores every result as SQLite does, byte for byte");

    // the same rows (ids too) export to the same bytes from either database
    let mirror = sqlite_mirror(&store, &tmp.path().join("mirror.db"), true);
    let (pg_conn, lite_conn) = (store.pool.get().unwrap(), mirror.get().unwrap());
    for format in [ExportFormat::Csv, ExportFormat::Jsonl] {
        let options = CsvOptions { format, ..CsvOptions::default() };
        let from_pg = export_bytes(&*pg_conn, &store.schema, &store.def, &options, tmp.path());
        let from_lite = export_bytes(&*lite_conn, &store.schema, &store.def, &options, tmp.path());
        assert!(from_pg.len() > 1_000_000, "{format:?}: {} bytes", from_pg.len());
        assert!(from_pg == from_lite, "{format:?}: PostgreSQL's export differs from SQLite's");
    }
    let total = results::count_for_export(&*pg_conn, &store.schema, 0, i64::MAX).unwrap();
    assert_eq!(total, lines);
    assert_eq!(results::count_for_schema(&*pg_conn, &store.schema).unwrap(), lines as i64);
}

/// One pooled connection only: what runs after a failed import runs on the very connection
/// whose `COPY` was abandoned.
#[test]
fn a_failed_import_on_postgres_stores_nothing_and_leaves_the_connection_usable() {
    let Some(store) = pg_store("postgres_results::failed_import", 1) else { return };
    let (_, good) = invoices(3000, 4);
    assert!(good.len() > 3 * import::BATCH_BYTES, "the bad line comes after whole batches were copied");
    let bad = format!("{good}{{\"extraction\": {{\"a\": 1}}, \"createdAt\": \"yesterday\"}}\n{good}");
    let (team, schema) = (store.team.clone(), store.schema.clone());
    let err = store.writer.run(move |c| import::import(c, &team, &schema, 0, chunks(bad, 64 * 1024))).unwrap_err();
    assert!(matches!(&err, ImportError::Line(e) if e.to_string().contains("line 3001")), "{err}");

    // a write that fails after rows went into the COPY
    let (team, schema) = (store.team.clone(), store.schema.clone());
    let err = store
        .writer
        .run(move |c| {
            results::insert_streamed(c, &team, &schema, |ins| {
                for i in 0..5000 {
                    ins.insert(Some("f.pdf"), i, r#"{"a": 1}"#)?;
                }
                Err::<(), _>(DbError::Interrupted("the test gives up"))
            })
        })
        .unwrap_err();
    assert!(matches!(err, DbError::Interrupted(_)), "{err}");
    let count = |url: &str| -> i64 { pg_client(url).query_one("SELECT count(*) FROM results", &[]).unwrap().get(0) };
    assert_eq!(count(&store.url), 0, "nothing was stored");

    let (team, schema, input) = (store.team.clone(), store.schema.clone(), chunks(good, 64 * 1024));
    assert_eq!(store.writer.run(move |c| import::import(c, &team, &schema, 0, input)).unwrap(), 3000);
    assert_eq!(count(&store.url), 3000);
    let conn = store.pool.get().unwrap();
    assert_eq!(results::count_for_schema(&*conn, &store.schema).unwrap(), 3000);
}

#[test]
fn results_are_stored_read_counted_and_deleted_on_postgres() {
    let Some(store) = pg_store("postgres_results::crud", 2) else { return };
    let new = |i: i64| NewResult {
        file_name: (i % 2 == 0).then(|| format!("doc-{i}.pdf")),
        created_at: 1000 + i,
        extraction: format!("{{\"n\": {i}, \"s\": \"é\\\"\"}}"),
    };
    let (team, schema) = (store.team.clone(), store.schema.clone());
    let ids =
        store.writer.run(move |c| results::insert_in(c, &team, &schema, (0..3).map(new).collect::<Vec<_>>())).unwrap();
    assert_eq!(ids.len(), 3);
    let conn = store.pool.get().unwrap();
    for (i, id) in ids.iter().enumerate() {
        let r = results::get(&*conn, &store.team, id).unwrap().expect("stored");
        let want = new(i as i64);
        assert_eq!(
            (&r.id, &r.team_id, &r.schema_id, &r.file_name, &r.extraction, r.created_at),
            (id, &store.team, &store.schema, &want.file_name, &want.extraction, want.created_at)
        );
        assert!(r.updated_at > 0);
    }
    // ids no stored one equals, another team's id: nothing, and no error
    assert!(results::get(&*conn, &store.team, &ids[0].to_uppercase()).unwrap().is_none());
    assert!(results::get(&*conn, &store.team, "not-a-uuid").unwrap().is_none());
    assert!(results::get(&*conn, &uuid::Uuid::now_v7().to_string(), &ids[0]).unwrap().is_none());
    assert_eq!(results::count_for_schema(&*conn, &store.schema).unwrap(), 3);
    assert_eq!(results::count_for_schema(&*conn, "nope").unwrap(), 0);
    assert_eq!(results::count_for_export(&*conn, &store.schema, 1001, 1002).unwrap(), 2);
    assert_eq!(results::count_for_export(&*conn, &store.schema, 1003, 2000).unwrap(), 0);

    let (team, id) = (store.team.clone(), ids[1].clone());
    let deleted = move |c: &dyn Sql| results::delete(c, &team, &id);
    assert!(store.writer.run(deleted.clone()).unwrap());
    assert!(!store.writer.run(deleted).unwrap(), "deleted once");
    assert!(results::get(&*conn, &store.team, &ids[1]).unwrap().is_none());
    assert_eq!(results::count_for_schema(&*conn, &store.schema).unwrap(), 2);
}

/// More rows than one fetch of the cursor, most sharing a createdAt (ties go by id): every
/// row of the range once, in (createdAt, id) order; `Ok(false)` stops, also after a fetch; a
/// result stored while an export reads is not in it (one snapshot).
#[test]
fn the_export_cursor_on_postgres_reads_every_row_once_in_order() {
    let Some(store) = pg_store("postgres_results::cursor", 3) else { return };
    let rows: Vec<NewResult> = (0..12_000)
        .map(|i| NewResult { file_name: None, created_at: 10 + (i % 5), extraction: format!("{{\"n\": {i}}}") })
        .collect();
    let (team, schema) = (store.team.clone(), store.schema.clone());
    store.writer.run(move |c| results::insert_in(c, &team, &schema, rows)).unwrap();
    let expected: Vec<String> = pg_client(&store.url)
        .query("SELECT id FROM results WHERE created_at BETWEEN 11 AND 14 ORDER BY created_at, id", &[])
        .unwrap()
        .iter()
        .map(|r| r.get::<_, uuid::Uuid>(0).to_string())
        .collect();
    assert_eq!(expected.len(), 9600);

    let conn = store.pool.get().unwrap();
    let mut got = Vec::new();
    let mut stored_meanwhile = false;
    results::stream_for_export::<DbError>(&*conn, &store.schema, 11, 14, |r| {
        if !stored_meanwhile {
            stored_meanwhile = true;
            let (team, schema) = (store.team.clone(), store.schema.clone());
            let late = NewResult { file_name: None, created_at: 14, extraction: "{}".into() };
            store.writer.run(move |c| results::insert_in(c, &team, &schema, [late]))?;
        }
        got.push(r.id.to_string());
        Ok(true)
    })
    .unwrap();
    assert_eq!(got.len(), expected.len(), "the result stored meanwhile is not read");
    assert!(got == expected, "every result once, in createdAt then id order");

    let mut seen = 0;
    results::stream_for_export::<DbError>(&*conn, &store.schema, 11, 14, |_| {
        seen += 1;
        Ok(seen < 5003)
    })
    .unwrap();
    assert_eq!(seen, 5003, "Ok(false) stops, also after the first fetch");
    // the connection is back out of the export's transaction
    assert_eq!(results::count_for_export(&*conn, &store.schema, 11, 14).unwrap(), 9601);
}

/// `import` and `export` with `--database-url postgres://…`: the import is stored (all or
/// nothing: a bad line stores none), and the export writes the bytes the same command writes
/// for the same rows on SQLite.
#[test]
fn import_and_export_commands_work_on_postgres() {
    let Some(store) = pg_store("postgres_results::cli", 2) else { return };
    let tmp = tempfile::tempdir().unwrap();
    let (_, nd) = invoices(2000, 9);
    let file = tmp.path().join("results.ndjson");
    std::fs::write(&file, &nd).unwrap();
    let data_dir = tmp.path().join("data");
    let on_pg = |args: &[&str]| {
        bin().args(["--database-url", &store.url]).args(args).arg("--data-dir").arg(&data_dir).output().unwrap()
    };
    let out = on_pg(&["import", "--schema", &store.schema, file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("Imported 2000 results into schema 'Invoices'"), "{}", text(&out.stderr));
    let count = || -> i64 { pg_client(&store.url).query_one("SELECT count(*) FROM results", &[]).unwrap().get(0) };
    assert_eq!(count(), 2000);

    let bad = tmp.path().join("bad.ndjson");
    std::fs::write(&bad, format!("{nd}{{\"extraction\": 5}}\n")).unwrap();
    let out = on_pg(&["import", "--schema", &store.schema, bad.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("line 2001") && text(&out.stderr).contains("nothing was imported"));
    assert_eq!(count(), 2000, "a bad line stores nothing");
    let out = on_pg(&["import", "--schema", &uuid::Uuid::now_v7().to_string(), file.to_str().unwrap()]);
    assert!(!out.status.success() && text(&out.stderr).contains("no schema with id"), "{}", text(&out.stderr));

    let export = ["export", "--schema", &store.schema, "--start", "2024-01-01", "--end", "2024-12-31"];
    let from_pg = on_pg(&export);
    assert!(from_pg.status.success(), "{}", text(&from_pg.stderr));
    let records = csv::Reader::from_reader(&from_pg.stdout[..]).records().collect::<Result<Vec<_>, _>>().unwrap().len();
    assert_eq!(records, 2000, "every result");
    let lite_dir = tmp.path().join("lite");
    std::fs::create_dir(&lite_dir).unwrap();
    drop(sqlite_mirror(&store, &lite_dir.join("exports.db"), true));
    let from_lite = bin().args(export).arg("--data-dir").arg(&lite_dir).output().unwrap();
    assert!(from_lite.status.success(), "{}", text(&from_lite.stderr));
    assert!(from_pg.stdout == from_lite.stdout, "the export on PostgreSQL writes what it writes on SQLite");
}
