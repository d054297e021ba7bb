//! Download URL signatures: base64url (no padding) of
//! HMAC-SHA256(key, "GET\n" + path + "\n" + expires), checked in constant time.

use std::io::Write;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::data_dir::DataDir;

type HmacSha256 = Hmac<Sha256>;

#[derive(Clone)]
pub struct Signer {
    key: Vec<u8>,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Signer(..)")
    }
}

impl Signer {
    pub fn new(key: Vec<u8>) -> Signer {
        Signer { key }
    }

    /// The configured key, or the one kept in the data folder (generated on first use, 32
    /// random bytes, mode 0600), so URLs stay valid across restarts.
    pub fn load_or_create(data_dir: &DataDir, configured: Option<Vec<u8>>) -> std::io::Result<Signer> {
        if let Some(key) = configured {
            return Ok(Signer::new(key));
        }
        let path = data_dir.signing_key();
        match std::fs::read(&path) {
            Ok(key) if key.len() >= 32 => {
                crate::private::tighten(&path)?;
                return Ok(Signer::new(key));
            }
            Ok(_) => {
                return Err(std::io::Error::other(format!(
                    "{} is shorter than 32 bytes; delete it to generate a new key (old download URLs stop working)",
                    path.display()
                )))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let mut key = vec![0u8; 32];
        getrandom::getrandom(&mut key).map_err(|e| std::io::Error::other(e.to_string()))?;
        let tmp = data_dir.signing_key_temp();
        let written = crate::private::create_file(&tmp).and_then(|mut f| {
            f.write_all(&key)?;
            f.sync_all()
        });
        if let Err(e) = written.and_then(|()| std::fs::rename(&tmp, &path)) {
            // a full disk must not leave a short key behind for the next start to refuse
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
        Ok(Signer::new(key))
    }

    fn mac(&self, path: &str, expires: i64) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(&self.key).expect("HMAC takes any key length");
        mac.update(b"GET\n");
        mac.update(path.as_bytes());
        mac.update(b"\n");
        mac.update(expires.to_string().as_bytes());
        mac
    }

    pub fn sign(&self, path: &str, expires: i64) -> String {
        URL_SAFE_NO_PAD.encode(self.mac(path, expires).finalize().into_bytes())
    }

    /// Constant-time check of a token against path and expiry.
    pub fn verify(&self, path: &str, expires: i64, token: &str) -> bool {
        match URL_SAFE_NO_PAD.decode(token.as_bytes()) {
            Ok(sig) => self.mac(path, expires).verify_slice(&sig).is_ok(),
            Err(_) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_and_verifies() {
        let s = Signer::new(b"0123456789abcdef0123456789abcdef".to_vec());
        let t = s.sign("/files/teams/a/b/c.csv", 1_700_000_000);
        assert_eq!(t.len(), 43);
        assert!(s.verify("/files/teams/a/b/c.csv", 1_700_000_000, &t));
        assert!(!s.verify("/files/teams/a/b/d.csv", 1_700_000_000, &t));
        assert!(!s.verify("/files/teams/a/b/c.csv", 1_700_000_001, &t));
        assert!(!s.verify("/files/teams/a/b/c.csv", 1_700_000_000, "not base64!"));
    }

    #[test]
    fn key_file_persists() {
        let dir = tempfile::tempdir().unwrap();
        let data = DataDir::new(dir.path());
        let a = Signer::load_or_create(&data, None).unwrap();
        let b = Signer::load_or_create(&data, None).unwrap();
        assert_eq!(a.sign("/x", 1), b.sign("/x", 1));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(data.signing_key()).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
