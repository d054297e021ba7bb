//! Service configuration: what `serve` runs with, checked before anything starts.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Everything the server needs to run. Built from the command line (`cli`), or directly by
/// tests.
#[derive(Debug, Clone)]
pub struct Config {
    /// The data folder: database, signing key, export files.
    pub data_dir: PathBuf,
    /// Address to listen on; port 0 picks a free port.
    pub listen: SocketAddr,
    /// Base of download URLs; `None`: `http://` + the bound address.
    pub public_url: Option<String>,
    /// Export jobs that run at once.
    pub workers: usize,
    /// How long a download URL stays valid.
    pub url_ttl: Duration,
    /// COMPLETED/FAILED exports older than this are deleted; `None` keeps them.
    pub retention: Option<Duration>,
    /// HMAC key for download URLs; `None`: generated once and kept in the data folder.
    pub signing_key: Option<Vec<u8>>,
    /// A key that must exist for team `default`.
    pub api_key: Option<String>,
    /// Per-request and per-team limits the handlers enforce.
    pub limits: Limits,
    /// Connection-level bounds the HTTP server enforces.
    pub server: ServerLimits,
    /// Load demo data into an empty database.
    pub demo: bool,
    /// Serve `GET /metrics` (Prometheus text format); off, it is a 404.
    pub metrics: bool,
    /// How webhook deliveries are made.
    pub webhooks: WebhookConfig,
    /// Where export files live (`--storage-url`, `--storage-proxy`, `EXPORTS_S3_*`).
    pub storage: crate::storage::StorageConfig,
    /// The metadata store (`--database-url`): `None` is the data folder's SQLite database.
    pub database: Option<Database>,
    /// What this process runs (`serve --role`).
    pub role: Role,
    /// Settings with no flag, for tests and embedding.
    pub tuning: Tuning,
}

/// How webhook deliveries are made.
#[derive(Debug, Clone)]
pub struct WebhookConfig {
    /// Endpoints may name loopback, link-local and private addresses (`--webhook-allow-private`).
    pub allow_private: bool,
    /// Multiplies every retry wait and the day failed deliveries are retried for (1.0; tests
    /// make it small, through the hidden `--webhook-retry-scale`).
    pub retry_scale: f64,
}

impl Default for WebhookConfig {
    fn default() -> WebhookConfig {
        WebhookConfig { allow_private: true, retry_scale: 1.0 }
    }
}

/// Settings with no command-line flag: their defaults are right for a service; tests change
/// them to watch what otherwise takes long.
#[derive(Debug, Clone)]
pub struct Tuning {
    /// The clock idempotency keys expire by (tests move it forward).
    pub clock: crate::domain::time::Clock,
    /// How often the periodic sweep (expired idempotency keys, exports past retention) runs.
    pub sweep_every: Duration,
    /// Slows every export down by this much per batch of rows, so a test can watch one run.
    pub export_batch_pause: Option<Duration>,
    /// On PostgreSQL, how long a claimed export job's lease lasts: its worker renews it every
    /// third of this; another replica takes the job over once it has lapsed (the hidden
    /// `--job-lease`, for tests).
    pub job_lease: Duration,
}

/// How long a claimed job's lease lasts on PostgreSQL unless set: renewed every 5 s, a dead
/// replica's job is taken over within 15 s.
pub const DEFAULT_JOB_LEASE: Duration = Duration::from_secs(15);

impl Default for Tuning {
    fn default() -> Tuning {
        Tuning {
            clock: Default::default(),
            sweep_every: Duration::from_secs(60),
            export_batch_pause: None,
            job_lease: DEFAULT_JOB_LEASE,
        }
    }
}

