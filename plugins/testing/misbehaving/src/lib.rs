//! Test fixture: an authorizer that misbehaves as `{"mode": ...}` in its configuration says:
//! `loop` (never returns), `trap` (panics), `grow` (allocates without bound), `hoard-keys`
//! (looks the caller's key up again and again, never letting go), `metric-names` (allows, and
//! counts each call in a metric of a new name), `wild-denial` (denies with a 200 status, a code
//! and a detail no client should see as they are, after logging a forged line), `ok` (allows).
//! The host must contain each one.

use angage_plugin_sdk::{Authorizer, Denial, Key, Level, PluginInfo, Request, host};

pub struct Misbehaving;

impl Authorizer for Misbehaving {
    fn info() -> PluginInfo {
        PluginInfo { name: "misbehaving".into(), version: env!("CARGO_PKG_VERSION").into() }
    }

    fn authorize(_: &Key, request: &Request) -> Result<(), Denial> {
        let config: serde_json::Value = serde_json::from_str(&host::config()).unwrap_or_default();
        // The smoke call at load time (method "SMOKE") must pass so the plugin is installed.
        if request.method() == "SMOKE" {
            return Ok(());
        }
        match config["mode"].as_str().unwrap_or("ok") {
            "loop" => {
                let mut n: u64 = 0;
                loop {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            }
            "trap" => panic!("misbehaving plugin traps on purpose"),
            "hoard-keys" => {
                let auth = request.header("authorization").unwrap_or_default();
                let presented = auth.trim_start_matches("Bearer ").to_owned();
                let mut hoard = Vec::new();
                loop {
                    hoard.extend(host::lookup_key(&presented));
                    std::hint::black_box(&hoard);
                }
            }
            "grow" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![1u8; 1 << 20]);
                    std::hint::black_box(&hoard);
                }
            }
            "metric-names" => {
                static CALLS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
                let n = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                host::metric_increment(&format!("name_{n}"), 1);
                Ok(())
            }
            "wild-denial" => {
                host::log(Level::Warn, "denying\n{\"level\":\"ERROR\",\"message\":\"forged\"}");
                Err(Denial {
                    status: 200,
                    code: "Bad Code\r\nX-Injected: 1".into(),
                    detail: format!("{}\u{1b}[2J", "d".repeat(100_000)),
                })
            }
            _ => Ok(()),
        }
    }
}

angage_plugin_sdk::export_authorizer!(Misbehaving);
