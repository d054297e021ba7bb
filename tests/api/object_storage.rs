//! Issue 11, the file store: exports kept in an S3-compatible bucket (moto, see
//! `helpers::s3`) instead of the data folder, through the real app: the same bytes as on
//! local disk, presigned downloads, proxied downloads with ranges, deletion, retention,
//! cancelled and interrupted exports, bounded memory, and clear startup errors.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

use crate::helpers::*;

const RANGE: &str = r#""start_date": "2024-01-01", "end_date": "2024-03-31""#;
const NAME: &str = "invoices_2024-01-01_2024-03-31";

fn export_body(schema_id: &str, extra: Value) -> Value {
    let mut body: Value = serde_json::from_str(&format!(r#"{{"schema_id": "{schema_id}", {RANGE}}}"#)).unwrap();
    body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    body
}

/// A schema with `n` invoices (seed `seed`) in `app`; returns its id.
async fn with_invoices(app: &TestApp, n: usize, seed: u64) -> String {
    let (schema, nd) = invoices(n, seed);
    let sid = app.create_schema(&schema).await["id"].as_str().unwrap().to_string();
    assert_eq!(app.upload_ndjson(&sid, nd).await, n as u64);
    sid
}

async fn completed(app: &TestApp, body: &Value) -> (String, Value) {
    let e = app.export_and_wait(body).await;
    assert_eq!(e["status"], "COMPLETED", "{e}");
    (e["id"].as_str().unwrap().to_string(), e)
}

/// `exports_storage_bytes` from `/metrics`.
async fn storage_gauge(app: &TestApp) -> u64 {
    let text = app.client.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    let line = text.lines().find(|l| l.starts_with("exports_storage_bytes ")).expect("exports_storage_bytes");
    line.split_whitespace().nth(1).unwrap().parse::<f64>().unwrap() as u64
}

/// The value of query parameter `name` in `url`, still percent-encoded.
fn query_param<'a>(url: &'a str, name: &str) -> Option<&'a str> {
    url.split_once('?')?.1.split('&').find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
}

fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

