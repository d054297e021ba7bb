//! Extraction results: one JSON object per document, kept exactly as sent.

use rusqlite::{params, Connection, OptionalExtension, Row, TransactionBehavior};

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

fn from_row(r: &Row) -> rusqlite::Result<ResultRecord> {
    Ok(ResultRecord {
        id: r.get(0)?,
        team_id: r.get(1)?,
        schema_id: r.get(2)?,
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
    conn: &Connection,
    team_id: &str,
    schema_id: &str,
    rows: impl IntoIterator<Item = NewResult>,
) -> DbResult<Vec<String>> {
    let now = crate::domain::time::now_ms();
    let mut stmt = conn.prepare_cached(INSERT)?;
    let mut ids = Vec::new();
    for r in rows {
        let id = uuid::Uuid::now_v7().to_string();
        stmt.execute(params![id, team_id, schema_id, r.file_name, r.extraction, r.created_at, now])?;
        ids.push(id);
    }
    Ok(ids)
}

const INSERT: &str = "INSERT INTO results (id, team_id, schema_id, file_name, extraction, created_at, updated_at)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";

/// Inserts results of one schema in one transaction, as `fill` hands them to the
/// [`BulkInserter`]: committed when `fill` returns `Ok`, rolled back (nothing stored) when it
/// returns `Err` or panics. The write lock is taken at the first insert, not before, and held
/// until the end. Inside a transaction the caller holds (the writer's), it adds to that one
/// and leaves the commit to the caller.
pub fn insert_streamed<T, E: From<super::DbError>>(
    conn: &Connection,
    team_id: &str,
    schema_id: &str,
    fill: impl FnOnce(&mut BulkInserter<'_>) -> Result<T, E>,
) -> Result<T, E> {
    let mut ins = BulkInserter {
        conn,
        team_id,
        schema_id,
        now: crate::domain::time::now_ms(),
        stmt: None,
        open: OpenTransaction(conn, false),
        count: 0,
    };
    let out = fill(&mut ins)?;
    ins.stmt = None;
    if ins.open.1 {
        if let Err(e) = conn.execute_batch("COMMIT") {
            // the guard rolls back a transaction COMMIT left open (e.g. SQLITE_BUSY)
            return Err(E::from(e.into()));
        }
        ins.open.1 = false;
    }
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

/// Inserts the rows of one bulk transaction (see [`insert_streamed`]) with one prepared
/// statement whose team, schema and `updatedAt` are bound once.
pub struct BulkInserter<'c> {
    conn: &'c Connection,
    team_id: &'c str,
    schema_id: &'c str,
    now: i64,
    stmt: Option<rusqlite::CachedStatement<'c>>,
    open: OpenTransaction<'c>,
    count: u64,
}

impl BulkInserter<'_> {
    /// Stores one result under a new UUIDv7.
    pub fn insert(&mut self, file_name: Option<&str>, created_at: i64, extraction: &str) -> DbResult<()> {
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
        let mut id = [0u8; uuid::fmt::Hyphenated::LENGTH];
        let id = uuid::Uuid::now_v7().hyphenated().encode_lower(&mut id);
        stmt.raw_bind_parameter(1, &*id)?;
        stmt.raw_bind_parameter(4, file_name)?;
        stmt.raw_bind_parameter(5, extraction)?;
        stmt.raw_bind_parameter(6, created_at)?;
        stmt.raw_execute()?;
        self.count += 1;
        Ok(())
    }

    /// Results inserted so far.
    pub fn count(&self) -> u64 {
        self.count
    }
}

pub fn get(conn: &Connection, team_id: &str, id: &str) -> DbResult<Option<ResultRecord>> {
    Ok(conn
        .query_row(
            "SELECT id, team_id, schema_id, file_name, extraction, created_at, updated_at
             FROM results WHERE id = ?1 AND team_id = ?2",
            [id, team_id],
            from_row,
        )
        .optional()?)
}

pub fn delete(conn: &Connection, team_id: &str, id: &str) -> DbResult<bool> {
    Ok(conn.execute("DELETE FROM results WHERE id = ?1 AND team_id = ?2", [id, team_id])? > 0)
}

pub fn list(
    conn: &Connection,
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
    };
    let Some(schema_id) = schema_id else { return list_page(conn, &src, team_id, q, counts, from_row) };
    // A schema's results all belong to the schema's team (they are stored for it), so once the
    // schema is known to be this team's, `schema_id` alone selects them and the count and the
    // page read the (schema_id, created_at, id) index only.
    let owned = conn
        .query_row("SELECT 1 FROM schemas WHERE id = ?1 AND team_id = ?2", [schema_id, team_id], |_| Ok(()))
        .optional()?
        .is_some();
    if !owned {
        return Ok((vec![], 0));
    }
    let by_schema = ListSource { team_column: "schema_id", ..src };
    list_page(conn, &by_schema, schema_id, q, counts, from_row)
}

/// One result as an export reads it, borrowed from the SQLite cursor (valid until the
/// next row is read).
pub struct ExportSourceRow<'a> {
    pub id: &'a str,
    pub file_name: Option<&'a str>,
    pub created_at: i64,
    pub extraction: &'a str,
}

/// Streams the results of a schema whose `createdAt` is in `[start, end]`, ordered by
/// createdAt then id, into `each`, one at a time from the SQLite cursor, without copying
/// them. `each` returns `Ok(false)` to stop early.
pub fn stream_for_export<E: From<super::DbError>>(
    conn: &Connection,
    schema_id: &str,
    start: i64,
    end: i64,
    mut each: impl FnMut(ExportSourceRow) -> Result<bool, E>,
) -> Result<(), E> {
    let db = |e: rusqlite::Error| E::from(super::DbError::from(e));
    fn text<'r>(r: &'r Row<'_>, i: usize) -> rusqlite::Result<Option<&'r str>> {
        let v = r.get_ref(i)?;
        v.as_str_or_null().map_err(|e| rusqlite::Error::FromSqlConversionFailure(i, v.data_type(), Box::new(e)))
    }
    let missing = |i: usize| rusqlite::Error::InvalidColumnType(i, "NULL".into(), rusqlite::types::Type::Null);
    let mut stmt = conn
        .prepare(
            "SELECT id, file_name, created_at, extraction FROM results
             WHERE schema_id = ?1 AND created_at >= ?2 AND created_at <= ?3
             ORDER BY created_at, id",
        )
        .map_err(db)?;
    let mut rows = stmt.query(params![schema_id, start, end]).map_err(db)?;
    while let Some(r) = rows.next().map_err(db)? {
        let row = ExportSourceRow {
            id: text(r, 0).map_err(db)?.ok_or_else(|| db(missing(0)))?,
            file_name: text(r, 1).map_err(db)?,
            created_at: r.get(2).map_err(db)?,
            extraction: text(r, 3).map_err(db)?.ok_or_else(|| db(missing(3)))?,
        };
        if !each(row)? {
            break;
        }
    }
    Ok(())
}
