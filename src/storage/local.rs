//! Export files in a local folder (the data folder's `exports/`, or `--storage-url file:///…`):
//! `<id>.csv[.gz]`, written as `.<id>.tmp`, fsynced, then renamed when the export is recorded.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use super::write_behind::WriteBehind;
use super::{Finished, Publish, StorageError};
use crate::data_dir::{export_file_in, export_id_of, export_temp_in, is_export_file_name, is_export_temp};

pub struct LocalStore {
    dir: PathBuf,
    /// The data folder's own `exports/`: every file in it is the service's. In a folder named
    /// by `--storage-url`, only files with an export's name are.
    own_folder: bool,
}

impl LocalStore {
    /// The store in `dir`, created 0700 if it is missing.
    pub fn new(dir: PathBuf, own_folder: bool) -> Result<LocalStore, StorageError> {
        crate::private::create_dir(&dir)?;
        Ok(LocalStore { dir, own_folder })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn file(&self, id: &str, gzip: bool) -> PathBuf {
        export_file_in(&self.dir, id, gzip)
    }

    pub fn create(&self, id: &str, gzip: bool) -> Result<LocalUpload, StorageError> {
        let tmp = export_temp_in(&self.dir, id);
        let file = WriteBehind::new(crate::private::create_file(&tmp)?);
        Ok(LocalUpload { file: Some(file), tmp, path: self.file(id, gzip) })
    }

    pub fn remove(&self, id: &str, gzip: bool) -> Result<bool, StorageError> {
        match std::fs::remove_file(self.file(id, gzip)) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    pub fn sync_dir(&self) {
        if let Ok(d) = std::fs::File::open(&self.dir) {
            let _ = d.sync_all();
        }
    }

    /// Removes temporary files (a run that died mid-write) and files whose export is gone;
    /// returns the size of the files kept.
    pub fn tidy(&self, owned: &dyn Fn(&str) -> bool) -> Result<u64, StorageError> {
        let mut kept = 0u64;
        for entry in std::fs::read_dir(&self.dir)? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().to_string();
            if !self.own_folder && !is_export_file_name(&name) {
                continue;
            }
            if is_export_temp(&name) || !export_id_of(&name).is_some_and(owned) {
                let _ = std::fs::remove_file(entry.path());
            } else {
                // files an older version wrote readable by all
                crate::private::tighten(&entry.path())?;
                kept += entry.metadata().map(|m| m.len()).unwrap_or(0);
            }
        }
        Ok(kept)
    }
}

/// A local export file being written under its temporary name; removed if dropped unfinished.
pub struct LocalUpload {
    file: Option<WriteBehind>,
    tmp: PathBuf,
    path: PathBuf,
}

impl LocalUpload {
    fn file(&mut self) -> &mut WriteBehind {
        self.file.as_mut().expect("an unfinished upload has its file")
    }

    pub fn finish(mut self) -> Result<Finished, StorageError> {
        let mut file = self.file.take().expect("finished once");
        let synced = file.flush().and_then(|()| {
            let file = file.into_file();
            file.sync_all()?;
            file.metadata().map(|m| m.len())
        });
        match synced {
            Ok(size) => {
                let publish =
                    Publish::Local { tmp: std::mem::take(&mut self.tmp), path: std::mem::take(&mut self.path) };
                Ok(Finished { size, publish })
            }
            Err(e) => {
                // a full disk, say: give the space back
                let _ = std::fs::remove_file(&self.tmp);
                Err(e.into())
            }
        }
    }
}

impl Write for LocalUpload {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file().write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file().flush()
    }
}

impl Drop for LocalUpload {
    fn drop(&mut self) {
        if self.file.take().is_some() {
            // unfinished (cancelled, failed, a full disk): leave nothing behind
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}
