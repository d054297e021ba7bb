//! Versioned schema migrations, embedded in the binary. `PRAGMA user_version` records how many
//! have run; a newer binary runs the missing ones in order, each in its own transaction.

use rusqlite::Connection;

use super::{DbError, DbResult};

const MIGRATIONS: &[&str] = &[
    // 1: the first schema
    "CREATE TABLE teams (
        id          TEXT PRIMARY KEY,
        name        TEXT NOT NULL UNIQUE,
        created_at  INTEGER NOT NULL
    );
    CREATE TABLE api_keys (
        id          TEXT PRIMARY KEY,
        team_id     TEXT NOT NULL REFERENCES teams(id),
        name        TEXT,
        key_hash    TEXT NOT NULL UNIQUE,
        prefix      TEXT NOT NULL,
        created_at  INTEGER NOT NULL,
        revoked_at  INTEGER
    );
    CREATE TABLE schemas (
        id          TEXT PRIMARY KEY,
        team_id     TEXT NOT NULL REFERENCES teams(id),
        name        TEXT NOT NULL,
        description TEXT,
        definition  TEXT NOT NULL,
        created_at  INTEGER NOT NULL,
        updated_at  INTEGER NOT NULL
    );
    CREATE INDEX schemas_team ON schemas(team_id, created_at, id);
    CREATE TABLE results (
        id          TEXT PRIMARY KEY,
        team_id     TEXT NOT NULL REFERENCES teams(id),
        schema_id   TEXT NOT NULL REFERENCES schemas(id),
        file_name   TEXT,
        extraction  TEXT NOT NULL,
        created_at  INTEGER NOT NULL,
        updated_at  INTEGER NOT NULL
    );
    CREATE INDEX results_schema_created ON results(schema_id, created_at, id);
    CREATE INDEX results_team_created ON results(team_id, created_at, id);
    CREATE TABLE exports (
        id           TEXT PRIMARY KEY,
        team_id      TEXT NOT NULL REFERENCES teams(id),
        schema_id    TEXT NOT NULL REFERENCES schemas(id),
        status       TEXT NOT NULL,
        start_ms     INTEGER NOT NULL,
        end_ms       INTEGER NOT NULL,
        expand_array TEXT,
        options      TEXT NOT NULL,
        row_count    INTEGER,
        file_size    INTEGER,
        error        TEXT,
        attempts     INTEGER NOT NULL DEFAULT 0,
        claimed_by   TEXT,
        created_at   INTEGER NOT NULL,
        updated_at   INTEGER NOT NULL,
        completed_at INTEGER
    );
    CREATE INDEX exports_team_created ON exports(team_id, created_at, id);
    CREATE INDEX exports_status ON exports(status, created_at);
    CREATE INDEX exports_schema ON exports(schema_id);",
    // 2: a team's exports in every sort order of GET /v1/exports, read from the index alone
    // (created_at rides along for the created_after/created_before filters); deletions counted
    "CREATE INDEX exports_team_updated ON exports(team_id, updated_at, id, created_at);
    CREATE INDEX exports_team_status ON exports(team_id, status, id, created_at);
    CREATE INDEX exports_team_start ON exports(team_id, start_ms, id, created_at);
    CREATE INDEX exports_team_end ON exports(team_id, end_ms, id, created_at);
    -- rows ever deleted per table: with the largest rowid, tells a list's remembered total is
    -- still exact (db/counts.rs); inserts fire nothing
    CREATE TABLE row_deletions (tbl TEXT PRIMARY KEY, n INTEGER NOT NULL) WITHOUT ROWID;
    INSERT INTO row_deletions VALUES ('exports', 0), ('results', 0);
    CREATE TRIGGER exports_deleted AFTER DELETE ON exports
        BEGIN UPDATE row_deletions SET n = n + 1 WHERE tbl = 'exports'; END;
    CREATE TRIGGER results_deleted AFTER DELETE ON results
        BEGIN UPDATE row_deletions SET n = n + 1 WHERE tbl = 'results'; END;",
    // 3: the job queue read from the index alone, in claim order (status, created_at, id):
    // a claim no longer sorts every waiting job while it holds the write connection
    "CREATE INDEX exports_queue ON exports(status, created_at, id, attempts, claimed_by);
    DROP INDEX exports_status;",
    // 4: updates of the export columns a list may be sorted by (status, updated_at) counted:
    // with the largest rowid and the deletions, tells a list's bookmarks are still exact
    // (db/bookmarks.rs); an export's other updates and inserts fire nothing
    "CREATE TABLE row_moves (tbl TEXT PRIMARY KEY, n INTEGER NOT NULL) WITHOUT ROWID;
    INSERT INTO row_moves VALUES ('exports', 0);
    CREATE TRIGGER exports_moved AFTER UPDATE OF status, updated_at ON exports
        BEGIN UPDATE row_moves SET n = n + 1 WHERE tbl = 'exports'; END;",
    // 5: webhooks: a team's endpoints (the secret kept readable: it signs every delivery),
    // the events (what the export was when it happened) and one delivery per (event,
    // endpoint), the queue the delivery worker reads; deleting an endpoint drops its deliveries
    "CREATE TABLE webhook_endpoints (
        id          TEXT PRIMARY KEY,
        team_id     TEXT NOT NULL REFERENCES teams(id),
        url         TEXT NOT NULL,
        events      TEXT NOT NULL,
        description TEXT,
        secret      TEXT NOT NULL,
        created_at  INTEGER NOT NULL,
        updated_at  INTEGER NOT NULL
    );
    CREATE INDEX webhook_endpoints_team ON webhook_endpoints(team_id, created_at, id);
    CREATE TABLE webhook_events (
        id          TEXT PRIMARY KEY,
        team_id     TEXT NOT NULL,
        type        TEXT NOT NULL,
        export_id   TEXT NOT NULL,
        export      TEXT NOT NULL,
        created_at  INTEGER NOT NULL
    );
    CREATE TABLE webhook_deliveries (
        id               INTEGER PRIMARY KEY,
        event_id         TEXT NOT NULL REFERENCES webhook_events(id) ON DELETE CASCADE,
        endpoint_id      TEXT NOT NULL REFERENCES webhook_endpoints(id) ON DELETE CASCADE,
        status           TEXT NOT NULL,
        attempts         INTEGER NOT NULL DEFAULT 0,
        next_attempt_at  INTEGER,
        last_status_code INTEGER,
        last_error       TEXT,
        created_at       INTEGER NOT NULL,
        updated_at       INTEGER NOT NULL
    );
    CREATE INDEX webhook_deliveries_endpoint ON webhook_deliveries(endpoint_id, id);
    CREATE INDEX webhook_deliveries_event ON webhook_deliveries(event_id);
    CREATE INDEX webhook_deliveries_due ON webhook_deliveries(endpoint_id, next_attempt_at)
        WHERE status = 'pending';",
    // 6: a running export's progress (results read so far, results in its range when it
    // started; exports completed before this are filled in: without expand_array a record
    // per result, so its row_count; with it, an index count of its range as it is now), and
    // the answers to POSTs sent with an `Idempotency-Key`, kept per team for 24 hours
    // (`status` NULL while the first request runs; `run_id` names the process running it)
    "ALTER TABLE exports ADD COLUMN results_done INTEGER;
    ALTER TABLE exports ADD COLUMN results_total INTEGER;
    UPDATE exports SET results_total = row_count WHERE status = 'COMPLETED' AND expand_array IS NULL;
    UPDATE exports SET results_total = (SELECT COUNT(*) FROM results r WHERE r.schema_id = exports.schema_id
        AND r.created_at >= exports.start_ms AND r.created_at <= exports.end_ms)
        WHERE status = 'COMPLETED' AND results_total IS NULL;
    UPDATE exports SET results_done = results_total WHERE status = 'COMPLETED';
    CREATE TABLE idempotency_keys (
        team_id      TEXT NOT NULL,
        key          TEXT NOT NULL,
        method       TEXT NOT NULL,
        path         TEXT NOT NULL,
        body_hash    TEXT NOT NULL,
        run_id       TEXT NOT NULL,
        status       INTEGER,
        content_type TEXT,
        body         BLOB,
        created_at   INTEGER NOT NULL,
        PRIMARY KEY (team_id, key)
    ) WITHOUT ROWID;
    CREATE INDEX idempotency_keys_created ON idempotency_keys(created_at);",
];

