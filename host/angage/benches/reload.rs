//! Hot reload latency: from writing a plugin file to the new version answering requests.
//! Alternates the example authorizer (test keys read-only) and the built-in, renamed into
//! place, and times until a write by a test key flips between 403 and 201.
//!
//! ```sh
//! cargo bench --bench reload
//! ```

use std::time::{Duration, Instant};

use angage::app::{App, Deps};
use angage_core::config::Settings;
use angage_core::tenant::TenantId;
use angage_policy::plugins::builtin;
use angage_store::keys::store::Actor;
use angage_store::keys::{NewKey, store};
use angage_test_plugins as fixtures;
use serde_json::json;

fn main() -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(run())
}

async fn run() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let mut settings = Settings::default();
    settings.server.addr = "127.0.0.1:0".parse()?;
    settings.database.url = format!("sqlite://{}", dir.path().join("reload.db").display());
    settings.data.dir = dir.path().join("data");
    settings.plugins.dir = dir.path().join("plugins.d");
    settings.log.level = "error".into();
    let plugin_dir = settings.plugins.dir.clone();
    let app = App::build(settings, Deps::default()).await?;
    let state = app.state().clone();
    let base = format!("http://{}", app.local_addr());
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.serve(async move {
        let _ = stop_rx.await;
    }));
    let tenant = angage_store::tenants::by_slug(&state.db, "demo").await?;
    let big = 1_000_000_000;
    let new = NewKey::parse(&json!({"name": "reload", "environment": "test",
        "rate_limits": {"per_second": big, "per_minute": big, "per_hour": big, "per_day": big, "burst": big}}))
    .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let key =
        store::create(&state.db, state.keys.pepper(), &TenantId(tenant.id), &Actor("bench".into()), new, 0)
            .await?
            .key;
    let client = reqwest::Client::new();
    let example = std::fs::read(fixtures::DENY_TEST_WRITES)?;
    let original = builtin("module-scopes").unwrap_or_default().to_vec();

    let mut times = Vec::new();
    for round in 0..10 {
        let (bytes, expect) = if round % 2 == 0 { (&example, 403) } else { (&original, 201) };
        let tmp = plugin_dir.join(".module-scopes.wasm.tmp");
        std::fs::write(&tmp, bytes)?;
        let start = Instant::now();
        std::fs::rename(&tmp, plugin_dir.join("module-scopes.wasm"))?;
        loop {
            let status = client
                .post(format!("{base}/v1/customers"))
                .bearer_auth(&key)
                .json(&json!({"name": "Reload", "email": "r@example.com"}))
                .send()
                .await?
                .status()
                .as_u16();
            if status == expect {
                break;
            }
            anyhow::ensure!(start.elapsed() < Duration::from_secs(10), "round {round}: no swap within 10 s");
        }
        times.push(start.elapsed());
    }
    times.sort();
    println!(
        "reload: file rename -> new version answering, 10 swaps: min {:?}, median {:?}, max {:?}",
        times[0],
        times[times.len() / 2],
        times[times.len() - 1]
    );
    let _ = stop_tx.send(());
    server.await??;
    Ok(())
}
