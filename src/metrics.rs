//! The service's Prometheus metrics, all in one place: defined here, counted by the export
//! workers (`jobs`), the HTTP layer (`api`) and the signed file route, and served as text at
//! `GET /metrics`.
//!
//! Built on the `prometheus` crate with a `Registry` owned by the running app (no global
//! registry): `App` creates one `Metrics`, puts it in `AppState` and hands it to the workers.
//! Labels never carry a team, an export id or a raw path: `route` is the route template
//! (`/v1/exports/:id`), `status` an HTTP status or a job outcome.
//!
//! | metric | type | labels | what |
//! | --- | --- | --- | --- |
//! | `exports_jobs_total` | counter | `status` | jobs that reached `COMPLETED` or `FAILED`, or were `deleted` (API or retention) |
//! | `exports_jobs_running` | gauge | | jobs a worker is running now |
//! | `exports_jobs_queued` | gauge | | PENDING jobs (counted at scrape time) |
//! | `exports_job_duration_seconds` | histogram | `status` | run time of a finished job, claim to outcome |
//! | `exports_rows_written_total` | counter | | CSV records of COMPLETED jobs |
//! | `exports_bytes_written_total` | counter | | bytes of the files of COMPLETED jobs |
//! | `exports_download_bytes_total` | counter | | file bytes the signed route handed to connections (ranges included) |
//! | `http_requests_total` | counter | `method`, `route`, `status` | answered requests |
//! | `http_request_duration_seconds` | histogram | `method`, `route` | time to the response head |
//! | `exports_database_bytes` | gauge | | `exports.db` and its WAL (at scrape time) |
//! | `exports_storage_bytes` | gauge | | export files kept in the data folder |
//! | `exports_webhook_attempts_total` | counter | `outcome` | webhook delivery attempts: `succeeded`, `retried` (failed, tried again later) or `failed` (failed for good) |

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry, TextEncoder,
};

/// Job outcomes counted by `exports_jobs_total`.
pub const JOB_COMPLETED: &str = "COMPLETED";
pub const JOB_FAILED: &str = "FAILED";
pub const JOB_DELETED: &str = "deleted";

/// Outcomes of webhook delivery attempts counted by `exports_webhook_attempts_total`.
pub const WEBHOOK_SUCCEEDED: &str = "succeeded";
pub const WEBHOOK_RETRIED: &str = "retried";
pub const WEBHOOK_FAILED: &str = "failed";

/// Buckets of `exports_job_duration_seconds`: 50 ms to 10 minutes.
const JOB_BUCKETS: &[f64] = &[0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0];
/// Buckets of `http_request_duration_seconds`: 1 ms to 10 s.
const HTTP_BUCKETS: &[f64] = &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// Methods that get their own `method` label; any other is counted as `OTHER` (a client
/// chooses the method, and labels must stay few).
const METHODS: &[&str] = &["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

/// Every metric of the service, and the registry that serves them.
pub struct Metrics {
    registry: Registry,
    jobs_total: IntCounterVec,
    /// Jobs a worker is running now.
    pub jobs_running: IntGauge,
    jobs_queued: IntGauge,
    job_duration: HistogramVec,
    /// CSV records of COMPLETED jobs.
    pub rows_written: IntCounter,
    /// Bytes of the files of COMPLETED jobs.
    pub bytes_written: IntCounter,
    /// Bytes the signed file route handed to connections.
    pub download_bytes: IntCounter,
    http_requests: IntCounterVec,
    http_duration: HistogramVec,
    database_bytes: IntGauge,
    storage_bytes: IntGauge,
    webhook_attempts: IntCounterVec,
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics::new()
    }
}

