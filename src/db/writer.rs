//! The one connection that writes: a thread of its own, fed by a queue, committing in batches.
//!
//! SQLite lets one connection write at a time. When several connections write, the ones that
//! lose sleep in SQLite's busy handler (in steps of up to 100 ms); when they take turns on a
//! mutex instead, every turn is a thread wake-up and a commit of its own, and under load the
//! turns queue up. Here every write of this process (API handlers, export workers, retention)
//! is a job sent to the writer thread. The thread takes every job waiting, runs them in one
//! transaction (each inside a savepoint, so a job that fails is undone alone) and commits once.
//! A job's caller hears back only after that commit. Reads use the pool and never wait for the
//! writer (WAL).
//!
//! Jobs must not open transactions of their own: each already runs inside one.
//!
//! Another process holding the lock (an `exports-api import`) is still waited out up to the
//! busy timeout, then reported to every job of the batch as `DbError::Busy`.
//!
//! The write connection does not checkpoint the WAL itself: SQLite would otherwise copy the
//! WAL into the database (and fsync it) inside whichever commit crossed 1,000 pages, and that
//! commit's callers would wait for it. A thread of its own checkpoints (PASSIVE: it never
//! blocks the writer) on another connection instead.

use std::collections::VecDeque;
use std::path::Path;
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use rusqlite::Connection;
use tokio::sync::oneshot;

use super::sql::Sql;
use super::{DbError, DbResult};

/// At most this many jobs share one commit.
const MAX_BATCH: usize = 256;

/// A batch that takes longer than this is logged (WARN) with where its time went: every
/// caller of the batch waited that long, so an operator looking at a latency spike can tell
/// a slow write (a job, the commit) from a slow request elsewhere.
const SLOW_BATCH: Duration = Duration::from_millis(100);

/// Prepared statements the write connection keeps: the transaction control below and the
/// statements of every job (creating an export, claiming and finishing jobs, progress, ...).
const WRITE_STATEMENTS: usize = 128;

/// Runs one statement without parameters through the connection's statement cache. The
/// writer runs `BEGIN IMMEDIATE`, `SAVEPOINT job`, `RELEASE job` and `COMMIT` for every batch
/// and job; `execute_batch` parses them anew each time, and SQLite's parser was a visible share
/// of the writer's CPU samples under `POST /v1/exports` load.
fn exec_cached(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([]).map(|_| ())
}

/// Handle on the writer thread (SQLite) or on PostgreSQL's write transactions; cheap to clone.
/// SQLite's writer thread ends when the last handle is gone.
#[derive(Clone)]
pub struct Writer {
    inner: Inner,
}

#[derive(Clone)]
enum Inner {
    Lite {
        jobs: Sender<Box<dyn Job>>,
        /// Keeps the checkpoint thread going while any handle lives.
        _alive: Arc<()>,
    },
    Pg(super::pg::PgWriter),
}

impl Writer {
    /// Opens the write connection on a database `super::open` has already created and migrated,
    /// and starts the writer and checkpoint threads.
    pub fn open(path: &Path, busy_timeout: Duration) -> DbResult<Writer> {
        let mut conn = Connection::open(path)?;
        super::init_connection(&mut conn, busy_timeout)?;
        conn.execute_batch("PRAGMA wal_autocheckpoint = 0;")?;
        // every statement of the write path stays prepared (see `exec_cached`)
        conn.set_prepared_statement_cache_capacity(WRITE_STATEMENTS);
        let mut checkpointer = Connection::open(path)?;
        super::init_connection(&mut checkpointer, busy_timeout)?;
        let (jobs, queue) = mpsc::channel();
        std::thread::Builder::new()
            .name("db-writer".into())
            .spawn(move || write_loop(conn, queue))
            .map_err(DbError::Io)?;
        let alive = Arc::new(());
        let weak = Arc::downgrade(&alive);
        std::thread::Builder::new()
            .name("db-checkpoint".into())
            .spawn(move || checkpoint_loop(checkpointer, weak))
            .map_err(DbError::Io)?;
        Ok(Writer { inner: Inner::Lite { jobs, _alive: alive } })
    }

    /// Writes on PostgreSQL: every write is a transaction of its own on a pooled connection
    /// (see `pg::PgWriter`); there is no writer thread.
    pub fn postgres(pool: super::pg::PgPool) -> Writer {
        Writer { inner: Inner::Pg(super::pg::PgWriter::new(pool)) }
    }

