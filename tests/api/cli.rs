//! The command line (api.md "Running it", README "Command line" and "Configuration"): teams and
//! keys, import, export, openapi, bad configuration, `serve --demo`, the first-start key and
//! `healthcheck`. Runs the real binary on temporary data folders.

use std::io::Write;
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::helpers;
use crate::helpers::{bin, is_uuid, poll_until, run, text, within, ServeCmd, Served};
use serde_json::{json, Value};

/// `serve --listen 127.0.0.1:0 --data-dir DIR EXTRA...`, started and listening.
async fn serve(dir: &std::path::Path, extra: &[&str]) -> Served {
    ServeCmd::new(dir).args(extra).start().await
}

async fn get_with_key(base: &str, path: &str, key: &str) -> reqwest::Response {
    reqwest::Client::new().get(format!("{base}{path}")).header("x-api-key", key).send().await.unwrap()
}

async fn results_total(app: &helpers::TestApp, schema_id: &str) -> u64 {
    let r = app.get(&format!("/v1/results?schema_id={schema_id}&limit=1")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    v["meta"]["total"].as_u64().unwrap()
}

// ---------------------------------------------------------------------------------------------

/// The operator's tools never make a data folder (only `serve` does): run from the wrong
/// directory they say where they looked, and leave nothing behind.
#[test]
fn tools_refuse_a_folder_that_is_not_a_data_folder() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("data");
    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let nd = tmp.path().join("r.ndjson");
    std::fs::write(&nd, "{\"extraction\": {}}\n").unwrap();
    let sid = "019760a0-0001-7000-8000-000000000001";
    let commands: [&[&str]; 6] = [
        &["teams", "list"],
        &["teams", "create", "acme"],
        &["keys", "list"],
        &["keys", "create", "--team", "acme"],
        &["import", "--schema", sid, nd.to_str().unwrap()],
        &["export", "--schema", sid, "--start", "2024-01-01", "--end", "2024-01-31"],
    ];
    for dir in [&missing, &empty] {
        for args in commands {
            let out = run(dir, args);
            assert!(!out.status.success(), "{args:?} in {} succeeded", dir.display());
            let msg = text(&out.stderr);
            assert!(
                msg.contains("is not an exports-api data folder") && msg.contains(&dir.display().to_string()),
                "{args:?}: {msg}"
            );
            assert!(msg.contains("exports-api serve") && msg.contains("--data-dir"), "{args:?}: {msg}");
        }
    }
    assert!(!missing.exists(), "a tool created the data folder");
    assert_eq!(std::fs::read_dir(&empty).unwrap().count(), 0, "a tool wrote into a folder that is not a data folder");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn teams_and_keys_create_list_revoke() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    // only `serve` makes a data folder
    helpers::spawn_app_with(dir.to_path_buf(), |_| {}).await.stop().await;

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
    let key2 = helpers::cli(dir, &["keys", "create", "--team", &team_id, "--name", "second-bot"]);
    assert_ne!(key1, key2);
    helpers::cli(dir, &["teams", "create", "other"]);
    let key3 = helpers::cli(dir, &["keys", "create", "--team", "other", "--name", "other-bot"]);

    let no_team = run(dir, &["keys", "create", "--team", "nope"]);
    assert!(!no_team.status.success(), "keys create for a missing team succeeded");
    let msg = text(&no_team.stderr);
    // where it looked: the data folder, or the database the tools were given
    let place = helpers::suite_database_of(dir).unwrap_or_else(|| dir.display().to_string());
    assert!(msg.contains("'nope'") && msg.contains(&place) && msg.contains("teams list"), "{msg}");

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

    let only_acme = helpers::cli(dir, &["keys", "list", "--team", "acme"]);
    assert!(row_of(&only_acme, "deploy-bot").is_some(), "{only_acme}");
    assert!(row_of(&only_acme, "other-bot").is_none(), "--team acme lists another team's key:\n{only_acme}");

    // against a running app on the same folder
    let app = helpers::spawn_app_with(dir.to_path_buf(), |cfg| cfg.api_key = None).await;
    for k in [&key1, &key2, &key3] {
        assert_eq!(get_with_key(&app.base_url, "/v1/schemas", k).await.status(), 200, "key {k} before revoke");
    }
    let out = run(dir, &["keys", "revoke", &key1_id]);
    assert!(out.status.success(), "keys revoke: {}", text(&out.stderr));
    // the server trusts a key it has just seen for up to a second (state::key_cache)
    let (base, revoked) = (&app.base_url, &key1);
    poll_until(
        Instant::now() + exports_api::state::key_cache::KEY_CACHE_TTL * 3,
        "a revoked key to be refused",
        move || async move { (get_with_key(base, "/v1/schemas", revoked).await.status() == 401).then_some(()) },
    )
    .await;
    helpers::assert_error(get_with_key(&app.base_url, "/v1/schemas", &key1).await, 401).await;
    helpers::assert_error(get_with_key(&app.base_url, "/v1/exports", &key1).await, 401).await;
    assert_eq!(get_with_key(&app.base_url, "/v1/schemas", &key2).await.status(), 200, "another key of the team");
    assert_eq!(get_with_key(&app.base_url, "/v1/schemas", &key3).await.status(), 200, "another team's key");
    let list = helpers::cli(dir, &["keys", "list"]);
    assert!(!list.contains(&key1), "{list}");
    assert!(list.contains(&key1_id), "a revoked key is still listed by id:\n{list}");

    let bad = run(dir, &["keys", "revoke", "019760a0-dead-7000-8000-000000000000"]);
    assert!(!bad.status.success(), "revoking an unknown key id succeeded");
    assert!(!text(&bad.stderr).trim().is_empty());
    app.stop().await;
}

