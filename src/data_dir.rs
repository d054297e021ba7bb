//! The data folder, in one place: what lives where, its creation and its lock.
//!
//! ```text
//! DATA/                      0700 (see `private`)
//!   exports.db (+ -wal, -shm)  the SQLite database and its write-ahead log
//!   signing.key                the HMAC key of download URLs (unless --signing-key is given)
//!   serve.lock                 held by the one server running on this folder
//!   exports/<id>.csv[.gz]      finished export files, unless --storage-url names another
//!                              place (this name whatever the format; the download's name
//!                              and type follow the export's format)
//!   exports/.<id>.tmp          an export being written (renamed when whole)
//!   uploads/*.part             NDJSON uploads spooled before they are imported
//!   tmp/                       scratch files of running exports (a workbook's sheets)
//! ```

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

/// The database file's name.
const DATABASE_FILE: &str = "exports.db";
/// The signing key's file name.
const SIGNING_KEY_FILE: &str = "signing.key";
const LOCK_FILE: &str = "serve.lock";
const EXPORTS: &str = "exports";
const UPLOADS: &str = "uploads";
const SCRATCH: &str = "tmp";

/// A data folder (`--data-dir`): every path the service uses inside it comes from here.
#[derive(Clone, Debug)]
pub struct DataDir {
    root: PathBuf,
}

/// Why the data folder could not be locked for a server.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another server holds the lock.
    #[error("another exports-api server is running on the data folder {}; stop it or use another --data-dir", .0.display())]
    Held(PathBuf),
    /// The lock file could not be created, made private or locked.
    #[error("cannot lock {}: {}", .0.display(), .1)]
    Io(PathBuf, #[source] io::Error),
}

impl DataDir {
    pub fn new(root: impl Into<PathBuf>) -> DataDir {
        DataDir { root: root.into() }
    }

    /// The folder itself.
    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn database(&self) -> PathBuf {
        self.root.join(DATABASE_FILE)
    }

    /// SQLite's write-ahead log beside the database.
    pub fn database_wal(&self) -> PathBuf {
        self.root.join(format!("{DATABASE_FILE}-wal"))
    }

    pub fn signing_key(&self) -> PathBuf {
        self.root.join(SIGNING_KEY_FILE)
    }

    /// Where a new signing key is written before it is renamed into place.
    pub fn signing_key_temp(&self) -> PathBuf {
        self.root.join(format!("{SIGNING_KEY_FILE}.tmp"))
    }

    /// The folder export files live in.
    pub fn exports(&self) -> PathBuf {
        self.root.join(EXPORTS)
    }

    /// The folder an NDJSON upload is spooled to (one private temporary file per upload)
    /// before it is imported.
    pub fn uploads(&self) -> PathBuf {
        self.root.join(UPLOADS)
    }

    /// Where running exports keep scratch files (a workbook's sheets before they are
    /// zipped): inside the data folder, because a container may have no writable /tmp.
    /// Created by the export that needs it; what is in it is removed as soon as it closes.
    pub fn scratch(&self) -> PathBuf {
        self.root.join(SCRATCH)
    }

    /// Creates the folder 0700 if needed (see `private::create_data_dir`).
    pub fn create(&self) -> io::Result<()> {
        crate::private::create_data_dir(&self.root, DATABASE_FILE)
    }

    /// One server per data folder: its workers take over jobs left PROCESSING by an earlier
    /// run, which must not be a run that is still alive. The lock lasts as long as the
    /// returned file is open, and goes with the process.
    pub fn lock(&self) -> Result<File, LockError> {
        let path = self.root.join(LOCK_FILE);
        let io_error = |e| LockError::Io(path.clone(), e);
        let file = crate::private::options().create(true).truncate(false).write(true).open(&path).map_err(io_error)?;
        crate::private::tighten(&path).map_err(io_error)?;
        match file.try_lock() {
            Ok(()) => Ok(file),
            Err(std::fs::TryLockError::WouldBlock) => Err(LockError::Held(self.root.clone())),
            Err(std::fs::TryLockError::Error(e)) => Err(io_error(e)),
        }
    }
}

