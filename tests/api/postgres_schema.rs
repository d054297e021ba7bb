//! The PostgreSQL store's foundation on a real PostgreSQL (the test cluster of
//! helpers/pg_cluster.rs, a fresh database per test): migrations under the advisory lock, the
//! refusal of a newer database, the schema's tables, indexes and counters, a result's exact
//! round trip, and how PostgreSQL's errors map to HTTP answers.

use std::sync::{Arc, Barrier};

use exports_api::db::pg::{self, SCHEMA_VERSION};
use exports_api::db::DbError;
use exports_api::error::ApiError;
use poem::http::StatusCode;

use crate::helpers::{pg_client, pg_database};

/// `(version, applied_at)` of every migration recorded, in order.
fn applied(url: &str) -> Vec<(i32, i64)> {
    let rows = pg_client(url).query("SELECT version, applied_at FROM schema_migrations ORDER BY version", &[]);
    rows.unwrap().iter().map(|r| (r.get(0), r.get(1))).collect()
}

fn all_versions() -> Vec<i32> {
    (1..=SCHEMA_VERSION as i32).collect()
}

#[test]
fn migrations_apply_to_an_empty_database_and_a_second_open_changes_nothing() {
    let Some(url) = pg_database("postgres_schema::migrations_apply") else { return };
    let pool = pg::open(&url, 2).unwrap();
    let first = applied(&url);
    assert_eq!(first.iter().map(|v| v.0).collect::<Vec<_>>(), all_versions());
    pool.get()
        .unwrap()
        .execute("INSERT INTO teams (id, name, created_at) VALUES ($1, 'kept', 1)", &[&uuid::Uuid::now_v7()])
        .unwrap();
    drop(pool);

    let pool = pg::open(&url, 2).unwrap();
    assert_eq!(applied(&url), first, "nothing migrated again");
    let teams: i64 = pool.get().unwrap().query_one("SELECT count(*) FROM teams", &[]).unwrap().get(0);
    assert_eq!(teams, 1, "the data is kept");
}

/// Replicas starting together on a new database: every open succeeds, and each migration is
/// applied once (a second run of the schema would fail on its existing tables).
#[test]
fn concurrent_opens_of_a_new_database_migrate_it_once() {
    let Some(url) = pg_database("postgres_schema::concurrent_opens") else { return };
    let n = 8;
    let barrier = Arc::new(Barrier::new(n));
    let openers: Vec<_> = (0..n)
        .map(|_| {
            let (url, barrier) = (url.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                pg::open(&url, 1).map(|_pool| ())
            })
        })
        .collect();
    for (i, t) in openers.into_iter().enumerate() {
        t.join().unwrap().unwrap_or_else(|e| panic!("open #{i}: {e}"));
    }
    assert_eq!(applied(&url).iter().map(|v| v.0).collect::<Vec<_>>(), all_versions());
    let held: i64 = pg_client(&url)
        .query_one(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'
             AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(held, 0, "the migration lock is released");
}

#[test]
fn a_database_from_a_newer_binary_is_refused_and_left_untouched() {
    let Some(url) = pg_database("postgres_schema::newer_database") else { return };
    let newer = SCHEMA_VERSION as i32 + 1;
    pg_client(&url)
        .batch_execute(&format!(
            "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at BIGINT NOT NULL);
             INSERT INTO schema_migrations VALUES ({newer}, 7);"
        ))
        .unwrap();
    let err = pg::open(&url, 1).unwrap_err();
    assert!(matches!(err, DbError::TooNew { found, known } if found == newer as usize && known == SCHEMA_VERSION));
    assert!(err.to_string().contains("newer than this binary"), "{err}");
    assert_eq!(applied(&url), [(newer, 7)]);
    let tables: i64 = pg_client(&url)
        .query_one("SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'", &[])
        .unwrap()
        .get(0);
    assert_eq!(tables, 1, "no table created");
}

