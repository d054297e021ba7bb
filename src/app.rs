//! Wiring: the state every handler shares, the routes, and the server's life cycle.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use poem::http::{header, Method, StatusCode};
use poem::{Endpoint, EndpointExt, IntoEndpoint, IntoResponse, Request, Route};
use poem_openapi::OpenApiService;

use crate::api::exports::ExportsApi;
use crate::api::health::HealthApi;
use crate::api::rate_limit::{RateLimit, RateLimits};
use crate::api::request_log::RequestLog;
use crate::api::results::ResultsApi;
use crate::api::schemas::SchemasApi;
use crate::config::Config;
use crate::db::{self, Pool};
use crate::error::{to_json_error, ApiError};
use crate::files::FilesApi;
use crate::jobs::runner::Jobs;
use crate::signing::Signer;

/// What every request handler can reach.
pub struct AppState {
    /// Connections for reads.
    pub pool: Pool,
    /// The one connection that writes (see `db::Writer`).
    pub writer: db::Writer,
    pub signer: Signer,
    /// Base of download URLs, without a trailing slash.
    pub public_url: String,
    pub url_ttl: Duration,
    pub data_dir: PathBuf,
    pub jobs: Jobs,
    /// Per-request and per-team limits.
    pub limits: crate::config::Limits,
    /// Request rate limiter state (`--rate-limit`); `None` when rate limiting is off.
    pub rate_limits: Option<Arc<RateLimits>>,
    /// Totals of unfiltered lists, remembered while their table is unchanged.
    pub list_counts: Arc<crate::db::counts::ListCounts>,
    /// Teams of recently seen API keys (see `api::key_cache`).
    pub key_cache: crate::api::key_cache::KeyCache,
}

/// The database file's name in the data folder.
pub const DATABASE_FILE: &str = "exports.db";

/// The database file inside the data folder.
pub fn database_path(data_dir: &std::path::Path) -> PathBuf {
    data_dir.join(DATABASE_FILE)
}

/// The folder an NDJSON upload is spooled to (one private temporary file per upload) before
/// it is imported.
pub fn uploads_dir(data_dir: &std::path::Path) -> PathBuf {
    data_dir.join("uploads")
}

type Apis = (ExportsApi, SchemasApi, ResultsApi, FilesApi, HealthApi);

const DESCRIPTION: &str = "The Exports API generates downloadable CSV files from your extraction results. \
Export jobs are asynchronous — when you create an export, the API queues the generation and returns \
immediately. Once complete, use the download endpoint to retrieve a time-limited download URL.\n\n\
Every `/v1` route needs your API key in the `x-api-key` header. Every error has the body \
`{\"statusCode\": 404, \"error\": \"Not Found\", \"message\": \"Export not found\"}`. Times are ISO 8601 \
UTC with milliseconds; ids are UUIDv7.\n\n\
Requests are rate limited (server setting `--rate-limit N`, default 100): N requests per second, \
with bursts of 2N, per API key; requests with a missing or unknown key and `/files` downloads count \
against the client address instead (behind a reverse proxy all clients share the proxy's address). \
Over a limit the answer is 429 with a `Retry-After` header in seconds. `/healthz`, `/docs` and \
`/openapi.json` are never rate limited.";

/// The OpenAPI service: the document `/openapi.json` serves and `exports-api openapi` prints.
pub fn openapi_service() -> OpenApiService<Apis, ()> {
    OpenApiService::new(
        (ExportsApi, SchemasApi, ResultsApi, FilesApi, HealthApi),
        "Exports API",
        env!("CARGO_PKG_VERSION"),
    )
    .description(DESCRIPTION)
}

/// The OpenAPI document as JSON text.
pub fn openapi_json() -> String {
    openapi_service().spec()
}

/// A built application: database open, workers running, port bound, not yet serving.
pub struct App {
    listener: tokio::net::TcpListener,
    server: crate::config::ServerLimits,
    addr: SocketAddr,
    base_url: String,
    state: Arc<AppState>,
    /// Held while the app lives: see `lock_data_dir`.
    lock: std::fs::File,
}

