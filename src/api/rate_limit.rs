//! Request rate limits (`--rate-limit N`, `EXPORTS_RATE_LIMIT`): N requests per second with
//! bursts of 2N, counted per API key, and per client address for requests that have no valid
//! key. Over a limit the answer is 429 with `Retry-After` (whole seconds) and a message naming
//! the limit. `0` turns both off.
//!
//! Which requests count:
//! - `/v1/...` with an `x-api-key` the database accepts: against that key only, never against
//!   the client address, so one busy key does not slow the other clients behind the same
//!   address.
//! - `/v1/...` with no key, or a key the database does not know (wrong, revoked): against the
//!   client address. Once an address is over its limit, keys from it that have not been
//!   accepted since the server started get 429 without being looked up: a stream of fresh
//!   random keys is slowed like any other, and cannot be used to guess a key quickly.
//! - `/files/...` signed downloads (no key): against the client address.
//! - Nothing else: `/healthz` (an orchestrator's probe must never get 429), `/metrics` (a
//!   scraper's neither), `/docs`, `/openapi.json` and `/` are not limited.
//!
//! The client address is the TCP peer. Behind a reverse proxy every client has the proxy's
//! address and shares one address limit; keys are still limited one by one. IPv6 clients are
//! counted per /64 network (one host usually holds a whole /64).
//!
//! Keys are kept only as SHA-256 digests. Limiter state of keys and addresses not seen for a
//! while is dropped every `PRUNE_EVERY` by a task that ends with the limiter.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};
use poem::{Endpoint, IntoResponse, Middleware, Request, Response};
use sha2::{Digest, Sha256};

use crate::error::ApiError;

/// How often state of idle keys and addresses is dropped.
pub const PRUNE_EVERY: Duration = Duration::from_secs(10);

/// A key accepted by the database is remembered this long after its last use.
const KNOWN_KEY_IDLE: Duration = Duration::from_secs(3600);

type KeyDigest = [u8; 32];

/// The limiter state of one running server.
pub struct RateLimits {
    per_second: u32,
    clock: DefaultClock,
    /// Charged only for keys the database accepted.
    keys: DefaultKeyedRateLimiter<KeyDigest>,
    /// Charged for requests without a valid key.
    addrs: DefaultKeyedRateLimiter<IpAddr>,
    /// Addresses found over their limit, and until when: looked at (without charging) before
    /// a key that is not known to be valid is looked up.
    blocked: Mutex<HashMap<IpAddr, Instant>>,
    /// Digests of keys the database accepted, with their last use.
    known: Mutex<HashMap<KeyDigest, Instant>>,
}

impl RateLimits {
    /// The limits for `per_second` requests per second (burst twice that); `None` for 0 (off).
    pub fn new(per_second: u32) -> Option<Arc<RateLimits>> {
        let rate = NonZeroU32::new(per_second)?;
        let burst = NonZeroU32::new(per_second.saturating_mul(2)).unwrap_or(rate);
        let quota = Quota::per_second(rate).allow_burst(burst);
        Some(Arc::new(RateLimits {
            per_second,
            clock: DefaultClock::default(),
            keys: DefaultKeyedRateLimiter::dashmap(quota),
            addrs: DefaultKeyedRateLimiter::dashmap(quota),
            blocked: Mutex::new(HashMap::new()),
            known: Mutex::new(HashMap::new()),
        }))
    }

