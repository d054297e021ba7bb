//! The real binary as a child process: `exports-api serve` on a port it picks itself
//! (`--listen 127.0.0.1:0`), its address read from the "listening on" line it logs at start,
//! stdout and stderr collected; and the one-shot commands (`cli`, `bin`).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::poll_until;

/// The binary, with no `EXPORTS_*` or `RUST_LOG` variable inherited from the environment
/// (the tests read the default INFO log) and stdin closed.
pub fn bin() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_exports-api"));
    for (k, _) in std::env::vars() {
        if k.starts_with("EXPORTS_") || k == "RUST_LOG" {
            cmd.env_remove(k);
        }
    }
    cmd.stdin(Stdio::null());
    cmd
}

/// Runs `exports-api ARGS --data-dir DIR` and returns its output, whatever the exit status.
/// When the suite runs on PostgreSQL and an app ran on `DIR`, the tool is given that app's
/// database (`EXPORTS_DATABASE_URL`), as an operator gives it the server's.
pub fn run(data_dir: &Path, args: &[&str]) -> std::process::Output {
    bin_for(data_dir).args(args).arg("--data-dir").arg(data_dir).output().expect("run exports-api")
}

/// The `exports-api` binary for a data folder an app of the harness used: on the suite's
/// PostgreSQL database when the suite runs there (`EXPORTS_DATABASE_URL`, and the signing key
/// PostgreSQL requires), else on the folder's SQLite file.
pub fn bin_for(data_dir: &Path) -> Command {
    let mut cmd = bin();
    if let Some(url) = super::suite_database_of(data_dir) {
        cmd.env("EXPORTS_DATABASE_URL", url);
        cmd.env("EXPORTS_SIGNING_KEY", std::str::from_utf8(super::SIGNING_KEY).unwrap());
    }
    cmd
}

/// Runs the `exports-api` binary with `--data-dir`, returns its trimmed stdout; panics on failure.
pub fn cli(data_dir: &Path, args: &[&str]) -> String {
    let out = run(data_dir, args);
    assert!(out.status.success(), "exports-api {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// Lossy UTF-8 text of command output.
pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).to_string()
}

/// How to start `exports-api serve`: `--listen 127.0.0.1:0 --data-dir DIR` plus what is added.
pub struct ServeCmd {
    cmd: Command,
    listen: String,
    args: Vec<String>,
    umask: Option<libc::mode_t>,
}

impl ServeCmd {
    pub fn new(data_dir: &Path) -> ServeCmd {
        let mut cmd = bin_for(data_dir);
        cmd.arg("serve").arg("--data-dir").arg(data_dir);
        ServeCmd { cmd, listen: "127.0.0.1:0".into(), args: Vec::new(), umask: None }
    }

    /// Another `--listen` than port 0 (for a bad value).
    pub fn listen(mut self, listen: &str) -> ServeCmd {
        self.listen = listen.to_string();
        self
    }

    pub fn args(mut self, args: &[&str]) -> ServeCmd {
        self.args.extend(args.iter().map(|s| s.to_string()));
        self
    }

    pub fn env(mut self, k: &str, v: &str) -> ServeCmd {
        self.cmd.env(k, v);
        self
    }

    /// Runs the server under this umask.
    pub fn umask(mut self, mask: libc::mode_t) -> ServeCmd {
        self.umask = Some(mask);
        self
    }

    /// Starts the process without waiting for anything.
    pub fn spawn(mut self) -> Served {
        self.cmd.arg("--listen").arg(&self.listen).args(&self.args);
        if let Some(mask) = self.umask {
            use std::os::unix::process::CommandExt;
            // SAFETY: umask is async-signal-safe and touches no memory of the parent
            unsafe {
                self.cmd.pre_exec(move || {
                    libc::umask(mask);
                    Ok(())
                });
            }
        }
        let mut child =
            self.cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("start exports-api serve");
        let (out, r1) = collect(child.stdout.take().unwrap());
        let (err, r2) = collect(child.stderr.take().unwrap());
        Served { child: Some(child), addr: String::new(), out, err, readers: vec![r1, r2] }
    }