#[test]
fn the_schema_has_the_tables_indexes_and_column_types() {
    let Some(url) = pg_database("postgres_schema::schema") else { return };
    let _pool = pg::open(&url, 1).unwrap();
    let mut c = pg_client(&url);
    let names = |c: &mut postgres::Client, sql: &str| -> Vec<String> {
        c.query(sql, &[]).unwrap().iter().map(|r| r.get(0)).collect()
    };
    let tables = names(
        &mut c,
        "SELECT table_name::text FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1",
    );
    assert_eq!(
        tables,
        [
            "api_keys",
            "exports",
            "idempotency_keys",
            "results",
            "row_deletions",
            "row_inserts",
            "row_moves",
            "schema_migrations",
            "schemas",
            "teams",
            "webhook_deliveries",
            "webhook_endpoints",
            "webhook_events",
        ]
    );
    // the secondary indexes, each with its columns (keyset paging ends in created_at, id)
    let indexes = names(
        &mut c,
        "SELECT indexname || ' ' || substring(indexdef from ' USING btree (.*)$') FROM pg_indexes
         WHERE schemaname = 'public' AND indexname NOT LIKE '%_pkey' AND indexname NOT LIKE '%_key' ORDER BY 1",
    );
    assert_eq!(
        indexes,
        [
            "exports_leases (lease_until) WHERE (status = 'PROCESSING'::text)",
            "exports_queue (status, created_at, id)",
            "exports_schema (schema_id)",
            "exports_team_created (team_id, created_at, id)",
            "exports_team_end (team_id, end_ms, id, created_at)",
            "exports_team_start (team_id, start_ms, id, created_at)",
            "exports_team_status (team_id, status, id, created_at)",
            "exports_team_updated (team_id, updated_at, id, created_at)",
            "idempotency_keys_created (created_at)",
            "results_schema_created (schema_id, created_at, id)",
            "results_team_created (team_id, created_at, id)",
            "schemas_team (team_id, created_at, id)",
            "webhook_deliveries_due (endpoint_id, next_attempt_at) WHERE (status = 'pending'::text)",
            "webhook_deliveries_endpoint (endpoint_id, id)",
            "webhook_deliveries_event (event_id)",
            "webhook_endpoints_team (team_id, created_at, id)",
        ]
    );
    let types = names(
        &mut c,
        "SELECT table_name || '.' || column_name || ' ' || data_type FROM information_schema.columns
         WHERE table_schema = 'public' AND (column_name IN ('id', 'extraction', 'claimed_by', 'lease_until', 'body')
               OR column_name LIKE '%\\_id') AND table_name IN ('results', 'exports', 'idempotency_keys')
         ORDER BY 1",
    );
    assert_eq!(
        types,
        [
            "exports.claimed_by text",
            "exports.id uuid",
            "exports.lease_until bigint",
            "exports.schema_id uuid",
            "exports.team_id uuid",
            "idempotency_keys.body bytea",
            "idempotency_keys.run_id text",
            "idempotency_keys.team_id uuid",
            "results.extraction text",
            "results.id uuid",
            "results.schema_id uuid",
            "results.team_id uuid",
        ]
    );
}

/// One team, one schema; their ids.
fn team_and_schema(c: &mut postgres::Client) -> (uuid::Uuid, uuid::Uuid) {
    let (team, schema) = (uuid::Uuid::now_v7(), uuid::Uuid::now_v7());
    c.execute("INSERT INTO teams VALUES ($1, 't', 0)", &[&team]).unwrap();
    c.execute("INSERT INTO schemas VALUES ($1, $2, 's', NULL, '{}', 0, 0)", &[&schema, &team]).unwrap();
    (team, schema)
}

