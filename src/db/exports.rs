//! Export jobs: their rows, and the atomic claim/complete/fail steps the workers take.

use super::sql::{args, Arg, Sql};
use rusqlite::{params, OptionalExtension, Row};

use super::{list_page, DbError, DbResult, ListSource};
use crate::domain::export::{CsvOptions, ExportStatus};
use crate::domain::list::ListQuery;
use crate::domain::time::now_ms;
use crate::domain::webhook::EventType;

/// An export as stored. Also kept as JSON (serde) in a webhook event: what the export was
/// when the event happened.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ExportRow {
    pub id: String,
    pub team_id: String,
    pub schema_id: String,
    /// The schema's current name (joined); `None` if it is gone.
    pub schema_name: Option<String>,
    pub status: ExportStatus,
    pub start_ms: i64,
    pub end_ms: i64,
    pub expand_array: Option<String>,
    pub options: CsvOptions,
    /// Data records written: so far while PROCESSING, all of them once COMPLETED.
    pub row_count: Option<i64>,
    /// Results of the range read so far (all of them once COMPLETED); `None` until it runs.
    pub results_done: Option<i64>,
    /// Results in the range when the job started; `None` until it runs.
    pub results_total: Option<i64>,
    pub file_size: Option<i64>,
    pub error: Option<String>,
    pub attempts: i64,
    pub created_at: i64,
    pub updated_at: i64,
    pub completed_at: Option<i64>,
}

const COLUMNS: &str = "e.id, e.team_id, e.schema_id, s.name, e.status, e.start_ms, e.end_ms, e.expand_array,
    e.options, e.row_count, e.file_size, e.error, e.attempts, e.created_at, e.updated_at, e.completed_at,
    e.results_done, e.results_total";
const FROM: &str = "exports e LEFT JOIN schemas s ON s.id = e.schema_id";

/// Reads a row; the outer error is SQLite's, the inner one a row whose status or options
/// no code writes (`DbError::Corrupt`: reported, not guessed at).
fn from_row(r: &Row) -> rusqlite::Result<DbResult<ExportRow>> {
    let id: String = r.get(0)?;
    // read in place: both are parsed, not kept (two allocations a row fewer in every list)
    let status = r.get_ref(4)?.as_str()?;
    let options = r.get_ref(8)?.as_str()?;
    let (status, options) = match parse(&id, status, options) {
        Ok(v) => v,
        Err(e) => return Ok(Err(e)),
    };
    Ok(Ok(ExportRow {
        id,
        team_id: r.get(1)?,
        schema_id: r.get(2)?,
        schema_name: r.get(3)?,
        status,
        start_ms: r.get(5)?,
        end_ms: r.get(6)?,
        expand_array: r.get(7)?,
        options,
        row_count: r.get(9)?,
        file_size: r.get(10)?,
        error: r.get(11)?,
        attempts: r.get(12)?,
        created_at: r.get(13)?,
        updated_at: r.get(14)?,
        completed_at: r.get(15)?,
        results_done: r.get(16)?,
        results_total: r.get(17)?,
    }))
}

/// An export's stored status and options, parsed; `DbError::Corrupt` names what no code writes.
fn parse(id: &str, status: &str, options: &str) -> DbResult<(ExportStatus, CsvOptions)> {
    let corrupt = |what: String| DbError::Corrupt { table: "exports", id: id.to_string(), what };
    let status = ExportStatus::parse(status).ok_or_else(|| corrupt(format!("unknown status {status:?}")))?;
    let options = serde_json::from_str(options).map_err(|e| corrupt(format!("unreadable options {options:?}: {e}")))?;
    Ok((status, options))
}

/// Reads a row of `SELECT {COLUMNS} FROM {FROM}` on either database: SQLite's through
/// `from_row` (the list's hot path, unchanged), PostgreSQL's through the seam's conversions.
pub(crate) fn read_row(r: &super::sql::Row) -> DbResult<ExportRow> {
    if let super::sql::Row::Lite(l) = r {
        return from_row(l)?;
    }
    let id = r.text(0)?;
    let (status, options) = parse(&id, &r.text(4)?, &r.text(8)?)?;
    Ok(ExportRow {
        team_id: r.text(1)?,
        schema_id: r.text(2)?,
        schema_name: r.opt_text(3)?,
        status,
        start_ms: r.int(5)?,
        end_ms: r.int(6)?,
        expand_array: r.opt_text(7)?,
        options,
        row_count: r.opt_int(9)?,
        file_size: r.opt_int(10)?,
        error: r.opt_text(11)?,
        attempts: r.int(12)?,
        created_at: r.int(13)?,
        updated_at: r.int(14)?,
        completed_at: r.opt_int(15)?,
        results_done: r.opt_int(16)?,
        results_total: r.opt_int(17)?,
        id,
    })
}

