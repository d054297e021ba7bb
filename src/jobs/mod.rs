//! Export jobs: the CSV engine and the worker threads that run it.

mod batches;
pub mod csv;
pub mod engine;
#[cfg(test)]
mod engine_tests;
pub mod json;
mod priority;
pub mod runner;
pub mod write_behind;

use std::path::{Path, PathBuf};

/// The folder export files live in.
pub fn exports_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("exports")
}

/// Where a finished export's file is kept.
pub fn export_file(data_dir: &Path, export_id: &str, gzip: bool) -> PathBuf {
    exports_dir(data_dir).join(format!("{export_id}.{}", crate::domain::naming::extension(gzip)))
}

/// The temporary name an export is written under until it is whole.
pub fn temp_file(data_dir: &Path, export_id: &str) -> PathBuf {
    exports_dir(data_dir).join(format!(".{export_id}.tmp"))
}
