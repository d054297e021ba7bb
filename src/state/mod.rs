//! The state every request handler shares, below the API: the database handles, the signer,
//! the export workers and the settings requests are checked against.

pub mod key_cache;

use std::sync::Arc;
use std::time::Duration;

use crate::config::Limits;
use crate::data_dir::DataDir;
use crate::db::counts::ListCounts;
use crate::db::{self, Pool};
use crate::jobs::runner::Jobs;
use crate::metrics::Metrics;
use crate::signing::Signer;
use crate::storage::Store;
use crate::webhooks::Webhooks;
use key_cache::KeyCache;

/// What every request handler can reach.
pub struct AppState {
    /// Connections for reads.
    pub pool: Pool,
    /// The one connection that writes (see `db::Writer`).
    pub writer: db::Writer,
    pub signer: Signer,
    /// Base of download URLs, without a trailing slash.
    pub public_url: String,
    pub url_ttl: Duration,
    pub data_dir: DataDir,
    /// Where export files live (a local folder or a bucket); the workers hold the same one.
    pub store: Store,
    pub jobs: Jobs,
    /// Per-request and per-team limits.
    pub limits: Limits,
    /// Totals of unfiltered lists, remembered while their table is unchanged.
    pub list_counts: Arc<ListCounts>,
    /// Teams of recently seen API keys (see `key_cache`).
    pub key_cache: KeyCache,
    /// What the service counts, served at `/metrics` (also held by the workers).
    pub metrics: Arc<Metrics>,
    /// The webhook delivery worker (rung when a request enqueues deliveries).
    pub webhooks: Webhooks,
    /// Identifies this run of the service: an idempotency key reserved under another run
    /// belongs to a request whose process died.
    pub run_id: String,
    /// What idempotency keys expire by.
    pub clock: crate::domain::time::Clock,
}