    /// Starts the task that prunes idle state every `PRUNE_EVERY`; it ends once the limits
    /// are dropped (when the app is).
    pub fn spawn_pruner(self: &Arc<Self>) {
        let weak: Weak<RateLimits> = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(PRUNE_EVERY).await;
                match weak.upgrade() {
                    Some(limits) => limits.prune(),
                    None => break,
                }
            }
        });
    }

    /// Drops the state of keys and addresses that are back to a full burst, expired blocks and
    /// keys idle for an hour, and gives the memory back.
    pub fn prune(&self) {
        self.keys.retain_recent();
        self.keys.shrink_to_fit();
        self.addrs.retain_recent();
        self.addrs.shrink_to_fit();
        let now = Instant::now();
        let mut blocked = self.blocked.lock().expect("rate limit lock");
        blocked.retain(|_, until| *until > now);
        blocked.shrink_to_fit();
        drop(blocked);
        let mut known = self.known.lock().expect("rate limit lock");
        known.retain(|_, seen| now.duration_since(*seen) < KNOWN_KEY_IDLE);
        known.shrink_to_fit();
    }

    /// Entries held: (keys, addresses, blocked addresses, known keys).
    pub fn tracked(&self) -> (usize, usize, usize, usize) {
        let blocked = self.blocked.lock().expect("rate limit lock").len();
        let known = self.known.lock().expect("rate limit lock").len();
        (self.keys.len(), self.addrs.len(), blocked, known)
    }

    /// Counts one request of a valid key.
    fn charge_key(&self, key: &KeyDigest) -> Result<(), ApiError> {
        self.keys.check_key(key).map_err(|not_until| {
            let secs = whole_seconds(not_until.wait_time_from(self.clock.now()));
            ApiError::too_many(
                format!(
                    "rate limit of {} requests per second per API key reached (--rate-limit); retry after {secs} s",
                    self.per_second
                ),
                secs,
            )
        })
    }

    /// Counts one request without a valid key against its client address.
    fn charge_address(&self, addr: IpAddr) -> Result<(), ApiError> {
        self.addrs.check_key(&addr).map_err(|not_until| {
            let until = not_until.earliest_possible();
            self.blocked.lock().expect("rate limit lock").insert(addr, until);
            self.address_error(until.saturating_duration_since(self.clock.now()))
        })
    }

    /// How long the address stays over its limit, if it is; charges nothing.
    fn blocked_for(&self, addr: IpAddr) -> Option<Duration> {
        let until = *self.blocked.lock().expect("rate limit lock").get(&addr)?;
        let left = until.saturating_duration_since(Instant::now());
        (!left.is_zero()).then_some(left)
    }

    fn address_error(&self, wait: Duration) -> ApiError {
        let secs = whole_seconds(wait);
        ApiError::too_many(
            format!(
                "rate limit of {} requests per second per client address reached for requests without a valid \
                 API key and for downloads (--rate-limit); retry after {secs} s",
                self.per_second
            ),
            secs,
        )
    }

    fn is_known(&self, key: &KeyDigest) -> bool {
        let mut known = self.known.lock().expect("rate limit lock");
        match known.get_mut(key) {
            Some(seen) => {
                *seen = Instant::now();
                true
            }
            None => false,
        }
    }

    fn set_known(&self, key: KeyDigest, valid: bool) {
        let mut known = self.known.lock().expect("rate limit lock");
        if valid {
            known.insert(key, Instant::now());
        } else {
            known.remove(&key);
        }
    }

    /// Applies the limits around one request.
    async fn around<E: Endpoint>(&self, ep: &E, mut req: Request) -> poem::Result<Response> {
        let path = req.uri().path();
        let is_api = path == "/v1" || path.starts_with("/v1/");
        let is_file = path.starts_with("/files/");
        if !is_api && !is_file {
            return ep.call(req).await.map(IntoResponse::into_response);
        }
        let addr = client_address(&req);
        let key = if is_api { req.headers().get("x-api-key").map(|v| digest(v.as_bytes())) } else { None };
        let Some(key) = key else {
            self.charge_address(addr)?;
            return ep.call(req).await.map(IntoResponse::into_response);
        };
        let known = self.is_known(&key);
        if known {
            self.charge_key(&key)?;
        } else if let Some(wait) = self.blocked_for(addr) {
            return Err(self.address_error(wait).into());
        }
        let verdict = KeyVerdict::default();
        req.extensions_mut().insert(verdict.clone());
        let result = ep.call(req).await.map(IntoResponse::into_response);
        match verdict.get() {
            Some(true) if !known => {
                self.set_known(key, true);
                // the request is done; this only counts it
                let _ = self.charge_key(&key);
            }
            Some(true) => {}
            Some(false) => {
                self.set_known(key, false);
                self.charge_address(addr)?;
            }
            // the route did not check the key (no such route): count it as an unknown key
            None if !known => self.charge_address(addr)?,
            None => {}
        }
        result
    }
}

