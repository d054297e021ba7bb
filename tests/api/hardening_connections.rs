//! Connection bounds: header-read and idle timeouts, stalled bodies, the connection cap,
//! JSON answers for requests hyper refuses by itself, and a shutdown bounded by its grace.

use std::time::{Duration, Instant};

use crate::helpers;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn host(app: &helpers::TestApp) -> String {
    app.base_url.trim_start_matches("http://").to_string()
}

/// Reads until the server closes the connection (or `limit` passes: then `None`).
async fn read_to_close(stream: &mut TcpStream, limit: Duration) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    let deadline = Instant::now() + limit;
    loop {
        let left = deadline.checked_duration_since(Instant::now())?;
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(out),
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
        }
    }
}

/// Status code and JSON body of a raw HTTP/1.1 answer.
fn parse_answer(bytes: &[u8]) -> (u16, String, Value) {
    let text = String::from_utf8_lossy(bytes).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or_else(|| panic!("no head in {text:?}"));
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let json = serde_json::from_str(body).unwrap_or_else(|e| panic!("body is not JSON ({e}): {text:?}"));
    (status, head.to_ascii_lowercase(), json)
}

/// Sends `request` on a new connection and reads the answer up to the close.
async fn exchange(app: &helpers::TestApp, request: &[u8]) -> (u16, String, Value) {
    let mut s = TcpStream::connect(host(app)).await.unwrap();
    s.write_all(request).await.unwrap();
    let answer = read_to_close(&mut s, Duration::from_secs(10)).await.expect("the server answers and closes");
    parse_answer(&answer)
}

/// A keep-alive connection the server has taken: it answered one request on it.
async fn served_connection(app: &helpers::TestApp) -> TcpStream {
    let mut s = TcpStream::connect(host(app)).await.unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = s.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    s
}

fn assert_error_shape(status: u16, json: &Value) {
    assert_eq!(json["statusCode"].as_u64(), Some(status as u64), "{json}");
    assert!(json["error"].as_str().is_some_and(|s| !s.is_empty()), "{json}");
    assert!(json["message"].as_str().is_some_and(|s| !s.is_empty()), "{json}");
}

