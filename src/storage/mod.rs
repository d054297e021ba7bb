//! Where export files live: [`Store`], over a local folder (`file://`, the default: the data
//! folder's `exports/`) or an S3-compatible bucket (`s3://bucket/prefix`).
//!
//! An export is written through an [`Upload`] (a `Write`), finished into a [`Finished`] file
//! whose [`Publish`] step runs inside the database write that records the export COMPLETED:
//! - local: the file is written under a temporary name, fsynced, and renamed by that step, so
//!   a DELETE sees either no file and no export, or both;
//! - S3: a multipart upload, a few parts in flight; finishing completes it (the object appears
//!   whole or not at all) and the step does nothing. An upload that is dropped unfinished
//!   (cancelled, failed) is aborted; a finished object whose export was deleted meanwhile is
//!   removed by [`Store::discard`].
//!
//! Downloads: a local file is served by our signed route; an object by a presigned S3 URL, or
//! through our signed route when the store is configured as proxied (`--storage-proxy`).

pub mod local;
pub mod presign;
pub mod s3;
pub mod write_behind;

use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use crate::data_dir::DataDir;

/// Where `--storage-url` points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A local folder (`file:///some/dir`).
    Local(PathBuf),
    /// A bucket and a key prefix (`s3://bucket/prefix`; the prefix may be empty).
    S3 { bucket: String, prefix: String },
}

impl Location {
    /// Parses `file:///absolute/dir` or `s3://bucket[/prefix]`; the message says what is wrong.
    pub fn parse(s: &str) -> Result<Location, String> {
        let s = s.trim();
        if let Some(path) = s.strip_prefix("file://") {
            if !path.starts_with('/') {
                return Err(format!(
                    "'{s}' is not a file URL with an absolute path: write file:///absolute/folder (three slashes)"
                ));
            }
            let path = path.trim_end_matches('/');
            return Ok(Location::Local(PathBuf::from(if path.is_empty() { "/" } else { path })));
        }
        if let Some(rest) = s.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            // the S3 bucket naming rules: 3-63 lowercase letters, digits, dots and hyphens
            let bucket_ok = (3..=63).contains(&bucket.len())
                && bucket.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
                && bucket.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
                && bucket.bytes().last().is_some_and(|b| b.is_ascii_alphanumeric());
            if !bucket_ok {
                return Err(format!(
                    "'{s}': '{bucket}' is not a bucket name (3 to 63 lowercase letters, digits, dots and hyphens, \
                     starting and ending with a letter or digit); write s3://bucket or s3://bucket/prefix"
                ));
            }
            let prefix = prefix.trim_matches('/');
            let prefix_ok = prefix.split('/').all(|seg| {
                seg.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)) && seg != ".." && seg != "."
            }) && !prefix.contains("//");
            if !prefix_ok {
                return Err(format!(
                    "'{s}': the key prefix '{prefix}' may only hold letters, digits, '-', '_', '.' and '/' \
                     between folder names"
                ));
            }
            return Ok(Location::S3 { bucket: bucket.to_string(), prefix: prefix.to_string() });
        }
        Err(format!("'{s}' is not a storage URL: write file:///absolute/folder or s3://bucket/prefix"))
    }
}

/// How to reach an S3-compatible store (besides the bucket), and how to use it.
#[derive(Clone)]
pub struct S3Settings {
    /// `EXPORTS_S3_ENDPOINT`: e.g. `http://minio:9000`; `None`: AWS S3 of `region`.
    pub endpoint: Option<String>,
    /// `EXPORTS_S3_REGION`.
    pub region: String,
    /// `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and `AWS_SESSION_TOKEN`.
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
    /// Bytes per part of a multipart upload (at least 5 MiB, S3's minimum).
    pub part_size: usize,
    /// Parts uploading at once per export, besides the one being filled: an export holds at
    /// most `(parts_in_flight + 1) × part_size` bytes of memory for its upload.
    pub parts_in_flight: usize,
}

impl std::fmt::Debug for S3Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Settings")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id)
            .field("part_size", &self.part_size)
            .field("parts_in_flight", &self.parts_in_flight)
            .finish_non_exhaustive()
    }
}

/// The smallest part S3 accepts (but the last).
pub const MIN_PART_SIZE: usize = 5 << 20;
/// The default part size: 8 MiB.
pub const DEFAULT_PART_SIZE: usize = 8 << 20;
/// The default number of parts uploading at once per export.
pub const DEFAULT_PARTS_IN_FLIGHT: usize = 2;

impl S3Settings {
    /// The settings with credentials and defaults for the rest.
    pub fn new(access_key_id: String, secret_access_key: String) -> S3Settings {
        S3Settings {
            endpoint: None,
            region: "us-east-1".into(),
            access_key_id,
            secret_access_key,
            session_token: None,
            part_size: DEFAULT_PART_SIZE,
            parts_in_flight: DEFAULT_PARTS_IN_FLIGHT,
        }
    }
}

