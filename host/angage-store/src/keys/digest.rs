//! HMAC-SHA256 digests of API keys under the server pepper; the store keeps only these.

use std::fmt;
use std::path::Path;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::ApiKey;

/// The server pepper. `Debug` never shows it.
#[derive(Clone)]
pub struct Pepper {
    keyed: Hmac<Sha256>,
}

impl fmt::Debug for Pepper {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Pepper(<redacted>)")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PepperError {
    #[error(
        "keys.pepper must be set in the production profile (e.g. ANGAGE_KEYS__PEPPER); refusing to start"
    )]
    MissingInProduction,
    #[error("keys.pepper must be at least 32 characters")]
    TooShort,
    #[error("cannot read or write the development pepper at {path}: {source}")]
    Io { path: String, source: std::io::Error },
}

impl Pepper {
    pub fn new(secret: &str) -> Result<Self, PepperError> {
        if secret.len() < 32 {
            return Err(PepperError::TooShort);
        }
        let keyed = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).map_err(|_| PepperError::TooShort)?;
        Ok(Self { keyed })
    }

    /// The configured pepper; in development, one generated once and kept in `data_dir/pepper`.
    pub fn resolve(configured: &str, profile: &str, data_dir: &Path) -> Result<Self, PepperError> {
        if !configured.is_empty() {
            return Self::new(configured);
        }
        if profile == "production" {
            return Err(PepperError::MissingInProduction);
        }
        let path = data_dir.join("pepper");
        let io = |source| PepperError::Io { path: path.display().to_string(), source };
        let secret = match std::fs::read_to_string(&path) {
            Ok(s) => s.trim().to_owned(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::create_dir_all(data_dir).map_err(io)?;
                let secret = angage_core::ids::random_base62(48);
                write_private(&path, &secret).map_err(io)?;
                secret
            }
            Err(e) => return Err(io(e)),
        };
        Self::new(&secret)
    }

    /// Hex HMAC-SHA256 of the key: what the store keeps.
    pub fn digest(&self, key: &ApiKey) -> String {
        hex::encode(self.digest_bytes(key))
    }

    /// The raw digest, for the in-memory cache.
    pub fn digest_bytes(&self, key: &ApiKey) -> [u8; 32] {
        let mut mac = self.keyed.clone();
        mac.update(key.expose().as_bytes());
        mac.finalize().into_bytes().into()
    }

    /// A 32-byte key for another purpose, derived from the pepper and a label naming it.
    pub fn derive(&self, label: &str) -> [u8; 32] {
        let mut mac = self.keyed.clone();
        mac.update(b"derive:");
        mac.update(label.as_bytes());
        mac.finalize().into_bytes().into()
    }

    /// Hex HMAC-SHA256 of any secret (admin tokens, session tokens).
    pub fn digest_str(&self, secret: &str) -> String {
        let mut mac = self.keyed.clone();
        mac.update(secret.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }
}

#[cfg(unix)]
fn write_private(path: &Path, secret: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
    f.write_all(secret.as_bytes())
}

#[cfg(not(unix))]
fn write_private(path: &Path, secret: &str) -> std::io::Result<()> {
    std::fs::write(path, secret)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::Environment;

    #[test]
    fn digests_depend_on_the_pepper_and_the_development_pepper_persists() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = Pepper::resolve("", "development", dir.path()).expect("generated");
        let b = Pepper::resolve("", "development", dir.path()).expect("reread");
        let key = ApiKey::generate(Environment::Test);
        assert_eq!(a.digest(&key), b.digest(&key));
        assert_eq!(a.digest(&key).len(), 64);
        let other = Pepper::new(&"x".repeat(32)).expect("pepper");
        assert_ne!(a.digest(&key), other.digest(&key));
        assert!(matches!(
            Pepper::resolve("", "production", dir.path()),
            Err(PepperError::MissingInProduction)
        ));
        assert!(matches!(Pepper::new("short"), Err(PepperError::TooShort)));
        assert_eq!(format!("{a:?}"), "Pepper(<redacted>)");
    }
}