/// Limits on what one request or one team may do. Every limit is a setting; see the README's
/// "Limits" table.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest NDJSON upload body, in bytes (`--max-body`).
    pub max_body: usize,
    /// Largest JSON request body, in bytes (`--max-json-body`).
    pub max_json_body: usize,
    /// Exports a team may have PENDING or PROCESSING at once; 0: no limit.
    pub max_queued_exports: u32,
    /// Bytes of export files a team may keep; `None`: no limit.
    pub max_export_storage: Option<u64>,
    /// Requests per second per API key (burst 2N), and per client address for requests
    /// without a valid key; 0: no rate limit.
    pub rate_limit: u32,
    /// How long a database write waits for a lock another process holds (e.g. an `import`)
    /// before the request gets 503 with `Retry-After` (`--busy-timeout`).
    pub busy_timeout: Duration,
    /// Rows between two remembered bookmarks of a deep list (no flag: tests make it small to
    /// reach bookmarks with few rows).
    pub list_bookmark_every: u32,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_body: DEFAULT_MAX_BODY,
            max_json_body: DEFAULT_MAX_JSON_BODY,
            max_queued_exports: 100,
            max_export_storage: None,
            rate_limit: 100,
            busy_timeout: Duration::from_secs(5),
            list_bookmark_every: crate::db::counts::DEFAULT_BOOKMARK_EVERY,
        }
    }
}

/// Bounds on connections, so that slow, idle or too many clients cannot exhaust the server.
#[derive(Debug, Clone)]
pub struct ServerLimits {
    /// A request's header must arrive whole within this time (`--header-timeout`).
    pub header_timeout: Duration,
    /// A connection with no request in flight and no bytes moving for this long is closed
    /// (`--idle-timeout`).
    pub idle_timeout: Duration,
    /// Open connections at most; past it a new connection gets 503 and is closed
    /// (`--max-connections`).
    pub max_connections: usize,
    /// On SIGTERM/SIGINT, how long open requests may take to finish (`--shutdown-grace`).
    pub shutdown_grace: Duration,
}

impl Default for ServerLimits {
    fn default() -> ServerLimits {
        ServerLimits {
            header_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
            max_connections: 1000,
            shutdown_grace: Duration::from_secs(5),
        }
    }
}

pub const MAX_URL_TTL: u64 = 604_800;
pub const DEFAULT_MAX_BODY: usize = 256 * 1024 * 1024;
pub const DEFAULT_MAX_JSON_BODY: usize = 1024 * 1024;

impl Config {
    /// A configuration for tests and embedding: loopback, a free port, two workers.
    pub fn for_tests(data_dir: PathBuf) -> Config {
        Config {
            data_dir,
            listen: "127.0.0.1:0".parse().expect("valid address"),
            public_url: None,
            workers: 2,
            url_ttl: Duration::from_secs(3600),
            retention: None,
            signing_key: None,
            api_key: None,
            limits: Limits::default(),
            server: ServerLimits::default(),
            demo: false,
            metrics: true,
            webhooks: WebhookConfig::default(),
            storage: crate::storage::StorageConfig::default(),
            database: None,
            role: Role::All,
            tuning: Tuning::default(),
        }
    }
}

/// The metadata store: a SQLite file (the default: `exports.db` in the data folder) or a
/// PostgreSQL database several replicas share.
#[derive(Clone, PartialEq, Eq)]
pub enum Database {
    Sqlite(PathBuf),
    Postgres(String),
}

impl std::fmt::Debug for Database {
    /// The URL without its password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Database::Sqlite(p) => write!(f, "sqlite://{}", p.display()),
            Database::Postgres(url) => f.write_str(&redact_password(url)),
        }
    }
}

/// `postgres://user:secret@host/db` as `postgres://user:***@host/db` (for logs and errors).
pub fn redact_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_string() };
    let Some((userinfo, host)) = rest.split_once('@') else { return url.to_string() };
    match userinfo.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_string(),
    }
}

/// `--database-url`: `sqlite:///absolute/path/exports.db` or
/// `postgres://user:password@host:port/database` (`postgresql://` too; the driver's other
/// parameters, e.g. `?connect_timeout=5`, may follow).
pub fn parse_database_url(s: &str) -> Result<Database, String> {
    let s = s.trim();
    if let Some(path) = s.strip_prefix("sqlite://") {
        let path = PathBuf::from(path);
        if !path.is_absolute() || path.file_name().is_none() {
            return Err(format!(
                "'{s}' must name a database file by its absolute path, like sqlite:///data/exports.db"
            ));
        }
        return Ok(Database::Sqlite(path));
    }
    if s.starts_with("postgres://") || s.starts_with("postgresql://") {
        s.parse::<postgres::Config>().map_err(|e| format!("'{}' is not a PostgreSQL URL: {e}", redact_password(s)))?;
        return Ok(Database::Postgres(s.to_string()));
    }
    Err(format!("'{}' must start with sqlite:/// (a file) or postgres:// (a server)", redact_password(s)))
}

