//! The delivery loop: picks due deliveries (fairly across endpoints, within the bounds),
//! attempts each in a task of its own, and records the outcome through the writer.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::task::JoinSet;

use super::client::{describe, ATTEMPT_TIMEOUT};
use super::{RenderExport, Settings};
use crate::db::deliveries::{self, Attempt, Doorbell, DueDelivery};
use crate::db::{self, DbError, Pool};
use crate::domain::time::{format_ms, now_ms};
use crate::domain::webhook::{is_private, next_attempt, private_refusal, signature};
use crate::metrics::{self, Metrics};

/// Attempts in flight at once, over every endpoint.
const MAX_IN_FLIGHT: usize = 8;
/// Attempts in flight at once to one endpoint.
const PER_ENDPOINT: usize = 2;
/// The queue is read at least this often (retries come due without a ring).
const POLL: Duration = Duration::from_secs(1);
/// Finished deliveries are kept this long for `GET /v1/webhooks/{id}/deliveries`.
const KEEP_FINISHED: Duration = Duration::from_secs(7 * 24 * 3600);
/// How often finished deliveries past `KEEP_FINISHED` are swept.
const SWEEP_EVERY: Duration = Duration::from_secs(3600);

pub(super) struct Ctx {
    pub pool: Pool,
    pub writer: db::Writer,
    pub doorbell: Doorbell,
    pub client: reqwest::Client,
    pub settings: Settings,
    pub metrics: Arc<Metrics>,
    pub render: RenderExport,
}

/// Deliveries in flight, by endpoint.
type InFlight = HashMap<String, Vec<i64>>;

pub(super) async fn run(ctx: Arc<Ctx>, mut stop: tokio::sync::watch::Receiver<bool>) {
    let mut tasks: JoinSet<(String, i64)> = JoinSet::new();
    let mut in_flight = InFlight::new();
    let mut next_sweep = Instant::now() + Duration::from_secs(60);
    loop {
        if *stop.borrow() {
            break;
        }
        while let Some(done) = tasks.try_join_next() {
            finished(&mut in_flight, done);
        }
        let next_due = match dispatch(&ctx, &mut tasks, &mut in_flight).await {
            Ok(next) => next,
            Err(DbError::Busy(_)) => None,
            Err(e) => {
                tracing::error!(error = %e, "could not read the webhook queue");
                None
            }
        };
        if Instant::now() >= next_sweep {
            next_sweep = Instant::now() + SWEEP_EVERY;
            let cutoff = now_ms() - KEEP_FINISHED.as_millis() as i64;
            if let Err(e) = ctx.writer.run_async(move |c| deliveries::sweep(c, cutoff)).await {
                tracing::debug!(error = %e, "the webhook delivery sweep did not run");
            }
        }
        let wait = next_due.map_or(POLL, |at| Duration::from_millis((at - now_ms()).max(0) as u64).min(POLL));
        tokio::select! {
            _ = ctx.doorbell.wait() => {}
            Some(done) = tasks.join_next(), if !tasks.is_empty() => finished(&mut in_flight, done),
            _ = tokio::time::sleep(wait) => {}
            _ = stop.changed() => {}
        }
    }
    // attempts cut short stay pending: sent again after the next start
    tasks.shutdown().await;
}

fn finished(in_flight: &mut InFlight, done: Result<(String, i64), tokio::task::JoinError>) {
    match done {
        Ok((endpoint, id)) => {
            if let Some(ids) = in_flight.get_mut(&endpoint) {
                ids.retain(|d| *d != id);
                if ids.is_empty() {
                    in_flight.remove(&endpoint);
                }
            }
        }
        Err(e) => {
            // a panic in an attempt: its delivery is not known here, so start afresh
            tracing::error!(error = %e, "a webhook delivery attempt panicked");
            in_flight.clear();
        }
    }
}

