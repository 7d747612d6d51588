//! `angage plugins ...`: plugins for the whole cluster, stored in the database. Every node
//! compiles and swaps in what is installed within a few seconds; `list` shows what each node
//! serves, so a node that did not follow is visible.

use std::sync::Arc;

use anyhow::Context;
use clap::Subcommand;

use super::store::{now, open};
use angage_core::clock::SystemClock;
use angage_core::config::Loaded;
use angage_policy::PolicyEngine;
use angage_store::keys::Pepper;
use angage_store::plugins::{self, PluginStoreError};

#[derive(Debug, Subcommand)]
pub enum PluginsCommand {
    /// Check FILE as plugin NAME (it must load for every stage that uses NAME), store it, and
    /// make it serve on every node.
    Install {
        /// A WebAssembly component (or core module) built against the SDK.
        file: std::path::PathBuf,
        /// The plugin name stages use (`plugins.stages.*`), e.g. `rate-limit`.
        #[arg(long)]
        name: String,
        #[arg(long)]
        json: bool,
    },
    /// What is stored, and what each node serves.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Make the version before the serving one serve again, everywhere.
    Rollback {
        #[arg(long)]
        name: String,
        #[arg(long)]
        json: bool,
    },
}

pub(super) async fn run(loaded: Loaded, cmd: PluginsCommand) -> anyhow::Result<()> {
    let db = open(&loaded).await?;
    let s = &loaded.settings;
    match cmd {
        PluginsCommand::Install { file, name, json } => {
            let bytes =
                std::fs::read(&file).with_context(|| format!("FILE: cannot read {}", file.display()))?;
            let pepper = Pepper::resolve(&s.keys.pepper, &s.profile, &s.data.dir)?;
            let name = name.trim().to_owned();
            let (checked_db, settings, checked_name) = (db.clone(), s.clone(), name.clone());
            let version = tokio::task::spawn_blocking(move || {
                PolicyEngine::check_plugin(
                    &settings,
                    checked_db,
                    pepper,
                    Arc::new(SystemClock),
                    (&checked_name, &bytes),
                )
                .map(|v| (v, bytes))
            })
            .await
            .context("checking the plugin")?;
            let (plugin_version, bytes) = version.map_err(|e| anyhow::anyhow!("FILE: {e}"))?;
            let stored = plugins::install(&db, &name, &bytes, &plugin_version, "cli", now()).await?;
            if json {
                println!("{}", serde_json::to_string(&stored)?);
            } else {
                println!(
                    "installed {} v{} (its own version {}, sha256 {}); every node swaps it in within a few seconds",
                    stored.name,
                    stored.version,
                    stored.plugin_version,
                    &stored.sha256[..12]
                );
            }
        }
        PluginsCommand::List { json } => {
            let listing = plugins::listing(&db).await?;
            let (stored, nodes) = (&listing.stored, &listing.nodes);
            if json {
                println!("{}", serde_json::to_string_pretty(&listing)?);
            } else {
                println!("stored for the cluster:");
                for p in stored {
                    println!(
                        "  {:<20} v{:<4} {:<10} {}",
                        p.name,
                        p.version,
                        p.plugin_version,
                        &p.sha256[..12]
                    );
                }
                println!("served by each node:");
                for n in nodes {
                    let mark = match stored.iter().find(|p| p.name == n.name) {
                        Some(p) if p.sha256 != n.sha256 => "  <- not the stored version",
                        _ => "",
                    };
                    println!(
                        "  {:<28} {:<21} {:<14} {:<20} {:<8} {}{mark}",
                        n.node,
                        n.address,
                        n.stage,
                        n.name,
                        n.source,
                        &n.sha256[..12.min(n.sha256.len())]
                    );
                }
            }
        }
        PluginsCommand::Rollback { name, json } => {
            let serving = plugins::rollback(&db, &name, now()).await.map_err(|e| match e {
                PluginStoreError::Unknown(_)
                | PluginStoreError::NoEarlier(_)
                | PluginStoreError::Changed(_) => {
                    anyhow::anyhow!("--name: {e}")
                }
                other => anyhow::Error::new(other),
            })?;
            if json {
                println!("{}", serde_json::to_string(&serving)?);
            } else {
                println!(
                    "{} v{} serves again; every node swaps it in within a few seconds",
                    serving.name, serving.version
                );
            }
        }
    }
    Ok(())
}
