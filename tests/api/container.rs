//! The container image without Docker: the binary run the way the Dockerfile runs it.
//! Configuration from the environment only (`serve` and no flag, `EXPORTS_LISTEN=0.0.0.0:PORT`,
//! `EXPORTS_DATA_DIR`), a data folder that belongs to another user than the one starting the
//! test (uid/gid 10001, as in the image) with the server running as that user, and the
//! `healthcheck` subcommand as the health probe (run as the image's HEALTHCHECK runs it: same
//! user, same environment). Then a real export is made, and SIGTERM stops the server cleanly.
//!
//! As root (CI), the data folder is chowned to 10001:10001 and both the server and the probe
//! run as that user (std's `CommandExt::uid`/`gid`, which also drops supplementary groups,
//! like `setpriv --reuid --regid --clear-groups`). Not root, no other user can be taken: the
//! test then runs everything as the current user and says so on stderr; the rest is the same.
//!
//! The binary is the debug build of `cargo test`, or `CONTAINER_TEST_BIN` (`.ci/container.sh`
//! sets it to the release build, the one the image carries).

use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use serde_json::{json, Value};

use crate::helpers::{self, poll_until, within};

/// The image's user and group.
const IMAGE_UID: u32 = 10001;
const API_KEY: &str = "container-test-key-0123456789";

fn binary() -> PathBuf {
    std::env::var_os("CONTAINER_TEST_BIN")
        .map_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_exports-api")), PathBuf::from)
}

/// Whether the test can act as another user.
fn is_root() -> bool {
    // SAFETY: getuid has no preconditions
    unsafe { libc::getuid() == 0 }
}