impl App {
    /// Opens the data folder, bootstraps keys (and demo data), starts the export workers and
    /// binds the listen address (port 0 picks a free one).
    pub async fn build(config: Config) -> anyhow::Result<App> {
        let cfg = config.clone();
        let (pool, writer, signer, lock) =
            tokio::task::spawn_blocking(move || prepare(&cfg)).await.context("start-up failed")??;
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("cannot listen on {}", config.listen))?;
        let addr = listener.local_addr().context("the listener has no address")?;
        // 0.0.0.0 / [::] cannot be dialled: local links then name the loopback address
        let mut reachable = addr;
        if addr.ip().is_unspecified() {
            reachable.set_ip(if addr.is_ipv4() {
                std::net::Ipv4Addr::LOCALHOST.into()
            } else {
                std::net::Ipv6Addr::LOCALHOST.into()
            });
        }
        let base_url = format!("http://{reachable}");
        let public_url = match &config.public_url {
            Some(u) => u.clone(),
            None => {
                if addr.ip().is_unspecified() {
                    tracing::warn!(
                        "download URLs will name {base_url}; set EXPORTS_PUBLIC_URL (--public-url) to the address clients use"
                    );
                }
                base_url.clone()
            }
        };
        let jobs = Jobs::start(pool.clone(), writer.clone(), config.data_dir.clone(), config.workers, config.retention)
            .context("cannot start the export workers")?;
        let state = Arc::new(AppState {
            pool,
            writer,
            signer,
            public_url,
            url_ttl: config.url_ttl,
            data_dir: config.data_dir.clone(),
            jobs,
            limits: config.limits.clone(),
            rate_limits: RateLimits::new(config.limits.rate_limit),
            list_counts: Arc::new(crate::db::counts::ListCounts::new(config.limits.list_bookmark_every)),
            key_cache: Default::default(),
        });
        if let Some(r) = &state.rate_limits {
            r.spawn_pruner();
        }
        Ok(App { listener, server: config.server.clone(), addr, base_url, state, lock })
    }

    /// `http://` + the bound address.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn state(&self) -> &Arc<AppState> {
        &self.state
    }

    /// Serves until `stop` resolves; then tells the export workers to stop at once (a job in
    /// progress is taken up again at the next start), lets open requests finish for at most
    /// the shutdown grace, and waits for the workers.
    pub async fn run_until_stopped(self, stop: impl Future<Output = ()> + Send + 'static) -> std::io::Result<()> {
        let state = self.state.clone();
        let jobs = state.jobs.clone();
        let result =
            crate::server::serve(self.listener, routes(state.clone()), self.server, stop, move || jobs.stop_soon())
                .await;
        let jobs = state.jobs.clone();
        let _ = tokio::task::spawn_blocking(move || jobs.shutdown()).await;
        drop(self.lock);
        result
    }
}

fn prepare(cfg: &Config) -> anyhow::Result<(Pool, db::Writer, Signer, std::fs::File)> {
    let dir = cfg.data_dir.display();
    // private whatever the umask: the folder 0700, every file in it 0600 (see `private`)
    crate::private::create_data_dir(&cfg.data_dir, DATABASE_FILE)
        .with_context(|| format!("cannot create the data folder {dir}"))?;
    let lock = lock_data_dir(&cfg.data_dir)?;
    let uploads = uploads_dir(&cfg.data_dir);
    crate::import::prepare_spool_dir(&uploads)
        .with_context(|| format!("cannot prepare the uploads folder {}", uploads.display()))?;
    let pool = db::open(&database_path(&cfg.data_dir), (cfg.workers as u32) + 16, cfg.limits.busy_timeout)
        .with_context(|| format!("cannot open the database in {dir}"))?;
    let writer = db::Writer::open(&database_path(&cfg.data_dir), cfg.limits.busy_timeout)
        .with_context(|| format!("cannot open the database in {dir}"))?;
    let signer = Signer::load_or_create(&cfg.data_dir, cfg.signing_key.clone())
        .with_context(|| format!("cannot load or create the signing key in {dir}"))?;
    let mut conn = pool.get().with_context(|| format!("cannot open the database in {dir}"))?;
    if cfg.demo {
        crate::demo::load_if_empty(&mut conn).context("loading demo data failed")?;
    }
    crate::bootstrap::ensure_keys(&conn, cfg.api_key.as_deref()).context("setting up API keys failed")?;
    Ok((pool, writer, signer, lock))
}

