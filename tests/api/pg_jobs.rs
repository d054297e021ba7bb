//! The export job queue on a real PostgreSQL (the test cluster, a fresh database per test),
//! through the store's own functions and PostgreSQL writer, as replicas use them: two
//! "replicas" are two connection pools and writers with run ids of their own. Claims take
//! every job exactly once, a lease that lapses is taken over (attempt counted), a job given
//! back at shutdown is taken over at once, the loser of a takeover can no longer record
//! anything, and creating a PENDING export notifies the listeners.
//!
//! (The whole app on two replicas is `replicas.rs`.)

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

use exports_api::db::exports::{self, ExportRow, QuotaExceeded, Quotas};
use exports_api::db::pg::{self, PgPool};
use exports_api::db::{DbError, Writer};
use exports_api::domain::export::{CsvOptions, ExportStatus};

use crate::helpers::{pg_client, pg_database, POLL_PACE};

const NO_QUOTAS: Quotas = Quotas { max_queued: 0, max_storage: None };
const LONG: Duration = Duration::from_secs(600);

/// A migrated database with one team and one schema: `(url, team, schema)`.
fn database(test: &str) -> Option<(String, String, String)> {
    let url = pg_database(test)?;
    drop(pg::open(&url, 2).unwrap());
    let (team, schema) = (uuid::Uuid::now_v7(), uuid::Uuid::now_v7());
    let mut c = pg_client(&url);
    c.execute("INSERT INTO teams (id, name, created_at) VALUES ($1, 't', 0)", &[&team]).unwrap();
    c.execute(
        "INSERT INTO schemas (id, team_id, name, definition, created_at, updated_at)
         VALUES ($1, $2, 's', '{\"fields\":[]}', 0, 0)",
        &[&schema, &team],
    )
    .unwrap();
    Some((url, team.to_string(), schema.to_string()))
}

/// A replica's view of the store: its pool, its writer, its run id.
struct Replica {
    pool: PgPool,
    writer: Writer,
    run: String,
}

fn replica(url: &str) -> Replica {
    let pool = pg::open(url, 8).unwrap();
    Replica { writer: Writer::postgres(pool.clone()), pool, run: uuid::Uuid::now_v7().to_string() }
}

impl Replica {
    fn create(&self, team: &str, schema: &str) -> String {
        let e = pending(team, schema);
        let id = e.id.clone();
        self.writer.run(move |c| exports::insert_within_quotas(c, &e, NO_QUOTAS)).unwrap().unwrap();
        id
    }

    fn claim(&self, lease: Duration) -> Option<ExportRow> {
        let run = self.run.clone();
        let claimed = self.writer.run(move |c| exports::claim_next(c, &run, lease)).unwrap();
        assert!(claimed.failed.is_empty(), "{:?}", claimed.failed);
        claimed.job
    }

    fn complete(&self, id: &str) -> bool {
        let (id, run) = (id.to_string(), self.run.clone());
        self.writer.run(move |c| exports::complete(c, &id, &run, 7, 70, 7)).unwrap()
    }

    fn renew(&self, id: &str, lease: Duration) -> bool {
        let (id, run) = (id.to_string(), self.run.clone());
        self.writer.run(move |c| exports::renew(c, &id, &run, lease)).unwrap()
    }

    fn progress(&self, id: &str) -> bool {
        let (id, run) = (id.to_string(), self.run.clone());
        let p = exports::JobProgress { row_count: 1, results_done: 1, results_total: 2 };
        self.writer.run(move |c| exports::progress(c, &id, &run, p)).unwrap()
    }

    fn get(&self, team: &str, id: &str) -> Option<ExportRow> {
        exports::get(&*self.conn(), team, id).unwrap()
    }

    fn conn(&self) -> exports_api::db::Conn {
        exports_api::db::Pool::Pg(self.pool.clone()).get().unwrap()
    }
}

fn pending(team: &str, schema: &str) -> ExportRow {
    let now = exports_api::domain::time::now_ms();
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
        created_at: now,
        updated_at: now,
        completed_at: None,
    }
}

