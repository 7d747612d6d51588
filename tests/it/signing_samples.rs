//! The request-signing code `docs/signing.md` tells API consumers to copy
//! (`docs/signing/sign.{py,js,php,sh}`), run against a real server that requires signatures:
//! each signs a POST and a GET that are served, says 401 and exits 0 when signed with another
//! key, and the same requests sent unsigned are refused.

use std::process::{Command, Output};

use angage_core::clock::{Clock, SystemClock};
use angage_core::signing;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{
    DecodePrivateKey as _, EncodePrivateKey as _, EncodePublicKey as _, KeypairBytes,
};
use ed25519_dalek::{Signer as _, SigningKey};
use serde_json::{Value, json};

use crate::helpers::{Backend, Reply, TestApp, angage_bin, skip, spawn_app};

/// One sample: the language of its block in the guide, the program that runs it, the file, and
/// the commands that show what it needs is installed.
struct Sample {
    fence: &'static str,
    program: &'static str,
    file: &'static str,
    needs: &'static [(&'static str, &'static [&'static str])],
}

const SAMPLES: [Sample; 4] = [
    Sample {
        fence: "python",
        program: "python3",
        file: concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/signing/sign.py"),
        needs: &[("python3", &["-c", "import cryptography"])],
    },
    Sample {
        fence: "js",
        program: "node",
        file: concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/signing/sign.js"),
        needs: &[("node", &["-e", "if (typeof fetch !== 'function') process.exit(1)"])],
    },
    Sample {
        fence: "php",
        program: "php",
        file: concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/signing/sign.php"),
        needs: &[("php", &["-r", "exit(function_exists('sodium_crypto_sign_detached') ? 0 : 1);"])],
    },
    Sample {
        fence: "bash",
        program: "bash",
        file: concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/signing/sign.sh"),
        needs: &[("bash", &["--version"]), ("curl", &["--version"])],
    },
];

const GUIDE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/signing.md");

/// What of `sample`'s needs is missing, if anything.
fn missing(sample: &Sample) -> Option<String> {
    sample.needs.iter().find_map(|(program, args)| match Command::new(program).args(*args).output() {
        Ok(out) if out.status.success() => None,
        Ok(_) => Some(format!("`{program} {}` fails", args.join(" "))),
        Err(_) => Some(format!("{program} is not installed")),
    })
}

/// An Ed25519 private key as `openssl genpkey -algorithm ed25519` writes it: PKCS#8 v1, the
/// seed alone (OpenSSL 3.0 reads no other form of it).
fn private_key_pem(seed: [u8; 32]) -> String {
    let key = KeypairBytes { secret_key: seed, public_key: None };
    key.to_pkcs8_pem(LineEnding::LF).expect("PKCS#8 PEM").as_str().to_owned()
}

/// The variables that would send the samples' requests to a proxy.
const PROXIES: [&str; 3] = ["http_proxy", "https_proxy", "all_proxy"];

/// Runs `sample` with these variables (and none of the test's `ANGAGE_*` or proxy settings:
/// the server is on 127.0.0.1), off the runtime's threads so the server goes on answering.
async fn run(sample: &Sample, vars: &[(&str, String)]) -> Output {
    let mut cmd = Command::new(sample.program);
    cmd.arg(sample.file);
    for (name, _) in std::env::vars_os() {
        let lower = name.to_string_lossy().to_ascii_lowercase();
        if lower.starts_with("angage_") || PROXIES.contains(&lower.as_str()) {
            cmd.env_remove(name);
        }
    }
    for (name, value) in vars {
        cmd.env(name, value);
    }
    let program = sample.program;
    tokio::task::spawn_blocking(move || cmd.output())
        .await
        .expect("the sample's thread")
        .unwrap_or_else(|e| panic!("run {program}: {e}"))
}

/// A sample's answer: exit 0, the status on the first line of stdout, the body on the next.
fn answer(who: &str, output: &Output) -> (u16, Value) {
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{who}: {}, stdout {stdout:?}, stderr {stderr:?}", output.status);
    let Some((status, body)) = stdout.split_once('\n') else { panic!("{who}: no status line in {stdout:?}") };
    let status: u16 = status.trim().parse().unwrap_or_else(|_| panic!("{who}: {status:?} is not a status"));
    let body: Value =
        serde_json::from_str(body.trim()).unwrap_or_else(|e| panic!("{who}: not JSON ({e}): {body:?}"));
    (status, body)
}

