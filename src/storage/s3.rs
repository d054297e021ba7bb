//! Export files as objects in an S3-compatible bucket (AWS S3, MinIO, Garage, Ceph RGW),
//! through the `object_store` crate: `<prefix>/<id>.csv[.gz]`.
//!
//! The store runs its own small async runtime (two threads, `s3-io`): the export workers are
//! plain threads that write through a blocking `Write`, and the download route (on the
//! server's runtime) hands its requests over to it, so that neither runtime depends on the
//! other being driven.

use std::collections::VecDeque;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream::BoxStream;
use futures_util::StreamExt;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path as ObjectPath;
use object_store::{
    BackoffConfig, ClientOptions, GetOptions, GetRange, MultipartUpload, ObjectStore, ObjectStoreExt, PutPayloadMut,
    RetryConfig,
};
use tokio::runtime::{Handle, Runtime};
use tokio::task::JoinHandle;

use super::presign::{presigned_get, Presign};
use super::{Finished, Opened, Publish, S3Settings, Source, StorageError};
use crate::domain::naming::extension;

pub struct S3Store {
    store: Arc<AmazonS3>,
    /// Dropped without waiting in `Drop` (a runtime may not be dropped in an async context).
    runtime: Option<Runtime>,
    handle: Handle,
    bucket: String,
    prefix: String,
    settings: S3Settings,
    proxy: bool,
}

impl S3Store {
    /// Connects and lists the prefix once: a wrong endpoint, bucket or key fails here, at start.
    pub async fn open(bucket: &str, prefix: &str, settings: S3Settings, proxy: bool) -> Result<S3Store, StorageError> {
        let mut builder = AmazonS3Builder::new()
            .with_bucket_name(bucket)
            .with_region(&settings.region)
            .with_access_key_id(&settings.access_key_id)
            .with_secret_access_key(&settings.secret_access_key)
            .with_client_options(
                ClientOptions::new()
                    .with_connect_timeout(Duration::from_secs(5))
                    .with_timeout(Duration::from_secs(120)),
            )
            // a few quick retries: a store that is down fails the start (or the export) within a minute
            .with_retry(RetryConfig {
                backoff: BackoffConfig::default(),
                max_retries: 4,
                retry_timeout: Duration::from_secs(60),
            });
        if let Some(token) = &settings.session_token {
            builder = builder.with_token(token);
        }
        if let Some(endpoint) = &settings.endpoint {
            builder = builder.with_endpoint(endpoint).with_allow_http(endpoint.starts_with("http://"));
        }
        let store = Arc::new(builder.build().map_err(|e| StorageError::Config(format!("object storage: {e}")))?);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("s3-io")
            .enable_all()
            .build()
            .map_err(StorageError::Io)?;
        let handle = runtime.handle().clone();
        let s = S3Store {
            store,
            runtime: Some(runtime),
            handle,
            bucket: bucket.to_string(),
            prefix: prefix.to_string(),
            settings,
            proxy,
        };
        let (store, prefix_path) = (s.store.clone(), s.prefix_path());
        let listed = s.handle.spawn(async move { store.list_with_delimiter(prefix_path.as_ref()).await });
        match listed.await {
            Ok(Ok(_)) => Ok(s),
            Ok(Err(e)) => Err(StorageError::Config(format!(
                "cannot list s3://{bucket}/{prefix} at {}: {e}; check EXPORTS_S3_ENDPOINT, EXPORTS_S3_REGION, the \
                 bucket's name and AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY",
                s.endpoint_text()
            ))),
            Err(e) => Err(StorageError::Io(io::Error::other(e))),
        }
    }

    fn endpoint_text(&self) -> String {
        self.settings.endpoint.clone().unwrap_or_else(|| format!("AWS S3 ({})", self.settings.region))
    }

    pub fn describe(&self) -> String {
        let prefix = if self.prefix.is_empty() { String::new() } else { format!("/{}", self.prefix) };
        let downloads =
            if self.proxy { "downloads through this server (--storage-proxy)" } else { "downloads by presigned URL" };
        format!("bucket s3://{}{prefix} at {}; {downloads}", self.bucket, self.endpoint_text())
    }

