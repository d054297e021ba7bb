//! The HTTP server loop: accepts TCP connections and serves each with hyper's HTTP/1.1
//! connection, running the poem endpoint for every request.
//!
//! Hand-written (about 300 lines) because poem's `Server` has none of the bounds an
//! unattended container needs: no header-read timeout, no cap on open connections, no idle
//! bound on a connection stalled mid-body, and a shutdown that waits for every connection.
//! Here:
//! - a request's header must arrive whole within `header_timeout` (hyper's own timer; it also
//!   bounds a keep-alive connection waiting for its next request);
//! - a connection with no request in flight and no bytes moving for `idle_timeout` is closed,
//!   and a request body that stalls for `idle_timeout` fails (the handler answers 400);
//! - at most `max_connections` are open; one more is answered 503 (JSON) and closed;
//! - on stop, accepting ends at once, open connections finish their current request, and
//!   whatever is still open after `shutdown_grace` is dropped;
//! - the answers hyper writes by itself for malformed requests (400; 414 for a URI over 64 KiB;
//!   431 for a header over `MAX_HEADERS` fields or `MAX_HEAD_BYTES`) come without a body: they
//!   are rewritten into the JSON error shape (with an `x-request-id`, like every answer).
//!
//! HTTP/2 is not served in cleartext (no browser uses h2c); put a TLS proxy in front for it.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use poem::http::{self, StatusCode};
use poem::web::{LocalAddr, RemoteAddr};
use poem::{Addr, Body, Endpoint, EndpointExt, IntoEndpoint, Response};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

use crate::config::ServerLimits;
use crate::domain::request_id::RequestId;
use crate::error::ErrorBody;

/// Longest request target (path and query) hyper accepts; longer is a 414.
pub const MAX_URI_BYTES: usize = 65_534;
/// hyper's read buffer per connection: bounds the request head (a head that does not fit is
/// a 431) and the memory an open connection can hold.
const MAX_HEAD_BYTES: usize = 128 * 1024;
/// Header fields per request; more is a 431.
const MAX_HEADERS: usize = 100;

/// Serves `endpoint` on `listener` until `stop` resolves; then calls `on_stop` (to tell the
/// export workers at once), lets open requests finish for at most `limits.shutdown_grace`,
/// and returns.
pub async fn serve<E>(
    listener: TcpListener,
    endpoint: E,
    limits: ServerLimits,
    stop: impl Future<Output = ()>,
    on_stop: impl FnOnce(),
) -> io::Result<()>
where
    E: IntoEndpoint,
    E::Endpoint: 'static,
{
    let endpoint: Arc<dyn poem::endpoint::DynEndpoint<Output = Response>> =
        Arc::new(poem::endpoint::ToDynEndpoint(endpoint.into_endpoint().map_to_response()));
    let local = listener.local_addr()?;
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let mut connections = JoinSet::new();
    tokio::pin!(stop);
    loop {
        let (stream, remote) = tokio::select! {
            _ = &mut stop => break,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // out of file descriptors and the like: back off instead of spinning
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        while connections.try_join_next().is_some() {}
        let _ = stream.set_nodelay(true);
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tokio::spawn(refuse(stream, limits.max_connections));
            continue;
        };
        let conn = Connection {
            endpoint: endpoint.clone(),
            local: LocalAddr(Addr::SocketAddr(local)),
            remote: RemoteAddr(Addr::SocketAddr(remote)),
            limits: limits.clone(),
        };
        let shutdown = shutdown_rx.clone();
        connections.spawn(async move {
            conn.run(stream, shutdown).await;
            drop(slot);
        });
    }
    drop(listener);
    on_stop();
    let _ = shutdown_tx.send(true);
    let drained =
        tokio::time::timeout(limits.shutdown_grace, async { while connections.join_next().await.is_some() {} }).await;
    if drained.is_err() {
        tracing::info!(open = connections.len(), "shutdown grace over: closing the connections still open");
        connections.abort_all();
        while connections.join_next().await.is_some() {}
    }
    Ok(())
}

