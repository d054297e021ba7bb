//! Answers to POSTs sent with an `Idempotency-Key`, kept per team (migration 5). A row is
//! first a reservation (`status` NULL) taken by the request that does the work, then that
//! request's answer; rows older than the key lifetime count as gone and are swept.

use super::sql::{args, Sql};

use super::DbResult;

/// The request a key was first used for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyedRequest {
    pub team_id: String,
    pub key: String,
    pub method: String,
    pub path: String,
    /// Hash of the body (normalised JSON, or the NDJSON bytes); empty while unknown (an
    /// upload being read).
    pub body_hash: String,
}

/// A stored key.
#[derive(Debug, Clone)]
pub struct StoredKey {
    pub method: String,
    pub path: String,
    pub body_hash: String,
    /// The process whose request holds the reservation.
    pub run_id: String,
    /// When the key was reserved (ms).
    pub created_at: i64,
    /// `None` while the first request still runs.
    pub answer: Option<StoredAnswer>,
}

/// The answer given to the first request.
#[derive(Debug, Clone)]
pub struct StoredAnswer {
    pub status: u16,
    pub content_type: Option<String>,
    pub body: Vec<u8>,
}

/// What [`reserve`] found.
#[derive(Debug)]
pub enum Reservation {
    /// The key is new (or its earlier use expired, or the process running it died): this
    /// request does the work.
    Reserved,
    /// The key is in use.
    Existing(StoredKey),
}

/// The key's row, if it was created at or after `since`.
pub fn get(conn: &dyn Sql, team_id: &str, key: &str, since: i64) -> DbResult<Option<StoredKey>> {
    conn.opt(
        "SELECT method, path, body_hash, run_id, status, content_type, body, created_at FROM idempotency_keys
         WHERE team_id = ?1 AND key = ?2 AND created_at >= ?3",
        args![team_id, key, since],
        |r| {
            Ok(StoredKey {
                method: r.text(0)?,
                path: r.text(1)?,
                body_hash: r.text(2)?,
                run_id: r.text(3)?,
                created_at: r.int(7)?,
                answer: match r.opt_int(4)? {
                    Some(s) => Some(StoredAnswer {
                        status: s as u16,
                        content_type: r.opt_text(5)?,
                        body: r.opt_bytes(6)?.unwrap_or_default(),
                    }),
                    None => None,
                },
            })
        },
    )
}

/// Takes the key for `req` unless it is in use: a row created before `since` (expired), or
/// a reservation another run of the service left (its process died), is replaced. Run it on
/// the writer, so that of concurrent requests exactly one reserves.
///
/// On SQLite one process serves: a reservation of another run is one a process that died
/// left. On PostgreSQL several replicas serve at once, each its own run: another run's
/// reservation is in use (that replica's request still runs) until it is
/// [`RESERVATION_LEASE_MS`] old, and only then counts as left by a replica that died.
pub fn reserve(conn: &dyn Sql, req: &KeyedRequest, run_id: &str, now: i64, since: i64) -> DbResult<Reservation> {
    if let Some(existing) = get(conn, &req.team_id, &req.key, since)? {
        let another_replica_runs = conn.pg().is_some() && existing.created_at > now - RESERVATION_LEASE_MS;
        if existing.answer.is_some() || existing.run_id == run_id || another_replica_runs {
            return Ok(Reservation::Existing(existing));
        }
    }
    // an upsert both databases read alike: the replaced row loses its answer, as a new one
    // has none
    conn.exec(
        "INSERT INTO idempotency_keys (team_id, key, method, path, body_hash, run_id, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
         ON CONFLICT (team_id, key) DO UPDATE SET method = excluded.method, path = excluded.path,
             body_hash = excluded.body_hash, run_id = excluded.run_id, created_at = excluded.created_at,
             status = NULL, content_type = NULL, body = NULL",
        args![&req.team_id, &req.key, &req.method, &req.path, &req.body_hash, run_id, now],
    )?;
    Ok(Reservation::Reserved)
}

