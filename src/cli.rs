//! The command line: `serve` and the operator's tools (teams, keys, import, export,
//! openapi, healthcheck). Every flag has an environment twin.

use std::io::{BufRead, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::app::{database_path, App};
use crate::config::{self, Config, MAX_URL_TTL};
use crate::db::{self, keys, Pool};
use crate::domain::export::CsvOptions;
use crate::domain::result::parse_ndjson_line;
use crate::domain::time::{now_ms, parse_instant, DayEnd};
use crate::jobs::engine::{write_export, ExportSpec};

#[derive(Parser)]
#[command(
    name = "exports-api",
    version,
    about = "Self-hosted Exports API: extraction results in, signed CSV downloads out"
)]
pub struct Cli {
    /// The data folder: database, signing key, export files.
    #[arg(long, env = "EXPORTS_DATA_DIR", default_value = "./data", global = true)]
    pub data_dir: PathBuf,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Run the HTTP server and the export workers.
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
        #[arg(long, env = "EXPORTS_LISTEN", default_value = "127.0.0.1:8080")]
        listen: String,
    },
}

#[derive(Args)]
pub struct ServeArgs {
    /// Load a demo team, schema and results into an empty database, and print the demo key.
    #[arg(long)]
    pub demo: bool,
    /// Address to listen on.
    #[arg(long, env = "EXPORTS_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: String,
    /// Base of download URLs (default: http:// + the listen address).
    #[arg(long, env = "EXPORTS_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Export jobs that run at once (default: the number of CPUs).
    #[arg(long, env = "EXPORTS_WORKERS")]
    pub workers: Option<usize>,
    /// Seconds a download URL stays valid (at most 604800, 7 days).
    #[arg(long, env = "EXPORTS_URL_TTL", default_value = "3600")]
    pub url_ttl: String,
    /// COMPLETED/FAILED exports older than this are deleted with their file; 0 keeps them.
    #[arg(long, env = "EXPORTS_RETENTION", default_value = "7d")]
    pub retention: String,
    /// Largest request body accepted (the NDJSON upload), e.g. 256MB.
    #[arg(long, env = "EXPORTS_MAX_BODY", default_value = "256MB")]
    pub max_body: String,
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

#[derive(Args)]
pub struct ExportArgs {
    /// Schema UUID.
    #[arg(long)]
    pub schema: String,
    /// ISO 8601 start (a bare date: its start).
    #[arg(long)]
    pub start: String,
    /// ISO 8601 end (a bare date: the whole day).
    #[arg(long)]
    pub end: String,
    /// Top-level array field to expand into one row per item.
    #[arg(long)]
    pub expand_array: Option<String>,
    /// Output file (default: stdout).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Field delimiter: , ; | or \t.
    #[arg(long, default_value = ",")]
    pub delimiter: String,
    /// Write a UTF-8 byte-order mark.
    #[arg(long)]
    pub bom: bool,
    /// Gzip-compress the output.
    #[arg(long)]
    pub gzip: bool,
    /// Turn the spreadsheet formula guard off.
    #[arg(long)]
    pub no_formula_guard: bool,
}

/// Parses the command line and runs it.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let serving = matches!(cli.command, Command::Serve(_));
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(if serving { "info" } else { "warn" }));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> Result<(), String> {
    let data_dir = cli.data_dir;
    match cli.command {
        Command::Serve(args) => serve(&data_dir, args),
        Command::Openapi => {
            println!("{}", crate::app::openapi_json());
            Ok(())
        }
        Command::Healthcheck { listen } => healthcheck(&listen),
        Command::Teams(cmd) => {
            let pool = open_db(&data_dir)?;
            let conn = pool.get().map_err(|e| e.to_string())?;
            match cmd {
                TeamsCommand::Create { name } => {
                    let name = name.trim();
                    if name.is_empty() {
                        return Err("a team name cannot be empty".into());
                    }
                    if keys::team_exists_by_name(&conn, name).map_err(|e| e.to_string())? {
                        return Err(format!("a team named '{name}' exists already"));
                    }
                    let team = keys::create_team(&conn, name).map_err(|e| e.to_string())?;
                    println!("{}", team.id);
                }
                TeamsCommand::List => {
                    let mut stmt = conn
                        .prepare("SELECT id, name FROM teams ORDER BY created_at, id")
                        .map_err(|e| e.to_string())?;
                    let rows = stmt
                        .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
                        .map_err(|e| e.to_string())?;
                    for r in rows {
                        let (id, name) = r.map_err(|e| e.to_string())?;
                        println!("{id}\t{name}");
                    }
                }
            }
            Ok(())
        }
        Command::Keys(cmd) => {
            let pool = open_db(&data_dir)?;
            let conn = pool.get().map_err(|e| e.to_string())?;
            match cmd {
                KeysCommand::Create { team, name } => {
                    let t = keys::find_team(&conn, &team)
                        .map_err(|e| e.to_string())?
                        .ok_or_else(|| format!("no team '{team}'"))?;
                    let secret = keys::generate_key();
                    let id = keys::add_key(&conn, &t.id, name.as_deref(), &secret).map_err(|e| e.to_string())?;
                    eprintln!("Created key {id} for team '{}' ({}). It is shown once:", t.name, t.id);
                    println!("{secret}");
                }
                KeysCommand::List { team } => {
                    let team_id = match team {
                        Some(t) => Some(
                            keys::find_team(&conn, &t)
                                .map_err(|e| e.to_string())?
                                .ok_or_else(|| format!("no team '{t}'"))?
                                .id,
                        ),
                        None => None,
                    };
                    println!("KEY ID\tTEAM\tNAME\tPREFIX\tCREATED\tREVOKED");
                    for k in keys::list_keys(&conn, team_id.as_deref()).map_err(|e| e.to_string())? {
                        println!(
                            "{}\t{}\t{}\t{}…\t{}\t{}",
                            k.id,
                            k.team_name,
                            k.name.unwrap_or_default(),
                            k.prefix,
                            crate::domain::time::format_ms(k.created_at),
                            k.revoked_at.map(crate::domain::time::format_ms).unwrap_or_else(|| "-".into())
                        );
                    }
                }
                KeysCommand::Revoke { key_id } => {
                    if !keys::revoke_key(&conn, &key_id).map_err(|e| e.to_string())? {
                        return Err(format!("no key with id '{key_id}' (see `exports-api keys list`)"));
                    }
                    eprintln!("Revoked key {key_id}");
                }
            }
            Ok(())
        }
        Command::Import { schema, file } => import(&data_dir, &schema, &file),
        Command::Export(args) => export(&data_dir, args),
    }
}