/// One server per data folder: its workers take over jobs left PROCESSING by an earlier run,
/// which must not be a run that is still alive. The lock goes with the process.
fn lock_data_dir(dir: &std::path::Path) -> anyhow::Result<std::fs::File> {
    let path = dir.join("serve.lock");
    let file = crate::private::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    crate::private::tighten(&path).with_context(|| format!("cannot make {} private", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(anyhow::anyhow!(
            "another exports-api server is running on the data folder {}; stop it or use another --data-dir",
            dir.display()
        )),
        Err(std::fs::TryLockError::Error(e)) => Err(e).with_context(|| format!("cannot lock {}", path.display())),
    }
}

/// The landing page: where the docs are.
const INDEX_HTML: &str = include_str!("../static/index.html");

/// Every route, with the JSON error shape on every error.
pub fn routes(state: Arc<AppState>) -> impl Endpoint {
    let api = openapi_service();
    let allowed = Arc::new(AllowedMethods::from_spec(&api.spec()));
    let spec = api.spec_endpoint();
    let docs = api.swagger_ui();
    let (max_body, max_json_body) = (state.limits.max_body, state.limits.max_json_body);
    let rate_limit = RateLimit(state.rate_limits.clone());
    Route::new()
        .at("/openapi.json", spec)
        .nest("/docs", docs)
        .nest("/", api)
        .into_endpoint()
        .around(move |ep, mut req: Request| {
            let allowed = allowed.clone();
            async move {
                if req.uri().path() == "/" && matches!(*req.method(), Method::GET | Method::HEAD) {
                    return Ok(poem::web::Html(INDEX_HTML).into_response());
                }
                // early, from Content-Length; a chunked body is stopped by its reader
                let (limit, too_large): (usize, fn(usize) -> ApiError) =
                    if crate::api::ndjson::is_upload(req.method(), req.uri().path()) {
                        (max_body, crate::api::ndjson::upload_too_large)
                    } else {
                        (max_json_body, crate::api::body::json_body_too_large)
                    };
                let declared = req
                    .headers()
                    .get(header::CONTENT_LENGTH)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<u64>().ok());
                if let Some(n) = declared.filter(|n| *n > limit as u64) {
                    crate::api::linger::discard_refused_body(&mut req, n);
                    return Err(too_large(limit).into());
                }
                let path = req.uri().path().to_string();
                match ep.call(req).await {
                    // RFC 9110: a 405 says which methods the resource has
                    Err(e) if e.status() == StatusCode::METHOD_NOT_ALLOWED => {
                        let mut resp = to_json_error(e).await;
                        if let Some(allow) = allowed.for_path(&path).and_then(|a| a.parse().ok()) {
                            resp.headers_mut().insert(header::ALLOW, allow);
                        }
                        Ok(resp)
                    }
                    other => other,
                }
            }
        })
        .with(rate_limit)
        .data(state)
        .with(crate::error::QueryErrors::for_api::<Apis>())
        .catch_all_error(to_json_error)
        // outermost: it sees every answer, its final status included
        .with(RequestLog)
}

/// The methods each documented path answers, for the `Allow` header of a 405.
struct AllowedMethods(Vec<(Vec<String>, String)>);

impl AllowedMethods {
    fn from_spec(spec: &str) -> AllowedMethods {
        let doc: serde_json::Value = serde_json::from_str(spec).unwrap_or_default();
        let mut routes = Vec::new();
        if let Some(paths) = doc["paths"].as_object() {
            for (path, item) in paths {
                let mut methods: Vec<String> =
                    item.as_object().map(|m| m.keys().map(|k| k.to_ascii_uppercase()).collect()).unwrap_or_default();
                if methods.iter().any(|m| m == "GET") {
                    methods.push("HEAD".into());
                }
                routes.push((path.split('/').map(str::to_string).collect(), methods.join(", ")));
            }
        }
        AllowedMethods(routes)
    }

    fn for_path(&self, path: &str) -> Option<&str> {
        let segments: Vec<&str> = path.split('/').collect();
        self.0
            .iter()
            .find(|(template, _)| {
                template.len() == segments.len()
                    && template.iter().zip(&segments).all(|(t, s)| t.starts_with('{') || t == s)
            })
            .map(|(_, allow)| allow.as_str())
    }
}
