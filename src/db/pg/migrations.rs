//! The PostgreSQL schema as versioned migrations, embedded in the binary. The table
//! `schema_migrations` holds one row per migration applied; [`super::open`] runs the missing
//! ones in order, each in its own transaction, under an advisory lock.
//!
//! Version 1 is the SQLite schema as its 7 migrations leave it (src/db/migrations.rs), with
//! these differences:
//! - every id is a `uuid` (SQLite keeps text, and 16-byte blobs for results since its
//!   migration 7); the API's lowercase hyphenated text converts at the boundary, and `uuid`
//!   sorts as that text does, so keyset paging by `(…, created_at, id)` keeps its order.
//!   `results` keeps its foreign keys (SQLite dropped them with the blob ids).
//! - times stay `BIGINT` milliseconds, texts stay `TEXT`: an extraction is kept byte for byte
//!   (not `jsonb`, which would reorder keys, drop whitespace and round numbers).
//! - an export's lease: `claimed_by` (the run id of the worker holding it) and `lease_until`
//!   (milliseconds; a worker renews it while it runs the job, another takes it over once it
//!   has lapsed), with a partial index for finding lapsed leases.
//! - the list totals cache (src/db/counts.rs) proves a table unchanged by its largest rowid and
//!   the counters `row_deletions` and `row_moves`. PostgreSQL has no rowid, and the largest
//!   value of a sequence is no proof (a transaction may commit a smaller value after a larger
//!   one was read), so `row_inserts` counts inserts the way the others count deletions and
//!   moves: read in the same snapshot as the count, the three counters prove the table
//!   unchanged. Inserts are counted once per statement (a bulk import's `COPY` or multi-row
//!   `INSERT` pays one counter update, not one per row); deletions and moves once per row, as
//!   in SQLite. Every counter update holds that counter's row lock until its transaction
//!   commits, so writers of one table serialise on it: SQLite's single writer does the same.
//! - the texts a list may be sorted or filtered by (an export's `status`, a schema's `name`)
//!   compare byte by byte (`COLLATE "C"`), as SQLite's do, whatever the database's locale.
//! - `webhook_deliveries.id` is an identity column (SQLite's `INTEGER PRIMARY KEY`).

/// The migrations, in order; the version of a database is the number applied.
pub(super) const MIGRATIONS: &[&str] = &[
    // 1: the whole schema
    r#"
CREATE TABLE teams (
    id          uuid PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    created_at  BIGINT NOT NULL
);
CREATE TABLE api_keys (
    id          uuid PRIMARY KEY,
    team_id     uuid NOT NULL REFERENCES teams(id),
    name        TEXT,
    key_hash    TEXT NOT NULL UNIQUE,
    prefix      TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    revoked_at  BIGINT
);
CREATE TABLE schemas (
    id          uuid PRIMARY KEY,
    team_id     uuid NOT NULL REFERENCES teams(id),
    name        TEXT COLLATE "C" NOT NULL,
    description TEXT,
    definition  TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);
CREATE INDEX schemas_team ON schemas(team_id, created_at, id);
CREATE TABLE results (
    id          uuid PRIMARY KEY,
    team_id     uuid NOT NULL REFERENCES teams(id),
    schema_id   uuid NOT NULL REFERENCES schemas(id),
    file_name   TEXT,
    extraction  TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);
-- an export's range in createdAt order, and a schema's or team's list in keyset order
CREATE INDEX results_schema_created ON results(schema_id, created_at, id);
CREATE INDEX results_team_created ON results(team_id, created_at, id);
CREATE TABLE exports (
    id            uuid PRIMARY KEY,
    team_id       uuid NOT NULL REFERENCES teams(id),
    schema_id     uuid NOT NULL REFERENCES schemas(id),
    status        TEXT COLLATE "C" NOT NULL,
    start_ms      BIGINT NOT NULL,
    end_ms        BIGINT NOT NULL,
    expand_array  TEXT,
    options       TEXT NOT NULL,
    row_count     BIGINT,
    file_size     BIGINT,
    error         TEXT,
    attempts      BIGINT NOT NULL DEFAULT 0,
    claimed_by    TEXT,
    lease_until   BIGINT,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL,
    completed_at  BIGINT,
    results_done  BIGINT,
    results_total BIGINT
);
-- a team's exports in every sort order of GET /v1/exports (created_at rides along for the
-- created_after/created_before filters)
CREATE INDEX exports_team_created ON exports(team_id, created_at, id);
CREATE INDEX exports_team_updated ON exports(team_id, updated_at, id, created_at);
CREATE INDEX exports_team_status ON exports(team_id, status, id, created_at);
CREATE INDEX exports_team_start ON exports(team_id, start_ms, id, created_at);
CREATE INDEX exports_team_end ON exports(team_id, end_ms, id, created_at);
CREATE INDEX exports_schema ON exports(schema_id);
-- the job queue in claim order (`… FOR UPDATE SKIP LOCKED` takes the first unlocked one)
CREATE INDEX exports_queue ON exports(status, created_at, id);
-- running jobs by when their lease lapses: a dead worker's jobs are found without a scan
CREATE INDEX exports_leases ON exports(lease_until) WHERE status = 'PROCESSING';

