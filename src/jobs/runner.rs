//! The worker pool: named threads that claim export jobs from SQLite, write their files
//! through the file store (a local temporary name, fsync, rename; or an S3 multipart upload),
//! and record the outcome. Also the retention sweeper.

use std::collections::HashSet;
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::engine::{write_export, EngineError, ExportSpec, Progress};
use crate::data_dir::DataDir;
use crate::db::{self, Pool};
use crate::domain::time::{now_ms, Clock};
use crate::domain::webhook::EventType;
use crate::metrics::{self, Metrics};
use crate::storage::write_behind::WriteBehind;
use crate::storage::{Finished, Publish, Store};

/// Handle on the running workers; cheap to clone.
#[derive(Clone)]
pub struct Jobs {
    shared: Arc<Shared>,
}

struct Shared {
    pool: Pool,
    writer: db::Writer,
    data_dir: DataDir,
    /// Where export files live.
    store: Store,
    /// Identifies this run of the service; a PROCESSING job claimed under another run id
    /// belongs to a process that died, and is taken up again.
    run_id: String,
    wake: Mutex<u64>,
    cv: Condvar,
    cancelled: Mutex<HashSet<String>>,
    stopping: AtomicBool,
    threads: Mutex<Vec<JoinHandle<()>>>,
    settings: Settings,
    metrics: Arc<Metrics>,
    /// Rung after a commit that enqueued webhook deliveries.
    webhooks: db::deliveries::Doorbell,
}

/// How the workers and the periodic sweep run.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Export jobs that run at once; 0 runs none here (`serve --role api`: worker processes
    /// sharing the database run them).
    pub workers: usize,
    /// COMPLETED/FAILED exports older than this are deleted; `None` keeps them.
    pub retention: Option<Duration>,
    /// How often the sweep runs (exports past retention, expired idempotency keys).
    pub sweep_every: Duration,
    /// What idempotency keys expire by.
    pub clock: Clock,
    /// A test hook: every batch of an export waits this long, so a test can watch it run.
    pub batch_pause: Option<Duration>,
    /// On PostgreSQL, how long a claimed job's lease lasts: its worker renews it every third
    /// of this, and another replica takes the job over once it has lapsed (its worker died).
    pub lease: Duration,
    /// On PostgreSQL, the database's URL: a connection of its own `LISTEN`s for new jobs, so
    /// idle workers of every replica wake up when one is created anywhere.
    pub listen: Option<String>,
}

/// A running job's progress is recorded this often (one small write; never per row).
const PROGRESS_EVERY: Duration = Duration::from_secs(1);

impl Jobs {
    /// Tidies the file store (removing half-written files and files no job owns) and
    /// starts `settings.workers` export threads plus the periodic sweeper. Their work is
    /// counted in `metrics`, and each job's state changes are logged at INFO with their figures.
    /// A job that turns COMPLETED or FAILED, or is deleted by retention, enqueues its webhook
    /// event in the same write and then rings `webhooks`.
    pub fn start(
        pool: Pool,
        writer: db::Writer,
        data_dir: DataDir,
        store: Store,
        settings: Settings,
        metrics: Arc<Metrics>,
        webhooks: db::deliveries::Doorbell,
    ) -> std::io::Result<Jobs> {
        let workers = settings.workers;
        let shared = Arc::new(Shared {
            pool,
            writer,
            data_dir,
            store,
            run_id: uuid::Uuid::now_v7().to_string(),
            wake: Mutex::new(0),
            cv: Condvar::new(),
            cancelled: Mutex::new(HashSet::new()),
            stopping: AtomicBool::new(false),
            threads: Mutex::new(Vec::new()),
            settings,
            metrics,
            webhooks,
        });
        // on a thread of its own: this may be called from async code, where PostgreSQL's
        // blocking client must not run (it starts a runtime of its own)
        let tidied = std::thread::scope(|scope| {
            scope
                .spawn(|| clean_exports_dir(&shared).map_err(|e| e.to_string()))
                .join()
                .unwrap_or_else(|_| Err("tidying panicked".to_string()))
        });
        if let Err(e) = tidied {
            tracing::warn!(error = %e, "could not tidy the export files' store");
        }
        let mut threads = Vec::new();
        for i in 0..workers {
            let s = shared.clone();
            threads
                .push(std::thread::Builder::new().name(format!("export-worker-{i}")).spawn(move || worker_loop(&s))?);
        }
        let s = shared.clone();
        threads.push(std::thread::Builder::new().name("export-retention".into()).spawn(move || retention_loop(&s))?);
        // (a process that runs no export worker, `serve --role api`, has none to wake)
        if let Some(url) = shared.settings.listen.clone().filter(|_| workers > 0) {
            let s = shared.clone();
            threads
                .push(std::thread::Builder::new().name("export-listen".into()).spawn(move || listen_loop(&s, &url))?);
        }
        *shared.threads.lock().expect("threads lock") = threads;
        Ok(Jobs { shared })
    }