/// What `--storage-url` and its companions chose.
#[derive(Debug, Clone, Default)]
pub struct StorageConfig {
    /// `None`: the data folder's `exports/`.
    pub location: Option<Location>,
    /// Needed for an `s3://` location.
    pub s3: Option<S3Settings>,
    /// S3 only: downloads go through our signed route (`--storage-proxy`), not a presigned URL.
    pub proxy: bool,
}

/// Why the store could not do something.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// A local file operation failed.
    #[error(transparent)]
    Io(#[from] io::Error),
    /// The object store refused or did not answer.
    #[error("object storage: {0}")]
    Object(#[from] object_store::Error),
    /// The store cannot be used as configured (a startup error).
    #[error("{0}")]
    Config(String),
}

impl StorageError {
    /// The file or object is not there.
    pub fn is_not_found(&self) -> bool {
        match self {
            StorageError::Io(e) => e.kind() == io::ErrorKind::NotFound,
            StorageError::Object(object_store::Error::NotFound { .. }) => true,
            _ => false,
        }
    }
}

impl From<StorageError> for io::Error {
    /// Local errors stay themselves (a full disk is still recognised as one).
    fn from(e: StorageError) -> io::Error {
        match e {
            StorageError::Io(e) => e,
            other => io::Error::other(other),
        }
    }
}

/// The export files' store; cheap to clone.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

enum Inner {
    Local(local::LocalStore),
    S3(Box<s3::S3Store>),
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

impl Store {
    /// Opens the store `config` names (the data folder's `exports/` by default): a local folder
    /// is created (0700) if needed; a bucket is listed once, so that a wrong endpoint, bucket
    /// or key is a startup error.
    pub async fn open(config: &StorageConfig, data_dir: &DataDir) -> Result<Store, StorageError> {
        let inner = match &config.location {
            None => Inner::Local(local::LocalStore::new(data_dir.exports(), true)?),
            Some(Location::Local(dir)) => {
                Inner::Local(local::LocalStore::new(dir.clone(), dir == &data_dir.exports())?)
            }
            Some(Location::S3 { bucket, prefix }) => {
                let Some(settings) = &config.s3 else {
                    return Err(StorageError::Config(
                        "an s3:// storage URL needs credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
                            .into(),
                    ));
                };
                Inner::S3(Box::new(s3::S3Store::open(bucket, prefix, settings.clone(), config.proxy).await?))
            }
        };
        Ok(Store { inner: Arc::new(inner) })
    }

    /// In words, for the startup log: the folder, or the bucket and how downloads are served.
    pub fn describe(&self) -> String {
        match &*self.inner {
            Inner::Local(l) => format!("folder {}", l.dir().display()),
            Inner::S3(s) => s.describe(),
        }
    }

    /// Starts writing export `id`'s file. Nothing is visible under its final name until the
    /// upload is finished and published; dropped unfinished, it leaves nothing.
    pub fn create(&self, id: &str, gzip: bool) -> Result<Upload, StorageError> {
        Ok(Upload(match &*self.inner {
            Inner::Local(l) => UploadKind::Local(l.create(id, gzip)?),
            Inner::S3(s) => UploadKind::S3(s.create(id, gzip)?),
        }))
    }

    /// Gives up a finished file that was not (or could not be) recorded: the temporary file or
    /// the completed object goes. A failure is logged: nothing else can be done.
    pub fn discard(&self, finished: Finished) {
        let result = match (&*self.inner, finished.publish) {
            (Inner::Local(_), Publish::Local { tmp, .. }) => match std::fs::remove_file(&tmp) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => Err(StorageError::Io(e)),
                _ => Ok(()),
            },
            (Inner::S3(s), Publish::Object { id, gzip }) => s.remove(&id, gzip).map(|_| ()),
            _ => Ok(()),
        };
        if let Err(e) = result {
            tracing::warn!(error = %e, "could not remove an unrecorded export file");
        }
    }

    /// After a publish was committed: a local folder is synced so the rename survives a crash.
    pub fn sync_published(&self) {
        if let Inner::Local(l) = &*self.inner {
            l.sync_dir();
        }
    }

    /// Removes export `id`'s file; `Ok(false)` when there was none.
    pub fn remove(&self, id: &str, gzip: bool) -> Result<bool, StorageError> {
        match &*self.inner {
            Inner::Local(l) => l.remove(id, gzip),
            Inner::S3(s) => s.remove(id, gzip),
        }
    }

    /// At start: removes what no export owns (`owned` says which ids exist) and, locally,
    /// half-written files; returns the bytes of the files kept. In a folder or bucket prefix
    /// given by `--storage-url`, only names an export's file takes are touched (other files
    /// may live there). Multipart uploads left open by
    /// a process that died are not listed by S3 here: a bucket lifecycle rule
    /// (`AbortIncompleteMultipartUpload`) removes them (see the README).
    pub fn tidy(&self, owned: &dyn Fn(&str) -> bool) -> Result<u64, StorageError> {
        match &*self.inner {
            Inner::Local(l) => l.tidy(owned),
            Inner::S3(s) => s.tidy(owned),
        }
    }

    /// A presigned URL that downloads export `id`'s object straight from the bucket until
    /// `expires` (Unix seconds), answered with `disposition` and `content_type`; `None` when
    /// downloads go through our signed route (a local store, or a proxied bucket).
    pub fn presigned_get(
        &self,
        id: &str,
        gzip: bool,
        disposition: &str,
        content_type: &str,
        expires: i64,
    ) -> Option<String> {
        match &*self.inner {
            Inner::S3(s) if !s.proxied() => Some(s.presigned_get(id, gzip, disposition, content_type, expires)),
            _ => None,
        }
    }

    /// Opens export `id`'s file for our download route: its size, its ETag when the store
    /// keeps one, and what reads it.
    pub async fn open_read(&self, id: &str, gzip: bool) -> Result<Opened, StorageError> {
        match &*self.inner {
            Inner::Local(l) => {
                let path = l.file(id, gzip);
                let file = tokio::task::spawn_blocking(move || {
                    let file = std::fs::File::open(&path)?;
                    let size = file.metadata()?.len();
                    Ok::<_, io::Error>((file, size))
                })
                .await
                .map_err(|e| StorageError::Io(io::Error::other(e)))??;
                Ok(Opened { size: file.1, etag: None, source: Source::File(file.0) })
            }
            Inner::S3(s) => s.open_read(id, gzip).await,
        }
    }
}

/// An export file being written.
pub struct Upload(UploadKind);

enum UploadKind {
    Local(local::LocalUpload),
    S3(s3::S3Upload),
}

impl io::Write for Upload {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match &mut self.0 {
            UploadKind::Local(u) => u.write(buf),
            UploadKind::S3(u) => u.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match &mut self.0 {
            UploadKind::Local(u) => u.flush(),
            UploadKind::S3(u) => u.flush(),
        }
    }
}

impl Upload {
    /// Makes the file whole and durable: a local file is fsynced (still under its temporary
    /// name); an S3 multipart upload is completed. An error leaves nothing behind.
    pub fn finish(self) -> Result<Finished, StorageError> {
        match self.0 {
            UploadKind::Local(u) => u.finish(),
            UploadKind::S3(u) => u.finish(),
        }
    }
}

/// A whole file, not yet published.
#[derive(Debug)]
pub struct Finished {
    /// Its size in bytes.
    pub size: u64,
    publish: Publish,
}

impl Finished {
    /// The step that gives it its final name, to run inside the database write that records it.
    pub fn publish(&self) -> Publish {
        self.publish.clone()
    }
}

/// What publishing a finished file takes; runs inside the database write that records the export.
#[derive(Debug, Clone)]
pub enum Publish {
    /// Rename the temporary file to its final name.
    Local { tmp: PathBuf, path: PathBuf },
    /// Nothing: the completed object is already there.
    Object { id: String, gzip: bool },
}

impl Publish {
    pub fn apply(&self) -> io::Result<()> {
        match self {
            Publish::Local { tmp, path } => std::fs::rename(tmp, path),
            Publish::Object { .. } => Ok(()),
        }
    }
}

/// A file opened for a download.
pub struct Opened {
    pub size: u64,
    /// The object's ETag (quoted), when the store keeps one; a local file has none.
    pub etag: Option<String>,
    pub source: Source,
}

/// What reads an opened file.
pub enum Source {
    File(std::fs::File),
    Object(s3::ObjectReader),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storage_urls() {
        assert_eq!(Location::parse("file:///srv/exports/").unwrap(), Location::Local("/srv/exports".into()));
        assert_eq!(
            Location::parse("s3://my-bucket").unwrap(),
            Location::S3 { bucket: "my-bucket".into(), prefix: String::new() }
        );
        assert_eq!(
            Location::parse("s3://my.bucket/a/b/").unwrap(),
            Location::S3 { bucket: "my.bucket".into(), prefix: "a/b".into() }
        );
        for bad in [
            "",
            "/srv",
            "file://srv",
            "http://x",
            "s3://",
            "s3://ab",
            "s3://-ab",
            "s3://a_b",
            "s3://b/../x",
            "s3://b/a b",
        ] {
            assert!(Location::parse(bad).is_err(), "{bad}");
        }
    }
}