-- what proves a list's remembered total or bookmarks still exact (db/counts.rs): how many
-- times rows were inserted into, deleted from, or moved (sort column updated) in a table
CREATE TABLE row_inserts (tbl TEXT PRIMARY KEY, n BIGINT NOT NULL);
CREATE TABLE row_deletions (tbl TEXT PRIMARY KEY, n BIGINT NOT NULL);
CREATE TABLE row_moves (tbl TEXT PRIMARY KEY, n BIGINT NOT NULL);
INSERT INTO row_inserts VALUES ('exports', 0), ('results', 0);
INSERT INTO row_deletions VALUES ('exports', 0), ('results', 0);
INSERT INTO row_moves VALUES ('exports', 0);
CREATE FUNCTION count_row_inserts() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM added) THEN
        UPDATE row_inserts SET n = n + 1 WHERE tbl = TG_TABLE_NAME;
    END IF;
    RETURN NULL;
END $$;
CREATE FUNCTION count_row_deletion() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE row_deletions SET n = n + 1 WHERE tbl = TG_TABLE_NAME;
    RETURN NULL;
END $$;
CREATE FUNCTION count_row_move() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE row_moves SET n = n + 1 WHERE tbl = TG_TABLE_NAME;
    RETURN NULL;
END $$;
CREATE TRIGGER exports_inserted AFTER INSERT ON exports REFERENCING NEW TABLE AS added
    FOR EACH STATEMENT EXECUTE FUNCTION count_row_inserts();
CREATE TRIGGER results_inserted AFTER INSERT ON results REFERENCING NEW TABLE AS added
    FOR EACH STATEMENT EXECUTE FUNCTION count_row_inserts();
CREATE TRIGGER exports_deleted AFTER DELETE ON exports
    FOR EACH ROW EXECUTE FUNCTION count_row_deletion();
CREATE TRIGGER results_deleted AFTER DELETE ON results
    FOR EACH ROW EXECUTE FUNCTION count_row_deletion();
CREATE TRIGGER exports_moved AFTER UPDATE OF status, updated_at ON exports
    FOR EACH ROW EXECUTE FUNCTION count_row_move();

-- webhooks: a team's endpoints (the secret kept readable: it signs every delivery), the
-- events (what the export was when it happened) and one delivery per (event, endpoint), the
-- queue the delivery worker reads; deleting an endpoint drops its deliveries
CREATE TABLE webhook_endpoints (
    id          uuid PRIMARY KEY,
    team_id     uuid NOT NULL REFERENCES teams(id),
    url         TEXT NOT NULL,
    events      TEXT NOT NULL,
    description TEXT,
    secret      TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);
CREATE INDEX webhook_endpoints_team ON webhook_endpoints(team_id, created_at, id);
CREATE TABLE webhook_events (
    id          uuid PRIMARY KEY,
    team_id     uuid NOT NULL,
    type        TEXT NOT NULL,
    export_id   uuid NOT NULL,
    export      TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);
CREATE TABLE webhook_deliveries (
    id               BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    event_id         uuid NOT NULL REFERENCES webhook_events(id) ON DELETE CASCADE,
    endpoint_id      uuid NOT NULL REFERENCES webhook_endpoints(id) ON DELETE CASCADE,
    status           TEXT NOT NULL,
    attempts         BIGINT NOT NULL DEFAULT 0,
    next_attempt_at  BIGINT,
    last_status_code BIGINT,
    last_error       TEXT,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL
);
CREATE INDEX webhook_deliveries_endpoint ON webhook_deliveries(endpoint_id, id);
CREATE INDEX webhook_deliveries_event ON webhook_deliveries(event_id);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries(endpoint_id, next_attempt_at)
    WHERE status = 'pending';

-- the answers to POSTs sent with an `Idempotency-Key`, kept per team for 24 hours (`status`
-- NULL while the first request runs; `run_id` names the process running it)
CREATE TABLE idempotency_keys (
    team_id      uuid NOT NULL,
    key          TEXT NOT NULL,
    method       TEXT NOT NULL,
    path         TEXT NOT NULL,
    body_hash    TEXT NOT NULL,
    run_id       TEXT NOT NULL,
    status       INTEGER,
    content_type TEXT,
    body         BYTEA,
    created_at   BIGINT NOT NULL,
    PRIMARY KEY (team_id, key)
);
CREATE INDEX idempotency_keys_created ON idempotency_keys(created_at);
"#,
];
