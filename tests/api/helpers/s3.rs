//! An S3 emulator for the object-storage tests: moto in server mode
//! (`python3 -m moto.server`), started once per test binary on a free loopback port and killed
//! with the test process (it gets SIGKILL when the thread that started it, which waits on it
//! for as long as the process lives, goes). Each test makes its own bucket.
//!
//! Without moto the tests fail loudly, naming the install command; `EXPORTS_TEST_S3=off`
//! turns them off (each says so on stderr).

use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use exports_api::storage::{Location, S3Settings, StorageConfig};

/// The credentials every test uses: moto accepts any.
pub const S3_KEY_ID: &str = "test-access-key";
pub const S3_SECRET: &str = "test-secret-key";

pub struct Moto {
    /// `http://127.0.0.1:PORT`
    pub endpoint: String,
    client: reqwest::Client,
}

static MOTO: OnceLock<Result<String, String>> = OnceLock::new();

/// The emulator, started on first use; `None` (said on stderr) when `EXPORTS_TEST_S3=off`.
/// Panics when moto is missing or does not start.
pub fn moto(test: &str) -> Option<Moto> {
    if std::env::var("EXPORTS_TEST_S3").is_ok_and(|v| v == "off") {
        eprintln!("SKIPPED {test}: S3 tests are off (EXPORTS_TEST_S3=off)");
        return None;
    }
    let endpoint = MOTO.get_or_init(start).as_ref().unwrap_or_else(|e| panic!("{e}")).clone();
    Some(Moto { endpoint, client: reqwest::Client::new() })
}

fn start() -> Result<String, String> {
    let found = Command::new("python3").args(["-c", "import moto.server"]).stderr(Stdio::null()).status();
    if !found.is_ok_and(|s| s.success()) {
        return Err("moto is not installed, so the S3 tests cannot run: `pip install 'moto[server]'` \
                    (or set EXPORTS_TEST_S3=off to skip them)"
            .into());
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("moto".into())
        .spawn(move || {
            let mut cmd = Command::new("python3");
            cmd.args(["-m", "moto.server", "-H", "127.0.0.1", "-p", &port.to_string()])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            // SAFETY: prctl is async-signal-safe; the child gets SIGKILL when this thread ends
            unsafe {
                use std::os::unix::process::CommandExt;
                cmd.pre_exec(|| {
                    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                    Ok(())
                });
            }
            match cmd.spawn() {
                Ok(mut child) => {
                    let _ = tx.send(Ok(()));
                    let _ = child.wait();
                }
                Err(e) => {
                    let _ = tx.send(Err(format!("cannot start moto: {e}")));
                }
            }
        })
        .unwrap();
    rx.recv().unwrap()?;
    // it answers once it has loaded: poll its port
    let deadline = Instant::now() + Duration::from_secs(60);
    let endpoint = format!("http://127.0.0.1:{port}");
    loop {
        let up = std::net::TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(200))
            .and_then(|mut s| {
                use std::io::{Read, Write};
                s.set_read_timeout(Some(Duration::from_secs(5)))?;
                s.write_all(b"GET / HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")?;
                let mut first = [0u8; 12];
                s.read_exact(&mut first)?;
                Ok(first.starts_with(b"HTTP/1."))
            });
        if up.is_ok_and(|ok| ok) {
            return Ok(endpoint);
        }
        if Instant::now() > deadline {
            return Err(format!("moto did not answer on {endpoint} within 60 s"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

impl Moto {
    /// A new empty bucket.
    pub async fn bucket(&self) -> String {
        let name = format!("t-{}", uuid::Uuid::new_v4().simple());
        let r = self.client.put(format!("{}/{name}", self.endpoint)).send().await.unwrap();
        assert_eq!(r.status(), 200, "create bucket {name}: {}", r.text().await.unwrap());
        name
    }

    /// The settings of an app that keeps its files in `s3://bucket/prefix` here.
    pub fn settings(&self) -> S3Settings {
        let mut s = S3Settings::new(S3_KEY_ID.into(), S3_SECRET.into());
        s.endpoint = Some(self.endpoint.clone());
        s.part_size = exports_api::storage::MIN_PART_SIZE;
        s
    }

    pub fn storage(&self, bucket: &str, prefix: &str, proxy: bool) -> StorageConfig {
        StorageConfig {
            location: Some(Location::S3 { bucket: bucket.into(), prefix: prefix.into() }),
            s3: Some(self.settings()),
            proxy,
        }
    }

    /// `(key, size)` of every object in the bucket.
    pub async fn objects(&self, bucket: &str) -> Vec<(String, u64)> {
        let xml = self.get_text(&format!("{}/{bucket}?list-type=2", self.endpoint)).await;
        elements(&xml, "Contents")
            .iter()
            .map(|c| (element(c, "Key").to_string(), element(c, "Size").parse().unwrap()))
            .collect()
    }

    /// The keys of the multipart uploads still open in the bucket.
    pub async fn open_uploads(&self, bucket: &str) -> Vec<String> {
        let xml = self.get_text(&format!("{}/{bucket}?uploads", self.endpoint)).await;
        elements(&xml, "Upload").iter().map(|u| element(u, "Key").to_string()).collect()
    }

    /// Puts an object (moto needs no signature).
    pub async fn put(&self, bucket: &str, key: &str, body: &'static [u8]) {
        let r = self.client.put(format!("{}/{bucket}/{key}", self.endpoint)).body(body).send().await.unwrap();
        assert_eq!(r.status(), 200, "PUT {bucket}/{key}");
    }

    /// An object's bytes (moto needs no signature), `None` when it is not there.
    pub async fn object(&self, bucket: &str, key: &str) -> Option<Vec<u8>> {
        let r = self.client.get(format!("{}/{bucket}/{key}", self.endpoint)).send().await.unwrap();
        match r.status().as_u16() {
            200 => Some(r.bytes().await.unwrap().to_vec()),
            404 => None,
            s => panic!("GET {bucket}/{key}: {s}"),
        }
    }

    async fn get_text(&self, url: &str) -> String {
        let r = self.client.get(url).send().await.unwrap();
        assert_eq!(r.status(), 200, "GET {url}");
        r.text().await.unwrap()
    }
}

/// The inner texts of every `<name>…</name>` in `xml` (flat, as S3's lists are).
fn elements<'a>(xml: &'a str, name: &str) -> Vec<&'a str> {
    let (open, close) = (format!("<{name}>"), format!("</{name}>"));
    let mut out = Vec::new();
    let mut rest = xml;
    while let Some(at) = rest.find(&open) {
        let after = &rest[at + open.len()..];
        let end = after.find(&close).expect("closed element");
        out.push(&after[..end]);
        rest = &after[end + close.len()..];
    }
    out
}

fn element<'a>(xml: &'a str, name: &str) -> &'a str {
    elements(xml, name).first().copied().unwrap_or_else(|| panic!("no <{name}> in {xml}"))
}