    /// A job was created: wake the workers.
    pub fn notify(&self) {
        wake(&self.shared);
    }

    /// Webhook deliveries were enqueued and committed: wake the delivery worker.
    pub fn ring_webhooks(&self) {
        self.shared.webhooks.ring();
    }

    /// The store export files live in.
    pub fn store(&self) -> &Store {
        &self.shared.store
    }

    /// A job was deleted: a worker running it stops within a second and removes its file.
    pub fn cancel(&self, export_id: &str) {
        self.shared.cancelled.lock().expect("cancel lock").insert(export_id.to_string());
    }

    /// Tells the workers to stop, without waiting: each leaves its job within about 100 ms.
    pub fn stop_soon(&self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        self.notify();
    }

    /// Stops the workers and waits for them. A job in progress stays claimed and is taken
    /// up again at the next start.
    pub fn shutdown(&self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        self.notify();
        let threads = std::mem::take(&mut *self.shared.threads.lock().expect("threads lock"));
        for t in threads {
            let _ = t.join();
        }
    }
}

/// Wakes the idle workers: a job may be waiting.
fn wake(s: &Shared) {
    let mut g = s.wake.lock().expect("wake lock");
    *g += 1;
    s.cv.notify_all();
}

/// The channel a PENDING export's insert notifies on PostgreSQL (`db::exports::insert`).
const JOBS_CHANNEL: &str = "exports_jobs";

/// On PostgreSQL: wakes the workers whenever a job is created, on any replica, so they need
/// not wait for their next poll (each still polls every second: a lapsed lease sends no
/// notification, and notifications sent while the listener reconnects are lost).
fn listen_loop(s: &Shared, url: &str) {
    let go_on = || !s.stopping.load(Ordering::SeqCst);
    while go_on() {
        if let Err(e) = db::pg::listen(url, JOBS_CHANNEL, &go_on, &|| wake(s)) {
            tracing::warn!(error = %e, "lost the connection listening for new export jobs; reconnecting");
            pause(s, Duration::from_secs(1));
        }
    }
}

fn worker_loop(s: &Shared) {
    while !s.stopping.load(Ordering::SeqCst) {
        let seen = *s.wake.lock().expect("wake lock");
        let (run_id, lease) = (s.run_id.clone(), s.settings.lease);
        let claimed = s.writer.run(move |c| db::exports::claim_next(c, &run_id, lease));
        if let Ok(claimed) = &claimed {
            failed_at_claim(s, &claimed.failed);
            if claimed.webhooks > 0 {
                s.webhooks.ring();
            }
        }
        match claimed.map(|c| c.job) {
            Ok(Some(job)) => run_job(s, job),
            Ok(None) => {
                let g = s.wake.lock().expect("wake lock");
                if *g == seen && !s.stopping.load(Ordering::SeqCst) {
                    let _ = s.cv.wait_timeout(g, Duration::from_secs(1));
                }
            }
            Err(db::DbError::Busy(_)) => {
                // another process (an import) holds the write lock: wait for it, quietly
                tracing::debug!("the database is busy; export workers wait");
                pause(s, Duration::from_secs(1));
            }
            Err(e) => {
                tracing::error!(error = %e, "could not claim an export job");
                pause(s, Duration::from_secs(1));
            }
        }
    }
}

