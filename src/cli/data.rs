//! `import` and `export`: bulk data in and out without the HTTP server, with the same
//! parsing and the same CSV engine.

use std::io::{Read, Write};
use std::path::Path;

use anyhow::{anyhow, bail, Context};

use super::{connect, open_db, ExportArgs};
use crate::db;
use crate::domain::export::{CsvOptions, Delimiter};
use crate::domain::time::{now_ms, parse_instant, DayEnd};
use crate::import::ImportError;
use crate::jobs::engine::{write_export, ExportSpec};

pub fn import(data_dir: &Path, schema_id: &str, file: &str) -> anyhow::Result<()> {
    let pool = open_db(data_dir)?;
    let conn = connect(&pool)?;
    let schema = db::schemas::get_any(&conn, schema_id)
        .context("looking the schema up failed")?
        .with_context(|| format!("no schema with id '{schema_id}' in the data folder {}", data_dir.display()))?;
    let reader: Box<dyn Read + Send> = if file == "-" {
        Box::new(std::io::stdin())
    } else {
        Box::new(std::fs::File::open(file).with_context(|| format!("cannot open {file}"))?)
    };
    // the import runs on a connection of its own (see `db::open_bulk`)
    drop(conn);
    drop(pool);
    let data = crate::data_dir::DataDir::new(data_dir);
    let conn = db::open_bulk(&data.database(), super::CLI_BUSY_TIMEOUT)
        .with_context(|| format!("cannot open the database in {}", data_dir.display()))?;
    let input = crate::import::read_chunks(reader);
    let started = std::time::Instant::now();
    let write_behind = crate::jobs::write_behind::WalWriteBehind::start(data.database_wal());
    let imported = crate::import::import(&conn, &schema.team_id, &schema.id, now_ms(), input);
    drop(write_behind);
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

pub fn export(data_dir: &Path, a: ExportArgs) -> anyhow::Result<()> {
    let pool = open_db(data_dir)?;
    let conn = connect(&pool)?;
    let schema = db::schemas::get_any(&conn, &a.schema)
        .context("looking the schema up failed")?
        .with_context(|| format!("no schema with id '{}' in the data folder {}", a.schema, data_dir.display()))?;
    let start = parse_instant(&a.start, DayEnd::Start).map_err(|e| anyhow!("--start: {e}"))?;
    let end = parse_instant(&a.end, DayEnd::End).map_err(|e| anyhow!("--end: {e}"))?;
    if start > end {
        bail!("--start is after --end");
    }
    let delimiter = match a.delimiter.as_str() {
        // how a tab is easiest to write in a shell
        "\\t" | "tab" => '\t',
        d => d.parse::<Delimiter>().map_err(|_| anyhow!("--delimiter '{d}': use , ; | or \\t"))?.as_char(),
    };
    let options =
        CsvOptions { delimiter, bom: a.bom, gzip: a.gzip, formula_guard: !a.no_formula_guard, ..CsvOptions::default() };
    if let Some(k) = &a.expand_array {
        crate::domain::export::check_expand_array(&schema.definition, k).map_err(|e| anyhow!(e))?;
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
            })?;
            rows
        }
        None => {
            let stdout = std::io::stdout();
            let mut w = std::io::BufWriter::with_capacity(256 * 1024, stdout.lock());
            let rows = write_export(&conn, &spec, &mut w, || false)?.unwrap_or(0);
            w.flush()?;
            rows
        }
    };
    eprintln!("Exported {rows} rows in {:.2} s", started.elapsed().as_secs_f64());
    Ok(())
}