/// Whether `id` can be an export's id: its lowercase hyphenated UUID form. On PostgreSQL an
/// id column is a `uuid`, which any other text could not be compared with; such an id
/// names no export there, as on SQLite (where no row has it).
fn is_id(id: &str) -> bool {
    uuid::Uuid::try_parse(id).is_ok_and(|u| u.hyphenated().to_string() == id)
}

/// The arguments of [`get_where`]'s filter: texts (`[&str; N]`, as the callers of the SQLite
/// form pass them) or [`Arg`]s.
pub(crate) trait WhereArgs {
    fn with<T>(&self, f: impl FnOnce(&[Arg]) -> T) -> T;
}

impl<const N: usize> WhereArgs for [&str; N] {
    fn with<T>(&self, f: impl FnOnce(&[Arg]) -> T) -> T {
        f(&self.map(Arg::Text))
    }
}

impl WhereArgs for &[Arg<'_>] {
    fn with<T>(&self, f: impl FnOnce(&[Arg]) -> T) -> T {
        f(self)
    }
}

/// One job by id, as `from_row` reads it.
pub(super) fn get_where(conn: &dyn Sql, filter: &str, args: impl WhereArgs) -> DbResult<Option<ExportRow>> {
    let sql = format!("SELECT {COLUMNS} FROM {FROM} WHERE {filter}");
    args.with(|args| {
        if let Some(c) = conn.lite() {
            return super::query_row_cached(c, &sql, rusqlite::params_from_iter(args), from_row)
                .optional()?
                .transpose();
        }
        conn.opt(&sql, args, read_row)
    })
}

pub fn insert(conn: &dyn Sql, e: &ExportRow) -> DbResult<()> {
    const INSERT: &str = "INSERT INTO exports (id, team_id, schema_id, status, start_ms, end_ms, expand_array, options,
                              created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)";
    let options = serde_json::to_string(&e.options).expect("options serialize");
    if let Some(conn) = conn.lite() {
        super::execute_cached(
            conn,
            INSERT,
            params![
                e.id,
                e.team_id,
                e.schema_id,
                e.status.as_str(),
                e.start_ms,
                e.end_ms,
                e.expand_array,
                options,
                e.created_at,
                e.updated_at
            ],
        )?;
        return Ok(());
    }
    conn.exec(
        INSERT,
        args![
            &e.id,
            &e.team_id,
            &e.schema_id,
            e.status.as_str(),
            e.start_ms,
            e.end_ms,
            &e.expand_array,
            &options,
            e.created_at,
            e.updated_at
        ],
    )?;
    if e.status == ExportStatus::Pending {
        // delivered at commit: idle workers of every replica that LISTEN wake up (jobs/runner.rs)
        conn.exec("SELECT pg_notify('exports_jobs', '')", &[])?;
    }
    Ok(())
}

/// Per-team quotas checked when an export is created; `0` / `None` is no limit.
#[derive(Debug, Clone, Copy)]
pub struct Quotas {
    /// Most PENDING + PROCESSING exports a team may have.
    pub max_queued: u32,
    /// Most bytes of export files a team may keep.
    pub max_storage: Option<u64>,
}

/// Why a new export was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QuotaExceeded {
    /// The team already has `queued` exports PENDING or PROCESSING.
    Queued { queued: u64, max: u32 },
    /// The team's export files already take `used` bytes.
    Storage { used: u64, max: u64 },
}