/// Stores the answer to the request that holds the reservation (and the body's hash, now
/// known for an upload).
pub fn finish(conn: &dyn Sql, req: &KeyedRequest, run_id: &str, answer: &StoredAnswer) -> DbResult<bool> {
    Ok(conn.exec(
        "UPDATE idempotency_keys SET body_hash = ?4, status = ?5, content_type = ?6, body = ?7
         WHERE team_id = ?1 AND key = ?2 AND run_id = ?3 AND status IS NULL",
        args![
            &req.team_id,
            &req.key,
            run_id,
            &req.body_hash,
            i64::from(answer.status),
            &answer.content_type,
            answer.body.as_slice()
        ],
    )? > 0)
}

/// Gives a reservation up (the answer is not kept: a 5xx, or the request was dropped), so a
/// retry runs.
pub fn release(conn: &dyn Sql, team_id: &str, key: &str, run_id: &str) -> DbResult<bool> {
    Ok(conn.exec(
        "DELETE FROM idempotency_keys WHERE team_id = ?1 AND key = ?2 AND run_id = ?3 AND status IS NULL",
        args![team_id, key, run_id],
    )? > 0)
}

/// Deletes keys created before `cutoff`; returns how many.
pub fn delete_expired(conn: &dyn Sql, cutoff: i64) -> DbResult<usize> {
    Ok(conn.exec("DELETE FROM idempotency_keys WHERE created_at < ?1", args![cutoff])? as usize)
}

/// On PostgreSQL, how long another replica's reservation counts as in use (its request still
/// running) before it is taken as left by a replica that died: 15 minutes, longer than a
/// request takes (a large upload included). Meanwhile a repeat is answered 409 (in flight).
pub const RESERVATION_LEASE_MS: i64 = 15 * 60 * 1000;

/// How long a key and its answer are kept: 24 hours.
pub const KEY_LIFETIME_MS: i64 = 24 * 3600 * 1000;

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::Connection;

    fn db() -> Connection {
        let mut c = Connection::open_in_memory().unwrap();
        crate::db::migrations::migrate(&mut c).unwrap();
        c
    }

    fn request(body_hash: &str) -> KeyedRequest {
        KeyedRequest {
            team_id: "t".into(),
            key: "k".into(),
            method: "POST".into(),
            path: "/v1/exports".into(),
            body_hash: body_hash.into(),
        }
    }

    fn answer() -> StoredAnswer {
        StoredAnswer { status: 201, content_type: Some("application/json".into()), body: b"{}".to_vec() }
    }

    /// A reservation of this run is in use; one left by a run that died is taken over; a kept
    /// answer is in use until it expires; a released key is free.
    #[test]
    fn reservations_answers_expiry_and_dead_runs() {
        let c = db();
        let req = request("h");
        assert!(matches!(reserve(&c, &req, "run-1", 1000, 0).unwrap(), Reservation::Reserved));
        match reserve(&c, &req, "run-1", 1001, 0).unwrap() {
            Reservation::Existing(k) => assert!(k.answer.is_none(), "in flight"),
            r => panic!("{r:?}"),
        }
        // the process that reserved it died: the next run takes the key
        assert!(matches!(reserve(&c, &req, "run-2", 1002, 0).unwrap(), Reservation::Reserved));
        assert!(!finish(&c, &req, "run-1", &answer()).unwrap(), "run-1 no longer holds it");
        assert!(finish(&c, &req, "run-2", &answer()).unwrap());
        match reserve(&c, &req, "run-3", 1003, 0).unwrap() {
            Reservation::Existing(k) => {
                assert_eq!(k.answer.unwrap().body, b"{}");
                assert_eq!((k.method.as_str(), k.path.as_str(), k.body_hash.as_str()), ("POST", "/v1/exports", "h"));
            }
            r => panic!("{r:?}"),
        }
        assert!(!release(&c, "t", "k", "run-2").unwrap(), "a kept answer is not released");
        // once older than the lifetime, it counts as gone, and is swept
        assert!(get(&c, "t", "k", 1003).unwrap().is_none());
        assert!(matches!(reserve(&c, &request("other"), "run-3", 5000, 1003).unwrap(), Reservation::Reserved));
        assert!(release(&c, "t", "k", "run-3").unwrap());
        assert!(get(&c, "t", "k", 0).unwrap().is_none());
        reserve(&c, &req, "run-3", 6000, 0).unwrap();
        assert_eq!(delete_expired(&c, 6000).unwrap(), 0);
        assert_eq!(delete_expired(&c, 6001).unwrap(), 1);
    }
}
