//! Webhooks: the events an endpoint may subscribe to, the checks on a new endpoint, the
//! signature of a delivery, and when a failed delivery is tried again (events.md, "Webhooks").

use std::net::IpAddr;
use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// What happened to an export, as a webhook event's `type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    /// The export's file is ready.
    ExportCompleted,
    /// The export FAILED (its `error` says why).
    ExportFailed,
    /// The export was deleted (through the API or by retention).
    ExportDeleted,
}

/// Every event type, in the order messages list them.
pub const EVENT_TYPES: [EventType; 3] = [EventType::ExportCompleted, EventType::ExportFailed, EventType::ExportDeleted];

/// The subscription to every event type, present and future.
pub const ALL_EVENTS: &str = "*";

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::ExportCompleted => "export.completed",
            EventType::ExportFailed => "export.failed",
            EventType::ExportDeleted => "export.deleted",
        }
    }

    pub fn parse(s: &str) -> Option<EventType> {
        EVENT_TYPES.into_iter().find(|e| e.as_str() == s)
    }
}

/// Longest endpoint URL accepted, in bytes.
pub const MAX_URL_LEN: usize = 2048;
/// Longest description accepted, in characters.
pub const MAX_DESCRIPTION_CHARS: usize = 500;

/// A checked new endpoint: an absolute http(s) URL and the event names it subscribes to
/// (`["*"]`, or known event types without duplicates, in the order given).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEndpoint {
    pub url: String,
    pub events: Vec<String>,
    pub description: Option<String>,
}

impl NewEndpoint {
    /// Checks a new endpoint; the error is a message for the caller. With `allow_private`
    /// false, a URL naming a loopback, link-local or private address (or `localhost`) is
    /// refused; names are checked again after DNS resolution at each delivery.
    pub fn check(
        url: &str,
        events: &[String],
        description: Option<String>,
        allow_private: bool,
    ) -> Result<NewEndpoint, String> {
        let url = check_url(url, allow_private)?;
        let events = check_events(events)?;
        if description.as_ref().is_some_and(|d| d.chars().count() > MAX_DESCRIPTION_CHARS) {
            return Err(format!("description: must be at most {MAX_DESCRIPTION_CHARS} characters long"));
        }
        Ok(NewEndpoint { url, events, description })
    }
}

/// The names of every event type, for messages: `export.completed, export.failed, …`.
fn allowed_list() -> String {
    let mut names: Vec<&str> = EVENT_TYPES.iter().map(|e| e.as_str()).collect();
    names.push("\"*\" (all)");
    names.join(", ")
}

/// `["*"]`, or one or more known event names; duplicates are dropped.
pub fn check_events(events: &[String]) -> Result<Vec<String>, String> {
    if events.is_empty() {
        return Err(format!("events: name at least one event; allowed: {}", allowed_list()));
    }
    if events.iter().any(|e| e == ALL_EVENTS) {
        if events.len() > 1 {
            return Err("events: \"*\" already means every event; send it alone".into());
        }
        return Ok(vec![ALL_EVENTS.into()]);
    }
    let mut out: Vec<String> = Vec::new();
    for e in events {
        if EventType::parse(e).is_none() {
            let shown: String = e.chars().take(100).collect();
            return Err(format!("events: unknown event '{shown}'; allowed: {}", allowed_list()));
        }
        if !out.contains(e) {
            out.push(e.clone());
        }
    }
    Ok(out)
}

/// Whether an endpoint subscribed to `events` gets `event`.
pub fn subscribed(events: &[String], event: EventType) -> bool {
    events.iter().any(|e| e == ALL_EVENTS || e == event.as_str())
}

/// An absolute `http`/`https` URL with a host, at most `MAX_URL_LEN` bytes; returned as parsed
/// (normalised) text.
pub fn check_url(raw: &str, allow_private: bool) -> Result<String, String> {
    if raw.len() > MAX_URL_LEN {
        return Err(format!("url: must be at most {MAX_URL_LEN} characters long"));
    }
    let url = url::Url::parse(raw.trim()).map_err(|e| format!("url: not an absolute URL ({e})"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("url: the scheme must be http or https, not '{}'", url.scheme()));
    }
    let host = match url.host() {
        Some(h) => h,
        None => return Err("url: the URL has no host".into()),
    };
    if !allow_private {
        let refused = match host {
            url::Host::Ipv4(ip) => is_private(IpAddr::V4(ip)),
            url::Host::Ipv6(ip) => is_private(IpAddr::V6(ip)),
            url::Host::Domain(name) => {
                let name = name.trim_end_matches('.').to_ascii_lowercase();
                name == "localhost" || name.ends_with(".localhost")
            }
        };
        if refused {
            return Err(private_refusal(url.host_str().unwrap_or_default()));
        }
    }
    Ok(url.to_string())
}

/// The message for a URL or resolved address that is private while private addresses are
/// refused.
pub fn private_refusal(host: &str) -> String {
    format!(
        "url: {host} is a loopback, link-local or private address, and this server refuses those \
         (--webhook-allow-private false); use a public address"
    )
}

