//! Versioned schema migrations, embedded in the binary. `PRAGMA user_version` records how many
//! have run; a newer binary runs the missing ones in order, each in its own transaction.

use rusqlite::{Connection, OptionalExtension};

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
    // 7: a result's id, team id and schema id as the UUID's 16 bytes instead of its 36
    // characters (db/ids.rs): the table and its three indexes hold them on every row, and
    // smaller entries make a bulk import's inserts cheaper. Rows keep their rowids (the
    // remembered list totals go by them) and their order (the bytes sort as the lowercase
    // text did). The two ids have no foreign keys any more: `teams.id` and `schemas.id` stay
    // text, and a blob never equals a text (results are only stored for a schema the team
    // owns, and a schema with results is not deleted). `check_results_ids` runs first.
    "CREATE TABLE results_new (
        id          BLOB PRIMARY KEY,
        team_id     BLOB NOT NULL,
        schema_id   BLOB NOT NULL,
        file_name   TEXT,
        extraction  TEXT NOT NULL,
        created_at  INTEGER NOT NULL,
        updated_at  INTEGER NOT NULL
    );
    INSERT INTO results_new (rowid, id, team_id, schema_id, file_name, extraction, created_at, updated_at)
        SELECT rowid, unhex(id, '-'), unhex(team_id, '-'), unhex(schema_id, '-'), file_name, extraction,
               created_at, updated_at
        FROM results ORDER BY rowid;
    DROP TABLE results;
    ALTER TABLE results_new RENAME TO results;
    CREATE INDEX results_schema_created ON results(schema_id, created_at, id);
    CREATE INDEX results_team_created ON results(team_id, created_at, id);
    CREATE TRIGGER results_deleted AFTER DELETE ON results
        BEGIN UPDATE row_deletions SET n = n + 1 WHERE tbl = 'results'; END;",
];

/// The migration that stores a result's ids as 16 bytes.
const RESULT_IDS_AS_BYTES: usize = 7;

