//! The API key format: `ak_live_` or `ak_test_` + 40 base62 characters, the last 6 a base62
//! CRC32 of everything before them. A mistyped or made-up key is refused before any lookup, and
//! secret scanners can recognise one.

use std::fmt;

use rand::Rng;

use super::Environment;

const BASE62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const BODY: usize = 40;
const CHECK: usize = 6;

/// A presented or generated key whose format and checksum are valid. Never logged: `Debug`
/// prints only the display prefix.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

/// Why a presented string is not an API key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum KeyFormatError {
    #[error("an API key starts with ak_live_ or ak_test_")]
    Prefix,
    #[error("an API key has 40 letters and digits after its prefix")]
    Length,
    #[error("the API key's checksum does not match; it was mistyped or made up")]
    Checksum,
}

impl ApiKey {
    pub fn parse(text: &str) -> Result<Self, KeyFormatError> {
        let body = text
            .strip_prefix("ak_live_")
            .or_else(|| text.strip_prefix("ak_test_"))
            .ok_or(KeyFormatError::Prefix)?;
        if body.len() != BODY || !body.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(KeyFormatError::Length);
        }
        let (head, check) = text.split_at(text.len() - CHECK);
        if checksum(head) != check {
            return Err(KeyFormatError::Checksum);
        }
        Ok(Self(text.to_owned()))
    }

    /// A new random key for `env`.
    pub fn generate(env: Environment) -> Self {
        let mut rng = rand::rng();
        let mut text = String::with_capacity(8 + BODY);
        text.push_str(env.key_prefix());
        for _ in 0..BODY - CHECK {
            text.push(BASE62[rng.random_range(0..62)] as char);
        }
        let check = checksum(&text);
        text.push_str(&check);
        Self(text)
    }

    pub fn environment(&self) -> Environment {
        if self.0.starts_with("ak_live_") { Environment::Live } else { Environment::Test }
    }

    /// What lists show: `ak_live_8x7y...`.
    pub fn display_prefix(&self) -> String {
        format!("{}...", &self.0[..12])
    }

    /// The secret itself; only for the digest and the shown-once response.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ApiKey({})", self.display_prefix())
    }
}

/// Base62 of the CRC32 of `text`, zero-padded to 6 characters (62^6 > 2^32).
fn checksum(text: &str) -> String {
    let mut n = crc32fast::hash(text.as_bytes());
    let mut out = [b'0'; CHECK];
    for slot in out.iter_mut().rev() {
        *slot = BASE62[(n % 62) as usize];
        n /= 62;
    }
    out.iter().map(|&b| b as char).collect()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn generated_keys_parse_and_show_a_prefix() {
        for env in [Environment::Live, Environment::Test] {
            let key = ApiKey::generate(env);
            assert_eq!(key.expose().len(), 48);
            assert_eq!(ApiKey::parse(key.expose()), Ok(key.clone()));
            assert_eq!(key.environment(), env);
            assert!(
                key.display_prefix().starts_with(env.key_prefix()) && key.display_prefix().ends_with("...")
            );
            assert!(!format!("{key:?}").contains(&key.expose()[12..]));
        }
    }

    #[test]
    fn malformed_keys_are_refused_with_a_reason() {
        let key = ApiKey::generate(Environment::Live);
        assert_eq!(ApiKey::parse(""), Err(KeyFormatError::Prefix));
        assert_eq!(ApiKey::parse("sk_live_abc"), Err(KeyFormatError::Prefix));
        assert_eq!(ApiKey::parse("ak_live_short"), Err(KeyFormatError::Length));
        assert_eq!(ApiKey::parse(&format!("{}-", &key.expose()[..47])), Err(KeyFormatError::Length));
        let swapped = key.expose().replacen("ak_live_", "ak_test_", 1);
        assert_eq!(ApiKey::parse(&swapped), Err(KeyFormatError::Checksum));
    }

    proptest! {
        #[test]
        fn every_single_character_change_is_caught(pos in 8usize..48, replacement in 0usize..62, live in any::<bool>()) {
            let key = ApiKey::generate(if live { Environment::Live } else { Environment::Test });
            let mut bytes = key.expose().as_bytes().to_vec();
            let new = BASE62[replacement];
            prop_assume!(bytes[pos] != new);
            bytes[pos] = new;
            let changed = String::from_utf8(bytes).expect("ascii");
            prop_assert_eq!(ApiKey::parse(&changed), Err(KeyFormatError::Checksum));
        }
    }

    #[test]
    fn every_single_character_change_is_caught_exhaustively_for_one_key() {
        let key = ApiKey::generate(Environment::Live);
        for pos in 8..48 {
            for &c in BASE62 {
                let mut bytes = key.expose().as_bytes().to_vec();
                if bytes[pos] == c {
                    continue;
                }
                bytes[pos] = c;
                let changed = String::from_utf8(bytes).expect("ascii");
                assert!(ApiKey::parse(&changed).is_err(), "{pos} {}", c as char);
            }
        }
    }
}
