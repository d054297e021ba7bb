//! PostgreSQL, the metadata store for several replicas (issue 11, in progress): the schema,
//! its migrations and the connection pool. Nothing serves from it yet: the service runs on
//! SQLite only, and the queries of the other `db` modules are SQLite's.
//!
//! The driver is `postgres`, the blocking client over tokio-postgres, pooled by r2d2 like the
//! SQLite connections: callers keep today's model (blocking calls off the async runtime, in
//! `spawn_blocking` or a worker thread). It runs a tokio runtime of its own per connection, so
//! it must not be called from inside an async task. Connections are plain TCP or unix sockets
//! (`NoTls`); TLS (`postgres-native-tls` or `tokio-postgres-rustls`) is left out for now.

mod listen;
mod migrations;
mod writer;

pub use listen::listen;
pub use writer::{PgWriter, WRITE_LOCK};

use std::time::Duration;

use postgres::{Client, NoTls};
use r2d2_postgres::PostgresConnectionManager;

use super::{DbError, DbResult};
use migrations::MIGRATIONS;

pub type PgPool = r2d2::Pool<PostgresConnectionManager<NoTls>>;
pub type PgConn = r2d2::PooledConnection<PostgresConnectionManager<NoTls>>;

/// The schema version this binary brings a database to: the number of its migrations.
pub const SCHEMA_VERSION: usize = MIGRATIONS.len();

/// The key of the session advisory lock held while migrating ("exports1" in ASCII): replicas
/// starting together take turns, and each finds the schema as the previous one left it.
const MIGRATION_LOCK: i64 = 0x6578_706f_7274_7331;

/// How long a connection attempt may take when the URL does not say (`connect_timeout`).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Connects to the database at `url` (`postgres://user:password@host:port/db`, or the
/// `key=value` form), brings its schema up to date and returns a pool of at most `max_size`
/// connections.
///
/// The migrations the database lacks run on one connection that holds a session advisory
/// lock ([`MIGRATION_LOCK`]) meanwhile: of several processes opening the same database at
/// once, one migrates and the others wait for the lock, then find nothing left to do. Each
/// migration runs in its own transaction together with its row in `schema_migrations`, so a
/// failed one leaves the database at the previous version. A database at a newer version than
/// this binary's [`SCHEMA_VERSION`] is refused with `DbError::TooNew` and left untouched.
pub fn open(url: &str, max_size: u32) -> DbResult<PgPool> {
    let mut config: postgres::Config = url.parse()?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(CONNECT_TIMEOUT);
    }
    if config.get_application_name().is_none() {
        config.application_name("exports-api");
    }
    {
        let mut client = config.connect(NoTls)?;
        client.batch_execute(&format!("SELECT pg_advisory_lock({MIGRATION_LOCK})"))?;
        let migrated = migrate(&mut client);
        // Closing the session (the client is dropped next) releases the lock too: an unlock
        // that fails because the connection is gone changes nothing.
        let _ = client.batch_execute(&format!("SELECT pg_advisory_unlock({MIGRATION_LOCK})"));
        migrated?;
    }
    let manager = PostgresConnectionManager::new(config, NoTls);
    let pool = r2d2::Pool::builder()
        .max_size(max_size)
        // connections open as they are needed, not all at start (the server's
        // `max_connections` is shared by every replica)
        .min_idle(Some(max_size.min(2)))
        .connection_timeout(CONNECT_TIMEOUT + Duration::from_secs(5))
        .build(manager)?;
    Ok(pool)
}

/// Runs the migrations the database lacks; the caller holds the migration lock.
fn migrate(client: &mut Client) -> DbResult<()> {
    client.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
            version    INTEGER PRIMARY KEY,
            applied_at BIGINT NOT NULL
        )",
    )?;
    let current: Option<i32> = client.query_one("SELECT max(version) FROM schema_migrations", &[])?.get(0);
    let current = current.unwrap_or(0) as usize;
    if current > MIGRATIONS.len() {
        return Err(DbError::TooNew { found: current, known: MIGRATIONS.len() });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(current) {
        let mut tx = client.transaction()?;
        tx.batch_execute(sql)?;
        tx.execute(
            "INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)",
            &[&((i + 1) as i32), &crate::domain::time::now_ms()],
        )?;
        tx.commit()?;
    }
    Ok(())
}

/// Sorts a PostgreSQL error by what the caller can do about it (see `DbError`).
pub(super) fn classify(e: postgres::Error) -> DbError {
    use postgres::error::SqlState;
    let Some(code) = e.code() else {
        // No SQLSTATE: the connection failed, timed out, was closed or broken, or the client
        // refused something (a parameter or column of the wrong type, a malformed URL). The
        // driver's error kind is private; its message names it.
        let io = std::error::Error::source(&e).is_some_and(|s| s.is::<std::io::Error>());
        let kind = e.to_string();
        let connection =
            ["error connecting to server", "timeout waiting for server", "error communicating with the server"]
                .contains(&kind.as_str());
        return if e.is_closed() || io || connection { DbError::PgUnavailable(e) } else { DbError::Postgres(e) };
    };
    let unavailable = [
        SqlState::T_R_SERIALIZATION_FAILURE,
        SqlState::T_R_DEADLOCK_DETECTED,
        SqlState::LOCK_NOT_AVAILABLE,
        SqlState::QUERY_CANCELED,
        SqlState::ADMIN_SHUTDOWN,
        SqlState::CRASH_SHUTDOWN,
        SqlState::CANNOT_CONNECT_NOW,
        SqlState::TOO_MANY_CONNECTIONS,
        SqlState::INSUFFICIENT_RESOURCES,
        SqlState::OUT_OF_MEMORY,
    ];
    if *code == SqlState::DISK_FULL {
        DbError::PgFull(e)
    } else if unavailable.contains(code) || code.code().starts_with("08") {
        // class 08: connection exceptions
        DbError::PgUnavailable(e)
    } else {
        DbError::Postgres(e)
    }
}

/// The error's message and its causes: the driver's own message says only what kind of error
/// it is ("db error"), the server's message (`ERROR: relation "x" does not exist`) is its cause.
pub(super) fn describe(e: &postgres::Error) -> String {
    let mut text = e.to_string();
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}
