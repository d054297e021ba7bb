//! The command line: `serve` and the operator's tools (teams, keys, import, export,
//! openapi, healthcheck). Every flag has an environment twin.

mod admin;
mod data;
mod logging;
mod serve;
mod typed;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use typed::Checked;

use crate::config;
use crate::data_dir::DataDir;
use crate::db::{self, Pool};

#[derive(Parser)]
#[command(
    name = "exports-api",
    version,
    about = "Self-hosted Exports API: extraction results in, signed CSV downloads out",
    after_help = "--data-dir and the server's flags have environment variable twins (EXPORTS_DATA_DIR, \
EXPORTS_LISTEN, ...), shown with each flag: `exports-api serve --help` lists them all, with the forms \
durations and sizes take. `serve` runs in the foreground until Ctrl-C or SIGTERM."
)]
pub struct Cli {
    /// The data folder: database, signing key, export files.
    #[arg(long, env = "EXPORTS_DATA_DIR", default_value = "./data", global = true)]
    pub data_dir: PathBuf,
    /// The metadata store: sqlite:///absolute/path/exports.db, or postgres://user:password@host/db
    /// for a PostgreSQL database several replicas share (then EXPORTS_SIGNING_KEY is required,
    /// the same on every replica). Unset: DATA/exports.db. Prefer the environment variable
    /// when the URL holds a password: a flag shows in `ps`.
    #[arg(long, env = "EXPORTS_DATABASE_URL", hide_env_values = true, global = true, value_name = "URL", value_parser = Checked(config::parse_database_url))]
    pub database_url: Option<config::Database>,
    /// Log lines on stderr as `text` (for a person; colours only on a terminal) or `json` (one
    /// JSON object per line: timestamp, level, message and the fields, e.g. request_id).
    /// RUST_LOG sets the level (default info for serve, warn for the tools).
    #[arg(long, env = "EXPORTS_LOG_FORMAT", default_value = "text", global = true, value_enum)]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Run the HTTP server and the export workers, in the foreground (Ctrl-C or SIGTERM stops it).
    Serve(ServeArgs),
    /// Manage teams.
    #[command(subcommand)]
    Teams(TeamsCommand),
    /// Manage API keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Bulk-load results from NDJSON (a file, or - for stdin) straight into the database.
    Import {
        /// Schema UUID.
        #[arg(long)]
        schema: String,
        /// NDJSON file, one {"extraction", "file_name"?, "createdAt"?} per line; - for stdin.
        file: String,
    },
    /// Run one export synchronously, with the server's engine, to a file or stdout.
    Export(ExportArgs),
    /// Print the OpenAPI document.
    Openapi,
    /// Exit 0 when the server at --listen answers /healthz with 200 (for container health checks).
    Healthcheck {
        /// The server's address, as given to `serve`: IP:PORT or HOST:PORT (0.0.0.0 is probed
        /// on 127.0.0.1).
        #[arg(long, env = "EXPORTS_LISTEN", default_value = "127.0.0.1:8080")]
        listen: String,
    },
}