/// Jobs the claim marked FAILED without running them (interrupted too often, or unreadable):
/// counted and logged like any other failure.
fn failed_at_claim(s: &Shared, failed: &[db::exports::FailedAtClaim]) {
    for f in failed {
        s.metrics.job_failed_without_running();
        log_failed(&f.id, &f.team_id, &f.error, f.attempts, None);
    }
}

/// The log line of a job that turned FAILED; `ran` is how long it ran, if it did.
fn log_failed(id: &str, team_id: &str, error: &str, attempts: i64, ran: Option<Duration>) {
    tracing::info!(
        export_id = %id,
        team_id = %team_id,
        export_status = "FAILED",
        error,
        duration_ms = ran.map(|d| d.as_millis() as u64),
        attempts,
        "export failed"
    );
}

/// Waits up to `d`, less when the workers are told to stop.
fn pause(s: &Shared, d: Duration) {
    let g = s.wake.lock().expect("wake lock");
    if !s.stopping.load(Ordering::SeqCst) {
        let _ = s.cv.wait_timeout(g, d);
    }
}

enum Outcome {
    /// `results`: the results in the job's range when it started.
    Done {
        rows: u64,
        results: u64,
        file: Finished,
    },
    Stopped,
}

/// What a job that runs out of disk space records as its error.
const DISK_FULL: &str = "disk full: the server ran out of disk space while writing the export file, and nothing was \
kept. Free space on the server (or delete old exports) and create the export again.";

/// Runs a claimed job. On PostgreSQL a thread of its own renews the job's lease meanwhile
/// (every third of the lease, whatever the job is doing: reading, writing or uploading); when
/// the renewal finds the job is no longer this run's (another replica took it over after
/// this one lost the database for longer than the lease, or it was deleted), the job is
/// stopped as a deleted one is.
fn run_job(s: &Shared, job: db::exports::ExportRow) {
    if matches!(s.pool, Pool::Pg(_)) {
        let (running, ended) = std::sync::mpsc::channel::<()>();
        std::thread::scope(|scope| {
            let id = &job.id;
            let heartbeat = std::thread::Builder::new()
                .name(format!("lease-{}", &id[..8.min(id.len())]))
                .spawn_scoped(scope, move || heartbeat(s, id, ended));
            if let Err(e) = heartbeat {
                tracing::error!(export_id = %id, error = %e, "cannot start the thread renewing a job's lease");
            }
            run_claimed(s, &job);
            drop(running);
        });
    } else {
        run_claimed(s, &job);
    }
    s.cancelled.lock().expect("cancel lock").remove(&job.id);
}

/// Renews job `id`'s lease every third of the lease until `ended` says the job is over.
fn heartbeat(s: &Shared, id: &str, ended: std::sync::mpsc::Receiver<()>) {
    let lease = s.settings.lease;
    while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = ended.recv_timeout(lease / 3) {
        let (job, run_id) = (id.to_string(), s.run_id.clone());
        match s.writer.run(move |c| db::exports::renew(c, &job, &run_id, lease)) {
            Ok(true) => {}
            Ok(false) => {
                tracing::warn!(export_id = %id, "the export is no longer this worker's (deleted, or taken over after its lease lapsed); it stops");
                s.cancelled.lock().expect("cancel lock").insert(id.to_string());
                return;
            }
            // the next renewal may succeed; the lease lapses only if none does for a whole lease
            Err(e) => tracing::warn!(export_id = %id, error = %e, "could not renew an export job's lease"),
        }
    }
}