/// The three kinds of file: CSV, gzipped CSV, a workbook; and the extension of their name in
/// the store (`.csv` whatever the format, as in the data folder).
fn kinds() -> [(Value, &'static str, &'static str); 3] {
    [
        (json!({}), "csv", "csv"),
        (json!({"options": {"gzip": true}}), "csv.gz", "csv.gz"),
        (json!({"format": "xlsx"}), "csv", "xlsx"),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exports_land_in_the_bucket_with_the_bytes_of_the_local_store_and_download_by_presigned_url() {
    let Some(moto) = moto("exports_land_in_the_bucket") else { return };
    let bucket = moto.bucket().await;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();

    // the exports on local disk first, then the same ones from the same data into the bucket
    let local = spawn_app_with(dir.clone(), |c| c.storage = Default::default()).await;
    let sid = with_invoices(&local, 400, 11).await;
    let mut on_disk = Vec::new();
    for (options, ext, _) in kinds() {
        let (id, _) = completed(&local, &export_body(&sid, options)).await;
        on_disk.push(std::fs::read(dir.join(format!("exports/{id}.{ext}"))).unwrap());
    }
    local.stop().await;
    let s3 = spawn_app_with(dir.clone(), |c| c.storage = moto.storage(&bucket, "team/exports", false)).await;

    for ((options, ext, download_ext), on_disk) in kinds().into_iter().zip(on_disk) {
        let (id, e) = completed(&s3, &export_body(&sid, options.clone())).await;
        let key = format!("team/exports/{id}.{ext}");
        let object = moto.object(&bucket, &key).await.unwrap_or_else(|| panic!("no object {key}"));
        assert_eq!(e["file_size"].as_u64(), Some(object.len() as u64), "{options}: file_size is the object's");
        if download_ext == "xlsx" {
            // a workbook records when it was made (its compressed size may then differ by a
            // byte): every other part the same
            assert_eq!(workbook_parts(&object), workbook_parts(&on_disk), "{options}");
        } else {
            assert!(object == on_disk, "{options}: the object holds exactly the bytes the local store wrote");
        }

        // the download URL is a presigned S3 URL, the file's name and type signed in
        let r = s3.get(&format!("/v1/exports/{id}/download")).send().await.unwrap();
        assert_eq!(r.status(), 200);
        let v: Value = r.json().await.unwrap();
        let url = v["url"].as_str().unwrap();
        assert!(url.starts_with(&format!("{}/{bucket}/{key}?", moto.endpoint)), "{url}");
        assert_eq!(
            query_param(url, "response-content-disposition"),
            Some(format!("attachment%3B%20filename%3D%22{NAME}.{download_ext}%22").as_str()),
            "{url}"
        );
        assert!(query_param(url, "response-content-type").is_some(), "{url}");
        assert!(query_param(url, "X-Amz-Signature").is_some_and(|s| s.len() == 64), "{url}");
        // the same expiry rule as our own links: --url-ttl (1 hour here) from now
        let expires_in: i64 = query_param(url, "X-Amz-Expires").unwrap().parse().unwrap();
        assert!((3590..=3600).contains(&expires_in), "{url}");
        let expires_at = assert_time(&v["expiresAt"], "expiresAt").timestamp();
        assert!((expires_at - now() - expires_in).abs() <= 2, "expires_at {expires_at} and X-Amz-Expires {expires_in}");
        let r = s3.client.get(url).send().await.unwrap();
        assert_eq!(r.status(), 200, "GET {url}");
        let got = r.bytes().await.unwrap();
        assert!(got == object, "{options}: the presigned URL serves the object");
    }

    // nothing else in the bucket (no temporary objects), no upload left open, and the data
    // folder's files untouched
    let objects = moto.objects(&bucket).await;
    assert_eq!(objects.len(), 3, "{objects:?}");
    assert!(moto.open_uploads(&bucket).await.is_empty());
    assert_eq!(walk(&dir.join("exports")).len(), 3, "the local exports only");
    // the storage gauge counts the objects
    assert_eq!(storage_gauge(&s3).await, objects.iter().map(|(_, n)| n).sum::<u64>());
    s3.stop().await;
}

/// base64url (no padding) of HMAC-SHA256(key, "GET\n" + path + "\n" + expires): our own link.
fn sign(path: &str, expires: i64) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(SIGNING_KEY).unwrap();
    mac.update(format!("GET\n{path}\n{expires}").as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxied_downloads_stream_from_the_bucket_with_range_head_etag_and_our_expiry() {
    let Some(moto) = moto("proxied_downloads") else { return };
    let bucket = moto.bucket().await;
    let tmp = tempfile::tempdir().unwrap();
    let app = spawn_app_with(tmp.path().to_path_buf(), |c| c.storage = moto.storage(&bucket, "", true)).await;
    let sid = with_invoices(&app, 300, 3).await;
    let (id, _) = completed(&app, &export_body(&sid, json!({}))).await;
    let object = moto.object(&bucket, &format!("{id}.csv")).await.expect("the object");
    let etag = moto_etag(&moto, &bucket, &format!("{id}.csv")).await;

    let url = app.download_url(&id).await;
    assert!(url.starts_with(&format!("{}/files/teams/", app.base_url)), "our own signed route: {url}");
    let r = app.client.get(&url).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-disposition"], format!("attachment; filename=\"{NAME}.csv\"").as_str());
    assert_eq!(r.headers()["content-type"], "text/csv; charset=utf-8");
    assert_eq!(r.headers()["etag"], etag.as_str(), "the object's ETag");
    assert!(r.bytes().await.unwrap() == object);

    let r = app.client.get(&url).header("range", "bytes=100-299").send().await.unwrap();
    assert_eq!(r.status(), 206);
    assert_eq!(r.headers()["content-range"], format!("bytes 100-299/{}", object.len()).as_str());
    assert!(r.bytes().await.unwrap() == object[100..300]);
    let r = app.client.get(&url).header("range", "bytes=-10").send().await.unwrap();
    assert_eq!(r.status(), 206);
    assert!(r.bytes().await.unwrap() == object[object.len() - 10..]);
    let r = app.client.get(&url).header("range", format!("bytes={}-", object.len())).send().await.unwrap();
    assert_error(r, 416).await;

    let r = app.client.head(&url).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-length"], object.len().to_string().as_str());
    assert_eq!(r.headers()["etag"], etag.as_str());
    let r = app.client.get(&url).header("if-none-match", &etag).send().await.unwrap();
    assert_eq!(r.status(), 304);

    // the expiry is checked by this server, whatever the store: a well-signed link past it
    let path = url.strip_prefix(&app.base_url).unwrap().split('?').next().unwrap().to_string();
    let expired = now() - 5;
    let r = app.client.get(app.url(&format!("{path}?expires={expired}&token={}", sign(&path, expired)))).send().await;
    let msg = assert_error(r.unwrap(), 403).await;
    assert!(msg.contains("expired"), "{msg}");
    app.stop().await;
}

/// The ETag moto gives the object.
async fn moto_etag(moto: &Moto, bucket: &str, key: &str) -> String {
    let r = reqwest::Client::new().head(format!("{}/{bucket}/{key}", moto.endpoint)).send().await.unwrap();
    r.headers()["etag"].to_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletion_and_retention_remove_the_objects() {
    let Some(moto) = moto("deletion_and_retention") else { return };
    let bucket = moto.bucket().await;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    let storage = moto.storage(&bucket, "p", false);
    let app = spawn_app_with(dir.clone(), |c| c.storage = storage.clone()).await;
    let sid = with_invoices(&app, 200, 5).await;
    let (deleted, _) = completed(&app, &export_body(&sid, json!({}))).await;
    let (kept, e) = completed(&app, &export_body(&sid, json!({"options": {"gzip": true}}))).await;
    let kept_size = e["file_size"].as_u64().unwrap();
    assert_eq!(moto.objects(&bucket).await.len(), 2);

    let r = app.delete(&format!("/v1/exports/{deleted}")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(moto.objects(&bucket).await, vec![(format!("p/{kept}.csv.gz"), kept_size)], "the deleted one's object");
    assert_eq!(storage_gauge(&app).await, kept_size);
    app.stop().await;

    // an object with an export's name but no export (a crash between the upload and its
    // record) goes at the next start; other things under the prefix stay
    let orphan = format!("p/{}.csv", uuid::Uuid::now_v7());
    moto.put(&bucket, &orphan, b"orphan").await;
    moto.put(&bucket, "p/notes.txt", b"not an export").await;

    // retention: a restart with a short one sweeps the export and its object
    let retention = Duration::from_millis(300);
    let app = spawn_app_with(dir, |c| {
        c.storage = storage.clone();
        c.retention = Some(retention);
        c.tuning.sweep_every = Duration::from_millis(100);
    })
    .await;
    let (app_ref, moto_ref, bucket_ref, kept_ref) = (&app, &moto, &bucket, &kept);
    poll_until(within(20), "retention to delete the export and its object", move || async move {
        let gone = app_ref.get(&format!("/v1/exports/{kept_ref}")).send().await.unwrap().status() == 404;
        let left: Vec<String> = moto_ref.objects(bucket_ref).await.into_iter().map(|(k, _)| k).collect();
        // the gauge is counted down just after the object goes
        (gone && left == ["p/notes.txt"] && storage_gauge(app_ref).await == 0).then_some(())
    })
    .await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_or_interrupted_export_leaves_no_object_and_no_open_upload() {
    let Some(moto) = moto("a_cancelled_or_interrupted_export") else { return };
    let bucket = moto.bucket().await;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    let slow = |c: &mut exports_api::config::Config| {
        c.storage = moto.storage(&bucket, "", false);
        c.workers = 1;
        // each batch of rows waits: the export runs for seconds, its upload open
        c.tuning.export_batch_pause = Some(Duration::from_millis(100));
    };
    let app = spawn_app_with(dir.clone(), slow).await;
    let sid = with_invoices(&app, 30_000, 9).await;

    // deleted while it runs
    let (status, e) = send(app.post_json("/v1/exports", &export_body(&sid, json!({})))).await;
    assert_eq!(status, 201, "{e}");
    let id = e["id"].as_str().unwrap().to_string();
    let (moto_ref, bucket_ref) = (&moto, &bucket);
    poll_until(within(30), "the export's multipart upload to open", move || async move {
        (!moto_ref.open_uploads(bucket_ref).await.is_empty()).then_some(())
    })
    .await;
    let r = app.delete(&format!("/v1/exports/{id}")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    poll_until(within(10), "the cancelled export's upload to be aborted", move || async move {
        moto_ref.open_uploads(bucket_ref).await.is_empty().then_some(())
    })
    .await;
    assert!(moto.objects(&bucket).await.is_empty(), "a cancelled export leaves no object");

    // interrupted by a shutdown: the upload is aborted before the server has stopped
    let (status, e) = send(app.post_json("/v1/exports", &export_body(&sid, json!({})))).await;
    assert_eq!(status, 201, "{e}");
    poll_until(within(30), "the second export's multipart upload to open", move || async move {
        (!moto_ref.open_uploads(bucket_ref).await.is_empty()).then_some(())
    })
    .await;
    app.stop().await;
    assert!(moto.open_uploads(&bucket).await.is_empty(), "no upload left open by a shutdown");
    assert!(moto.objects(&bucket).await.is_empty(), "no object from an interrupted export");

    // the next start runs it again, to the end
    let app = spawn_app_with(dir, |c| c.storage = moto.storage(&bucket, "", false)).await;
    let done = app.wait_export(e["id"].as_str().unwrap()).await;
    assert_eq!(done["status"], "COMPLETED", "{done}");
    let objects = moto.objects(&bucket).await;
    assert_eq!(objects.len(), 1, "{objects:?}");
    assert_eq!(Some(objects[0].1), done["file_size"].as_u64());
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_export_to_the_bucket_holds_a_few_parts_of_memory_whatever_its_size() {
    const MB: u64 = 1 << 20;
    let Some(moto) = moto("an_export_to_the_bucket_holds_a_few_parts") else { return };
    let bucket = moto.bucket().await;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();

    // 230 MB of results, loaded by another server (its memory is not measured)
    let loader = spawn_app_with(dir.clone(), |_| {}).await;
    let sid = loader
        .create_schema(&json!({"name": "Big", "schema": {"fields": [{"key": "n", "type": "number"}, {"key": "pad", "type": "string"}]}}))
        .await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (rows, pad) = (60_000usize, 4000usize);
    let line = |i: usize| {
        format!(
            "{{\"createdAt\":\"2024-01-01T00:00:00.000Z\",\"extraction\":{{\"n\":{i},\"pad\":\"{}\"}}}}\n",
            char::from(b'a' + (i % 26) as u8).to_string().repeat(pad)
        )
    };
    let nd: String = (0..rows).map(line).collect();
    assert_eq!(loader.upload_ndjson(&sid, nd).await, rows as u64);
    loader.stop().await;

    // the same export, by a server that keeps files on local disk, then by one that keeps them
    // in the bucket: what the bucket adds is its parts in flight, not the file
    let body = json!({"schema_id": sid, "start_date": "2024-01-01", "end_date": "2024-01-01"});
    let (mut grown, mut size) = (Vec::new(), 0);
    for s3 in [false, true] {
        let mut cmd = ServeCmd::new(&dir);
        if s3 {
            cmd = cmd
                .args(&["--storage-url", &format!("s3://{bucket}/big"), "--s3-endpoint", &moto.endpoint])
                .args(&["--storage-part-size", "5MB"])
                .env("AWS_ACCESS_KEY_ID", S3_KEY_ID)
                .env("AWS_SECRET_ACCESS_KEY", S3_SECRET);
        }
        let server = cmd.start().await;
        let app = TestApp::remote(&server.base_url(), "test-key-default");
        let idle = server.peak_rss();
        let (id, e) = completed(&app, &body).await;
        size = e["file_size"].as_u64().unwrap();
        assert!(size > 225 * MB, "{size}");
        grown.push(server.peak_rss().saturating_sub(idle));
        if s3 {
            let line = format!("bucket s3://{bucket}/big at {}", moto.endpoint);
            assert!(server.stderr().contains(&line), "the start-up log names the bucket: {}", server.stderr());
            assert_eq!(moto.objects(&bucket).await, vec![(format!("big/{id}.csv"), size)]);
        }
        eprintln!(
            "server peak RSS grew by {} MB for a {} MB export to {}",
            grown.last().unwrap() / MB,
            size / MB,
            if s3 { "S3 (5 MB parts)" } else { "local disk" }
        );
        server.stop().await;
    }
    // the engine's own memory (30 to 70 MB here, on disk too: its page cache, its batches;
    // noisy, so not compared) and the upload's parts (5 MB, 2 in flight and 1 filling; their
    // exact bound is a unit test of `storage::s3`): far from the file's size either way
    let (local, s3) = (grown[0], grown[1]);
    assert!(
        s3 < size / 2,
        "the export to S3 grew the server's memory by {} MB (on disk: {} MB) for a {} MB file",
        s3 / MB,
        local / MB,
        size / MB
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_storage_settings_are_clear_startup_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let refused = |args: &[&str], env: &[(&str, &str)]| {
        let mut cmd = bin();
        cmd.arg("serve").arg("--data-dir").arg(tmp.path()).args(["--listen", "127.0.0.1:0"]).args(args);
        cmd.env_remove("AWS_ACCESS_KEY_ID").env_remove("AWS_SECRET_ACCESS_KEY");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap();
        assert!(!out.status.success(), "{args:?} started");
        text(&out.stderr)
    };
    for (url, needle) in [
        ("ftp://x/y", "file:///absolute/folder or s3://bucket/prefix"),
        ("file://relative/dir", "absolute path"),
        ("s3://Bad_Bucket/x", "is not a bucket name"),
        ("s3://bucket/a b", "key prefix"),
    ] {
        let err = refused(&["--storage-url", url], &[]);
        assert!(err.contains("--storage-url / EXPORTS_STORAGE_URL") && err.contains(needle), "{url}: {err}");
    }
    let err = refused(&["--storage-url", "s3://bucket/x"], &[]);
    assert!(err.contains("AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"), "{err}");
    let err = refused(&["--storage-proxy", "true"], &[]);
    assert!(err.contains("--storage-proxy") && err.contains("s3://"), "{err}");
    let err = refused(&["--s3-endpoint", "minio:9000"], &[]);
    assert!(err.contains("--s3-endpoint / EXPORTS_S3_ENDPOINT"), "{err}");

    let Some(moto) = moto("bad_storage_settings (a bucket that is not there)") else { return };
    let creds = [("AWS_ACCESS_KEY_ID", S3_KEY_ID), ("AWS_SECRET_ACCESS_KEY", S3_SECRET)];
    let err = refused(&["--storage-url", "s3://no-such-bucket/x", "--s3-endpoint", &moto.endpoint], &creds);
    assert!(err.contains("cannot list s3://no-such-bucket/x"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_storage_url_keeps_exports_in_that_folder_and_leaves_other_files_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, folder) = (tmp.path().join("data"), tmp.path().join("elsewhere"));
    std::fs::create_dir(&folder).unwrap();
    std::fs::write(folder.join("keep.txt"), b"not an export").unwrap();
    let stray = format!("{}.csv", uuid::Uuid::now_v7());
    std::fs::write(folder.join(&stray), b"an export's name, no export").unwrap();
    let url = format!("file://{}", folder.display());
    let location = exports_api::storage::Location::parse(&url).unwrap();
    let storage = exports_api::storage::StorageConfig { location: Some(location), s3: None, proxy: false };
    let app = spawn_app_with(dir.clone(), |c| c.storage = storage.clone()).await;
    let sid = with_invoices(&app, 100, 2).await;
    let (id, e) = completed(&app, &export_body(&sid, json!({}))).await;
    let file = std::fs::read(folder.join(format!("{id}.csv"))).unwrap();
    assert_eq!(e["file_size"].as_u64(), Some(file.len() as u64));
    let r = app.client.get(app.download_url(&id).await).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.bytes().await.unwrap() == file, "our signed route serves it");
    assert!(walk(&dir.join("exports")).is_empty(), "nothing in the data folder's exports/");
    let mut names: Vec<String> =
        std::fs::read_dir(&folder).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().to_string()).collect();
    names.sort();
    assert_eq!(names, vec![format!("{id}.csv"), "keep.txt".to_string()], "the stray export name went at start");
    app.stop().await;
}

/// The parts of a workbook (an xlsx: a zip) by name, decompressed, but `docProps/core.xml`,
/// which records when it was made.
fn workbook_parts(xlsx: &[u8]) -> Vec<(String, Vec<u8>)> {
    use std::io::Read;
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(xlsx)).unwrap();
    let (mut parts, mut made_at) = (Vec::new(), false);
    for i in 0..zip.len() {
        let mut part = zip.by_index(i).unwrap();
        let name = part.name().unwrap().to_string();
        if name == "docProps/core.xml" {
            made_at = true;
            continue;
        }
        let mut bytes = Vec::new();
        part.read_to_end(&mut bytes).unwrap();
        parts.push((name, bytes));
    }
    assert!(made_at && parts.len() > 5, "a workbook's parts: {:?}", parts.iter().map(|p| &p.0).collect::<Vec<_>>());
    parts
}