#[derive(Args)]
#[command(after_help = "DURATION: 3600 (seconds), 90s, 30m, 12h or 7d. SIZE: 1048576 (bytes), 512KB, 64MB or 1GB.\n\
Every flag can be set by its environment variable instead (shown with each flag); \
RUST_LOG sets the log level (e.g. RUST_LOG=debug).")]
pub struct ServeArgs {
    /// Load a demo team, schema and results into an empty database, and print the demo key.
    #[arg(long)]
    pub demo: bool,
    /// Address to listen on: IP:PORT or HOST:PORT (e.g. localhost:8081).
    #[arg(long, env = "EXPORTS_LISTEN", default_value = "127.0.0.1:8080", value_parser = Checked(config::parse_listen))]
    pub listen: SocketAddr,
    /// Base of download URLs (default: http:// + the listen address).
    #[arg(long, env = "EXPORTS_PUBLIC_URL", value_parser = Checked(config::parse_public_url))]
    pub public_url: Option<String>,
    /// Export jobs that run at once (default: the number of CPUs).
    #[arg(long, env = "EXPORTS_WORKERS")]
    pub workers: Option<usize>,
    /// How long a download URL stays valid, 1s to 7d (see DURATION below).
    #[arg(long, env = "EXPORTS_URL_TTL", default_value = "3600", value_name = "DURATION", value_parser = Checked(config::parse_url_ttl))]
    pub url_ttl: Duration,
    /// COMPLETED/FAILED exports older than this are deleted with their file; 0 keeps them.
    #[arg(long, env = "EXPORTS_RETENTION", default_value = "7d", value_name = "DURATION", value_parser = Checked(config::parse_duration))]
    pub retention: Duration,
    /// Largest NDJSON upload body (POST /v1/schemas/{id}/results), e.g. 256MB.
    #[arg(long, env = "EXPORTS_MAX_BODY", default_value = "256MB", value_name = "SIZE", value_parser = Checked(config::parse_size))]
    pub max_body: usize,
    /// Largest JSON request body (every other route that takes a body), e.g. 1MB.
    #[arg(long, env = "EXPORTS_MAX_JSON_BODY", default_value = "1MB", value_name = "SIZE", value_parser = Checked(config::parse_size))]
    pub max_json_body: usize,
    /// Exports a team may have PENDING or PROCESSING at once; 0: no limit.
    #[arg(long, env = "EXPORTS_MAX_QUEUED_EXPORTS", default_value_t = 100)]
    pub max_queued_exports: u32,
    /// Bytes of export files a team may keep, e.g. 10GB; 0: no limit.
    #[arg(
        long,
        env = "EXPORTS_MAX_EXPORT_STORAGE",
        default_value = "0",
        value_name = "SIZE",
        value_parser = Checked(config::parse_storage_limit)
    )]
    pub max_export_storage: u64,
    /// Requests per second per API key (burst twice that), and per client address for
    /// requests without a valid key; 0 turns rate limiting off.
    #[arg(long, env = "EXPORTS_RATE_LIMIT", default_value_t = 100)]
    pub rate_limit: u32,
    /// A request's header must arrive whole within this time, e.g. 30s.
    #[arg(long, env = "EXPORTS_HEADER_TIMEOUT", default_value = "30s", value_name = "DURATION", value_parser = Checked(config::parse_positive_duration))]
    pub header_timeout: Duration,
    /// A connection with no request in flight and no traffic for this long is closed, e.g. 60s.
    #[arg(long, env = "EXPORTS_IDLE_TIMEOUT", default_value = "60s", value_name = "DURATION", value_parser = Checked(config::parse_positive_duration))]
    pub idle_timeout: Duration,
    /// Open connections at most; a connection past the cap gets 503 and is closed.
    #[arg(long, env = "EXPORTS_MAX_CONNECTIONS", default_value_t = 1000)]
    pub max_connections: usize,
    /// On SIGTERM/SIGINT, how long open requests may take to finish before the server exits.
    #[arg(long, env = "EXPORTS_SHUTDOWN_GRACE", default_value = "5s", value_name = "DURATION", value_parser = Checked(config::parse_duration))]
    pub shutdown_grace: Duration,
    /// How long a database write waits while another process (e.g. `import`) holds the lock;
    /// past it the request gets 503 with Retry-After.
    #[arg(long, env = "EXPORTS_BUSY_TIMEOUT", default_value = "5s", value_name = "DURATION", value_parser = Checked(config::parse_positive_duration))]
    pub busy_timeout: Duration,
    /// HMAC key of download URLs, at least 32 characters (e.g. `openssl rand -hex 32`); unset:
    /// a random key kept in DATA/signing.key, so URLs survive restarts. Prefer the environment
    /// variable: a flag shows in `ps`.
    #[arg(long, env = "EXPORTS_SIGNING_KEY", hide_env_values = true, value_name = "KEY", value_parser = Checked(config::parse_signing_key))]
    pub signing_key: Option<String>,
    /// An API key (at least 16 characters) that team `default` has after start. Prefer the
    /// environment variable: a flag shows in `ps`.
    #[arg(long, env = "EXPORTS_API_KEY", hide_env_values = true, value_name = "KEY", value_parser = Checked(config::parse_api_key))]
    pub api_key: Option<String>,
    /// Serve GET /metrics (Prometheus text format; no API key, not rate limited: keep it off
    /// the public side of your proxy). false makes it a 404.
    #[arg(long, env = "EXPORTS_METRICS", default_value_t = true, action = clap::ArgAction::Set)]
    pub metrics: bool,
    /// Let webhook endpoints name loopback, link-local and private addresses (receivers on
    /// your own network). false refuses them when an endpoint is created and at every
    /// delivery, after DNS resolution.
    #[arg(long, env = "EXPORTS_WEBHOOK_ALLOW_PRIVATE", default_value_t = true, action = clap::ArgAction::Set)]
    pub webhook_allow_private: bool,
    /// What this process runs: all (the API, the export workers, retention, webhooks), api
    /// (the API and webhooks; the exports wait for a worker process) or worker (the export
    /// workers, retention and webhooks, with /healthz and /metrics only). api and worker need
    /// a PostgreSQL --database-url that the processes share.
    #[arg(long, env = "EXPORTS_ROLE", default_value = "all", value_enum)]
    pub role: config::Role,
    /// Where export files live: file:///absolute/folder (default: DATA/exports) or
    /// s3://bucket/prefix (an S3-compatible store: EXPORTS_S3_ENDPOINT, EXPORTS_S3_REGION, and
    /// the credentials in AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, plus AWS_SESSION_TOKEN
    /// for temporary ones).
    #[arg(long, env = "EXPORTS_STORAGE_URL", value_name = "URL", value_parser = Checked(config::parse_storage_url))]
    pub storage_url: Option<crate::storage::Location>,
    /// With s3:// storage: downloads stream through this server's signed route instead of
    /// presigned S3 URLs (for a store the clients cannot reach).
    #[arg(long, env = "EXPORTS_STORAGE_PROXY", default_value_t = false, action = clap::ArgAction::Set)]
    pub storage_proxy: bool,
    /// With s3:// storage: the store's address, e.g. http://minio:9000 (unset: AWS S3).
    #[arg(long, env = "EXPORTS_S3_ENDPOINT", value_name = "URL", value_parser = Checked(config::parse_s3_endpoint))]
    pub s3_endpoint: Option<String>,
    /// With s3:// storage: the bucket's region (MinIO and most others accept us-east-1).
    #[arg(long, env = "EXPORTS_S3_REGION", default_value = "us-east-1", value_name = "REGION")]
    pub s3_region: String,
    /// With s3:// storage: bytes per part of an export's multipart upload (for tests).
    #[arg(long, hide = true, default_value = "8MB", value_parser = Checked(config::parse_part_size))]
    pub storage_part_size: usize,
    /// Multiplies webhook retry waits and the day they are retried for (for tests).
    #[arg(long, hide = true, default_value_t = 1.0, value_parser = Checked(config::parse_retry_scale))]
    pub webhook_retry_scale: f64,
    /// On PostgreSQL: how long a claimed export job's lease lasts (for tests).
    #[arg(long, hide = true, default_value = "15s", value_name = "DURATION", value_parser = Checked(config::parse_positive_duration))]
    pub job_lease: std::time::Duration,
    /// Every batch of an export waits this many milliseconds (for tests that must catch one
    /// running); 0 does not wait.
    #[arg(long, hide = true, default_value_t = 0)]
    pub export_batch_pause_ms: u64,
}

