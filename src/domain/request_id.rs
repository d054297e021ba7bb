//! Request ids: every answer carries one in `x-request-id`, every log line of the request
//! names it, and a 5xx message quotes it, so a user can report it and an operator find it.

use std::fmt;

/// Longest id a client may choose.
pub const MAX_LEN: usize = 128;

/// The id of one request: the client's own `x-request-id` when it is sane (1–128 characters
/// of `A-Z a-z 0-9 . _ : -`), else a new UUIDv7 (time-ordered).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(String);

impl RequestId {
    /// The client's id if it is sane, else a new one. An id that is not sane (too long, or
    /// with characters a log or a header could trip on) is replaced, never cleaned up.
    pub fn from_client(sent: Option<&[u8]>) -> RequestId {
        match sent {
            Some(id) if is_sane(id) => RequestId(String::from_utf8_lossy(id).into_owned()),
            _ => RequestId::generate(),
        }
    }

    /// A new id: a UUIDv7.
    pub fn generate() -> RequestId {
        RequestId(uuid::Uuid::now_v7().to_string())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn is_sane(id: &[u8]) -> bool {
    (1..=MAX_LEN).contains(&id.len()) && id.iter().all(|b| b.is_ascii_alphanumeric() || b"._:-".contains(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sane_ids_are_kept_others_replaced() {
        for ok in ["abc", "req-1.2:3_4", &"a".repeat(MAX_LEN), "0197A0B1-0000-7000-8000-000000000000"] {
            assert_eq!(RequestId::from_client(Some(ok.as_bytes())).as_str(), ok);
        }
        for bad in ["", "a b", "x\ny", "é", "a/b", "<script>", &"a".repeat(MAX_LEN + 1)] {
            let id = RequestId::from_client(Some(bad.as_bytes()));
            assert_ne!(id.as_str(), bad);
            assert_eq!(uuid::Uuid::parse_str(id.as_str()).unwrap().get_version_num(), 7, "{bad:?}");
        }
        assert_ne!(RequestId::from_client(None), RequestId::from_client(None), "each generated id is new");
    }
}
