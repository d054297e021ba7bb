//! Runs one export: rows stream from a SQLite cursor through the CSV formatter into a
//! buffered writer. Shared by the worker threads and the `export` command.

use std::io::Write;

use rusqlite::Connection;

use super::csv::{CsvPlan, ResultRow};
use crate::db::{self, DbError};
use crate::domain::export::CsvOptions;
use crate::domain::schema::SchemaDef;

/// What to export.
pub struct ExportSpec<'a> {
    pub schema_id: &'a str,
    pub schema: &'a SchemaDef,
    pub start_ms: i64,
    pub end_ms: i64,
    pub expand_array: Option<&'a str>,
    pub options: &'a CsvOptions,
}

#[derive(Debug)]
pub enum EngineError {
    /// The export cannot be made as asked; the message is for the user.
    Invalid(String),
    Db(DbError),
    Io(std::io::Error),
}

impl std::fmt::Display for EngineError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EngineError::Invalid(m) => f.write_str(m),
            EngineError::Db(e) => write!(f, "{e}"),
            EngineError::Io(e) => write!(f, "writing the file failed: {e}"),
        }
    }
}

impl EngineError {
    /// The disk (or the user's quota) is full: SQLITE_FULL, ENOSPC or EDQUOT.
    pub fn is_disk_full(&self) -> bool {
        match self {
            EngineError::Db(DbError::Full(_)) => true,
            EngineError::Db(DbError::Io(e)) | EngineError::Io(e) => crate::error::is_disk_full(e),
            _ => false,
        }
    }

    /// Another process held a database lock for longer than the busy timeout.
    pub fn is_busy(&self) -> bool {
        matches!(self, EngineError::Db(DbError::Busy(_)))
    }
}

impl From<DbError> for EngineError {
    fn from(e: DbError) -> Self {
        EngineError::Db(e)
    }
}

impl From<std::io::Error> for EngineError {
    fn from(e: std::io::Error) -> Self {
        EngineError::Io(e)
    }
}

/// Rows between two checks of `should_stop`.
const STOP_CHECK_EVERY: u64 = 512;
/// Bytes gathered before they go to the writer.
const CHUNK: usize = 64 * 1024;

/// Writes the export to `out` (BOM, header, records; gzip-compressed when the options say
/// so). Returns the number of data records, or `None` when `should_stop` said to stop.
pub fn write_export<W: Write>(
    conn: &Connection,
    spec: &ExportSpec,
    out: &mut W,
    should_stop: impl FnMut() -> bool,
) -> Result<Option<u64>, EngineError> {
    let plan = CsvPlan::new(spec.schema, spec.expand_array, spec.options).map_err(EngineError::Invalid)?;
    if !spec.options.gzip {
        return write_records(conn, spec, &plan, out, should_stop);
    }
    let mut gz = flate2::write::GzEncoder::new(out, flate2::Compression::default());
    let written = write_records(conn, spec, &plan, &mut gz, should_stop)?;
    if written.is_some() {
        gz.finish()?;
    }
    Ok(written)
}

fn write_records<W: Write>(
    conn: &Connection,
    spec: &ExportSpec,
    plan: &CsvPlan,
    sink: &mut W,
    mut should_stop: impl FnMut() -> bool,
) -> Result<Option<u64>, EngineError> {
    let mut buf: Vec<u8> = Vec::with_capacity(CHUNK * 2);
    if spec.options.bom {
        buf.extend_from_slice(b"\xEF\xBB\xBF");
    }
    plan.write_header(&mut buf);
    let mut records: u64 = 0;
    let mut seen: u64 = 0;
    let mut stopped = false;
    db::results::stream_for_export(conn, spec.schema_id, spec.start_ms, spec.end_ms, |r| {
        let row = ResultRow { id: r.id, file_name: r.file_name, created_at_ms: r.created_at, extraction: r.extraction };
        records += plan.write_result(&row, &mut buf) as u64;
        if buf.len() >= CHUNK {
            sink.write_all(&buf)?;
            buf.clear();
        }
        seen += 1;
        if seen.is_multiple_of(STOP_CHECK_EVERY) && should_stop() {
            stopped = true;
            return Ok(false);
        }
        Ok::<bool, EngineError>(true)
    })?;
    if stopped || should_stop() {
        return Ok(None);
    }
    sink.write_all(&buf)?;
    sink.flush()?;
    Ok(Some(records))
}