/// Inserts a new job unless the team is at a quota. Run it on the writer: counting and
/// inserting then happen in one write transaction, so concurrent creates cannot overshoot.
pub fn insert_within_quotas(conn: &dyn Sql, e: &ExportRow, quotas: Quotas) -> DbResult<Result<(), QuotaExceeded>> {
    const QUEUED: &str = "SELECT COUNT(*) FROM exports WHERE team_id = ?1 AND status IN ('PENDING', 'PROCESSING')";
    // (PostgreSQL's SUM of a BIGINT is a NUMERIC: cast back)
    const USED: &str = "SELECT CAST(COALESCE(SUM(file_size), 0) AS BIGINT) FROM exports
         WHERE team_id = ?1 AND file_size IS NOT NULL";
    let count = |sql: &str| -> DbResult<i64> {
        match conn.lite() {
            Some(tx) => Ok(super::query_row_cached(tx, sql, [&e.team_id], |r| r.get(0))?),
            None => conn.one(sql, args![&e.team_id], |r| r.int(0)),
        }
    };
    if quotas.max_queued > 0 {
        let queued = count(QUEUED)?;
        if queued as u64 >= u64::from(quotas.max_queued) {
            return Ok(Err(QuotaExceeded::Queued { queued: queued as u64, max: quotas.max_queued }));
        }
    }
    if let Some(max) = quotas.max_storage {
        let used = count(USED)?;
        if used.max(0) as u64 >= max {
            return Ok(Err(QuotaExceeded::Storage { used: used.max(0) as u64, max }));
        }
    }
    insert(conn, e)?;
    Ok(Ok(()))
}

pub fn get(conn: &dyn Sql, team_id: &str, id: &str) -> DbResult<Option<ExportRow>> {
    if conn.pg().is_some() && !is_id(id) {
        return Ok(None);
    }
    get_where(conn, "e.id = ?1 AND e.team_id = ?2", [id, team_id])
}

/// A page of a team's exports and their total; `counts` remembers unfiltered totals.
pub fn list(
    conn: &dyn Sql,
    team_id: &str,
    q: &ListQuery,
    counts: Option<&super::counts::ListCounts>,
) -> DbResult<(Vec<ExportRow>, u64)> {
    let src = ListSource {
        table: "exports e",
        team_column: "team_id",
        from: FROM,
        columns: COLUMNS,
        prefix: "e.",
        search: &["e.id", "e.status", "e.schema_id", "s.name", "e.expand_array"],
        // a job's status and updated_at change as it runs (counted by a trigger, migration 4)
        moving: &["status", "updated_at"],
        indexed: &["created_at", "updated_at", "status", "start_ms", "end_ms"],
        binary_ids: false,
    };
    list_page(conn, &src, team_id, q, counts, read_row)
}

/// The team of export `id`, if it exists.
pub fn get_team_of(conn: &dyn Sql, id: &str) -> DbResult<Option<String>> {
    if conn.pg().is_some() && !is_id(id) {
        return Ok(None);
    }
    conn.opt("SELECT team_id FROM exports WHERE id = ?1", args![id], |r| r.text(0))
}

/// What a delete removed: what it takes to stop the job and remove the file. Read column by
/// column, so that a row whose status or options are damaged can still be deleted.
#[derive(Debug)]
pub struct Removed {
    pub id: String,
    pub team_id: String,
    /// `None` when the stored status is not one the service writes.
    pub status: Option<ExportStatus>,
    /// `None` when the stored options cannot be read: either file name may exist.
    pub gzip: Option<bool>,
    pub file_size: Option<i64>,
}

impl From<&ExportRow> for Removed {
    fn from(r: &ExportRow) -> Removed {
        Removed {
            id: r.id.clone(),
            team_id: r.team_id.clone(),
            status: Some(r.status),
            gzip: Some(r.options.gzip),
            file_size: r.file_size,
        }
    }
}

/// Deletes export `id` of `team_id`; `None` when the team has no such export. A damaged row
/// (an unknown status, unreadable options) is deleted too: it is what a user deletes it for.
pub fn delete(conn: &dyn Sql, team_id: &str, id: &str) -> DbResult<Option<Removed>> {
    if conn.pg().is_some() && !is_id(id) {
        return Ok(None);
    }
    let removed = conn.opt(
        "SELECT id, team_id, status, options, file_size FROM exports WHERE id = ?1 AND team_id = ?2",
        args![id, team_id],
        |r| {
            Ok(Removed {
                id: r.text(0)?,
                team_id: r.text(1)?,
                status: ExportStatus::parse(&r.text(2)?),
                gzip: serde_json::from_str::<CsvOptions>(&r.text(3)?).ok().map(|o| o.gzip),
                file_size: r.opt_int(4)?,
            })
        },
    )?;
    if removed.is_some() {
        conn.exec("DELETE FROM exports WHERE id = ?1", args![id])?;
    }
    Ok(removed)
}

