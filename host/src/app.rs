//! Assembles one running server: store, state, router, listener and graceful shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;

use crate::admins::throttle::LoginThrottle;
use crate::bootstrap::{self, Banner};
use crate::clock::{Clock, SystemClock};
use crate::config::Settings;
use crate::db::Db;
use crate::http::enrich::EnrichQueue;
use crate::http::lanes::{LaneCtx, PolicyLanes};
use crate::http::{self, AppState, Inner};
use crate::keys::Pepper;
use crate::keys::cache::KeyCache;
use crate::plugins::counters::LocalCounters;
use crate::plugins::store_data::HostCtx;
use crate::plugins::{PluginRuntime, watch};
use crate::rules::RuleSet;
use crate::telemetry;
use crate::tenants::flags::SettingsCache;
use crate::usage::UsageSink;

/// A server bound to its port, ready to serve.
pub struct App {
    listener: TcpListener,
    state: AppState,
    /// First-start information, present once in the life of a database.
    pub banner: Option<Banner>,
    _watcher: (notify::RecommendedWatcher, notify::RecommendedWatcher),
}

/// What may be swapped in tests.
pub struct Deps {
    pub clock: Arc<dyn Clock>,
    /// Skip the policy stages (benchmarks only: the same route with and without the pipeline).
    pub bypass_policies: bool,
    /// Record the latency a request names in `x-test-latency-us` (tests only).
    pub latency_header: bool,
}

impl Default for Deps {
    fn default() -> Self {
        Self { clock: Arc::new(SystemClock), bypass_policies: false, latency_header: false }
    }
}

impl App {
    /// Connects and migrates the store, runs the first-start bootstrap and binds the listener.
    pub async fn build(settings: Settings, deps: Deps) -> anyhow::Result<Self> {
        // First: the key cache and the plugins register metric handles as they are made, and a
        // handle made before the recorder exists records nothing, ever.
        let metrics = telemetry::metrics_handle();
        let db = Db::connect(&settings.database).await.context("opening the database")?;
        db.migrate().await.context("migrating the database")?;
        let pepper = Pepper::resolve(&settings.keys.pepper, &settings.profile, &settings.data.dir)?;
        let banner = bootstrap::run(&db, &settings, &pepper, deps.clock.as_ref())
            .await
            .context("first-start setup")?;
        let keys = Arc::new(KeyCache::new(pepper, settings.keys.cache_ttl_seconds as i64 * 1000));
        let a = &settings.admin;
        let throttle = LoginThrottle::new(
            a.login_window_minutes as i64 * 60_000,
            a.login_max_failures_per_account as usize,
            a.login_max_failures_per_ip as usize,
        );
        let listener = TcpListener::bind(settings.server.addr)
            .await
            .with_context(|| format!("binding {}", settings.server.addr))?;
        if !settings.redis.url.is_empty() {
            tracing::warn!(
                "redis.url is set, but this build keeps rate-limit counters in process; limits are per host"
            );
        }
        let settings = Arc::new(settings);
        let ctx = Arc::new(HostCtx {
            keys: keys.clone(),
            db: db.clone(),
            clock: deps.clock.clone(),
            counters: Arc::new(LocalCounters::default()),
        });
        let plugins = PluginRuntime::start(settings.clone(), ctx).context("loading the policy plugins")?;
        let watcher = watch::spawn(plugins.clone()).context("watching the plugin directory")?;
        let usage = UsageSink::start(db.clone(), settings.usage.buffer_size);
        let rules = RuleSet::start(db.clone(), settings.policies.dir.clone(), deps.clock.now_ms())
            .await
            .context("loading the limit rules")?;
        let rules_watcher = crate::rules::watch::spawn(rules.clone(), deps.clock.clone())
            .context("watching the policies directory")?;
        let ttl = settings.keys.cache_ttl_seconds as i64 * 1000;
        let tenant_settings = Arc::new(SettingsCache::new(ttl));
        let lanes = PolicyLanes::start(
            LaneCtx {
                plugins: plugins.clone(),
                rules: rules.clone(),
                tenant_settings: tenant_settings.clone(),
                db: db.clone(),
                clock: deps.clock.clone(),
                rate_limit_failure: settings.plugins.rate_limit_failure,
            },
            settings.plugins.lanes,
        );
        let state = AppState::new(Inner {
            settings: (*settings).clone(),
            db,
            metrics,
            clock: deps.clock,
            keys,
            throttle,
            enrich: EnrichQueue::start(plugins.clone(), usage.clone(), deps.bypass_policies),
            plugins,
            usage,
            tenant_settings,
            lanes,
            rules,
            bypass_policies: deps.bypass_policies,
            latency_header: deps.latency_header,
        });
        Ok(Self { listener, state, banner, _watcher: (watcher, rules_watcher) })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().unwrap_or_else(|_| self.state.settings.server.addr)
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` completes, then stops accepting, lets requests in flight finish
    /// (up to `server.shutdown_grace_seconds`), flushes and closes the store.
    pub async fn serve(self, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
        let App { listener, state, _watcher, .. } = self;
        let grace = Duration::from_secs(state.settings.server.shutdown_grace_seconds);
        let (stopping_tx, stopping_rx) = tokio::sync::oneshot::channel::<()>();
        let signal = async move {
            shutdown.await;
            tracing::info!("shutdown requested; finishing requests in flight");
            let _ = stopping_tx.send(());
        };
        let janitor = tokio::spawn(janitor(state.clone()));
        let service = http::router(state.clone()).into_make_service_with_connect_info::<SocketAddr>();
        let server = axum::serve(listener, service).with_graceful_shutdown(signal);
        let deadline = async move {
            if stopping_rx.await.is_ok() {
                tokio::time::sleep(grace).await;
            } else {
                std::future::pending::<()>().await;
            }
        };
        tokio::select! {
            result = server => result.context("serving HTTP")?,
            () = deadline => tracing::warn!(grace_seconds = grace.as_secs(), "requests still in flight after the grace period; closing"),
        }
        janitor.abort();
        state.usage.flush().await;
        if let Err(e) = state.keys.flush_last_used(&state.db).await {
            tracing::warn!(error = %e, "cannot write last-used times at shutdown");
        }
        state.db.close().await;
        tracing::info!("stopped");
        Ok(())
    }
}

/// Periodic housekeeping: writes keys' last-used times and forgets idempotency keys past their
/// retention.
async fn janitor(state: AppState) {
    let flush_every = state.settings.keys.last_used_flush_seconds.max(1);
    let mut tick = tokio::time::interval(Duration::from_secs(flush_every));
    let mut last_purge = 0i64;
    loop {
        tick.tick().await;
        if let Err(e) = state.keys.flush_last_used(&state.db).await {
            tracing::warn!(error = %e, "cannot write last-used times; will retry");
        }
        let now = state.clock.now_ms();
        if now - last_purge >= 600_000 {
            last_purge = now;
            match crate::resources::idempotency::purge(&state.db, now).await {
                Ok(n) if n > 0 => tracing::info!(removed = n, "purged expired idempotency keys"),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "cannot purge idempotency keys"),
            }
            match crate::usage::retain(&state.db, &state.settings.usage, now).await {
                Ok(n) if n > 0 => tracing::info!(removed = n, "removed usage data past its retention"),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "cannot apply usage retention"),
            }
        }
    }
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}
