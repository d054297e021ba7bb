//! A webhook receiver on loopback: a small poem server that records every request as it
//! arrives and answers from a script (a status, or never).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use poem::listener::TcpAcceptor;
use poem::{Request, Response};
use serde_json::Value;

use super::{poll_until, within};

/// How the receiver answers a request.
#[derive(Clone, Copy, Debug)]
pub enum Reply {
    Status(u16),
    /// Never answers (the connection stays open).
    Hang,
}

/// A request as received.
#[derive(Clone, Debug)]
pub struct Received {
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("a delivery body is JSON")
    }
}

#[derive(Default)]
struct Shared {
    received: Mutex<Vec<Received>>,
    script: Mutex<VecDeque<Reply>>,
}

pub struct Receiver {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl Receiver {
    /// A receiver on a free loopback port answering `replies` in turn, then `then` to all.
    pub async fn start(replies: &[Reply], then: Reply) -> Receiver {
        Receiver::start_on("127.0.0.1:0".parse().unwrap(), replies, then).await
    }

    /// The same on a given address.
    pub async fn start_on(addr: SocketAddr, replies: &[Reply], then: Reply) -> Receiver {
        let listener = tokio::net::TcpListener::bind(addr).await.expect("bind the receiver");
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared::default());
        shared.script.lock().unwrap().extend(replies.iter().copied());
        let s = shared.clone();
        let ep = poem::endpoint::make(move |mut req: Request| {
            let s = s.clone();
            async move {
                let body = req.take_body().into_vec().await.unwrap_or_default();
                let headers = req
                    .headers()
                    .iter()
                    .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
                    .collect();
                s.received.lock().unwrap().push(Received { path: req.uri().path().to_string(), headers, body });
                let reply = s.script.lock().unwrap().pop_front().unwrap_or(then);
                match reply {
                    Reply::Status(code) => {
                        Response::builder().status(poem::http::StatusCode::from_u16(code).unwrap()).body("ok")
                    }
                    Reply::Hang => std::future::pending().await,
                }
            }
        });
        let acceptor = TcpAcceptor::from_tokio(listener).unwrap();
        let server = tokio::spawn(async move {
            let _ = poem::Server::new_with_acceptor(acceptor).run(ep).await;
        });
        Receiver { addr, shared, server }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Every request so far, in arrival order.
    pub fn received(&self) -> Vec<Received> {
        self.shared.received.lock().unwrap().clone()
    }

    /// Waits until `n` requests have arrived (at most `secs`); returns them all.
    pub async fn wait_for(&self, n: usize, secs: u64) -> Vec<Received> {
        poll_until(within(secs), &format!("{n} webhook requests at {}", self.addr), || {
            let got = self.received();
            std::future::ready((got.len() >= n).then_some(got))
        })
        .await
    }

    /// Waits for a request whose body's `data.id` is `export_id` and `type` is `ty`.
    pub async fn wait_event(&self, ty: &str, export_id: &str, secs: u64) -> Received {
        poll_until(within(secs), &format!("a {ty} event for {export_id} at {}", self.addr), || {
            let found = self.received().into_iter().find(|r| {
                let v = r.json();
                v["type"] == ty && v["data"]["id"] == export_id
            });
            std::future::ready(found)
        })
        .await
    }
}

/// Checks `x-exports-signature: t=…,v1=…` against the body with the secret, computed here
/// from the documented recipe: hex HMAC-SHA256 keyed with the secret's text over `t.body`.
pub fn signature_valid(r: &Received, secret: &str) -> bool {
    use hmac::{Hmac, Mac};
    let Some(header) = r.header("x-exports-signature") else { return false };
    let mut t = None;
    let mut v1 = None;
    for part in header.split(',') {
        match part.split_once('=') {
            Some(("t", x)) => t = Some(x.to_string()),
            Some(("v1", x)) => v1 = Some(x.to_string()),
            _ => {}
        }
    }
    let (Some(t), Some(v1)) = (t, v1) else { return false };
    if t.parse::<i64>().is_err() {
        return false;
    }
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{t}.").as_bytes());
    mac.update(&r.body);
    let Ok(sent) = hex::decode(&v1) else { return false };
    mac.verify_slice(&sent).is_ok()
}