    /// Runs `f` on the write connection, inside a transaction that commits before this
    /// returns; an `Err` from `f` undoes what `f` wrote. Blocks: call it from a thread of
    /// its own, not from the async runtime (use `run_async` there).
    pub fn run<T, E>(&self, f: impl FnOnce(&dyn Sql) -> Result<T, E> + Send + 'static) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<DbError> + Send + 'static,
    {
        if let Inner::Pg(w) = &self.inner {
            return w.run(f);
        }
        match self.submit(f, false) {
            Ok(reply) => reply.blocking_recv().unwrap_or_else(|_| Err(panicked())),
            Err(e) => Err(e),
        }
    }

    /// `run` for a large write from a thread of its own (the demo data at start): a
    /// transaction of its own, as [`Writer::run_alone_async`] runs it.
    pub fn run_alone<T, E>(&self, f: impl FnOnce(&dyn Sql) -> Result<T, E> + Send + 'static) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<DbError> + Send + 'static,
    {
        if let Inner::Pg(w) = &self.inner {
            return w.run(f);
        }
        match self.submit(f, true) {
            Ok(reply) => reply.blocking_recv().unwrap_or_else(|_| Err(panicked())),
            Err(e) => Err(e),
        }
    }

    /// `run` for async code: waits for the commit without holding a thread.
    pub async fn run_async<T, E>(&self, f: impl FnOnce(&dyn Sql) -> Result<T, E> + Send + 'static) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<DbError> + Send + 'static,
    {
        if let Inner::Pg(w) = &self.inner {
            return w.run_async(f).await;
        }
        match self.submit(f, false) {
            Ok(reply) => reply.await.unwrap_or_else(|_| Err(panicked())),
            Err(e) => Err(e),
        }
    }

    /// `run_async` for a large write (a bulk upload): `f` runs in a transaction of its own,
    /// not batched with other jobs and without a savepoint. Inside a savepoint SQLite keeps
    /// the original of every page the job changes in memory (the statement journal, with
    /// `temp_store = MEMORY`) until the savepoint ends: for an upload whose rows land among
    /// existing index entries (a team's results already there) that was ~100 MB of server
    /// memory per million results already stored.
    pub async fn run_alone_async<T, E>(&self, f: impl FnOnce(&dyn Sql) -> Result<T, E> + Send + 'static) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<DbError> + Send + 'static,
    {
        if let Inner::Pg(w) = &self.inner {
            return w.run_async(f).await;
        }
        match self.submit(f, true) {
            Ok(reply) => reply.await.unwrap_or_else(|_| Err(panicked())),
            Err(e) => Err(e),
        }
    }

    /// Queues `f` and returns at once, for a write whose outcome nobody waits for (a job's
    /// progress): `f` runs in its own savepoint like any job, after the writes queued before it.
    pub fn send(&self, f: impl FnOnce(&dyn Sql) + Send + 'static) {
        if let Inner::Pg(w) = &self.inner {
            return w.send(Box::new(f));
        }
        let _ = self.submit(
            move |c| -> Result<(), DbError> {
                f(c);
                Ok(())
            },
            false,
        );
    }

    fn submit<T, E>(
        &self,
        f: impl FnOnce(&dyn Sql) -> Result<T, E> + Send + 'static,
        alone: bool,
    ) -> Result<oneshot::Receiver<Result<T, E>>, E>
    where
        T: Send + 'static,
        E: From<DbError> + Send + 'static,
    {
        let Inner::Lite { jobs, .. } = &self.inner else { unreachable!("PostgreSQL's writes run in place") };
        let (reply, answer) = oneshot::channel();
        // the caller's span (a request's, with its request id) on the writer thread's lines
        let span = tracing::Span::current();
        let f = move |c: &Connection| span.in_scope(|| f(c as &dyn Sql));
        jobs.send(Box::new(Queued { f, reply, alone }))
            .map_err(|_| E::from(DbError::Interrupted("the database writer has stopped")))?;
        Ok(answer)
    }
}

/// What a caller gets when its job panicked (the panic itself is in the log).
pub(super) fn panicked<E: From<DbError>>() -> E {
    E::from(DbError::Interrupted("a database write failed unexpectedly"))
}

/// A job waiting in the queue. Type-erased so that jobs of any result type share the queue.
trait Job: Send {
    /// Runs the job; its result waits for the batch's commit.
    fn run(self: Box<Self>, conn: &Connection) -> Box<dyn Ran>;
    /// The job did not run (its batch could not start): tell the caller why.
    fn refuse(self: Box<Self>, e: DbError);
    /// The job runs in a transaction of its own, without a savepoint.
    fn alone(&self) -> bool;
}

/// A job that ran, waiting for its batch's commit.
trait Ran: Send {
    fn succeeded(&self) -> bool;
    /// Sends the result, or `failed` instead when the batch's commit failed.
    fn answer(self: Box<Self>, failed: Option<DbError>);
}

struct Queued<F, T, E> {
    f: F,
    reply: oneshot::Sender<Result<T, E>>,
    alone: bool,
}

struct Done<T, E> {
    result: Result<T, E>,
    reply: oneshot::Sender<Result<T, E>>,
}

impl<F, T, E> Job for Queued<F, T, E>
where
    F: FnOnce(&Connection) -> Result<T, E> + Send,
    T: Send + 'static,
    E: From<DbError> + Send + 'static,
{
    fn run(self: Box<Self>, conn: &Connection) -> Box<dyn Ran> {
        Box::new(Done { result: (self.f)(conn), reply: self.reply })
    }

    fn refuse(self: Box<Self>, e: DbError) {
        let _ = self.reply.send(Err(E::from(e)));
    }

    fn alone(&self) -> bool {
        self.alone
    }
}

impl<T: Send, E: From<DbError> + Send> Ran for Done<T, E> {
    fn succeeded(&self) -> bool {
        self.result.is_ok()
    }

    fn answer(self: Box<Self>, failed: Option<DbError>) {
        let _ = self.reply.send(match failed {
            Some(e) => Err(E::from(e)),
            None => self.result,
        });
    }
}

fn write_loop(conn: Connection, queue: Receiver<Box<dyn Job>>) {
    // a job that must run alone, met while gathering a batch: it goes next, on its own
    let mut held: Option<Box<dyn Job>> = None;
    loop {
        let first = match held.take() {
            Some(job) => job,
            None => match queue.recv() {
                Ok(job) => job,
                Err(_) => return,
            },
        };
        if first.alone() {
            run_alone(&conn, first);
            continue;
        }
        let mut batch = VecDeque::from([first]);
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(job) if job.alone() => {
                    held = Some(job);
                    break;
                }
                Ok(job) => batch.push_back(job),
                Err(_) => break,
            }
        }
        run_batch(&conn, batch);
    }
}

/// Runs one job in a transaction of its own, without a savepoint (see
/// [`Writer::run_alone_async`]): committed when it succeeds, rolled back when it fails.
fn run_alone(conn: &Connection, job: Box<dyn Job>) {
    let started = Instant::now();
    if let Err(e) = exec_cached(conn, "BEGIN IMMEDIATE") {
        return job.refuse(copy_error(&e));
    }
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job.run(conn)));
    let ran = started.elapsed();
    let done = match outcome {
        Ok(done) => done,
        Err(_) => {
            tracing::error!("a database write panicked; it was undone");
            let _ = conn.execute_batch("ROLLBACK");
            return;
        }
    };
    if !done.succeeded() {
        if !conn.is_autocommit() {
            let _ = conn.execute_batch("ROLLBACK");
        }
        return done.answer(None);
    }
    if conn.is_autocommit() {
        // SQLite rolled the transaction back itself (a full disk, an I/O error)
        return done.answer(Some(DbError::Interrupted("the write was rolled back; retry")));
    }
    let committed = exec_cached(conn, "COMMIT");
    let took = started.elapsed();
    if took > SLOW_BATCH {
        tracing::debug!(took_ms = took.as_millis() as u64, job_ms = ran.as_millis() as u64, "a large write ran alone");
    }
    match committed {
        Ok(()) => done.answer(None),
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            done.answer(Some(copy_error(&e)));
        }
    }
}