/// The list totals cache's counters: one insert per statement, one deletion per row, one move
/// per update of an export's status or updated_at, nothing for its other columns.
#[test]
fn the_row_counters_count_inserts_deletions_and_moves() {
    let Some(url) = pg_database("postgres_schema::row_counters") else { return };
    let _pool = pg::open(&url, 1).unwrap();
    let mut c = pg_client(&url);
    let (team, schema) = team_and_schema(&mut c);
    let counters = |c: &mut postgres::Client| -> Vec<(String, i64)> {
        let sql =
            "SELECT 'inserts ' || tbl, n FROM row_inserts UNION ALL SELECT 'deletions ' || tbl, n FROM row_deletions
                   UNION ALL SELECT 'moves ' || tbl, n FROM row_moves ORDER BY 1";
        c.query(sql, &[]).unwrap().iter().map(|r| (r.get(0), r.get(1))).collect()
    };
    let at = |pairs: &[(&str, i64)]| -> Vec<(String, i64)> { pairs.iter().map(|(k, n)| (k.to_string(), *n)).collect() };
    assert_eq!(
        counters(&mut c),
        at(&[
            ("deletions exports", 0),
            ("deletions results", 0),
            ("inserts exports", 0),
            ("inserts results", 0),
            ("moves exports", 0)
        ])
    );
    let ids: Vec<uuid::Uuid> = (0..3).map(|_| uuid::Uuid::now_v7()).collect();
    c.execute(
        "INSERT INTO results SELECT id, $2, $3, NULL, '{}', 1, 1 FROM unnest($1::uuid[]) AS id",
        &[&ids, &team, &schema],
    )
    .unwrap();
    c.execute("INSERT INTO results SELECT $1, $2, $3, NULL, '{}', 1, 1 WHERE false", &[&ids[0], &team, &schema])
        .unwrap();
    c.execute("DELETE FROM results WHERE id = ANY($1)", &[&&ids[..2]]).unwrap();
    let export = uuid::Uuid::now_v7();
    c.execute(
        "INSERT INTO exports (id, team_id, schema_id, status, start_ms, end_ms, options, created_at, updated_at)
         VALUES ($1, $2, $3, 'PENDING', 0, 1, '{}', 5, 5)",
        &[&export, &team, &schema],
    )
    .unwrap();
    c.execute(
        "UPDATE exports SET status = 'PROCESSING', claimed_by = 'run', lease_until = 9 WHERE id = $1",
        &[&export],
    )
    .unwrap();
    c.execute("UPDATE exports SET lease_until = 19, results_done = 1 WHERE id = $1", &[&export]).unwrap();
    c.execute("UPDATE exports SET updated_at = 6 WHERE id = $1", &[&export]).unwrap();
    assert_eq!(
        counters(&mut c),
        at(&[
            ("deletions exports", 0),
            ("deletions results", 2),
            ("inserts exports", 1),
            ("inserts results", 1),
            ("moves exports", 2)
        ]),
        "an insert of no rows and an update of other columns count nothing"
    );
}

/// A result's uuid and extraction come back as they went in: the extraction's bytes exactly
/// (key order, spacing, numbers past any float's precision, escapes, non-ASCII text).
#[test]
fn a_result_round_trips_its_uuid_and_extraction_byte_for_byte() {
    let Some(url) = pg_database("postgres_schema::round_trip") else { return };
    let pool = pg::open(&url, 1).unwrap();
    let mut c = pool.get().unwrap();
    let (team, schema) = team_and_schema(&mut c);
    let id = uuid::Uuid::now_v7();
    let extraction = concat!(
        r#"{"z":1,  "a" : [123456789012345678901234567890.000000000000000000001, 1e400, -0.0, 1.10],"#,
        r#" "s":"Grüße, 日本語, 😀, \u0000 \"quoted\" \\ \n","n":null}"#
    );
    c.execute(
        "INSERT INTO results (id, team_id, schema_id, file_name, extraction, created_at, updated_at)
         VALUES ($1, $2, $3, 'Ü.pdf', $4, 10, 10)",
        &[&id, &team, &schema, &extraction],
    )
    .unwrap();
    let row = c
        .query_one(
            "SELECT id, id::text, extraction, octet_length(extraction) FROM results WHERE team_id = $1",
            &[&team],
        )
        .unwrap();
    let (back, text, stored, bytes): (uuid::Uuid, String, String, i32) =
        (row.get(0), row.get(1), row.get(2), row.get(3));
    assert_eq!(back, id);
    assert_eq!(text, id.to_string(), "the text form is the API's lowercase hyphenated one");
    assert_eq!(stored.as_bytes(), extraction.as_bytes());
    assert_eq!(bytes as usize, extraction.len());
}

