//! API keys as values: `ApiKey` is a key whose format and checksum are valid (the rules live in
//! the SDK's `keyfmt`, shared with plugins); it never prints its secret.

use std::fmt;

pub use angage_plugin_sdk::keyfmt::KeyFormatError;
use angage_plugin_sdk::keyfmt::{self, BASE62, BODY_LEN, CHECK_LEN};
use rand::Rng;

use super::Environment;

/// A presented or generated key whose format and checksum are valid. Never logged: `Debug`
/// prints only the display prefix.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    pub fn parse(text: &str) -> Result<Self, KeyFormatError> {
        keyfmt::check(text)?;
        Ok(Self(text.to_owned()))
    }

    /// A new random key for `env`.
    pub fn generate(env: Environment) -> Self {
        let mut rng = rand::rng();
        let mut text = String::with_capacity(8 + BODY_LEN);
        text.push_str(env.key_prefix());
        for _ in 0..BODY_LEN - CHECK_LEN {
            text.push(BASE62[rng.random_range(0..62)] as char);
        }
        let check = keyfmt::checksum(&text);
        text.push_str(&check);
        Self(text)
    }

    /// A new random OAuth access token for `env` (`at_live_`, `at_test_`).
    pub fn generate_token(env: Environment) -> Self {
        let key = Self::generate(env);
        let text = format!("at_{}", &key.0[3..key.0.len() - CHECK_LEN]);
        let check = keyfmt::checksum(&text);
        Self(text + &check)
    }

    /// Whether this is an OAuth access token rather than an API key.
    pub fn is_token(&self) -> bool {
        keyfmt::is_token(&self.0)
    }

    pub fn environment(&self) -> Environment {
        if self.0[3..].starts_with("live_") { Environment::Live } else { Environment::Test }
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