impl Metrics {
    /// A fresh registry with every metric at zero; the job outcomes are there from the start.
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let counter_vec = |name: &str, help: &str, labels: &[&str]| {
            let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
            registry.register(Box::new(c.clone())).expect("metric registered once");
            c
        };
        let counter = |name: &str, help: &str| {
            let c = IntCounter::new(name, help).expect("valid metric");
            registry.register(Box::new(c.clone())).expect("metric registered once");
            c
        };
        let gauge = |name: &str, help: &str| {
            let g = IntGauge::new(name, help).expect("valid metric");
            registry.register(Box::new(g.clone())).expect("metric registered once");
            g
        };
        let histogram_vec = |name: &str, help: &str, buckets: &[f64], labels: &[&str]| {
            let opts = HistogramOpts::new(name, help).buckets(buckets.to_vec());
            let h = HistogramVec::new(opts, labels).expect("valid metric");
            registry.register(Box::new(h.clone())).expect("metric registered once");
            h
        };
        let m = Metrics {
            jobs_total: counter_vec(
                "exports_jobs_total",
                "Export jobs that reached COMPLETED or FAILED, or were deleted",
                &["status"],
            ),
            jobs_running: gauge("exports_jobs_running", "Export jobs a worker is running now"),
            jobs_queued: gauge("exports_jobs_queued", "Export jobs waiting for a worker (PENDING)"),
            job_duration: histogram_vec(
                "exports_job_duration_seconds",
                "Run time of finished export jobs, from claim to outcome",
                JOB_BUCKETS,
                &["status"],
            ),
            rows_written: counter("exports_rows_written_total", "CSV records written by COMPLETED export jobs"),
            bytes_written: counter("exports_bytes_written_total", "Bytes of the files of COMPLETED export jobs"),
            download_bytes: counter(
                "exports_download_bytes_total",
                "Export file bytes sent by the signed download route (ranges included)",
            ),
            http_requests: counter_vec(
                "http_requests_total",
                "HTTP requests answered, by method, route template and status",
                &["method", "route", "status"],
            ),
            http_duration: histogram_vec(
                "http_request_duration_seconds",
                "Time to answer an HTTP request (to the response head), by method and route template",
                HTTP_BUCKETS,
                &["method", "route"],
            ),
            database_bytes: gauge("exports_database_bytes", "Size of the database file and its write-ahead log"),
            storage_bytes: gauge("exports_storage_bytes", "Size of the export files kept in the data folder"),
            webhook_attempts: counter_vec(
                "exports_webhook_attempts_total",
                "Webhook delivery attempts by outcome: succeeded, retried (failed, tried again later), failed (for good)",
                &["outcome"],
            ),
            registry,
        };
        for outcome in [WEBHOOK_SUCCEEDED, WEBHOOK_RETRIED, WEBHOOK_FAILED] {
            m.webhook_attempts.with_label_values(&[outcome]);
        }
        for status in [JOB_COMPLETED, JOB_FAILED, JOB_DELETED] {
            m.jobs_total.with_label_values(&[status]);
        }
        for status in [JOB_COMPLETED, JOB_FAILED] {
            m.job_duration.with_label_values(&[status]);
        }
        m
    }

    /// A job reached COMPLETED or FAILED after `seconds` of work.
    pub fn job_finished(&self, status: &str, seconds: f64) {
        self.jobs_total.with_label_values(&[status]).inc();
        self.job_duration.with_label_values(&[status]).observe(seconds);
    }

    /// A job was marked FAILED without running (interrupted too often, or unreadable): counted,
    /// but not in the run-time histogram.
    pub fn job_failed_without_running(&self) {
        self.jobs_total.with_label_values(&[JOB_FAILED]).inc();
    }

    /// `count` jobs were deleted (by the API or the retention sweep).
    pub fn jobs_deleted(&self, count: u64) {
        self.jobs_total.with_label_values(&[JOB_DELETED]).inc_by(count);
    }

    /// An export file of `bytes` was kept (`+`) or removed (`-`).
    pub fn storage_changed(&self, bytes: i64) {
        self.storage_bytes.add(bytes);
    }

    /// The export files found at start.
    pub fn set_storage(&self, bytes: u64) {
        self.storage_bytes.set(bytes as i64);
    }

    /// A webhook delivery attempt ended with `outcome` (`WEBHOOK_…`).
    pub fn webhook_attempt(&self, outcome: &str) {
        self.webhook_attempts.with_label_values(&[outcome]).inc();
    }

    /// An answered request.
    pub fn http_request(&self, method: &str, route: &str, status: u16, seconds: f64) {
        let method = METHODS.iter().find(|m| **m == method).copied().unwrap_or("OTHER");
        self.http_requests.with_label_values(&[method, route, &status.to_string()]).inc();
        self.http_duration.with_label_values(&[method, route]).observe(seconds);
    }

    /// The Prometheus text exposition of every metric, with the gauges read at scrape time.
    pub fn render(&self, queued: u64, database_bytes: u64) -> String {
        self.jobs_queued.set(queued as i64);
        self.database_bytes.set(database_bytes as i64);
        let mut out = Vec::new();
        TextEncoder::new().encode(&self.registry.gather(), &mut out).expect("text encoding into memory");
        String::from_utf8(out).expect("the text format is UTF-8")
    }
}

/// The content type of [`Metrics::render`]'s text.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_metric_is_rendered_and_methods_are_bounded() {
        let m = Metrics::new();
        m.job_finished(JOB_COMPLETED, 0.3);
        m.rows_written.inc_by(10);
        m.http_request("GET", "/v1/exports/:id", 200, 0.002);
        m.http_request("BREW", "unmatched", 405, 0.001);
        m.storage_changed(100);
        m.storage_changed(-40);
        let text = m.render(3, 4096);
        for name in [
            "exports_jobs_total{status=\"COMPLETED\"} 1",
            "exports_jobs_total{status=\"deleted\"} 0",
            "exports_jobs_queued 3",
            "exports_jobs_running 0",
            "exports_database_bytes 4096",
            "exports_storage_bytes 60",
            "exports_rows_written_total 10",
            "exports_job_duration_seconds_count{status=\"COMPLETED\"} 1",
            "http_requests_total{method=\"GET\",route=\"/v1/exports/:id\",status=\"200\"} 1",
            "http_requests_total{method=\"OTHER\",route=\"unmatched\",status=\"405\"} 1",
        ] {
            assert!(text.contains(name), "{name} missing from\n{text}");
        }
        assert_eq!(CONTENT_TYPE, TextEncoder::new().format_type().to_string() + "; charset=utf-8");
    }
}
