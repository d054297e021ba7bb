//! The browser console: the files of `static/`, embedded in the binary (`rust-embed`; a debug
//! build reads them from disk), served at `/` (the page), `/assets/…` and `/favicon.ico`.
//!
//! Every answer carries a `Content-Security-Policy` that allows nothing from outside the
//! server (no inline script or style either), `Cache-Control: no-cache` with a strong `ETag`
//! (a browser revalidates and gets 304 while the file is unchanged), and `nosniff`. Swagger UI
//! at `/docs` is served by poem-openapi and is not touched by this policy (it needs inline
//! script).

use poem::http::{header, HeaderValue, Method, StatusCode};
use poem::{Body, Request, Response};
use rust_embed::RustEmbed;

#[derive(RustEmbed)]
#[folder = "static/"]
struct Assets;

/// The policy of every console file: this origin only, no inline code, no framing.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
img-src 'self' data:; connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; \
form-action 'self'; frame-ancestors 'none'";

/// The embedded file a console path names: `/` is the page; `/assets/…` and `/favicon.ico`
/// are files of `static/`. `None` for every other path (and for `..` tricks: only names
/// the bundle holds are found).
fn file_for(path: &str) -> Option<&str> {
    match path {
        "/" | "/index.html" => Some("index.html"),
        "/favicon.ico" => Some("favicon.ico"),
        p if p.starts_with("/assets/") => Some(&p[1..]),
        _ => None,
    }
}

/// The answer to a GET or HEAD of a console file: the file, or 304 when `If-None-Match` names
/// its ETag. `None` for anything else (the API answers it).
pub fn serve(req: &Request) -> Option<Response> {
    if !matches!(*req.method(), Method::GET | Method::HEAD) {
        return None;
    }
    let name = file_for(req.uri().path())?;
    let file = Assets::get(name)?;
    let etag = format!("\"{}\"", hex::encode(&file.metadata.sha256_hash()[..16]));
    let fresh = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    let mime = file.metadata.mimetype();
    let content_type = if mime.starts_with("text/") || mime.ends_with("javascript") || mime.ends_with("+xml") {
        format!("{mime}; charset=utf-8")
    } else {
        mime.to_string()
    };
    let mut resp = Response::builder()
        .header(header::ETAG, etag)
        .header(header::CACHE_CONTROL, "no-cache")
        .header(header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY)
        .header(header::X_CONTENT_TYPE_OPTIONS, "nosniff")
        .header(header::REFERRER_POLICY, "no-referrer")
        .header("cross-origin-opener-policy", "same-origin");
    if fresh {
        return Some(resp.status(StatusCode::NOT_MODIFIED).finish());
    }
    resp = resp.header(header::CONTENT_TYPE, HeaderValue::from_str(&content_type).ok()?);
    // for HEAD the server sends the headers (Content-Length included) and drops the body
    Some(resp.body(Body::from_vec(file.data.into_owned())))
}

#[cfg(test)]
mod tests {
    use super::file_for;

    #[test]
    fn only_console_paths_name_files() {
        assert_eq!(file_for("/"), Some("index.html"));
        assert_eq!(file_for("/favicon.ico"), Some("favicon.ico"));
        assert_eq!(file_for("/assets/app.js"), Some("assets/app.js"));
        assert_eq!(file_for("/v1/exports"), None);
        assert_eq!(file_for("/docs"), None);
    }
}
