//! Signed requests (RFC 9421), checked in the authenticate stage once a principal is known:
//! when the tenant requires signatures or the key demands them (or a request with a
//! registered key carries one), its `Signature-Input`/`Signature` must cover `@method`,
//! `@target-uri` and, with a body, `content-digest`, be fresh (`created` within ±300 s), name
//! the key (`keyid`) and verify with the key's Ed25519 public key. A signature seen before
//! within the window is refused: its digest is charged once to the host's counters (Redis
//! when shared), so no node accepts it twice. The body itself is checked against its
//! `Content-Digest` by the edge before the handler runs.

use angage_core::key::KeyRecord;
use angage_core::policy::{PolicyRequest, Refusal};
use angage_core::signing::{self, MAX_SKEW_SECONDS, REQUIRED, SignatureInput};
use sha2::{Digest, Sha256};

use crate::plugins::KeyRef;
use crate::plugins::counters::CounterOp;

/// The counters' namespace for seen signatures (no plugin's name can be this: it has a colon).
pub(crate) const REPLAY_NAMESPACE: &str = "host:signatures";

/// A seen signature is remembered this long: past it, its `created` is out of the window.
const REPLAY_TTL_MS: u64 = 2 * MAX_SKEW_SECONDS as u64 * 1000 + 1000;

/// What a request needs before it may go on.
pub(crate) enum Signed {
    /// Nothing to check.
    NotNeeded,
    /// A valid signature, to be charged once against replays.
    Fresh(CounterOp),
}

fn refusal(code: &str, detail: impl Into<String>) -> Refusal {
    Refusal { status: 401, code: code.into(), detail: detail.into(), retry_after: None }
}

/// The refusal for a signature seen before.
pub(crate) fn replayed() -> Refusal {
    refusal("signature_replayed", "This signature was already used; sign every request anew")
}

fn header<'a>(request: &'a PolicyRequest, name: &str) -> Option<&'a str> {
    request.headers.get(name).and_then(|v| v.to_str().ok())
}

/// Whether the request carries a body (a signature must then cover its digest).
fn has_body(request: &PolicyRequest) -> bool {
    request.headers.contains_key(http::header::TRANSFER_ENCODING)
        || header(request, "content-length").and_then(|l| l.trim().parse::<u64>().ok()).is_some_and(|l| l > 0)
}

/// Checks the request's signature as its key and tenant require.
pub(crate) fn check(key: &KeyRef, request: &PolicyRequest) -> Result<Signed, Refusal> {
    let k = &key.key;
    let carries =
        request.headers.contains_key("signature-input") || request.headers.contains_key("signature");
    let required = key.settings.security.validate_request_signatures || k.require_signature;
    let checked = required || (carries && k.signing_key.is_some());
    if !checked {
        return Ok(Signed::NotNeeded);
    }
    let Some(public) = k.signing_key.as_ref() else {
        return Err(refusal(
            "signing_key_missing",
            format!(
                "Requests must be signed, and API key {} has no Ed25519 public key registered: register one \
                 as `signing_public_key` on the key (PUT /admin/v1/keys/{})",
                k.id, k.id
            ),
        ));
    };
    let (Some(input), Some(signature)) = (header(request, "signature-input"), header(request, "signature"))
    else {
        return Err(refusal(
            "signature_required",
            "Requests with this key must be signed (RFC 9421): send Signature-Input and Signature covering \
             \"@method\", \"@target-uri\" and, with a body, \"content-digest\"",
        ));
    };
    verify(k, public, request, input, signature).map(Signed::Fresh)
}

fn verify(
    k: &KeyRecord,
    public: &[u8; 32],
    request: &PolicyRequest,
    input: &str,
    signature: &str,
) -> Result<CounterOp, Refusal> {
    let invalid = |detail: String| refusal("invalid_signature", detail);
    let inputs = signing::parse_signature_input(input).map_err(|e| invalid(e.to_string()))?;
    // The first signature, as RFC 9421 lets a verifier choose; the others are not ours.
    let Some(input) = inputs.into_iter().next() else {
        return Err(invalid("Signature-Input names no signature".into()));
    };
    let sig = signing::signature_for(signature, &input.label).map_err(|e| invalid(e.to_string()))?;
    covers_what_it_must(&input, has_body(request)).map_err(invalid)?;
    if input.text("keyid") != Some(k.id.as_str()) {
        return Err(invalid(format!("keyid must be this API key's id, {}", k.id)));
    }
    if let Some(alg) = input.text("alg").filter(|a| *a != "ed25519") {
        return Err(invalid(format!("alg `{alg}` is not supported; sign with ed25519")));
    }
    let now = request.time_ms.div_euclid(1000);
    let Some(created) = input.created() else {
        return Err(invalid("the signature has no `created` parameter".into()));
    };
    if (now - created).abs() > MAX_SKEW_SECONDS {
        return Err(invalid(format!(
            "created ({created}) is more than {MAX_SKEW_SECONDS} seconds from the server's time ({now}); sign each request when it is sent"
        )));
    }
    if let Some(signing::Param::Integer(expires)) = input.param("expires")
        && *expires < now
    {
        return Err(invalid(format!("the signature expired at {expires}")));
    }
    let base = signing::signature_base(&input, |c| component(request, c)).map_err(invalid)?;
    if !signing::verify(public, base.as_bytes(), &sig) {
        return Err(invalid(
            "the signature does not verify against the key's public key for this method, URL and digest"
                .into(),
        ));
    }
    Ok(CounterOp { key: hex::encode(Sha256::digest(&sig)), cost: 1, limit: 1, ttl_ms: REPLAY_TTL_MS })
}

fn covers_what_it_must(input: &SignatureInput, body: bool) -> Result<(), String> {
    let covered = |c: &str| input.components.iter().any(|x| x == c);
    for c in REQUIRED {
        if !covered(c) {
            return Err(format!("the signature must cover \"{c}\""));
        }
    }
    if body && !covered("content-digest") {
        return Err("a request with a body must sign \"content-digest\" (RFC 9530)".into());
    }
    Ok(())
}

/// A covered component's value in this request.
fn component(request: &PolicyRequest, name: &str) -> Option<String> {
    // The edge gives HTTP/2 requests a `Host` from their `:authority`.
    let authority = || header(request, "host").map(str::to_owned);
    match name {
        "@method" => Some(request.method.clone()),
        "@target-uri" => {
            Some(signing::target_uri(request.https, &authority()?, &request.path, request.query.as_deref()))
        }
        "@authority" => authority().map(|a| a.to_ascii_lowercase()),
        "@scheme" => Some(if request.https { "https" } else { "http" }.into()),
        "@path" => Some(request.path.clone()),
        "@query" => Some(format!("?{}", request.query.as_deref().unwrap_or(""))),
        n if n.starts_with('@') => None,
        n => {
            let values: Vec<&str> =
                request.headers.get_all(n).iter().filter_map(|v| v.to_str().ok()).collect();
            (!values.is_empty()).then(|| values.iter().map(|v| v.trim()).collect::<Vec<_>>().join(", "))
        }
    }
}
