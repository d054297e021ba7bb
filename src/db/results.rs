//! Extraction results: one JSON object per document, kept exactly as sent.

use super::sql::{args, Arg, Pg, Sql};
use postgres::binary_copy::BinaryCopyInWriter;
use postgres::types::{FromSql, Type};
use rusqlite::{params, Connection, Row, TransactionBehavior};

use super::ids::{self, key, key_to_store};
use super::{list_page, DbResult, ListSource};
use crate::domain::list::ListQuery;
pub use crate::domain::result::NewResult;

/// A stored result, whole, as the results API answers it.
#[derive(Debug, Clone)]
pub struct ResultRecord {
    pub id: String,
    pub team_id: String,
    pub schema_id: String,
    pub file_name: Option<String>,
    /// The extraction's JSON text (an object). Empty when a list did not ask for it.
    pub extraction: String,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A result read through the seam (either database).
fn record(r: &super::sql::Row) -> DbResult<ResultRecord> {
    Ok(ResultRecord {
        id: r.text(0)?,
        team_id: r.text(1)?,
        schema_id: r.text(2)?,
        file_name: r.opt_text(3)?,
        extraction: r.text(4)?,
        created_at: r.int(5)?,
        updated_at: r.int(6)?,
    })
}

fn from_row(r: &Row) -> rusqlite::Result<ResultRecord> {
    Ok(ResultRecord {
        id: ids::text_at(r, 0)?,
        team_id: ids::text_at(r, 1)?,
        schema_id: ids::text_at(r, 2)?,
        file_name: r.get(3)?,
        extraction: r.get(4)?,
        created_at: r.get(5)?,
        updated_at: r.get(6)?,
    })
}

/// Inserts results of one schema in one transaction: all or none. Returns their ids.
pub fn insert_many(
    conn: &mut Connection,
    team_id: &str,
    schema_id: &str,
    rows: impl IntoIterator<Item = NewResult>,
) -> DbResult<Vec<String>> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let ids = insert_in(&tx, team_id, schema_id, rows)?;
    tx.commit()?;
    Ok(ids)
}

/// Inserts inside a transaction the caller holds.
pub fn insert_in(
    conn: &dyn Sql,
    team_id: &str,
    schema_id: &str,
    rows: impl IntoIterator<Item = NewResult>,
) -> DbResult<Vec<String>> {
    let Some(conn) = conn.lite() else {
        let pg = conn.pg().expect("a connection is SQLite's or PostgreSQL's");
        return pg_copy(pg, team_id, schema_id, |ins| {
            let To::Pg(copy) = &mut ins.to else { unreachable!("pg_copy makes PostgreSQL's") };
            rows.into_iter()
                .map(|r| Ok(copy.insert(r.file_name.as_deref(), r.created_at, &r.extraction)?.to_string()))
                .collect()
        });
    };
    let now = crate::domain::time::now_ms();
    let (team, schema) = (key_to_store(team_id)?, key_to_store(schema_id)?);
    let mut stmt = conn.prepare_cached(INSERT)?;
    let mut ids = Vec::new();
    for r in rows {
        let id = uuid::Uuid::now_v7();
        stmt.execute(params![id.as_bytes(), team, schema, r.file_name, r.extraction, r.created_at, now])?;
        ids.push(id.to_string());
    }
    Ok(ids)
}

const INSERT: &str = "INSERT INTO results (id, team_id, schema_id, file_name, extraction, created_at, updated_at)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";