/// What one `serve` process runs: everything (the default), or with a shared PostgreSQL
/// database, only the HTTP API or only the export workers, so the two scale apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Role {
    /// The API, the export workers, retention and webhook deliveries.
    All,
    /// The API and webhook deliveries; exports are left to worker processes.
    Api,
    /// The export workers, retention and webhook deliveries, and `/healthz` and `/metrics`.
    Worker,
}

/// `--storage-url`: `file:///absolute/folder` or `s3://bucket/prefix`.
pub fn parse_storage_url(s: &str) -> Result<crate::storage::Location, String> {
    crate::storage::Location::parse(s)
}

/// `EXPORTS_S3_ENDPOINT`: `http(s)://host[:port]`, no path.
pub fn parse_s3_endpoint(s: &str) -> Result<String, String> {
    let t = s.trim().trim_end_matches('/');
    let rest = t.strip_prefix("http://").or_else(|| t.strip_prefix("https://"));
    match rest {
        Some(host) if !host.is_empty() && !host.contains(['/', '?', '#', ' ', '@']) => Ok(t.to_string()),
        _ => Err(format!("'{s}' is not an endpoint like https://s3.example.com or http://127.0.0.1:9000 (no path)")),
    }
}

/// `--storage-part-size`: S3's smallest part (5 MiB) to 1 GiB.
pub fn parse_part_size(s: &str) -> Result<usize, String> {
    let n = parse_size(s)?;
    if !(crate::storage::MIN_PART_SIZE..=1 << 30).contains(&n) {
        return Err("must be between 5MB (S3's smallest part) and 1GB".into());
    }
    Ok(n)
}

/// An address to listen on, like `127.0.0.1:8080`, `[::]:8080` or `localhost:8080` (a host
/// name is resolved once, at start, to its first address).
pub fn parse_listen(s: &str) -> Result<SocketAddr, String> {
    if let Ok(addr) = s.parse() {
        return Ok(addr);
    }
    let not_an_address = || format!("'{s}' is not an address like 127.0.0.1:8080 or localhost:8080");
    if !s.contains(':') {
        return Err(not_an_address());
    }
    std::net::ToSocketAddrs::to_socket_addrs(s).ok().and_then(|mut a| a.next()).ok_or_else(not_an_address)
}

/// A factor for webhook retry waits: a finite number above 0, at most 1.
pub fn parse_retry_scale(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(f) if f.is_finite() && f > 0.0 && f <= 1.0 => Ok(f),
        _ => Err("must be a number above 0 and at most 1".into()),
    }
}

/// A duration of more than 0 seconds (a timeout).
pub fn parse_positive_duration(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s)?;
    if d.is_zero() {
        return Err("must be more than 0 seconds".into());
    }
    Ok(d)
}

/// How long a download URL stays valid: 1 second to [`MAX_URL_TTL`].
pub fn parse_url_ttl(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s)?;
    if d.is_zero() || d.as_secs() > MAX_URL_TTL {
        return Err(format!("must be between 1 and {MAX_URL_TTL} seconds (7 days)"));
    }
    Ok(d)
}

/// A team's export storage in bytes: a size, or `0`, `off` or nothing for no limit (0).
pub fn parse_storage_limit(s: &str) -> Result<u64, String> {
    match s.trim() {
        "0" | "" | "off" => Ok(0),
        s => parse_size(s).map(|n| n as u64),
    }
}

/// `3600`, `45s`, `30m`, `12h`, `7d`; `0` is zero (for `--retention`: keep exports).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: u64 = num.parse().map_err(|_| format!("'{s}' is not a duration; write e.g. 3600, 90s, 30m, 12h or 7d"))?;
    let secs = match unit.trim() {
        "s" => n,
        "m" => n.saturating_mul(60),
        "h" => n.saturating_mul(3600),
        "d" => n.saturating_mul(86_400),
        other => return Err(format!("'{s}': unknown unit '{other}'; use s, m, h or d")),
    };
    Ok(Duration::from_secs(secs))
}