/// Before migration 7 (which turns them into 16 bytes): every result's id, team id and schema
/// id is a UUID as the API writes them (lowercase, hyphenated), else the migration stops with
/// the first row that is not, and the database is left as it was.
fn check_results_ids(tx: &rusqlite::Transaction) -> DbResult<()> {
    let hex = |n: usize| "[0-9a-f]".repeat(n);
    let pattern = [hex(8), hex(4), hex(4), hex(4), hex(12)].join("-");
    let bad: Option<(String, String, String)> = tx
        .query_row(
            "SELECT CAST(id AS TEXT), CAST(team_id AS TEXT), CAST(schema_id AS TEXT) FROM results
             WHERE NOT (typeof(id) = 'text' AND id GLOB ?1 AND typeof(team_id) = 'text' AND team_id GLOB ?1
                        AND typeof(schema_id) = 'text' AND schema_id GLOB ?1)
             LIMIT 1",
            [&pattern],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()?;
    match bad {
        None => Ok(()),
        Some((id, team_id, schema_id)) => Err(DbError::Corrupt {
            table: "results",
            id,
            what: format!(
                "its id, team_id ({team_id}) or schema_id ({schema_id}) is not a lowercase hyphenated UUID, \
which this version stores as 16 bytes; nothing was changed"
            ),
        }),
    }
}

/// Runs the migrations the database lacks. A database from a newer binary (more migrations
/// than this one knows) is refused with `DbError::TooNew` and left untouched.
pub fn migrate(conn: &mut Connection) -> DbResult<()> {
    let current: usize = conn.query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0))? as usize;
    if current > MIGRATIONS.len() {
        return Err(DbError::TooNew { found: current, known: MIGRATIONS.len() });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(current) {
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        if i + 1 == RESULT_IDS_AS_BYTES {
            check_results_ids(&tx)?;
        }
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
        c.execute_batch(&format!(
            "INSERT INTO teams VALUES ('{T}', 't', 0);
             INSERT INTO schemas VALUES ('{S}', '{T}', 's', NULL, '{{\"fields\":[]}}', 0, 0);
             INSERT INTO results VALUES ('{R}1', '{T}', '{S}', NULL, '{{}}', 10, 0),
                                        ('{R}2', '{T}', '{S}', NULL, '{{}}', 20, 0),
                                        ('{R}3', '{T}', '{S}', NULL, '{{}}', 30, 0);
             INSERT INTO exports (id, team_id, schema_id, status, start_ms, end_ms, expand_array, options, row_count,
                                  created_at, updated_at)
                 VALUES ('done', '{T}', '{S}', 'COMPLETED', 10, 20, NULL, '{{}}', 2, 0, 0),
                        ('expanded', '{T}', '{S}', 'COMPLETED', 10, 30, 'items', '{{}}', 7, 0, 0),
                        ('waiting', '{T}', '{S}', 'PENDING', 0, 99, NULL, '{{}}', NULL, 0, 0);"
        ))
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

    const T: &str = "019760a0-0000-7000-8000-000000000000";
    const S: &str = "019760a0-0001-7000-8000-000000000001";
    /// Result ids: this and one more hex digit.
    const R: &str = "019760a0-0002-7000-8000-00000000000";

    /// A database as version 6 of the schema left it.
    fn at_version_6() -> Connection {
        let c = Connection::open_in_memory().unwrap();
        for sql in &MIGRATIONS[..6] {
            c.execute_batch(sql).unwrap();
        }
        c.pragma_update(None, "user_version", 6).unwrap();
        c.execute_batch(&format!(
            "INSERT INTO teams VALUES ('{T}', 't', 0);
             INSERT INTO schemas VALUES ('{S}', '{T}', 's', NULL, '{{}}', 0, 0);"
        ))
        .unwrap();
        c
    }

    /// Every row of `results` in rowid order: (rowid, its three ids as text, the other
    /// columns as text), read the way that matches how the ids are stored.
    fn results_rows(c: &Connection) -> Vec<(i64, [String; 3], String)> {
        let binary = c.query_row("SELECT count(*) = 0 OR typeof(min(id)) = 'blob' FROM results", [], |r| r.get(0));
        let binary: bool = binary.unwrap();
        let mut st = c
            .prepare(
                "SELECT rowid, id, team_id, schema_id, quote(file_name) || extraction || created_at || '/' || updated_at
                 FROM results ORDER BY rowid",
            )
            .unwrap();
        let rows = st.query_map([], |r| {
            let id = |i| if binary { super::super::ids::text_at(r, i) } else { r.get(i) };
            Ok((r.get(0)?, [id(1)?, id(2)?, id(3)?], r.get(4)?))
        });
        rows.unwrap().collect::<Result<_, _>>().unwrap()
    }

    /// The rowids of the results in `ORDER BY created_at, id` of the schema's index.
    fn schema_order(c: &Connection) -> Vec<i64> {
        let mut st = c.prepare("SELECT rowid FROM results ORDER BY schema_id, created_at, id").unwrap();
        st.query_map([], |r| r.get(0)).unwrap().collect::<Result<_, _>>().unwrap()
    }

    /// Migration 7 keeps every result (rowid, ids as text, every other column) and the order
    /// of ids within equal createdAt, stores the ids as 16 bytes, and rebuilds the indexes and
    /// the deletions trigger.
    #[test]
    fn result_ids_become_16_bytes_and_nothing_else_changes() {
        let mut c = at_version_6();
        // ties in createdAt, ids inserted out of order, hex digits above and below '9', a
        // deleted row (a rowid gap), NULL and non-ASCII file names
        for (n, created) in [(0xc, 5), (0x3, 5), (0xa, 5), (0x9, 4), (0xf, 7), (0x1, 5), (0xb, 4)] {
            let file = if n % 2 == 0 { "NULL".to_string() } else { format!("'Ü{n}.pdf'") };
            c.execute_batch(&format!(
                "INSERT INTO results VALUES ('{R}{n:x}', '{T}', '{S}', {file}, '{{\"n\":{n}}}', {created}, 99)"
            ))
            .unwrap();
        }
        c.execute_batch(&format!("DELETE FROM results WHERE id = '{R}9'")).unwrap();
        let before = results_rows(&c);
        let order = schema_order(&c);
        assert_eq!(before.len(), 6);

        migrate(&mut c).unwrap();
        assert_eq!(results_rows(&c), before, "same rows, rowids and ids");
        assert_eq!(schema_order(&c), order, "same order by createdAt, then id");
        let kinds: String = c
            .query_row(
                "SELECT group_concat(DISTINCT typeof(id) || typeof(team_id) || typeof(schema_id)) FROM results",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(kinds, "blobblobblob");
        let indexes: Vec<String> = c
            .prepare("SELECT name FROM sqlite_master WHERE tbl_name = 'results' AND type IN ('index', 'trigger') ORDER BY name")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(
            indexes,
            ["results_deleted", "results_schema_created", "results_team_created", "sqlite_autoindex_results_1"]
        );
        let deletions = |c: &Connection| -> i64 {
            c.query_row("SELECT n FROM row_deletions WHERE tbl = 'results'", [], |r| r.get(0)).unwrap()
        };
        let n = deletions(&c);
        c.execute("DELETE FROM results WHERE created_at = 7", []).unwrap();
        assert_eq!(deletions(&c), n + 1, "the trigger counts deletions again");
        let plan: Vec<String> = c
            .prepare("EXPLAIN QUERY PLAN SELECT id FROM results WHERE schema_id = x'00' ORDER BY created_at, id")
            .unwrap()
            .query_map([], |r| r.get(3))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert!(plan.iter().any(|l| l.contains("COVERING INDEX results_schema_created")), "{plan:?}");
    }

    /// A result whose id (or team or schema id) is not a lowercase UUID, which no API answer
    /// made, stops migration 7 with a message naming the row, and the database stays as it was.
    #[test]
    fn an_id_that_is_not_a_uuid_stops_migration_7_and_changes_nothing() {
        for (id, team) in
            [("r1", T.to_string()), (&format!("{R}1").to_uppercase(), T.to_string()), (&format!("{R}1"), "t".into())]
        {
            let mut c = at_version_6();
            c.execute_batch(&format!(
                "INSERT INTO teams VALUES ('t', 'text id', 0);
                 INSERT INTO results VALUES ('{R}2', '{T}', '{S}', NULL, '{{}}', 1, 1);
                 INSERT INTO results VALUES ('{id}', '{team}', '{S}', NULL, '{{}}', 2, 2);"
            ))
            .unwrap();
            let before = results_rows(&c);
            let err = migrate(&mut c).unwrap_err();
            let msg = err.to_string();
            assert!(matches!(err, DbError::Corrupt { table: "results", .. }), "{err:?}");
            assert!(msg.contains(id) && msg.contains("not a lowercase hyphenated UUID"), "{msg}");
            let v: i64 = c.query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
            assert_eq!(v, 6);
            assert_eq!(results_rows(&c), before, "left as it was");
        }
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
