//! The command line (api.md "Running it", README "Command line" and "Configuration"): teams and
//! keys, import, export, openapi, bad configuration, `serve --demo`, the first-start key and
//! `healthcheck`. Runs the real binary on temporary data folders.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_exports-api");

/// The binary, with no `EXPORTS_*` variable inherited from the environment.
fn bin() -> Command {
    let mut cmd = Command::new(BIN);
    for (k, _) in std::env::vars() {
        if k.starts_with("EXPORTS_") {
            cmd.env_remove(k);
        }
    }
    cmd.stdin(Stdio::null());
    cmd
}

/// Runs `exports-api ARGS --data-dir DIR` and returns its output, whatever the exit status.
fn run(dir: &Path, args: &[&str]) -> Output {
    bin().args(args).arg("--data-dir").arg(dir).output().expect("run exports-api")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).to_string()
}

fn is_uuid(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn listening(port: u16) -> bool {
    std::net::TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(300)).is_ok()
}

/// A running `exports-api serve`, its stdout and stderr collected; SIGKILLed when dropped.
struct Serve {
    child: Option<Child>,
    port: u16,
    out: Arc<Mutex<String>>,
    err: Arc<Mutex<String>>,
}

impl Drop for Serve {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn collect(r: impl std::io::Read + Send + 'static) -> Arc<Mutex<String>> {
    let buf = Arc::new(Mutex::new(String::new()));
    let b = buf.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(r).lines() {
            let Ok(line) = line else { break };
            let mut g = b.lock().unwrap();
            g.push_str(&line);
            g.push('\n');
        }
    });
    buf
}

impl Serve {
    /// Starts `serve --listen 127.0.0.1:PORT --data-dir DIR EXTRA...` with `envs`.
    fn spawn(dir: &Path, extra: &[&str], envs: &[(&str, &str)]) -> Serve {
        let port = free_port();
        let mut cmd = bin();
        cmd.args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--data-dir"]).arg(dir).args(extra);
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("start exports-api serve");
        let out = collect(child.stdout.take().unwrap());
        let err = collect(child.stderr.take().unwrap());
        Serve { child: Some(child), port, out, err }
    }

    fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn stdout(&self) -> String {
        self.out.lock().unwrap().clone()
    }

    fn stderr(&self) -> String {
        self.err.lock().unwrap().clone()
    }

