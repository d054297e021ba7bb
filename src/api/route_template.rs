//! The route template of a request (`/v1/exports/:id`): the `route` of its log line and of
//! the HTTP metrics, never the raw path (which holds ids and grows without bound).
//!
//! Parameters are written `:name`, as poem routes are, with the OpenAPI document's names.
//! (The document writes `{id}`; braces are legal in a Prometheus label value, but simple
//! text-format parsers, `prometheus-parse` among them, drop such lines.)
//!
//! The router says which pattern it matched (poem's `PathPattern`, on the answer): the
//! innermost middleware [`record`] keeps it for the request, and its parameters get the
//! OpenAPI document's names (poem-openapi's router names them `:param0`, `:param1`).
//! Requests answered before routing (429 from the rate limit, 413 from `Content-Length`, the
//! landing page) get the documented path their path has the shape of ([`RouteTemplates`],
//! from the OpenAPI document); anything else is [`UNMATCHED`].

use std::sync::{Arc, OnceLock};

use poem::error::NotFoundError;
use poem::{Endpoint, IntoResponse, Request, Response};

/// The `route` of a request no route matched: one label for every unknown path.
pub const UNMATCHED: &str = "unmatched";

/// Routes outside the OpenAPI document (the console's files among them); a path under
/// `/docs/` is `/docs`.
const UNDOCUMENTED: &[&str] =
    &["/", "/index.html", "/favicon.ico", "/assets/:file", "/openapi.json", "/metrics", "/docs"];

/// The template the router matched, filled in by [`record`] and read by the request log.
/// One per request, in the request's extensions.
#[derive(Clone, Default)]
pub struct RequestRoute(Arc<OnceLock<String>>);

impl RequestRoute {
    pub fn get(&self) -> Option<&str> {
        self.0.get().map(String::as_str)
    }
}

/// The innermost middleware, around the router: keeps the pattern it matched in the
/// request's [`RequestRoute`].
pub async fn record<E: Endpoint>(ep: Arc<E>, req: Request) -> poem::Result<Response> {
    let slot = req.extensions().get::<RequestRoute>().cloned();
    let result = ep.call(req).await.map(IntoResponse::into_response);
    if let Some(slot) = slot {
        let pattern = match &result {
            Ok(resp) => resp.data::<poem::PathPattern>(),
            // a nest matched a prefix, then nothing under it did
            Err(e) if e.is::<NotFoundError>() => None,
            Err(e) => e.data::<poem::PathPattern>(),
        };
        if let Some(p) = pattern.filter(|p| !p.0.is_empty()) {
            let _ = slot.0.set(p.0.to_string());
        }
    }
    result
}

/// `/v1/exports/{id}` → `/v1/exports/:id`; `/docs/` → `/docs`.
fn template(pattern: &str) -> String {
    let pattern = match pattern.strip_suffix('/') {
        Some(p) if !p.is_empty() => p,
        _ => pattern,
    };
    pattern
        .split('/')
        .map(|s| match s.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
            Some(name) => format!(":{name}"),
            None => s.to_string(),
        })
        .collect::<Vec<_>>()
        .join("/")
}

fn is_param(segment: &str) -> bool {
    segment.starts_with(':')
}

/// The routes of the service and the methods each answers.
pub struct RouteTemplates(Vec<Template>);

struct Template {
    text: String,
    segments: Vec<String>,
    /// The `Allow` header of a 405: the documented methods, with `HEAD` where `GET` is.
    allow: String,
}

impl RouteTemplates {
    /// The paths of the OpenAPI document (and the undocumented routes).
    pub fn from_spec(spec: &str) -> RouteTemplates {
        let doc: serde_json::Value = serde_json::from_str(spec).unwrap_or_default();
        let mut routes = Vec::new();
        if let Some(paths) = doc["paths"].as_object() {
            for (path, item) in paths {
                let mut methods: Vec<String> =
                    item.as_object().map(|m| m.keys().map(|k| k.to_ascii_uppercase()).collect()).unwrap_or_default();
                if methods.iter().any(|m| m == "GET") {
                    methods.push("HEAD".into());
                }
                routes.push(Template::new(path, methods.join(", ")));
            }
        }
        routes.extend(UNDOCUMENTED.iter().map(|p| Template::new(p, "GET, HEAD".into())));
        // literal segments before parameters: `/v1/a/b` wins over `/v1/a/:x`
        routes.sort_by_key(|t| std::cmp::Reverse(t.segments.iter().filter(|s| !is_param(s)).count()));
        RouteTemplates(routes)
    }

    fn find(&self, path: &str) -> Option<&Template> {
        if path.starts_with("/docs/") {
            return self.find("/docs");
        }
        let segments: Vec<&str> = path.split('/').collect();
        self.0.iter().find(|t| {
            t.segments.len() == segments.len()
                && t.segments.iter().zip(&segments).all(|(t, s)| (is_param(t) && !s.is_empty()) || t == s)
        })
    }

    /// The template `path` has the shape of, if any.
    pub fn template_for(&self, path: &str) -> Option<&str> {
        self.find(path).map(|t| t.text.as_str())
    }

    /// The route of a pattern the router matched, with the OpenAPI document's names
    /// (`/v1/exports/:param0` → `/v1/exports/:id`); a route outside the document keeps its
    /// own (`/assets/:file`).
    pub fn route_of(&self, pattern: &str) -> String {
        let pattern = template(pattern);
        let segments: Vec<&str> = pattern.split('/').collect();
        let documented = self.0.iter().find(|t| {
            t.segments.len() == segments.len()
                && t.segments.iter().zip(&segments).all(|(t, s)| t == s || (is_param(t) && is_param(s)))
        });
        documented.map_or(pattern.clone(), |t| t.text.clone())
    }

    /// The methods of the route `path` belongs to, for the `Allow` header of a 405.
    pub fn allow_for(&self, path: &str) -> Option<&str> {
        self.find(path).map(|t| t.allow.as_str())
    }
}

impl Template {
    fn new(path: &str, allow: String) -> Template {
        let text = template(path);
        Template { segments: text.split('/').map(str::to_string).collect(), text, allow }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_get_their_template_never_an_id() {
        let t = RouteTemplates::from_spec(
            r#"{"paths": {"/v1/exports": {"get": {}, "post": {}}, "/v1/exports/{id}": {"get": {}, "delete": {}},
                "/v1/exports/{id}/download": {"get": {}}}}"#,
        );
        assert_eq!(t.template_for("/v1/exports/0197-x"), Some("/v1/exports/:id"));
        assert_eq!(t.template_for("/v1/exports/0197-x/download"), Some("/v1/exports/:id/download"));
        assert_eq!(t.template_for("/v1/exports/"), None, "an empty segment is no id");
        assert_eq!(t.template_for("/docs/swagger-ui.css"), Some("/docs"));
        assert_eq!(t.template_for("/metrics"), Some("/metrics"));
        assert_eq!(t.template_for("/assets/app.js"), Some("/assets/:file"), "one label for the console's files");
        assert_eq!(t.template_for("/favicon.ico"), Some("/favicon.ico"));
        assert_eq!(t.template_for("/wp-admin"), None);
        assert_eq!(t.allow_for("/v1/exports/1"), Some("GET, DELETE, HEAD"));
        assert_eq!(t.route_of("/v1/exports/:param0/download"), "/v1/exports/:id/download");
        assert_eq!(t.route_of("/docs/"), "/docs");
        assert_eq!(t.route_of("/"), "/");
        assert_eq!(t.route_of("/assets/:file"), "/assets/:file");
    }
}