/// Runs the migrations the database lacks. A database from a newer binary (more migrations
/// than this one knows) is refused with `DbError::TooNew` and left untouched.
pub fn migrate(conn: &mut Connection) -> DbResult<()> {
    let current: usize = conn.query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0))? as usize;
    if current > MIGRATIONS.len() {
        return Err(DbError::TooNew { found: current, known: MIGRATIONS.len() });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(current) {
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", (i + 1) as i64)?;
        tx.commit()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrates_once_and_again() {
        let mut c = Connection::open_in_memory().unwrap();
        migrate(&mut c).unwrap();
        migrate(&mut c).unwrap();
        let v: i64 = c.query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
        assert_eq!(v as usize, MIGRATIONS.len());
    }

    /// Exports COMPLETED before progress was recorded get results done and total (their
    /// records, or their range's count when rows were expanded); others stay without figures.
    #[test]
    fn completed_exports_get_their_progress_filled_in() {
        let mut c = Connection::open_in_memory().unwrap();
        for sql in &MIGRATIONS[..4] {
            c.execute_batch(sql).unwrap();
        }
        c.pragma_update(None, "user_version", 4).unwrap();
        c.execute_batch(
            "INSERT INTO teams VALUES ('t', 't', 0);
             INSERT INTO schemas VALUES ('s', 't', 's', NULL, '{\"fields\":[]}', 0, 0);
             INSERT INTO results VALUES ('r1', 't', 's', NULL, '{}', 10, 0), ('r2', 't', 's', NULL, '{}', 20, 0),
                                        ('r3', 't', 's', NULL, '{}', 30, 0);
             INSERT INTO exports (id, team_id, schema_id, status, start_ms, end_ms, expand_array, options, row_count,
                                  created_at, updated_at)
                 VALUES ('done', 't', 's', 'COMPLETED', 10, 20, NULL, '{}', 2, 0, 0),
                        ('expanded', 't', 's', 'COMPLETED', 10, 30, 'items', '{}', 7, 0, 0),
                        ('waiting', 't', 's', 'PENDING', 0, 99, NULL, '{}', NULL, 0, 0);",
        )
        .unwrap();
        migrate(&mut c).unwrap();
        let figures = |id: &str| -> (Option<i64>, Option<i64>) {
            c.query_row("SELECT results_done, results_total FROM exports WHERE id = ?1", [id], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .unwrap()
        };
        assert_eq!(figures("done"), (Some(2), Some(2)), "one record per result");
        assert_eq!(figures("expanded"), (Some(3), Some(3)), "its range counted");
        assert_eq!(figures("waiting"), (None, None));
    }

    #[test]
    fn refuses_a_database_from_a_newer_binary() {
        let mut c = Connection::open_in_memory().unwrap();
        c.pragma_update(None, "user_version", 99).unwrap();
        let err = migrate(&mut c).unwrap_err();
        assert!(matches!(err, DbError::TooNew { found: 99, known } if known == MIGRATIONS.len()), "{err:?}");
        assert!(err.to_string().contains("newer than this binary"), "{err}");
        let v: i64 = c.query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
        assert_eq!(v, 99, "a newer database is left as it is");
    }
}
