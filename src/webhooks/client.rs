//! The HTTP client of deliveries: rustls, no proxy, redirects not followed, and, when private
//! addresses are refused, a resolver that refuses names resolving to one (checked at every
//! connection, so a name cannot point elsewhere after the endpoint was checked).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use crate::domain::webhook::{is_private, private_refusal};

/// An attempt that has no answer after this long has failed.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);

pub fn build(allow_private: bool) -> Result<reqwest::Client, reqwest::Error> {
    let mut b = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .timeout(ATTEMPT_TIMEOUT)
        .connect_timeout(ATTEMPT_TIMEOUT)
        .pool_idle_timeout(Duration::from_secs(30))
        .user_agent(concat!("exports-api-webhooks/", env!("CARGO_PKG_VERSION")));
    if !allow_private {
        b = b.dns_resolver(Arc::new(PublicOnly));
    }
    b.build()
}

/// Resolves with the system resolver and refuses a name with any private address.
struct PublicOnly;

impl Resolve for PublicOnly {
    fn resolve(&self, name: Name) -> Resolving {
        Box::pin(async move {
            let host = name.as_str().to_string();
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            if addrs.iter().any(|a| is_private(a.ip())) {
                return Err(std::io::Error::other(private_refusal(&host)).into());
            }
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

/// How long the check of a new endpoint's host name may take.
const CREATE_LOOKUP_TIMEOUT: Duration = Duration::from_secs(3);

/// When private addresses are refused: a new endpoint whose host name resolves to one is
/// refused (the message says why). A name that does not resolve now is let through: it is
/// checked again at every delivery.
pub async fn check_host_resolves_public(url: &str) -> Result<(), String> {
    let Some(host) = url::Url::parse(url).ok().and_then(|u| u.host_str().map(str::to_string)) else {
        return Ok(());
    };
    let lookup = tokio::net::lookup_host((host.as_str(), 0));
    if let Ok(Ok(addrs)) = tokio::time::timeout(CREATE_LOOKUP_TIMEOUT, lookup).await {
        if addrs.into_iter().any(|a| is_private(a.ip())) {
            return Err(private_refusal(&host));
        }
    }
    Ok(())
}

/// An attempt's failure in words: the error and its causes.
pub fn describe(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        return format!("no answer within {} s", ATTEMPT_TIMEOUT.as_secs());
    }
    let mut parts = vec![e.to_string()];
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let text = s.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = s.source();
    }
    parts.join(": ")
}