/// PostgreSQL's failures get the HTTP answers of SQLite's: what may succeed when retried (a
/// lost or refused connection, a serialization failure) is a 503 with Retry-After; a
/// statement the server rejects is a 500.
#[test]
fn postgres_errors_map_to_503_or_500() {
    let Some(url) = pg_database("postgres_schema::errors") else { return };
    let _pool = pg::open(&url, 1).unwrap();
    let status = |e: DbError| {
        let api = ApiError::from(e);
        (api.status, api.retry_after.is_some())
    };
    let unavailable = (StatusCode::SERVICE_UNAVAILABLE, true);

    // a connection ended by the server
    let mut victim = pg_client(&url);
    let pid: i32 = victim.query_one("SELECT pg_backend_pid()", &[]).unwrap().get(0);
    pg_client(&url).execute("SELECT pg_terminate_backend($1)", &[&pid]).unwrap();
    let e = DbError::from(victim.query_one("SELECT 1", &[]).unwrap_err());
    assert!(matches!(e, DbError::PgUnavailable(_)), "{e:?}");
    assert_eq!(status(e), unavailable);

    // no server there
    let e = pg::open("postgres://exports@127.0.0.1:1/none?connect_timeout=5", 1).unwrap_err();
    assert!(matches!(e, DbError::PgUnavailable(_)), "{e:?}");
    assert!(e.to_string().starts_with("database unavailable: error connecting to server: "), "{e}");
    assert_eq!(status(e), unavailable);

    // a concurrent update seen by a repeatable-read transaction: a serialization failure
    let mut a = pg_client(&url);
    let mut b = pg_client(&url);
    a.batch_execute("INSERT INTO teams VALUES (gen_random_uuid(), 'x', 0)").unwrap();
    let mut tx = a.build_transaction().isolation_level(postgres::IsolationLevel::RepeatableRead).start().unwrap();
    tx.query_one("SELECT count(*) FROM teams", &[]).unwrap();
    b.batch_execute("UPDATE teams SET created_at = 1").unwrap();
    let e = DbError::from(tx.execute("UPDATE teams SET created_at = 2", &[]).unwrap_err());
    assert!(matches!(e, DbError::PgUnavailable(_)), "{e:?}");
    assert_eq!(status(e), unavailable);
    drop(tx);

    // a statement the server rejects
    let e = DbError::from(a.execute("SELECT * FROM no_such_table", &[]).unwrap_err());
    assert!(matches!(e, DbError::Postgres(_)), "{e:?}");
    assert!(e.to_string().contains(r#"relation "no_such_table" does not exist"#), "the server's message: {e}");
    assert_eq!(status(e), (StatusCode::INTERNAL_SERVER_ERROR, false));
}

/// A migration that fails is rolled back whole: no table of it stays, no version is recorded,
/// the lock is released, and an open once the obstacle is gone migrates the database.
#[test]
fn a_failed_migration_leaves_the_database_as_it_was() {
    let Some(url) = pg_database("postgres_schema::failed_migration") else { return };
    // a table of the schema's name, created last by migration 1, makes it fail at the end
    pg_client(&url).batch_execute("CREATE TABLE idempotency_keys (x INTEGER)").unwrap();
    let err = pg::open(&url, 1).unwrap_err();
    assert!(matches!(err, DbError::Postgres(_)), "{err:?}");
    assert!(err.to_string().contains(r#"relation "idempotency_keys" already exists"#), "{err}");
    assert_eq!(applied(&url), []);
    let tables: Vec<String> = pg_client(&url)
        .query("SELECT table_name::text FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(tables, ["idempotency_keys", "schema_migrations"]);

    pg_client(&url).batch_execute("DROP TABLE idempotency_keys").unwrap();
    let _pool = pg::open(&url, 1).unwrap();
    assert_eq!(applied(&url).iter().map(|v| v.0).collect::<Vec<_>>(), all_versions());
}
