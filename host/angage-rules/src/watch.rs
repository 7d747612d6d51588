//! Live editing on disk: `notify` watches `policies.dir` (and `tenants/`); a changed `.rhai`
//! file is compiled and dry-run, and becomes a new version only if both pass.

use std::sync::Arc;
use std::time::Duration;

use notify::{RecursiveMode, Watcher};

use super::RuleSet;
use angage_core::clock::Clock;

/// Starts watching; the returned watcher must be kept alive.
pub fn spawn(rules: Arc<RuleSet>, clock: Arc<dyn Clock>) -> notify::Result<notify::RecommendedWatcher> {
    let dir = rules.dir().to_path_buf();
    std::fs::create_dir_all(dir.join("tenants")).map_err(notify::Error::io)?;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        let relevant =
            event.is_ok_and(|e| e.paths.iter().any(|p| p.extension().is_some_and(|x| x == "rhai")));
        if relevant {
            let _ = tx.send(());
        }
    })?;
    watcher.watch(&dir, RecursiveMode::Recursive)?;
    tokio::spawn(async move {
        while rx.recv().await.is_some() {
            tokio::time::sleep(Duration::from_millis(30)).await;
            while rx.try_recv().is_ok() {}
            rules.sync_files(clock.now_ms()).await;
        }
    });
    Ok(watcher)
}