/// Runs `batch` in as few transactions as it takes: one, unless an error makes SQLite roll
/// the whole transaction back (a full disk, an I/O error), in which case the jobs before it
/// are told so and the rest go on in a new transaction.
fn run_batch(conn: &Connection, mut batch: VecDeque<Box<dyn Job>>) {
    let started = Instant::now();
    let jobs = batch.len();
    let mut slowest_job = Duration::ZERO;
    let mut commit = Duration::ZERO;
    while !batch.is_empty() {
        if let Err(e) = exec_cached(conn, "BEGIN IMMEDIATE") {
            for job in batch.drain(..) {
                job.refuse(copy_error(&e));
            }
            return;
        }
        let mut ran: Vec<Box<dyn Ran>> = Vec::with_capacity(batch.len());
        let mut lost = false;
        while let Some(job) = batch.pop_front() {
            if let Err(e) = exec_cached(conn, "SAVEPOINT job") {
                job.refuse(copy_error(&e));
                lost = conn.is_autocommit();
                if lost {
                    break;
                }
                continue;
            }
            let job_started = Instant::now();
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job.run(conn)));
            slowest_job = slowest_job.max(job_started.elapsed());
            if conn.is_autocommit() {
                // SQLite rolled the whole transaction back: what ran before is gone too
                match outcome {
                    Ok(done) if done.succeeded() => {
                        done.answer(Some(DbError::Interrupted("the write was rolled back; retry")))
                    }
                    Ok(done) => done.answer(None),
                    Err(_) => tracing::error!("a database write panicked"),
                }
                lost = true;
                break;
            }
            let undo = !matches!(&outcome, Ok(done) if done.succeeded());
            let closed = if undo {
                conn.execute_batch("ROLLBACK TO job; RELEASE job")
            } else {
                exec_cached(conn, "RELEASE job")
            };
            match outcome {
                Ok(done) => ran.push(done),
                Err(_) => tracing::error!("a database write panicked; it was undone"),
            }
            if closed.is_err() {
                lost = true;
                break;
            }
        }
        if lost {
            let _ = conn.execute_batch("ROLLBACK");
            for done in ran {
                done.answer(Some(DbError::Interrupted(
                    "a write committed together with this one failed, so this one was rolled back too; retry",
                )));
            }
            continue;
        }
        let commit_started = Instant::now();
        let committed = exec_cached(conn, "COMMIT");
        commit += commit_started.elapsed();
        match committed {
            Ok(()) => ran.into_iter().for_each(|done| done.answer(None)),
            Err(e) => {
                let _ = conn.execute_batch("ROLLBACK");
                for done in ran {
                    done.answer(Some(copy_error(&e)));
                }
            }
        }
    }
    let took = started.elapsed();
    if took > SLOW_BATCH {
        tracing::warn!(
            took_ms = took.as_millis() as u64,
            jobs,
            slowest_job_ms = slowest_job.as_millis() as u64,
            commit_ms = commit.as_millis() as u64,
            "slow database write: every request in this batch waited this long"
        );
    }
}

