//! The receiver-side verification code `docs/webhooks.md` tells integrators to copy
//! (`docs/webhooks/verify.{py,js,php,rs}`), run against a real delivery: each accepts it as
//! received and refuses it with a byte of the body changed, another secret, or a stale timestamp.

use std::process::{Command, Output};

use base64::Engine as _;
use serde_json::json;

use crate::helpers::{Backend, skip, spawn_app};
use crate::receiver::Receiver;

use crate::verify;

/// (case, secret, body, now, the reason it is refused)
type Case<'a> = (&'a str, &'a str, &'a [u8], i64, Option<&'a str>);

/// Each script with the interpreter that runs it.
const SCRIPTS: [(&str, &str); 3] = [
    ("python3", concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/webhooks/verify.py")),
    ("node", concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/webhooks/verify.js")),
    ("php", concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/webhooks/verify.php")),
];

const BAD_SIGNATURE: &str = "no valid v1 signature";
const STALE: &str = "more than 5 minutes from now";

/// `body` with one digit changed: still UTF-8 and still JSON, no longer what was signed.
fn tamper(body: &[u8]) -> Vec<u8> {
    let mut changed = body.to_vec();
    let at = changed.iter().position(u8::is_ascii_digit).expect("a digit in the body");
    changed[at] = if changed[at] == b'0' { b'1' } else { b'0' };
    changed
}

/// Runs `interpreter script fixture.json`; `None` when the interpreter is not installed.
fn run_script(interpreter: &str, script: &str, fixture: &serde_json::Value) -> Option<Output> {
    let file = tempfile::NamedTempFile::new().expect("fixture file");
    std::fs::write(file.path(), fixture.to_string()).expect("write the fixture");
    match Command::new(interpreter).arg(script).arg(file.path()).output() {
        Ok(output) => Some(output),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => panic!("run {interpreter} {script}: {e}"),
    }
}

/// A script's answer as the Rust function gives it: `Ok` for exit 0 and `verified`, the reason
/// on stderr for exit 1 with nothing on stdout.
fn outcome(interpreter: &str, output: &Output) -> Result<(), String> {
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    match (output.status.code(), stdout.trim()) {
        (Some(0), "verified") => Ok(()),
        (Some(1), "") => Err(stderr.trim().to_owned()),
        _ => panic!("{interpreter}: {}, stdout {stdout:?}, stderr {stderr:?}", output.status),
    }
}

fn assert_outcome(who: &str, case: &str, got: &Result<(), String>, refused_with: Option<&str>) {
    match (refused_with, got) {
        (None, Ok(())) => {}
        (Some(reason), Err(e)) if e.contains(reason) => {}
        (None, _) => panic!("{who}, {case}: expected verified, got {got:?}"),
        (Some(reason), _) => panic!("{who}, {case}: expected a refusal with {reason:?}, got {got:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receivers_verify_a_real_delivery_in_python_node_php_and_rust() {
    let receiver = Receiver::start().await;
    let app = spawn_app(Backend::Sqlite).await;
    let admin = app.demo_admin().await;
    let created =
        admin.post("/admin/v1/webhooks", json!({"url": receiver.url(), "description": "verify"})).await;
    assert_eq!(created.status, 201, "{:?}", created.body);
    let id = created.body["id"].as_str().expect("endpoint id");
    let secret = created.body["secret"].as_str().expect("the secret, shown once");
    assert!(secret.starts_with("whsec_"), "{secret}");
    let sent = admin.post(&format!("/admin/v1/webhooks/{id}/test"), json!({})).await;
    assert_eq!(sent.status, 202, "{:?}", sent.body);
    let delivery = receiver.wait_for(1).await.remove(0);

    let event = &delivery.json;
    assert!(event["id"].as_str().is_some_and(|id| id.starts_with("evt_")), "{event}");
    assert_eq!(delivery.header("webhook-id"), event["id"], "the header names the event");
    assert_eq!(event["type"], "webhook.test", "{event}");
    assert_eq!(event["tenant"], "demo", "{event}");
    assert!(!event["data"]["object"].is_null(), "{event}");

    let now: i64 = delivery.header("webhook-timestamp").parse().expect("webhook-timestamp is unix seconds");
    let other_secret = format!("whsec_{}", base64::engine::general_purpose::STANDARD.encode([7u8; 24]));
    let tampered = tamper(&delivery.body);
    let cases: [Case<'_>; 5] = [
        ("the delivery as received", secret, &delivery.body, now, None),
        ("one byte of the body changed", secret, &tampered, now, Some(BAD_SIGNATURE)),
        ("another secret", &other_secret, &delivery.body, now, Some(BAD_SIGNATURE)),
        ("checked 10 minutes later", secret, &delivery.body, now + 600, Some(STALE)),
        ("checked 10 minutes earlier", secret, &delivery.body, now - 600, Some(STALE)),
    ];

    for (case, secret, body, now, refused_with) in cases {
        let got = verify::verify(secret, &delivery.headers, body, now);
        assert_outcome("verify.rs", case, &got, refused_with);
    }

    for (interpreter, script) in SCRIPTS {
        for (case, secret, body, now, refused_with) in cases {
            let body = std::str::from_utf8(body).expect("the body is UTF-8");
            let fixture = json!({"secret": secret, "headers": &delivery.headers, "body": body, "now": now});
            let Some(output) = run_script(interpreter, script, &fixture) else {
                skip(&format!("{interpreter} is not installed: skipping {script}"));
                break;
            };
            assert_outcome(script, case, &outcome(interpreter, &output), refused_with);
        }
    }
    app.stop().await;
}

/// The code `docs/webhooks.md` shows under "Verifying a delivery" is the tested code, verbatim.
#[test]
fn the_guide_shows_the_tested_verify_functions() {
    let guide = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/webhooks.md"))
        .expect("docs/webhooks.md");
    let (_, section) = guide.split_once("\n## Verifying a delivery\n").expect("a section on verifying");
    let files = [("python", SCRIPTS[0].1), ("js", SCRIPTS[1].1), ("php", SCRIPTS[2].1)];
    let rust = ("rust", concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/webhooks/verify.rs"));
    for (fence, file) in files.into_iter().chain([rust]) {
        let source = std::fs::read_to_string(file).expect(file);
        let (_, rest) = section
            .split_once(&format!("\n```{fence}\n"))
            .unwrap_or_else(|| panic!("docs/webhooks.md shows no {fence} block"));
        let (shown, _) = rest.split_once("\n```\n").expect("the block ends");
        assert!(source.contains(shown), "the {fence} block in docs/webhooks.md is not a part of {file}");
    }
}