/// `teams` and `keys` on a PostgreSQL database (`--database-url`): no data folder needed (none
/// is made), and what they write is what the server reads.
#[test]
fn teams_and_keys_on_a_postgres_database_need_no_data_folder() {
    let Some(url) = helpers::pg_database("cli::teams_and_keys_on_postgres") else { return };
    let tmp = tempfile::tempdir().unwrap();
    let nowhere = tmp.path().join("no-data-folder");
    let tool = |args: &[&str]| {
        helpers::bin().args(args).args(["--database-url", &url]).arg("--data-dir").arg(&nowhere).output().unwrap()
    };
    let ok = |args: &[&str]| {
        let out = tool(args);
        assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
        text(&out.stdout)
    };

    let team_id = ok(&["teams", "create", "acme"]).trim().to_string();
    assert!(is_uuid(&team_id), "teams create prints the team id, got {team_id:?}");
    let again = tool(&["teams", "create", "acme"]);
    assert!(!again.status.success() && text(&again.stderr).contains("acme"), "{}", text(&again.stderr));
    ok(&["teams", "create", "other"]);
    let teams = ok(&["teams", "list"]);
    let listed: Vec<&str> = teams.lines().collect();
    assert_eq!(listed.len(), 2, "{teams}");
    assert_eq!(listed[0], format!("{team_id}\tacme"), "oldest first");
    assert!(listed[1].ends_with("\tother"), "{teams}");

    let secret = ok(&["keys", "create", "--team", "acme", "--name", "deploy-bot"]).trim().to_string();
    assert!(secret.starts_with("exp_") && secret.len() > 40, "{secret:?}");
    let by_id = ok(&["keys", "create", "--team", &team_id]).trim().to_string();
    let listing = ok(&["keys", "list", "--team", "acme"]);
    assert!(!listing.contains(&secret) && !listing.contains(&by_id), "keys list shows a secret:\n{listing}");
    let row = listing.lines().find(|l| l.contains("deploy-bot")).unwrap_or_else(|| panic!("{listing}"));
    let key_id = row.split('\t').next().unwrap().to_string();
    assert!(is_uuid(&key_id) && row.contains(&secret[..8]), "{row}");
    assert_eq!(listing.lines().count(), 3, "a header and acme's two keys:\n{listing}");
    assert!(!ok(&["keys", "list", "--team", "other"]).contains("deploy-bot"));

    let missing = tool(&["keys", "create", "--team", "nope"]);
    let msg = text(&missing.stderr);
    assert!(!missing.status.success() && msg.contains("'nope'") && msg.contains(&url), "{msg}");

    // the server's view of the keys: the same database, read by the store's own function
    let pool = exports_api::db::Pool::Pg(exports_api::db::pg::open(&url, 1).unwrap());
    let team_of = |s: &str| {
        exports_api::db::keys::team_for_digest(&pool.get().unwrap(), &exports_api::db::keys::hash_key(s)).unwrap()
    };
    assert_eq!(team_of(&secret).map(|t| (t.id, t.name)), Some((team_id.clone(), "acme".to_string())));
    assert_eq!(team_of(&by_id).map(|t| t.name).as_deref(), Some("acme"));

    ok(&["keys", "revoke", &key_id]);
    assert_eq!(team_of(&secret), None, "a revoked key is refused");
    assert!(team_of(&by_id).is_some(), "the team's other key still works");
    for bad in ["not-a-key-id", "019760a0-dead-7000-8000-000000000000"] {
        let out = tool(&["keys", "revoke", bad]);
        assert!(!out.status.success() && text(&out.stderr).contains("no key with id"), "{bad}: {}", text(&out.stderr));
    }
    assert!(!nowhere.exists(), "a tool made a data folder it does not need");

    // a server that does not answer: said, with the URL
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let down = format!("postgres://exports@127.0.0.1:{port}/x");
    let out = helpers::bin().args(["teams", "list", "--database-url", &down]).output().unwrap();
    let msg = text(&out.stderr);
    assert!(!out.status.success() && msg.contains("cannot open the database") && msg.contains(&down), "{msg}");
}

