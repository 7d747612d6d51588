//! The façade: [`PolicyEngine`] implements the core's `Policy` for the HTTP edge. It reads the
//! presented key and its tenant's settings (from the caches) in the request's own task, queues
//! the request on its lane, and hands finished exchanges to enrich-usage.

use std::sync::Arc;

use angage_core::clock::Clock;
use angage_core::config::Settings;
use angage_core::policy::{BoxFuture, Exchange, Outcome, Policy, PolicyRequest, StageStatus, Verdict};
use angage_rules::RuleSet;
use angage_store::db::Db;
use angage_store::keys::cache::{KeyCache, Lookup};
use angage_store::tenants::cache::SettingsCache;
use angage_store::usage::UsageSink;
use http::HeaderMap;

use crate::enrich::EnrichQueue;
use crate::lanes::{LaneCtx, Lanes};
use crate::plugins::RuntimeError;
use crate::plugins::counters::Counters;
use crate::plugins::store_data::HostCtx;
use crate::plugins::store_data::Node;
use crate::plugins::{KeyRef, PluginRuntime, Prefetched, watch};
use crate::refusals;
use crate::unauthenticated::Unauthenticated;

/// What the engine uses of the rest of the host.
#[derive(Clone)]
pub struct Services {
    pub db: Db,
    pub keys: Arc<KeyCache>,
    pub tenant_settings: Arc<SettingsCache>,
    pub usage: UsageSink,
    pub rules: Arc<RuleSet>,
    pub clock: Arc<dyn Clock>,
    pub counters: Arc<dyn Counters>,
    pub node: Node,
}