    pub fn proxied(&self) -> bool {
        self.proxy
    }

    fn prefix_path(&self) -> Option<ObjectPath> {
        (!self.prefix.is_empty()).then(|| ObjectPath::from(self.prefix.as_str()))
    }

    fn key(&self, id: &str, gzip: bool) -> String {
        let name = format!("{id}.{}", extension(gzip));
        if self.prefix.is_empty() {
            name
        } else {
            format!("{}/{name}", self.prefix)
        }
    }

    fn path(&self, id: &str, gzip: bool) -> ObjectPath {
        ObjectPath::from(self.key(id, gzip))
    }

    /// Runs `fut` on the store's runtime and waits for it, from any thread: a plain thread
    /// blocks on it; a thread inside an async runtime hands the wait to a scoped thread (it
    /// may not block in place).
    fn block_on<F>(&self, fut: F) -> F::Output
    where
        F: std::future::Future + Send,
        F::Output: Send,
    {
        if Handle::try_current().is_err() {
            self.handle.block_on(fut)
        } else {
            std::thread::scope(|s| s.spawn(|| self.handle.block_on(fut)).join().expect("storage call panicked"))
        }
    }

    pub fn create(&self, id: &str, gzip: bool) -> Result<S3Upload, StorageError> {
        let (store, path) = (self.store.clone(), self.path(id, gzip));
        let upload = self.block_on(async move { store.put_multipart(&path).await })?;
        Ok(S3Upload::new(self.handle.clone(), upload, self.settings.part_size, self.settings.parts_in_flight, id, gzip))
    }

    /// Removes an object; `Ok(false)` when there was none (S3's DELETE does not say, so a
    /// HEAD asks first: deletes are rare, and the storage gauge must count only real ones).
    pub fn remove(&self, id: &str, gzip: bool) -> Result<bool, StorageError> {
        let (store, path) = (self.store.clone(), self.path(id, gzip));
        self.block_on(async move {
            match store.head(&path).await {
                Err(object_store::Error::NotFound { .. }) => return Ok(false),
                Err(e) => return Err(e.into()),
                Ok(_) => {}
            }
            store.delete(&path).await?;
            Ok(true)
        })
    }

    /// Deletes the objects directly under the prefix that have an export's name but whose
    /// export is gone; returns the bytes of those kept. Open multipart uploads are left to the bucket's lifecycle rule.
    pub fn tidy(&self, owned: &dyn Fn(&str) -> bool) -> Result<u64, StorageError> {
        let (store, prefix) = (self.store.clone(), self.prefix_path());
        let listed = self.block_on(async move { store.list_with_delimiter(prefix.as_ref()).await })?;
        let mut kept = 0;
        let mut stray = Vec::new();
        for object in listed.objects {
            let name = object.location.filename().unwrap_or_default();
            if !crate::data_dir::is_export_file_name(name) {
                // not an export's: the prefix may hold other things
                continue;
            }
            if crate::data_dir::export_id_of(name).is_some_and(owned) {
                kept += object.size;
            } else {
                stray.push(object.location);
            }
        }
        for path in stray {
            let store = self.store.clone();
            if let Err(e) = self.block_on(async move { store.delete(&path).await }) {
                tracing::warn!(error = %e, "could not remove an object no export owns");
            }
        }
        Ok(kept)
    }

    /// A presigned GET URL of export `id`'s object, valid until `expires` (Unix seconds).
    pub fn presigned_get(&self, id: &str, gzip: bool, disposition: &str, content_type: &str, expires: i64) -> String {
        let now = chrono::Utc::now();
        let expires_in = (expires - now.timestamp()).clamp(1, 604_800) as u64;
        // path-style addressing (as `object_store` uses): bucket names with dots work over TLS
        let origin = match &self.settings.endpoint {
            Some(e) => e.trim_end_matches('/').to_string(),
            None => format!("https://s3.{}.amazonaws.com", self.settings.region),
        };
        let path = format!("/{}/{}", self.bucket, self.key(id, gzip));
        presigned_get(&Presign {
            origin: &origin,
            path: &path,
            region: &self.settings.region,
            access_key_id: &self.settings.access_key_id,
            secret_access_key: &self.settings.secret_access_key,
            session_token: self.settings.session_token.as_deref(),
            params: &[("response-content-disposition", disposition), ("response-content-type", content_type)],
            now,
            expires_in,
        })
    }

