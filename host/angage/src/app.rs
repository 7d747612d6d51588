//! Composition: one running server out of the store, the rules, the policy engine and the HTTP
//! edge, with graceful shutdown and the janitor.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use angage_core::clock::{Clock, SystemClock};
use angage_core::config::Settings;
use angage_core::policy::Policy;
use angage_http::{AppState, Inner, Listener};
use angage_policy::plugins::counters::{Counters, LocalCounters, SharedCounters};
use angage_policy::{Node, PolicyEngine, Services};
use angage_rules::RuleSet;
use angage_store::admins::throttle::LoginThrottle;
use angage_store::changes::Feed;
use angage_store::db::Db;
use angage_store::keys::Pepper;
use angage_store::keys::cache::KeyCache;
use angage_store::shared::Redis;
use angage_store::tenants::cache::SettingsCache;
use angage_store::usage::UsageSink;
use angage_store::webhooks::Sealer;
use angage_webhooks::{Worker, WorkerDeps};
use anyhow::Context;

use crate::bootstrap::{self, Banner};
use crate::coherence;
use crate::telemetry;

/// A server bound to its port, ready to serve.
pub struct App {
    listener: Listener,
    state: AppState,
    /// First-start information, present once in the life of a database.
    pub banner: Option<Banner>,
    /// Kept for its watchers and tasks; dropped when the server stops.
    _engine: Arc<dyn Policy>,
    _rules_watcher: notify::RecommendedWatcher,
    _follower: coherence::Follower,
    deliver_webhooks: bool,
}

/// Wraps or replaces the policy engine: the seam tests and benches use (a latency they choose,
/// the stages skipped). The server itself passes none.
pub type PolicyLayer = Box<dyn FnOnce(Arc<dyn Policy>, &Services) -> Arc<dyn Policy> + Send>;

/// What may be swapped in tests.
pub struct Deps {
    pub clock: Arc<dyn Clock>,
    pub policy: Option<PolicyLayer>,
    /// Run the webhook worker (the server always does; the webhook bench turns it off to
    /// measure what the outbox alone costs a write).
    pub deliver_webhooks: bool,
}