fn run_claimed(s: &Shared, job: &db::exports::ExportRow) {
    let started = Instant::now();
    let _running = Running::new(&s.metrics);
    tracing::info!(
        export_id = %job.id,
        team_id = %job.team_id,
        export_status = "PROCESSING",
        attempt = job.attempts,
        "export started"
    );
    let cancelled = || s.cancelled.lock().expect("cancel lock").contains(&job.id);
    let outcome = loop {
        let outcome = super::priority::run_in_background(format!("export-{}", &job.id[..8]), || produce_file(s, job));
        match outcome {
            // a read that found the database busy: not the job's fault, try again
            // (the unfinished file was dropped, which removed it)
            Ok(Err(e)) if e.is_busy() && !s.stopping.load(Ordering::SeqCst) && !cancelled() => {
                tracing::debug!(export_id = %job.id, "the database is busy; the export starts over shortly");
                pause(s, Duration::from_secs(1));
            }
            other => break other,
        }
    };
    let record = |outcome: Record| record(s, &job.id, outcome);
    match outcome {
        Ok(Ok(Outcome::Done { rows, results, file })) => {
            let size = file.size;
            let complete = Record::Complete { rows, size, results, publish: file.publish() };
            match record(complete) {
                Ok(true) => {
                    s.store.sync_published();
                    let m = &s.metrics;
                    m.job_finished(metrics::JOB_COMPLETED, started.elapsed().as_secs_f64());
                    m.rows_written.inc_by(rows);
                    m.bytes_written.inc_by(size);
                    m.storage_changed(size as i64);
                    tracing::info!(
                        export_id = %job.id,
                        team_id = %job.team_id,
                        export_status = "COMPLETED",
                        rows,
                        bytes = size,
                        duration_ms = started.elapsed().as_millis() as u64,
                        attempts = job.attempts,
                        "export completed"
                    );
                }
                // deleted while it ran: its file never took its final name (an object, already
                // complete, is removed) — unless another replica took the job over (its lease
                // lapsed): then the object, under the same name, is (or will be) that worker's
                Ok(false) => {
                    if !(matches!(file.publish(), Publish::Object { .. }) && still_exists(s, &job.id)) {
                        s.store.discard(file)
                    }
                }
                // the disk filled up before the outcome could be recorded: give the space back
                Err(db::DbError::Full(_)) => {
                    let gzip = job.options.gzip;
                    s.store.discard(file);
                    let _ = s.store.remove(&job.id, gzip);
                    failed(s, job, started, DISK_FULL.into());
                }
                // the file could not take its final name: nothing was recorded
                Err(db::DbError::Io(e)) => {
                    s.store.discard(file);
                    tracing::error!(export_id = %job.id, error = %e, "export failed: its file could not be renamed");
                    let message = format!(
                        "The export could not be written: {e}. Create it again; if it keeps failing, check the server's storage (disk or object store) and log."
                    );
                    failed(s, job, started, message);
                }
                // the service is stopping (or the database failed): the job stays claimed and
                // runs again; the next start removes the files it left
                Err(_) => {}
            }
        }
        // (the unfinished file was dropped, which removed it or aborted its upload)
        Ok(Ok(Outcome::Stopped)) => {
            if s.stopping.load(Ordering::SeqCst) {
                // the service is stopping: leave it claimed; the next start takes it up again
                let _ = record(Record::Release);
                tracing::info!(
                    export_id = %job.id,
                    team_id = %job.team_id,
                    export_status = "PROCESSING",
                    "export interrupted by shutdown; it resumes at the next start"
                );
            } else {
                tracing::info!(
                    export_id = %job.id,
                    team_id = %job.team_id,
                    "export cancelled: it was deleted (or taken over by another replica)"
                );
            }
        }
        Ok(Err(e)) => {
            // the space was given back when the unfinished file was dropped
            let message = match &e {
                EngineError::Invalid(m) => m.clone(),
                e if e.is_disk_full() => {
                    tracing::error!(export_id = %job.id, error = %e, "export failed: disk full");
                    DISK_FULL.to_string()
                }
                other => {
                    tracing::error!(export_id = %job.id, error = %other, "export could not be written");
                    format!("The export could not be written: {other}. Create it again; if it keeps failing, check the server's storage (disk or object store) and log.")
                }
            };
            failed(s, job, started, message);
        }
        Err(_) => {
            tracing::error!(export_id = %job.id, "export panicked");
            let message = "An internal error stopped this export; it is in the server log. Create it again.";
            failed(s, job, started, message.into());
        }
    }
}

