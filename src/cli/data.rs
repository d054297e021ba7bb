//! `import` and `export`: bulk data in and out without the HTTP server, with the same
//! parsing and the same CSV engine.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context};

use super::{connect, open_db, ExportArgs, FormatArg, HeaderArg};
use crate::config::Database;
use crate::db;
use crate::domain::export::{ExportFormat, HeaderStyle};
use crate::domain::export_input::{ExportField, ExportInput};
use crate::domain::time::now_ms;
use crate::import::ImportError;
use crate::jobs::engine::{write_export, ExportSpec};

/// The database the data tools work on: `--database-url`'s, else the data folder's SQLite
/// file (which must exist: only `serve` creates a data folder).
struct Store {
    pool: db::Pool,
    /// The SQLite file, when it is one.
    file: Option<PathBuf>,
    /// Where the database is, for messages.
    place: String,
}

fn open_store(data_dir: &Path, database: Option<&Database>) -> anyhow::Result<Store> {
    match database {
        None => Ok(Store {
            pool: open_db(data_dir)?,
            file: Some(crate::data_dir::DataDir::new(data_dir).database()),
            place: format!("the data folder {}", data_dir.display()),
        }),
        Some(Database::Sqlite(path)) => {
            if !path.is_file() {
                bail!("there is no database file {}; `exports-api serve` creates one", path.display());
            }
            let pool = db::open(path, 2, super::CLI_BUSY_TIMEOUT)
                .with_context(|| format!("cannot open the database {}", path.display()))?;
            Ok(Store {
                pool: db::Pool::Lite(pool),
                file: Some(path.clone()),
                place: format!("the database {}", path.display()),
            })
        }
        Some(d @ Database::Postgres(url)) => {
            let pool = db::pg::open(url, 2).with_context(|| format!("cannot open the database {d:?}"))?;
            Ok(Store { pool: db::Pool::Pg(pool), file: None, place: format!("the database {d:?}") })
        }
    }
}

pub fn import(data_dir: &Path, database: Option<&Database>, schema_id: &str, file: &str) -> anyhow::Result<()> {
    let store = open_store(data_dir, database)?;
    let conn = connect(&store.pool)?;
    let schema = db::schemas::get_any(&conn, schema_id)
        .context("looking the schema up failed")?
        .with_context(|| format!("no schema with id '{schema_id}' in {}", store.place))?;
    let reader: Box<dyn Read + Send> = if file == "-" {
        Box::new(std::io::stdin())
    } else {
        Box::new(std::fs::File::open(file).with_context(|| format!("cannot open {file}"))?)
    };
    drop(conn);
    let input = crate::import::read_chunks(reader);
    let started = std::time::Instant::now();
    let imported = match store.pool {
        db::Pool::Lite(pool) => {
            // the import runs on a connection of its own (see `db::open_bulk`)
            drop(pool);
            let path = store.file.expect("a SQLite store has a file");
            let conn = db::open_bulk(&path, super::CLI_BUSY_TIMEOUT)
                .with_context(|| format!("cannot open the database {}", path.display()))?;
            let mut wal = path.into_os_string();
            wal.push("-wal");
            let write_behind = crate::storage::write_behind::WalWriteBehind::start(PathBuf::from(wal));
            let imported = crate::import::import(&conn, &schema.team_id, &schema.id, now_ms(), input);
            drop(write_behind);
            imported
        }
        db::Pool::Pg(pool) => {
            // one write transaction under the store's write lock, as the server's writes
            let (team, id) = (schema.team_id.clone(), schema.id.clone());
            db::Writer::postgres(pool).run(move |c| crate::import::import(c, &team, &id, now_ms(), input))
        }
    };
    let count = match imported {
        Ok(n) => n,
        // an empty input imports nothing, as it always has
        Err(ImportError::NoResults) => 0,
        Err(e) => return Err(anyhow!("{e}; nothing was imported")),
    };
    eprintln!(
        "Imported {count} results into schema '{}' ({}) in {:.1} s",
        schema.name,
        schema.id,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// The command line's names for the fields of a new export.
fn flag(field: ExportField) -> &'static str {
    match field {
        ExportField::StartDate => "--start",
        ExportField::EndDate => "--end",
        ExportField::Delimiter => "--delimiter",
        ExportField::Bom => "--bom",
        ExportField::FormulaGuard => "--formula-guard",
        ExportField::Gzip => "--gzip",
        ExportField::Format => "--format",
        ExportField::Columns => "--columns",
        ExportField::Timezone => "--timezone",
    }
}

/// Checks that `--out` can be written before anything is done: its folder exists and it is
/// not a folder itself.
fn check_out(path: &Path) -> anyhow::Result<()> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if path.is_dir() {
        bail!(
            "--out {}: that is a folder; give a file name, e.g. {}",
            path.display(),
            path.join("export.csv").display()
        );
    }
    match std::fs::metadata(parent) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => bail!("--out {}: {} is not a folder; nothing was written", path.display(), parent.display()),
        Err(e) => Err(anyhow!(
            "--out {}: the folder {} {}; create it first, or write elsewhere. Nothing was written",
            path.display(),
            parent.display(),
            if e.kind() == std::io::ErrorKind::NotFound {
                "does not exist".to_string()
            } else {
                format!("cannot be read ({e})")
            }
        )),
    }
}