impl Services {
    /// What plugins reach through their imports.
    pub(crate) fn host_ctx(&self) -> Arc<HostCtx> {
        Arc::new(HostCtx {
            keys: self.keys.clone(),
            tenant_settings: self.tenant_settings.clone(),
            db: self.db.clone(),
            clock: self.clock.clone(),
            counters: self.counters.clone(),
            metric_names: Default::default(),
            node: self.node.clone(),
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("loading the policy plugins: {0}")]
    Plugins(#[from] RuntimeError),
    #[error("watching the plugin directory: {0}")]
    Watch(#[from] notify::Error),
}

/// Plugins, lanes and enrich-usage behind the `Policy` façade.
pub struct PolicyEngine {
    settings: Arc<Settings>,
    services: Services,
    plugins: Arc<PluginRuntime>,
    lanes: Lanes,
    enrich: EnrichQueue,
    unauthenticated: Unauthenticated,
    _watcher: notify::RecommendedWatcher,
}

impl PolicyEngine {
    /// Loads every stage's plugin (the cluster's stored versions first), starts the lanes,
    /// enrich-usage and the plugin watcher.
    pub async fn start(settings: Arc<Settings>, services: Services) -> Result<Self, StartError> {
        let stored = angage_store::plugins::active_all(&services.db).await.unwrap_or_else(|e| {
            tracing::warn!(error = %e, "cannot read the stored plugins; starting with files and built-ins");
            Vec::new()
        });
        let plugins = PluginRuntime::start(settings.clone(), services.host_ctx(), &stored)?;
        plugins.report_all().await;
        let watcher = watch::spawn(plugins.clone())?;
        let lanes = Lanes::start(
            LaneCtx {
                plugins: plugins.clone(),
                rules: services.rules.clone(),
                rate_limit_failure: settings.plugins.rate_limit_failure,
                counters: services.counters.clone(),
                clock: services.clock.clone(),
            },
            settings.plugins.lanes,
        );
        let enrich = EnrichQueue::start(plugins.clone(), services.usage.clone());
        let unauthenticated = Unauthenticated::new(settings.server.unauthenticated_per_minute);
        Ok(Self { settings, services, plugins, lanes, enrich, unauthenticated, _watcher: watcher })
    }

    /// Checks a component as plugin `name` the way a node would load it, without serving it:
    /// its own version, or why no node would take it.
    /// Its smoke call runs against `db` with caches and counters of its own.
    pub fn check_plugin(
        settings: &Settings,
        db: Db,
        pepper: angage_store::keys::Pepper,
        clock: Arc<dyn Clock>,
        (name, bytes): (&str, &[u8]),
    ) -> Result<String, RuntimeError> {
        let ctx = Arc::new(HostCtx {
            keys: Arc::new(KeyCache::new(pepper, 0)),
            tenant_settings: Arc::new(SettingsCache::new(0)),
            db,
            clock,
            counters: Arc::new(crate::plugins::counters::LocalCounters::default()),
            metric_names: Default::default(),
            node: Node::default(),
        });
        crate::plugins::check_component(settings, ctx, name, bytes)
    }

    /// Reloads the stages that use plugin `name` (installed or rolled back for the cluster).
    pub async fn reload_plugin(&self, name: &str) {
        self.plugins.reload_named(name).await;
    }

    /// The key the credential names and its tenant's settings, read here so a cache miss
    /// waits in the request's task rather than in its lane. `Err` when the store failed.
    async fn prefetch(&self, presented: &str, now: i64) -> Result<Option<Arc<Prefetched>>, Verdict> {
        let s = &self.services;
        let key = match s.keys.lookup(&s.db, presented, now).await {
            Ok(Lookup::Found(key)) => key,
            Ok(_) => return Ok(None),
            Err(e) => return Err(unavailable(&e, None)),
        };
        match s.tenant_settings.get(&s.db, &key.tenant_id, now).await {
            Ok(settings) => {
                let key = KeyRef { key, settings };
                Ok(Some(Arc::new(Prefetched { presented: presented.to_owned(), key })))
            }
            Err(e) => Err(unavailable(&e, Some(key))),
        }
    }
}

fn unavailable(e: &sqlx::Error, presented: Option<Arc<angage_core::key::KeyRecord>>) -> Verdict {
    Verdict {
        outcome: Outcome::Refused(refusals::store_unavailable(e)),
        caller: None,
        settings: None,
        presented,
        rate: None,
        rule: None,
    }
}

impl Policy for PolicyEngine {
    fn decide(&self, request: Arc<PolicyRequest>) -> BoxFuture<'_, Verdict> {
        Box::pin(async move {
            let prefetched = match credential(&request.headers) {
                Some(presented) => match self.prefetch(presented, request.time_ms).await {
                    Ok(p) => p,
                    Err(verdict) => return verdict,
                },
                None => None,
            };
            let (origin, now) = (request.origin, request.time_ms);
            if prefetched.is_none()
                && let Some(retry) = self.unauthenticated.over(origin, now)
            {
                return Verdict {
                    outcome: Outcome::Refused(refusals::unauthenticated(retry)),
                    caller: None,
                    settings: None,
                    presented: None,
                    rate: None,
                    rule: None,
                };
            }
            let verdict = self.lanes.decide(request, prefetched).await;
            if matches!(&verdict.outcome, Outcome::Refused(r) if r.status == 401) {
                self.unauthenticated.refused(origin, now);
            }
            verdict
        })
    }

    fn finished(&self, exchange: Exchange) {
        self.enrich.push(exchange);
    }

    fn status(&self) -> Vec<StageStatus> {
        self.plugins.status()
    }

    fn check_plugin(&self, name: String, bytes: Arc<[u8]>) -> BoxFuture<'_, Result<String, String>> {
        let (settings, s) = (self.settings.clone(), &self.services);
        let (db, pepper, clock) = (s.db.clone(), s.keys.pepper().clone(), s.clock.clone());
        Box::pin(async move {
            // Compiling a component takes a while: off the runtime's threads.
            tokio::task::spawn_blocking(move || {
                Self::check_plugin(&settings, db, pepper, clock, (&name, &bytes)).map_err(|e| e.to_string())
            })
            .await
            .unwrap_or_else(|e| Err(format!("the check did not finish: {e}")))
        })
    }
}

/// The presented credential, read exactly as the built-in authenticator reads it (the SDK's
/// one parser), so what the host prefetches is what the plugin looks up.
pub(crate) fn credential(headers: &HeaderMap) -> Option<&str> {
    let header = |name: http::header::HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
    angage_plugin_sdk::forwarded::credential(
        header(http::header::AUTHORIZATION),
        header(http::header::HeaderName::from_static("x-api-key")),
    )
}