    pub async fn open_read(&self, id: &str, gzip: bool) -> Result<Opened, StorageError> {
        let (store, path) = (self.store.clone(), self.path(id, gzip));
        let meta = self
            .handle
            .spawn(async move { store.head(&path).await })
            .await
            .map_err(|e| StorageError::Io(io::Error::other(e)))??;
        let etag = meta.e_tag.map(|t| if t.starts_with('"') || t.starts_with("W/") { t } else { format!("\"{t}\"") });
        let reader = ObjectReader {
            store: self.store.clone(),
            handle: self.handle.clone(),
            path: meta.location,
            etag: etag.clone(),
        };
        Ok(Opened { size: meta.size, etag, source: Source::Object(reader) })
    }
}

impl Drop for S3Store {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

/// Reads an object for our download route.
pub struct ObjectReader {
    store: Arc<AmazonS3>,
    handle: Handle,
    path: ObjectPath,
    etag: Option<String>,
}

/// Pieces of an object read ahead of the one being sent.
const QUEUED_PIECES: usize = 4;

impl ObjectReader {
    /// `len` bytes from `start` (one ranged GET, only if the object is still the one whose
    /// ETag was sent), read on the store's runtime; the read stops when the stream is dropped.
    pub fn stream(self, start: u64, len: u64) -> BoxStream<'static, io::Result<Bytes>> {
        let (tx, rx) = tokio::sync::mpsc::channel::<io::Result<Bytes>>(QUEUED_PIECES);
        let ObjectReader { store, handle, path, etag } = self;
        handle.spawn(async move {
            let options = GetOptions {
                range: Some(GetRange::Bounded(start..start + len)),
                if_match: etag,
                ..GetOptions::default()
            };
            let mut body = match store.get_opts(&path, options).await {
                Ok(r) => r.into_stream(),
                Err(e) => {
                    let _ = tx.send(Err(io::Error::other(e))).await;
                    return;
                }
            };
            while let Some(piece) = body.next().await {
                let failed = piece.is_err();
                if tx.send(piece.map_err(io::Error::other)).await.is_err() || failed {
                    return;
                }
            }
        });
        futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|piece| (piece, rx)) }).boxed()
    }
}

/// The blocks a part is made of. A part goes to the HTTP client as a stream of these, which
/// it may copy into its write buffer one at a time, rather than as one block it may copy
/// whole (measured with 5 MB parts, 2 in flight: a 116 MB export's peak memory grew by
/// 49-54 MB with blocks, 58-76 MB without).
const PART_BLOCK: usize = 256 << 10;

fn new_part() -> PutPayloadMut {
    PutPayloadMut::new().with_block_size(PART_BLOCK)
}

/// An export written to S3 as a multipart upload: parts of `part_size` bytes, at most
/// `parts_in_flight` uploading while the next one fills, so an export holds at most
/// `(parts_in_flight + 1) × part_size` bytes whatever its size. Dropped unfinished (a
/// cancelled or failed export), the upload is aborted: S3 discards its parts.
///
/// Hand-written (on the export's hot path) rather than `object_store::WriteMultipart`: that
/// one leaves the upload open when a part fails during its `finish`, and this one must abort
/// on every failure.
pub struct S3Upload {
    handle: Handle,
    upload: Option<Box<dyn MultipartUpload>>,
    buffer: PutPayloadMut,
    part_size: usize,
    parts_in_flight: usize,
    in_flight: VecDeque<JoinHandle<object_store::Result<()>>>,
    size: u64,
    id: String,
    gzip: bool,
}

