//! Webhook deliveries: a worker of its own (tokio tasks, not the export workers) that reads
//! the queue in the database (`db::deliveries`), POSTs each event to its endpoint with a
//! signature, and records what happened; failures are tried again with backoff for a day.
//!
//! At most `MAX_IN_FLIGHT` attempts run at once, at most `PER_ENDPOINT` per endpoint, each
//! cut off after `ATTEMPT_TIMEOUT`: a slow or dead endpoint holds two slots at most, never
//! the others, the exports or the API.

mod client;
mod worker;

use std::sync::{Arc, Mutex};

use crate::db::deliveries::Doorbell;
use crate::db::exports::ExportRow;
use crate::db::{self, Pool};
use crate::metrics::Metrics;

/// How deliveries are made.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Deliver to loopback, link-local and private addresses (`--webhook-allow-private`).
    pub allow_private: bool,
    /// Multiplies every retry wait and the day deliveries are retried for (1.0; tests make it
    /// small).
    pub retry_scale: f64,
}

/// Turns a stored export into the object the API shows for it (the `data` of an event). The
/// API's model lives above this layer; the wiring (`app`) passes it in.
pub type RenderExport = Arc<dyn Fn(&ExportRow) -> serde_json::Value + Send + Sync>;

/// Handle on the delivery worker; cheap to clone.
#[derive(Clone)]
pub struct Webhooks {
    inner: Arc<Inner>,
}

struct Inner {
    doorbell: Doorbell,
    allow_private: bool,
    stop: tokio::sync::watch::Sender<bool>,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Webhooks {
    /// Starts the delivery worker on the current tokio runtime. Deliveries left pending by an
    /// earlier run are sent as soon as they are due.
    pub fn start(
        pool: Pool,
        writer: db::Writer,
        doorbell: Doorbell,
        settings: Settings,
        metrics: Arc<Metrics>,
        render: RenderExport,
    ) -> Result<Webhooks, reqwest::Error> {
        let client = client::build(settings.allow_private)?;
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let ctx = Arc::new(worker::Ctx {
            pool,
            writer,
            doorbell: doorbell.clone(),
            client,
            settings: settings.clone(),
            metrics,
            render,
        });
        let task = tokio::spawn(worker::run(ctx, stopped));
        Ok(Webhooks {
            inner: Arc::new(Inner {
                doorbell,
                allow_private: settings.allow_private,
                stop,
                task: Mutex::new(Some(task)),
            }),
        })
    }

    /// Whether endpoints may name loopback, link-local or private addresses.
    pub fn allow_private(&self) -> bool {
        self.inner.allow_private
    }

    /// Wakes the worker: deliveries were enqueued and committed.
    pub fn ring(&self) {
        self.inner.doorbell.ring();
    }

    /// Stops the worker and waits for it. Attempts in flight are cut short; their deliveries
    /// stay pending and are sent again after the next start (at least once).
    pub async fn shutdown(&self) {
        let _ = self.inner.stop.send(true);
        let task = self.inner.task.lock().expect("webhook task lock").take();
        if let Some(task) = task {
            let _ = task.await;
        }
    }
}

/// When private addresses are refused: a new endpoint's host name must not resolve to one
/// (a name that does not resolve now is checked again at every delivery).
pub async fn check_new_endpoint_host(url: &str, allow_private: bool) -> Result<(), String> {
    if allow_private {
        return Ok(());
    }
    client::check_host_resolves_public(url).await
}

/// A new endpoint secret: `whsec_` and 32 random bytes in base64url (no padding).
pub fn new_secret() -> String {
    use base64::Engine;
    let mut bytes = [0u8; 32];
    getrandom::getrandom(&mut bytes).expect("the operating system's random source failed");
    format!("whsec_{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

#[cfg(test)]
mod tests {
    #[test]
    fn secrets_are_32_random_bytes_in_base64url() {
        use base64::Engine;
        let (a, b) = (super::new_secret(), super::new_secret());
        assert_ne!(a, b);
        let raw = a.strip_prefix("whsec_").unwrap();
        assert_eq!(base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(raw).unwrap().len(), 32);
    }
}