/// Inserts results of one schema in one transaction, as `fill` hands them to the
/// [`BulkInserter`]: committed when `fill` returns `Ok`, rolled back (nothing stored) when it
/// returns `Err` or panics. On SQLite the write lock is taken at the first insert, not
/// before, and held until the end. Inside a transaction the caller holds (the writer's), it
/// adds to that one and leaves the commit to the caller.
///
/// On PostgreSQL the rows go through one `COPY … FROM STDIN` (binary format) streamed as
/// `fill` hands them over: one statement, so all or nothing even outside a transaction, and
/// never more than the driver's few KiB of rows buffered. A `fill` that fails abandons the
/// `COPY` (nothing stored); the caller's transaction is then rolled back by its owner.
pub fn insert_streamed<T, E: From<super::DbError>>(
    conn: &dyn Sql,
    team_id: &str,
    schema_id: &str,
    fill: impl FnOnce(&mut BulkInserter<'_>) -> Result<T, E>,
) -> Result<T, E> {
    let Some(conn) = conn.lite() else {
        let pg = conn.pg().expect("a connection is SQLite's or PostgreSQL's");
        return pg_copy(pg, team_id, schema_id, fill);
    };
    let mut ins = BulkInserter {
        to: To::Lite(LiteRows {
            conn,
            team_id: key_to_store(team_id).map_err(|e| E::from(e.into()))?,
            schema_id: key_to_store(schema_id).map_err(|e| E::from(e.into()))?,
            now: crate::domain::time::now_ms(),
            stmt: None,
            open: OpenTransaction(conn, false),
        }),
        count: 0,
    };
    let out = fill(&mut ins)?;
    let To::Lite(mut lite) = ins.to else { unreachable!("made SQLite's above") };
    lite.stmt = None;
    if lite.open.1 {
        if let Err(e) = conn.execute_batch("COMMIT") {
            // the guard rolls back a transaction COMMIT left open (e.g. SQLITE_BUSY)
            return Err(E::from(e.into()));
        }
        lite.open.1 = false;
    }
    Ok(out)
}

/// PostgreSQL's bulk insert: the rows of `results` in `COPY`'s binary format.
const COPY: &str = "COPY results (id, team_id, schema_id, file_name, extraction, created_at, updated_at)
     FROM STDIN (FORMAT binary)";
const COPY_TYPES: [Type; 7] = [Type::UUID, Type::UUID, Type::UUID, Type::TEXT, Type::TEXT, Type::INT8, Type::INT8];

/// Runs `fill` with a [`BulkInserter`] writing to a `COPY` into `results` open on `pg`, and
/// completes the `COPY` when `fill` returns `Ok`; an `Err` (or a panic) drops it unfinished,
/// which aborts it: nothing is stored.
fn pg_copy<T, E: From<super::DbError>>(
    pg: &Pg,
    team_id: &str,
    schema_id: &str,
    fill: impl FnOnce(&mut BulkInserter<'_>) -> Result<T, E>,
) -> Result<T, E> {
    let db = |e: postgres::Error| E::from(super::DbError::from(e));
    let team = key_to_store(team_id).map_err(|e| E::from(e.into()))?;
    let schema = key_to_store(schema_id).map_err(|e| E::from(e.into()))?;
    let mut client = pg.client();
    let copy = client.copy_in(COPY).map_err(db)?;
    let mut ins = BulkInserter {
        to: To::Pg(PgRows {
            copy: BinaryCopyInWriter::new(copy, &COPY_TYPES),
            team: uuid::Uuid::from_bytes(team),
            schema: uuid::Uuid::from_bytes(schema),
            now: crate::domain::time::now_ms(),
        }),
        count: 0,
    };
    let out = fill(&mut ins)?;
    let To::Pg(rows) = ins.to else { unreachable!("made PostgreSQL's above") };
    rows.copy.finish().map_err(db)?;
    Ok(out)
}

/// Rolls back, when dropped, a transaction still open.
struct OpenTransaction<'c>(&'c Connection, bool);

impl Drop for OpenTransaction<'_> {
    fn drop(&mut self) {
        if self.1 && !self.0.is_autocommit() {
            let _ = self.0.execute_batch("ROLLBACK");
        }
    }
}

/// Inserts the rows of one bulk transaction (see [`insert_streamed`]): on SQLite with one
/// prepared statement whose team, schema and `updatedAt` are bound once, on PostgreSQL into
/// one `COPY`.
pub struct BulkInserter<'c> {
    to: To<'c>,
    count: u64,
}

enum To<'c> {
    Lite(LiteRows<'c>),
    Pg(PgRows<'c>),
}

struct LiteRows<'c> {
    conn: &'c Connection,
    team_id: [u8; 16],
    schema_id: [u8; 16],
    now: i64,
    stmt: Option<rusqlite::CachedStatement<'c>>,
    open: OpenTransaction<'c>,
}

