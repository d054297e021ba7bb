//! The seam between the store's queries and its two databases (issue 11).
//!
//! Every function of `db/` takes `&dyn Sql`: a SQLite connection (the writer's, a pooled
//! reader, the import's) or a PostgreSQL transaction or connection. Most queries are one SQL
//! text for both, written in SQLite's form (`?1`, `?2`, …): [`Sql::exec`] and
//! [`Sql::each`] rewrite the placeholders to PostgreSQL's `$1` there. Arguments are
//! [`Arg`]s, read back through [`Row`]; both convert by the column's actual type, so one text
//! serves SQLite's text ids and PostgreSQL's `uuid` ones, SQLite's integers and PostgreSQL's
//! `INTEGER`/`BIGINT`. Where the two dialects differ (upserts, `LIKE`'s case, the job queue's
//! `SKIP LOCKED`, the bulk paths) a function asks [`Sql::lite`] / [`Sql::pg`] and branches.
//!
//! The hot paths on SQLite (the bulk insert, the export scan, list pages) keep their
//! rusqlite code through [`Sql::lite`]; this layer costs them nothing.

use std::cell::{Cell, RefCell, RefMut};

use postgres::types::{IsNull, ToSql, Type};
use rusqlite::types::{ToSqlOutput, ValueRef};

use super::{DbError, DbResult};

/// A query's argument, converted to what the column (or the statement) needs.
#[derive(Debug, Clone, Copy)]
pub enum Arg<'a> {
    Null,
    Int(i64),
    /// Text; on PostgreSQL also a `uuid` where the statement expects one.
    Text(&'a str),
    /// An id stored as its 16 bytes on SQLite (the `results` table's ids, see `ids.rs`), as
    /// `uuid` on PostgreSQL. A text that is not a lowercase UUID is an error.
    Key(&'a str),
    Bytes(&'a [u8]),
}

impl From<i64> for Arg<'_> {
    fn from(v: i64) -> Self {
        Arg::Int(v)
    }
}
impl From<Option<i64>> for Arg<'_> {
    fn from(v: Option<i64>) -> Self {
        v.map_or(Arg::Null, Arg::Int)
    }
}
impl From<bool> for Arg<'_> {
    fn from(v: bool) -> Self {
        Arg::Int(v as i64)
    }
}
impl<'a> From<&'a str> for Arg<'a> {
    fn from(v: &'a str) -> Self {
        Arg::Text(v)
    }
}
impl<'a> From<&'a String> for Arg<'a> {
    fn from(v: &'a String) -> Self {
        Arg::Text(v)
    }
}
impl<'a> From<Option<&'a str>> for Arg<'a> {
    fn from(v: Option<&'a str>) -> Self {
        v.map_or(Arg::Null, Arg::Text)
    }
}
impl<'a> From<&'a Option<String>> for Arg<'a> {
    fn from(v: &'a Option<String>) -> Self {
        v.as_deref().map_or(Arg::Null, Arg::Text)
    }
}
impl<'a> From<&'a [u8]> for Arg<'a> {
    fn from(v: &'a [u8]) -> Self {
        Arg::Bytes(v)
    }
}
impl<'a> From<Option<&'a [u8]>> for Arg<'a> {
    fn from(v: Option<&'a [u8]>) -> Self {
        v.map_or(Arg::Null, Arg::Bytes)
    }
}

/// `args![a, b, c]`: a slice of [`Arg`]s from anything that converts into one.
#[macro_export]
#[doc(hidden)]
macro_rules! sql_args {
    ($($a:expr),* $(,)?) => { &[$($crate::db::sql::Arg::from($a)),*][..] };
}
pub use crate::sql_args as args;

impl rusqlite::ToSql for Arg<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match *self {
            Arg::Null => ToSqlOutput::Borrowed(ValueRef::Null),
            Arg::Int(i) => ToSqlOutput::Borrowed(ValueRef::Integer(i)),
            Arg::Text(s) => ToSqlOutput::Borrowed(ValueRef::Text(s.as_bytes())),
            Arg::Key(s) => ToSqlOutput::Owned(rusqlite::types::Value::Blob(super::ids::key_to_store(s)?.to_vec())),
            Arg::Bytes(b) => ToSqlOutput::Borrowed(ValueRef::Blob(b)),
        })
    }
}

