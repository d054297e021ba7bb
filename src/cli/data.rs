//! `import` and `export`: bulk data in and out without the HTTP server, with the same
//! parsing and the same CSV engine.

use std::io::{Read, Write};
use std::path::Path;

use super::{open_db, ExportArgs};
use crate::db;
use crate::domain::export::{CsvOptions, Delimiter};
use crate::domain::time::{now_ms, parse_instant, DayEnd};
use crate::import::ImportError;
use crate::jobs::engine::{write_export, ExportSpec};

pub fn import(data_dir: &Path, schema_id: &str, file: &str) -> Result<(), String> {
    let pool = open_db(data_dir)?;
    let conn = pool.get().map_err(|e| e.to_string())?;
    let schema = db::schemas::get_any(&conn, schema_id)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("no schema with id '{schema_id}'"))?;
    let reader: Box<dyn Read + Send> = if file == "-" {
        Box::new(std::io::stdin())
    } else {
        Box::new(std::fs::File::open(file).map_err(|e| format!("cannot open {file}: {e}"))?)
    };
    // the import runs on a connection of its own (see `db::open_bulk`)
    drop(conn);
    drop(pool);
    let data = crate::data_dir::DataDir::new(data_dir);
    let conn = db::open_bulk(&data.database(), super::CLI_BUSY_TIMEOUT).map_err(|e| e.to_string())?;
    let input = crate::import::read_chunks(reader);
    let started = std::time::Instant::now();
    let write_behind = crate::jobs::write_behind::WalWriteBehind::start(data.database_wal());
    let imported = crate::import::import(&conn, &schema.team_id, &schema.id, now_ms(), input);
    drop(write_behind);
    let count = match imported {
        Ok(n) => n,
        // an empty input imports nothing, as it always has
        Err(ImportError::NoResults) => 0,
        Err(ImportError::Line(l)) => return Err(format!("{l}; nothing was imported")),
        Err(ImportError::Input(m)) => return Err(format!("{m}; nothing was imported")),
        Err(ImportError::Db(e)) => return Err(format!("{e}; nothing was imported")),
    };
    eprintln!(
        "Imported {count} results into schema '{}' ({}) in {:.1} s",
        schema.name,
        schema.id,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

pub fn export(data_dir: &Path, a: ExportArgs) -> Result<(), String> {
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
        // how a tab is easiest to write in a shell
        "\\t" | "tab" => '\t',
        d => d.parse::<Delimiter>().map_err(|_| format!("--delimiter '{d}': use , ; | or \\t"))?.as_char(),
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