/// How log lines are written (`--log-format`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines; colours only when stderr is a terminal.
    Text,
    /// One JSON object per line, fields at the top level.
    Json,
}

#[derive(Subcommand)]
pub enum TeamsCommand {
    /// Create a team; prints its id.
    Create { name: String },
    /// List teams.
    List,
}

#[derive(Subcommand)]
pub enum KeysCommand {
    /// Create an API key for a team (id or name); prints the key once. Only its hash is stored.
    Create {
        #[arg(long)]
        team: String,
        /// A label for the key.
        #[arg(long)]
        name: Option<String>,
    },
    /// List keys (never the secret).
    List {
        #[arg(long)]
        team: Option<String>,
    },
    /// Revoke a key by its id.
    Revoke { key_id: String },
}

/// `export`: the options of `POST /v1/exports`, checked with the same rules and messages.
#[derive(Args)]
pub struct ExportArgs {
    /// Schema UUID (`schema_id` in the API).
    #[arg(long, visible_alias = "schema-id", value_name = "UUID")]
    pub schema: String,
    /// Include results created on or after this ISO 8601 date-time; a bare date (2024-01-01)
    /// means the start of that day (UTC).
    #[arg(long, visible_alias = "start-date", value_name = "DATE")]
    pub start: String,
    /// Include results created on or before this ISO 8601 date-time; a bare date (2024-01-31)
    /// means that whole day, up to 23:59:59.999Z.
    #[arg(long, visible_alias = "end-date", value_name = "DATE")]
    pub end: String,
    /// Key of a top-level array field to expand into one row per item.
    #[arg(long, value_name = "KEY")]
    pub expand_array: Option<String>,
    /// Output file (default: stdout). Its folder must exist; nothing is written when the
    /// export fails.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Field delimiter: , (default) ; | or a tab (written \t or tab). CSV only.
    #[arg(long, value_name = "CHAR")]
    pub delimiter: Option<String>,
    /// Write a UTF-8 byte-order mark first (Excel on Windows needs it): --bom or --bom=true|false.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub bom: Option<bool>,
    /// Header cells: key (dot paths, billing_address.city) or label (Billing address / City).
    #[arg(long, value_enum, default_value = "key")]
    pub header: HeaderArg,
    /// Prefix ' to text starting with =, +, -, @, tab or CR (spreadsheet formula guard;
    /// default true): --formula-guard=false turns it off.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub formula_guard: Option<bool>,
    /// The same as --formula-guard=false.
    #[arg(long, conflicts_with = "formula_guard")]
    pub no_formula_guard: bool,
    /// Gzip-compress the output: --gzip or --gzip=true|false.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub gzip: Option<bool>,
    /// File format: csv (default), xlsx (an Excel workbook with typed cells) or jsonl (JSON
    /// Lines, one object per row).
    #[arg(long, value_enum, value_name = "FORMAT")]
    pub format: Option<FormatArg>,
    /// The columns to write, in this order, named as with --header key: id,file_name,createdAt,
    /// field keys, parent.child, and the expanded sub-columns (line_items.sku). Default: all.
    #[arg(long, value_name = "A,B,C", value_delimiter = ',')]
    pub columns: Option<Vec<String>>,
    /// An IANA time zone (Europe/Paris, America/New_York, UTC): createdAt and RFC 3339 values
    /// of datetime fields are written in it.
    #[arg(long, value_name = "ZONE")]
    pub timezone: Option<String>,
}