/// Starts attempts for due deliveries within the bounds; returns when the next pending
/// delivery that is not due yet comes due.
async fn dispatch(
    ctx: &Arc<Ctx>,
    tasks: &mut JoinSet<(String, i64)>,
    in_flight: &mut InFlight,
) -> db::DbResult<Option<i64>> {
    let free = MAX_IN_FLIGHT.saturating_sub(tasks.len());
    let busy = in_flight.clone();
    let pool = ctx.pool.clone();
    let (picked, next) = tokio::task::spawn_blocking(move || pick(&pool, &busy, free))
        .await
        .map_err(|_| DbError::Interrupted("reading the webhook queue panicked"))??;
    let picked = match ctx.pool {
        Pool::Pg(_) => claim(ctx, picked).await?,
        Pool::Lite(_) => picked,
    };
    for d in picked {
        match d {
            Ok(d) => {
                in_flight.entry(d.endpoint_id.clone()).or_default().push(d.id);
                let ctx = ctx.clone();
                tasks.spawn(async move {
                    let key = (d.endpoint_id.clone(), d.id);
                    attempt(&ctx, d).await;
                    key
                });
            }
            Err((id, e)) => {
                tracing::error!(delivery_id = id, error = %e, "a webhook event cannot be read; its delivery fails");
                let failed = Attempt {
                    status: deliveries::FAILED,
                    next_attempt_at: None,
                    status_code: None,
                    error: Some("the event is damaged in the database and cannot be sent".into()),
                };
                ctx.writer.run_async(move |c| deliveries::record_attempt(c, id, &failed)).await?;
            }
        }
    }
    Ok(next)
}

type Picked = Vec<Result<DueDelivery, (i64, DbError)>>;

/// How long a delivery claimed on PostgreSQL stays this process's: longer than an attempt and
/// the recording of its outcome take (a busy database waited out included); after it, a
/// delivery whose process died is due again, on any replica.
const CLAIM_LEASE: Duration = Duration::from_secs(60);

/// On PostgreSQL, where several replicas read one queue: the picked deliveries this process
/// claimed (see `deliveries::claim`); those another replica claimed first are dropped, so that
/// each attempt is made by one replica. SQLite has one process, whose in-flight set does this.
/// A damaged event is kept: failing its delivery twice changes nothing the second time.
async fn claim(ctx: &Arc<Ctx>, picked: Picked) -> db::DbResult<Picked> {
    let ids: Vec<i64> = picked.iter().filter_map(|d| d.as_ref().ok().map(|d| d.id)).collect();
    if ids.is_empty() {
        return Ok(picked);
    }
    let now = now_ms();
    let until = now + CLAIM_LEASE.as_millis() as i64;
    let claimed = ctx.writer.run_async(move |c| deliveries::claim(c, &ids, now, until)).await?;
    Ok(picked.into_iter().filter(|d| d.as_ref().map_or(true, |d| claimed.contains(&d.id))).collect())
}

/// Due deliveries not in flight, at most `PER_ENDPOINT` in flight per endpoint and `free` in
/// all; and the earliest time a pending delivery not yet due comes due.
fn pick(pool: &Pool, busy: &InFlight, mut free: usize) -> db::DbResult<(Picked, Option<i64>)> {
    let conn = pool.get()?;
    let now = now_ms();
    let mut next: Option<i64> = None;
    let mut picked = Vec::new();
    for (endpoint, due_at) in deliveries::due_endpoints(&conn)? {
        if due_at > now {
            next = Some(next.map_or(due_at, |n| n.min(due_at)));
            continue;
        }
        let running = busy.get(&endpoint).map_or(&[][..], |v| &v[..]);
        let want = PER_ENDPOINT.saturating_sub(running.len()).min(free);
        if want == 0 {
            continue; // woken again when one of its attempts ends
        }
        let rows = deliveries::due_for_endpoint(&conn, &endpoint, now, want + running.len())?;
        let mut taken = 0;
        for r in rows {
            let id = match &r {
                Ok(d) => d.id,
                Err((id, _)) => *id,
            };
            if taken == want {
                break;
            }
            if running.contains(&id) {
                continue;
            }
            picked.push(r);
            taken += 1;
        }
        free -= taken;
    }
    Ok((picked, next))
}

/// The body of a delivery: `{"id", "type", "createdAt", "data"}`, the same bytes at every
/// attempt.
fn payload(ctx: &Ctx, d: &DueDelivery) -> Vec<u8> {
    let mut m = serde_json::Map::new();
    m.insert("id".into(), d.event_id.clone().into());
    m.insert("type".into(), d.event_type.clone().into());
    m.insert("createdAt".into(), format_ms(d.event_created_at).into());
    m.insert("data".into(), (ctx.render)(&d.export));
    serde_json::to_vec(&serde_json::Value::Object(m)).expect("a JSON value serializes")
}

