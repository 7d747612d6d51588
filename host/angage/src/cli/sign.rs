//! `angage sign`: the RFC 9421 headers for one request, signed with the key owner's Ed25519
//! private key, printed for a curl command (or one header per line). The server never sees
//! the private key: this runs where the owner keeps it.

use std::path::PathBuf;

use anyhow::{Context, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use clap::Args;
use ed25519_dalek::Signer;
use ed25519_dalek::pkcs8::DecodePrivateKey;

use angage_core::clock::{Clock, SystemClock};
use angage_core::signing::{self, Param, SignatureInput};

#[derive(Debug, Args)]
pub struct Sign {
    /// The API key's id (`key_...`), the signature's `keyid`.
    #[arg(long)]
    key_id: String,
    /// The Ed25519 private key, PKCS#8 PEM (`openssl genpkey -algorithm ed25519`).
    #[arg(long, value_name = "FILE")]
    private_key: PathBuf,
    /// The request's method.
    #[arg(long, default_value = "GET")]
    method: String,
    /// The full URL the request goes to, as the server sees it (scheme, host, path, query).
    #[arg(long)]
    url: String,
    /// The body, as sent.
    #[arg(long, conflicts_with = "data_file")]
    data: Option<String>,
    /// A file holding the body, as sent.
    #[arg(long, value_name = "FILE")]
    data_file: Option<PathBuf>,
    /// Print one `Name: value` header per line instead of curl `-H` arguments.
    #[arg(long)]
    headers: bool,
}

pub(super) fn run(cmd: Sign) -> anyhow::Result<()> {
    let pem = std::fs::read_to_string(&cmd.private_key)
        .with_context(|| format!("--private-key: cannot read {}", cmd.private_key.display()))?;
    let key = ed25519_dalek::SigningKey::from_pkcs8_pem(&pem).map_err(|_| {
        anyhow::anyhow!("--private-key: {} is not an Ed25519 PKCS#8 PEM key", cmd.private_key.display())
    })?;
    let url = url::Url::parse(&cmd.url).map_err(|e| anyhow::anyhow!("--url: {e}"))?;
    let Some(host) = url.host_str() else { bail!("--url: needs a host") };
    let authority = match url.port() {
        Some(p) => format!("{host}:{p}"),
        None => host.to_owned(),
    };
    let body = match (&cmd.data, &cmd.data_file) {
        (Some(d), _) => Some(d.clone().into_bytes()),
        (None, Some(f)) => {
            Some(std::fs::read(f).with_context(|| format!("--data-file: cannot read {}", f.display()))?)
        }
        (None, None) => None,
    };
    let method = cmd.method.to_ascii_uppercase();
    let target = signing::target_uri(url.scheme() == "https", &authority, url.path(), url.query());
    let digest = body.as_deref().filter(|b| !b.is_empty()).map(signing::content_digest);
    let mut components = vec!["@method".to_owned(), "@target-uri".to_owned()];
    if digest.is_some() {
        components.push("content-digest".to_owned());
    }
    let input = SignatureInput {
        label: "sig1".into(),
        components,
        params: vec![
            ("created".into(), Param::Integer(SystemClock.now_ms().div_euclid(1000))),
            ("keyid".into(), Param::String(cmd.key_id.clone())),
            ("alg".into(), Param::String("ed25519".into())),
        ],
    };
    let base = signing::signature_base(&input, |c| match c {
        "@method" => Some(method.clone()),
        "@target-uri" => Some(target.clone()),
        "content-digest" => digest.clone(),
        _ => None,
    })
    .map_err(anyhow::Error::msg)?;
    let signature = STANDARD.encode(key.sign(base.as_bytes()).to_bytes());
    let mut headers = Vec::new();
    if let Some(d) = &digest {
        headers.push(format!("Content-Digest: {d}"));
    }
    headers.push(format!("Signature-Input: sig1={}", input.serialize()));
    headers.push(format!("Signature: sig1=:{signature}:"));
    if cmd.headers {
        for h in headers {
            println!("{h}");
        }
    } else {
        let args: Vec<String> = headers.iter().map(|h| format!("-H '{h}'")).collect();
        println!("{}", args.join(" "));
    }
    Ok(())
}
