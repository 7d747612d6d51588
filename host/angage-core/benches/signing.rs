//! What a signed request costs the server (RFC 9421, Ed25519, a 1 KB JSON body): reading the
//! signature headers, building the signature base and verifying (the authenticate stage), and
//! checking the body against its `Content-Digest` (the edge, before the handler).
//!
//! ```sh
//! cargo bench -p angage-core --bench signing
//! ```

use angage_core::signing::{self, Param, SignatureInput};
use base64::Engine as _;
use criterion::{Criterion, black_box, criterion_group, criterion_main};
use ed25519_dalek::Signer as _;

fn bench(c: &mut Criterion) {
    let key = ed25519_dalek::SigningKey::from_bytes(&[42u8; 32]);
    let public = key.verifying_key().to_bytes();
    let body = format!("{{\"name\":\"{}\"}}", "x".repeat(1024 - 11));
    assert_eq!(body.len(), 1024);
    let digest = signing::content_digest(body.as_bytes());
    let input = SignatureInput {
        label: "sig1".into(),
        components: vec!["@method".into(), "@target-uri".into(), "content-digest".into()],
        params: vec![
            ("created".into(), Param::Integer(1_793_613_600)),
            ("keyid".into(), Param::String("key_abc123def456".into())),
            ("alg".into(), Param::String("ed25519".into())),
        ],
    };
    let value = |c: &str| match c {
        "@method" => Some("POST".to_owned()),
        "@target-uri" => Some("https://api.example.com/v1/customers".to_owned()),
        "content-digest" => Some(digest.clone()),
        _ => None,
    };
    let base = signing::signature_base(&input, value).expect("base");
    let signature_header = format!(
        "sig1=:{}:",
        base64::engine::general_purpose::STANDARD.encode(key.sign(base.as_bytes()).to_bytes())
    );
    let input_header = format!("sig1={}", input.serialize());

    c.bench_function("signature: parse, base and verify (Ed25519)", |b| {
        b.iter(|| {
            let parsed = signing::parse_signature_input(black_box(&input_header)).expect("input");
            let sig =
                signing::signature_for(black_box(&signature_header), &parsed[0].label).expect("signature");
            let base = signing::signature_base(&parsed[0], value).expect("base");
            assert!(signing::verify(&public, base.as_bytes(), &sig));
        })
    });
    c.bench_function("content-digest: check a 1 KB body (SHA-256)", |b| {
        b.iter(|| signing::check_content_digest(black_box(&digest), black_box(body.as_bytes())))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