struct PgRows<'c> {
    copy: BinaryCopyInWriter<'c>,
    team: uuid::Uuid,
    schema: uuid::Uuid,
    now: i64,
}

impl BulkInserter<'_> {
    /// Stores one result under a new UUIDv7.
    pub fn insert(&mut self, file_name: Option<&str>, created_at: i64, extraction: &str) -> DbResult<()> {
        match &mut self.to {
            To::Lite(rows) => rows.insert(file_name, created_at, extraction)?,
            To::Pg(rows) => {
                rows.insert(file_name, created_at, extraction)?;
            }
        }
        self.count += 1;
        Ok(())
    }

    /// Results inserted so far.
    pub fn count(&self) -> u64 {
        self.count
    }
}

impl LiteRows<'_> {
    fn insert(&mut self, file_name: Option<&str>, created_at: i64, extraction: &str) -> DbResult<()> {
        let stmt = match &mut self.stmt {
            Some(s) => s,
            None => {
                // on its own (the CLI) the import is one transaction; on the writer it is
                // part of the writer's
                if self.conn.is_autocommit() {
                    self.conn.execute_batch("BEGIN IMMEDIATE")?;
                    self.open.1 = true;
                }
                let mut s = self.conn.prepare_cached(INSERT)?;
                s.raw_bind_parameter(2, self.team_id)?;
                s.raw_bind_parameter(3, self.schema_id)?;
                s.raw_bind_parameter(7, self.now)?;
                self.stmt.insert(s)
            }
        };
        stmt.raw_bind_parameter(1, uuid::Uuid::now_v7().as_bytes())?;
        stmt.raw_bind_parameter(4, file_name)?;
        stmt.raw_bind_parameter(5, extraction)?;
        stmt.raw_bind_parameter(6, created_at)?;
        stmt.raw_execute()?;
        Ok(())
    }
}

impl PgRows<'_> {
    /// Adds one row to the `COPY`; its new id.
    fn insert(&mut self, file_name: Option<&str>, created_at: i64, extraction: &str) -> DbResult<uuid::Uuid> {
        let id = uuid::Uuid::now_v7();
        self.copy.write(&[&id, &self.team, &self.schema, &file_name, &extraction, &created_at, &self.now])?;
        Ok(id)
    }
}

/// The result `id` of the team; `None` when there is none (also for an id that is not a
/// UUID).
pub fn get(conn: &dyn Sql, team_id: &str, id: &str) -> DbResult<Option<ResultRecord>> {
    // an id no stored one equals (not a UUID, or not in the API's form) finds nothing
    if key(id).is_none() || key(team_id).is_none() {
        return Ok(None);
    }
    conn.opt(
        "SELECT id, team_id, schema_id, file_name, extraction, created_at, updated_at
         FROM results WHERE id = ?1 AND team_id = ?2",
        args![Arg::Key(id), Arg::Key(team_id)],
        record,
    )
}

/// Deletes the result `id` of the team; false when there is none.
pub fn delete(conn: &dyn Sql, team_id: &str, id: &str) -> DbResult<bool> {
    if key(id).is_none() || key(team_id).is_none() {
        return Ok(false);
    }
    Ok(conn.exec("DELETE FROM results WHERE id = ?1 AND team_id = ?2", args![Arg::Key(id), Arg::Key(team_id)])? > 0)
}

/// How many results a schema has.
pub fn count_for_schema(conn: &dyn Sql, schema_id: &str) -> DbResult<i64> {
    if key(schema_id).is_none() {
        return Ok(0);
    }
    conn.one("SELECT COUNT(*) FROM results WHERE schema_id = ?1", args![Arg::Key(schema_id)], |r| r.int(0))
}