impl S3Upload {
    fn new(
        handle: Handle,
        upload: Box<dyn MultipartUpload>,
        part_size: usize,
        parts_in_flight: usize,
        id: &str,
        gzip: bool,
    ) -> S3Upload {
        S3Upload {
            handle,
            upload: Some(upload),
            buffer: new_part(),
            part_size,
            parts_in_flight: parts_in_flight.max(1),
            in_flight: VecDeque::new(),
            size: 0,
            id: id.to_string(),
            gzip,
        }
    }

    fn upload(&mut self) -> &mut Box<dyn MultipartUpload> {
        self.upload.as_mut().expect("an unfinished upload")
    }

    /// Waits for the oldest part in flight.
    fn wait_oldest(&mut self) -> Result<(), StorageError> {
        let Some(part) = self.in_flight.pop_front() else { return Ok(()) };
        match self.handle.block_on(part) {
            Ok(result) => Ok(result?),
            Err(e) => Err(StorageError::Io(io::Error::other(e))),
        }
    }

    /// Sends the buffer as the next part, once fewer than `parts_in_flight` are uploading.
    fn send_part(&mut self) -> Result<(), StorageError> {
        while self.in_flight.len() >= self.parts_in_flight {
            self.wait_oldest()?;
        }
        let part = std::mem::replace(&mut self.buffer, new_part()).freeze();
        let upload = self.upload().put_part(part);
        self.in_flight.push_back(self.handle.spawn(upload));
        Ok(())
    }

    pub fn finish(mut self) -> Result<Finished, StorageError> {
        let completed = (|| {
            if !self.buffer.is_empty() {
                self.send_part()?;
            }
            while !self.in_flight.is_empty() {
                self.wait_oldest()?;
            }
            let handle = self.handle.clone();
            handle.block_on(self.upload().complete())?;
            Ok::<_, StorageError>(())
        })();
        // whatever happened, the upload is no longer open: dropping `self` aborts it on failure
        completed?;
        self.upload = None;
        Ok(Finished { size: self.size, publish: Publish::Object { id: self.id.clone(), gzip: self.gzip } })
    }
}

impl io::Write for S3Upload {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = buf.len().min(self.part_size - self.buffer.content_length());
        self.buffer.extend_from_slice(&buf[..n]);
        self.size += n as u64;
        if self.buffer.content_length() == self.part_size {
            self.send_part()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        // parts go when full; `finish` sends the last one
        Ok(())
    }
}

