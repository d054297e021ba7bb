//! Export work yields the CPU to the API.
//!
//! A long export keeps every core busy (one thread reads the cursor, one formatting thread per
//! CPU). At normal priority the API's threads then wait for a time slice, and a request that
//! holds the write connection can be preempted while others queue behind it: `POST` p99 went to
//! hundreds of milliseconds while exports ran. Under `SCHED_IDLE` (Linux) a thread runs only
//! when no normal thread wants the CPU, and an API thread that wakes up preempts it at once.
//! Exports still get every cycle the API leaves idle, which is nearly all of them.
//!
//! The work runs on a thread of its own: Linux lets a thread leave `SCHED_IDLE` only with
//! `CAP_SYS_NICE` (which containers usually lack), so the worker thread, which records the
//! outcome through the write connection, never enters it. Threads inherit the policy from the
//! thread that creates them, so an export's formatting threads run under it too.

/// Runs `f` on a new thread named `name` at idle CPU priority and waits for it. A panic in `f`
/// comes back as `Err`, as from `std::panic::catch_unwind`.
pub fn run_in_background<T: Send>(name: String, f: impl FnOnce() -> T + Send) -> std::thread::Result<T> {
    std::thread::scope(|scope| {
        let spawned = std::thread::Builder::new().name(name).spawn_scoped(scope, || {
            lower_priority();
            f()
        });
        match spawned {
            Ok(handle) => handle.join(),
            Err(e) => Err(Box::new(format!("could not start an export thread: {e}")) as Box<dyn std::any::Any + Send>),
        }
    })
}

#[cfg(target_os = "linux")]
fn lower_priority() {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: pid 0 names the calling thread and `param` is a valid sched_param.
    if unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) } != 0 {
        tracing::debug!(error = %std::io::Error::last_os_error(), "export runs at normal CPU priority");
    }
}

#[cfg(not(target_os = "linux"))]
fn lower_priority() {}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    fn policy() -> libc::c_int {
        // SAFETY: pid 0 names the calling thread.
        unsafe { libc::sched_getscheduler(0) }
    }

    #[test]
    fn work_runs_at_idle_priority_and_so_do_its_threads() {
        let caller = policy();
        let (own, child) =
            run_in_background("bg-test".into(), || (policy(), std::thread::spawn(policy).join().unwrap())).unwrap();
        assert_eq!(own, libc::SCHED_IDLE);
        assert_eq!(child, libc::SCHED_IDLE, "formatting threads inherit the policy");
        assert_eq!(policy(), caller, "the calling thread keeps its priority");
    }

    #[test]
    fn a_panic_comes_back_as_err() {
        let r = run_in_background("bg-panic".into(), || -> u8 { panic!("boom") });
        assert!(r.is_err());
    }
}