pub fn list(
    conn: &dyn Sql,
    team_id: &str,
    schema_id: Option<&str>,
    with_extraction: bool,
    q: &ListQuery,
    counts: Option<&super::counts::ListCounts>,
) -> DbResult<(Vec<ResultRecord>, u64)> {
    let columns = if with_extraction {
        "id, team_id, schema_id, file_name, extraction, created_at, updated_at"
    } else {
        "id, team_id, schema_id, file_name, '', created_at, updated_at"
    };
    let src = ListSource {
        table: "results",
        from: "results",
        team_column: "team_id",
        columns,
        prefix: "",
        search: &["file_name"],
        // results are never updated
        moving: &[],
        // no index on updated_at: see the README's benchmark notes
        indexed: &["created_at"],
        binary_ids: true,
    };
    let Some(schema_id) = schema_id else { return list_page(conn, &src, team_id, q, counts, list_row) };
    // A schema's results all belong to the schema's team (they are stored for it), so once the
    // schema is known to be this team's, `schema_id` alone selects them and the count and the
    // page read the (schema_id, created_at, id) index only. (PostgreSQL's ids are `uuid`s: a
    // text that is not one names no schema there.)
    let owned = (conn.lite().is_some() || (key(schema_id).is_some() && key(team_id).is_some()))
        && conn
            .opt("SELECT 1 FROM schemas WHERE id = ?1 AND team_id = ?2", super::sql::args![schema_id, team_id], |_| {
                Ok(())
            })?
            .is_some();
    if !owned {
        return Ok((vec![], 0));
    }
    let by_schema = ListSource { team_column: "schema_id", ..src };
    list_page(conn, &by_schema, schema_id, q, counts, list_row)
}

/// A row of [`list`]: SQLite's read by `from_row` (its 16-byte ids), PostgreSQL's through the
/// seam's conversions (`uuid` ids as text).
fn list_row(r: &super::sql::Row) -> DbResult<ResultRecord> {
    match r {
        super::sql::Row::Lite(r) => Ok(from_row(r)?),
        r => record(r),
    }
}

/// One result as an export reads it, borrowed from the SQLite cursor (valid until the
/// next row is read).
pub struct ExportSourceRow<'a> {
    /// Stored as 16 bytes: formatted as text by the export's formatting threads, not by the
    /// one thread reading the cursor.
    pub id: uuid::Uuid,
    pub file_name: Option<&'a str>,
    pub created_at: i64,
    /// The stored JSON text, not yet checked to be UTF-8: the export's formatting threads
    /// check it, in parallel, so the one thread reading the cursor does not (about a tenth of
    /// its time).
    pub extraction: &'a [u8],
}

/// Results read per query of [`stream_for_export`].
const EXPORT_CHUNK: i64 = 4096;

/// Results of `schema_id` created in `start..=end` (both in ms): an export's total, counted
/// from the `results_schema_created` index alone (no result row is read).
pub fn count_for_export(conn: &dyn Sql, schema_id: &str, start: i64, end: i64) -> super::DbResult<u64> {
    let Some(schema) = key(schema_id) else { return Ok(0) };
    let Some(conn) = conn.lite() else {
        let n = conn.one(
            "SELECT COUNT(*) FROM results WHERE schema_id = ?1 AND created_at >= ?2 AND created_at <= ?3",
            args![Arg::Key(schema_id), start, end],
            |r| r.int(0),
        )?;
        return Ok(n.max(0) as u64);
    };
    let n: i64 = conn.query_row(
        "SELECT COUNT(*) FROM results INDEXED BY results_schema_created
         WHERE schema_id = ?1 AND created_at >= ?2 AND created_at <= ?3",
        params![schema, start, end],
        |r| r.get(0),
    )?;
    Ok(n.max(0) as u64)
}

