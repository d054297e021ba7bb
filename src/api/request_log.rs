//! The outermost middleware: it sees every request and its final answer. For each one it
//! - takes the request id (the client's sane `x-request-id`, else a new UUIDv7) and sends it
//!   back in `x-request-id`, on every answer;
//! - runs the request in a `request` span with `request_id`, `method` and `route`, so every
//!   log line of the request names them;
//! - quotes the id in the message of a 5xx (`… (request id X)`), whatever raised it;
//! - logs one line: `status`, `duration_ms`, the `path` (never the query string: a download
//!   link's token is in it) and, once the API key was checked, `team_id` (never the key).
//!   INFO, except `/healthz` and `/metrics` (DEBUG: probes and scrapes would drown the rest);
//!   refused requests (401 and 429) are summarised per client address (`refusals`);
//! - counts it in `http_requests_total` and `http_request_duration_seconds`, by route
//!   template.

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use poem::http::{HeaderValue, StatusCode};
use poem::{Endpoint, IntoResponse, Middleware, Request, Response};
use tracing::Instrument;

use super::refusals::Refusals;
use super::route_template::{RequestRoute, RouteTemplates, UNMATCHED};
use crate::domain::request_id::RequestId;
use crate::metrics::Metrics;

/// The header that carries the request id, both ways.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// Routes whose request lines are DEBUG.
const QUIET_ROUTES: &[&str] = &["/healthz", "/metrics"];

/// The team a request was authenticated as, filled in by the key check (`auth::check_key`)
/// and read by the request log. One per request, in the request's extensions.
#[derive(Clone, Default)]
pub struct RequestTeam(Arc<OnceLock<String>>);

impl RequestTeam {
    pub fn set(&self, team_id: &str) {
        let _ = self.0.set(team_id.to_string());
    }

    pub fn get(&self) -> Option<&str> {
        self.0.get().map(String::as_str)
    }
}

/// Longest path logged; longer ones are cut (an attacker chooses the path).
const MAX_PATH: usize = 256;

/// The middleware: `.with(RequestLog::new(metrics, templates))`.
pub struct RequestLog {
    metrics: Arc<Metrics>,
    templates: Arc<RouteTemplates>,
}

impl RequestLog {
    pub fn new(metrics: Arc<Metrics>, templates: Arc<RouteTemplates>) -> RequestLog {
        RequestLog { metrics, templates }
    }
}

impl<E: Endpoint> Middleware<E> for RequestLog {
    type Output = RequestLogEndpoint<E>;

    fn transform(&self, ep: E) -> Self::Output {
        RequestLogEndpoint {
            inner: ep,
            refusals: Refusals::default(),
            metrics: self.metrics.clone(),
            templates: self.templates.clone(),
        }
    }
}

pub struct RequestLogEndpoint<E> {
    inner: E,
    refusals: Refusals,
    metrics: Arc<Metrics>,
    templates: Arc<RouteTemplates>,
}

impl<E: Endpoint> Endpoint for RequestLogEndpoint<E> {
    type Output = Response;

    async fn call(&self, mut req: Request) -> poem::Result<Response> {
        let started = Instant::now();
        let id = RequestId::from_client(req.headers().get(REQUEST_ID_HEADER).map(HeaderValue::as_bytes));
        let method = req.method().clone();
        let raw_path = req.original_uri().path().to_string();
        let client = req.remote_addr().as_socket_addr().map(|a| a.ip());
        let (team, route) = (RequestTeam::default(), RequestRoute::default());
        req.extensions_mut().insert(team.clone());
        req.extensions_mut().insert(route.clone());
        // ERROR level: the span (and so the id) is there whenever any line of the request is
        let span = tracing::error_span!(
            "request",
            request_id = %id,
            method = %method,
            route = tracing::field::Empty,
        );
        let resp = match self.inner.call(req).instrument(span.clone()).await {
            Ok(resp) => resp.into_response(),
            Err(e) => e.into_response(),
        };
        let status = resp.status();
        let mut resp = crate::error::quote_request_id(resp, &id).await;
        if let Ok(v) = HeaderValue::from_str(id.as_str()) {
            resp.headers_mut().insert(REQUEST_ID_HEADER, v);
        }
        let route = match route.get() {
            Some(pattern) => self.templates.route_of(pattern),
            None => self.templates.template_for(&raw_path).unwrap_or(UNMATCHED).to_string(),
        };
        span.record("route", route.as_str());
        let now = Instant::now();
        let elapsed = now.duration_since(started);
        self.metrics.http_request(method.as_str(), &route, status.as_u16(), elapsed.as_secs_f64());

        let refused = matches!(status, StatusCode::UNAUTHORIZED | StatusCode::TOO_MANY_REQUESTS);
        let log_it = match client {
            Some(ip) if refused => self.refusals.refused(ip, now),
            _ => {
                self.refusals.tick(now);
                true
            }
        };
        if log_it {
            let path = loggable_path(&raw_path);
            let (status, duration_ms) = (status.as_u16(), elapsed.as_millis() as u64);
            let team_id = team.get().map(tracing::field::display);
            span.in_scope(|| {
                if QUIET_ROUTES.contains(&route.as_str()) {
                    tracing::debug!(status, duration_ms, path = %path, team_id, "request");
                } else {
                    tracing::info!(status, duration_ms, path = %path, team_id, "request");
                }
            });
        }
        Ok(resp)
    }
}

/// The path as logged: at most `MAX_PATH` bytes.
fn loggable_path(path: &str) -> String {
    if path.len() <= MAX_PATH {
        return path.to_string();
    }
    let mut end = MAX_PATH;
    while !path.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &path[..end])
}

#[cfg(test)]
mod tests {
    use super::*;
    use poem::EndpointExt;

    /// A handler that panics answers a JSON 500 whose message and header carry the request id.
    #[tokio::test]
    async fn a_panic_is_a_500_that_names_the_request_id() {
        let metrics = Arc::new(Metrics::new());
        let ep = poem::endpoint::make(|_| async { panic!("boom") as Response })
            .with(poem::middleware::CatchPanic::new().with_handler(crate::error::panic_response))
            .with(RequestLog::new(metrics.clone(), Arc::new(RouteTemplates::from_spec("{}"))));
        let req = Request::builder().uri_str("/anything").header(REQUEST_ID_HEADER, "panic-1").finish();
        let resp = ep.call(req).await.unwrap();
        assert_eq!(resp.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(resp.headers()[REQUEST_ID_HEADER], "panic-1");
        let body: serde_json::Value = serde_json::from_slice(&resp.into_body().into_vec().await.unwrap()).unwrap();
        assert_eq!(body["statusCode"], 500);
        assert!(body["message"].as_str().unwrap().ends_with("(request id panic-1)"), "{body}");
        let text = metrics.render(0, 0);
        assert!(
            text.lines().any(|l| l.starts_with("http_requests_total{") && l.ends_with(r#"status="500"} 1"#)),
            "{text}"
        );
    }

    #[test]
    fn long_paths_are_cut() {
        assert_eq!(loggable_path("/v1/exports"), "/v1/exports");
        let long = format!("/{}", "é".repeat(300));
        let cut = loggable_path(&long);
        assert!(cut.len() <= MAX_PATH + "…".len());
        assert!(cut.ends_with('…'));
    }
}
