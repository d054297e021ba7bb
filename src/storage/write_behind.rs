//! An export file that goes to disk while it is being written, not all at the end.
//!
//! An export is fsynced before it is renamed into place (so a crash never leaves a torn file
//! under a final name). Written plainly, the whole file sits in the page cache until that
//! fsync, which then waits for all of it: for a 50 MB export about 0.1 s of a 0.5 s export on
//! this class of disk, with the formatting threads idle. Here, each time another `STEP` bytes
//! have been written, the kernel is asked to start writing them out (`sync_file_range`,
//! Linux), so the disk works while the CSV is formatted and the final fsync finds little left.
//! It also keeps an export's dirty pages few, so that it does not push the kernel into
//! throttling every writer of the machine. Hand-written because it sits on the export's hot
//! path and no crate wraps this one call.

use std::fs::File;
use std::io::{self, Write};

/// Written bytes between two writeback requests.
const STEP: u64 = 8 << 20;

pub struct WriteBehind {
    file: File,
    written: u64,
    /// Everything before this offset has been handed to writeback.
    flushed: u64,
}

impl WriteBehind {
    pub fn new(file: File) -> WriteBehind {
        WriteBehind { file, written: 0, flushed: 0 }
    }

    /// The file, for the final `sync_all`.
    pub fn into_file(self) -> File {
        self.file
    }

    fn start_writeback(&mut self) {
        start_writeback(&self.file, self.flushed, self.written - self.flushed);
        self.flushed = self.written;
    }
}

/// Asks the kernel to start writing out `len` bytes of `file` from `offset` (0: to the end)
/// without waiting. A failure, or another system than Linux, only leaves the work to the
/// final fsync, as without this.
fn start_writeback(file: &File, offset: u64, len: u64) {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        // SAFETY: a valid open descriptor; the kernel checks the range.
        unsafe {
            libc::sync_file_range(
                file.as_raw_fd(),
                offset as libc::off64_t,
                len as libc::off64_t,
                libc::SYNC_FILE_RANGE_WRITE,
            );
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (file, offset, len);
}

impl Write for WriteBehind {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        self.written += n as u64;
        if self.written - self.flushed >= STEP {
            self.start_writeback();
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

/// Asks the kernel, every `WAL_EVERY` until dropped, to start writing out whatever is dirty
/// in the file at `path` (a SQLite WAL that a long transaction is filling), so that the
/// commit's fsync finds little left: for an import of 100,000 results (115 MB of WAL) that
/// fsync alone waited ~0.5 s with the disk idle until then. The file is opened once it exists
/// and only to ask (SQLite locks the database and `-shm` files, never the WAL, so this
/// descriptor takes no lock away). Hand-written for the same reason as [`WriteBehind`].
pub struct WalWriteBehind {
    stop: Option<std::sync::mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

const WAL_EVERY: std::time::Duration = std::time::Duration::from_millis(50);

impl WalWriteBehind {
    pub fn start(path: std::path::PathBuf) -> WalWriteBehind {
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("wal-write-behind".into())
            .spawn(move || {
                let mut wal: Option<File> = None;
                while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(WAL_EVERY) {
                    // the WAL appears at the first write
                    if wal.is_none() {
                        wal = File::open(&path).ok();
                    }
                    if let Some(file) = &wal {
                        start_writeback(file, 0, 0);
                    }
                }
            })
            .ok();
        WalWriteBehind { stop: Some(stop), thread }
    }
}

impl Drop for WalWriteBehind {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_every_byte_across_writeback_steps() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let mut w = WriteBehind::new(File::create(&path).unwrap());
        let chunk: Vec<u8> = (0..=255u8).cycle().take(1 << 20).collect();
        for _ in 0..20 {
            w.write_all(&chunk).unwrap();
        }
        assert_eq!(w.flushed, 16 << 20, "writeback was started at each step");
        w.into_file().sync_all().unwrap();
        let back = std::fs::read(&path).unwrap();
        assert_eq!(back.len(), 20 << 20);
        assert!(back.chunks(1 << 20).all(|c| c == chunk.as_slice()));
    }
}
