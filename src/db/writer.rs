//! The one connection that writes, shared by the API handlers and the export workers.
//!
//! SQLite lets one connection write at a time. When several connections write, the ones that
//! lose sleep in SQLite's busy handler (in steps of up to 100 ms) and a quick `POST` can wait
//! hundreds of milliseconds behind a worker's bookkeeping. Here writes queue on a mutex
//! instead: each starts the moment the one before it ends, and no request of this process
//! sleeps in the busy handler. Reads use the pool and never wait for the writer (WAL).
//! Another process holding the lock (an `exports-api import`) is still waited out up to the
//! busy timeout, then reported as `DbError::Busy`.
//!
//! The write connection does not checkpoint the WAL itself: SQLite would otherwise copy the
//! WAL into the database (and fsync it) inside whichever commit crossed 1,000 pages, and that
//! commit's request would wait for it. A thread of its own checkpoints (PASSIVE: it never
//! blocks the writer) on another connection instead.

use std::path::Path;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use rusqlite::Connection;

use super::DbResult;

/// Handle on the write connection; cheap to clone.
#[derive(Clone)]
pub struct Writer(Arc<Mutex<Connection>>);

impl Writer {
    /// Opens the write connection on a database `super::open` has already created and migrated.
    pub fn open(path: &Path, busy_timeout: Duration) -> DbResult<Writer> {
        let mut conn = Connection::open(path)?;
        super::init_connection(&mut conn, busy_timeout)?;
        conn.execute_batch("PRAGMA wal_autocheckpoint = 0;")?;
        let mut checkpointer = Connection::open(path)?;
        super::init_connection(&mut checkpointer, busy_timeout)?;
        let writer = Arc::new(Mutex::new(conn));
        let alive = Arc::downgrade(&writer);
        std::thread::Builder::new()
            .name("db-checkpoint".into())
            .spawn(move || checkpoint_loop(checkpointer, alive))
            .map_err(super::DbError::Io)?;
        Ok(Writer(writer))
    }

    /// Runs `f` on the write connection once the writes queued before it are done. Blocks:
    /// call it off the async runtime.
    pub fn run<T>(&self, f: impl FnOnce(&mut Connection) -> T) -> T {
        // a panic inside `f` rolled its transaction back when it unwound: the connection is fine
        let mut conn = self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        f(&mut conn)
    }
}

/// Checkpoints the WAL every `CHECKPOINT_EVERY` while the writer lives.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(500);

fn checkpoint_loop(conn: Connection, writer: Weak<Mutex<Connection>>) {
    while writer.strong_count() > 0 {
        std::thread::sleep(CHECKPOINT_EVERY);
        if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
            tracing::debug!(error = %e, "WAL checkpoint did not run");
        }
    }
}
