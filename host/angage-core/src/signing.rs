//! HTTP Message Signatures (RFC 9421) and `Content-Digest` (RFC 9530), the parts both the
//! verifier (the policy engine), the body check (the edge) and the signer (`angage sign`) share:
//! the structured-field subset these headers use, the signature base, and body digests.
//! Keys are Ed25519: the server holds only public keys.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use sha2::{Digest, Sha256, Sha512};

/// How far a signature's `created` may be from the server's time, either way, in seconds.
pub const MAX_SKEW_SECONDS: i64 = 300;

/// The components every signature must cover; with a body, `content-digest` as well.
pub const REQUIRED: [&str; 2] = ["@method", "@target-uri"];

/// The DER prefix of an Ed25519 `SubjectPublicKeyInfo` (RFC 8410), before the 32 key bytes.
const SPKI_PREFIX: [u8; 12] = [0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00];

/// An Ed25519 public key as an owner registers it: a PEM `PUBLIC KEY` (what `openssl pkey
/// -pubout` prints) or the 32 raw bytes in base64 or base64url.
pub fn parse_public_key(text: &str) -> Result<[u8; 32], &'static str> {
    use base64::engine::general_purpose::{URL_SAFE, URL_SAFE_NO_PAD};
    let text = text.trim();
    let bytes = if let Some(rest) = text.strip_prefix("-----BEGIN PUBLIC KEY-----") {
        let body = rest.split("-----END PUBLIC KEY-----").next().unwrap_or("");
        let compact: String = body.chars().filter(|c| !c.is_whitespace()).collect();
        let der = STANDARD.decode(compact).map_err(|_| "the PEM body is not base64")?;
        match der.strip_prefix(&SPKI_PREFIX[..]) {
            Some(key) => key.to_vec(),
            None => return Err("the PEM key is not an Ed25519 public key"),
        }
    } else {
        STANDARD
            .decode(text)
            .or_else(|_| URL_SAFE.decode(text))
            .or_else(|_| URL_SAFE_NO_PAD.decode(text))
            .map_err(|_| "must be a PEM public key or the 32-byte key in base64")?
    };
    let key: [u8; 32] = bytes.try_into().map_err(|_| "an Ed25519 public key has 32 bytes")?;
    ed25519_dalek::VerifyingKey::from_bytes(&key).map_err(|_| "is not a valid Ed25519 public key")?;
    Ok(key)
}

/// The stored form of a public key: base64 of its 32 bytes.
pub fn encode_public_key(key: &[u8; 32]) -> String {
    STANDARD.encode(key)
}

/// Whether `signature` is `key`'s Ed25519 signature of `base` (strict: no malleable forms).
pub fn verify(key: &[u8; 32], base: &[u8], signature: &[u8]) -> bool {
    let Ok(key) = ed25519_dalek::VerifyingKey::from_bytes(key) else { return false };
    let Ok(signature) = ed25519_dalek::Signature::from_slice(signature) else { return false };
    key.verify_strict(base, &signature).is_ok()
}

/// A parameter value of a structured field (the kinds these headers use).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Param {
    Integer(i64),
    String(String),
    Token(String),
}

/// One signature's inputs: the covered components and the parameters, in the order sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureInput {
    pub label: String,
    pub components: Vec<String>,
    pub params: Vec<(String, Param)>,
}

impl SignatureInput {
    pub fn param(&self, name: &str) -> Option<&Param> {
        self.params.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }

    pub fn created(&self) -> Option<i64> {
        match self.param("created") {
            Some(Param::Integer(n)) => Some(*n),
            _ => None,
        }
    }

    pub fn text(&self, name: &str) -> Option<&str> {
        match self.param(name) {
            Some(Param::String(s) | Param::Token(s)) => Some(s),
            _ => None,
        }
    }

    /// The value of `@signature-params`, and of this signature's `Signature-Input` member.
    pub fn serialize(&self) -> String {
        let mut out = String::from("(");
        for (i, c) in self.components.iter().enumerate() {
            if i > 0 {
                out.push(' ');
            }
            push_string(&mut out, c);
        }
        out.push(')');
        for (name, value) in &self.params {
            out.push(';');
            out.push_str(name);
            out.push('=');
            match value {
                Param::Integer(n) => out.push_str(&n.to_string()),
                Param::String(s) => push_string(&mut out, s),
                Param::Token(t) => out.push_str(t),
            }
        }
        out
    }
}

