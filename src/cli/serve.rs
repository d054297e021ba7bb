//! `serve` (configuration checks, then the server until Ctrl-C/SIGTERM) and `healthcheck`.

use std::io::{BufRead, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};

use super::ServeArgs;
use crate::app::App;
use crate::config::{self, Config};
use crate::storage::{Location, S3Settings, StorageConfig};

pub fn serve(data_dir: &Path, database: Option<config::Database>, a: ServeArgs) -> anyhow::Result<()> {
    if a.max_connections == 0 {
        bail!("--max-connections / EXPORTS_MAX_CONNECTIONS must be at least 1");
    }
    let workers = match a.workers {
        Some(0) => bail!("--workers / EXPORTS_WORKERS must be at least 1"),
        Some(n) if n > 256 => bail!("--workers / EXPORTS_WORKERS must be at most 256"),
        Some(n) => n,
        None => std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2),
    };
    let storage = storage_config(&a)?;
    let cfg = Config {
        data_dir: data_dir.to_path_buf(),
        listen: a.listen,
        public_url: a.public_url,
        workers,
        url_ttl: a.url_ttl,
        // 0 keeps exports
        retention: (!a.retention.is_zero()).then_some(a.retention),
        // an empty variable (`EXPORTS_API_KEY=`) is unset
        signing_key: a.signing_key.filter(|k| !k.is_empty()).map(String::into_bytes),
        api_key: a.api_key.filter(|k| !k.is_empty()),
        limits: config::Limits {
            max_body: a.max_body,
            max_json_body: a.max_json_body,
            max_queued_exports: a.max_queued_exports,
            // 0 is no limit
            max_export_storage: (a.max_export_storage > 0).then_some(a.max_export_storage),
            rate_limit: a.rate_limit,
            busy_timeout: a.busy_timeout,
            ..config::Limits::default()
        },
        server: config::ServerLimits {
            header_timeout: a.header_timeout,
            idle_timeout: a.idle_timeout,
            max_connections: a.max_connections,
            shutdown_grace: a.shutdown_grace,
        },
        demo: a.demo,
        metrics: a.metrics,
        webhooks: config::WebhookConfig { allow_private: a.webhook_allow_private, retry_scale: a.webhook_retry_scale },
        storage,
        database,
        role: a.role,
        tuning: config::Tuning {
            job_lease: a.job_lease,
            export_batch_pause: (a.export_batch_pause_ms > 0)
                .then(|| std::time::Duration::from_millis(a.export_batch_pause_ms)),
            ..config::Tuning::default()
        },
    };
    let rt =
        tokio::runtime::Builder::new_multi_thread().enable_all().build().context("cannot start the async runtime")?;
    rt.block_on(async move {
        let stop = shutdown_signal()?;
        let app = App::build(cfg.clone()).await?;
        tracing::info!("{}", startup_block(&cfg, &app));
        app.run_until_stopped(stop).await.context("server error")
    })
}

/// Where export files live: `--storage-url` and its companions; S3's credentials come from
/// the standard variables only (a flag would show them in `ps`).
fn storage_config(a: &ServeArgs) -> anyhow::Result<StorageConfig> {
    let is_s3 = matches!(a.storage_url, Some(Location::S3 { .. }));
    if a.storage_proxy && !is_s3 {
        bail!(
            "--storage-proxy / EXPORTS_STORAGE_PROXY applies to s3:// storage only (local files are always served by \
             this server); set --storage-url s3://bucket/prefix or leave the proxy off"
        );
    }
    let s3 = if is_s3 {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let (Some(key_id), Some(secret)) = (var("AWS_ACCESS_KEY_ID"), var("AWS_SECRET_ACCESS_KEY")) else {
            bail!("s3:// storage needs credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY");
        };
        let mut s3 = S3Settings::new(key_id, secret);
        s3.session_token = var("AWS_SESSION_TOKEN");
        s3.endpoint = a.s3_endpoint.clone();
        s3.region = a.s3_region.clone();
        s3.part_size = a.storage_part_size;
        Some(s3)
    } else {
        None
    };
    Ok(StorageConfig { location: a.storage_url.clone(), s3, proxy: a.storage_proxy })
}

