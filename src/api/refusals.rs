//! Refused requests (401 and 429) are summarised per client address: the first one of a
//! minute is logged, the rest of that minute become one WARN line saying how many more there
//! were, so a client trying keys cannot flood the log. Used by the request log.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long refusals from one address are counted before the count is logged.
const WINDOW: Duration = Duration::from_secs(60);
/// Addresses whose refusals are counted one by one; beyond it they are counted together, so
/// memory stays bounded whatever the number of addresses.
const MAX_ADDRESSES: usize = 4096;
/// Counts refusals per client address; logs the counts.
#[derive(Default)]
pub struct Refusals {
    /// Whether any address is being counted (skips the lock on ordinary requests).
    counting: AtomicBool,
    state: Mutex<RefusalState>,
}

impl Refusals {
    /// A refusal from `ip`: true when it is the first of its window and gets its own line.
    pub fn refused(&self, ip: IpAddr, now: Instant) -> bool {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let first = st.refused(ip, now);
        log_summaries(st.sweep(now, false));
        self.counting.store(st.is_counting(), Ordering::Relaxed);
        first
    }

    /// Any other request: logs the counts of windows that have ended.
    pub fn tick(&self, now: Instant) {
        if !self.counting.load(Ordering::Relaxed) {
            return;
        }
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        log_summaries(st.sweep(now, false));
        self.counting.store(st.is_counting(), Ordering::Relaxed);
    }
}

impl Drop for Refusals {
    /// The server stops: counts not yet logged are logged now.
    fn drop(&mut self) {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        log_summaries(st.sweep(Instant::now(), true));
    }
}

fn log_summaries(summaries: Vec<Summary>) {
    for s in summaries {
        let client = s.client.map(|ip| ip.to_string()).unwrap_or_else(|| "other addresses".into());
        tracing::warn!(
            "{} more refused requests (401/429) from {client} within {} s, not logged one by one",
            s.unlogged,
            s.seconds
        );
    }
}

#[derive(Default)]
struct RefusalState {
    windows: HashMap<IpAddr, Window>,
    /// Refusals from addresses past `MAX_ADDRESSES`.
    overflow: Option<Window>,
    next_sweep: Option<Instant>,
}

struct Window {
    since: Instant,
    /// Refusals after the logged one.
    unlogged: u64,
}

#[derive(Debug, PartialEq)]
struct Summary {
    /// `None`: the addresses past `MAX_ADDRESSES`, together.
    client: Option<IpAddr>,
    unlogged: u64,
    seconds: u64,
}

impl RefusalState {
    fn refused(&mut self, ip: IpAddr, now: Instant) -> bool {
        if let Some(w) = self.windows.get_mut(&ip) {
            w.unlogged += 1;
            return false;
        }
        if self.windows.len() >= MAX_ADDRESSES {
            self.sweep_windows(now, false, &mut Vec::new());
        }
        if self.windows.len() >= MAX_ADDRESSES {
            match &mut self.overflow {
                Some(w) => {
                    w.unlogged += 1;
                    return false;
                }
                None => {
                    self.overflow = Some(Window { since: now, unlogged: 0 });
                    return true;
                }
            }
        }
        self.windows.insert(ip, Window { since: now, unlogged: 0 });
        true
    }

    fn is_counting(&self) -> bool {
        !self.windows.is_empty() || self.overflow.is_some()
    }

    /// Ends the windows older than `WINDOW` (every window with `all`), at most once a second
    /// unless `all`; returns the counts to log.
    fn sweep(&mut self, now: Instant, all: bool) -> Vec<Summary> {
        let mut out = Vec::new();
        if !all && self.next_sweep.is_some_and(|t| now < t) {
            return out;
        }
        self.next_sweep = Some(now + Duration::from_secs(1));
        self.sweep_windows(now, all, &mut out);
        let overflow_ended = self.overflow.as_ref().is_some_and(|w| all || now.duration_since(w.since) >= WINDOW);
        if overflow_ended {
            if let Some(w) = self.overflow.take().filter(|w| w.unlogged > 0) {
                out.push(Summary { client: None, unlogged: w.unlogged, seconds: secs(now, w.since) });
            }
        }
        out
    }

    fn sweep_windows(&mut self, now: Instant, all: bool, out: &mut Vec<Summary>) {
        self.windows.retain(|ip, w| {
            let ended = all || now.duration_since(w.since) >= WINDOW;
            if ended && w.unlogged > 0 {
                out.push(Summary { client: Some(*ip), unlogged: w.unlogged, seconds: secs(now, w.since) });
            }
            !ended
        });
    }
}

fn secs(now: Instant, since: Instant) -> u64 {
    now.duration_since(since).as_secs().max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(n: u32) -> IpAddr {
        IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + n))
    }

    #[test]
    fn first_refusal_logged_then_one_count_per_minute() {
        let t0 = Instant::now();
        let mut st = RefusalState::default();
        assert!(st.refused(ip(1), t0));
        for i in 1..=10 {
            assert!(!st.refused(ip(1), t0 + Duration::from_secs(i)));
        }
        assert!(st.refused(ip(2), t0 + Duration::from_secs(2)), "another address has its own window");
        assert!(st.sweep(t0 + Duration::from_secs(30), false).is_empty());
        let s = st.sweep(t0 + Duration::from_secs(61), false);
        assert_eq!(s, vec![Summary { client: Some(ip(1)), unlogged: 10, seconds: 61 }]);
        // a new window opens with the next refusal
        assert!(st.refused(ip(1), t0 + Duration::from_secs(62)));
        // ip(2) had no more refusals: nothing to say about it
        assert!(st.sweep(t0 + Duration::from_secs(63), false).is_empty());
        assert!(!st.windows.contains_key(&ip(2)));
    }

    #[test]
    fn stopping_logs_every_open_count() {
        let t0 = Instant::now();
        let mut st = RefusalState::default();
        st.refused(ip(1), t0);
        st.refused(ip(1), t0);
        st.refused(ip(1), t0);
        assert_eq!(st.sweep(t0, true), vec![Summary { client: Some(ip(1)), unlogged: 2, seconds: 1 }]);
        assert!(!st.is_counting());
    }

    #[test]
    fn memory_is_bounded() {
        let t0 = Instant::now();
        let mut st = RefusalState::default();
        let mut logged = 0;
        for n in 0..(MAX_ADDRESSES as u32 + 1000) {
            logged += st.refused(ip(n), t0) as u32;
        }
        assert_eq!(st.windows.len(), MAX_ADDRESSES);
        assert_eq!(logged, MAX_ADDRESSES as u32 + 1, "past the cap, one line for all the others");
        let s = st.sweep(t0 + WINDOW, false);
        assert_eq!(s, vec![Summary { client: None, unlogged: 999, seconds: 60 }]);
        assert!(!st.is_counting());
    }
}
