//! Hot reload: `notify` watches `plugins.dir`; a changed, new or deleted `<name>.wasm` reloads
//! the stages configured to use `<name>`, off the request path.

use std::sync::Arc;
use std::time::Duration;

use notify::{RecursiveMode, Watcher};

use angage_core::policy::Stage;

use super::runtime::PluginRuntime;

/// How long to let a burst of file events settle before loading.
const SETTLE: Duration = Duration::from_millis(30);

/// Starts watching; the returned watcher must be kept alive.
pub(crate) fn spawn(rt: Arc<PluginRuntime>) -> notify::Result<notify::RecommendedWatcher> {
    let dir = rt.dir().to_path_buf();
    std::fs::create_dir_all(&dir).map_err(notify::Error::io)?;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Vec<std::path::PathBuf>>();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if let Ok(event) = event {
            let _ = tx.send(event.paths);
        }
    })?;
    watcher.watch(&dir, RecursiveMode::NonRecursive)?;
    tokio::spawn(async move {
        while let Some(mut paths) = rx.recv().await {
            tokio::time::sleep(SETTLE).await;
            while let Ok(more) = rx.try_recv() {
                paths.extend(more);
            }
            for stage in Stage::ALL {
                let wanted = format!("{}.wasm", rt.name_of(stage));
                if paths.iter().any(|p| p.file_name().is_some_and(|f| f == wanted.as_str())) {
                    rt.reload(stage).await;
                }
            }
        }
    });
    Ok(watcher)
}
