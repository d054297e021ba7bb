//! The webhook queue: events enqueued in the transaction of the change that causes them, one
//! delivery per (event, subscribed endpoint), and what each attempt left.
//!
//! Nothing is lost on a crash: an event is committed with its export's new state or not at
//! all, and a delivery stays `pending` until an attempt's outcome is committed (an attempt
//! cut short by a stop is made again after the next start: at least once).

use std::sync::Arc;

use super::exports::ExportRow;
use super::sql::{args, Sql};
use super::{DbError, DbResult};
use crate::domain::webhook::{subscribed, EventType};

/// Rung after a commit that enqueued deliveries, so the delivery worker looks at once
/// instead of at its next poll. Cheap to clone.
#[derive(Clone, Default)]
pub struct Doorbell(Arc<tokio::sync::Notify>);

impl Doorbell {
    /// Wakes the worker (or its next wait, if it is busy now).
    pub fn ring(&self) {
        self.0.notify_one();
    }

    /// Waits for the next ring.
    pub async fn wait(&self) {
        self.0.notified().await
    }
}

/// Status of a delivery.
pub const PENDING: &str = "pending";
pub const SUCCEEDED: &str = "succeeded";
pub const FAILED: &str = "failed";

/// Enqueues `event` about export `export_id` for every endpoint of its team subscribed to it,
/// with the export as it is now in this transaction (call it after the change, or before a
/// delete); returns the deliveries enqueued (ring the doorbell after the commit if any). A
/// team without endpoints costs one lookup. A row that cannot be read (damaged) enqueues
/// nothing, so that deleting it still works.
pub fn enqueue(conn: &dyn Sql, event: EventType, export_id: &str) -> DbResult<usize> {
    let Some(team) = super::exports::get_team_of(conn, export_id)? else { return Ok(0) };
    let endpoints: Vec<_> =
        super::webhooks::all_of_team(conn, &team)?.into_iter().filter(|e| subscribed(&e.events, event)).collect();
    if endpoints.is_empty() {
        return Ok(0);
    }
    let export = match super::exports::get(conn, &team, export_id) {
        Ok(Some(row)) => row,
        Ok(None) => return Ok(0),
        Err(e @ DbError::Corrupt { .. }) => {
            tracing::warn!(export_id, error = %e, "an export cannot be read; no webhook event is sent for it");
            return Ok(0);
        }
        Err(e) => return Err(e),
    };
    let now = crate::domain::time::now_ms();
    let event_id = uuid::Uuid::now_v7().to_string();
    let export = serde_json::to_string(&export).expect("an export row serializes");
    conn.exec(
        "INSERT INTO webhook_events (id, team_id, type, export_id, export, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        args![&event_id, &team, event.as_str(), export_id, &export, now],
    )?;
    for e in &endpoints {
        conn.exec(
            "INSERT INTO webhook_deliveries (event_id, endpoint_id, status, next_attempt_at, created_at, updated_at)
             VALUES (?1, ?2, 'pending', ?3, ?3, ?3)",
            args![&event_id, &e.id, now],
        )?;
    }
    Ok(endpoints.len())
}

/// For each endpoint with pending deliveries, when its earliest one is due (ms).
pub fn due_endpoints(conn: &dyn Sql) -> DbResult<Vec<(String, i64)>> {
    conn.rows(
        "SELECT endpoint_id, MIN(next_attempt_at) FROM webhook_deliveries WHERE status = 'pending' GROUP BY endpoint_id",
        &[],
        |r| Ok((r.text(0)?, r.int(1)?)),
    )
}

/// A delivery to attempt, with what the attempt needs.
#[derive(Clone)]
pub struct DueDelivery {
    pub id: i64,
    pub endpoint_id: String,
    pub url: String,
    pub secret: String,
    pub event_id: String,
    pub event_type: String,
    pub event_created_at: i64,
    /// The export as it was when the event happened.
    pub export: ExportRow,
    /// Attempts made before this one.
    pub attempts: i64,
    pub created_at: i64,
}

/// The oldest pending deliveries of an endpoint due at `now`, at most `limit`. An event whose
/// stored export cannot be read is reported as `Corrupt` with the delivery's id.
pub fn due_for_endpoint(
    conn: &dyn Sql,
    endpoint_id: &str,
    now: i64,
    limit: usize,
) -> DbResult<Vec<Result<DueDelivery, (i64, DbError)>>> {
    conn.rows(
        "SELECT d.id, d.endpoint_id, p.url, p.secret, d.event_id, v.type, v.created_at, v.export, d.attempts,
                d.created_at
         FROM webhook_deliveries d
         JOIN webhook_events v ON v.id = d.event_id
         JOIN webhook_endpoints p ON p.id = d.endpoint_id
         WHERE d.endpoint_id = ?1 AND d.status = 'pending' AND d.next_attempt_at <= ?2
         ORDER BY d.next_attempt_at, d.id LIMIT ?3",
        args![endpoint_id, now, limit as i64],
        |r| {
            let id = r.int(0)?;
            let export = match serde_json::from_str(&r.text(7)?) {
                Ok(e) => e,
                Err(e) => {
                    let what = format!("unreadable export: {e}");
                    return Ok(Err((id, DbError::Corrupt { table: "webhook_events", id: r.text(4)?, what })));
                }
            };
            Ok(Ok(DueDelivery {
                id,
                endpoint_id: r.text(1)?,
                url: r.text(2)?,
                secret: r.text(3)?,
                event_id: r.text(4)?,
                event_type: r.text(5)?,
                event_created_at: r.int(6)?,
                export,
                attempts: r.int(8)?,
                created_at: r.int(9)?,
            }))
        },
    )
}