impl ToSql for Arg<'_> {
    fn to_sql(&self, ty: &Type, out: &mut bytes::BytesMut) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match *self {
            Arg::Null => Ok(IsNull::Yes),
            Arg::Int(i) => match *ty {
                Type::INT4 => i32::try_from(i)?.to_sql(ty, out),
                Type::INT2 => i16::try_from(i)?.to_sql(ty, out),
                Type::BOOL => (i != 0).to_sql(ty, out),
                Type::TEXT | Type::VARCHAR => i.to_string().to_sql(ty, out),
                _ => i.to_sql(ty, out),
            },
            Arg::Text(s) | Arg::Key(s) => match *ty {
                Type::UUID => uuid::Uuid::try_parse(s)?.to_sql(ty, out),
                _ => s.to_sql(ty, out),
            },
            Arg::Bytes(b) => b.to_sql(ty, out),
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    postgres::types::to_sql_checked!();
}

/// One row of a query's answer, on either database.
pub enum Row<'r> {
    Lite(&'r rusqlite::Row<'r>),
    Pg(&'r postgres::Row),
}

impl Row<'_> {
    /// Column `i`, an integer (`NULL` is an error).
    pub fn int(&self, i: usize) -> DbResult<i64> {
        self.opt_int(i)?.ok_or_else(|| self.null(i))
    }

    /// Column `i`, an integer or `NULL`.
    pub fn opt_int(&self, i: usize) -> DbResult<Option<i64>> {
        match self {
            Row::Lite(r) => Ok(r.get(i)?),
            Row::Pg(r) => Ok(match *r.columns()[i].type_() {
                Type::INT4 => r.try_get::<_, Option<i32>>(i)?.map(i64::from),
                Type::INT2 => r.try_get::<_, Option<i16>>(i)?.map(i64::from),
                Type::BOOL => r.try_get::<_, Option<bool>>(i)?.map(i64::from),
                _ => r.try_get::<_, Option<i64>>(i)?,
            }),
        }
    }

    /// Column `i`, a text (`NULL` is an error); a `uuid` (PostgreSQL) or a 16-byte id
    /// (SQLite's results) as its lowercase hyphenated text.
    pub fn text(&self, i: usize) -> DbResult<String> {
        self.opt_text(i)?.ok_or_else(|| self.null(i))
    }

    /// Column `i`, a text or `NULL` (see [`Row::text`]).
    pub fn opt_text(&self, i: usize) -> DbResult<Option<String>> {
        match self {
            Row::Lite(r) => match r.get_ref(i)? {
                ValueRef::Null => Ok(None),
                ValueRef::Blob(_) => Ok(Some(super::ids::text_at(r, i)?)),
                _ => Ok(Some(r.get(i)?)),
            },
            Row::Pg(r) => Ok(match *r.columns()[i].type_() {
                Type::UUID => r.try_get::<_, Option<uuid::Uuid>>(i)?.map(|u| u.to_string()),
                _ => r.try_get::<_, Option<String>>(i)?,
            }),
        }
    }

    /// Column `i`, bytes or `NULL`.
    pub fn opt_bytes(&self, i: usize) -> DbResult<Option<Vec<u8>>> {
        match self {
            Row::Lite(r) => Ok(r.get(i)?),
            Row::Pg(r) => Ok(r.try_get(i)?),
        }
    }

    fn null(&self, i: usize) -> DbError {
        match self {
            Row::Lite(_) => {
                DbError::from(rusqlite::Error::InvalidColumnType(i, "NOT NULL".into(), rusqlite::types::Type::Null))
            }
            Row::Pg(r) => DbError::Corrupt {
                table: "?",
                id: String::new(),
                what: format!("column {} is NULL", r.columns()[i].name()),
            },
        }
    }
}

/// A connection or transaction of either database; see the module's comment.
pub trait Sql {
    /// The SQLite connection, for SQLite's own code paths.
    fn lite(&self) -> Option<&rusqlite::Connection>;
    /// The PostgreSQL transaction or connection, for PostgreSQL's own code paths.
    fn pg(&self) -> Option<&Pg>;

