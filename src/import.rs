//! Bulk import of NDJSON results, shared by the `import` command and the upload route: the
//! body streams through, all or nothing, in one transaction, without being held whole.
//!
//! Two threads share the work: the caller's reads the input and parses it into batches of
//! whole lines (`domain::ndjson`), a second inserts them (`db::results::insert_streamed`). A
//! bounded channel between them keeps memory flat, whatever the size of the input.
//!
//! An upload is first spooled to a private file ([`spool`]), its lines checked as they arrive,
//! and only then imported from that file: the write connection is never held while a client
//! is still sending.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, SyncSender};

use crate::db::Sql;

use crate::db::DbError;
use crate::domain::ndjson::{Batch, LineError, Splitter};

/// Bytes of whole lines parsed and handed on at a time.
pub const BATCH_BYTES: usize = 256 * 1024;
/// Batches parsed ahead of the inserting thread at most.
const BATCHES_AHEAD: usize = 4;

/// Why nothing was imported.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// A line is not a valid result.
    #[error(transparent)]
    Line(#[from] LineError),
    /// The input holds no result (only blank lines, or nothing).
    #[error("the input holds no results")]
    NoResults,
    /// The input stopped before its end (a read error, or the caller gave up on it); the
    /// reason is the caller's.
    #[error("{0}")]
    Input(String),
    #[error(transparent)]
    Db(#[from] DbError),
}

/// What the parsing thread hands the inserting one.
enum Parsed {
    Batch(Batch),
    /// The input ended and every line was good: commit. Without it, nothing is committed.
    End,
}

/// Imports the NDJSON that `input` yields, chunk by chunk, into one schema: every result or
/// none. `input` ends with `None` at the end of the body, or with an `Err` to abandon it.
/// `now` is the creation time of results without `createdAt`. Returns how many were stored.
pub fn import<C, I>(conn: &dyn Sql, team_id: &str, schema_id: &str, now: i64, input: I) -> Result<u64, ImportError>
where
    C: AsRef<[u8]>,
    I: Iterator<Item = Result<C, ImportError>> + Send,
{
    let (tx, rx) = sync_channel::<Parsed>(BATCHES_AHEAD);
    std::thread::scope(|scope| {
        let parser = scope.spawn(move || parse(now, input, tx));
        let stored = crate::db::results::insert_streamed(conn, team_id, schema_id, |ins| {
            for msg in rx {
                match msg {
                    Parsed::Batch(batch) => {
                        for r in batch.results() {
                            ins.insert(r.file_name, r.created_at, r.extraction)?;
                        }
                    }
                    Parsed::End => return Ok(ins.count()),
                }
            }
            // the parser stopped early: its error is the answer, whatever this one says
            Err(ImportError::Input("the input was abandoned".into()))
        });
        // the receiver is gone: a parser still sending stops at once
        let parsed = match parser.join() {
            Ok(p) => p,
            Err(panic) => std::panic::resume_unwind(panic),
        };
        parsed.and(stored)
    })
}

/// Reads and parses `input`, sending batches on `tx`, then `End` when every line was good.
/// Stops quietly when the receiver has gone (the inserter failed, and says why).
fn parse<C, I>(now: i64, input: I, tx: SyncSender<Parsed>) -> Result<(), ImportError>
where
    C: AsRef<[u8]>,
    I: Iterator<Item = Result<C, ImportError>>,
{
    let mut splitter = Splitter::new(now, BATCH_BYTES);
    let mut parsed = 0usize;
    for chunk in input {
        if let Some(b) = splitter.feed(chunk?.as_ref()).map_err(ImportError::Line)? {
            parsed += b.len();
            if tx.send(Parsed::Batch(b)).is_err() {
                return Ok(());
            }
        }
    }
    if let Some(b) = splitter.finish().map_err(ImportError::Line)? {
        parsed += b.len();
        if tx.send(Parsed::Batch(b)).is_err() {
            return Ok(());
        }
    }
    if parsed == 0 {
        return Err(ImportError::NoResults);
    }
    let _ = tx.send(Parsed::End);
    Ok(())
}

/// An upload spooled to a private file (mode 0600) in the uploads folder
/// (`DataDir::uploads`), whose lines were all checked as they arrived. The file is removed
/// when this is dropped, whatever happened: stored, refused or abandoned.
pub struct Spool {
    path: PathBuf,
    file: File,
    results: u64,
}

impl Drop for Spool {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_file(&self.path) {
            tracing::warn!(path = %self.path.display(), error = %e, "could not remove an upload's temporary file");
        }
    }
}

