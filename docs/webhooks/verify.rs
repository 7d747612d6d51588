//! Verify an Angage webhook delivery (Standard Webhooks, https://www.standardwebhooks.com).
//!
//! `verify` is `Ok(())` when one of the `v1,` signatures in `webhook-signature` is right for the
//! secret. `headers`: lower-case names; `body`: the raw request body exactly as received, before
//! any JSON parsing; `now_unix`: the current time in unix seconds. Crates: hmac 0.12, sha2 0.10,
//! base64 0.22. Tested source: docs/webhooks/verify.rs.

use std::collections::HashMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use sha2::Sha256;

const TOLERANCE_SECONDS: u64 = 5 * 60;

pub(crate) fn verify(
    secret: &str,
    headers: &HashMap<String, String>,
    body: &[u8],
    now_unix: i64,
) -> Result<(), String> {
    let header = |name: &str| headers.get(name).ok_or_else(|| format!("missing header {name}"));
    let (id, timestamp, signatures) =
        (header("webhook-id")?, header("webhook-timestamp")?, header("webhook-signature")?);
    let sent: i64 = match timestamp.parse() {
        Ok(sent) if timestamp.bytes().all(|b| b.is_ascii_digit()) => sent,
        _ => return Err(format!("webhook-timestamp {timestamp:?} is not unix seconds")),
    };
    if now_unix.abs_diff(sent) > TOLERANCE_SECONDS {
        return Err(format!("webhook-timestamp {sent} is more than 5 minutes from now ({now_unix})"));
    }
    let key = BASE64
        .decode(secret.strip_prefix("whsec_").unwrap_or(secret))
        .map_err(|e| format!("the secret is not whsec_<base64>: {e}"))?;
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).expect("HMAC takes a key of any length");
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body);
    // verify_slice compares in constant time.
    let valid = signatures
        .split(' ')
        .filter_map(|s| s.strip_prefix("v1,"))
        .filter_map(|s| BASE64.decode(s).ok())
        .any(|given| mac.clone().verify_slice(&given).is_ok());
    if valid { Ok(()) } else { Err("no valid v1 signature".into()) }
}
