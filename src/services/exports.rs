//! Export jobs: creating one (schema lookup, `expand_array` check, quotas) and deleting one
//! (its row, a running job, its file).

use crate::db::Sql;

use crate::db::exports::{ExportRow, QuotaExceeded, Quotas, Removed};
use crate::db::DbError;
use crate::domain::export::{check_expand_array, ExportStatus, NewExport};
use crate::domain::time::now_ms;
use crate::domain::webhook::EventType;
use crate::jobs::runner::{forget_deleted, Jobs};
use crate::metrics::Metrics;

/// Why an export was not created; nothing was stored.
#[derive(Debug)]
pub enum CreateError {
    /// The team has no schema with that id.
    SchemaNotFound,
    /// `expand_array` does not name a top-level array field of the schema (the message says
    /// which fields would do).
    ExpandArray(String),
    /// `columns` names a column the export does not have, or one twice (the message lists
    /// the names allowed).
    Columns(String),
    /// The team is at one of its quotas.
    Quota(QuotaExceeded),
    Db(DbError),
}

impl From<DbError> for CreateError {
    fn from(e: DbError) -> Self {
        CreateError::Db(e)
    }
}

/// Why an export was not deleted.
#[derive(Debug)]
pub enum DeleteError {
    /// The team has no export with that id.
    NotFound,
    Db(DbError),
}

impl From<DbError> for DeleteError {
    fn from(e: DbError) -> Self {
        DeleteError::Db(e)
    }
}

/// Stores a new PENDING export of `team` within its quotas, on the write connection `c` (in
/// the caller's transaction), and returns its row. Wake the workers once it is committed.
pub fn create(c: &dyn Sql, team: String, new: NewExport, quotas: Quotas) -> Result<ExportRow, CreateError> {
    let schema = crate::db::schemas::get(c, &team, &new.schema_id)?.ok_or(CreateError::SchemaNotFound)?;
    if let Some(key) = &new.expand_array {
        check_expand_array(&schema.definition, key).map_err(CreateError::ExpandArray)?;
    }
    // the chosen columns exist (and are named once): the plan the job will run
    crate::jobs::csv::CsvPlan::new(&schema.definition, new.expand_array.as_deref(), &new.options)
        .map_err(CreateError::Columns)?;
    let now = now_ms();
    let row = ExportRow {
        id: uuid::Uuid::now_v7().to_string(),
        team_id: team,
        schema_id: new.schema_id,
        schema_name: Some(schema.name),
        status: ExportStatus::Pending,
        start_ms: new.start_ms,
        end_ms: new.end_ms,
        expand_array: new.expand_array,
        options: new.options,
        row_count: None,
        results_done: None,
        results_total: None,
        file_size: None,
        error: None,
        attempts: 0,
        created_at: now,
        updated_at: now,
        completed_at: None,
    };
    crate::db::exports::insert_within_quotas(c, &row, quotas)?.map_err(CreateError::Quota)?;
    Ok(row)
}

/// Deletes export `id` of `team` on the write connection `c` (in the caller's transaction),
/// with its `export.deleted` webhook event, and returns its row and the webhook deliveries
/// enqueued; once that is committed, [`finish_delete`] stops its job, removes its file and
/// rings the webhook worker.
pub fn delete(c: &dyn Sql, team: &str, id: &str) -> Result<(Removed, usize), DeleteError> {
    // only the team's own export has an event
    if crate::db::exports::get_team_of(c, id)?.as_deref() != Some(team) {
        return Err(DeleteError::NotFound);
    }
    let hooks = crate::db::deliveries::enqueue(c, EventType::ExportDeleted, id)?;
    let removed = crate::db::exports::delete(c, team, id)?.ok_or(DeleteError::NotFound)?;
    Ok((removed, hooks))
}

/// After a committed [`delete`]: a PROCESSING job is told to stop (its worker removes its
/// partial file; a job that finishes first finds its row gone and never gives its file the
/// final name) and a finished file (or object) is removed. Not on the writer thread: unlinking
/// a large file can take a second on ext4 (deleting an object, a round trip), and every write
/// would wait for it. A file that cannot be
/// removed is logged, not an error: the export is gone either way. Counted in `metrics` and
/// logged as the job's last state change.
pub fn finish_delete(jobs: &Jobs, metrics: &Metrics, row: &Removed, webhooks: usize) {
    if webhooks > 0 {
        jobs.ring_webhooks();
    }
    // a damaged status may hide a running job: telling a job that is not running is harmless
    if row.status.is_none_or(|s| s == ExportStatus::Processing) {
        jobs.cancel(&row.id);
    }
    forget_deleted(jobs.store(), metrics, row, "api");
}
