//! `serve` (configuration checks, then the server until Ctrl-C/SIGTERM) and `healthcheck`.

use std::io::{BufRead, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};

use super::ServeArgs;
use crate::app::App;
use crate::config::{self, Config};

pub fn serve(data_dir: &Path, a: ServeArgs) -> anyhow::Result<()> {
    if a.max_connections == 0 {
        bail!("--max-connections / EXPORTS_MAX_CONNECTIONS must be at least 1");
    }
    let workers = match a.workers {
        Some(0) => bail!("--workers / EXPORTS_WORKERS must be at least 1"),
        Some(n) if n > 256 => bail!("--workers / EXPORTS_WORKERS must be at most 256"),
        Some(n) => n,
        None => std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2),
    };
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