/// Streams the results of a schema whose `createdAt` is in `[start, end]`, ordered by
/// createdAt then id, into `each`, one at a time from the SQLite cursor, without copying
/// them. `each` returns `Ok(false)` to stop early.
///
/// Read in chunks of `EXPORT_CHUNK` rows, each its own short read transaction that goes on
/// after the last (createdAt, id) seen (a seek in the `(schema_id, created_at, id)` index): a
/// long export then never holds one snapshot for its whole run, which would keep the WAL from
/// being checkpointed past it and let the WAL grow for as long as exports overlap. A result
/// stored while an export runs is in the file if its place in that order is still ahead.
pub fn stream_for_export<E: From<super::DbError>>(
    conn: &dyn Sql,
    schema_id: &str,
    start: i64,
    end: i64,
    mut each: impl FnMut(ExportSourceRow) -> Result<bool, E>,
) -> Result<(), E> {
    let Some(conn) = conn.lite() else {
        let pg = conn.pg().expect("a connection is SQLite's or PostgreSQL's");
        return pg_stream(pg, schema_id, start, end, each);
    };
    let db = |e: rusqlite::Error| E::from(super::DbError::from(e));
    fn text<'r>(r: &'r Row<'_>, i: usize) -> rusqlite::Result<Option<&'r str>> {
        let v = r.get_ref(i)?;
        v.as_str_or_null().map_err(|e| rusqlite::Error::FromSqlConversionFailure(i, v.data_type(), Box::new(e)))
    }
    fn bytes<'r>(r: &'r Row<'_>, i: usize) -> rusqlite::Result<Option<&'r [u8]>> {
        let v = r.get_ref(i)?;
        v.as_bytes_or_null().map_err(|e| rusqlite::Error::FromSqlConversionFailure(i, v.data_type(), Box::new(e)))
    }
    let missing = |i: usize| rusqlite::Error::InvalidColumnType(i, "NULL".into(), rusqlite::types::Type::Null);
    let Some(schema) = key(schema_id) else { return Ok(()) };
    // the last (created_at, id) read
    let mut last: Option<(i64, uuid::Uuid)> = None;
    loop {
        let mut stmt = match &last {
            None => conn.prepare_cached(
                "SELECT id, file_name, created_at, extraction FROM results
                 WHERE schema_id = ?1 AND created_at >= ?2 AND created_at <= ?3
                 ORDER BY created_at, id LIMIT ?4",
            ),
            Some(_) => conn.prepare_cached(
                "SELECT id, file_name, created_at, extraction FROM results
                 WHERE schema_id = ?1 AND (created_at, id) > (?2, ?5) AND created_at <= ?3
                 ORDER BY created_at, id LIMIT ?4",
            ),
        }
        .map_err(db)?;
        let mut rows = match &last {
            None => stmt.query(params![schema, start, end, EXPORT_CHUNK]),
            Some((at, id)) => stmt.query(params![schema, at, end, EXPORT_CHUNK, id.as_bytes()]),
        }
        .map_err(db)?;
        let mut read = 0;
        let mut next = last.take().unwrap_or_default();
        while let Some(r) = rows.next().map_err(db)? {
            let row = ExportSourceRow {
                id: ids::uuid_at(r, 0).map_err(db)?,
                file_name: text(r, 1).map_err(db)?,
                created_at: r.get(2).map_err(db)?,
                extraction: bytes(r, 3).map_err(db)?.ok_or_else(|| db(missing(3)))?,
            };
            read += 1;
            next = (row.created_at, row.id);
            if !each(row)? {
                return Ok(());
            }
        }
        if read < EXPORT_CHUNK {
            return Ok(());
        }
        last = Some(next);
    }
}

/// Rows fetched at a time by [`pg_stream`].
const PG_FETCH: i32 = 5000;