/// `export --format` (`format` in the API).
#[derive(Clone, Copy, clap::ValueEnum)]
pub enum FormatArg {
    Csv,
    Xlsx,
    Jsonl,
}

/// `export --header`: how header cells are named (`options.header` in the API).
#[derive(Clone, Copy, clap::ValueEnum)]
pub enum HeaderArg {
    Key,
    Label,
}

/// Parses the command line and runs it.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let serving = matches!(cli.command, Command::Serve(_));
    let json_log = cli.log_format == LogFormat::Json;
    logging::init(cli.log_format, if serving { "info" } else { "warn" });
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if json_log {
                // a JSON log stays JSON to its last line
                tracing::error!("error: {}", one_line(&e));
            } else {
                eprintln!("error: {}", one_line(&e));
            }
            ExitCode::from(2)
        }
    }
}

/// The error and its causes on one line, joined by `: ` (`cannot open the database in ./data:
/// database busy: database is locked`). Our error types repeat their cause's text in their own
/// message, so the walk stops at the first cause the line already ends with: below it is
/// what was said with it.
pub fn one_line(e: &anyhow::Error) -> String {
    let mut line = e.to_string();
    for cause in e.chain().skip(1) {
        let text = cause.to_string();
        if line.ends_with(&text) {
            break;
        }
        line.push_str(": ");
        line.push_str(&text);
    }
    line
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let data_dir = cli.data_dir;
    let database = cli.database_url;
    match cli.command {
        Command::Serve(args) => serve::serve(&data_dir, database, args),
        Command::Openapi => {
            println!("{}", crate::app::openapi_json());
            Ok(())
        }
        Command::Healthcheck { listen } => serve::healthcheck(&listen),
        Command::Teams(cmd) => admin::teams(&data_dir, database.as_ref(), cmd),
        Command::Keys(cmd) => admin::keys(&data_dir, database.as_ref(), cmd),
        Command::Import { schema, file } => data::import(&data_dir, database.as_ref(), &schema, &file),
        Command::Export(args) => data::export(&data_dir, database.as_ref(), args),
    }
}