/// Loopback, link-local, private (RFC 1918, unique local), shared (100.64/10), unspecified,
/// broadcast and multicast addresses: none of them is a receiver on the public internet.
pub fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || o[0] == 0
                || (o[0] == 100 && (o[1] & 0xc0) == 64)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_private(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00 // unique local fc00::/7
                || (first & 0xffc0) == 0xfe80 // link-local fe80::/10
        }
    }
}

/// The `x-exports-signature` header of a delivery: `t=<unix seconds>,v1=<hex HMAC-SHA256 of
/// "<t>.<body>" keyed with the whole secret text>`.
pub fn signature(secret: &str, t: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("t={t},v1={}", hex::encode(mac.finalize().into_bytes()))
}

/// Waits before the attempts after the first, each at most once; past the last, every 3 h.
const BACKOFF: [Duration; 5] = [
    Duration::from_secs(30),
    Duration::from_secs(120),
    Duration::from_secs(600),
    Duration::from_secs(3600),
    Duration::from_secs(3 * 3600),
];

/// How long failed deliveries are tried again, from the event.
pub const RETRY_FOR: Duration = Duration::from_secs(24 * 3600);

/// When a delivery that has now failed `attempts` times (1 or more) is tried next, in ms
/// since the epoch; `None`: give up (the next try would be more than `RETRY_FOR` after
/// `created_ms`). `scale` multiplies every wait and the window (1.0 in service; tests make it
/// small).
pub fn next_attempt(created_ms: i64, now_ms: i64, attempts: i64, scale: f64) -> Option<i64> {
    let step = BACKOFF[((attempts - 1).max(0) as usize).min(BACKOFF.len() - 1)];
    let wait = (step.as_millis() as f64 * scale).round() as i64;
    let window = (RETRY_FOR.as_millis() as f64 * scale).round() as i64;
    let at = now_ms + wait.max(1);
    (at <= created_ms + window).then_some(at)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_checked() {
        let v = |s: &[&str]| s.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(check_events(&v(&["*"])).unwrap(), ["*"]);
        assert_eq!(
            check_events(&v(&["export.failed", "export.completed", "export.failed"])).unwrap(),
            ["export.failed", "export.completed"]
        );
        let e = check_events(&v(&["export.done"])).unwrap_err();
        assert!(e.contains("export.done") && e.contains("export.completed") && e.contains("export.deleted"), "{e}");
        assert!(check_events(&[]).is_err());
        assert!(check_events(&v(&["*", "export.failed"])).is_err());
        assert!(subscribed(&v(&["*"]), EventType::ExportDeleted));
        assert!(subscribed(&v(&["export.failed"]), EventType::ExportFailed));
        assert!(!subscribed(&v(&["export.failed"]), EventType::ExportCompleted));
    }

    #[test]
    fn urls_are_checked() {
        assert_eq!(check_url("https://hooks.example.com/x?y=1", false).unwrap(), "https://hooks.example.com/x?y=1");
        assert!(check_url("http://127.0.0.1:9/hook", true).is_ok());
        for bad in ["ftp://example.com/", "not a url", "/relative", "mailto:a@example.com", "http://"] {
            assert!(check_url(bad, true).is_err(), "{bad}");
        }
        for private in [
            "http://127.0.0.1/x",
            "http://10.1.2.3/",
            "http://192.168.0.1/",
            "http://172.16.5.4/",
            "http://169.254.169.254/latest/meta-data",
            "http://[::1]/",
            "http://[fe80::1]/",
            "http://[fd00::1]/",
            "http://[::ffff:127.0.0.1]/",
            "http://localhost:8080/",
            "http://api.localhost/",
            "http://0.0.0.0/",
            "http://100.64.0.1/",
        ] {
            let e = check_url(private, false).unwrap_err();
            assert!(e.contains("--webhook-allow-private"), "{private}: {e}");
            assert!(check_url(private, true).is_ok(), "{private} is allowed by default");
        }
        assert!(check_url("http://8.8.8.8/", false).is_ok());
        assert!(check_url(&format!("https://example.com/{}", "a".repeat(MAX_URL_LEN)), true).is_err());
    }

    /// The signature a receiver computes with the README's recipe: HMAC-SHA256 keyed with the
    /// secret's text over `t.body`, in hex (a known vector computed with `openssl dgst`).
    #[test]
    fn signatures_follow_the_documented_recipe() {
        let s = signature("whsec_test", 1700000000, b"{\"a\":1}");
        assert_eq!(s, "t=1700000000,v1=38877139021993b830af32feea6e18a8da83eb2f6e49ee50bd9e4cf4ca4d3789");
    }

    #[test]
    fn retries_back_off_then_stop_after_a_day() {
        let h = 3_600_000;
        assert_eq!(next_attempt(0, 0, 1, 1.0), Some(30_000));
        assert_eq!(next_attempt(0, 0, 2, 1.0), Some(120_000));
        assert_eq!(next_attempt(0, 0, 4, 1.0), Some(h));
        assert_eq!(next_attempt(0, 0, 9, 1.0), Some(3 * h));
        assert_eq!(next_attempt(0, 21 * h, 9, 1.0), Some(24 * h));
        assert_eq!(next_attempt(0, 21 * h + 1, 9, 1.0), None);
        assert_eq!(next_attempt(0, 0, 1, 0.01), Some(300));
    }
}
