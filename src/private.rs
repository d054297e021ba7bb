//! Private files: everything the service keeps in its data folder is readable by the
//! service's user only — folders 0700, files 0600 — whatever the umask. New files and folders
//! are created with those modes; `tighten` takes group and other permissions away from ones
//! an older version (or another tool) created.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::Path;

#[cfg(unix)]
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};

/// Mode of the folders the service creates.
pub const DIR_MODE: u32 = 0o700;
/// Mode of the files the service creates.
pub const FILE_MODE: u32 = 0o600;

/// Creates `dir` (and missing parents) if needed; `dir` itself ends up 0700 or tighter.
pub fn create_dir(dir: &Path) -> io::Result<()> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    b.mode(DIR_MODE);
    b.create(dir)?;
    tighten(dir)
}

/// Creates the data folder 0700 if needed. An existing one is tightened to 0700 when it is
/// the service's: empty (a fresh volume) or holding `marker` (the database). A folder with
/// other things in it (someone's home, `/tmp`) is left alone, with a warning: the files the
/// service puts there are private all the same.
pub fn create_data_dir(dir: &Path, marker: &str) -> io::Result<()> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    b.mode(DIR_MODE);
    b.create(dir)?;
    let ours = dir.join(marker).exists() || std::fs::read_dir(dir)?.next().is_none();
    if ours {
        return tighten(dir);
    }
    #[cfg(unix)]
    {
        let mode = std::fs::metadata(dir)?.permissions().mode();
        if mode & 0o077 != 0 {
            tracing::warn!(
                "the data folder {} holds other files and is open to other users (mode {:o}); the service's \
files in it are private, but a folder of its own is safer",
                dir.display(),
                mode & 0o777
            );
        }
    }
    Ok(())
}

/// Opens `path` for writing, created 0600 (truncated if it exists), for a file the service
/// writes whole.
pub fn create_file(path: &Path) -> io::Result<File> {
    let f = options().write(true).create(true).truncate(true).open(path)?;
    tighten_open(&f)?;
    Ok(f)
}

/// Creates `path` empty with mode 0600 unless it exists; an existing file is left as it is.
pub fn create_file_if_missing(path: &Path) -> io::Result<()> {
    match options().write(true).create_new(true).open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

/// OpenOptions whose newly created file gets mode 0600.
pub fn options() -> OpenOptions {
    #[allow(unused_mut)]
    let mut o = OpenOptions::new();
    #[cfg(unix)]
    o.mode(FILE_MODE);
    o
}

/// Takes group and other permissions away from `path` (a file or folder); a missing path
/// is fine. Symbolic links are left alone.
pub fn tighten(path: &Path) -> io::Result<()> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    #[cfg(unix)]
    {
        if meta.file_type().is_symlink() {
            return Ok(());
        }
        let mode = meta.permissions().mode();
        if mode & 0o077 != 0 {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode & 0o7700))?;
        }
    }
    #[cfg(not(unix))]
    let _ = meta;
    Ok(())
}

fn tighten_open(f: &File) -> io::Result<()> {
    #[cfg(unix)]
    {
        let mode = f.metadata()?.permissions().mode();
        if mode & 0o077 != 0 {
            f.set_permissions(std::fs::Permissions::from_mode(mode & 0o7700))?;
        }
    }
    #[cfg(not(unix))]
    let _ = f;
    Ok(())
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn created_private_and_tightened() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("a/b");
        create_dir(&dir).unwrap();
        assert_eq!(mode(&dir), 0o700);
        let f = dir.join("f");
        create_file(&f).unwrap();
        assert_eq!(mode(&f), 0o600);

        let loose = dir.join("loose");
        std::fs::write(&loose, b"x").unwrap();
        std::fs::set_permissions(&loose, std::fs::Permissions::from_mode(0o644)).unwrap();
        tighten(&loose).unwrap();
        assert_eq!(mode(&loose), 0o600);
        std::fs::set_permissions(&loose, std::fs::Permissions::from_mode(0o666)).unwrap();
        create_file(&loose).unwrap();
        assert_eq!(mode(&loose), 0o600, "rewriting a file tightens it");
        create_file_if_missing(&loose).unwrap();
        tighten(&dir.join("missing")).unwrap();
    }

    #[test]
    fn only_the_services_own_data_folder_is_tightened() {
        let tmp = tempfile::tempdir().unwrap();
        let set = |p: &Path, m: u32| std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap();
        let empty = tmp.path().join("volume");
        std::fs::create_dir(&empty).unwrap();
        set(&empty, 0o755);
        create_data_dir(&empty, "exports.db").unwrap();
        assert_eq!(mode(&empty), 0o700, "an empty folder (a fresh volume) is the service's");

        let old = tmp.path().join("old");
        std::fs::create_dir(&old).unwrap();
        std::fs::write(old.join("exports.db"), b"").unwrap();
        set(&old, 0o755);
        create_data_dir(&old, "exports.db").unwrap();
        assert_eq!(mode(&old), 0o700, "a data folder of an older version");

        let shared = tmp.path().join("shared");
        std::fs::create_dir(&shared).unwrap();
        std::fs::write(shared.join("someone-elses.txt"), b"").unwrap();
        set(&shared, 0o755);
        create_data_dir(&shared, "exports.db").unwrap();
        assert_eq!(mode(&shared), 0o755, "a folder with other things in it is left alone");
        set(&shared, 0o700);
    }
}