/// Whether export `id` still exists (false also when that cannot be read).
fn still_exists(s: &Shared, id: &str) -> bool {
    s.pool.get().ok().and_then(|c| db::exports::get_team_of(&*c, id).ok()).flatten().is_some()
}

/// Counts a job as running while it lives.
struct Running<'a>(&'a Metrics);

impl<'a> Running<'a> {
    fn new(metrics: &'a Metrics) -> Running<'a> {
        metrics.jobs_running.inc();
        Running(metrics)
    }
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.jobs_running.dec();
    }
}

/// Records FAILED with `message`; once recorded, counts and logs it.
fn failed(s: &Shared, job: &db::exports::ExportRow, started: Instant, message: String) {
    let error = message.clone();
    if let Ok(true) = record(s, &job.id, Record::Fail(message)) {
        s.metrics.job_finished(metrics::JOB_FAILED, started.elapsed().as_secs_f64());
        log_failed(&job.id, &job.team_id, &error, job.attempts, Some(started.elapsed()));
    }
}

/// What a worker records about a job it ran.
#[derive(Clone)]
enum Record {
    /// The file is whole; it takes its final name (locally: the rename) in the same write
    /// that records COMPLETED, so a DELETE (another write) sees either no file and no export,
    /// or both, and never a file appearing after the export is gone. (An S3 object is complete
    /// before this write; when the write finds the export deleted, the worker removes it.)
    Complete {
        rows: u64,
        size: u64,
        results: u64,
        publish: Publish,
    },
    Fail(String),
    /// Stopped by shutdown: stays claimed, taken up again at the next start.
    Release,
}

/// Records an outcome; false when the job was deleted meanwhile. A busy database is waited
/// out (the job must not stay PROCESSING, nor turn FAILED, because an import held the lock for
/// a while); when the service stops first, the job stays claimed and the next start takes it
/// up again.
fn record(s: &Shared, job_id: &str, outcome: Record) -> Result<bool, db::DbError> {
    loop {
        let (id, run_id, outcome) = (job_id.to_string(), s.run_id.clone(), outcome.clone());
        // (recorded, webhook deliveries enqueued in the same write)
        let result = s.writer.run(move |c| match outcome {
            Record::Complete { rows, size, results, publish } => {
                let updated = db::exports::complete(c, &id, &run_id, rows as i64, size as i64, results as i64)?;
                let mut hooks = 0;
                if updated {
                    hooks = db::deliveries::enqueue(c, EventType::ExportCompleted, &id)?;
                    publish.apply().map_err(db::DbError::Io)?;
                }
                Ok((updated, hooks))
            }
            Record::Fail(message) => {
                let updated = db::exports::fail(c, &id, &run_id, &message)?;
                let hooks = if updated { db::deliveries::enqueue(c, EventType::ExportFailed, &id)? } else { 0 };
                Ok((updated, hooks))
            }
            Record::Release => Ok((db::exports::release(c, &id, &run_id)?, 0)),
        });
        if let Ok((_, hooks)) = &result {
            if *hooks > 0 {
                s.webhooks.ring();
            }
        }
        let result = result.map(|(updated, _)| updated);
        match result {
            Err(db::DbError::Busy(_)) if !s.stopping.load(Ordering::SeqCst) => {
                tracing::debug!(export_id = %job_id, "the database is busy; waiting to record the export's outcome");
                pause(s, Duration::from_millis(500));
            }
            Err(e) => {
                tracing::error!(export_id = %job_id, error = %e, "could not record the outcome of an export");
                return Err(e);
            }
            Ok(updated) => return Ok(updated),
        }
    }
}