impl Spool {
    /// Results the spooled body holds.
    pub fn results(&self) -> u64 {
        self.results
    }

    /// Imports the spooled body through [`import`]: every result or none.
    pub fn import_into(
        &mut self,
        conn: &dyn Sql,
        team_id: &str,
        schema_id: &str,
        now: i64,
    ) -> Result<u64, ImportError> {
        self.file.seek(SeekFrom::Start(0)).map_err(io)?;
        import(conn, team_id, schema_id, now, read_chunks(&mut self.file))
    }
}

/// Writes the body that `input` yields to a new private file in `dir`, checking each line as
/// it arrives (the first bad line ends it at once), and gives the file back once the body has
/// ended and every line is good. Holds one batch of lines at most, whatever the body's size.
pub fn spool<C, I>(dir: &Path, now: i64, input: I) -> Result<Spool, ImportError>
where
    C: AsRef<[u8]>,
    I: Iterator<Item = Result<C, ImportError>>,
{
    let path = dir.join(format!("{}{SPOOL_SUFFIX}", uuid::Uuid::now_v7()));
    let file = crate::private::options().read(true).write(true).create_new(true).open(&path).map_err(io)?;
    let mut spool = Spool { path, file, results: 0 };
    let mut splitter = Splitter::new(now, BATCH_BYTES);
    for chunk in input {
        let chunk = chunk?;
        let chunk = chunk.as_ref();
        if let Some(b) = splitter.feed(chunk).map_err(ImportError::Line)? {
            spool.results += b.len() as u64;
        }
        spool.file.write_all(chunk).map_err(io)?;
    }
    if let Some(b) = splitter.finish().map_err(ImportError::Line)? {
        spool.results += b.len() as u64;
    }
    if spool.results == 0 {
        return Err(ImportError::NoResults);
    }
    Ok(spool)
}

/// Ending of the uploads folder's temporary files.
const SPOOL_SUFFIX: &str = ".ndjson.part";

/// Creates the uploads folder (0700) and removes what an earlier run left in it (a crash
/// mid-upload). Call it with the data folder locked, before serving.
pub fn prepare_spool_dir(dir: &Path) -> std::io::Result<()> {
    crate::private::create_dir(dir)?;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_name().to_string_lossy().ends_with(SPOOL_SUFFIX) {
            tracing::info!(file = %entry.path().display(), "removing an upload left over by an earlier run");
            std::fs::remove_file(entry.path())?;
        }
    }
    Ok(())
}

/// Bytes read from a file or stdin at a time.
pub const READ_BYTES: usize = 256 * 1024;

/// `reader` in chunks of up to [`READ_BYTES`], for [`import`].
pub fn read_chunks<R: Read + Send>(mut reader: R) -> impl Iterator<Item = Result<Vec<u8>, ImportError>> + Send {
    std::iter::from_fn(move || loop {
        let mut buf = vec![0u8; READ_BYTES];
        match reader.read(&mut buf) {
            Ok(0) => return None,
            Ok(n) => {
                buf.truncate(n);
                return Some(Ok(buf));
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Some(Err(ImportError::Input(format!("cannot read the input: {e}")))),
        }
    })
}

fn io(e: std::io::Error) -> ImportError {
    ImportError::Db(DbError::Io(e))
}