/// How many times a job may be started before it is given up (a job whose process keeps
/// dying while it runs must not stay PROCESSING forever).
pub const MAX_ATTEMPTS: i64 = 3;

/// What [`claim_next`] did: the job it took, if any, and the jobs it marked FAILED on the way.
#[derive(Debug, Default)]
pub struct Claimed {
    pub job: Option<ExportRow>,
    pub failed: Vec<FailedAtClaim>,
    /// Webhook deliveries enqueued for the jobs marked FAILED.
    pub webhooks: usize,
}

/// A job [`claim_next`] marked FAILED instead of running it.
#[derive(Debug)]
pub struct FailedAtClaim {
    pub id: String,
    pub team_id: String,
    pub attempts: i64,
    pub error: String,
}

/// The database's clock in milliseconds, on PostgreSQL: leases are set and compared by it,
/// so replicas whose clocks differ agree on when one lapses. (`now()`, the transaction's
/// start, is stable within a statement: the lease index can be searched with it.)
const PG_NOW_MS: &str = "CAST(EXTRACT(EPOCH FROM now()) * 1000 AS BIGINT)";

/// Atomically takes the oldest job that is waiting, and returns it (its `attempts` counting
/// this one). What is waiting:
/// - on SQLite, PENDING jobs, and PROCESSING ones under an earlier run of the service
///   (`claimed_by` differs from this run's `run_id`: its process died; one process at a time
///   opens the data folder, so no other process can be running them);
/// - on PostgreSQL, which several replicas share, PENDING jobs, and PROCESSING ones whose
///   lease has lapsed (`lease_until` passed, by the database's clock: the worker holding it
///   stopped renewing it — it died, or lost the database), or that have none (written
///   beside the service), under another run. The claim
///   takes a lease of `lease` on the job, which the worker renews (see [`renew`]) while it
///   runs it; the rows are read `FOR UPDATE SKIP LOCKED`.
///
/// Jobs that have already been tried `MAX_ATTEMPTS` times, and rows that cannot be read,
/// are marked FAILED instead (and reported in [`Claimed::failed`]). Run it on the writer (one
/// transaction).
pub fn claim_next(conn: &dyn Sql, run_id: &str, lease: std::time::Duration) -> DbResult<Claimed> {
    let lease_ms = lease.as_millis().min(i64::MAX as u128) as i64;
    let mut claimed = Claimed::default();
    loop {
        // two walks of the `exports_queue` index (on PostgreSQL the second walks
        // `exports_leases`), each stopping at its first row: one query with OR would sort
        // every waiting job
        let oldest =
            |sql: &str, args: &[Arg]| conn.opt(sql, args, |r| Ok((r.int(0)?, r.text(1)?, r.int(2)?, r.text(3)?)));
        let (pending, orphan) = if conn.lite().is_some() {
            (
                oldest(
                    "SELECT created_at, id, attempts, team_id FROM exports WHERE status = 'PENDING'
                     ORDER BY created_at, id LIMIT 1",
                    &[],
                )?,
                oldest(
                    "SELECT created_at, id, attempts, team_id FROM exports
                     WHERE status = 'PROCESSING' AND COALESCE(claimed_by, '') <> ?1 ORDER BY created_at, id LIMIT 1",
                    args![run_id],
                )?,
            )
        } else {
            // the global write lock (db/pg/writer.rs) already serialises claims; SKIP LOCKED
            // says what a claim needs, should that lock ever be narrowed
            (
                oldest(
                    "SELECT created_at, id, attempts, team_id FROM exports WHERE status = 'PENDING'
                     ORDER BY created_at, id LIMIT 1 FOR UPDATE SKIP LOCKED",
                    &[],
                )?,
                oldest(
                    &format!(
                        "SELECT created_at, id, attempts, team_id FROM exports
                         WHERE status = 'PROCESSING' AND (lease_until < {PG_NOW_MS} OR lease_until IS NULL)
                               AND COALESCE(claimed_by, '') <> ?1
                         ORDER BY created_at, id LIMIT 1 FOR UPDATE SKIP LOCKED"
                    ),
                    args![run_id],
                )?,
            )
        };
        let next = match (pending, orphan) {
            (Some(p), Some(o)) => Some(if (o.0, &o.1) < (p.0, &p.1) { o } else { p }),
            (p, o) => p.or(o),
        };
        let Some((_, id, attempts, team_id)) = next else {
            return Ok(claimed);
        };
        let now = now_ms();
        let mut fail = |error: String| -> DbResult<()> {
            conn.exec(
                "UPDATE exports SET status = 'FAILED', updated_at = ?2, claimed_by = NULL, error = ?3 WHERE id = ?1",
                args![&id, now, &error],
            )?;
            claimed.webhooks += super::deliveries::enqueue(conn, EventType::ExportFailed, &id)?;
            claimed.failed.push(FailedAtClaim { id: id.clone(), team_id: team_id.clone(), attempts, error });
            Ok(())
        };
        if attempts >= MAX_ATTEMPTS {
            fail(format!(
                "The export was interrupted {attempts} times because the service stopped while it ran; create it again."
            ))?;
            continue;
        }
        if conn.lite().is_some() {
            conn.exec(
                "UPDATE exports SET status = 'PROCESSING', claimed_by = ?2, attempts = attempts + 1, updated_at = ?3,
                        row_count = NULL, results_done = NULL, results_total = NULL
                 WHERE id = ?1",
                args![&id, run_id, now],
            )?;
        } else {
            conn.exec(
                &format!(
                    "UPDATE exports SET status = 'PROCESSING', claimed_by = ?2, attempts = attempts + 1, updated_at = ?3,
                            row_count = NULL, results_done = NULL, results_total = NULL, lease_until = {PG_NOW_MS} + ?4
                     WHERE id = ?1"
                ),
                args![&id, run_id, now, lease_ms],
            )?;
        }
        match get_where(conn, "e.id = ?1", args![&id]) {
            Ok(Some(row)) => {
                claimed.job = Some(row);
                return Ok(claimed);
            }
            // the row cannot be run: it fails with a message, and the next job is taken
            Err(e @ DbError::Corrupt { .. }) => {
                tracing::error!(error = %e, "an export job cannot be read; it is marked FAILED");
                fail("The export job is damaged in the database and cannot run; create it again.".into())?;
            }
            Ok(None) => continue, // not reachable: the row was just updated
            Err(e) => return Err(e),
        }
    }
}

