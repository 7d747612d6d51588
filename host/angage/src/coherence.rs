//! Every node sees every change within a second: news from the change feed applied to this
//! process's caches. A key, a tenant's settings or a rule changed by another node (or by the CLI
//! beside this server) is dropped from memory and read again, and a plugin installed for the
//! cluster is compiled and swapped in; when changes may have been missed, every cache is
//! dropped.

use std::sync::Arc;

use angage_policy::PolicyEngine;
use angage_rules::RuleSet;
use angage_store::changes::{Change, Feed, Kind, News};
use angage_store::keys::cache::KeyCache;
use angage_store::tenants::cache::SettingsCache;

/// What a change can make stale.
pub(crate) struct Caches {
    pub keys: Arc<KeyCache>,
    pub tenant_settings: Arc<SettingsCache>,
    pub rules: Arc<RuleSet>,
    pub plugins: Arc<PolicyEngine>,
}

/// The task that follows the feed; it stops when dropped.
pub(crate) struct Follower(tokio::task::JoinHandle<()>);

impl Drop for Follower {
    fn drop(&mut self) {
        self.0.abort();
    }
}

pub(crate) fn follow(mut feed: Feed, caches: Caches) -> Follower {
    Follower(tokio::spawn(async move {
        loop {
            match feed.next().await {
                News::Changes(changes) => {
                    for change in changes {
                        apply(&caches, &change).await;
                    }
                }
                News::Resync => {
                    tracing::info!("changes may have been missed; dropping every cache");
                    metrics::counter!("angage_cache_drops_total").increment(1);
                    caches.keys.clear();
                    caches.tenant_settings.clear();
                    caches.rules.reload_all().await;
                }
            }
        }
    }))
}

async fn apply(caches: &Caches, change: &Change) {
    metrics::counter!("angage_changes_received_total", "kind" => change.kind.as_str()).increment(1);
    match change.kind {
        Kind::Key => caches.keys.invalidate_key(&change.subject),
        Kind::TenantSettings => caches.tenant_settings.invalidate(&change.subject),
        Kind::Rule => caches.rules.reload(&change.subject).await,
        Kind::Plugin => caches.plugins.reload_plugin(&change.subject).await,
    }
}
