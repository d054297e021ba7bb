//! Writes on PostgreSQL. There is no writer thread: every write is one transaction on a
//! pooled connection, committed before its caller hears back; a failed or panicking write is
//! rolled back alone.
//!
//! Every write transaction first takes one transaction-scoped advisory lock
//! ([`WRITE_LOCK`]), on every replica alike: writes are serialised as SQLite's single writer
//! serialises them, so what the store's functions check before they write (a team's quotas,
//! a job's claim, an idempotency key) holds when they write, under PostgreSQL's default READ
//! COMMITTED isolation. Reads (lists, GETs, the export scans) take no lock and run in
//! parallel on every replica; a write holds the lock for its few statements only.

use std::sync::mpsc::{self, Sender};

use super::PgPool;
use crate::db::sql::{Pg, Sql};
use crate::db::DbError;

/// The key of the transaction advisory lock every write holds ("exports2" in ASCII).
pub const WRITE_LOCK: i64 = 0x6578_706f_7274_7332;

/// A write nobody waits for (see [`PgWriter::send`]).
type Sent = Box<dyn FnOnce(&dyn Sql) + Send>;

#[derive(Clone)]
pub struct PgWriter {
    pool: PgPool,
    sends: Sender<Sent>,
}

impl PgWriter {
    pub fn new(pool: PgPool) -> PgWriter {
        let (sends, queue) = mpsc::channel::<Sent>();
        let thread_pool = pool.clone();
        // The thread holds the pool, not a handle: it ends (and the pool's connections close)
        // once the last handle, and so the last sender, is gone.
        let _ = std::thread::Builder::new().name("db-sends".into()).spawn(move || {
            while let Ok(f) = queue.recv() {
                let _ = write(&thread_pool, move |c| -> Result<(), DbError> {
                    f(c);
                    Ok(())
                });
            }
        });
        PgWriter { pool, sends }
    }

    /// Runs `f` inside a write transaction that commits before this returns; an `Err` from
    /// `f` rolls it back. Blocks: not for the async runtime (see [`PgWriter::run_async`]).
    pub fn run<T, E>(&self, f: impl FnOnce(&dyn Sql) -> Result<T, E>) -> Result<T, E>
    where
        E: From<DbError>,
    {
        write(&self.pool, f)
    }

    /// [`PgWriter::run`] from async code, on tokio's blocking pool.
    pub async fn run_async<T, E>(&self, f: impl FnOnce(&dyn Sql) -> Result<T, E> + Send + 'static) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<DbError> + Send + 'static,
    {
        let w = self.clone();
        let span = tracing::Span::current();
        tokio::task::spawn_blocking(move || span.in_scope(|| w.run(f)))
            .await
            .unwrap_or_else(|_| Err(crate::db::writer::panicked()))
    }

    /// Queues `f` and returns at once; the writes sent run in order, each in a transaction
    /// of its own, on a thread of their own.
    pub fn send(&self, f: Sent) {
        let _ = self.sends.send(f);
    }
}

/// One write transaction on a connection of `pool` (see [`PgWriter::run`]).
fn write<T, E>(pool: &PgPool, f: impl FnOnce(&dyn Sql) -> Result<T, E>) -> Result<T, E>
where
    E: From<DbError>,
{
    let conn = pool.get().map_err(DbError::from)?;
    let mut pg = Pg::new(conn);
    pg.begin(&format!("BEGIN; SELECT pg_advisory_xact_lock({WRITE_LOCK})")).map_err(E::from)?;
    let out = f(&pg)?;
    pg.commit().map_err(E::from)?;
    Ok(out)
}