/// Renews the lease this run holds on a running job (PostgreSQL): it lapses `lease` from now,
/// by the database's clock. False when the job is no longer this run's (deleted, finished, or
/// taken over by another replica after the lease lapsed): its worker must stop. On SQLite,
/// which has no leases, only that check.
pub fn renew(conn: &dyn Sql, id: &str, run_id: &str, lease: std::time::Duration) -> DbResult<bool> {
    if conn.lite().is_some() {
        return Ok(conn
            .opt(
                "SELECT 1 FROM exports WHERE id = ?1 AND status = 'PROCESSING' AND claimed_by = ?2",
                args![id, run_id],
                |_| Ok(()),
            )?
            .is_some());
    }
    let lease_ms = lease.as_millis().min(i64::MAX as u128) as i64;
    Ok(conn.exec(
        &format!(
            "UPDATE exports SET lease_until = {PG_NOW_MS} + ?3
             WHERE id = ?1 AND status = 'PROCESSING' AND claimed_by = ?2"
        ),
        args![id, run_id, lease_ms],
    )? > 0)
}

/// How far a running job has got, as [`progress`] records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobProgress {
    pub row_count: i64,
    pub results_done: i64,
    pub results_total: i64,
}

/// Records how far a job this run holds has got (one small update; `updated_at` is left
/// alone, so lists sorted by it keep their bookmarks). False when the job is no longer ours.
pub fn progress(conn: &dyn Sql, id: &str, run_id: &str, p: JobProgress) -> DbResult<bool> {
    Ok(conn.exec(
        "UPDATE exports SET row_count = ?3, results_done = ?4, results_total = ?5
         WHERE id = ?1 AND status = 'PROCESSING' AND claimed_by = ?2",
        args![id, run_id, p.row_count, p.results_done, p.results_total],
    )? > 0)
}

/// Marks a job this run holds COMPLETED, with `results` (the results in its range when it
/// started) as both its results done and total. False when the job was deleted meanwhile (or,
/// on PostgreSQL, taken over by another replica).
pub fn complete(
    conn: &dyn Sql,
    id: &str,
    run_id: &str,
    row_count: i64,
    file_size: i64,
    results: i64,
) -> DbResult<bool> {
    let now = now_ms();
    Ok(conn.exec(
        "UPDATE exports SET status = 'COMPLETED', row_count = ?3, file_size = ?4, error = NULL,
                completed_at = ?5, updated_at = ?5, claimed_by = NULL, results_done = ?6, results_total = ?6
         WHERE id = ?1 AND status = 'PROCESSING' AND claimed_by = ?2",
        args![id, run_id, row_count, file_size, now, results],
    )? > 0)
}