/// The same SQLite error again, for each job of a batch it ended.
fn copy_error(e: &rusqlite::Error) -> DbError {
    DbError::from(match e {
        rusqlite::Error::SqliteFailure(code, message) => rusqlite::Error::SqliteFailure(*code, message.clone()),
        other => rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_ERROR),
            Some(other.to_string()),
        ),
    })
}

/// Checkpoints the WAL every `CHECKPOINT_EVERY` while the writer lives.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(500);

/// A WAL file larger than this is cut back to nothing once everything in it is in the
/// database and nobody is using it.
const TRUNCATE_ABOVE: u64 = if cfg!(test) { 1 << 20 } else { 64 << 20 };

/// Checkpoint turns with no new WAL frame before a large WAL is cut back: truncating holds the
/// write lock, and new readers wait while the file is cut (about 0.4 s for 1 GB here), so it
/// waits for a quiet spell (10 s) rather than stall a busy service.
const QUIET_TURNS: u32 = if cfg!(test) { 1 } else { 20 };

fn checkpoint_loop(conn: Connection, writer: Weak<()>) {
    // SQLite names the WAL after the database
    let wal = conn.path().filter(|p| !p.is_empty()).map(|p| std::path::PathBuf::from(format!("{p}-wal")));
    // never wait for a lock here: what is in the way is tried again at the next turn
    let _ = conn.busy_timeout(Duration::ZERO);
    let (mut last_frames, mut quiet) = (-1i64, 0u32);
    while writer.strong_count() > 0 {
        std::thread::sleep(CHECKPOINT_EVERY);
        let checkpointed =
            conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| Ok((r.get::<_, i64>(1)?, r.get::<_, i64>(2)?)));
        match checkpointed {
            Ok((frames, done)) => {
                quiet = if frames == last_frames { quiet + 1 } else { 0 };
                last_frames = frames;
                if frames == done && quiet >= QUIET_TURNS {
                    if let Some(wal) = &wal {
                        truncate_if_large(&conn, wal);
                    }
                }
            }
            Err(e) => tracing::debug!(error = %e, "WAL checkpoint did not run"),
        }
    }
}

