//! A throwaway PostgreSQL cluster for the PostgreSQL tests: `initdb` and `pg_ctl` (PostgreSQL
//! 15's server binaries, on PATH), started once per test binary in a temporary folder on a free
//! loopback port (`fsync=off`, trust authentication, its unix socket in that folder). Each test
//! gets a fresh database of its own ([`pg_database`]), so tests run in parallel.
//!
//! The cluster stops when the test binary ends, however it ends: a watchdog process
//! (`cat`, reading a pipe only this process writes to) sees the pipe close when the process
//! exits or is killed, then runs `pg_ctl -m immediate stop` and removes the folder.
//!
//! `initdb` and `pg_ctl` refuse to run as root: as root they run as the `postgres` user
//! (`runuser`), in a folder that user owns. Without the binaries the tests fail loudly, naming
//! the package; `EXPORTS_TEST_PG=off` turns them off (each says so on stderr).
//!
//! The `postgres` client blocks (it runs a runtime of its own): call these from plain
//! `#[test]`s or `spawn_blocking`, not from inside an async task.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

/// The user the cluster's superuser is called (trust authentication: no password).
pub const PG_USER: &str = "exports";

struct Cluster {
    port: u16,
}

static CLUSTER: OnceLock<Result<Cluster, String>> = OnceLock::new();
static DATABASES: AtomicUsize = AtomicUsize::new(0);

/// The URL of a new empty database (`postgres://exports@127.0.0.1:PORT/t_N`) on the test
/// cluster, started on first use; `None` (said on stderr) when `EXPORTS_TEST_PG=off`. Panics
/// when the server binaries are missing or the cluster does not start.
pub fn pg_database(test: &str) -> Option<String> {
    if std::env::var("EXPORTS_TEST_PG").is_ok_and(|v| v == "off") {
        eprintln!("SKIPPED {test}: PostgreSQL tests are off (EXPORTS_TEST_PG=off)");
        return None;
    }
    let cluster = CLUSTER.get_or_init(start).as_ref().unwrap_or_else(|e| panic!("{e}"));
    let name = format!("t_{}", DATABASES.fetch_add(1, Ordering::Relaxed));
    let mut admin = postgres::Client::connect(&cluster.url("postgres"), postgres::NoTls)
        .unwrap_or_else(|e| panic!("connect to the test cluster: {e}"));
    admin.batch_execute(&format!("CREATE DATABASE {name}")).unwrap_or_else(|e| panic!("CREATE DATABASE {name}: {e}"));
    Some(cluster.url(&name))
}

/// A plain client of the database at `url` (for checks beside the code under test).
pub fn pg_client(url: &str) -> postgres::Client {
    postgres::Client::connect(url, postgres::NoTls).unwrap_or_else(|e| panic!("connect to {url}: {e}"))
}

impl Cluster {
    fn url(&self, db: &str) -> String {
        format!("postgres://{PG_USER}@127.0.0.1:{}/{db}", self.port)
    }
}

/// `name` on PATH, else in Debian's folder for PostgreSQL 15 (`postgresql-15` does not put
/// its server binaries on PATH).
fn find_binary(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/lib/postgresql/15/bin")])
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// The user the server runs as when this process is root (`initdb` refuses root).
const UNPRIVILEGED: &str = "postgres";

/// A command running `program` as this process's user or, as root, as `postgres`.
fn as_server_user(program: &Path) -> Command {
    // SAFETY: geteuid has no preconditions
    if unsafe { libc::geteuid() } == 0 {
        let mut c = Command::new("runuser");
        c.args(["-u", UNPRIVILEGED, "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

/// Runs `cmd` to completion; its output in the error when it fails.
fn run(mut cmd: Command, what: &str) -> Result<(), String> {
    let out = cmd.stdin(Stdio::null()).output().map_err(|e| format!("{what}: cannot run: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{what} failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

fn start() -> Result<Cluster, String> {
    let (Some(initdb), Some(pg_ctl)) = (find_binary("initdb"), find_binary("pg_ctl")) else {
        return Err("PostgreSQL's server binaries (initdb, pg_ctl) are not on PATH, so the PostgreSQL tests \
                    cannot run: install PostgreSQL 15 (Debian: `apt-get install postgresql-15`, then put \
                    /usr/lib/postgresql/15/bin on PATH), or set EXPORTS_TEST_PG=off to skip them"
            .into());
    };
    let dir = tempfile::Builder::new().prefix("exports-pg-").tempdir().map_err(|e| e.to_string())?.keep();
    // SAFETY: geteuid has no preconditions
    if unsafe { libc::geteuid() } == 0 {
        let user = Command::new("id").args(["-u", UNPRIVILEGED]).output().map_err(|e| e.to_string())?;
        let uid: u32 = String::from_utf8_lossy(&user.stdout)
            .trim()
            .parse()
            .map_err(|_| format!("running as root, and there is no user `{UNPRIVILEGED}` to run PostgreSQL as"))?;
        std::os::unix::fs::chown(&dir, Some(uid), None).map_err(|e| format!("chown {}: {e}", dir.display()))?;
    }
    let data = dir.join("data");
    let mut init = as_server_user(&initdb);
    init.arg("-D").arg(&data).args(["-A", "trust", "-U", PG_USER, "--no-sync", "-E", "UTF8", "--locale=C"]);
    run(init, "initdb")?;

    // the watchdog: stops the cluster once this process has gone (its stdin reaches EOF when
    // the write end, held below until the process exits, is closed by the kernel)
    let stop = format!(
        "cat >/dev/null; '{}' -D '{}' -m immediate stop >/dev/null 2>&1; rm -rf '{}'",
        pg_ctl.display(),
        data.display(),
        dir.display()
    );
    let mut watchdog = as_server_user(Path::new("/bin/sh"));
    let watchdog = watchdog
        .args(["-c", &stop])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start the cluster's watchdog: {e}"))?;
    // never written to nor closed while the process lives
    std::mem::forget(watchdog.stdin);

    // a free port; another process may take it before the server binds it: try a few
    let mut last = String::new();
    for _ in 0..3 {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let options = format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off \
             -c full_page_writes=off -c max_connections=1000",
            dir.display()
        );
        let mut ctl = as_server_user(&pg_ctl);
        ctl.arg("-D").arg(&data).args(["-o", &options, "-l"]).arg(dir.join("log")).args(["-w", "-t", "60", "start"]);
        match run(ctl, "pg_ctl start") {
            Ok(()) => return Ok(Cluster { port }),
            Err(e) => {
                let log = std::fs::read_to_string(dir.join("log")).unwrap_or_default();
                last = format!("{e}\nserver log:\n{log}");
            }
        }
    }
    Err(last)
}
