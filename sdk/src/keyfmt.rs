//! The API key format: `ak_live_` or `ak_test_` + 40 base62 characters, the last 6 a base62
//! CRC32 of everything before them. OAuth access tokens (`at_live_`, `at_test_`) have the same
//! shape, so an authenticator that checks keys checks tokens alike. Checking it costs nothing and refuses mistyped or made-up
//! keys before the host is asked to look one up.

/// Base62 digits in the order the checksum uses.
pub const BASE62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
/// Characters after the `ak_live_` / `ak_test_` prefix.
pub const BODY_LEN: usize = 40;
/// Checksum characters at the end of the body.
pub const CHECK_LEN: usize = 6;

/// Why a presented string is not an API key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyFormatError {
    /// It does not start with `ak_live_` or `ak_test_`.
    Prefix,
    /// The part after the prefix is not 40 letters and digits.
    Length,
    /// The checksum does not match: mistyped or made up.
    Checksum,
}

impl std::fmt::Display for KeyFormatError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Prefix => "an API key starts with ak_live_ or ak_test_ (an OAuth access token with at_live_ or at_test_)",
            Self::Length => "an API key has 40 letters and digits after its prefix",
            Self::Checksum => "the API key's checksum does not match; it was mistyped or made up",
        })
    }
}

impl std::error::Error for KeyFormatError {}

/// The prefixes of API keys and of OAuth access tokens.
pub const PREFIXES: [&str; 4] = ["ak_live_", "ak_test_", "at_live_", "at_test_"];

/// Whether a well-formed credential is an OAuth access token rather than an API key.
pub fn is_token(text: &str) -> bool {
    text.starts_with("at_")
}

/// Checks prefix, length, alphabet and checksum.
pub fn check(text: &str) -> Result<(), KeyFormatError> {
    let body = PREFIXES.iter().find_map(|p| text.strip_prefix(p)).ok_or(KeyFormatError::Prefix)?;
    if body.len() != BODY_LEN || !body.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(KeyFormatError::Length);
    }
    let (head, sum) = text.split_at(text.len() - CHECK_LEN);
    if checksum_bytes(head) != sum.as_bytes() {
        return Err(KeyFormatError::Checksum);
    }
    Ok(())
}

/// Base62 of the CRC32 (IEEE) of `text`, zero-padded to 6 characters (62^6 > 2^32).
pub fn checksum(text: &str) -> String {
    checksum_bytes(text).iter().map(|&b| b as char).collect()
}

fn checksum_bytes(text: &str) -> [u8; CHECK_LEN] {
    let mut n = crc32(text.as_bytes());
    let mut out = [b'0'; CHECK_LEN];
    for slot in out.iter_mut().rev() {
        *slot = BASE62[(n % 62) as usize];
        n /= 62;
    }
    out
}

/// CRC-32/IEEE with a table built at compile time: every request checks a key (in the plugin,
/// then in the host), and plugins stay dependency-free.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in bytes {
        crc = (crc >> 8) ^ CRC_TABLE[((crc ^ u32::from(b)) & 0xFF) as usize];
    }
    !crc
}

const CRC_TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut crc = i as u32;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
            bit += 1;
        }
        table[i] = crc;
        i += 1;
    }
    table
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_matches_the_standard_check_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }

    #[test]
    fn a_key_with_its_checksum_passes_and_a_changed_one_fails() {
        let head = format!("ak_live_{}", "a".repeat(34));
        let key = format!("{head}{}", checksum(&head));
        assert_eq!(check(&key), Ok(()));
        let changed = key.replacen("aaaa", "aaab", 1);
        assert_eq!(check(&changed), Err(KeyFormatError::Checksum));
        assert_eq!(check("ak_live_x"), Err(KeyFormatError::Length));
        assert_eq!(check("pk_live_x"), Err(KeyFormatError::Prefix));
    }
}
