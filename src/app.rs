//! Wiring: the data folder, the database, the workers and the state every handler shares are
//! put together here, with the routes, and the server's life cycle.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use poem::http::{header, StatusCode};
use poem::{Endpoint, EndpointExt, IntoEndpoint, Request, Route};
use poem_openapi::OpenApiService;

use crate::api::exports::ExportsApi;
use crate::api::files::FilesApi;
use crate::api::health::HealthApi;
use crate::api::rate_limit::{RateLimit, RateLimits};
use crate::api::request_log::RequestLog;
use crate::api::results::ResultsApi;
use crate::api::route_template::{self, RouteTemplates};
use crate::api::schemas::SchemasApi;
use crate::api::team::TeamApi;
use crate::api::webhooks::WebhooksApi;
use crate::config::{Config, Role};
use crate::data_dir::DataDir;
use crate::db::{self, Pool};
use crate::error::{to_json_error, ApiError};
use crate::jobs::runner::Jobs;
use crate::metrics::Metrics;
use crate::signing::Signer;
use crate::state::AppState;
use crate::webhooks::Webhooks;

type Apis = (ExportsApi, SchemasApi, ResultsApi, WebhooksApi, TeamApi, FilesApi, HealthApi);

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
`/openapi.json` are never rate limited.\n\n**Safe retries**: any `POST` under `/v1` may carry an `Idempotency-Key` header (1 to 255 visible ASCII characters, e.g. a UUID you make per operation; anything else is a 400). The first request with a key runs as usual and its answer (status and body) is kept for 24 hours for your team. Sending the same key again with the same method, path and body (JSON compared after parsing, so spacing and key order do not matter; NDJSON uploads byte for byte) returns that answer again with the header `Idempotent-Replayed: true`, and nothing is done a second time. The same key with another method, path or body is a 422. While the first request still runs, a repeat waits up to 5 seconds for its answer, then gets 409 with `Retry-After`. Answers with a 5xx status are not kept, so a retry with the same key runs again. Keys of different teams never meet.";