/// Everything in the WAL is in the database: a WAL file that a burst of writes (while exports
/// held old snapshots) grew large is cut back to nothing, so its disk space comes back, and the
/// next writes append to a fresh file instead of overwriting old blocks that may have to be
/// read back from disk first (see the README's note on the POST tail). `TRUNCATE` takes the
/// write lock only if it is free at once and truncates only when no reader uses the WAL;
/// otherwise it is a plain checkpoint and this is tried again later. Run only after a quiet
/// spell (`QUIET_TURNS`): the writer thread and new readers wait while the file is cut.
fn truncate_if_large(conn: &Connection, wal: &Path) {
    if std::fs::metadata(wal).map_or(0, |m| m.len()) <= TRUNCATE_ABOVE {
        return;
    }
    if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(())) {
        tracing::debug!(error = %e, "WAL truncation did not run");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open() -> (tempfile::TempDir, Writer, crate::db::LitePool) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.db");
        let pool = crate::db::open(&path, 2, Duration::from_secs(5)).unwrap();
        pool.get().unwrap().execute_batch("CREATE TABLE t (v TEXT PRIMARY KEY)").unwrap();
        let writer = Writer::open(&path, Duration::from_secs(5)).unwrap();
        (dir, writer, pool)
    }

    fn insert(v: &'static str, fail: bool) -> impl FnOnce(&dyn Sql) -> Result<(), DbError> + Send + 'static {
        move |c| {
            c.exec("INSERT INTO t (v) VALUES (?1)", &[v.into()])?;
            if fail {
                return Err(DbError::Interrupted("the job's own failure"));
            }
            Ok(())
        }
    }

    /// A WAL grown past `TRUNCATE_ABOVE` while a reader pinned it is cut back to nothing once
    /// the reader is gone, and every row is still there.
    #[test]
    fn a_large_wal_is_truncated_once_it_is_checkpointed() {
        let (dir, writer, pool) = open();
        let wal = dir.path().join("w.db-wal");
        let reader = pool.get().unwrap();
        reader.execute_batch("BEGIN; SELECT count(*) FROM t;").unwrap();
        for i in 0..64 {
            writer
                .run(move |c| -> Result<(), DbError> {
                    c.lite()
                        .unwrap()
                        .execute("INSERT INTO t (v) VALUES (?1)", [format!("{i:04}{}", "x".repeat(64 * 1024))])?;
                    Ok(())
                })
                .unwrap();
        }
        let grown = std::fs::metadata(&wal).unwrap().len();
        assert!(grown > TRUNCATE_ABOVE, "the pinned WAL grew to {grown} bytes");
        reader.execute_batch("COMMIT").unwrap();
        drop(reader);
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::fs::metadata(&wal).map_or(0, |m| m.len()) > 0 {
            assert!(Instant::now() < deadline, "the WAL was not truncated");
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(stored(&pool).len(), 64);
    }

    fn stored(pool: &crate::db::LitePool) -> Vec<String> {
        let c = pool.get().unwrap();
        let mut s = c.prepare("SELECT v FROM t ORDER BY v").unwrap();
        let v = s.query_map([], |r| r.get(0)).unwrap().collect::<Result<_, _>>().unwrap();
        v
    }

    /// Jobs queued while the writer is busy share one batch; the one that fails and the one
    /// that panics are undone alone and the others commit.
    #[test]
    fn a_failing_job_in_a_batch_is_undone_alone() {
        let (_dir, writer, pool) = open();
        let (release, hold) = std::sync::mpsc::channel::<()>();
        let first = writer
            .submit(
                move |c: &dyn Sql| -> Result<(), DbError> {
                    hold.recv().unwrap();
                    insert("a", false)(c)
                },
                false,
            )
            .unwrap();
        // queued behind the first job, so they run as one batch
        let ok_b = writer.submit(insert("b", false), false).unwrap();
        let failing = writer.submit(insert("c", true), false).unwrap();
        let panicking = writer
            .submit(
                |c: &dyn Sql| -> Result<(), DbError> {
                    c.exec("INSERT INTO t (v) VALUES ('p')", &[])?;
                    panic!("a bug in a write")
                },
                false,
            )
            .unwrap();
        let ok_d = writer.submit(insert("d", false), false).unwrap();
        release.send(()).unwrap();
        assert!(first.blocking_recv().unwrap().is_ok());
        assert!(ok_b.blocking_recv().unwrap().is_ok());
        assert!(matches!(failing.blocking_recv().unwrap(), Err(DbError::Interrupted("the job's own failure"))));
        assert!(panicking.blocking_recv().is_err(), "the panicking job's reply is dropped");
        assert!(ok_d.blocking_recv().unwrap().is_ok());
        assert_eq!(stored(&pool), ["a", "b", "d"]);
    }

    /// A job that runs alone is not batched with the jobs queued around it and has no
    /// savepoint (so SQLite keeps no statement journal for it): it commits on its own, or
    /// rolls back on its own when it fails; the jobs before and after it still commit.
    #[test]
    fn a_job_that_runs_alone_has_a_transaction_of_its_own() {
        let (_dir, writer, pool) = open();
        let (release, hold) = std::sync::mpsc::channel::<()>();
        let first = writer
            .submit(
                move |c: &dyn Sql| -> Result<(), DbError> {
                    hold.recv().unwrap();
                    insert("a", false)(c)
                },
                false,
            )
            .unwrap();
        let in_own_transaction = |v: &'static str, fail: bool| {
            move |c: &dyn Sql| -> Result<bool, DbError> {
                // inside a transaction, but no savepoint to release
                let conn = c.lite().unwrap();
                let no_savepoint = !conn.is_autocommit() && conn.execute_batch("RELEASE job").is_err();
                insert(v, fail)(c)?;
                Ok(no_savepoint)
            }
        };
        let alone = writer.submit(in_own_transaction("b", false), true).unwrap();
        let after = writer.submit(insert("c", false), false).unwrap();
        let failing = writer.submit(in_own_transaction("d", true), true).unwrap();
        let last = writer.submit(insert("e", false), false).unwrap();
        release.send(()).unwrap();
        assert!(first.blocking_recv().unwrap().is_ok());
        assert!(alone.blocking_recv().unwrap().unwrap(), "ran in a savepoint, or outside a transaction");
        assert!(after.blocking_recv().unwrap().is_ok());
        assert!(matches!(failing.blocking_recv().unwrap(), Err(DbError::Interrupted("the job's own failure"))));
        assert!(last.blocking_recv().unwrap().is_ok());
        assert_eq!(stored(&pool), ["a", "b", "c", "e"]);
    }

    /// A caller hears back only after the commit: what `run` returned is visible to every
    /// other connection at once.
    #[test]
    fn an_answer_comes_after_the_commit() {
        let (_dir, writer, pool) = open();
        for v in ["x", "y", "z"] {
            writer.run(insert(v, false)).unwrap();
            assert!(stored(&pool).contains(&v.to_string()));
        }
        let err = writer.run(insert("x", false)).unwrap_err();
        assert!(matches!(err, DbError::Sqlite(_)), "duplicate key: {err}");
        assert_eq!(stored(&pool), ["x", "y", "z"]);
    }

    /// Another process holding the write lock past the busy timeout is reported as `Busy` to
    /// every job of the batch, and nothing is written.
    #[test]
    fn a_lock_held_elsewhere_is_busy_for_the_batch() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.db");
        let pool = crate::db::open(&path, 2, Duration::from_secs(5)).unwrap();
        pool.get().unwrap().execute_batch("CREATE TABLE t (v TEXT PRIMARY KEY)").unwrap();
        let writer = Writer::open(&path, Duration::from_millis(50)).unwrap();
        let other = Connection::open(&path).unwrap();
        other.execute_batch("BEGIN IMMEDIATE").unwrap();
        let answers: Vec<_> = ["a", "b"].map(|v| writer.submit(insert(v, false), false).unwrap()).into();
        for a in answers {
            assert!(matches!(a.blocking_recv().unwrap(), Err(DbError::Busy(_))));
        }
        other.execute_batch("ROLLBACK").unwrap();
        writer.run(insert("c", false)).unwrap();
        assert_eq!(stored(&pool), ["c"]);
    }
}