/// Claims deliveries `ids` for an attempt by this process: each one still pending and due at
/// `now` is pushed back to `until` (its lease) and returned; one another process has claimed
/// meanwhile (it is no longer due) is left out. Run it on the writer: of several replicas
/// reading the same queue, exactly one claims a delivery. The attempt's outcome then sets the
/// delivery's state (`record_attempt`); a process that dies mid-attempt leaves it pending, due
/// again once the lease is over (at least once).
pub fn claim(conn: &dyn Sql, ids: &[i64], now: i64, until: i64) -> DbResult<Vec<i64>> {
    let mut claimed = Vec::with_capacity(ids.len());
    for &id in ids {
        let n = conn.exec(
            "UPDATE webhook_deliveries SET next_attempt_at = ?3
             WHERE id = ?1 AND status = 'pending' AND next_attempt_at <= ?2",
            args![id, now, until],
        )?;
        if n > 0 {
            claimed.push(id);
        }
    }
    Ok(claimed)
}

/// What one attempt left.
#[derive(Debug, Clone)]
pub struct Attempt {
    /// `succeeded`, `pending` (tried again at `next_attempt_at`) or `failed`.
    pub status: &'static str,
    pub next_attempt_at: Option<i64>,
    pub status_code: Option<u16>,
    pub error: Option<String>,
}

/// Records an attempt of delivery `id` (counted); false when the delivery is gone (its
/// endpoint was deleted meanwhile).
pub fn record_attempt(conn: &dyn Sql, id: i64, a: &Attempt) -> DbResult<bool> {
    Ok(conn.exec(
        "UPDATE webhook_deliveries SET attempts = attempts + 1, status = ?2, next_attempt_at = ?3,
                last_status_code = ?4, last_error = ?5, updated_at = ?6
         WHERE id = ?1 AND status = 'pending'",
        args![
            id,
            a.status,
            a.next_attempt_at,
            a.status_code.map(i64::from),
            a.error.as_deref(),
            crate::domain::time::now_ms()
        ],
    )? > 0)
}

/// A delivery as `GET /v1/webhooks/{id}/deliveries` shows it.
#[derive(Debug, Clone)]
pub struct DeliveryRow {
    pub id: i64,
    pub event_id: String,
    pub event_type: String,
    pub export_id: String,
    pub status: String,
    pub attempts: i64,
    pub last_status_code: Option<i64>,
    pub last_error: Option<String>,
    pub next_attempt_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// The newest deliveries of an endpoint, at most `limit`, newest first.
pub fn recent(conn: &dyn Sql, endpoint_id: &str, limit: u32) -> DbResult<Vec<DeliveryRow>> {
    conn.rows(
        "SELECT d.id, d.event_id, v.type, v.export_id, d.status, d.attempts, d.last_status_code, d.last_error,
                d.next_attempt_at, d.created_at, d.updated_at
         FROM webhook_deliveries d JOIN webhook_events v ON v.id = d.event_id
         WHERE d.endpoint_id = ?1 ORDER BY d.id DESC LIMIT ?2",
        args![endpoint_id, i64::from(limit)],
        |r| {
            Ok(DeliveryRow {
                id: r.int(0)?,
                event_id: r.text(1)?,
                event_type: r.text(2)?,
                export_id: r.text(3)?,
                status: r.text(4)?,
                attempts: r.int(5)?,
                last_status_code: r.opt_int(6)?,
                last_error: r.opt_text(7)?,
                next_attempt_at: r.opt_int(8)?,
                created_at: r.int(9)?,
                updated_at: r.int(10)?,
            })
        },
    )
}

/// Deletes finished deliveries last changed before `cutoff`, then events no delivery refers
/// to any more; returns the deliveries deleted.
pub fn sweep(conn: &dyn Sql, cutoff: i64) -> DbResult<usize> {
    let n = conn.exec("DELETE FROM webhook_deliveries WHERE status <> 'pending' AND updated_at < ?1", args![cutoff])?;
    conn.exec(
        "DELETE FROM webhook_events WHERE created_at < ?1
         AND NOT EXISTS (SELECT 1 FROM webhook_deliveries d WHERE d.event_id = webhook_events.id)",
        args![cutoff],
    )?;
    Ok(n as usize)
}