    /// Runs a statement (placeholders `?1`, `?2`, …); the number of rows it changed.
    fn exec(&self, sql: &str, args: &[Arg]) -> DbResult<u64> {
        if let Some(c) = self.lite() {
            return Ok(c.prepare_cached(sql)?.execute(rusqlite::params_from_iter(args))? as u64);
        }
        let pg = self.pg().expect("a connection is SQLite's or PostgreSQL's");
        pg.execute(sql, args)
    }

    /// Runs a query and calls `f` with each row of its answer, in order.
    fn each(&self, sql: &str, args: &[Arg], f: &mut dyn FnMut(&Row) -> DbResult<()>) -> DbResult<()> {
        if let Some(c) = self.lite() {
            let mut stmt = c.prepare_cached(sql)?;
            let mut rows = stmt.query(rusqlite::params_from_iter(args))?;
            while let Some(r) = rows.next()? {
                f(&Row::Lite(r))?;
            }
            return Ok(());
        }
        let pg = self.pg().expect("a connection is SQLite's or PostgreSQL's");
        for r in pg.query(sql, args)? {
            f(&Row::Pg(&r))?;
        }
        Ok(())
    }
}

impl dyn Sql + '_ {
    /// Every row of a query's answer, each made into a `T` by `f`.
    pub fn rows<T>(&self, sql: &str, args: &[Arg], f: impl Fn(&Row) -> DbResult<T>) -> DbResult<Vec<T>> {
        let mut out = Vec::new();
        self.each(sql, args, &mut |r| {
            out.push(f(r)?);
            Ok(())
        })?;
        Ok(out)
    }

    /// The first row of a query's answer made into a `T`, or `None` when there is none.
    pub fn opt<T>(&self, sql: &str, args: &[Arg], f: impl Fn(&Row) -> DbResult<T>) -> DbResult<Option<T>> {
        let mut out = None;
        self.each(sql, args, &mut |r| {
            if out.is_none() {
                out = Some(f(r)?);
            }
            Ok(())
        })?;
        Ok(out)
    }

    /// The first row of a query's answer made into a `T`; no row is an error.
    pub fn one<T>(&self, sql: &str, args: &[Arg], f: impl Fn(&Row) -> DbResult<T>) -> DbResult<T> {
        self.opt(sql, args, f)?.ok_or_else(|| DbError::from(rusqlite::Error::QueryReturnedNoRows))
    }
}

impl Sql for rusqlite::Connection {
    fn lite(&self) -> Option<&rusqlite::Connection> {
        Some(self)
    }
    fn pg(&self) -> Option<&Pg> {
        None
    }
}

impl Sql for rusqlite::Transaction<'_> {
    fn lite(&self) -> Option<&rusqlite::Connection> {
        Some(self)
    }
    fn pg(&self) -> Option<&Pg> {
        None
    }
}

impl Sql for r2d2::PooledConnection<r2d2_sqlite::SqliteConnectionManager> {
    fn lite(&self) -> Option<&rusqlite::Connection> {
        Some(self)
    }
    fn pg(&self) -> Option<&Pg> {
        None
    }
}

/// A pooled PostgreSQL connection, usable through `&self` like SQLite's connection; inside a
/// transaction once [`Pg::begin`] ran (every write, and reads that need one snapshot). A
/// transaction still open when it is dropped (its work failed or panicked) is rolled back.
pub struct Pg {
    conn: RefCell<super::pg::PgConn>,
    in_tx: Cell<bool>,
}

impl Sql for Pg {
    fn lite(&self) -> Option<&rusqlite::Connection> {
        None
    }
    fn pg(&self) -> Option<&Pg> {
        Some(self)
    }
}

impl Pg {
    pub fn new(conn: super::pg::PgConn) -> Pg {
        Pg { conn: RefCell::new(conn), in_tx: Cell::new(false) }
    }

    /// Starts a transaction with `begin` (`BEGIN`, or `BEGIN ISOLATION LEVEL …`, and any
    /// statements to run first in it).
    pub fn begin(&mut self, begin: &str) -> DbResult<()> {
        self.conn.get_mut().batch_execute(begin)?;
        self.in_tx.set(true);
        Ok(())
    }

