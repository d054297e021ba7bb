//! `serve` (configuration checks, then the server until Ctrl-C/SIGTERM) and `healthcheck`.

use std::io::{BufRead, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};

use super::ServeArgs;
use crate::app::App;
use crate::config::{self, Config, MAX_URL_TTL};

pub fn serve(data_dir: &Path, a: ServeArgs) -> anyhow::Result<()> {
    let listen: SocketAddr = a
        .listen
        .parse()
        .map_err(|_| anyhow!("--listen / EXPORTS_LISTEN '{}' is not an address like 127.0.0.1:8080", a.listen))?;
    let url_ttl = config::parse_duration(&a.url_ttl).map_err(|e| anyhow!("--url-ttl / EXPORTS_URL_TTL: {e}"))?;
    if url_ttl.is_zero() || url_ttl.as_secs() > MAX_URL_TTL {
        bail!("--url-ttl / EXPORTS_URL_TTL must be between 1 and {MAX_URL_TTL} seconds (7 days)");
    }
    let retention =
        config::parse_retention(&a.retention).map_err(|e| anyhow!("--retention / EXPORTS_RETENTION: {e}"))?;
    let max_body = config::parse_size(&a.max_body).map_err(|e| anyhow!("--max-body / EXPORTS_MAX_BODY: {e}"))?;
    let max_json_body =
        config::parse_size(&a.max_json_body).map_err(|e| anyhow!("--max-json-body / EXPORTS_MAX_JSON_BODY: {e}"))?;
    let max_export_storage = match a.max_export_storage.trim() {
        "0" | "" | "off" => None,
        s => {
            Some(config::parse_size(s).map_err(|e| anyhow!("--max-export-storage / EXPORTS_MAX_EXPORT_STORAGE: {e}"))?
                as u64)
        }
    };
    let seconds = |flag: &str, text: &str| -> anyhow::Result<Duration> {
        let d = config::parse_duration(text).map_err(|e| anyhow!("{flag}: {e}"))?;
        if d.is_zero() {
            bail!("{flag} must be more than 0 seconds");
        }
        Ok(d)
    };
    let header_timeout = seconds("--header-timeout / EXPORTS_HEADER_TIMEOUT", &a.header_timeout)?;
    let idle_timeout = seconds("--idle-timeout / EXPORTS_IDLE_TIMEOUT", &a.idle_timeout)?;
    let busy_timeout = seconds("--busy-timeout / EXPORTS_BUSY_TIMEOUT", &a.busy_timeout)?;
    let shutdown_grace = config::parse_duration(&a.shutdown_grace)
        .map_err(|e| anyhow!("--shutdown-grace / EXPORTS_SHUTDOWN_GRACE: {e}"))?;
    if a.max_connections == 0 {
        bail!("--max-connections / EXPORTS_MAX_CONNECTIONS must be at least 1");
    }
    let public_url = a
        .public_url
        .as_deref()
        .map(config::parse_public_url)
        .transpose()
        .map_err(|e| anyhow!("--public-url / EXPORTS_PUBLIC_URL: {e}"))?;
    let workers = match a.workers {
        Some(0) => bail!("--workers / EXPORTS_WORKERS must be at least 1"),
        Some(n) if n > 256 => bail!("--workers / EXPORTS_WORKERS must be at most 256"),
        Some(n) => n,
        None => std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2),
    };
    let signing_key = match std::env::var("EXPORTS_SIGNING_KEY") {
        Ok(s) if !s.is_empty() => Some(config::parse_signing_key(&s).map_err(|e| anyhow!(e))?),
        _ => None,
    };
    let api_key = match std::env::var("EXPORTS_API_KEY") {
        Ok(s) if s.trim().len() >= 16 => Some(s.trim().to_string()),
        Ok(s) if !s.is_empty() => bail!("EXPORTS_API_KEY must be at least 16 characters long"),
        _ => None,
    };
    let cfg = Config {
        data_dir: data_dir.to_path_buf(),
        listen,
        public_url,
        workers,
        url_ttl,
        retention,
        signing_key,
        api_key,
        limits: config::Limits {
            max_body,
            max_json_body,
            max_queued_exports: a.max_queued_exports,
            max_export_storage,
            rate_limit: a.rate_limit,
            busy_timeout,
            ..config::Limits::default()
        },
        server: config::ServerLimits {
            header_timeout,
            idle_timeout,
            max_connections: a.max_connections,
            shutdown_grace,
        },
        demo: a.demo,
    };
    let rt =
        tokio::runtime::Builder::new_multi_thread().enable_all().build().context("cannot start the async runtime")?;
    rt.block_on(async move {
        let app = App::build(cfg).await?;
        tracing::info!(
            "exports-api {} listening on {} (docs: {}/docs, data: {})",
            env!("CARGO_PKG_VERSION"),
            app.local_addr(),
            app.base_url(),
            data_dir.display()
        );
        app.run_until_stopped(shutdown_signal()).await.context("server error")
    })
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down");
}

pub fn healthcheck(listen: &str) -> anyhow::Result<()> {
    let mut addr: SocketAddr = listen.parse().map_err(|_| anyhow!("'{listen}' is not an address"))?;
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