/// `1048576`, `512KB`, `64MB`, `1GB` (binary multiples).
pub fn parse_size(s: &str) -> Result<usize, String> {
    let t = s.trim().to_ascii_uppercase();
    let (num, unit) = match t.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => t.split_at(i),
        None => (t.as_str(), ""),
    };
    let n: usize = num.parse().map_err(|_| format!("'{s}' is not a size; write e.g. 1048576, 512KB, 64MB or 1GB"))?;
    let mult = match unit.trim() {
        "" | "B" => 1,
        "K" | "KB" | "KIB" => 1 << 10,
        "M" | "MB" | "MIB" => 1 << 20,
        "G" | "GB" | "GIB" => 1 << 30,
        other => return Err(format!("'{s}': unknown unit '{other}'; use KB, MB or GB")),
    };
    let v = n.saturating_mul(mult);
    if v == 0 {
        return Err("the body size limit must be more than 0".into());
    }
    Ok(v)
}

/// Checks a public URL: http(s), no query or fragment; returned without a trailing slash.
pub fn parse_public_url(s: &str) -> Result<String, String> {
    let t = s.trim().trim_end_matches('/');
    let rest = t
        .strip_prefix("http://")
        .or_else(|| t.strip_prefix("https://"))
        .ok_or_else(|| format!("public URL '{s}' must start with http:// or https://"))?;
    if rest.is_empty() || rest.starts_with('/') || t.contains(['?', '#', ' ']) {
        return Err(format!(
            "public URL '{s}' must be like https://exports.example.com (a host, an optional path, no query)"
        ));
    }
    Ok(t.to_string())
}

/// A signing key from `EXPORTS_SIGNING_KEY`: at least 32 bytes of text (or 64 hex digits).
/// Empty (`EXPORTS_SIGNING_KEY=`) is no key: the caller treats it as unset. Text, so that
/// clap takes it as one value (its bytes are the key).
pub fn parse_signing_key(s: &str) -> Result<String, String> {
    let b = s.trim().to_string();
    if !b.is_empty() && b.len() < 32 {
        return Err("must be at least 32 characters long (e.g. `openssl rand -hex 32`)".into());
    }
    Ok(b)
}

/// An API key from `EXPORTS_API_KEY`: at least 16 characters, surrounding spaces dropped.
/// Empty is no key: the caller treats it as unset.
pub fn parse_api_key(s: &str) -> Result<String, String> {
    let k = s.trim();
    if !k.is_empty() && k.len() < 16 {
        return Err("must be at least 16 characters long".into());
    }
    Ok(k.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("3600").unwrap(), Duration::from_secs(3600));
        assert_eq!(parse_duration("7d").unwrap(), Duration::from_secs(604_800));
        assert_eq!(parse_duration("30m").unwrap(), Duration::from_secs(1800));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("5w").is_err());
        assert_eq!(parse_positive_duration("0").unwrap_err(), "must be more than 0 seconds");
        assert_eq!(parse_url_ttl("15m").unwrap(), Duration::from_secs(900));
        assert!(parse_url_ttl("0").is_err() && parse_url_ttl("8d").is_err());
    }

    #[test]
    fn sizes_and_urls() {
        assert_eq!(parse_size("64MB").unwrap(), 64 << 20);
        assert_eq!(parse_size("1000").unwrap(), 1000);
        assert!(parse_size("0").is_err());
        assert!(parse_size("lots").is_err());
        assert_eq!(parse_public_url("https://x.example/base/").unwrap(), "https://x.example/base");
        assert!(parse_public_url("ftp://x").is_err());
        assert!(parse_public_url("http://x?a=1").is_err());
        assert!(parse_signing_key("short").is_err());
        assert_eq!(parse_storage_limit("off").unwrap(), 0);
        assert_eq!(parse_storage_limit("0").unwrap(), 0);
        assert_eq!(parse_storage_limit("256MB").unwrap(), 256 << 20);
        assert!(parse_storage_limit("lots").is_err());
        assert!(parse_listen("nonsense").is_err());
        assert!(parse_listen("localhost").is_err(), "a port is needed");
        assert!(parse_listen("localhost:8081").unwrap().ip().is_loopback());
        assert_eq!(parse_listen("127.0.0.1:8081").unwrap().port(), 8081);
    }
}