/// The samples sign with the wall clock and the server reads the test's clock: set to the wall
/// clock before each run, the server finds every `created` fresh.
fn keep_time(app: &TestApp) {
    app.clock.set_ms(SystemClock.now_ms());
}

fn refused_unsigned(who: &str, reply: &Reply) {
    assert_eq!((reply.status, reply.code()), (401, "signature_required"), "{who}: {}", reply.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_samples_send_signed_requests_in_python_node_php_and_curl() {
    let app = spawn_app(Backend::Sqlite).await;
    keep_time(&app);
    let admin = app.demo_admin().await;
    let required = json!({"security": {"validate_request_signatures": true}});
    let on = admin.put("/admin/v1/settings", required).await;
    assert_eq!(on.status, 200, "{}", on.text);

    let seed = rand::random::<[u8; 32]>();
    let signer = SigningKey::from_bytes(&seed);
    let public_pem = signer.verifying_key().to_public_key_pem(LineEnding::LF).expect("public key PEM");
    let limits = json!({"per_second": 1000, "burst": 1000, "per_minute": 1000});
    let key = json!({"name": "Signed samples", "signing_public_key": public_pem, "rate_limits": limits});
    let created = admin.post("/admin/v1/keys", key).await;
    assert_eq!(created.status, 201, "{}", created.text);
    assert_eq!(created.body["signing_public_key"], STANDARD.encode(signer.verifying_key().to_bytes()));
    let secret = created.body["key"].as_str().expect("the secret, shown once").to_owned();
    let key_id = created.body["id"].as_str().expect("the key's id").to_owned();

    let dir = tempfile::tempdir().expect("tempdir");
    let private_key = dir.path().join("private.pem");
    std::fs::write(&private_key, private_key_pem(seed)).expect("write the private key");
    let other_key = dir.path().join("other.pem");
    std::fs::write(&other_key, private_key_pem(rand::random())).expect("write the other key");
    let angage = angage_bin().get_program().to_string_lossy().into_owned();
    let unsigned = app.with_key(&secret);

    for sample in &SAMPLES {
        let who = sample.file.rsplit('/').next().unwrap_or(sample.file);
        if let Some(why) = missing(sample) {
            skip(&format!("{why}: skipping {who}"));
            continue;
        }
        let vars = |url: String, key: &std::path::Path| {
            vec![
                ("ANGAGE_URL", url),
                ("ANGAGE_API_KEY", secret.clone()),
                ("ANGAGE_KEY_ID", key_id.clone()),
                ("ANGAGE_PRIVATE_KEY", key.display().to_string()),
                ("ANGAGE_BIN", angage.clone()),
            ]
        };

        // A POST with a body (not ASCII only: the digest is over its UTF-8 bytes).
        let name = format!("Zoë signs with {}", sample.program);
        let email = format!("{}@signed.example.com", sample.program);
        let body = json!({"name": &name, "email": &email}).to_string();
        let mut post = vars(app.url("/v1/customers"), &private_key);
        post.push(("ANGAGE_BODY", body.clone()));
        keep_time(&app);
        let (status, customer) = answer(who, &run(sample, &post).await);
        assert_eq!(status, 201, "{who}: POST /v1/customers: {customer}");
        assert_eq!(customer["name"], name.as_str(), "{who}: {customer}");
        let id = &customer["id"];
        assert!(id.as_str().is_some_and(|id| id.starts_with("cust_")), "{who}: {customer}");

        // A GET with a query that finds it (its own URL: a signature is accepted once).
        let path = format!("/v1/customers?email={email}&limit=5");
        keep_time(&app);
        let (status, list) = answer(who, &run(sample, &vars(app.url(&path), &private_key)).await);
        assert_eq!(status, 200, "{who}: GET {path}: {list}");
        let found: Vec<&Value> = list["data"].as_array().expect("a list").iter().map(|c| &c["id"]).collect();
        assert_eq!(found, [id], "{who}: GET {path}: {list}");

        // Signed with a key the server does not know: the server's refusal, and still exit 0.
        keep_time(&app);
        let (status, problem) = answer(who, &run(sample, &vars(app.url(&path), &other_key)).await);
        assert_eq!((status, &problem["code"]), (401, &json!("invalid_signature")), "{who}: {problem}");

        // The same requests without the signature are refused.
        let body: Value = serde_json::from_str(&body).expect("the body is JSON");
        refused_unsigned(who, &unsigned.post("/v1/customers", body).await);
        refused_unsigned(who, &unsigned.get(&path).await);
    }
    app.stop().await;
}

/// Every fenced block of `docs/signing.md`: its language and its text, each line ending with a
/// newline.
fn guide_blocks() -> Vec<(String, String)> {
    let guide = std::fs::read_to_string(GUIDE).expect("docs/signing.md");
    let mut blocks = Vec::new();
    let mut open: Option<(String, String)> = None;
    for line in guide.split_inclusive('\n') {
        let trimmed = line.trim_end_matches('\n');
        match open.take() {
            None => open = trimmed.strip_prefix("```").map(|fence| (fence.trim().to_owned(), String::new())),
            Some((fence, text)) if trimmed == "```" => blocks.push((fence, text)),
            Some((fence, mut text)) => {
                text.push_str(line);
                open = Some((fence, text));
            }
        }
    }
    assert!(open.is_none(), "docs/signing.md has a code block that does not end");
    blocks
}

/// `docs/signing.md` shows each sample in full, byte for byte.
#[test]
fn the_signing_guide_shows_each_sample_in_full() {
    let blocks = guide_blocks();
    for sample in &SAMPLES {
        let source = std::fs::read_to_string(sample.file).expect(sample.file);
        assert!(
            blocks.iter().any(|(fence, text)| fence == sample.fence && *text == source),
            "docs/signing.md shows no ```{} block equal to {}",
            sample.fence,
            sample.file
        );
    }
}

/// The guide's worked example is what the server's own code builds and verifies: the key pair,
/// the digest of the body, the signature base and the signature.
#[test]
fn the_signing_guides_worked_example_is_what_the_server_checks() {
    let blocks = guide_blocks();
    let block = |fence: &str, starts: &str| {
        blocks
            .iter()
            .find(|(f, text)| f == fence && text.starts_with(starts))
            .map(|(_, text)| text.as_str())
            .unwrap_or_else(|| panic!("docs/signing.md has no ```{fence} block starting with {starts:?}"))
    };
    let key =
        SigningKey::from_pkcs8_pem(block("pem", "-----BEGIN PRIVATE KEY-----")).expect("the private key");
    let public =
        signing::parse_public_key(block("pem", "-----BEGIN PUBLIC KEY-----")).expect("the public key");
    assert_eq!(public, key.verifying_key().to_bytes(), "the example's public key is its private key's");

    let request = block("http", "POST /v1/customers ");
    let (head, body) = request.split_once("\n\n").expect("the example request has a body");
    let body = body.trim_end_matches('\n');
    let host = head.lines().find_map(|l| l.strip_prefix("Host: ")).expect("a Host header");
    let headers = block("http", "Content-Digest: ");
    let header = |name: &str| {
        headers
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(": "))
            .unwrap_or_else(|| panic!("the example has no {name}"))
    };
    assert_eq!(header("Content-Digest"), signing::content_digest(body.as_bytes()));
    let input = signing::parse_signature_input(header("Signature-Input")).expect("Signature-Input").remove(0);
    let base = signing::signature_base(&input, |c| match c {
        "@method" => Some("POST".to_owned()),
        "@target-uri" => Some(signing::target_uri(true, host, "/v1/customers", None)),
        "content-digest" => Some(header("Content-Digest").to_owned()),
        _ => None,
    })
    .expect("the signature base");
    assert_eq!(block("", "\"@method\": POST").trim_end_matches('\n'), base, "the guide's signature base");
    let signature = signing::signature_for(header("Signature"), &input.label).expect("Signature");
    assert_eq!(signature, key.sign(base.as_bytes()).to_bytes(), "the guide's signature");
    assert!(signing::verify(&public, base.as_bytes(), &signature), "the signature verifies");
}