/// `--database-url sqlite:///FILE` points the tools at that file, wherever the data folder is;
/// a file that does not exist is not made (only `serve` makes one).
#[test]
fn teams_and_keys_on_a_sqlite_database_url() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("elsewhere.db");
    let url = format!("sqlite://{}", file.display());
    let nowhere = tmp.path().join("no-data-folder");
    let tool = |args: &[&str]| {
        helpers::bin().args(args).args(["--database-url", &url]).arg("--data-dir").arg(&nowhere).output().unwrap()
    };
    let out = tool(&["teams", "list"]);
    let msg = text(&out.stderr);
    assert!(!out.status.success() && msg.contains(&file.display().to_string()), "{msg}");
    assert!(!file.exists(), "a tool made the database file");

    drop(exports_api::db::open(&file, 1, Duration::from_secs(5)).unwrap());
    let out = tool(&["teams", "create", "acme"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let team_id = text(&out.stdout).trim().to_string();
    let out = tool(&["keys", "create", "--team", "acme"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let secret = text(&out.stdout).trim().to_string();
    let c = rusqlite::Connection::open(&file).unwrap();
    let team: String = c
        .query_row(
            "SELECT team_id FROM api_keys WHERE key_hash = ?1",
            [exports_api::db::keys::hash_key(&secret)],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(team, team_id, "the key is in the file the URL names");
    assert!(!nowhere.exists(), "a tool made a data folder it does not need");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_from_file_and_stdin_all_or_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let files = tempfile::tempdir().unwrap();
    let app = helpers::spawn_app_with(dir.to_path_buf(), |_| {}).await;
    let (schema, nd) = helpers::invoices(300, 31);
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
    let (_, more) = helpers::invoices(50, 32);
    let mut child = helpers::bin_for(dir)
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

/// With no server running, `import` commits durably but leaves its WAL to be copied into the
/// database by whoever opens it next (README "Command line"): a server started afterwards
/// serves every result, and the database file itself comes to hold them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_without_a_server_is_folded_in_by_the_next_start() {
    crate::sqlite_only!();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let files = tempfile::tempdir().unwrap();
    let app = helpers::spawn_app_with(dir.to_path_buf(), |_| {}).await;
    let (schema, nd) = helpers::invoices(300, 33);
    let sid = app.create_schema(&schema).await["id"].as_str().unwrap().to_string();
    app.stop().await;

    let db = dir.join("exports.db");
    let file = files.path().join("results.ndjson");
    std::fs::write(&file, &nd).unwrap();
    let db_before = std::fs::metadata(&db).unwrap().len();
    let out = run(dir, &["import", "--schema", &sid, file.to_str().unwrap()]);
    assert!(out.status.success(), "import: {}", text(&out.stderr));
    let wal = std::fs::metadata(dir.join("exports.db-wal")).map(|m| m.len()).unwrap_or(0);
    assert!(wal as usize > nd.len() / 2, "the import's WAL ({wal} bytes) should hold the results");

    let app = helpers::spawn_app_with(dir.to_path_buf(), |_| {}).await;
    assert_eq!(results_total(&app, &sid).await, 300);
    // the results' pages reach the database file itself (at the start's first close, or the
    // server's checkpoint thread)
    poll_until(within(20), "the database file to hold the imported results", || async {
        let grown = std::fs::metadata(&db).unwrap().len() - db_before;
        (grown as usize > nd.len() / 2).then_some(())
    })
    .await;
    assert_eq!(results_total(&app, &sid).await, 300);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_command_writes_the_servers_bytes() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let files = tempfile::tempdir().unwrap();
    let app = helpers::spawn_app_with(dir.to_path_buf(), |_| {}).await;
    let (schema, nd) = helpers::invoices(400, 41);
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
    let app = helpers::spawn_app().await;
    let printed: Value = serde_json::from_str(&helpers::cli(&app.data_dir, &["openapi"])).expect("openapi prints JSON");
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
        listen: &'static str,
        args: &'static [&'static str],
        env: Option<(&'static str, &'static str)>,
        needle: &'static str,
    }
    let port0 = "127.0.0.1:0";
    let cases = [
        Case { listen: "nonsense", args: &[], env: None, needle: "--listen" },
        Case { listen: port0, args: &["--url-ttl", "0"], env: None, needle: "--url-ttl" },
        Case { listen: port0, args: &["--url-ttl", "999999999"], env: None, needle: "--url-ttl" },
        Case { listen: port0, args: &["--retention", "soon"], env: None, needle: "--retention" },
        Case { listen: port0, args: &["--workers", "0"], env: None, needle: "--workers" },
        // typed flags name the flag and its environment twin, whichever was used
        Case {
            listen: port0,
            args: &["--max-export-storage", "lots"],
            env: None,
            needle: "--max-export-storage / EXPORTS_MAX_EXPORT_STORAGE",
        },
        Case {
            listen: port0,
            args: &[],
            env: Some(("EXPORTS_IDLE_TIMEOUT", "0")),
            needle: "--idle-timeout / EXPORTS_IDLE_TIMEOUT must be",
        },
        Case { listen: port0, args: &[], env: Some(("EXPORTS_SIGNING_KEY", "short")), needle: "EXPORTS_SIGNING_KEY" },
    ];

    // start them all, then wait for each
    let mut running = Vec::new();
    for (i, c) in cases.iter().enumerate() {
        let mut cmd = ServeCmd::new(&tmp.path().join(format!("d{i}")))
            .listen(c.listen)
            .args(c.args)
            .env("EXPORTS_API_KEY", "test-key-config-0123456789");
        if let Some((k, v)) = c.env {
            cmd = cmd.env(k, v);
        }
        running.push(cmd.spawn());
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut failures = Vec::new();
    for (c, s) in cases.iter().zip(running) {
        let what = format!("serve --listen {} {:?} env {:?}", c.listen, c.args, c.env);
        let Some(exited) = s.wait_exit(deadline.saturating_duration_since(Instant::now())).await else {
            failures.push(format!("{what}: still running after 10 s"));
            continue;
        };
        let (status, stderr) = (exited.status, exited.stderr);
        if status.success() {
            failures.push(format!("{what}: exited 0"));
        } else if status.code() != Some(2) {
            // README: "Bad configuration stops the program at start ... (exit code 2)"
            failures.push(format!("{what}: exit status {status}, README says exit code 2"));
        }
        if !stderr.contains(c.needle) {
            failures.push(format!("{what}: stderr does not name {}: {stderr:?}", c.needle));
        }
        if stderr.contains("listening on") {
            failures.push(format!("{what}: it listened before it stopped: {stderr:?}"));
        }
    }
    assert!(failures.is_empty(), "bad configuration:\n{}", failures.join("\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_demo_loads_once_and_prints_its_key_once() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    const SCHEMA: &str = "019760a0-0001-7000-8000-000000000001";

    let s = serve(&dir, &["--demo"]).await;
    // the key is printed before the server logs that it listens: it is on its way to us
    let stdout = poll_until(within(5), "the demo key on stdout", || {
        let out = s.stdout();
        std::future::ready(out.contains("exp_").then_some(out))
    })
    .await;
    let at = stdout.find("exp_").unwrap();
    let key: String =
        stdout[at..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-').collect();
    assert!(key.len() > 20, "demo key {key:?}");

    let base = s.base_url();
    let r = get_with_key(&base, &format!("/v1/schemas/{SCHEMA}"), &key).await;
    assert_eq!(r.status(), 200, "demo schema with the demo key");
    let r = get_with_key(&base, &format!("/v1/results?schema_id={SCHEMA}&limit=1"), &key).await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["meta"]["total"], 3000, "{v}");
    s.stop_within(Duration::from_secs(10)).await;

    let s = serve(&dir, &["--demo"]).await;
    let base = s.base_url();
    let r = get_with_key(&base, &format!("/v1/results?schema_id={SCHEMA}&limit=1"), &key).await;
    assert_eq!(r.status(), 200, "the demo key after a restart");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["meta"]["total"], 3000, "demo data loaded twice? {v}");
    // everything the second run printed, complete once it has exited
    let again = s.stop_within(Duration::from_secs(10)).await.stdout;
    assert!(!again.contains("exp_"), "a second start printed a key:\n{again}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_start_prints_a_default_key_once_and_healthcheck_works() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");

    let s = serve(&dir, &[]).await;
    let base = s.base_url();
    // the key is somewhere on stdout: try each long enough token
    let (served, base) = (&s, &base);
    let key = poll_until(within(5), "a working API key on stdout of a first start", move || async move {
        let stdout = served.stdout();
        for tok in stdout.split(|c: char| c.is_whitespace() || c == '=' || c == '"' || c == '\'') {
            let tok = tok.trim_matches(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'));
            if tok.len() >= 16 && !is_uuid(tok) && get_with_key(base, "/v1/schemas", tok).await.status() == 200 {
                return Some(tok.to_string());
            }
        }
        None
    })
    .await;
    assert!(s.stdout().contains("default"), "the message names team default:\n{}", s.stdout());
    let keys = helpers::cli(&dir, &["keys", "list"]);
    assert!(keys.lines().any(|l| l.split_whitespace().any(|t| t == "default")), "team default in:\n{keys}");
    assert!(!keys.contains(&key));

    // healthcheck
    let ok = bin().args(["healthcheck", "--listen", &s.addr]).output().unwrap();
    assert!(ok.status.success(), "healthcheck against a running server: {}", text(&ok.stderr));
    let addr = s.addr.clone();
    s.stop_within(Duration::from_secs(10)).await;
    // the stopped server's port is closed now
    let t = Instant::now();
    let bad = bin().args(["healthcheck", "--listen", &addr]).output().unwrap();
    assert!(!bad.status.success(), "healthcheck against a closed port succeeded");
    assert!(t.elapsed() < Duration::from_secs(10), "healthcheck took {:?}", t.elapsed());

    // a second start prints no new key, and the first still works
    let s = serve(&dir, &[]).await;
    assert_eq!(get_with_key(&s.base_url(), "/v1/schemas", &key).await.status(), 200, "the first key after a restart");
    let again = s.stop_within(Duration::from_secs(10)).await.stdout;
    assert!(
        !again.contains("exp_") && !again.to_lowercase().contains("api key"),
        "second start printed a key:\n{again}"
    );
    let keys_after = helpers::cli(&dir, &["keys", "list"]);
    assert_eq!(keys_after.lines().count(), keys.lines().count(), "a second start created a key:\n{keys_after}");
}

/// `serve` binds first: an address in use stops it before it creates the data folder or
/// prints a key, and the message says how to pick another address. A host name resolves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_listens_before_it_creates_anything() {
    let tmp = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let data = tmp.path().join("data");
    let exited = ServeCmd::new(&data).listen(&addr).spawn().wait_exit(Duration::from_secs(20)).await;
    let exited = exited.expect("serve on an address in use should stop at once");
    assert!(!exited.status.success());
    assert!(exited.stderr.contains(&format!("cannot listen on {addr}")), "{}", exited.stderr);
    assert!(exited.stderr.contains("--listen"), "the message names the flag: {}", exited.stderr);
    assert!(!exited.stdout.contains("exp_") && !exited.stderr.contains("exp_"), "a key was printed");
    assert!(!data.exists(), "a start that cannot listen created the data folder");
    drop(taken);

    // a host name is an address too (`localhost:0`: a free port on the loopback)
    let served = ServeCmd::new(&data).listen("localhost:0").start().await;
    let r = reqwest::get(served.url("/healthz")).await.unwrap();
    assert_eq!(r.status(), 200);
    served.stop().await;
}
