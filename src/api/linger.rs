//! Lingering after an early answer. When a request is refused while its body is still arriving
//! (413 over a limit, 400 for a bad line), the connection would be closed with unread bytes
//! in it, and the kernel then resets it: a client that sends its whole body before reading
//! (most HTTP libraries) gets "connection reset" instead of the answer. So the rest of the
//! body is read and thrown away, in the background and within a bound of bytes and time;
//! nothing of it is kept. Past the bound the connection is closed.

use std::time::Duration;

use futures_util::{Stream, StreamExt};
use poem::http::header::EXPECT;
use poem::Request;

/// Bytes read and thrown away at most after an early answer.
pub const LINGER_BYTES: u64 = 16 << 20;
/// Time spent at most reading them.
pub const LINGER_TIME: Duration = Duration::from_secs(5);

/// Reads `body` to its end in the background, at most `LINGER_BYTES` and `LINGER_TIME`.
pub fn discard_rest<S, B, E>(body: S)
where
    S: Stream<Item = Result<B, E>> + Send + 'static,
    B: AsRef<[u8]>,
{
    tokio::spawn(async move {
        let mut body = std::pin::pin!(body);
        let mut left = LINGER_BYTES;
        let _ = tokio::time::timeout(LINGER_TIME, async {
            while let Some(Ok(chunk)) = body.next().await {
                match left.checked_sub(chunk.as_ref().len() as u64) {
                    Some(l) => left = l,
                    None => break,
                }
            }
        })
        .await;
    });
}

/// For a request refused from its headers alone (its `Content-Length` is over a limit):
/// discards its body in the background when the body is small enough to be read in the
/// bound. Not when the client waits for `100 Continue`: it then sends nothing at all.
pub fn discard_refused_body(req: &mut Request, content_length: u64) {
    if !req.headers().contains_key(EXPECT) && content_length <= LINGER_BYTES {
        discard_rest(req.take_body().into_bytes_stream());
    }
}
