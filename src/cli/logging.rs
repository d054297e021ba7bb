//! The log on stderr: `--log-format text` (tracing-subscriber's formatter, colours only when
//! stderr is a terminal, so a container's log file gets plain text) or `--log-format json`.
//!
//! JSON lines are written by `json-subscriber` (by a `tracing` maintainer) rather than
//! tracing-subscriber's own `json` formatter, which nests a span's fields under `span` /
//! `spans` and can only flatten the event's: here every line is one flat object with
//! `timestamp`, `level`, `target`, `message`, the event's fields and the fields of the spans
//! it is in — so a request's lines all carry `request_id`, `method` and `route` at the top
//! level, and its request line also `status`, `duration_ms`, `path` and `team_id`.
//!
//! json-subscriber writes span and event fields side by side without merging them, so an
//! event inside a request must not reuse the span's field names (`request_id`, `method`,
//! `route`, and `name`, the span's name, which the crate adds), nor `timestamp`, `level`,
//! `target`: the line would carry the key twice.

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use super::LogFormat;

/// Installs the log for this process: `RUST_LOG` sets the level, else `default_level`.
pub fn init(format: LogFormat, default_level: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    match format {
        LogFormat::Text => {
            let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
            let _ = tracing_subscriber::fmt()
                .with_env_filter(filter)
                .with_writer(std::io::stderr)
                .with_ansi(ansi)
                .try_init();
        }
        LogFormat::Json => {
            let mut json = json_subscriber::JsonLayer::stderr();
            json.with_timer("timestamp", tracing_subscriber::fmt::time::SystemTime)
                .with_level("level")
                .with_target("target")
                // the request span's fields (request_id, method, route), then the event's
                .with_top_level_flattened_span_list()
                .with_flattened_event();
            let _ = tracing_subscriber::registry().with(json.with_filter(filter)).try_init();
        }
    }
    // a panic is a log line like any other (JSON in JSON logs), inside the request's span
    // when a handler panicked: its request id is on it
    std::panic::set_hook(Box::new(|info| tracing::error!(panic = %info, "panic")));
}
