//! Random identifiers and secrets.

use rand::Rng;
use rand::distr::Alphanumeric;

const LOWER_ALNUM: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";

/// `prefix_` followed by 12 lowercase alphanumerics, e.g. `cust_abc123def456`.
pub fn new_id(prefix: &str) -> String {
    let mut rng = rand::rng();
    let tail: String = (0..12).map(|_| LOWER_ALNUM[rng.random_range(0..LOWER_ALNUM.len())] as char).collect();
    format!("{prefix}_{tail}")
}

/// A random base62 string of `len` characters, for generated passwords and tokens.
pub fn random_base62(len: usize) -> String {
    rand::rng().sample_iter(&Alphanumeric).take(len).map(char::from).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_have_the_documented_shape() {
        let id = new_id("cust");
        let tail = id.strip_prefix("cust_").expect("prefix");
        assert_eq!(tail.len(), 12);
        assert!(tail.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()));
    }
}
