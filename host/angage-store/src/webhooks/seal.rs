//! Signing secrets at rest: sealed (ChaCha20-Poly1305) under a key derived from the pepper, so
//! a copy of the database alone signs nothing. The worker opens them to sign a delivery.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use rand::Rng;

use crate::keys::Pepper;

const VERSION: &str = "v1:";

/// A stored secret that does not open: sealed under another pepper, or damaged.
#[derive(Debug, thiserror::Error)]
#[error("a stored webhook signing secret cannot be opened (was keys.pepper changed?)")]
pub struct Unsealable;

/// Seals and opens signing secrets.
#[derive(Clone)]
pub struct Sealer {
    cipher: ChaCha20Poly1305,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer(..)")
    }
}

impl Sealer {
    pub fn new(pepper: &Pepper) -> Self {
        let key = pepper.derive("angage webhook signing secrets v1");
        Self { cipher: ChaCha20Poly1305::new(Key::from_slice(&key)) }
    }

    pub fn seal(&self, secret: &str) -> String {
        let mut nonce = [0u8; 12];
        rand::rng().fill(&mut nonce);
        // Encryption with a fresh nonce and an in-memory buffer cannot fail.
        let sealed = self.cipher.encrypt(Nonce::from_slice(&nonce), secret.as_bytes()).unwrap_or_default();
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        format!("{VERSION}{}", STANDARD.encode(out))
    }

    pub fn open(&self, sealed: &str) -> Result<String, Unsealable> {
        let raw = sealed
            .strip_prefix(VERSION)
            .and_then(|b| STANDARD.decode(b).ok())
            .filter(|raw| raw.len() > 12)
            .ok_or(Unsealable)?;
        let (nonce, body) = raw.split_at(12);
        let plain = self.cipher.decrypt(Nonce::from_slice(nonce), body).map_err(|_| Unsealable)?;
        String::from_utf8(plain).map_err(|_| Unsealable)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_secret_opens_only_with_its_pepper() {
        let a = Sealer::new(&Pepper::new(&"a".repeat(32)).expect("pepper"));
        let b = Sealer::new(&Pepper::new(&"b".repeat(32)).expect("pepper"));
        let sealed = a.seal("whsec_abc");
        assert!(!sealed.contains("whsec_abc"));
        assert_ne!(sealed, a.seal("whsec_abc"), "a fresh nonce each time");
        assert_eq!(a.open(&sealed).expect("opens"), "whsec_abc");
        assert!(b.open(&sealed).is_err());
        assert!(a.open("v1:AAAA").is_err());
    }
}