/// [`stream_for_export`] on PostgreSQL: one query in a `REPEATABLE READ READ ONLY`
/// transaction (one snapshot for the whole export: a result stored meanwhile is not in the
/// file, and no lock is taken), read through a cursor [`PG_FETCH`] rows at a time, so that
/// memory holds one fetch whatever the export's size. `pg` must be a plain connection (a
/// pooled read one), not inside a transaction already.
///
/// The cursor is the protocol's own (a portal: `Bind` once, then `Execute` with a row limit),
/// which is what `DECLARE c NO SCROLL CURSOR FOR …` + `FETCH 5000 FROM c` do in SQL, without
/// parsing a `FETCH` per round and with the rows in binary form.
fn pg_stream<E: From<super::DbError>>(
    pg: &Pg,
    schema_id: &str,
    start: i64,
    end: i64,
    mut each: impl FnMut(ExportSourceRow) -> Result<bool, E>,
) -> Result<(), E> {
    let db = |e: postgres::Error| E::from(super::DbError::from(e));
    let Some(schema) = key(schema_id).map(uuid::Uuid::from_bytes) else { return Ok(()) };
    let mut client = pg.client();
    let mut tx = client
        .build_transaction()
        .isolation_level(postgres::IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .map_err(db)?;
    let cursor = tx
        .bind(
            "SELECT id, file_name, created_at, extraction FROM results
             WHERE schema_id = $1 AND created_at >= $2 AND created_at <= $3
             ORDER BY created_at, id",
            &[&schema, &start, &end],
        )
        .map_err(db)?;
    loop {
        let rows = tx.query_portal(&cursor, PG_FETCH).map_err(db)?;
        for r in &rows {
            let row = ExportSourceRow {
                id: r.try_get(0).map_err(db)?,
                file_name: r.try_get(1).map_err(db)?,
                created_at: r.try_get(2).map_err(db)?,
                extraction: r.try_get::<_, RawText>(3).map_err(db)?.0,
            };
            if !each(row)? {
                // the read-only transaction is rolled back when dropped
                return Ok(());
            }
        }
        if rows.len() < PG_FETCH as usize {
            break;
        }
    }
    tx.commit().map_err(db)
}

/// A `TEXT` column's bytes as the server sent them. Hand-written (the driver reads text only
/// as a checked `&str`) so that the one thread reading the cursor does not check the
/// extraction is UTF-8: the export's formatting threads do, in parallel, as on SQLite.
struct RawText<'a>(&'a [u8]);

impl<'a> FromSql<'a> for RawText<'a> {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(RawText(raw))
    }

    fn accepts(ty: &Type) -> bool {
        matches!(*ty, Type::TEXT | Type::VARCHAR)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::result::NewResult;

    const S1: &str = "019760a0-0001-7000-8000-000000000051";

    /// Across chunk boundaries (many results sharing one createdAt, ties ordered by id), every
    /// result in the range comes exactly once, in order; the range's ends hold; stopping early
    /// stops.
    #[test]
    fn the_chunked_stream_reads_every_result_once_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let pool = crate::db::open(&dir.path().join("db.sqlite"), 2, std::time::Duration::from_secs(5)).unwrap();
        let mut conn = pool.get().unwrap();
        let team = crate::db::keys::create_team(&conn, "t").unwrap();
        let schema = crate::db::schemas::SchemaRow {
            id: S1.into(),
            team_id: team.id.clone(),
            name: "S".into(),
            description: None,
            definition: serde_json::from_str(r#"{"fields": [{"key": "n", "label": "N", "type": "number"}]}"#).unwrap(),
            created_at: 0,
            updated_at: 0,
        };
        crate::db::schemas::insert(&conn, &schema).unwrap();
        // createdAt 10..14, so every chunk boundary falls among equal times; 11..14 is 2.4 chunks
        let count = (EXPORT_CHUNK * 3) as usize;
        let rows = (0..count).map(|i| NewResult {
            file_name: None,
            created_at: 10 + (i % 5) as i64,
            extraction: format!("{{\"n\": {i}}}"),
        });
        crate::db::results::insert_many(&mut conn, &team.id, S1, rows).unwrap();
        let expected: Vec<String> = conn
            .prepare("SELECT id FROM results WHERE created_at BETWEEN 11 AND 14 ORDER BY created_at, id")
            .unwrap()
            .query_map([], |r| super::ids::text_at(r, 0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert!(expected.len() as i64 > 2 * EXPORT_CHUNK);
        let mut got = Vec::new();
        stream_for_export::<crate::db::DbError>(&conn, S1, 11, 14, |r| {
            got.push(r.id.to_string());
            Ok(true)
        })
        .unwrap();
        assert_eq!(got.len(), expected.len());
        assert!(got == expected, "every result once, in createdAt then id order");

        let mut seen = 0;
        stream_for_export::<crate::db::DbError>(&conn, S1, 11, 14, |_| {
            seen += 1;
            Ok(seen < EXPORT_CHUNK + 3)
        })
        .unwrap();
        assert_eq!(seen, EXPORT_CHUNK + 3, "Ok(false) stops, also in a later chunk");
    }
}