/// Answers a connection past the cap with a JSON 503 and closes it. Its request was never
/// read: it gets a new request id (header and message), logged at DEBUG only, since a flood
/// of connections must not flood the log.
async fn refuse(mut stream: TcpStream, cap: usize) {
    let id = RequestId::generate();
    tracing::debug!(request_id = %id, "connection refused: --max-connections reached");
    let body = ErrorBody::new(
        StatusCode::SERVICE_UNAVAILABLE,
        format!(
            "The server has {cap} open connections, its limit (--max-connections); try again shortly (request id {id})"
        ),
    );
    let json = serde_json::to_vec(&body).unwrap_or_default();
    let head = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json; charset=utf-8\r\ncontent-length: {}\r\nretry-after: 1\r\nx-request-id: {id}\r\nconnection: close\r\n\r\n",
        json.len()
    );
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        stream.write_all(head.as_bytes()).await?;
        stream.write_all(&json).await?;
        stream.shutdown().await?;
        // read what the client sent, so that closing does not reset the connection before
        // it has read the answer
        let mut sink = [0u8; 4096];
        while stream.read(&mut sink).await? > 0 {}
        io::Result::Ok(())
    })
    .await;
}

struct Connection {
    endpoint: Arc<dyn poem::endpoint::DynEndpoint<Output = Response>>,
    local: LocalAddr,
    remote: RemoteAddr,
    limits: ServerLimits,
}

impl Connection {
    async fn run(self, stream: TcpStream, mut shutdown: watch::Receiver<bool>) {
        let activity = Arc::new(Activity::new());
        let io = TokioIo::new(Watched { inner: stream, activity: activity.clone(), pending: None });
        let idle = self.limits.idle_timeout;
        let service = {
            let activity = activity.clone();
            let (endpoint, local, remote) = (self.endpoint, self.local, self.remote);
            hyper::service::service_fn(move |req: http::Request<Incoming>| {
                let endpoint = endpoint.clone();
                let request = prepare(req, local.clone(), remote.clone(), idle);
                let in_flight = InFlight::new(activity.clone());
                async move {
                    let response = endpoint.get_response(request).await;
                    drop(in_flight);
                    Ok::<_, Infallible>(http::Response::from(response))
                }
            })
        };
        let mut http1 = hyper::server::conn::http1::Builder::new();
        http1
            .timer(TokioTimer::new())
            .header_read_timeout(self.limits.header_timeout)
            .keep_alive(true)
            .max_buf_size(MAX_HEAD_BYTES)
            .max_headers(MAX_HEADERS);
        let conn = http1.serve_connection(io, service);
        tokio::pin!(conn);
        let watchdog = activity.idle(idle);
        tokio::pin!(watchdog);
        tokio::select! {
            _ = conn.as_mut() => return,
            _ = &mut watchdog => return, // dropping the connection closes it
            _ = shutdown.wait_for(|stop| *stop) => {}
        }
        // stopping: finish the request in flight, take no new one
        conn.as_mut().graceful_shutdown();
        tokio::select! {
            _ = conn.as_mut() => {}
            _ = &mut watchdog => {}
        }
    }
}

/// The poem request for a hyper request. A body, if any, fails when no byte of it arrives for
/// `idle` (a stalled upload cannot hold a connection and a handler forever).
fn prepare(req: http::Request<Incoming>, local: LocalAddr, remote: RemoteAddr, idle: Duration) -> poem::Request {
    let has_body = req.headers().contains_key(http::header::TRANSFER_ENCODING)
        || req
            .headers()
            .get(http::header::CONTENT_LENGTH)
            .is_some_and(|v| v.to_str().ok().and_then(|s| s.trim().parse::<u64>().ok()) != Some(0));
    let mut req: poem::Request = (req, local, remote, http::uri::Scheme::HTTP).into();
    if has_body {
        let body = req.take_body();
        req.set_body(stall_bounded(body, idle));
    }
    req
}

/// `body`, failing with `TimedOut` when the next piece takes longer than `idle` to arrive.
fn stall_bounded(body: Body, idle: Duration) -> Body {
    let stream = Box::pin(body.into_bytes_stream());
    Body::from_bytes_stream(futures_util::stream::unfold(Some(stream), move |stream| async move {
        let mut stream = stream?;
        match tokio::time::timeout(idle, stream.next()).await {
            Ok(Some(piece)) => Some((piece, Some(stream))),
            Ok(None) => None,
            Err(_) => Some((
                Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("no data arrived for {} s; the upload stalled", idle.as_secs()),
                )),
                None,
            )),
        }
    }))
}

/// When a connection last moved bytes, and how many of its requests are being handled.
struct Activity {
    started: Instant,
    last_ms: AtomicU64,
    in_flight: AtomicUsize,
}

impl Activity {
    fn new() -> Activity {
        Activity { started: Instant::now(), last_ms: AtomicU64::new(0), in_flight: AtomicUsize::new(0) }
    }