/// The OpenAPI service: the document `/openapi.json` serves and `exports-api openapi` prints.
pub fn openapi_service() -> OpenApiService<Apis, ()> {
    OpenApiService::new(
        (ExportsApi, SchemasApi, ResultsApi, WebhooksApi, TeamApi, FilesApi, HealthApi),
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
    rate_limits: Option<Arc<RateLimits>>,
    /// Whether `GET /metrics` is served.
    metrics_route: bool,
    /// What this process runs (`serve --role`).
    role: Role,
    /// Held while the app lives: see `DataDir::lock`.
    lock: std::fs::File,
}

impl App {
    /// Binds the listen address (port 0 picks a free one), then opens the data folder,
    /// bootstraps keys (and demo data) and starts the export workers: a start that cannot
    /// listen creates nothing and prints no key.
    pub async fn build(config: Config) -> anyhow::Result<App> {
        if config.role != Role::All && !matches!(config.database, Some(crate::config::Database::Postgres(_))) {
            anyhow::bail!(
                "--role {} needs a PostgreSQL database the API and worker processes share (--database-url \
                 postgres://…); with SQLite one process runs everything (--role all)",
                if config.role == Role::Api { "api" } else { "worker" }
            );
        }
        let listener = tokio::net::TcpListener::bind(config.listen).await.with_context(|| {
            format!(
                "cannot listen on {} (is another server using it?); choose another address with --listen \
                 (or EXPORTS_LISTEN), e.g. --listen 127.0.0.1:8081",
                config.listen
            )
        })?;
        let cfg = config.clone();
        let data_dir = DataDir::new(&config.data_dir);
        let dir = data_dir.clone();
        let (pool, writer, signer, lock) =
            tokio::task::spawn_blocking(move || prepare(&cfg, &dir)).await.context("start-up failed")??;
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
        let store = crate::storage::Store::open(&config.storage, &data_dir)
            .await
            .map_err(|e| anyhow::anyhow!("cannot open the store of export files: {e}"))?;
        let metrics = Arc::new(Metrics::new());
        let doorbell = crate::db::deliveries::Doorbell::default();
        let jobs = Jobs::start(
            pool.clone(),
            writer.clone(),
            data_dir.clone(),
            store.clone(),
            crate::jobs::runner::Settings {
                workers: if config.role == Role::Api { 0 } else { config.workers },
                retention: config.retention,
                sweep_every: config.tuning.sweep_every,
                clock: config.tuning.clock.clone(),
                batch_pause: config.tuning.export_batch_pause,
                lease: config.tuning.job_lease,
                listen: match &config.database {
                    Some(crate::config::Database::Postgres(url)) => Some(url.clone()),
                    _ => None,
                },
            },
            metrics.clone(),
            doorbell.clone(),
        )
        .context("cannot start the export workers")?;
        let settings = crate::webhooks::Settings {
            allow_private: config.webhooks.allow_private,
            retry_scale: config.webhooks.retry_scale,
        };
        // an event's `data` is the export object exactly as the API shows it
        let render: crate::webhooks::RenderExport = Arc::new(|row| {
            poem_openapi::types::ToJSON::to_json(&crate::api::exports::to_api(row, false)).unwrap_or_default()
        });
        let webhooks = Webhooks::start(pool.clone(), writer.clone(), doorbell, settings, metrics.clone(), render)
            .context("cannot start the webhook delivery worker")?;
        let state = Arc::new(AppState {
            pool,
            writer,
            signer,
            public_url,
            url_ttl: config.url_ttl,
            data_dir,
            store,
            jobs,
            limits: config.limits.clone(),
            list_counts: Arc::new(crate::db::counts::ListCounts::new(config.limits.list_bookmark_every)),
            key_cache: Default::default(),
            metrics,
            webhooks,
            run_id: uuid::Uuid::now_v7().to_string(),
            clock: config.tuning.clock.clone(),
        });
        let rate_limits = RateLimits::new(config.limits.rate_limit);
        if let Some(r) = &rate_limits {
            r.spawn_pruner();
        }
        Ok(App {
            listener,
            server: config.server.clone(),
            addr,
            base_url,
            state,
            rate_limits,
            metrics_route: config.metrics,
            role: config.role,
            lock,
        })
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

    /// The base of download URLs (`--public-url`, or `http://` + the bound address).
    pub fn public_url(&self) -> &str {
        &self.state.public_url
    }

    /// Serves until `stop` resolves; then tells the export workers to stop at once (a job in
    /// progress is taken up again at the next start), lets open requests finish for at most
    /// the shutdown grace, and waits for the workers.
    pub async fn run_until_stopped(self, stop: impl Future<Output = ()> + Send + 'static) -> std::io::Result<()> {
        let state = self.state.clone();
        let jobs = state.jobs.clone();
        let result = crate::server::serve(
            self.listener,
            routes(state.clone(), self.rate_limits, self.metrics_route, self.role),
            self.server,
            stop,
            move || jobs.stop_soon(),
        )
        .await;
        let jobs = state.jobs.clone();
        let _ = tokio::task::spawn_blocking(move || jobs.shutdown()).await;
        state.webhooks.shutdown().await;
        drop(self.lock);
        result
    }
}

fn prepare(cfg: &Config, data: &DataDir) -> anyhow::Result<(Pool, db::Writer, Signer, std::fs::File)> {
    let shown = data.root().display();
    // private whatever the umask: the folder 0700, every file in it 0600 (see `private`)
    data.create().map_err(|e| {
        let hint = match e.kind() {
            std::io::ErrorKind::PermissionDenied => crate::data_dir::permission_hint(data.root()),
            _ => String::new(),
        };
        anyhow::anyhow!("cannot create the data folder {shown}: {e}{hint}")
    })?;
    let lock = data.lock()?;
    let uploads = data.uploads();
    crate::import::prepare_spool_dir(&uploads)
        .with_context(|| format!("cannot prepare the uploads folder {}", uploads.display()))?;
    let (pool, writer) = open_database(cfg, data)?;
    let signer = Signer::load_or_create(data, cfg.signing_key.clone())
        .with_context(|| format!("cannot load or create the signing key in {shown}"))?;
    // through the writer: replicas starting together on one PostgreSQL take turns
    if cfg.demo {
        writer.run_alone(crate::demo::load_if_empty).context("loading demo data failed")?;
    }
    let api_key = cfg.api_key.clone();
    writer.run(move |c| crate::bootstrap::ensure_keys(c, api_key.as_deref())).context("setting up API keys failed")?;
    Ok((pool, writer, signer, lock))
}

/// The metadata store `--database-url` names (the data folder's SQLite file by default),
/// migrated, with its connections for reads and its writer.
fn open_database(cfg: &Config, data: &DataDir) -> anyhow::Result<(Pool, db::Writer)> {
    let connections = (cfg.workers as u32) + 16;
    let path = match &cfg.database {
        Some(crate::config::Database::Postgres(url)) => {
            if cfg.signing_key.is_none() {
                anyhow::bail!(
                    "a PostgreSQL database needs EXPORTS_SIGNING_KEY (--signing-key): every replica must sign and \
                     check download URLs with the same key (e.g. `openssl rand -hex 32`, set on every replica)"
                );
            }
            let shown = crate::config::redact_password(url);
            let pool = db::pg::open(url, connections).with_context(|| format!("cannot open the database {shown}"))?;
            let writer = db::Writer::postgres(pool.clone());
            return Ok((Pool::Pg(pool), writer));
        }
        Some(crate::config::Database::Sqlite(path)) => path.clone(),
        None => data.database(),
    };
    let shown = path.display();
    let pool = db::open(&path, connections, cfg.limits.busy_timeout)
        .map(Pool::Lite)
        .with_context(|| format!("cannot open the database {shown}"))?;
    let writer = db::Writer::open(&path, cfg.limits.busy_timeout)
        .with_context(|| format!("cannot open the database {shown}"))?;
    Ok((pool, writer))
}

/// Every route, with the JSON error shape on every error; `/metrics` when `metrics_route`.
/// A worker process (`--role worker`) answers `/healthz` and `/metrics` only: every other path
/// is a 404 that says where the API is.
pub fn routes(
    state: Arc<AppState>,
    rate_limits: Option<Arc<RateLimits>>,
    metrics_route: bool,
    role: Role,
) -> impl Endpoint {
    let api = openapi_service();
    let templates = Arc::new(RouteTemplates::from_spec(&api.spec()));
    let allowed = templates.clone();
    let spec = api.spec_endpoint();
    let docs = api.swagger_ui();
    let (max_body, max_json_body) = (state.limits.max_body, state.limits.max_json_body);
    let rate_limit = RateLimit(rate_limits);
    let state_metrics = state.metrics.clone();
    let mut route = Route::new().at("/openapi.json", spec).nest("/docs", docs);
    if metrics_route {
        route = route.at("/metrics", poem::get(crate::api::metrics::metrics));
    }
    route
        .nest("/", api.around(crate::api::idempotency::around))
        .around(route_template::record)
        .into_endpoint()
        .around(move |ep, mut req: Request| {
            let allowed = allowed.clone();
            async move {
                if role == Role::Worker && !matches!(req.uri().path(), "/healthz" | "/metrics") {
                    return Err(ApiError::not_found(
                        "This process runs export workers only (--role worker): send API requests to an API replica",
                    )
                    .into());
                }
                if let Some(resp) = crate::api::console::serve(&req) {
                    return Ok(resp);
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
                        if let Some(allow) = allowed.allow_for(&path).and_then(|a| a.parse().ok()) {
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
        // a panic in a handler is a 500 in the JSON shape (its request id added outside)
        .with(poem::middleware::CatchPanic::new().with_handler(crate::error::panic_response))
        // outermost: it sees every answer, its final status included
        .with(RequestLog::new(state_metrics, templates))
}