fn produce_file(s: &Shared, job: &db::exports::ExportRow) -> Result<Outcome, EngineError> {
    let conn = s.pool.get()?;
    let Some(schema) = db::schemas::get(&conn, &job.team_id, &job.schema_id)? else {
        return Err(EngineError::Invalid("The schema of this export was deleted before it ran.".into()));
    };
    let scratch = s.data_dir.scratch();
    let spec = ExportSpec {
        schema_id: &job.schema_id,
        schema_name: &schema.name,
        schema: &schema.definition,
        temp_dir: &scratch,
        start_ms: job.start_ms,
        end_ms: job.end_ms,
        expand_array: job.expand_array.as_deref(),
        options: &job.options,
    };
    // an index count, before the first row is read: the total the progress is measured against
    let results = db::results::count_for_export(&conn, &job.schema_id, job.start_ms, job.end_ms)?;
    report_progress(s, job, Progress::default(), results);
    let upload = s.store.create(&job.id, job.options.gzip).map_err(std::io::Error::from)?;
    let mut out = std::io::BufWriter::with_capacity(256 * 1024, upload);
    let mut last_check = Instant::now();
    let mut last_report = Instant::now();
    let written = write_export(&conn, &spec, &mut out, |progress| {
        if let Some(pause) = s.settings.batch_pause {
            std::thread::sleep(pause);
        }
        if last_report.elapsed() >= PROGRESS_EVERY {
            last_report = Instant::now();
            report_progress(s, job, progress, results);
        }
        if last_check.elapsed() < Duration::from_millis(100) {
            return false;
        }
        last_check = Instant::now();
        s.stopping.load(Ordering::SeqCst) || s.cancelled.lock().expect("cancel lock").contains(&job.id)
    })?;
    let Some(rows) = written else {
        drop(out);
        return Ok(Outcome::Stopped);
    };
    let upload = out.into_inner().map_err(|e| e.into_error())?;
    if s.cancelled.lock().expect("cancel lock").contains(&job.id) {
        // dropped unfinished: nothing is left
        return Ok(Outcome::Stopped);
    }
    let file = upload.finish().map_err(std::io::Error::from)?;
    Ok(Outcome::Done { rows, results, file })
}

/// Records how far a job has got, without waiting for the write: the export goes on at once,
/// and the writer applies writes in order, so this lands before the job's outcome. A write
/// that fails is only logged: the next one, a second later, says more.
fn report_progress(s: &Shared, job: &db::exports::ExportRow, p: Progress, results_total: u64) {
    let (id, run_id) = (job.id.clone(), s.run_id.clone());
    let figures = db::exports::JobProgress {
        row_count: p.rows_written as i64,
        results_done: p.results_read as i64,
        results_total: results_total as i64,
    };
    s.writer.send(move |c| {
        if let Err(e) = db::exports::progress(c, &id, &run_id, figures) {
            tracing::debug!(export_id = %id, error = %e, "could not record an export's progress");
        }
    });
}

/// Removes temporary files (a run that died mid-write) and files whose job is gone, and
/// sets `exports_storage_bytes` to the size of the files kept (the workers and deletes keep it
/// up to date from then on, so a scrape never walks the folder or lists the bucket).
fn clean_exports_dir(s: &Shared) -> Result<(), Box<dyn std::error::Error>> {
    let conn = s.pool.get()?;
    let ids = db::exports::all_ids(&conn)?;
    let kept = s.store.tidy(&|id| ids.contains(id))?;
    s.metrics.set_storage(kept);
    Ok(())
}

fn retention_loop(s: &Shared) {
    let mut next = Instant::now();
    while !s.stopping.load(Ordering::SeqCst) {
        if Instant::now() >= next {
            if let Some(retention) = s.settings.retention {
                sweep(s, retention);
            }
            sweep_idempotency_keys(s);
            next = Instant::now() + s.settings.sweep_every;
        }
        let g = s.wake.lock().expect("wake lock");
        let _ = s.cv.wait_timeout(g, Duration::from_secs(1));
    }
}