/// POSTs the event; `Ok(status)` for a 2xx, else the status (if any) and what went wrong.
async fn send(ctx: &Ctx, d: &DueDelivery) -> Result<u16, (Option<u16>, String)> {
    if !ctx.settings.allow_private {
        // an address in the URL itself never reaches the resolver
        let host = url::Url::parse(&d.url).ok().and_then(|u| u.host().map(|h| h.to_owned()));
        let literal = match host {
            Some(url::Host::Ipv4(ip)) => Some(std::net::IpAddr::V4(ip)),
            Some(url::Host::Ipv6(ip)) => Some(std::net::IpAddr::V6(ip)),
            _ => None,
        };
        if let Some(ip) = literal.filter(|ip| is_private(*ip)) {
            return Err((None, private_refusal(&ip.to_string())));
        }
    }
    let body = payload(ctx, d);
    let t = chrono::Utc::now().timestamp();
    let request = ctx
        .client
        .post(&d.url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header("x-exports-event-id", &d.event_id)
        .header("x-exports-signature", signature(&d.secret, t, &body))
        .body(body)
        .timeout(ATTEMPT_TIMEOUT);
    match request.send().await {
        Ok(resp) if resp.status().is_success() => Ok(resp.status().as_u16()),
        Ok(resp) => {
            let code = resp.status().as_u16();
            Err((Some(code), format!("the endpoint answered {code}; only a 2xx status is a success")))
        }
        Err(e) => Err((None, describe(&e))),
    }
}

/// One attempt of `d`, and its outcome recorded. A record that fails leaves the delivery
/// pending: it is sent again (at least once).
async fn attempt(ctx: &Arc<Ctx>, d: DueDelivery) {
    let outcome = send(ctx, &d).await;
    let attempts = d.attempts + 1;
    let (a, counted) = match outcome {
        Ok(code) => (
            Attempt { status: deliveries::SUCCEEDED, next_attempt_at: None, status_code: Some(code), error: None },
            metrics::WEBHOOK_SUCCEEDED,
        ),
        Err((code, error)) => match next_attempt(d.created_at, now_ms(), attempts, ctx.settings.retry_scale) {
            Some(at) => (
                Attempt {
                    status: deliveries::PENDING,
                    next_attempt_at: Some(at),
                    status_code: code,
                    error: Some(error),
                },
                metrics::WEBHOOK_RETRIED,
            ),
            None => (
                Attempt { status: deliveries::FAILED, next_attempt_at: None, status_code: code, error: Some(error) },
                metrics::WEBHOOK_FAILED,
            ),
        },
    };
    ctx.metrics.webhook_attempt(counted);
    tracing::info!(
        webhook_id = %d.endpoint_id,
        event_id = %d.event_id,
        event_type = %d.event_type,
        attempt = attempts,
        delivery_status = a.status,
        status_code = a.status_code,
        error = a.error.as_deref(),
        "webhook delivery attempt"
    );
    // a busy database (an import holding the lock) is waited out, so the attempt is not
    // made again at once
    let id = d.id;
    for pause in std::iter::repeat_n(RECORD_PAUSE, RECORD_TRIES - 1).map(Some).chain([None]) {
        let a = a.clone();
        match ctx.writer.run_async(move |c| deliveries::record_attempt(c, id, &a)).await {
            Ok(_) => return,
            Err(DbError::Busy(_)) if pause.is_some() => tokio::time::sleep(RECORD_PAUSE).await,
            Err(e) => {
                tracing::error!(delivery_id = id, error = %e, "could not record a webhook delivery attempt; it is made again");
                return;
            }
        }
    }
}

/// Tries at recording an attempt's outcome while the database is busy, and the pause between.
const RECORD_TRIES: usize = 20;
const RECORD_PAUSE: Duration = Duration::from_millis(500);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::webhooks::EndpointRow;
    use crate::domain::webhook::EventType;

    /// A database with one export and `endpoints` endpoints of its team subscribed to every
    /// event, and `events` completed events of that export queued.
    fn queued(endpoints: usize, events: usize) -> (tempfile::TempDir, db::LitePool, Vec<String>) {
        let dir = tempfile::tempdir().unwrap();
        let pool = crate::db::open(&dir.path().join("w.db"), 2, Duration::from_secs(5)).unwrap();
        let c = pool.get().unwrap();
        let team = crate::db::keys::create_team(&c, "t").unwrap().id;
        c.execute(
            "INSERT INTO schemas (id, team_id, name, definition, created_at, updated_at)
             VALUES ('s', ?1, 's', '{\"fields\":[]}', 0, 0)",
            [&team],
        )
        .unwrap();
        c.execute(
            "INSERT INTO exports (id, team_id, schema_id, status, start_ms, end_ms, options, created_at, updated_at)
             VALUES ('e', ?1, 's', 'COMPLETED', 0, 1, ?2, 0, 0)",
            rusqlite::params![team, serde_json::to_string(&crate::domain::export::CsvOptions::default()).unwrap()],
        )
        .unwrap();
        let mut ids = Vec::new();
        for i in 0..endpoints {
            let e = EndpointRow {
                id: format!("endpoint-{i}"),
                team_id: team.clone(),
                url: format!("http://127.0.0.1:9/{i}"),
                events: vec!["*".into()],
                description: None,
                secret: "whsec_x".into(),
                created_at: 0,
                updated_at: 0,
            };
            crate::db::webhooks::insert(&c, &e).unwrap();
            ids.push(e.id);
        }
        for _ in 0..events {
            assert_eq!(deliveries::enqueue(&c, EventType::ExportCompleted, "e").unwrap(), endpoints);
        }
        drop(c);
        (dir, pool, ids)
    }

    fn endpoints_of(picked: &Picked) -> Vec<String> {
        picked.iter().map(|d| d.as_ref().ok().unwrap().endpoint_id.clone()).collect()
    }

    /// A backlog at one endpoint takes at most `PER_ENDPOINT` slots; the others get theirs.
    #[test]
    fn picks_are_bounded_per_endpoint_and_overall() {
        let (_dir, pool, ids) = queued(5, 3);
        let (picked, next) = pick(&Pool::Lite(pool.clone()), &InFlight::new(), MAX_IN_FLIGHT).unwrap();
        assert!(next.is_none());
        let got = endpoints_of(&picked);
        assert_eq!(got.len(), MAX_IN_FLIGHT, "{got:?}");
        for id in &ids {
            assert!(got.iter().filter(|e| *e == id).count() <= PER_ENDPOINT, "{got:?}");
        }
        // an endpoint at its bound gets nothing more; one below it gets the rest of its share
        let mut busy = InFlight::new();
        let first: Vec<i64> = picked.iter().map(|d| d.as_ref().ok().unwrap().id).collect();
        busy.insert(ids[0].clone(), first[..PER_ENDPOINT].to_vec());
        busy.insert(ids[1].clone(), first[PER_ENDPOINT..PER_ENDPOINT + 1].to_vec());
        let (picked, _) = pick(&Pool::Lite(pool.clone()), &busy, 3).unwrap();
        let got = endpoints_of(&picked);
        assert!(!got.contains(&ids[0]), "{got:?}");
        assert_eq!(got.iter().filter(|e| **e == ids[1]).count(), 1, "{got:?}");
        assert_eq!(got.len(), 3);
        let again: Vec<i64> = picked.iter().map(|d| d.as_ref().ok().unwrap().id).collect();
        assert!(again.iter().all(|id| !first[..PER_ENDPOINT + 1].contains(id)), "nothing in flight is picked twice");
    }

    /// A team without endpoints enqueues nothing; a deleted endpoint's deliveries are gone.
    #[test]
    fn nothing_is_queued_without_endpoints_and_deleting_one_drops_its_queue() {
        let (_dir, pool, _) = queued(0, 1);
        assert!(deliveries::due_endpoints(&pool.get().unwrap()).unwrap().is_empty());
        let (_dir, pool, ids) = queued(2, 2);
        let c = pool.get().unwrap();
        let team: String = c.query_row("SELECT team_id FROM exports WHERE id = 'e'", [], |r| r.get(0)).unwrap();
        assert!(crate::db::webhooks::delete(&c, &team, &ids[0]).unwrap());
        let due = deliveries::due_endpoints(&c).unwrap();
        assert_eq!(due.iter().map(|(e, _)| e.clone()).collect::<Vec<_>>(), [ids[1].clone()]);
    }
}