    /// Commits the transaction [`Pg::begin`] started.
    pub fn commit(&mut self) -> DbResult<()> {
        self.in_tx.set(false);
        Ok(self.conn.get_mut().batch_execute("COMMIT")?)
    }

    /// Whether a transaction is open on this connection (a write's, or a read snapshot's).
    pub fn in_transaction(&self) -> bool {
        self.in_tx.get()
    }

    /// Runs `f` in a `REPEATABLE READ READ ONLY` transaction on a connection that had none:
    /// every statement of `f` sees the database as it was at the first one. Committed after
    /// `f`, rolled back when `f` fails or panics, so that the connection goes back to its pool
    /// outside any transaction.
    pub fn read_snapshot<T>(&self, f: impl FnOnce() -> DbResult<T>) -> DbResult<T> {
        struct Open<'a>(&'a Pg);
        impl Drop for Open<'_> {
            fn drop(&mut self) {
                if self.0.in_tx.replace(false) {
                    // a connection whose rollback fails is broken: the pool checks it before reuse
                    let _ = self.0.conn.borrow_mut().batch_execute("ROLLBACK");
                }
            }
        }
        self.conn.borrow_mut().batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")?;
        self.in_tx.set(true);
        let _open = Open(self);
        let out = f()?;
        // committed here, so the guard has nothing to roll back
        self.in_tx.set(false);
        self.conn.borrow_mut().batch_execute("COMMIT")?;
        Ok(out)
    }

    /// The connection itself, for what the driver offers beyond [`Sql`] (`COPY`, `LISTEN`).
    pub fn client(&self) -> RefMut<'_, super::pg::PgConn> {
        self.conn.borrow_mut()
    }

    pub fn execute(&self, sql: &str, args: &[Arg]) -> DbResult<u64> {
        let sql = placeholders(sql);
        Ok(self.conn.borrow_mut().execute(sql.as_str(), &params(args))?)
    }

    pub fn query(&self, sql: &str, args: &[Arg]) -> DbResult<Vec<postgres::Row>> {
        let sql = placeholders(sql);
        Ok(self.conn.borrow_mut().query(sql.as_str(), &params(args))?)
    }
}

impl Drop for Pg {
    fn drop(&mut self) {
        if self.in_tx.get() {
            // a connection whose rollback fails is broken: the pool checks it before reuse
            let _ = self.conn.get_mut().batch_execute("ROLLBACK");
        }
    }
}

fn params<'a>(args: &'a [Arg<'a>]) -> Vec<&'a (dyn ToSql + Sync)> {
    args.iter().map(|a| a as &(dyn ToSql + Sync)).collect()
}

/// SQLite's `?N` placeholders as PostgreSQL's `$N`. The store's SQL has no `?` inside its
/// string literals.
pub fn placeholders(sql: &str) -> String {
    sql.replace('?', "$")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_rewritten_in_place() {
        assert_eq!(
            placeholders("SELECT a FROM t WHERE b = ?1 AND c = ?12"),
            "SELECT a FROM t WHERE b = $1 AND c = $12"
        );
    }

    #[test]
    fn one_text_reads_and_writes_on_sqlite() {
        let c = rusqlite::Connection::open_in_memory().unwrap();
        c.execute_batch("CREATE TABLE t (id TEXT, n INTEGER, k BLOB)").unwrap();
        let sql: &dyn Sql = &c;
        let id = uuid::Uuid::now_v7().to_string();
        assert_eq!(sql.exec("INSERT INTO t VALUES (?1, ?2, ?3)", args![&id, 7, Arg::Key(&id)]).unwrap(), 1);
        let (a, n, k) = sql.one("SELECT id, n, k FROM t", &[], |r| Ok((r.text(0)?, r.int(1)?, r.text(2)?))).unwrap();
        assert_eq!((a.as_str(), n, k.as_str()), (id.as_str(), 7, id.as_str()));
        assert!(sql.opt("SELECT id FROM t WHERE n = ?1", args![8], |r| r.text(0)).unwrap().is_none());
        assert!(sql.exec("INSERT INTO t VALUES (?1, ?2, ?3)", args![&id, 7, Arg::Key("nope")]).is_err());
    }
}