/// Marks a job this run holds FAILED, with a message for the user.
pub fn fail(conn: &dyn Sql, id: &str, run_id: &str, error: &str) -> DbResult<bool> {
    Ok(conn.exec(
        "UPDATE exports SET status = 'FAILED', error = ?3, updated_at = ?4, claimed_by = NULL
         WHERE id = ?1 AND status = 'PROCESSING' AND claimed_by = ?2",
        args![id, run_id, error, now_ms()],
    )? > 0)
}

/// Finished jobs (COMPLETED or FAILED) last changed before `cutoff`, to be deleted with their
/// files.
///
/// The search reads (call it on a pool connection, not the writer: it may scan every
/// finished job); `delete_finished` then deletes them in small batches.
pub fn finished_before(conn: &dyn Sql, cutoff: i64) -> DbResult<Vec<ExportRow>> {
    conn.rows(
        &format!("SELECT {COLUMNS} FROM {FROM} WHERE e.status IN ('COMPLETED', 'FAILED') AND e.updated_at < ?1"),
        args![cutoff],
        read_row,
    )
}

/// Deletes those of `ids` that are still finished and last changed before `cutoff`, each
/// with its `export.deleted` webhook event; returns the ids it deleted and the webhook
/// deliveries it enqueued.
pub fn delete_finished(conn: &dyn Sql, ids: &[String], cutoff: i64) -> DbResult<(Vec<String>, usize)> {
    let (mut deleted, mut hooks) = (Vec::new(), 0);
    for id in ids {
        let still = conn.opt(
            "SELECT 1 FROM exports WHERE id = ?1 AND status IN ('COMPLETED', 'FAILED') AND updated_at < ?2",
            args![id, cutoff],
            |_| Ok(()),
        )?;
        if still.is_none() {
            continue;
        }
        hooks += super::deliveries::enqueue(conn, EventType::ExportDeleted, id)?;
        if conn.exec("DELETE FROM exports WHERE id = ?1", args![id])? > 0 {
            deleted.push(id.clone());
        }
    }
    Ok((deleted, hooks))
}

/// Jobs waiting for a worker (PENDING), for the `exports_jobs_queued` gauge: counted from
/// the `exports_queue` index, so the cost follows the queue, not the history.
pub fn count_pending(conn: &dyn Sql) -> DbResult<u64> {
    let n = conn.one("SELECT COUNT(*) FROM exports WHERE status = 'PENDING'", &[], |r| r.int(0))?;
    Ok(n.max(0) as u64)
}

/// Ids of every job, for removing files that no job owns any more.
pub fn all_ids(conn: &dyn Sql) -> DbResult<std::collections::HashSet<String>> {
    Ok(conn.rows("SELECT id FROM exports", &[], |r| r.text(0))?.into_iter().collect())
}