impl Drop for S3Upload {
    fn drop(&mut self) {
        let Some(mut upload) = self.upload.take() else { return };
        for part in self.in_flight.drain(..) {
            part.abort();
        }
        let abort = async move {
            if let Err(e) = upload.abort().await {
                tracing::warn!(error = %e, "could not abort a multipart upload; the bucket's lifecycle rule will");
            }
        };
        if Handle::try_current().is_err() {
            self.handle.block_on(abort);
        } else {
            self.handle.spawn(abort);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex;

    /// What a fake multipart upload saw.
    #[derive(Debug, Default)]
    struct Seen {
        parts: Mutex<Vec<(usize, Vec<u8>)>>,
        /// Bytes of parts sent and not yet answered, now and at most.
        in_flight: AtomicUsize,
        peak: AtomicUsize,
        completed: AtomicUsize,
        aborted: AtomicUsize,
    }

    /// A multipart upload whose parts take a while to answer; part `fail_at` fails.
    #[derive(Debug)]
    struct Fake {
        seen: Arc<Seen>,
        next: usize,
        fail_at: Option<usize>,
    }

    #[async_trait::async_trait]
    impl MultipartUpload for Fake {
        fn put_part(&mut self, data: object_store::PutPayload) -> object_store::UploadPart {
            let (seen, index) = (self.seen.clone(), self.next);
            self.next += 1;
            let fail = self.fail_at == Some(index);
            let len = data.content_length();
            let now = seen.in_flight.fetch_add(len, Ordering::SeqCst) + len;
            seen.peak.fetch_max(now, Ordering::SeqCst);
            Box::pin(async move {
                // an object store's latency, so that parts pile up if nothing held them back
                tokio::time::sleep(Duration::from_millis(5)).await;
                seen.in_flight.fetch_sub(len, Ordering::SeqCst);
                if fail {
                    return Err(object_store::Error::Generic { store: "fake", source: "part refused".into() });
                }
                let bytes: Vec<u8> = data.iter().flat_map(|b| b.iter().copied()).collect();
                seen.parts.lock().unwrap().push((index, bytes));
                Ok(())
            })
        }

        async fn complete(&mut self) -> object_store::Result<object_store::PutResult> {
            self.seen.completed.fetch_add(1, Ordering::SeqCst);
            Ok(object_store::PutResult { e_tag: None, version: None })
        }

        async fn abort(&mut self) -> object_store::Result<()> {
            self.seen.aborted.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }
    }

    fn runtime() -> Runtime {
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
    }

    const PART: usize = 64 << 10;

    fn upload(rt: &Runtime, fail_at: Option<usize>) -> (S3Upload, Arc<Seen>) {
        let seen = Arc::new(Seen::default());
        let fake = Fake { seen: seen.clone(), next: 0, fail_at };
        (S3Upload::new(rt.handle().clone(), Box::new(fake), PART, 2, "x", false), seen)
    }

    /// 100 parts' worth written in uneven pieces: the parts arrive whole and in order, at
    /// most 2 are in flight at once, and the upload is completed once.
    #[test]
    fn parts_are_bounded_in_flight_and_arrive_whole() {
        let rt = runtime();
        let (mut up, seen) = upload(&rt, None);
        let data: Vec<u8> = (0..100 * PART + 123).map(|i| (i * 31 % 251) as u8).collect();
        for piece in data.chunks(7919) {
            up.write_all(piece).unwrap();
            assert!(up.buffer.content_length() < PART, "a full part is sent at once");
        }
        let finished = up.finish().unwrap();
        assert_eq!(finished.size, data.len() as u64);
        let mut parts = std::mem::take(&mut *seen.parts.lock().unwrap());
        parts.sort_by_key(|(i, _)| *i);
        assert_eq!(parts.len(), 101);
        assert!(parts.iter().enumerate().all(|(n, (i, _))| n == *i));
        assert!(parts.concat_bytes() == data);
        let peak = seen.peak.load(Ordering::SeqCst);
        assert!(peak <= 2 * PART, "{peak} bytes in flight at most");
        assert!(peak > PART, "parts overlap: {peak}");
        assert_eq!(seen.completed.load(Ordering::SeqCst), 1);
        assert_eq!(seen.aborted.load(Ordering::SeqCst), 0);
    }

    trait Concat {
        fn concat_bytes(&self) -> Vec<u8>;
    }

    impl Concat for Vec<(usize, Vec<u8>)> {
        fn concat_bytes(&self) -> Vec<u8> {
            self.iter().flat_map(|(_, b)| b.iter().copied()).collect()
        }
    }

    /// A part that fails fails the export (a write or the finish) and aborts the upload;
    /// nothing is completed.
    #[test]
    fn a_failed_part_aborts_the_upload() {
        let rt = runtime();
        let (mut up, seen) = upload(&rt, Some(3));
        let data = vec![7u8; 10 * PART];
        let written = data.chunks(PART / 2).try_for_each(|piece| up.write_all(piece));
        let result = match written {
            Ok(()) => up.finish().map(|_| ()).map_err(io::Error::from),
            Err(e) => {
                drop(up);
                Err(e)
            }
        };
        assert!(result.unwrap_err().to_string().contains("part refused"));
        assert_eq!(seen.completed.load(Ordering::SeqCst), 0);
        assert_eq!(seen.aborted.load(Ordering::SeqCst), 1);
    }

    /// Dropped unfinished (a cancelled export): aborted, not completed.
    #[test]
    fn an_unfinished_upload_is_aborted_when_dropped() {
        let rt = runtime();
        let (mut up, seen) = upload(&rt, None);
        up.write_all(&vec![1u8; 3 * PART + 5]).unwrap();
        drop(up);
        assert_eq!(seen.aborted.load(Ordering::SeqCst), 1);
        assert_eq!(seen.completed.load(Ordering::SeqCst), 0);
    }
}
