//! All SQL lives here. One SQLite database in the data folder, in WAL mode, reached through an
//! r2d2 pool. Every function takes a connection; callers run them off the async runtime
//! (`spawn_blocking` or a worker thread) because SQLite calls block.

mod bookmarks;
pub mod counts;
pub mod deliveries;
pub mod exports;
pub mod idempotency;
mod ids;
pub mod keys;
mod list;
mod migrations;
pub mod pg;
mod pool;
pub mod results;
pub mod schemas;
pub mod sql;
pub mod webhooks;
pub(crate) mod writer;

pub use writer::Writer;

use std::path::Path;
use std::time::Duration;

use r2d2_sqlite::SqliteConnectionManager;
use rusqlite::Connection;

pub(crate) use list::{list_page, ListSource};

pub use pool::{Conn, Pool};
pub use sql::Sql;

/// SQLite's connection pool.
pub type LitePool = r2d2::Pool<SqliteConnectionManager>;

/// A database error, sorted by what the caller can do about it. `ApiError::from` maps each
/// to its HTTP answer (503 for `Busy`, `PgUnavailable`, `Pool` and `Interrupted`, 507 for a
/// full disk, 500 for the rest, logged with their cause).
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// Another connection (e.g. an `import` beside the server) held the write lock for
    /// longer than the busy timeout (SQLITE_BUSY / SQLITE_LOCKED). Nothing was changed;
    /// trying again later can succeed.
    #[error("database busy: {0}")]
    Busy(#[source] rusqlite::Error),
    /// The disk is full (SQLITE_FULL). The statement's transaction was rolled back.
    #[error("disk full: {0}")]
    Full(#[source] rusqlite::Error),
    /// Any other SQLite failure.
    #[error("database error: {0}")]
    Sqlite(#[source] rusqlite::Error),
    /// PostgreSQL could not do it now: a serialization failure or deadlock (the transaction
    /// was rolled back), a lock or statement timeout, the server shutting down, out of
    /// connections or memory, or the connection lost or refused. Trying again can succeed.
    #[error("database unavailable: {}", pg::describe(.0))]
    PgUnavailable(#[source] postgres::Error),
    /// PostgreSQL's disk is full (SQLSTATE 53100). The statement's transaction was rolled back.
    #[error("disk full: {}", pg::describe(.0))]
    PgFull(#[source] postgres::Error),
    /// Any other PostgreSQL failure (a malformed database URL among them).
    #[error("database error: {}", pg::describe(.0))]
    Postgres(#[source] postgres::Error),
    /// No pooled connection could be had in time.
    #[error("database unavailable: {0}")]
    Pool(#[from] r2d2::Error),
    /// The database file could not be created or made private.
    #[error("database file: {0}")]
    Io(#[source] std::io::Error),
    /// The write did not happen (the writer stopped, or a write committed together with it
    /// failed); nothing was changed and trying again can succeed.
    #[error("write interrupted: {0}")]
    Interrupted(&'static str),
    /// The database was written by a newer exports-api: its schema version `found` is past
    /// the `known` migrations of this binary, which must not touch it.
    #[error(
        "database error: the database is at schema version {found}, newer than this binary knows ({known}); \
use a newer exports-api"
    )]
    TooNew { found: usize, known: usize },
    /// A stored row holds a value no code writes (an unknown status, unreadable options): the
    /// row is not guessed at but reported, with where it is and what is wrong.
    #[error("corrupt row in {table} (id {id}): {what}")]
    Corrupt { table: &'static str, id: String, what: String },
}

impl From<rusqlite::Error> for DbError {
    fn from(e: rusqlite::Error) -> Self {
        use rusqlite::ErrorCode;
        match e.sqlite_error_code() {
            Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => DbError::Busy(e),
            Some(ErrorCode::DiskFull) => DbError::Full(e),
            _ => DbError::Sqlite(e),
        }
    }
}

impl From<postgres::Error> for DbError {
    fn from(e: postgres::Error) -> Self {
        pg::classify(e)
    }
}

pub type DbResult<T> = Result<T, DbError>;

fn init_connection(c: &mut Connection, busy_timeout: Duration) -> rusqlite::Result<()> {
    c.busy_timeout(busy_timeout)?;
    // WAL is a property of the file: switch once, not on every connection (switching needs a
    // lock another process's long import may hold).
    let mode: String = c.query_row("PRAGMA journal_mode", [], |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        c.execute_batch("PRAGMA journal_mode = WAL;")?;
    }
    c.execute_batch(
        "PRAGMA synchronous = NORMAL;
         PRAGMA foreign_keys = ON;
         PRAGMA temp_store = MEMORY;
         PRAGMA cache_size = -16000;",
    )
}

/// Page size of new databases, in bytes: SQLite's default.
///
/// 64 KiB pages were tried: a bulk import then wrote a sixteenth of the WAL frames (kernel time
/// halved), but every small write commits whole pages, and `POST /v1/exports` (a row and its
/// eight index entries) wrote ~16 times the WAL bytes: 3,805 -> 1,690 req/s with the workers
/// busy, p99 210 ms -> 1.1 s; 16 KiB pages gave 3,023 req/s. The API's writes come first.
pub const PAGE_SIZE: u32 = 4096;

/// Opens (creating if needed) the database file and brings its schema up to date. A write
/// that waits longer than `busy_timeout` for another connection's lock fails with
/// `DbError::Busy`.
///
/// The file is created readable by its owner only (0600) before SQLite opens it; SQLite
/// gives its `-wal` and `-shm` files the database file's mode. An existing database and its
/// `-wal`/`-shm` lose any group and other permissions.
pub fn open(path: &Path, max_size: u32, busy_timeout: Duration) -> DbResult<LitePool> {
    crate::private::create_file_if_missing(path).map_err(DbError::Io)?;
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let mut p = path.as_os_str().to_owned();
        p.push(suffix);
        crate::private::tighten(Path::new(&p)).map_err(DbError::Io)?;
    }
    // Switch a new file to WAL and migrate it on one connection first: the pool opens its
    // connections in parallel, and several switching the mode at once collide.
    {
        let mut first = Connection::open(path)?;
        // The page size of a new database is set before WAL mode or any table writes its
        // first page (an existing database keeps its own size); see PAGE_SIZE.
        first.execute_batch(&format!("PRAGMA page_size = {PAGE_SIZE};"))?;
        init_connection(&mut first, busy_timeout)?;
        migrations::migrate(&mut first)?;
    }
    let manager =
        SqliteConnectionManager::file(path).with_init(move |c: &mut Connection| init_connection(c, busy_timeout));
    let pool = r2d2::Pool::builder()
        .max_size(max_size)
        // every connection waiting out a lock: answer 503 soon after, not half a minute later
        .connection_timeout(busy_timeout + Duration::from_secs(5))
        .build(manager)?;
    Ok(pool)
}

/// Opens a connection of its own for one bulk import from the command line, on a database
/// [`open`] has created and migrated (and whose pool is closed again).
///
/// Its commit is durable on its own: `synchronous = FULL` syncs the WAL at the commit. The
/// commit does not then copy the WAL into the database (no autocheckpoint), nor does closing
/// this connection: for 100k results (115 MB of WAL) that copy and its fsync were about 1 s of
/// the import's 2.1 s. The copy is left to whoever comes next: the server's checkpoint thread
/// when it runs, or else the next `open` of the database, whose first connection checkpoints
/// when it closes.
pub fn open_bulk(path: &Path, busy_timeout: Duration) -> DbResult<Connection> {
    let mut c = Connection::open(path)?;
    init_connection(&mut c, busy_timeout)?;
    c.execute_batch("PRAGMA synchronous = FULL; PRAGMA wal_autocheckpoint = 0;")?;
    c.set_db_config(rusqlite::config::DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, true)?;
    Ok(c)
}

/// `Connection::execute` through the connection's statement cache: SQLite parses the statement
/// once per connection, not at every call (the write path runs the same few statements
/// thousands of times a second under load).
pub(crate) fn execute_cached(c: &Connection, sql: &str, params: impl rusqlite::Params) -> rusqlite::Result<usize> {
    c.prepare_cached(sql)?.execute(params)
}

/// `Connection::query_row` through the statement cache (see [`execute_cached`]).
pub(crate) fn query_row_cached<T>(
    c: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
    f: impl FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
) -> rusqlite::Result<T> {
    c.prepare_cached(sql)?.query_row(params, f)
}

/// `SELECT 1`: the database answers.
pub fn ping(conn: &dyn Sql) -> DbResult<()> {
    conn.one("SELECT 1", &[], |_| Ok(()))
}

/// The size of the database in bytes, for `/metrics`: on SQLite its file and its WAL (two
/// `stat`s of the files this connection has open, wherever `--database-url` put them; 0 for
/// one that is missing), on PostgreSQL `pg_database_size` (the whole database, indexes
/// included).
pub fn database_size(conn: &dyn Sql) -> DbResult<u64> {
    if let Some(c) = conn.lite() {
        let size = |p: &str| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
        return Ok(match c.path().filter(|p| !p.is_empty()) {
            Some(path) => size(path) + size(&format!("{path}-wal")),
            None => 0,
        });
    }
    let n = conn.one("SELECT pg_database_size(current_database())", &[], |r| r.int(0))?;
    Ok(n.max(0) as u64)
}