/// Gives a job back at shutdown, and this interrupted attempt does not count. On SQLite it
/// stays PROCESSING under this run's id, so the next start takes it up again; on PostgreSQL
/// its lease lapses at once, so another replica (or the next start) takes it over without
/// waiting for the lease.
pub fn release(conn: &dyn Sql, id: &str, run_id: &str) -> DbResult<bool> {
    let sql = if conn.lite().is_some() {
        "UPDATE exports SET attempts = MAX(attempts - 1, 0) WHERE id = ?1 AND status = 'PROCESSING' AND claimed_by = ?2"
    } else {
        "UPDATE exports SET attempts = GREATEST(attempts - 1, 0), lease_until = 0
         WHERE id = ?1 AND status = 'PROCESSING' AND claimed_by = ?2"
    };
    Ok(conn.exec(sql, args![id, run_id])? > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending(team: &str, schema: &str) -> ExportRow {
        ExportRow {
            id: uuid::Uuid::now_v7().to_string(),
            team_id: team.into(),
            schema_id: schema.into(),
            schema_name: None,
            status: ExportStatus::Pending,
            start_ms: 0,
            end_ms: 1,
            expand_array: None,
            options: CsvOptions::default(),
            row_count: None,
            results_done: None,
            results_total: None,
            file_size: None,
            error: None,
            attempts: 0,
            created_at: now_ms(),
            updated_at: now_ms(),
            completed_at: None,
        }
    }

    /// Many threads creating at once through the writer never queue more than the cap, also
    /// when their creates share a commit.
    #[test]
    fn concurrent_inserts_stop_exactly_at_the_queued_cap() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("q.db");
        let pool = crate::db::open(&path, 20, std::time::Duration::from_secs(5)).unwrap();
        let writer = crate::db::Writer::open(&path, std::time::Duration::from_secs(5)).unwrap();
        let team = crate::db::keys::create_team(&pool.get().unwrap(), "t").unwrap().id;
        pool.get()
            .unwrap()
            .execute(
                "INSERT INTO schemas (id, team_id, name, definition, created_at, updated_at)
                 VALUES ('s', ?1, 's', '{\"fields\":[]}', 0, 0)",
                [&team],
            )
            .unwrap();
        let quotas = Quotas { max_queued: 10, max_storage: None };
        let barrier = std::sync::Arc::new(std::sync::Barrier::new(16));
        let threads: Vec<_> = (0..16)
            .map(|_| {
                let (writer, team, barrier) = (writer.clone(), team.clone(), barrier.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    (0..8)
                        .filter(|_| {
                            let e = pending(&team, "s");
                            writer.run(move |c| insert_within_quotas(c, &e, quotas)).unwrap().is_ok()
                        })
                        .count()
                })
            })
            .collect();
        let created: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
        assert_eq!(created, 10);
        let e = pending(&team, "s");
        let refused = writer.run(move |c| insert_within_quotas(c, &e, quotas)).unwrap();
        assert_eq!(refused, Err(QuotaExceeded::Queued { queued: 10, max: 10 }));
    }

    /// A row with a status or options no code writes is an error naming the row, not a
    /// FAILED export or default options (the API answers it with a 500: see `error`).
    #[test]
    fn a_corrupt_row_is_an_error_not_a_guess() {
        let dir = tempfile::tempdir().unwrap();
        let pool = crate::db::open(&dir.path().join("c.db"), 2, std::time::Duration::from_secs(5)).unwrap();
        let conn = pool.get().unwrap();
        let team = crate::db::keys::create_team(&conn, "t").unwrap().id;
        conn.execute(
            "INSERT INTO schemas (id, team_id, name, definition, created_at, updated_at)
             VALUES ('s', ?1, 's', '{\"fields\":[]}', 0, 0)",
            [&team],
        )
        .unwrap();
        let e = pending(&team, "s");
        insert(&conn, &e).unwrap();
        assert_eq!(get(&conn, &team, &e.id).unwrap().unwrap().status, ExportStatus::Pending);

        conn.execute("UPDATE exports SET status = 'DONE-ISH' WHERE id = ?1", [&e.id]).unwrap();
        match get(&conn, &team, &e.id) {
            Err(DbError::Corrupt { table: "exports", id, what }) => {
                assert_eq!(id, e.id);
                assert!(what.contains("DONE-ISH"), "{what}");
            }
            other => panic!("a row with an unknown status read as {other:?}"),
        }
        let q = crate::domain::list::ListQuery {
            page: 1,
            limit: 20,
            sort_column: "created_at",
            descending: false,
            search: None,
            created_after: None,
            created_before: None,
        };
        assert!(matches!(list(&conn, &team, &q, None), Err(DbError::Corrupt { .. })), "the list hid the row");

        conn.execute("UPDATE exports SET status = 'PENDING', options = '{\"delimiter\": 7}' WHERE id = ?1", [&e.id])
            .unwrap();
        assert!(matches!(get(&conn, &team, &e.id), Err(DbError::Corrupt { what, .. }) if what.contains("options")));
        // a worker does not run it with default options: the job fails with a message
        let claimed = claim_next(&conn, "run", std::time::Duration::from_secs(15)).unwrap();
        assert!(claimed.job.is_none());
        assert_eq!(claimed.failed.len(), 1, "the failed job is reported, to be counted and logged");
        assert_eq!(claimed.failed[0].id, e.id);
        let (status, error): (String, Option<String>) = conn
            .query_row("SELECT status, error FROM exports WHERE id = ?1", [&e.id], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap();
        assert_eq!(status, "FAILED");
        assert!(error.unwrap_or_default().contains("damaged"));
    }
}