pub fn export(data_dir: &Path, database: Option<&Database>, a: ExportArgs) -> anyhow::Result<()> {
    // the same checks, in the same order and with the same words, as POST /v1/exports
    let delimiter = a.delimiter.as_deref().map(|d| match d {
        // how a tab is easiest to write in a shell
        "\\t" | "tab" => "\t",
        d => d,
    });
    let new = ExportInput {
        schema_id: a.schema.clone(),
        start_date: &a.start,
        end_date: &a.end,
        expand_array: a.expand_array.clone(),
        delimiter,
        bom: a.bom,
        header: Some(match a.header {
            HeaderArg::Key => HeaderStyle::Key,
            HeaderArg::Label => HeaderStyle::Label,
        }),
        formula_guard: if a.no_formula_guard { Some(false) } else { a.formula_guard },
        gzip: a.gzip,
        format: a.format.map(|f| match f {
            FormatArg::Csv => ExportFormat::Csv,
            FormatArg::Xlsx => ExportFormat::Xlsx,
            FormatArg::Jsonl => ExportFormat::Jsonl,
        }),
        columns: a.columns.clone(),
        timezone: a.timezone.as_deref(),
    }
    .check()
    .map_err(|e| anyhow!(e.message(flag)))?;
    if let Some(path) = &a.out {
        check_out(path)?;
    }
    let store = open_store(data_dir, database)?;
    let conn = connect(&store.pool)?;
    let schema = db::schemas::get_any(&conn, &new.schema_id)
        .context("looking the schema up failed")?
        .with_context(|| format!("no schema with id '{}' in {}", new.schema_id, store.place))?;
    if let Some(k) = &new.expand_array {
        crate::domain::export::check_expand_array(&schema.definition, k).map_err(|e| anyhow!(e))?;
    }
    // the chosen columns, checked as POST /v1/exports checks them (the flag for the field)
    crate::jobs::csv::CsvPlan::new(&schema.definition, new.expand_array.as_deref(), &new.options)
        .map_err(|e| anyhow!(e.strip_prefix("columns:").map_or(e.clone(), |rest| format!("--columns:{rest}"))))?;
    let scratch = crate::data_dir::DataDir::new(data_dir).scratch();
    let spec = ExportSpec {
        schema_id: &schema.id,
        schema_name: &schema.name,
        schema: &schema.definition,
        temp_dir: &scratch,
        start_ms: new.start_ms,
        end_ms: new.end_ms,
        expand_array: new.expand_array.as_deref(),
        options: &new.options,
    };
    let started = std::time::Instant::now();
    let rows = match &a.out {
        Some(path) => {
            let mut rows = 0;
            crate::jobs::runner::write_file_atomically(path, |w| {
                rows = write_export(&conn, &spec, w, |_| false)?.unwrap_or(0);
                Ok(())
            })
            .with_context(|| format!("--out {}: the export was not written", path.display()))?;
            rows
        }
        None => {
            let stdout = std::io::stdout();
            let mut w = std::io::BufWriter::with_capacity(256 * 1024, stdout);
            let rows = write_export(&conn, &spec, &mut w, |_| false)?.unwrap_or(0);
            w.flush()?;
            rows
        }
    };
    eprintln!("Exported {rows} rows in {:.2} s", started.elapsed().as_secs_f64());
    Ok(())
}
