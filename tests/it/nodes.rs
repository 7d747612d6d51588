//! More than one process on one store: every change a node caches is seen by every other node
//! (and by a server beside the CLI) within a second.

use std::time::Duration;

use crate::helpers::{angage_bin, start_binary};

/// A GET of `/v1/customers` with `key` on the real binary: its status line's code.
fn status(server: &crate::helpers::BinaryServer, key: &str) -> u16 {
    let response = server.get("/v1/customers", &[("Authorization", &format!("Bearer {key}"))]);
    response.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0)
}

#[test]
fn a_key_revoked_by_the_cli_is_refused_by_the_running_server_within_a_second() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = start_binary(dir.path());
    let key = server
        .wait_for_stdout(|out| out.split_whitespace().find(|w| w.starts_with("ak_test_")).map(str::to_owned));
    assert_eq!(status(&server, &key), 200, "served, and now cached");
    let listed = angage_bin()
        .current_dir(dir.path())
        .args(["keys", "list", "--tenant", "demo", "--json"])
        .output()
        .expect("keys list");
    let keys: serde_json::Value = serde_json::from_slice(&listed.stdout).expect("json");
    let id = keys["data"][0]["id"]
        .as_str()
        .or_else(|| keys[0]["id"].as_str())
        .expect("the demo key's id")
        .to_owned();
    let revoked = angage_bin()
        .current_dir(dir.path())
        .args(["keys", "revoke", "--tenant", "demo", &id])
        .output()
        .expect("keys revoke");
    assert!(revoked.status.success(), "{}", String::from_utf8_lossy(&revoked.stderr));
    crate::wait::until_blocking(Duration::from_secs(1), "the revoked key refused", || {
        (status(&server, &key) == 401).then_some(())
    });
    let (code, _) = server.sigterm_and_wait();
    assert_eq!(code, 0);
}