/// Why this process may not write in `path` (or, when it does not exist yet, in the nearest
/// folder above it that does), for the message of a "permission denied": who owns it and who
/// this process is, and what to do about it.
pub fn permission_hint(path: &Path) -> String {
    use std::os::unix::fs::MetadataExt;
    let Some((dir, meta)) = path.ancestors().find_map(|d| std::fs::metadata(d).ok().map(|m| (d, m))) else {
        return String::new();
    };
    // SAFETY: geteuid has no preconditions
    let me = unsafe { libc::geteuid() };
    let shown = dir.display();
    if meta.uid() != me {
        format!(
            "; {shown} belongs to uid {} and this process runs as uid {me}: run the server as that user, \
             or give it the folder (chown -R {me} {shown})",
            meta.uid()
        )
    } else {
        format!("; {shown} (mode {:o}) is not writable by its owner, this process", meta.mode() & 0o7777)
    }
}

/// A finished export's file in an exports folder (`exports/` of the data folder, or the folder
/// of `--storage-url file:///…`): `<id>.csv` or `<id>.csv.gz`, whatever the format.
pub fn export_file_in(dir: &Path, export_id: &str, gzip: bool) -> PathBuf {
    dir.join(format!("{export_id}.{}", crate::domain::naming::extension(gzip)))
}

/// The temporary name an export is written under, in the same folder, until it is whole.
pub fn export_temp_in(dir: &Path, export_id: &str) -> PathBuf {
    dir.join(format!(".{export_id}.tmp"))
}

/// Whether a file name in an exports folder is a temporary one (an export being written).
pub fn is_export_temp(name: &str) -> bool {
    name.ends_with(".tmp")
}

/// The export id a file name in an exports folder belongs to.
pub fn export_id_of(name: &str) -> Option<&str> {
    name.split('.').next().filter(|id| !id.is_empty())
}

/// Whether a file name is one an export's file (`<uuid>.csv`, `<uuid>.csv.gz`) or its
/// temporary (`.<uuid>.tmp`) takes: in a folder or bucket the service shares with other
/// things, only such names are ever removed.
pub fn is_export_file_name(name: &str) -> bool {
    // the hyphenated form only (36 characters), as export ids are written
    let is_uuid = |s: &str| s.len() == 36 && uuid::Uuid::try_parse(s).is_ok();
    if let Some(id) = name.strip_prefix('.').and_then(|n| n.strip_suffix(".tmp")) {
        return is_uuid(id);
    }
    name.split_once('.').is_some_and(|(id, ext)| is_uuid(id) && (ext == "csv" || ext == "csv.gz"))
}

/// Whether an I/O error means the disk (or the user's quota) is full: ENOSPC or EDQUOT.
pub fn is_disk_full(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded) || e.raw_os_error() == Some(28)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_the_same_folder_is_refused_until_the_first_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let data = DataDir::new(dir.path());
        let first = data.lock().unwrap();
        let second = data.lock().unwrap_err();
        assert!(matches!(second, LockError::Held(_)), "{second}");
        assert!(second.to_string().contains("another exports-api server is running"), "{second}");
        drop(first);
        data.lock().unwrap();
    }

    #[test]
    fn every_path_lies_inside_the_folder() {
        let data = DataDir::new("/d");
        for p in [
            data.database(),
            data.signing_key(),
            data.signing_key_temp(),
            export_file_in(&data.exports(), "x", true),
            export_temp_in(&data.exports(), "x"),
            data.uploads(),
        ] {
            assert!(p.starts_with("/d"), "{}", p.display());
        }
        assert_eq!(export_file_in(&data.exports(), "x", false), Path::new("/d/exports/x.csv"));
        assert_eq!(export_file_in(&data.exports(), "x", true), Path::new("/d/exports/x.csv.gz"));
        assert_eq!(export_temp_in(&data.exports(), "x"), Path::new("/d/exports/.x.tmp"));
    }

    #[test]
    fn export_file_names_are_told_from_others() {
        let id = "019760a0-0050-7000-8000-000000000050";
        for ours in [format!("{id}.csv"), format!("{id}.csv.gz"), format!(".{id}.tmp")] {
            assert!(is_export_file_name(&ours), "{ours}");
        }
        for other in ["notes.txt", "x.csv", &format!("{id}.xlsx"), &format!("{id}.csv.bak"), &format!("{id}.tmp")] {
            assert!(!is_export_file_name(other), "{other}");
        }
    }
}