#[tokio::test]
async fn a_header_sent_slowly_is_cut_off_at_the_header_timeout() {
    let tmp = tempfile::tempdir().unwrap();
    let app = helpers::spawn_app_with(tmp.path().to_path_buf(), |c| {
        c.server.header_timeout = Duration::from_secs(1);
        c.server.idle_timeout = Duration::from_secs(60);
    })
    .await;
    let mut s = TcpStream::connect(host(&app)).await.unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n").await.unwrap();
    let started = Instant::now();
    // slowloris: a header line every 200 ms, never the blank line that ends the header
    let (mut rd, mut wr) = s.into_split();
    let drip = tokio::spawn(async move {
        for i in 0..100 {
            if wr.write_all(format!("x-drip-{i}: y\r\n").as_bytes()).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    let mut buf = [0u8; 1024];
    let closed = tokio::time::timeout(Duration::from_secs(8), async {
        loop {
            match rd.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "a header still arriving after 8 s was not cut off");
    assert!(started.elapsed() >= Duration::from_millis(900), "closed before the timeout: {:?}", started.elapsed());
    drip.abort();
    app.stop().await;
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed() {
    let tmp = tempfile::tempdir().unwrap();
    let app = helpers::spawn_app_with(tmp.path().to_path_buf(), |c| {
        c.server.idle_timeout = Duration::from_secs(1);
    })
    .await;
    let mut s = served_connection(&app).await;
    // kept alive, then closed once idle
    let rest = read_to_close(&mut s, Duration::from_secs(8)).await;
    assert!(rest.is_some(), "an idle keep-alive connection was still open after 8 s");
    app.stop().await;
}

#[tokio::test]
async fn a_stalled_body_is_answered_and_the_connection_closed() {
    let tmp = tempfile::tempdir().unwrap();
    let app = helpers::spawn_app_with(tmp.path().to_path_buf(), |c| {
        c.server.idle_timeout = Duration::from_secs(1);
    })
    .await;
    let mut s = TcpStream::connect(host(&app)).await.unwrap();
    let head = format!(
        "POST /v1/schemas HTTP/1.1\r\nHost: x\r\nx-api-key: {}\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n{{\"name\": ",
        app.api_key
    );
    s.write_all(head.as_bytes()).await.unwrap();
    let answer = read_to_close(&mut s, Duration::from_secs(8)).await.expect("a stalled upload held the connection");
    let (status, _, json) = parse_answer(&answer);
    assert_eq!(status, 400, "{json}");
    assert_error_shape(status, &json);
    assert!(json["message"].as_str().unwrap().contains("stalled"), "{json}");
    // nothing was stored
    let list: Value = app.get("/v1/schemas").send().await.unwrap().json().await.unwrap();
    assert_eq!(list["meta"]["total"], 0, "{list}");
    app.stop().await;
}

#[tokio::test]
async fn connections_past_the_cap_get_a_json_503_and_healthz_recovers() {
    let tmp = tempfile::tempdir().unwrap();
    let app = helpers::spawn_app_with(tmp.path().to_path_buf(), |c| c.server.max_connections = 3).await;
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(served_connection(&app).await);
    }
    let (status, head, json) = exchange(&app, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert_eq!(status, 503, "{json}");
    assert_error_shape(status, &json);
    assert!(head.contains("retry-after: "), "{head}");
    assert!(json["message"].as_str().unwrap().contains("--max-connections"), "{json}");
    held.pop();
    let app_ref = &app;
    helpers::poll_until(helpers::within(10), "a freed slot to be reused", move || async move {
        let (status, _, _) = exchange(app_ref, b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await;
        (status == 200).then_some(())
    })
    .await;
    app.stop().await;
}

#[tokio::test]
async fn healthz_answers_beside_500_slow_and_idle_connections() {
    let app = helpers::spawn_app().await;
    let mut held = Vec::new();
    for i in 0..500 {
        let mut s = TcpStream::connect(host(&app)).await.unwrap();
        if i % 2 == 0 {
            s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nx-slow: ").await.unwrap();
        }
        held.push(s);
    }
    let started = Instant::now();
    let r = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(started.elapsed() < Duration::from_secs(5), "/healthz took {:?}", started.elapsed());
    drop(held);
    app.stop().await;
}

#[tokio::test]
async fn requests_hyper_refuses_get_the_json_error_shape() {
    let app = helpers::spawn_app().await;
    // over hyper's own URI limit (64 KiB)
    let longer = format!("GET /healthz?x={} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(70_000));
    let (status, head, json) = exchange(&app, longer.as_bytes()).await;
    assert_eq!(status, 414, "{json}");
    assert_error_shape(status, &json);
    assert!(head.contains("content-type: application/json"), "{head}");
    // too many header fields
    let mut many = String::from("GET /healthz HTTP/1.1\r\nHost: x\r\n");
    for i in 0..150 {
        many.push_str(&format!("x-h{i}: v\r\n"));
    }
    many.push_str("\r\n");
    let (status, _, json) = exchange(&app, many.as_bytes()).await;
    assert_eq!(status, 431, "{json}");
    assert_error_shape(status, &json);
    // one huge header field
    let huge = format!("GET /healthz HTTP/1.1\r\nHost: x\r\nx-big: {}\r\n\r\n", "b".repeat(300_000));
    let (status, _, json) = exchange(&app, huge.as_bytes()).await;
    assert_eq!(status, 431, "{json}");
    assert_error_shape(status, &json);
    // not HTTP at all
    let (status, _, json) = exchange(&app, b"HELLO THERE\r\n\r\n").await;
    assert_eq!(status, 400, "{json}");
    assert_error_shape(status, &json);
    // and the server still serves
    assert_eq!(app.client.get(app.url("/healthz")).send().await.unwrap().status(), 200);
    app.stop().await;
}

#[tokio::test]
async fn stopping_is_bounded_by_the_grace_despite_a_stalled_client() {
    let tmp = tempfile::tempdir().unwrap();
    let app = helpers::spawn_app_with(tmp.path().to_path_buf(), |c| {
        c.server.shutdown_grace = Duration::from_secs(1);
        c.server.idle_timeout = Duration::from_secs(600);
    })
    .await;
    // a connection the server has taken (it answered a request), now in a request whose body
    // never comes
    let mut s = served_connection(&app).await;
    let mut buf = vec![0u8; 4096];
    let head = format!(
        "POST /v1/schemas HTTP/1.1\r\nHost: x\r\nx-api-key: {}\r\ncontent-type: application/json\r\ncontent-length: 1000\r\nexpect: 100-continue\r\n\r\n",
        app.api_key
    );
    s.write_all(head.as_bytes()).await.unwrap();
    // the handler asks for the body: the request is in flight
    let n = s.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 100"), "{}", String::from_utf8_lossy(&buf[..n]));
    s.write_all(b"{").await.unwrap();
    let started = Instant::now();
    tokio::time::timeout(Duration::from_secs(8), app.stop()).await.expect("stop waited for the stalled client");
    assert!(started.elapsed() >= Duration::from_millis(900), "the grace was not given: {:?}", started.elapsed());
    drop(s);
}

/// The real binary on SIGTERM: exits within its grace while a client stalls.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_exits_within_the_grace() {
    let tmp = tempfile::tempdir().unwrap();
    let server = helpers::ServeCmd::new(tmp.path())
        .args(&["--shutdown-grace", "2s"])
        .env("EXPORTS_API_KEY", "test-key-default-0123")
        .start()
        .await;
    let addr = server.addr.clone();
    // two connections the server has taken (each answered a request), then left mid-request
    let served = |rest: &[u8]| {
        let mut s = std::net::TcpStream::connect(&addr).unwrap();
        std::io::Write::write_all(&mut s, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let mut buf = [0u8; 1024];
        let n = std::io::Read::read(&mut s, &mut buf).unwrap();
        assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
        std::io::Write::write_all(&mut s, rest).unwrap();
        s
    };
    let stalled = served(b"GET /healthz HTTP/1.1\r\nHost: x\r\nx-half: ");
    let busy = served(
        b"POST /v1/schemas HTTP/1.1\r\nHost: x\r\nx-api-key: test-key-default-0123\r\ncontent-type: application/json\r\ncontent-length: 500\r\n\r\n{",
    );
    // panics if the server is still running 8 s after SIGTERM with a 2 s grace
    let exited = server.stop_within(Duration::from_secs(8)).await;
    assert!(exited.status.success(), "exit status {:?}", exited.status);
    drop((stalled, busy));
}
