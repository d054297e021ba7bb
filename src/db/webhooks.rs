//! Webhook endpoints: a team's receivers, the events each subscribes to, and its secret.

use super::sql::{self, args, Sql};

use super::{list_page, DbError, DbResult, ListSource};
use crate::domain::list::ListQuery;

/// An endpoint as stored. `secret` signs deliveries: it is kept readable, never logged, and
/// shown to the team only when it is made.
#[derive(Clone)]
pub struct EndpointRow {
    pub id: String,
    pub team_id: String,
    pub url: String,
    /// `["*"]` or event type names.
    pub events: Vec<String>,
    pub description: Option<String>,
    pub secret: String,
    pub created_at: i64,
    pub updated_at: i64,
}

impl std::fmt::Debug for EndpointRow {
    /// Everything but the secret.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EndpointRow")
            .field("id", &self.id)
            .field("team_id", &self.team_id)
            .field("url", &self.url)
            .field("events", &self.events)
            .finish_non_exhaustive()
    }
}

const COLUMNS: &str = "id, team_id, url, events, description, secret, created_at, updated_at";

/// The stored event names read back; unreadable ones are a corrupt row (`DbError::Corrupt`).
fn read_events(id: &str, events: &str) -> DbResult<Vec<String>> {
    serde_json::from_str(events).map_err(|e| DbError::Corrupt {
        table: "webhook_endpoints",
        id: id.to_string(),
        what: format!("unreadable events {events:?}: {e}"),
    })
}

/// Reads a row of `SELECT {COLUMNS}` on either database.
fn read(r: &sql::Row) -> DbResult<EndpointRow> {
    let id = r.text(0)?;
    let events = read_events(&id, &r.text(3)?)?;
    Ok(EndpointRow {
        id,
        team_id: r.text(1)?,
        url: r.text(2)?,
        events,
        description: r.opt_text(4)?,
        secret: r.text(5)?,
        created_at: r.int(6)?,
        updated_at: r.int(7)?,
    })
}

pub fn insert(conn: &dyn Sql, e: &EndpointRow) -> DbResult<()> {
    let events = serde_json::to_string(&e.events).expect("event names serialize");
    conn.exec(
        "INSERT INTO webhook_endpoints (id, team_id, url, events, description, secret, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        args![&e.id, &e.team_id, &e.url, &events, &e.description, &e.secret, e.created_at, e.updated_at],
    )?;
    Ok(())
}

/// One endpoint of a team; another team's is `None`, as a missing one is.
pub fn get(conn: &dyn Sql, team_id: &str, id: &str) -> DbResult<Option<EndpointRow>> {
    conn.opt(
        &format!("SELECT {COLUMNS} FROM webhook_endpoints WHERE id = ?1 AND team_id = ?2"),
        args![id, team_id],
        read,
    )
}

/// Every endpoint of a team (few: a team has a handful), for matching an event.
pub fn all_of_team(conn: &dyn Sql, team_id: &str) -> DbResult<Vec<EndpointRow>> {
    conn.rows(&format!("SELECT {COLUMNS} FROM webhook_endpoints WHERE team_id = ?1"), args![team_id], read)
}

/// A page of a team's endpoints and their total.
pub fn list(conn: &dyn Sql, team_id: &str, q: &ListQuery) -> DbResult<(Vec<EndpointRow>, u64)> {
    let src = ListSource {
        table: "webhook_endpoints",
        from: "webhook_endpoints",
        team_column: "team_id",
        columns: COLUMNS,
        prefix: "",
        search: &["url", "description"],
        moving: &["updated_at"],
        indexed: &["created_at"],
        binary_ids: false,
    };
    list_page(conn, &src, team_id, q, None, read)
}

/// Deletes an endpoint of a team with its deliveries (pending ones are never sent); false
/// when the team has no such endpoint.
pub fn delete(conn: &dyn Sql, team_id: &str, id: &str) -> DbResult<bool> {
    conn.exec(
        "DELETE FROM webhook_deliveries
         WHERE endpoint_id = (SELECT id FROM webhook_endpoints WHERE id = ?1 AND team_id = ?2)",
        args![id, team_id],
    )?;
    Ok(conn.exec("DELETE FROM webhook_endpoints WHERE id = ?1 AND team_id = ?2", args![id, team_id])? > 0)
}

/// Gives an endpoint of a team a new secret; the row as it is now, or `None` when the team
/// has no such endpoint. Deliveries sent from the commit on are signed with the new secret.
pub fn set_secret(conn: &dyn Sql, team_id: &str, id: &str, secret: &str, now: i64) -> DbResult<Option<EndpointRow>> {
    let changed = conn.exec(
        "UPDATE webhook_endpoints SET secret = ?3, updated_at = ?4 WHERE id = ?1 AND team_id = ?2",
        args![id, team_id, secret, now],
    )?;
    if changed == 0 {
        return Ok(None);
    }
    get(conn, team_id, id)
}