    /// Starts the process and waits until it logs the address it listens on.
    pub async fn start(self) -> Served {
        let mut s = self.spawn();
        let deadline = Instant::now() + Duration::from_secs(30);
        let addr = poll_until(deadline, "serve to log its address", || {
            if let Some(st) = s.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("serve exited at start ({st}); stderr:\n{}", s.stderr());
            }
            let err = s.stderr();
            let addr = err.lines().find_map(|l| l.split(" listening on ").nth(1)?.split_whitespace().next());
            std::future::ready(addr.map(str::to_string))
        })
        .await;
        s.addr = addr;
        s
    }
}

fn collect(r: impl std::io::Read + Send + 'static) -> (Arc<Mutex<String>>, std::thread::JoinHandle<()>) {
    let buf = Arc::new(Mutex::new(String::new()));
    let b = buf.clone();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(r).lines() {
            let Ok(line) = line else { break };
            let mut g = b.lock().unwrap();
            g.push_str(&line);
            g.push('\n');
        }
    });
    (buf, reader)
}

/// A running `exports-api serve`; SIGKILLed when dropped.
pub struct Served {
    child: Option<Child>,
    /// `127.0.0.1:PORT`, as logged (empty until `start` has read it).
    pub addr: String,
    out: Arc<Mutex<String>>,
    err: Arc<Mutex<String>>,
    readers: Vec<std::thread::JoinHandle<()>>,
}

/// What a stopped server left: its exit status, stdout and stderr (the log), complete.
pub struct Exited {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Served {
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// stdout so far.
    pub fn stdout(&self) -> String {
        self.out.lock().unwrap().clone()
    }

    /// stderr (the log) so far.
    pub fn stderr(&self) -> String {
        self.err.lock().unwrap().clone()
    }

    /// Polls until `stderr` holds `needle`; panics after `within`.
    pub async fn wait_log(&self, needle: &str, within: Duration) {
        poll_until(Instant::now() + within, &format!("{needle:?} in the log"), || {
            std::future::ready(self.stderr().contains(needle).then_some(()))
        })
        .await
    }

    /// Waits until the process exits by itself (None if it still runs after `within`: then
    /// it is killed); returns its status and complete output.
    pub async fn wait_exit(mut self, within: Duration) -> Option<Exited> {
        let deadline = Instant::now() + within;
        let mut child = self.child.take().unwrap();
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return Some(self.finish(status));
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
            tokio::time::sleep(super::POLL_PACE).await;
        }
    }

    /// SIGTERM, then waits for the exit (panics after `within`, killing it); returns the
    /// status and the complete output.
    pub async fn stop_within(mut self, within: Duration) -> Exited {
        let pid = self.pid() as libc::pid_t;
        // SAFETY: a plain kill(2) of our own child
        assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0, "SIGTERM");
        // on a timeout the panic drops `self`, which kills the process
        let child = self.child.as_mut().unwrap();
        let status =
            poll_until(Instant::now() + within, &format!("serve to stop within {within:?} of SIGTERM"), || {
                std::future::ready(child.try_wait().unwrap())
            })
            .await;
        self.child = None;
        self.finish(status)
    }

    /// SIGTERM, then waits for the exit (at most 30 s).
    pub async fn stop(self) -> Exited {
        self.stop_within(Duration::from_secs(30)).await
    }

    /// SIGKILL, and waits for the exit.
    pub fn kill(&mut self) {
        let mut c = self.child.take().expect("running");
        c.kill().unwrap();
        c.wait().unwrap();
    }

    fn finish(&mut self, status: ExitStatus) -> Exited {
        // the process is gone, so its pipes are closed: the readers end
        for r in self.readers.drain(..) {
            r.join().unwrap();
        }
        Exited { status, stdout: self.stdout(), stderr: self.stderr() }
    }

    /// The peak resident memory of the server so far, in bytes (VmHWM).
    pub fn peak_rss(&self) -> u64 {
        peak_rss(self.pid())
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The peak resident memory of a process, in bytes (`VmHWM` in `/proc/PID/status`).
pub fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc/PID/status");
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/PID/status");
    kb * 1024
}