/// The command-line tools wait longer than the server for a lock another process holds:
/// no client is waiting on a socket, and giving up makes the operator start again.
pub(crate) const CLI_BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Opens the database of an existing data folder. Only `serve` creates a data folder: a tool
/// run from the wrong directory says so instead of starting an empty one.
fn open_db(data_dir: &Path) -> anyhow::Result<Pool> {
    open_store(data_dir, None)
}

/// Opens the database `--database-url` names, or else the data folder's (see [`open_db`]).
/// A PostgreSQL database needs no data folder; it is migrated like `serve` migrates it. A
/// SQLite file named by the URL must exist already: only `serve` creates one.
fn open_store(data_dir: &Path, database: Option<&config::Database>) -> anyhow::Result<Pool> {
    let path = match database {
        Some(config::Database::Postgres(url)) => {
            let shown = config::redact_password(url);
            return db::pg::open(url, 2).map(Pool::Pg).with_context(|| format!("cannot open the database {shown}"));
        }
        Some(config::Database::Sqlite(path)) => {
            if !path.is_file() {
                anyhow::bail!(
                    "there is no database file {}; `exports-api serve` with the same --database-url creates it",
                    path.display()
                );
            }
            path.clone()
        }
        None => {
            let data = DataDir::new(data_dir);
            if !data.database().is_file() {
                anyhow::bail!(
                    "{} is not an exports-api data folder (there is no {}); `exports-api serve` creates one. \
                     Point --data-dir (or EXPORTS_DATA_DIR) at the folder your server uses",
                    data_dir.display(),
                    data.database().display()
                );
            }
            data.database()
        }
    };
    let shown = match database {
        Some(_) => path.display().to_string(),
        None => data_dir.display().to_string(),
    };
    db::open(&path, 2, CLI_BUSY_TIMEOUT).map(Pool::Lite).with_context(|| format!("cannot open the database in {shown}"))
}

/// Where the tools' database is, for their messages: the data folder, or the URL (without
/// its password).
fn store_name(data_dir: &Path, database: Option<&config::Database>) -> String {
    match database {
        Some(config::Database::Postgres(url)) => format!("the database {}", config::redact_password(url)),
        Some(config::Database::Sqlite(path)) => format!("the database {}", path.display()),
        None => format!("the data folder {}", data_dir.display()),
    }
}

/// A pooled connection of the command-line tools.
fn connect(pool: &Pool) -> anyhow::Result<db::Conn> {
    pool.get().context("no database connection could be opened")
}

#[cfg(test)]
mod tests {
    use super::one_line;
    use anyhow::Context;

    #[test]
    fn errors_print_on_one_line_without_repeating_a_cause() {
        let busy = rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(5), Some("database is locked".into()));
        let e = Err::<(), _>(crate::db::DbError::from(busy)).context("cannot open the database in ./data").unwrap_err();
        assert_eq!(one_line(&e), "cannot open the database in ./data: database busy: database is locked");
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "No such file or directory");
        let e = Err::<(), _>(io).context("cannot create the data folder /x").unwrap_err();
        assert_eq!(one_line(&e), "cannot create the data folder /x: No such file or directory");
        assert_eq!(one_line(&anyhow::anyhow!("no team 'acme'")), "no team 'acme'");
    }
}