fn sweep(s: &Shared, retention: Duration) {
    match sweep_once(s, retention) {
        Ok(0) => {}
        Ok(count) => tracing::info!(count, "deleted exports past retention"),
        Err(db::DbError::Busy(_)) => tracing::debug!("the database is busy; the retention sweep runs again later"),
        Err(e) => tracing::error!(error = %e, "retention sweep failed"),
    }
}

/// Deletes idempotency keys past their lifetime (by the settings' clock).
fn sweep_idempotency_keys(s: &Shared) {
    let cutoff = s.settings.clock.now_ms() - db::idempotency::KEY_LIFETIME_MS;
    match s.writer.run(move |c| db::idempotency::delete_expired(c, cutoff)) {
        Ok(0) => {}
        Ok(count) => tracing::info!(count, "deleted expired idempotency keys"),
        Err(db::DbError::Busy(_)) => tracing::debug!("the database is busy; the key sweep runs again later"),
        Err(e) => tracing::error!(error = %e, "idempotency key sweep failed"),
    }
}

/// Jobs deleted per write: the writer is held briefly, whatever the backlog.
const SWEEP_BATCH: usize = 200;

/// Finds expired jobs on a read connection, deletes them through the writer a batch at a
/// time, then their files. Returns how many were deleted.
fn sweep_once(s: &Shared, retention: Duration) -> Result<usize, db::DbError> {
    let cutoff = now_ms() - retention.as_millis() as i64;
    let expired = db::exports::finished_before(&*s.pool.get()?, cutoff)?;
    let mut count = 0;
    for chunk in expired.chunks(SWEEP_BATCH) {
        let ids: Vec<String> = chunk.iter().map(|r| r.id.clone()).collect();
        let (deleted, hooks) = s.writer.run(move |c| db::exports::delete_finished(c, &ids, cutoff))?;
        if hooks > 0 {
            s.webhooks.ring();
        }
        let deleted: std::collections::HashSet<String> = deleted.into_iter().collect();
        for r in chunk.iter().filter(|r| deleted.contains(&r.id)) {
            forget_deleted(&s.store, &s.metrics, &r.into(), "retention");
        }
        count += deleted.len();
    }
    Ok(count)
}

/// After an export's row was deleted (by the API or by retention): its file or object is
/// removed (both possible names when the row's options were unreadable), the metrics counted
/// and the job's last state change logged. A file that cannot be removed is logged, not an
/// error: the export is gone either way.
pub fn forget_deleted(store: &Store, metrics: &Metrics, row: &db::exports::Removed, reason: &'static str) {
    let names: &[bool] = match row.gzip {
        Some(gzip) => &[gzip][..],
        None => &[false, true][..],
    };
    for &gzip in names {
        match store.remove(&row.id, gzip) {
            Ok(true) => metrics.storage_changed(-row.file_size.unwrap_or(0)),
            Ok(false) => {}
            Err(e) => tracing::warn!(export_id = %row.id, error = %e, "could not remove an export file"),
        }
    }
    metrics.jobs_deleted(1);
    tracing::info!(
        export_id = %row.id,
        team_id = %row.team_id,
        export_status = "deleted",
        was = row.status.map_or("(unreadable)", |s| s.as_str()),
        reason,
        "export deleted"
    );
}

/// Writes to a file under a temporary name and renames it when whole (used by the CLI).
pub fn write_file_atomically(
    path: &Path,
    f: impl FnOnce(&mut std::io::BufWriter<WriteBehind>) -> Result<(), EngineError>,
) -> Result<(), EngineError> {
    let tmp = path.with_extension("partial");
    let file = WriteBehind::new(std::fs::File::create(&tmp)?);
    let mut out = std::io::BufWriter::with_capacity(256 * 1024, file);
    let written = f(&mut out).and_then(|()| {
        out.flush()?;
        out.into_inner().map_err(|e| e.into_error())?.into_file().sync_all()?;
        Ok(std::fs::rename(&tmp, path)?)
    });
    if written.is_err() {
        // a full disk, say: leave no partial file behind
        let _ = std::fs::remove_file(&tmp);
    }
    written
}