impl Default for Deps {
    fn default() -> Self {
        Self { clock: Arc::new(SystemClock), policy: None, deliver_webhooks: true }
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
        let sealer = Sealer::new(&pepper);
        let keys = Arc::new(KeyCache::new(pepper, seconds_ms(settings.keys.cache_ttl_seconds)));
        let tenant_settings = Arc::new(SettingsCache::new(seconds_ms(settings.tenants.cache_ttl_seconds)));
        let redis = Redis::open(&settings.redis).context("redis.url")?;
        let a = &settings.admin;
        let throttle = LoginThrottle::new(
            seconds_ms(a.login_window_minutes * 60),
            a.login_max_failures_per_account as usize,
            a.login_max_failures_per_ip as usize,
            redis.clone(),
        );
        let listener = Listener::bind(settings.server.addr)
            .await
            .with_context(|| format!("binding {}", settings.server.addr))?;
        let counters: Arc<dyn Counters> = match &redis {
            Some(redis) => Arc::new(SharedCounters::new(redis.clone(), settings.redis.failure)),
            None => Arc::new(LocalCounters::default()),
        };
        let settings = Arc::new(settings);
        let spool = settings.data.dir.join("usage-spool");
        let usage = UsageSink::start(
            db.clone(),
            settings.usage.buffer_size,
            &spool,
            settings.usage.success_sample_rate,
        )
        .await
        .context("starting the usage pipeline")?;
        let rules = RuleSet::start(db.clone(), &settings.policies, deps.clock.now_ms())
            .await
            .context("loading the limit rules")?;
        let rules_watcher = angage_rules::watch::spawn(rules.clone(), deps.clock.clone())
            .context("watching the policies directory")?;
        let feed =
            Feed::start(db.clone(), &settings.database.url).await.context("following the change feed")?;
        let services = Services {
            db: db.clone(),
            keys: keys.clone(),
            tenant_settings: tenant_settings.clone(),
            usage: usage.clone(),
            rules: rules.clone(),
            clock: deps.clock.clone(),
            counters,
            node: Node {
                id: angage_store::usage::node_id(&spool).context("naming this node")?,
                address: listener.local_addr().map(|a| a.to_string()).unwrap_or_default(),
            },
        };
        let engine = Arc::new(PolicyEngine::start(settings.clone(), services.clone()).await?);
        let caches = coherence::Caches {
            keys: keys.clone(),
            tenant_settings: tenant_settings.clone(),
            rules: rules.clone(),
            plugins: engine.clone(),
        };
        let follower = coherence::follow(feed, caches);
        let engine: Arc<dyn Policy> = engine;
        let policy = match deps.policy {
            Some(layer) => layer(engine.clone(), &services),
            None => engine.clone(),
        };
        let state = AppState::new(Inner {
            proxies: angage_http::TrustedProxies::new(&settings.server.trusted_proxies),
            in_flight: angage_http::InFlight::default(),
            redis,
            settings: (*settings).clone(),
            db,
            metrics,
            clock: deps.clock,
            keys,
            throttle,
            password_checks: Arc::new(tokio::sync::Semaphore::new(settings.admin.password_checks.max(1))),
            policy,
            usage,
            tenant_settings,
            rules,
            sealer,
            tls: angage_http::Tls::load(&settings.server.tls).context("loading the TLS certificate")?,
        });
        Ok(Self {
            listener,
            state,
            banner,
            _engine: engine,
            _rules_watcher: rules_watcher,
            _follower: follower,
            deliver_webhooks: deps.deliver_webhooks,
        })
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
        let App { listener, state, _follower, deliver_webhooks, .. } = self;
        let grace = Duration::from_secs(state.settings.server.shutdown_grace_seconds);
        let (stopping_tx, stopping_rx) = tokio::sync::oneshot::channel::<()>();
        let signal = async move {
            shutdown.await;
            tracing::info!("shutdown requested; finishing requests in flight");
            let _ = stopping_tx.send(());
        };
        let janitor = tokio::spawn(janitor(state.clone()));
        let deliveries = deliver_webhooks
            .then(|| {
                Worker::start(WorkerDeps {
                    db: state.db.clone(),
                    sealer: state.sealer.clone(),
                    clock: state.clock.clone(),
                    settings: state.settings.webhooks.clone(),
                    database_url: state.settings.database.url.clone(),
                })
            })
            .transpose()
            .context("starting the webhook worker")?;
        let server = angage_http::serve(listener, state.clone(), signal);
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
        drop(deliveries);
        state.usage.flush().await;
        if let Err(e) = state.keys.flush_last_used(&state.db).await {
            tracing::warn!(error = %e, "cannot write last-used times at shutdown");
        }
        state.db.close().await;
        tracing::info!("stopped");
        Ok(())
    }
}

fn seconds_ms(seconds: u64) -> i64 {
    i64::try_from(seconds.saturating_mul(1000)).unwrap_or(i64::MAX)
}

/// Periodic housekeeping: writes keys' last-used times, announces keys about to expire, and
/// forgets idempotency keys, changes, usage and webhook deliveries past their retention.
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
        match angage_store::keys::store::announce_expiring(&state.db, now).await {
            Ok(n) if n > 0 => tracing::info!(announced = n, "announced keys expiring within seven days"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "cannot announce expiring keys; will retry"),
        }
        if now - last_purge >= 600_000 {
            last_purge = now;
            match angage_store::resources::idempotency::purge(&state.db, now).await {
                Ok(n) if n > 0 => tracing::info!(removed = n, "purged expired idempotency keys"),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "cannot purge idempotency keys"),
            }
            if let Err(e) = angage_store::changes::purge(&state.db, now).await {
                tracing::warn!(error = %e, "cannot purge the change feed");
            }
            match angage_store::oauth::tokens::purge(&state.db, now).await {
                Ok(n) if n > 0 => tracing::info!(removed = n, "purged OAuth access tokens expired a day ago"),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "cannot purge expired OAuth access tokens"),
            }
            match angage_store::usage::retain(&state.db, &state.settings.usage, now).await {
                Ok(n) if n > 0 => tracing::info!(removed = n, "removed usage data past its retention"),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "cannot apply usage retention"),
            }
            match angage_store::webhooks::deliveries::purge(
                &state.db,
                now,
                state.settings.webhooks.retention_days,
            )
            .await
            {
                Ok(n) if n > 0 => {
                    tracing::info!(removed = n, "removed webhook deliveries past their retention")
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "cannot apply webhook retention"),
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