    fn touch(&self) {
        self.last_ms.store(self.started.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    fn quiet_for(&self) -> Duration {
        let now = self.started.elapsed().as_millis() as u64;
        Duration::from_millis(now.saturating_sub(self.last_ms.load(Ordering::Relaxed)))
    }

    /// Resolves once no request is in flight and no byte has moved for `idle`.
    async fn idle(&self, idle: Duration) {
        loop {
            let quiet = self.quiet_for();
            if self.in_flight.load(Ordering::Relaxed) > 0 {
                tokio::time::sleep(idle).await;
            } else if quiet >= idle {
                return;
            } else {
                tokio::time::sleep(idle - quiet).await;
            }
        }
    }
}

/// Counts a request as in flight while it lives.
struct InFlight(Arc<Activity>);

impl InFlight {
    fn new(activity: Arc<Activity>) -> InFlight {
        activity.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(activity)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.touch();
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The TCP stream, noting activity, and rewriting hyper's bodiless error answers.
struct Watched {
    inner: TcpStream,
    activity: Arc<Activity>,
    /// A rewritten answer still to be written, and how much of it has been.
    pending: Option<(Vec<u8>, usize)>,
}

impl Watched {
    fn drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while let Some((bytes, done)) = &mut self.pending {
            if *done == bytes.len() {
                self.pending = None;
                break;
            }
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &bytes[*done..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            *done += n;
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncRead for Watched {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.touch();
        }
        r
    }
}

impl AsyncWrite for Watched {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        ready!(self.drain(cx))?;
        if let Some(json) = rewrite_bare_error(buf) {
            self.pending = Some((json, 0));
            return Poll::Ready(Ok(buf.len()));
        }
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        r
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        ready!(self.drain(cx))?;
        if let Some(json) = bufs.iter().find(|b| !b.is_empty()).and_then(|b| rewrite_bare_error(b)) {
            self.pending = Some((json, 0));
            return Poll::Ready(Ok(bufs.iter().map(|b| b.len()).sum()));
        }
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.drain(cx))?;
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.drain(cx))?;
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// hyper answers a request it cannot parse by itself, before any handler runs, with a
/// bodiless 400, 414 or 431. Every answer of ours has a JSON body, so a bodiless one with these
/// statuses is hyper's: this gives the JSON error shape instead.
fn rewrite_bare_error(buf: &[u8]) -> Option<Vec<u8>> {
    let status = buf.strip_prefix(b"HTTP/1.1 ")?.get(..3)?;
    let (status, message) = match status {
        b"400" => (
            StatusCode::BAD_REQUEST,
            "Malformed HTTP request: the request line or a header field could not be parsed".to_string(),
        ),
        b"414" => (StatusCode::URI_TOO_LONG, format!("The request URI is too long; at most {MAX_URI_BYTES} bytes")),
        b"431" => (
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            format!(
                "The request's header is too large: at most {MAX_HEADERS} fields and {} KiB in all",
                MAX_HEAD_BYTES / 1024
            ),
        ),
        _ => return None,
    };
    let head_end = buf.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = std::str::from_utf8(&buf[..head_end]).ok()?.to_ascii_lowercase();
    if head_end != buf.len() || !head.contains("\r\ncontent-length: 0\r\n") {
        return None;
    }
    let json = serde_json::to_vec(&ErrorBody::new(status, message)).ok()?;
    // no handler saw the request, so it has no id yet: every answer carries one
    let mut out = format!(
        "HTTP/1.1 {} {}\r\ncontent-type: application/json; charset=utf-8\r\ncontent-length: {}\r\nx-request-id: {}\r\nconnection: close\r\n\r\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or("Error"),
        json.len(),
        RequestId::generate()
    )
    .into_bytes();
    out.extend_from_slice(&json);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::rewrite_bare_error;

    #[test]
    fn only_bodiless_parse_errors_are_rewritten() {
        let bare = b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\ndate: x\r\n\r\n";
        let out = String::from_utf8(rewrite_bare_error(bare).unwrap()).unwrap();
        assert!(out.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"), "{out}");
        assert!(out.ends_with("}") && out.contains("\"statusCode\":431"), "{out}");
        // ours carry a body; successes and other statuses pass through
        assert!(rewrite_bare_error(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 80\r\n\r\n{}").is_none());
        assert!(rewrite_bare_error(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n").is_none());
        assert!(rewrite_bare_error(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n").is_none());
    }
}