fn push_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
}

/// Why a signature header could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SigningError {
    #[error("{header} is not a valid structured field: {reason}")]
    Malformed { header: &'static str, reason: &'static str },
    #[error("Signature has no entry labelled `{0}`, as Signature-Input does")]
    NoSignature(String),
}

/// A small reader for the RFC 8941 subset: dictionaries of inner lists of strings with
/// parameters (`Signature-Input`) or of byte sequences (`Signature`, `Content-Digest`).
struct Reader<'a> {
    s: &'a [u8],
    at: usize,
    header: &'static str,
}

impl<'a> Reader<'a> {
    fn new(s: &'a str, header: &'static str) -> Self {
        Self { s: s.as_bytes(), at: 0, header }
    }

    fn fail<T>(&self, reason: &'static str) -> Result<T, SigningError> {
        Err(SigningError::Malformed { header: self.header, reason })
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.at).copied()
    }

    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.at += 1;
        }
    }

    fn eat(&mut self, b: u8) -> bool {
        if self.peek() == Some(b) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    fn key(&mut self) -> Result<String, SigningError> {
        let start = self.at;
        match self.peek() {
            Some(b'a'..=b'z' | b'*') => {}
            _ => return self.fail("a key must start with a lowercase letter"),
        }
        while matches!(self.peek(), Some(b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-' | b'.' | b'*')) {
            self.at += 1;
        }
        Ok(String::from_utf8_lossy(&self.s[start..self.at]).into_owned())
    }

    fn string(&mut self) -> Result<String, SigningError> {
        if !self.eat(b'"') {
            return self.fail("expected a string");
        }
        let mut out = String::new();
        loop {
            match self.peek() {
                None => return self.fail("a string is not closed"),
                Some(b'"') => {
                    self.at += 1;
                    return Ok(out);
                }
                Some(b'\\') => {
                    self.at += 1;
                    match self.peek() {
                        Some(c @ (b'"' | b'\\')) => {
                            out.push(char::from(c));
                            self.at += 1;
                        }
                        _ => return self.fail("a string has a bad escape"),
                    }
                }
                Some(c @ 0x20..=0x7e) => {
                    out.push(char::from(c));
                    self.at += 1;
                }
                Some(_) => return self.fail("a string holds a character outside printable ASCII"),
            }
        }
    }

    fn bytes(&mut self) -> Result<Vec<u8>, SigningError> {
        if !self.eat(b':') {
            return self.fail("expected a byte sequence (:base64:)");
        }
        let start = self.at;
        while matches!(self.peek(), Some(c) if c != b':') {
            self.at += 1;
        }
        let body = &self.s[start..self.at];
        if !self.eat(b':') {
            return self.fail("a byte sequence is not closed");
        }
        STANDARD.decode(body).or_else(|_| self.fail("a byte sequence is not base64"))
    }

    fn param_value(&mut self) -> Result<Param, SigningError> {
        match self.peek() {
            Some(b'"') => self.string().map(Param::String),
            Some(b'-' | b'0'..=b'9') => {
                let start = self.at;
                self.at += 1;
                while matches!(self.peek(), Some(b'0'..=b'9')) {
                    self.at += 1;
                }
                let text = std::str::from_utf8(&self.s[start..self.at]).unwrap_or("");
                match text.parse::<i64>() {
                    Ok(n) if text.len() <= 16 => Ok(Param::Integer(n)),
                    _ => self.fail("an integer is out of range"),
                }
            }
            Some(b'a'..=b'z' | b'A'..=b'Z' | b'*') => {
                let start = self.at;
                while matches!(self.peek(), Some(c) if c.is_ascii_alphanumeric() || b":/!#$%&'*+-.^_`|~".contains(&c))
                {
                    self.at += 1;
                }
                Ok(Param::Token(String::from_utf8_lossy(&self.s[start..self.at]).into_owned()))
            }
            _ => self.fail("a parameter value must be an integer, a string or a token"),
        }
    }

    fn params(&mut self) -> Result<Vec<(String, Param)>, SigningError> {
        let mut out = Vec::new();
        while self.eat(b';') {
            self.skip_ws();
            let name = self.key()?;
            let value = if self.eat(b'=') { self.param_value()? } else { Param::Token("?1".into()) };
            out.push((name, value));
        }
        Ok(out)
    }

    /// Dictionary members, each read by `member` after its `key=`.
    fn dictionary<T>(
        &mut self,
        mut member: impl FnMut(&mut Self) -> Result<T, SigningError>,
    ) -> Result<Vec<(String, T)>, SigningError> {
        let mut out = Vec::new();
        self.skip_ws();
        while self.at < self.s.len() {
            let key = self.key()?;
            if !self.eat(b'=') {
                return self.fail("a member has no value");
            }
            out.push((key, member(self)?));
            self.skip_ws();
            if self.at == self.s.len() {
                break;
            }
            if !self.eat(b',') {
                return self.fail("members must be separated by commas");
            }
            self.skip_ws();
            if out.len() > 16 {
                return self.fail("too many members");
            }
        }
        Ok(out)
    }
}

/// Every signature of a `Signature-Input` header, in order.
pub fn parse_signature_input(value: &str) -> Result<Vec<SignatureInput>, SigningError> {
    let mut r = Reader::new(value, "Signature-Input");
    let members = r.dictionary(|r| {
        if !r.eat(b'(') {
            return r.fail("a signature's components must be an inner list");
        }
        let mut components = Vec::new();
        loop {
            r.skip_ws();
            if r.eat(b')') {
                break;
            }
            components.push(r.string()?);
            // Component parameters (`;sf`, `;key`) are not supported: refused as malformed.
            if r.peek() == Some(b';') {
                return r.fail("component parameters are not supported");
            }
            if components.len() > 32 {
                return r.fail("too many components");
            }
        }
        let params = r.params()?;
        Ok((components, params))
    })?;
    Ok(members
        .into_iter()
        .map(|(label, (components, params))| SignatureInput { label, components, params })
        .collect())
}

/// The signature labelled `label` in a `Signature` header.
pub fn signature_for(value: &str, label: &str) -> Result<Vec<u8>, SigningError> {
    let mut r = Reader::new(value, "Signature");
    let members = r.dictionary(|r| {
        let b = r.bytes()?;
        r.params()?;
        Ok(b)
    })?;
    members
        .into_iter()
        .find(|(l, _)| l == label)
        .map(|(_, b)| b)
        .ok_or_else(|| SigningError::NoSignature(label.to_owned()))
}

/// The signature base (RFC 9421 §2.5): one line per covered component, then
/// `@signature-params`. `value` gives a component's value, `None` when the request lacks it.
pub fn signature_base(
    input: &SignatureInput,
    mut value: impl FnMut(&str) -> Option<String>,
) -> Result<String, String> {
    let mut base = String::new();
    for c in &input.components {
        let v = value(c)
            .ok_or_else(|| format!("the signature covers `{c}`, which the request does not carry"))?;
        base.push('"');
        base.push_str(c);
        base.push_str("\": ");
        base.push_str(&v);
        base.push('\n');
    }
    base.push_str("\"@signature-params\": ");
    base.push_str(&input.serialize());
    Ok(base)
}

/// `scheme://authority/path?query`, as `@target-uri` covers it.
pub fn target_uri(https: bool, authority: &str, path: &str, query: Option<&str>) -> String {
    let scheme = if https { "https" } else { "http" };
    match query {
        Some(q) => format!("{scheme}://{}{path}?{q}", authority.to_ascii_lowercase()),
        None => format!("{scheme}://{}{path}", authority.to_ascii_lowercase()),
    }
}

/// A `Content-Digest` header value for `body` (SHA-256).
pub fn content_digest(body: &[u8]) -> String {
    format!("sha-256=:{}:", STANDARD.encode(Sha256::digest(body)))
}

/// Whether a body matches its `Content-Digest`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DigestCheck {
    Matches,
    /// The header names a supported algorithm whose digest differs.
    Differs(&'static str),
    /// No `sha-256` or `sha-512` member.
    Unsupported,
    Malformed(SigningError),
}

/// Checks `body` against a `Content-Digest` value: every `sha-256` and `sha-512` member must
/// match, and there must be one.
pub fn check_content_digest(header: &str, body: &[u8]) -> DigestCheck {
    let mut r = Reader::new(header, "Content-Digest");
    let members = match r.dictionary(|r| {
        let b = r.bytes()?;
        r.params()?;
        Ok(b)
    }) {
        Ok(m) => m,
        Err(e) => return DigestCheck::Malformed(e),
    };
    let mut checked = false;
    for (alg, digest) in members {
        let (name, ok) = match alg.as_str() {
            "sha-256" => ("sha-256", Sha256::digest(body).as_slice() == digest.as_slice()),
            "sha-512" => ("sha-512", Sha512::digest(body).as_slice() == digest.as_slice()),
            _ => continue,
        };
        if !ok {
            return DigestCheck::Differs(name);
        }
        checked = true;
    }
    if checked { DigestCheck::Matches } else { DigestCheck::Unsupported }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_input_round_trips_and_reads_its_parameters() {
        let header = r#"sig1=("@method" "@target-uri" "content-digest");created=1618884473;keyid="key_abc";alg="ed25519""#;
        let parsed = parse_signature_input(header).expect("parses");
        assert_eq!(parsed.len(), 1);
        let s = &parsed[0];
        assert_eq!(s.label, "sig1");
        assert_eq!(s.components, ["@method", "@target-uri", "content-digest"]);
        assert_eq!(s.created(), Some(1618884473));
        assert_eq!(s.text("keyid"), Some("key_abc"));
        assert_eq!(format!("sig1={}", s.serialize()), header);
    }

    #[test]
    fn the_signature_base_is_the_rfc_layout() {
        let input =
            parse_signature_input(r#"sig1=("@method" "@target-uri");created=1;keyid="k""#).expect("parses");
        let base = signature_base(&input[0], |c| match c {
            "@method" => Some("POST".into()),
            "@target-uri" => Some("https://api.example.com/v1/customers".into()),
            _ => None,
        })
        .expect("base");
        assert_eq!(
            base,
            "\"@method\": POST\n\"@target-uri\": https://api.example.com/v1/customers\n\"@signature-params\": (\"@method\" \"@target-uri\");created=1;keyid=\"k\""
        );
        let missing = parse_signature_input(r#"sig1=("x-missing");created=1"#).expect("parses");
        assert!(signature_base(&missing[0], |_| None).is_err());
    }

    #[test]
    fn malformed_headers_are_errors_not_panics() {
        for bad in [
            "",
            "sig1",
            "sig1=",
            "sig1=(\"@method\"",
            "Sig=(\"a\")",
            "sig1=(\"a\";sf)",
            "sig1=(\"a\");created=99999999999999999999",
        ] {
            let r = parse_signature_input(bad);
            assert!(r.is_err() || r.as_ref().is_ok_and(|v| v.is_empty()), "{bad:?}: {r:?}");
        }
        assert!(signature_for("sig1=:not base64!:", "sig1").is_err());
        assert_eq!(signature_for("sig1=:AAEC:", "sig2"), Err(SigningError::NoSignature("sig2".into())));
    }

    #[test]
    fn content_digests_match_only_their_body() {
        let d = content_digest(b"{\"hello\": \"world\"}");
        assert_eq!(d, "sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:");
        assert_eq!(check_content_digest(&d, b"{\"hello\": \"world\"}"), DigestCheck::Matches);
        assert_eq!(check_content_digest(&d, b"{\"hello\": \"there\"}"), DigestCheck::Differs("sha-256"));
        assert_eq!(check_content_digest("md5=:AAAA:", b""), DigestCheck::Unsupported);
        assert!(matches!(check_content_digest("sha-256=abc", b""), DigestCheck::Malformed(_)));
    }
}