fn open_db(data_dir: &Path) -> Result<Pool, String> {
    std::fs::create_dir_all(data_dir)
        .map_err(|e| format!("cannot create the data folder {}: {e}", data_dir.display()))?;
    db::open(&database_path(data_dir), 2)
        .map_err(|e| format!("cannot open the database in {}: {e}", data_dir.display()))
}

fn serve(data_dir: &Path, a: ServeArgs) -> Result<(), String> {
    let listen: SocketAddr = a
        .listen
        .parse()
        .map_err(|_| format!("--listen / EXPORTS_LISTEN '{}' is not an address like 127.0.0.1:8080", a.listen))?;
    let url_ttl = config::parse_duration(&a.url_ttl).map_err(|e| format!("--url-ttl / EXPORTS_URL_TTL: {e}"))?;
    if url_ttl.is_zero() || url_ttl.as_secs() > MAX_URL_TTL {
        return Err(format!("--url-ttl / EXPORTS_URL_TTL must be between 1 and {MAX_URL_TTL} seconds (7 days)"));
    }
    let retention =
        config::parse_retention(&a.retention).map_err(|e| format!("--retention / EXPORTS_RETENTION: {e}"))?;
    let max_body = config::parse_size(&a.max_body).map_err(|e| format!("--max-body / EXPORTS_MAX_BODY: {e}"))?;
    let public_url = a
        .public_url
        .as_deref()
        .map(config::parse_public_url)
        .transpose()
        .map_err(|e| format!("--public-url / EXPORTS_PUBLIC_URL: {e}"))?;
    let workers = match a.workers {
        Some(0) => return Err("--workers / EXPORTS_WORKERS must be at least 1".into()),
        Some(n) if n > 256 => return Err("--workers / EXPORTS_WORKERS must be at most 256".into()),
        Some(n) => n,
        None => std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2),
    };
    let signing_key = match std::env::var("EXPORTS_SIGNING_KEY") {
        Ok(s) if !s.is_empty() => Some(config::parse_signing_key(&s)?),
        _ => None,
    };
    let api_key = match std::env::var("EXPORTS_API_KEY") {
        Ok(s) if s.trim().len() >= 16 => Some(s.trim().to_string()),
        Ok(s) if !s.is_empty() => return Err("EXPORTS_API_KEY must be at least 16 characters long".into()),
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
        max_body,
        demo: a.demo,
    };
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().map_err(|e| e.to_string())?;
    rt.block_on(async move {
        let app = App::build(cfg).await?;
        tracing::info!(
            "exports-api {} listening on {} (docs: {}/docs, data: {})",
            env!("CARGO_PKG_VERSION"),
            app.local_addr(),
            app.base_url(),
            data_dir.display()
        );
        app.run_until_stopped(shutdown_signal()).await.map_err(|e| format!("server error: {e}"))
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

fn healthcheck(listen: &str) -> Result<(), String> {
    let mut addr: SocketAddr = listen.parse().map_err(|_| format!("'{listen}' is not an address"))?;
    if addr.ip().is_unspecified() {
        addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    let mut s =
        std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(3)).map_err(|e| format!("{addr}: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok();
    write!(s, "GET /healthz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").map_err(|e| e.to_string())?;
    let mut line = String::new();
    std::io::BufReader::new(s).read_line(&mut line).map_err(|e| e.to_string())?;
    if line.split_whitespace().nth(1) == Some("200") {
        println!("ok");
        Ok(())
    } else {
        Err(format!("unhealthy: {}", line.trim()))
    }
}

fn import(data_dir: &Path, schema_id: &str, file: &str) -> Result<(), String> {
    let pool = open_db(data_dir)?;
    let mut conn = pool.get().map_err(|e| e.to_string())?;
    let schema = db::schemas::get_any(&conn, schema_id)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("no schema with id '{schema_id}'"))?;
    let reader: Box<dyn BufRead> = if file == "-" {
        Box::new(std::io::BufReader::new(std::io::stdin()))
    } else {
        Box::new(std::io::BufReader::with_capacity(
            1 << 20,
            std::fs::File::open(file).map_err(|e| format!("cannot open {file}: {e}"))?,
        ))
    };
    let started = std::time::Instant::now();
    let now = now_ms();
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).map_err(|e| e.to_string())?;
    let mut count = 0u64;
    for (i, line) in reader.lines().enumerate() {
        let line = line.map_err(|e| format!("line {}: {e}; nothing was imported", i + 1))?;
        match parse_ndjson_line(&line, now) {
            Ok(Some(r)) => {
                db::results::insert_in(&tx, &schema.team_id, &schema.id, [r]).map_err(|e| e.to_string())?;
                count += 1;
            }
            Ok(None) => {}
            Err(m) => return Err(format!("line {}: {m}; nothing was imported", i + 1)),
        }
    }
    tx.commit().map_err(|e| e.to_string())?;
    eprintln!(
        "Imported {count} results into schema '{}' ({}) in {:.1} s",
        schema.name,
        schema.id,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn export(data_dir: &Path, a: ExportArgs) -> Result<(), String> {
    let pool = open_db(data_dir)?;
    let conn = pool.get().map_err(|e| e.to_string())?;
    let schema = db::schemas::get_any(&conn, &a.schema)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("no schema with id '{}'", a.schema))?;
    let start = parse_instant(&a.start, DayEnd::Start).map_err(|e| format!("--start: {e}"))?;
    let end = parse_instant(&a.end, DayEnd::End).map_err(|e| format!("--end: {e}"))?;
    if start > end {
        return Err("--start is after --end".into());
    }
    let delimiter = match a.delimiter.as_str() {
        "\\t" | "\t" | "tab" => '\t',
        d if d.chars().count() == 1 && crate::domain::export::DELIMITERS.contains(&d.chars().next().unwrap_or(' ')) => {
            d.chars().next().unwrap_or(',')
        }
        d => return Err(format!("--delimiter '{d}': use , ; | or \\t")),
    };
    let options =
        CsvOptions { delimiter, bom: a.bom, gzip: a.gzip, formula_guard: !a.no_formula_guard, ..CsvOptions::default() };
    if let Some(k) = &a.expand_array {
        crate::domain::export::check_expand_array(&schema.definition, k)?;
    }
    let spec = ExportSpec {
        schema_id: &schema.id,
        schema: &schema.definition,
        start_ms: start,
        end_ms: end,
        expand_array: a.expand_array.as_deref(),
        options: &options,
    };
    let started = std::time::Instant::now();
    let rows = match &a.out {
        Some(path) => {
            let mut rows = 0;
            crate::jobs::runner::write_file_atomically(path, |w| {
                rows = write_export(&conn, &spec, w, || false)?.unwrap_or(0);
                Ok(())
            })
            .map_err(|e| e.to_string())?;
            rows
        }
        None => {
            let stdout = std::io::stdout();
            let mut w = std::io::BufWriter::with_capacity(256 * 1024, stdout.lock());
            let rows = write_export(&conn, &spec, &mut w, || false).map_err(|e| e.to_string())?.unwrap_or(0);
            w.flush().map_err(|e| e.to_string())?;
            rows
        }
    };
    eprintln!("Exported {rows} rows in {:.2} s", started.elapsed().as_secs_f64());
    Ok(())
}
