//! Runs one export: rows stream from a SQLite cursor through the row plan (CSV, JSON Lines or
//! workbook cells) into a buffered writer, or into a workbook. Shared by the worker threads
//! and the `export` command.

use std::io::Write;
use std::path::Path;

use crate::db::Sql;

use super::batches;
use super::csv::CsvPlan;
use super::xlsx::{XlsxSink, EXCEL_MAX_ROWS};
use crate::db::{self, DbError};
use crate::domain::export::{CsvOptions, ExportFormat};
use crate::domain::schema::SchemaDef;

/// What to export.
pub struct ExportSpec<'a> {
    pub schema_id: &'a str,
    /// The schema's name (a workbook's sheets are named after it).
    pub schema_name: &'a str,
    pub schema: &'a SchemaDef,
    /// Where a workbook keeps its temporary files (the data folder's scratch area).
    pub temp_dir: &'a Path,
    pub start_ms: i64,
    pub end_ms: i64,
    pub expand_array: Option<&'a str>,
    pub options: &'a CsvOptions,
}

/// Why an export was not written.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The export cannot be made as asked; the message is for the user.
    #[error("{0}")]
    Invalid(String),
    /// Reading the results failed.
    #[error(transparent)]
    Db(#[from] DbError),
    /// Writing the output failed.
    #[error("writing the file failed: {0}")]
    Io(#[from] std::io::Error),
}

impl EngineError {
    /// The disk (or the user's quota) is full: SQLITE_FULL, ENOSPC or EDQUOT.
    pub fn is_disk_full(&self) -> bool {
        match self {
            EngineError::Db(DbError::Full(_)) => true,
            EngineError::Db(DbError::Io(e)) | EngineError::Io(e) => crate::data_dir::is_disk_full(e),
            _ => false,
        }
    }

    /// Another process held a database lock for longer than the busy timeout.
    pub fn is_busy(&self) -> bool {
        matches!(self, EngineError::Db(DbError::Busy(_)))
    }
}

/// How far an export has got, as `should_stop` is told after every batch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Progress {
    /// Results of the range read so far.
    pub results_read: u64,
    /// Data records written to the output so far (after expansion).
    pub rows_written: u64,
}

/// Writes the export to `out` (BOM, header, records; gzip-compressed when the options say
/// so). Returns the number of data records, or `None` when `should_stop` said to stop.
///
/// The calling thread reads the SQLite cursor into batches; formatting threads (one per
/// CPU) turn batches into records (CSV, JSON Lines or workbook cells) and write them to `out`
/// in order. At most a few batches are in flight, so memory stays flat whatever the size of
/// the export. `should_stop` is asked after every batch, with the figures so far.
pub fn write_export<W: Write + Send>(
    conn: &dyn Sql,
    spec: &ExportSpec,
    out: &mut W,
    should_stop: impl FnMut(Progress) -> bool,
) -> Result<Option<u64>, EngineError> {
    write_export_with(conn, spec, out, should_stop, EXCEL_MAX_ROWS)
}

/// [`write_export`] with a workbook's sheets split at `sheet_rows` rows (tests use a few).
pub(super) fn write_export_with<W: Write + Send>(
    conn: &dyn Sql,
    spec: &ExportSpec,
    out: &mut W,
    should_stop: impl FnMut(Progress) -> bool,
    sheet_rows: u32,
) -> Result<Option<u64>, EngineError> {
    let plan = CsvPlan::new(spec.schema, spec.expand_array, spec.options).map_err(EngineError::Invalid)?;
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    if plan.format() == ExportFormat::Xlsx {
        crate::private::create_dir(spec.temp_dir)?;
        let mut sink = XlsxSink::new(spec.schema_name, plan.header(), spec.temp_dir, sheet_rows)?;
        let written = write_records(conn, spec, &plan, &mut sink, threads, should_stop)?;
        if written.is_some() {
            sink.finish(spec.temp_dir, out)?;
            out.flush()?;
        }
        return Ok(written);
    }
    if !spec.options.gzip {
        return write_records(conn, spec, &plan, out, threads, should_stop);
    }
    let mut gz = flate2::write::GzEncoder::new(out, flate2::Compression::default());
    let written = write_records(conn, spec, &plan, &mut gz, threads, should_stop)?;
    if written.is_some() {
        gz.finish()?;
    }
    Ok(written)
}

pub(super) fn write_records<W: Write + Send>(
    conn: &dyn Sql,
    spec: &ExportSpec,
    plan: &CsvPlan,
    sink: &mut W,
    threads: usize,
    mut should_stop: impl FnMut(Progress) -> bool,
) -> Result<Option<u64>, EngineError> {
    let mut head: Vec<u8> = Vec::new();
    if spec.options.bom {
        head.extend_from_slice(b"\xEF\xBB\xBF");
    }
    plan.write_header(&mut head);
    let output = batches::Output { sink: &mut *sink, head, same_writes: spec.options.gzip };
    let records = batches::format_in_order(plan, threads, output, |batches| {
        let mut stopped = false;
        db::results::stream_for_export(conn, spec.schema_id, spec.start_ms, spec.end_ms, |r| {
            if batches.push(r.id, r.file_name, r.created_at, r.extraction)? && should_stop(progress(batches)) {
                stopped = true;
                return Ok(false);
            }
            Ok::<bool, EngineError>(true)
        })?;
        Ok(!stopped && !should_stop(progress(batches)))
    })?;
    let Some(records) = records else {
        return Ok(None);
    };
    sink.flush()?;
    Ok(Some(records))
}

fn progress<W: Write>(batches: &batches::Batches<W>) -> Progress {
    let (results_read, rows_written) = batches.progress();
    Progress { results_read, rows_written }
}