    async fn wait_healthy(&mut self) {
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(st) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("serve exited at start ({st}); stderr:\n{}", self.stderr());
            }
            if let Ok(r) = client.get(format!("{}/healthz", self.base())).send().await {
                if r.status() == 200 {
                    return;
                }
            }
            assert!(Instant::now() < deadline, "serve not healthy in 30 s; stderr:\n{}", self.stderr());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until stdout contains `needle` (true) or `within` passes (false).
    async fn stdout_contains(&self, needle: &str, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        loop {
            if self.stdout().contains(needle) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// SIGTERM, then waits for the exit (SIGKILL after 10 s).
    async fn stop(mut self) {
        let mut c = self.child.take().unwrap();
        let _ = Command::new("kill").args(["-TERM", &c.id().to_string()]).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while c.try_wait().unwrap().is_none() {
            if Instant::now() > deadline {
                let _ = c.kill();
                let _ = c.wait();
                panic!("serve did not stop within 10 s of SIGTERM");
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

async fn get_with_key(base: &str, path: &str, key: &str) -> reqwest::Response {
    reqwest::Client::new().get(format!("{base}{path}")).header("x-api-key", key).send().await.unwrap()
}

async fn results_total(app: &common::TestApp, schema_id: &str) -> u64 {
    let r = app.get(&format!("/v1/results?schema_id={schema_id}&limit=1")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    v["meta"]["total"].as_u64().unwrap()
}

// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn teams_and_keys_create_list_revoke() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();

    let out = run(dir, &["teams", "create", "acme"]);
    assert!(out.status.success(), "teams create: {}", text(&out.stderr));
    let team_id = text(&out.stdout).trim().to_string();
    assert!(is_uuid(&team_id), "teams create prints the team id, got {team_id:?}");

    let again = run(dir, &["teams", "create", "acme"]);
    assert!(!again.status.success(), "a second team named acme was created: {}", text(&again.stdout));
    let msg = text(&again.stderr);
    assert!(msg.contains("acme"), "stderr should say which team exists already: {msg:?}");
    assert!(text(&again.stdout).trim().is_empty(), "stdout on failure: {}", text(&again.stdout));

    // by name and by id
    let out = run(dir, &["keys", "create", "--team", "acme", "--name", "deploy-bot"]);
    assert!(out.status.success(), "keys create: {}", text(&out.stderr));
    let key1 = text(&out.stdout).trim().to_string();
    assert_eq!(key1.lines().count(), 1, "keys create prints one key: {key1:?}");
    assert!(key1.len() >= 16 && !key1.contains(char::is_whitespace), "{key1:?}");
    let key2 = common::cli(dir, &["keys", "create", "--team", &team_id, "--name", "second-bot"]);
    assert_ne!(key1, key2);
    common::cli(dir, &["teams", "create", "other"]);
    let key3 = common::cli(dir, &["keys", "create", "--team", "other", "--name", "other-bot"]);

    let no_team = run(dir, &["keys", "create", "--team", "nope"]);
    assert!(!no_team.status.success(), "keys create for a missing team succeeded");

    let list = run(dir, &["keys", "list"]);
    assert!(list.status.success(), "keys list: {}", text(&list.stderr));
    let all = format!("{}{}", text(&list.stdout), text(&list.stderr));
    for secret in [&key1, &key2, &key3] {
        assert!(!all.contains(secret.as_str()), "keys list shows a secret:\n{all}");
    }
    let row_of = |listing: &str, label: &str| -> Option<String> {
        listing.lines().find(|l| l.split_whitespace().any(|t| t == label)).map(str::to_string)
    };
    let stdout = text(&list.stdout);
    let row1 = row_of(&stdout, "deploy-bot").unwrap_or_else(|| panic!("deploy-bot not listed:\n{stdout}"));
    assert!(row1.contains("acme") || row1.contains(&team_id), "the row names the team: {row1}");
    let key1_id = row1
        .split_whitespace()
        .find(|t| is_uuid(t) && *t != team_id)
        .unwrap_or_else(|| panic!("no key id in {row1}"))
        .to_string();
    assert!(row_of(&stdout, "second-bot").is_some() && row_of(&stdout, "other-bot").is_some(), "{stdout}");

    let only_acme = common::cli(dir, &["keys", "list", "--team", "acme"]);
    assert!(row_of(&only_acme, "deploy-bot").is_some(), "{only_acme}");
    assert!(row_of(&only_acme, "other-bot").is_none(), "--team acme lists another team's key:\n{only_acme}");

    // against a running app on the same folder
    let app = common::spawn_app_with(dir.to_path_buf(), |cfg| cfg.api_key = None).await;
    for k in [&key1, &key2, &key3] {
        assert_eq!(get_with_key(&app.base_url, "/v1/schemas", k).await.status(), 200, "key {k} before revoke");
    }
    let out = run(dir, &["keys", "revoke", &key1_id]);
    assert!(out.status.success(), "keys revoke: {}", text(&out.stderr));
    // the server trusts a key it has just seen for up to a second (state::key_cache)
    let deadline = std::time::Instant::now() + exports_api::state::key_cache::KEY_CACHE_TTL * 3;
    while get_with_key(&app.base_url, "/v1/schemas", &key1).await.status() != 401 {
        assert!(std::time::Instant::now() < deadline, "a revoked key was still accepted after the cache's TTL");
        // polling pace, under the rate limit
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    common::assert_error(get_with_key(&app.base_url, "/v1/schemas", &key1).await, 401).await;
    common::assert_error(get_with_key(&app.base_url, "/v1/exports", &key1).await, 401).await;
    assert_eq!(get_with_key(&app.base_url, "/v1/schemas", &key2).await.status(), 200, "another key of the team");
    assert_eq!(get_with_key(&app.base_url, "/v1/schemas", &key3).await.status(), 200, "another team's key");
    let list = common::cli(dir, &["keys", "list"]);
    assert!(!list.contains(&key1), "{list}");
    assert!(list.contains(&key1_id), "a revoked key is still listed by id:\n{list}");

    let bad = run(dir, &["keys", "revoke", "019760a0-dead-7000-8000-000000000000"]);
    assert!(!bad.status.success(), "revoking an unknown key id succeeded");
    assert!(!text(&bad.stderr).trim().is_empty());
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_from_file_and_stdin_all_or_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let files = tempfile::tempdir().unwrap();
    let app = common::spawn_app_with(dir.to_path_buf(), |_| {}).await;
    let (schema, nd) = common::gen_results(300, 31);
    let sid = app.create_schema(&schema).await["id"].as_str().unwrap().to_string();

    let file = files.path().join("results.ndjson");
    std::fs::write(&file, &nd).unwrap();
    let out = run(dir, &["import", "--schema", &sid, file.to_str().unwrap()]);
    assert!(out.status.success(), "import: {}", text(&out.stderr));
    assert_eq!(results_total(&app, &sid).await, 300);

    // a bad line 3: nothing imported, and the message names line 3
    let mut lines: Vec<&str> = nd.lines().take(10).collect();
    lines[2] = "{\"extraction\": {\"invoice_number\": \"X\"}, \"file_name\": ";
    let bad = files.path().join("bad.ndjson");
    std::fs::write(&bad, lines.join("\n") + "\n").unwrap();
    let out = run(dir, &["import", "--schema", &sid, bad.to_str().unwrap()]);
    assert!(!out.status.success(), "import of a file with a bad line succeeded");
    let msg = text(&out.stderr).to_lowercase();
    assert!(msg.contains("line 3"), "the message should name line 3: {msg:?}");
    assert_eq!(results_total(&app, &sid).await, 300, "a failed import imported something");

    // a line that is JSON but not a result (extraction not an object)
    lines[2] = "{\"extraction\": [1, 2]}";
    std::fs::write(&bad, lines.join("\n") + "\n").unwrap();
    let out = run(dir, &["import", "--schema", &sid, bad.to_str().unwrap()]);
    assert!(!out.status.success(), "import of an array extraction succeeded");
    assert!(text(&out.stderr).to_lowercase().contains("line 3"), "{}", text(&out.stderr));
    assert_eq!(results_total(&app, &sid).await, 300);

    // - reads stdin
    let (_, more) = common::gen_results(50, 32);
    let mut child = bin()
        .args(["import", "--schema", &sid, "-", "--data-dir"])
        .arg(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(more.as_bytes()).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "import -: {}", text(&out.stderr));
    assert_eq!(results_total(&app, &sid).await, 350);

    // an unknown schema fails
    let out = run(dir, &["import", "--schema", "019760a0-dead-7000-8000-000000000000", file.to_str().unwrap()]);
    assert!(!out.status.success(), "import into an unknown schema succeeded");
    assert_eq!(results_total(&app, &sid).await, 350);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_command_writes_the_servers_bytes() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let files = tempfile::tempdir().unwrap();
    let app = common::spawn_app_with(dir.to_path_buf(), |_| {}).await;
    let (schema, nd) = common::gen_results(400, 41);
    let sid = app.create_schema(&schema).await["id"].as_str().unwrap().to_string();
    app.upload_ndjson(&sid, nd).await;

    for expand in [None, Some("line_items")] {
        let mut body = json!({"schema_id": sid, "start_date": "2024-01-01", "end_date": "2024-03-31"});
        let mut args = vec!["export", "--schema", sid.as_str(), "--start", "2024-01-01", "--end", "2024-03-31"];
        if let Some(k) = expand {
            body["expand_array"] = json!(k);
            args.extend(["--expand-array", k]);
        }
        let e = app.export_and_wait(&body).await;
        assert_eq!(e["status"], "COMPLETED", "{e}");
        let url = app.download_url(e["id"].as_str().unwrap()).await;
        let r = app.client.get(&url).send().await.unwrap();
        assert_eq!(r.status(), 200);
        let server = r.bytes().await.unwrap().to_vec();
        assert!(!server.is_empty());

        let out_file = files.path().join(format!("out-{}.csv", expand.unwrap_or("plain")));
        let mut with_out = args.clone();
        with_out.extend(["--out", out_file.to_str().unwrap()]);
        let out = run(dir, &with_out);
        assert!(out.status.success(), "export --out ({expand:?}): {}", text(&out.stderr));
        let written = std::fs::read(&out_file).unwrap();
        assert!(written == server, "export --out ({expand:?}) differs from the server's file");
        assert!(out.stdout.is_empty(), "export --out also wrote to stdout");

        let out = run(dir, &args);
        assert!(out.status.success(), "export to stdout ({expand:?}): {}", text(&out.stderr));
        assert!(out.stdout == server, "export to stdout ({expand:?}) differs from the server's file");
    }
    let leftovers: Vec<_> = std::fs::read_dir(files.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(leftovers.len(), 2, "only the two --out files: {leftovers:?}");

    // bad arguments fail with a message
    let out = run(
        dir,
        &["export", "--schema", &sid, "--start", "2024-01-01", "--end", "2024-03-31", "--expand-array", "nope"],
    );
    assert!(!out.status.success(), "--expand-array nope succeeded");
    assert!(!text(&out.stderr).trim().is_empty());
    let out = run(dir, &["export", "--schema", &sid, "--start", "2024-03-31", "--end", "2024-01-01"]);
    assert!(!out.status.success(), "start after end succeeded");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_command_prints_the_served_document() {
    let app = common::spawn_app().await;
    let printed: Value = serde_json::from_str(&common::cli(&app.data_dir, &["openapi"])).expect("openapi prints JSON");
    let r = app.client.get(app.url("/openapi.json")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let served: Value = r.json().await.unwrap();
    assert_eq!(printed, served);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_configuration_stops_serve_at_start() {
    let tmp = tempfile::tempdir().unwrap();
    struct Case {
        args: Vec<String>,
        env: Option<(&'static str, &'static str)>,
        needle: &'static str,
        port: Option<u16>,
    }
    type Env = Option<(&'static str, &'static str)>;
    let on_free_port = |args: &[&str], env: Env, needle: &'static str| {
        let port = free_port();
        let mut a = vec!["--listen".to_string(), format!("127.0.0.1:{port}")];
        a.extend(args.iter().map(|s| s.to_string()));
        Case { args: a, env, needle, port: Some(port) }
    };
    let cases = [
        Case { args: vec!["--listen".into(), "nonsense".into()], env: None, needle: "--listen", port: None },
        on_free_port(&["--url-ttl", "0"], None, "--url-ttl"),
        on_free_port(&["--url-ttl", "999999999"], None, "--url-ttl"),
        on_free_port(&["--retention", "soon"], None, "--retention"),
        on_free_port(&["--workers", "0"], None, "--workers"),
        on_free_port(&[], Some(("EXPORTS_SIGNING_KEY", "short")), "EXPORTS_SIGNING_KEY"),
    ];

    // start them all, then wait for each
    let mut running = Vec::new();
    for (i, c) in cases.iter().enumerate() {
        let dir = tmp.path().join(format!("d{i}"));
        let mut cmd = bin();
        cmd.arg("serve").args(&c.args).arg("--data-dir").arg(&dir).env("EXPORTS_API_KEY", "test-key-config-0123456789");
        if let Some((k, v)) = c.env {
            cmd.env(k, v);
        }
        let child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        running.push(Serve {
            out: Arc::new(Mutex::new(String::new())),
            err: Arc::new(Mutex::new(String::new())),
            port: c.port.unwrap_or(0),
            child: Some(child),
        });
    }
    let started = Instant::now();
    let mut failures = Vec::new();
    for (c, mut s) in cases.iter().zip(running) {
        let status = loop {
            if let Some(st) = s.child.as_mut().unwrap().try_wait().unwrap() {
                break Some(st);
            }
            if started.elapsed() > Duration::from_secs(10) {
                break None;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        };
        let what = format!("serve {:?} env {:?}", c.args, c.env);
        let Some(status) = status else {
            failures.push(format!("{what}: still running after 10 s"));
            continue; // dropped: killed
        };
        let child = s.child.take().unwrap();
        let out = child.wait_with_output().unwrap();
        let stderr = text(&out.stderr);
        if status.success() {
            failures.push(format!("{what}: exited 0"));
        } else if status.code() != Some(2) {
            // README: "Bad configuration stops the program at start ... (exit code 2)"
            failures.push(format!("{what}: exit status {status}, README says exit code 2"));
        }
        if !stderr.contains(c.needle) {
            failures.push(format!("{what}: stderr does not name {}: {stderr:?}", c.needle));
        }
        if let Some(p) = c.port {
            if listening(p) {
                failures.push(format!("{what}: something is listening on {p} after the exit"));
            }
        }
    }
    assert!(failures.is_empty(), "bad configuration:\n{}", failures.join("\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_demo_loads_once_and_prints_its_key_once() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    const SCHEMA: &str = "019760a0-0001-7000-8000-000000000001";

    let mut s = Serve::spawn(&dir, &["--demo"], &[]);
    s.wait_healthy().await;
    assert!(s.stdout_contains("exp_", Duration::from_secs(5)).await, "no demo key on stdout:\n{}", s.stdout());
    let stdout = s.stdout();
    let at = stdout.find("exp_").unwrap();
    let key: String =
        stdout[at..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-').collect();
    assert!(key.len() > 20, "demo key {key:?}");

    let base = s.base();
    let r = get_with_key(&base, &format!("/v1/schemas/{SCHEMA}"), &key).await;
    assert_eq!(r.status(), 200, "demo schema with the demo key");
    let r = get_with_key(&base, &format!("/v1/results?schema_id={SCHEMA}&limit=1"), &key).await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["meta"]["total"], 3000, "{v}");
    s.stop().await;

    let mut s = Serve::spawn(&dir, &["--demo"], &[]);
    s.wait_healthy().await;
    let base = s.base();
    let r = get_with_key(&base, &format!("/v1/results?schema_id={SCHEMA}&limit=1"), &key).await;
    assert_eq!(r.status(), 200, "the demo key after a restart");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["meta"]["total"], 3000, "demo data loaded twice? {v}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let again = s.stdout();
    assert!(!again.contains("exp_"), "a second start printed a key:\n{again}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_start_prints_a_default_key_once_and_healthcheck_works() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");

    let mut s = Serve::spawn(&dir, &[], &[]);
    s.wait_healthy().await;
    let base = s.base();
    // the key is somewhere on stdout: try each long enough token
    let deadline = Instant::now() + Duration::from_secs(5);
    let key = loop {
        let stdout = s.stdout();
        let mut found = None;
        for tok in stdout.split(|c: char| c.is_whitespace() || c == '=' || c == '"' || c == '\'') {
            let tok = tok.trim_matches(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'));
            if tok.len() >= 16 && !is_uuid(tok) && get_with_key(&base, "/v1/schemas", tok).await.status() == 200 {
                found = Some(tok.to_string());
                break;
            }
        }
        if let Some(k) = found {
            break k;
        }
        assert!(Instant::now() < deadline, "no working API key on stdout of a first start:\n{}", s.stdout());
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(s.stdout().contains("default"), "the message names team default:\n{}", s.stdout());
    let keys = common::cli(&dir, &["keys", "list"]);
    assert!(keys.lines().any(|l| l.split_whitespace().any(|t| t == "default")), "team default in:\n{keys}");
    assert!(!keys.contains(&key));

    // healthcheck
    let ok = bin().args(["healthcheck", "--listen", &format!("127.0.0.1:{}", s.port)]).output().unwrap();
    assert!(ok.status.success(), "healthcheck against a running server: {}", text(&ok.stderr));
    let closed = free_port();
    let t = Instant::now();
    let bad = bin().args(["healthcheck", "--listen", &format!("127.0.0.1:{closed}")]).output().unwrap();
    assert!(!bad.status.success(), "healthcheck against a closed port succeeded");
    assert!(t.elapsed() < Duration::from_secs(10), "healthcheck took {:?}", t.elapsed());
    s.stop().await;

    // a second start prints no new key, and the first still works
    let mut s = Serve::spawn(&dir, &[], &[]);
    s.wait_healthy().await;
    assert_eq!(get_with_key(&s.base(), "/v1/schemas", &key).await.status(), 200, "the first key after a restart");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let again = s.stdout();
    assert!(
        !again.contains("exp_") && !again.to_lowercase().contains("api key"),
        "second start printed a key:\n{again}"
    );
    let keys_after = common::cli(&dir, &["keys", "list"]);
    assert_eq!(keys_after.lines().count(), keys.lines().count(), "a second start created a key:\n{keys_after}");
    s.stop().await;
}