/// `exports-api ARGS` with only the image's environment: nothing inherited but PATH.
fn image_command(args: &[&str], env: &[(&str, String)]) -> Command {
    let mut cmd = Command::new(binary());
    cmd.args(args).env_clear().stdin(Stdio::null());
    if let Some(path) = std::env::var_os("PATH") {
        cmd.env("PATH", path);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    if is_root() {
        cmd.uid(IMAGE_UID).gid(IMAGE_UID);
    }
    cmd
}

/// A port nobody listens on now (the image's is fixed, 8080; a test cannot count on it).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The server process; SIGKILLed if the test fails before it is stopped.
struct Server(Option<Child>);

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The owner (uid, gid) of every file and folder under `dir`, `dir` included.
fn owners(dir: &Path) -> Vec<(PathBuf, u32, u32)> {
    let mut out = vec![];
    let meta = std::fs::metadata(dir).unwrap();
    out.push((dir.to_path_buf(), meta.uid(), meta.gid()));
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let p = entry.path();
        if p.is_dir() {
            out.extend(owners(&p));
        } else {
            let m = std::fs::symlink_metadata(&p).unwrap();
            out.push((p, m.uid(), m.gid()));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_runs_as_the_image_runs_it() {
    let root = is_root();
    eprintln!("container test: {}", binary().display());
    if !root {
        eprintln!(
            "container test: not root, so the server runs as this user on a folder it owns; \
             run as root (CI does) to run it as uid {IMAGE_UID} on a folder owned by that user"
        );
    }
    let tmp = tempfile::tempdir().unwrap();
    // the image's /data: an empty folder made beforehand, owned by the image's user
    std::fs::set_permissions(tmp.path(), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let (uid, gid) = if root {
        std::os::unix::fs::chown(&data, Some(IMAGE_UID), Some(IMAGE_UID)).unwrap();
        (IMAGE_UID, IMAGE_UID)
    } else {
        // SAFETY: getuid/getgid have no preconditions
        unsafe { (libc::getuid(), libc::getgid()) }
    };
    let port = free_port();
    let env = [
        ("EXPORTS_LISTEN", format!("0.0.0.0:{port}")),
        ("EXPORTS_DATA_DIR", data.display().to_string()),
        ("EXPORTS_PUBLIC_URL", format!("http://127.0.0.1:{port}")),
        ("EXPORTS_API_KEY", API_KEY.to_string()),
    ];
    let probe = || image_command(&["healthcheck"], &env).stdout(Stdio::null()).stderr(Stdio::null()).status().unwrap();
    assert!(!probe().success(), "healthcheck passes with no server running");

    let log = tmp.path().join("serve.log");
    let child = image_command(&["serve"], &env)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("start exports-api serve");
    let mut server = Server(Some(child));
    let pid = server.0.as_ref().unwrap().id();
    let read_log = || std::fs::read_to_string(&log).unwrap_or_default();

    // the image's HEALTHCHECK: the probe passes once the server answers
    poll_until(within(60), "healthcheck to pass", || {
        if let Some(status) = server.0.as_mut().unwrap().try_wait().unwrap() {
            panic!("serve exited at start ({status}):\n{}", read_log());
        }
        std::future::ready(probe().success().then_some(()))
    })
    .await;

    // it runs as the image's user, and everything it made in the data folder is that user's
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let real_uid = status.lines().find_map(|l| l.strip_prefix("Uid:")).unwrap().split_whitespace().next().unwrap();
    assert_eq!(real_uid, uid.to_string(), "serve runs as uid {uid}");

    // a real export through the API: the data folder is writable by that user
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let (schema, nd) = helpers::invoices(30, 5);
    let r = client.post(format!("{base}/v1/schemas")).header("x-api-key", API_KEY).json(&schema).send().await.unwrap();
    assert_eq!(r.status(), 201, "create schema");
    let sid = r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_string();
    let r = client
        .post(format!("{base}/v1/schemas/{sid}/results"))
        .header("x-api-key", API_KEY)
        .header("content-type", "application/x-ndjson")
        .body(nd)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "upload");
    let body = json!({"schema_id": sid, "start_date": "2024-01-01", "end_date": "2024-12-31"});
    let r = client.post(format!("{base}/v1/exports")).header("x-api-key", API_KEY).json(&body).send().await.unwrap();
    assert_eq!(r.status(), 201, "create export");
    let id = r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_string();
    let export_url = format!("{base}/v1/exports/{id}");
    let done: Value = poll_until(within(60), "the export to finish", || async {
        let v: Value = client.get(&export_url).header("x-api-key", API_KEY).send().await.unwrap().json().await.unwrap();
        matches!(v["status"].as_str(), Some("COMPLETED" | "FAILED")).then_some(v)
    })
    .await;
    assert_eq!(done["status"], "COMPLETED", "{done}");
    let link: Value = client
        .get(format!("{export_url}/download"))
        .header("x-api-key", API_KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let url = link["url"].as_str().unwrap();
    assert!(url.starts_with(&base), "download links use EXPORTS_PUBLIC_URL: {url}");
    let file = client.get(url).send().await.unwrap();
    assert_eq!(file.status(), 200);
    assert_eq!(file.bytes().await.unwrap().len() as i64, done["file_size"].as_i64().unwrap());
    for (path, u, g) in owners(&data) {
        assert_eq!((u, g), (uid, gid), "{} belongs to the server's user", path.display());
    }

    // docker stop: SIGTERM, and a clean exit
    // SAFETY: a plain kill(2) of our own child
    assert_eq!(unsafe { libc::kill(pid as libc::pid_t, libc::SIGTERM) }, 0);
    let child = server.0.as_mut().unwrap();
    let exit =
        poll_until(within(30), "serve to exit after SIGTERM", || std::future::ready(child.try_wait().unwrap())).await;
    server.0 = None;
    let log = read_log();
    assert!(exit.success(), "serve exits 0 after SIGTERM ({exit}):\n{log}");
    assert!(!log.contains("ERROR") && !log.contains("panicked"), "a clean log:\n{log}");
    assert!(!log.contains(API_KEY), "the API key is not logged");
    assert!(!probe().success(), "healthcheck passes after the server stopped");
}

/// What the image relies on, read from the Dockerfile and `.dockerignore` (hadolint checks the
/// Dockerfile's form in `.ci/container.sh`; this checks that it fits this binary).
#[test]
fn the_dockerfile_fits_the_binary() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dockerfile = std::fs::read_to_string(root.join("Dockerfile")).unwrap();
    let ignore = std::fs::read_to_string(root.join(".dockerignore")).unwrap();
    let lines: Vec<&str> = dockerfile.lines().map(str::trim).filter(|l| !l.starts_with('#')).collect();
    let copied: Vec<&str> = lines
        .iter()
        .filter_map(|l| l.strip_prefix("COPY "))
        .filter(|l| !l.starts_with("--from"))
        .flat_map(|l| {
            let parts: Vec<&str> = l.split_whitespace().collect();
            parts[..parts.len() - 1].to_vec()
        })
        .collect();

    // every file the binary embeds (include_str!/include_bytes!, relative to src/) is COPYed
    let mut embedded = Vec::new();
    for path in helpers::walk(&root.join("src")) {
        let src = std::fs::read_to_string(&path).unwrap();
        for mac in ["include_str!(\"", "include_bytes!(\"", "include_dir!(\"", "#[folder = \""] {
            for piece in src.split(mac).skip(1) {
                let target = piece.split('"').next().unwrap();
                let abs = if mac.starts_with("include_dir") || mac.starts_with("#[folder") {
                    root.join(target.trim_start_matches("$CARGO_MANIFEST_DIR/"))
                } else {
                    path.parent().unwrap().join(target)
                };
                let rel = abs.canonicalize().unwrap_or(abs).strip_prefix(root).unwrap().to_path_buf();
                embedded.push(rel);
            }
        }
    }
    assert!(embedded.iter().any(|p| p.starts_with("static")), "the console is embedded: {embedded:?}");
    for file in &embedded {
        let top = file.components().next().unwrap().as_os_str().to_str().unwrap();
        assert!(copied.contains(&top), "the binary embeds {}, but the Dockerfile does not COPY {top}", file.display());
        // copied whole: a new file in the folder is in the image without a Dockerfile change
        assert!(lines.iter().any(|l| l.starts_with(&format!("COPY {top} "))), "COPY the folder {top} whole");
        assert!(ignore.lines().any(|l| l.trim() == format!("!{top}/")), ".dockerignore lets {top}/ in");
    }
    // the build context: nothing but what is COPYed
    assert_eq!(
        ignore.lines().find(|l| !l.trim().is_empty() && !l.starts_with('#')),
        Some("*"),
        "everything excluded first"
    );
    for back in ignore.lines().filter_map(|l| l.trim().strip_prefix('!')) {
        assert!(copied.contains(&back.trim_end_matches('/')), ".dockerignore lets in {back}, which is not COPYed");
    }
    for c in &copied {
        assert!(root.join(c).exists(), "COPY {c}: no such file");
    }

    // the ENV names are real flags' twins, and the values what the binary takes
    let serve_help = helpers::text(&helpers::bin().args(["serve", "--help"]).output().unwrap().stdout);
    let env_block = dockerfile.split("\nENV ").nth(1).expect("ENV").split("\n\n").next().unwrap();
    let pairs: Vec<(&str, &str)> = env_block
        .split(|c: char| c.is_whitespace() || c == '\\')
        .filter_map(|w| w.split_once('='))
        .take_while(|(k, _)| k.starts_with("EXPORTS_"))
        .collect();
    assert!(pairs.contains(&("EXPORTS_LISTEN", "0.0.0.0:8080")), "{pairs:?}");
    assert!(pairs.contains(&("EXPORTS_DATA_DIR", "/data")), "{pairs:?}");
    let global_help = helpers::text(&helpers::bin().arg("--help").output().unwrap().stdout);
    for (k, _) in &pairs {
        assert!(
            serve_help.contains(&format!("[env: {k}")) || global_help.contains(&format!("[env: {k}")),
            "{k} is no flag's twin"
        );
    }
    let listen = pairs.iter().find(|(k, _)| *k == "EXPORTS_LISTEN").unwrap().1;
    let port = listen.rsplit(':').next().unwrap();
    assert!(lines.contains(&format!("EXPOSE {port}").as_str()), "EXPOSE the port of EXPORTS_LISTEN");
    assert!(lines.contains(&"VOLUME /data"), "the data folder is a volume");

    // a numeric non-root user, who owns /data
    let user = lines.iter().rev().find_map(|l| l.strip_prefix("USER ")).expect("USER");
    let uid: u32 = user.split(':').next().unwrap().parse().expect("a numeric USER");
    assert!(uid != 0, "USER is not root");
    assert_eq!(uid, IMAGE_UID, "the container test runs as the image's user");
    assert!(dockerfile.contains(&format!("chown {user} /data")), "/data belongs to USER");

    // the health check is the binary's own subcommand, and the image has no curl or wget
    let health = lines.iter().find(|l| l.starts_with("HEALTHCHECK")).expect("HEALTHCHECK");
    assert!(health.ends_with(r#"CMD ["exports-api", "healthcheck"]"#), "{health}");
    let hc_help = helpers::text(&helpers::bin().args(["healthcheck", "--help"]).output().unwrap().stdout);
    assert!(hc_help.contains("[env: EXPORTS_LISTEN"), "healthcheck reads EXPORTS_LISTEN: {hc_help}");
    assert!(!lines.iter().any(|l| l.contains("curl") || l.contains("wget")), "no curl or wget");
    assert!(dockerfile.contains("cargo build --release --frozen"), "the build is offline once the crates are fetched");
    assert!(dockerfile.contains("CMD [\"serve\"]") && dockerfile.contains("ENTRYPOINT [\"exports-api\"]"));
}

/// A data folder the server's user may not write in: the error says who owns it, who the
/// server runs as, and what to do; nothing is created.
#[test]
fn a_data_folder_of_another_user_is_explained() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let parent = tmp.path().join("volume");
    std::fs::create_dir(&parent).unwrap();
    let data = parent.join("data");
    if is_root() {
        // the image's user (see image_command) may enter the folder but not write in it
        std::fs::set_permissions(&parent, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    } else {
        eprintln!("not root: the folder is made read-only for this user instead");
        std::fs::set_permissions(&parent, std::fs::Permissions::from_mode(0o555)).unwrap();
    }
    let env =
        [("EXPORTS_DATA_DIR", data.display().to_string()), ("EXPORTS_LISTEN", format!("127.0.0.1:{}", free_port()))];
    let out = image_command(&["serve"], &env).output().unwrap();
    std::fs::set_permissions(&parent, std::fs::Permissions::from_mode(0o755)).unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("cannot create the data folder {}", data.display())), "{err}");
    if is_root() {
        assert!(
            err.contains(&format!("{} belongs to uid 0 and this process runs as uid {IMAGE_UID}", parent.display())),
            "{err}"
        );
        assert!(err.contains(&format!("chown -R {IMAGE_UID} {}", parent.display())), "{err}");
    } else {
        assert!(err.contains("is not writable by its owner"), "{err}");
    }
    assert!(!data.exists(), "nothing was created");
}