/// What the operator needs to know once the server listens, in one log line of several
/// lines: where it is, where its data is, and every limit in force.
fn startup_block(cfg: &Config, app: &App) -> String {
    let l = &cfg.limits;
    let srv = &cfg.server;
    let base = app.base_url();
    let metrics = if cfg.metrics { format!("{base}/metrics") } else { "off (--metrics false)".into() };
    let retention = cfg.retention.map_or("off, exports are kept".into(), duration);
    let rate = match l.rate_limit {
        0 => "off".to_string(),
        n => format!("{n} requests/s per API key and per client address without one (burst {})", 2 * n),
    };
    let queued = match l.max_queued_exports {
        0 => "no limit".to_string(),
        n => n.to_string(),
    };
    let storage = l.max_export_storage.map_or("no limit".into(), |n| size(n as usize));
    [
        format!(
            "exports-api {} listening on {} (runs in the foreground; Ctrl-C stops it)",
            env!("CARGO_PKG_VERSION"),
            app.local_addr()
        ),
        format!("  public URL   {} (the base of download links)", app.public_url()),
        format!("  docs         {base}/docs"),
        format!("  metrics      {metrics}"),
        format!("  data folder  {}", cfg.data_dir.display()),
        format!("  files        {}", app.state().store.describe()),
        format!("  workers      {} export jobs at once; retention {retention}", cfg.workers),
        format!("  downloads    links valid {}", duration(cfg.url_ttl)),
        format!("  bodies       JSON up to {}, NDJSON upload up to {}", size(l.max_json_body), size(l.max_body)),
        format!("  rate limit   {rate}"),
        format!("  per team     queued exports {queued}; export storage {storage}"),
        format!(
            "  connections  at most {}; header timeout {}, idle timeout {}, shutdown grace {}",
            srv.max_connections,
            duration(srv.header_timeout),
            duration(srv.idle_timeout),
            duration(srv.shutdown_grace)
        ),
        match &cfg.database {
            Some(config::Database::Postgres(url)) => {
                format!("  database     PostgreSQL {}", config::redact_password(url))
            }
            Some(config::Database::Sqlite(path)) => {
                format!("  database     SQLite {}, busy timeout {}", path.display(), duration(l.busy_timeout))
            }
            None => format!("  database     SQLite in the data folder, busy timeout {}", duration(l.busy_timeout)),
        },
        format!(
            "  role         {}",
            match cfg.role {
                config::Role::All => "all (API, export workers, retention, webhooks)",
                config::Role::Api => "api (API and webhooks; exports run in worker processes)",
                config::Role::Worker => "worker (export workers, retention, webhooks; /healthz and /metrics only)",
            }
        ),
        format!(
            "  webhooks     {}",
            if cfg.webhooks.allow_private {
                "private and loopback addresses allowed (--webhook-allow-private)"
            } else {
                "public addresses only (--webhook-allow-private false)"
            }
        ),
    ]
    .join("\n")
}

/// `7d`, `12h`, `30m`, `45s`: the largest unit that divides it, as the flags take it.
fn duration(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0 => "0s".into(),
        s if s.is_multiple_of(86_400) => format!("{}d", s / 86_400),
        s if s.is_multiple_of(3600) => format!("{}h", s / 3600),
        s if s.is_multiple_of(60) => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

/// `256MB`, `1MB`, `512KB`, `1000B`: the largest binary unit that divides it, as the flags take it.
fn size(n: usize) -> String {
    for (unit, bytes) in [("GB", 1usize << 30), ("MB", 1 << 20), ("KB", 1 << 10)] {
        if n >= bytes && n.is_multiple_of(bytes) {
            return format!("{}{unit}", n / bytes);
        }
    }
    format!("{n}B")
}

/// Resolves at Ctrl-C or SIGTERM. The handlers are installed when this is called (before the
/// app is built), so a signal that arrives while the server starts stops it cleanly instead of
/// killing the process with the signal's default action.
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    #[cfg(unix)]
    let (mut term, mut int) = {
        use tokio::signal::unix::{signal, SignalKind};
        let term = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
        let int = signal(SignalKind::interrupt()).context("cannot handle SIGINT")?;
        (term, int)
    };
    Ok(async move {
        #[cfg(unix)]
        tokio::select! {
            _ = term.recv() => {},
            _ = int.recv() => {},
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("shutting down");
    })
}

pub fn healthcheck(listen: &str) -> anyhow::Result<()> {
    // the address as `serve` takes it: IP:PORT or HOST:PORT
    let mut addr: SocketAddr = config::parse_listen(listen).map_err(|e| anyhow!("--listen / EXPORTS_LISTEN: {e}"))?;
    if addr.ip().is_unspecified() {
        addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    let mut s =
        std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(3)).with_context(|| addr.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok();
    write!(s, "GET /healthz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n")
        .with_context(|| format!("{addr}: sending the request failed"))?;
    let mut line = String::new();
    std::io::BufReader::new(s).read_line(&mut line).with_context(|| format!("{addr}: reading the answer failed"))?;
    if line.split_whitespace().nth(1) == Some("200") {
        println!("ok");
        Ok(())
    } else {
        bail!("unhealthy: {}", line.trim())
    }
}

#[cfg(test)]
mod tests {
    use super::{duration, size};
    use std::time::Duration;

    #[test]
    fn limits_are_written_as_the_flags_take_them() {
        assert_eq!(duration(Duration::from_secs(604_800)), "7d");
        assert_eq!(duration(Duration::from_secs(3600)), "1h");
        assert_eq!(duration(Duration::from_secs(90)), "90s");
        assert_eq!(duration(Duration::from_secs(60)), "1m");
        assert_eq!(size(256 << 20), "256MB");
        assert_eq!(size(1 << 30), "1GB");
        assert_eq!(size(1000), "1000B");
        assert_eq!(size(1536), "1536B", "1.5 KiB has no whole unit");
    }
}