/// What the key check (`api::auth`) found for this request's key; the rate limiter reads it
/// once the request is done. Absent when rate limiting is off.
#[derive(Clone, Default)]
pub struct KeyVerdict(Arc<AtomicU8>);

impl KeyVerdict {
    const VALID: u8 = 1;
    const INVALID: u8 = 2;

    fn get(&self) -> Option<bool> {
        match self.0.load(Ordering::SeqCst) {
            Self::VALID => Some(true),
            Self::INVALID => Some(false),
            _ => None,
        }
    }
}

/// Records whether the database accepted the request's key.
pub fn record_key_check(req: &Request, valid: bool) {
    if let Some(v) = req.extensions().get::<KeyVerdict>() {
        v.0.store(if valid { KeyVerdict::VALID } else { KeyVerdict::INVALID }, Ordering::SeqCst);
    }
}

/// The middleware: `None` lets every request through.
pub struct RateLimit(pub Option<Arc<RateLimits>>);

impl<E: Endpoint> Middleware<E> for RateLimit {
    type Output = RateLimitEndpoint<E>;

    fn transform(&self, ep: E) -> Self::Output {
        RateLimitEndpoint { inner: ep, limits: self.0.clone() }
    }
}

pub struct RateLimitEndpoint<E> {
    inner: E,
    limits: Option<Arc<RateLimits>>,
}

impl<E: Endpoint> Endpoint for RateLimitEndpoint<E> {
    type Output = Response;

    async fn call(&self, req: Request) -> poem::Result<Response> {
        match &self.limits {
            Some(limits) => limits.around(&self.inner, req).await,
            None => self.inner.call(req).await.map(IntoResponse::into_response),
        }
    }
}

fn digest(key: &[u8]) -> KeyDigest {
    Sha256::digest(key).into()
}

/// The address a request is counted against: the TCP peer, IPv6 per /64.
fn client_address(req: &Request) -> IpAddr {
    let ip = req.remote_addr().as_socket_addr().map(|a| a.ip().to_canonical());
    match ip {
        Some(IpAddr::V6(v6)) => {
            let s = v6.segments();
            IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
        Some(ip) => ip,
        None => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    }
}

/// Whole seconds, rounded up, at least 1.
fn whole_seconds(d: Duration) -> u64 {
    let s = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    s.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_is_whole_seconds_at_least_one() {
        assert_eq!(whole_seconds(Duration::ZERO), 1);
        assert_eq!(whole_seconds(Duration::from_millis(200)), 1);
        assert_eq!(whole_seconds(Duration::from_millis(1001)), 2);
        assert_eq!(whole_seconds(Duration::from_secs(3)), 3);
    }

    #[test]
    fn zero_turns_limits_off() {
        assert!(RateLimits::new(0).is_none());
        assert!(RateLimits::new(1).is_some());
    }

    /// State under many distinct addresses and keys does not stay: pruning drops what is back
    /// to a full burst.
    #[test]
    fn pruning_drops_idle_state() {
        let limits = RateLimits::new(1000).unwrap();
        for i in 0..5000u32 {
            limits.charge_address(IpAddr::V4(i.into())).unwrap();
            limits.charge_key(&digest(&i.to_be_bytes())).unwrap();
        }
        assert_eq!(limits.tracked().0, 5000);
        assert_eq!(limits.tracked().1, 5000);
        // one request of a 1000/s limit is forgotten 1 ms later
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            limits.prune();
            let (keys, addrs, _, _) = limits.tracked();
            if keys == 0 && addrs == 0 {
                break;
            }
            assert!(Instant::now() < deadline, "state not pruned: {keys} keys, {addrs} addresses");
            std::thread::yield_now();
        }
    }

    #[test]
    fn address_limit_blocks_after_the_burst() {
        let limits = RateLimits::new(2).unwrap();
        let addr: IpAddr = "192.0.2.1".parse().unwrap();
        let mut passed = 0;
        while limits.charge_address(addr).is_ok() {
            passed += 1;
            assert!(passed < 100, "never limited");
        }
        assert!(passed >= 4, "the burst is twice the rate: {passed}");
        assert!(limits.blocked_for(addr).is_some());
        assert!(limits.blocked_for("192.0.2.2".parse().unwrap()).is_none());
    }
}