/// Two replicas with four workers each drain 100 jobs created through both: every job is
/// claimed once and completed once (attempts = 1), and both replicas claimed some.
#[test]
fn two_replicas_claim_every_job_exactly_once() {
    let Some((url, team, schema)) = database("pg_jobs::exactly_once") else { return };
    let replicas = [Arc::new(replica(&url)), Arc::new(replica(&url))];
    let created: HashSet<String> = (0..100).map(|i| replicas[i % 2].create(&team, &schema)).collect();
    assert_eq!(created.len(), 100);

    let claims = Arc::new(Mutex::new(Vec::<(String, usize)>::new()));
    let barrier = Arc::new(Barrier::new(8));
    let workers: Vec<_> = (0..8)
        .map(|w| {
            let (r, claims, barrier) = (replicas[w % 2].clone(), claims.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                while let Some(job) = r.claim(LONG) {
                    assert_eq!(job.status, ExportStatus::Processing);
                    claims.lock().unwrap().push((job.id.clone(), w % 2));
                    assert!(r.progress(&job.id), "progress of a job this replica holds");
                    assert!(r.complete(&job.id), "completing a job this replica holds");
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    let claims = claims.lock().unwrap();
    let mut per_job: HashMap<&str, usize> = HashMap::new();
    for (id, _) in claims.iter() {
        *per_job.entry(id).or_default() += 1;
    }
    assert_eq!(per_job.len(), 100, "every job was claimed");
    assert!(per_job.values().all(|&n| n == 1), "a job was claimed twice: {per_job:?}");
    let by = |r: usize| claims.iter().filter(|c| c.1 == r).count();
    assert!(by(0) > 0 && by(1) > 0, "both replicas claimed jobs: {} and {}", by(0), by(1));
    eprintln!("claims: replica A {}, replica B {}", by(0), by(1));

    let rows = pg_client(&url).query("SELECT status, attempts, claimed_by FROM exports", &[]).unwrap();
    assert_eq!(rows.len(), 100);
    for r in rows {
        let (status, attempts, claimed_by): (String, i64, Option<String>) = (r.get(0), r.get(1), r.get(2));
        assert_eq!((status.as_str(), attempts, claimed_by), ("COMPLETED", 1, None));
    }
}

/// A job whose worker stops renewing its lease is taken over by another replica once the
/// lease lapses (not before, and not by the run that let it lapse), with its attempt counted;
/// from then on the first worker can neither renew, report progress nor complete it.
#[test]
fn a_lapsed_lease_is_taken_over_and_the_first_worker_loses_the_job() {
    let Some((url, team, schema)) = database("pg_jobs::takeover") else { return };
    let (a, b) = (replica(&url), replica(&url));
    let id = b.create(&team, &schema);
    let lease = Duration::from_secs(1);
    let job = a.claim(lease).expect("A claims the job");
    assert_eq!((job.id.as_str(), job.attempts), (id.as_str(), 1));
    assert!(b.claim(LONG).is_none(), "a job under a live lease is not taken over");
    assert!(a.renew(&id, lease), "A renews its lease");

    // A stops renewing (its process died): B takes the job over once the lease has lapsed
    let deadline = Instant::now() + Duration::from_secs(30);
    let taken = loop {
        assert!(a.claim(LONG).is_none(), "the run that let its lease lapse does not claim it again");
        if let Some(job) = b.claim(LONG) {
            break job;
        }
        assert!(Instant::now() < deadline, "the lapsed lease was not taken over");
        std::thread::sleep(POLL_PACE);
    };
    assert_eq!((taken.id.as_str(), taken.attempts, taken.status), (id.as_str(), 2, ExportStatus::Processing));

    assert!(!a.renew(&id, lease), "A's renewal tells it the job is no longer its own");
    assert!(!a.progress(&id), "A's progress is refused");
    assert!(!a.complete(&id), "A's completion is refused");
    assert!(b.complete(&id), "B completes the job");
    let row = b.get(&team, &id).unwrap();
    assert_eq!((row.status, row.attempts, row.row_count), (ExportStatus::Completed, 2, Some(7)));
}

/// A PROCESSING job without a lease (written beside the service, say) is taken over by a run
/// that is not its own, its attempt counted.
#[test]
fn a_processing_job_without_a_lease_is_taken_over() {
    let Some((url, team, schema)) = database("pg_jobs::no_lease") else { return };
    let r = replica(&url);
    let id = r.create(&team, &schema);
    pg_client(&url)
        .execute(
            "UPDATE exports SET status = 'PROCESSING', claimed_by = 'a dead run', attempts = 1 WHERE id = $1",
            &[&id.parse::<uuid::Uuid>().unwrap()],
        )
        .unwrap();
    let job = r.claim(LONG).expect("the job is taken over");
    assert_eq!((job.id.as_str(), job.attempts), (id.as_str(), 2));
    assert!(r.claim(LONG).is_none(), "it now holds a lease");
}

/// A job given back at shutdown (`release`) is taken over by another replica at once,
/// without waiting for its lease, and the interrupted attempt does not count.
#[test]
fn a_released_job_is_taken_over_at_once_and_its_attempt_not_counted() {
    let Some((url, team, schema)) = database("pg_jobs::release") else { return };
    let (a, b) = (replica(&url), replica(&url));
    let id = a.create(&team, &schema);
    assert_eq!(a.claim(LONG).unwrap().attempts, 1);
    let (job, run) = (id.clone(), a.run.clone());
    assert!(a.writer.run(move |c| exports::release(c, &job, &run)).unwrap());
    let taken = b.claim(LONG).expect("B takes the released job over at once");
    assert_eq!((taken.id.as_str(), taken.attempts), (id.as_str(), 1));
}

/// A job taken over `MAX_ATTEMPTS` times is not started again: the claim marks it FAILED with
/// a message (and reports it), and takes the next job.
#[test]
fn a_job_whose_lease_lapsed_too_often_fails_at_claim() {
    let Some((url, team, schema)) = database("pg_jobs::max_attempts") else { return };
    let r = replica(&url);
    let worn = r.create(&team, &schema);
    let next = r.create(&team, &schema);
    pg_client(&url)
        .execute(
            "UPDATE exports SET status = 'PROCESSING', claimed_by = 'a dead run', lease_until = NULL, attempts = $1
             WHERE id = $2",
            &[&exports::MAX_ATTEMPTS, &worn.parse::<uuid::Uuid>().unwrap()],
        )
        .unwrap();
    let run = r.run.clone();
    let claimed = r.writer.run(move |c| exports::claim_next(c, &run, LONG)).unwrap();
    assert_eq!(claimed.job.map(|j| j.id), Some(next), "the next job is taken");
    assert_eq!(claimed.failed.len(), 1);
    assert_eq!((claimed.failed[0].id.as_str(), claimed.failed[0].attempts), (worn.as_str(), exports::MAX_ATTEMPTS));
    let row = r.get(&team, &worn).unwrap();
    assert_eq!((row.status, row.attempts), (ExportStatus::Failed, exports::MAX_ATTEMPTS));
    assert!(row.error.unwrap_or_default().contains("interrupted"), "the message says why");
}

/// Creating a PENDING export notifies `exports_jobs` at its commit: a listener on another
/// connection hears it (what wakes idle workers of other replicas).
#[test]
fn creating_an_export_notifies_the_listeners() {
    let Some((url, team, schema)) = database("pg_jobs::notify") else { return };
    let r = replica(&url);
    let (heard_tx, heard) = std::sync::mpsc::channel::<()>();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let listener = {
        let (url, stop) = (url.clone(), stop.clone());
        std::thread::spawn(move || {
            let heard_tx = Mutex::new(heard_tx);
            pg::listen(&url, "exports_jobs", &|| !stop.load(std::sync::atomic::Ordering::SeqCst), &|| {
                let _ = heard_tx.lock().unwrap().send(());
            })
        })
    };
    // the listener may not be listening yet when the first export is created: create until
    // one is heard
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        r.create(&team, &schema);
        if heard.recv_timeout(Duration::from_millis(200)).is_ok() {
            break;
        }
        assert!(Instant::now() < deadline, "no notification heard");
    }
    // a create refused by a quota commits nothing and notifies nothing
    while heard.try_recv().is_ok() {}
    let e = pending(&team, &schema);
    let quotas = Quotas { max_queued: 1, max_storage: None };
    let refused = r.writer.run(move |c| exports::insert_within_quotas(c, &e, quotas)).unwrap();
    assert!(matches!(refused, Err(QuotaExceeded::Queued { max: 1, .. })), "{refused:?}");
    r.create(&team, &schema);
    heard.recv_timeout(Duration::from_secs(10)).expect("the next create is heard");
    assert!(heard.try_recv().is_err(), "the refused create notified");
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    listener.join().unwrap().unwrap();
}

/// The quotas, reads and deletes of `db::exports` on PostgreSQL: counts and sums of BIGINTs,
/// ids that are not UUIDs (no export, not an error), a damaged row reported, not guessed.
#[test]
fn quotas_reads_and_deletes_work_on_postgres() {
    let Some((url, team, schema)) = database("pg_jobs::crud") else { return };
    let r = replica(&url);
    let a = r.create(&team, &schema);
    let b = r.create(&team, &schema);
    let e = pending(&team, &schema);
    let queued = Quotas { max_queued: 2, max_storage: None };
    let refused = r.writer.run(move |c| exports::insert_within_quotas(c, &e, queued)).unwrap();
    assert_eq!(refused, Err(QuotaExceeded::Queued { queued: 2, max: 2 }));
    pg_client(&url).execute("UPDATE exports SET file_size = 600, status = 'COMPLETED'", &[]).unwrap();
    let e = pending(&team, &schema);
    let storage = Quotas { max_queued: 2, max_storage: Some(1000) };
    let refused = r.writer.run(move |c| exports::insert_within_quotas(c, &e, storage)).unwrap();
    assert_eq!(refused, Err(QuotaExceeded::Storage { used: 1200, max: 1000 }));

    let row = r.get(&team, &a).unwrap();
    assert_eq!((row.id.as_str(), row.team_id.as_str(), row.schema_id.as_str()), (a.as_str(), &*team, &*schema));
    assert_eq!(
        (row.status, row.file_size, row.schema_name.as_deref()),
        (ExportStatus::Completed, Some(600), Some("s"))
    );
    assert_eq!(exports::count_pending(&*r.conn()).unwrap(), 0);
    assert_eq!(exports::all_ids(&*r.conn()).unwrap(), HashSet::from([a.clone(), b.clone()]));
    for bad in ["nope", "", &a.to_uppercase()] {
        assert!(r.get(&team, bad).is_none(), "{bad:?}");
        assert!(exports::get_team_of(&*r.conn(), bad).unwrap().is_none(), "{bad:?}");
    }
    let other_team = uuid::Uuid::now_v7().to_string();
    assert!(r.get(&other_team, &a).is_none(), "another team's export is not found");

    pg_client(&url)
        .execute("UPDATE exports SET status = 'DONE-ISH' WHERE id = $1", &[&a.parse::<uuid::Uuid>().unwrap()])
        .unwrap();
    match exports::get(&*r.conn(), &team, &a) {
        Err(DbError::Corrupt { table: "exports", id, what }) => assert!(id == a && what.contains("DONE-ISH"), "{what}"),
        other => panic!("a row with an unknown status read as {other:?}"),
    }
    // the damaged row is deleted all the same
    let (t, id) = (team.clone(), a.clone());
    let removed = r.writer.run(move |c| exports::delete(c, &t, &id)).unwrap().expect("deleted");
    assert_eq!((removed.status, removed.file_size), (None, Some(600)));
    let (t, id) = (team.clone(), "not-a-uuid".to_string());
    assert!(r.writer.run(move |c| exports::delete(c, &t, &id)).unwrap().is_none());
    assert_eq!(exports::all_ids(&*r.conn()).unwrap(), HashSet::from([b]));
}
