//! The plugin runtime: one engine, a slot per stage swapped atomically on reload, and the
//! status the admin API shows.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use arc_swap::ArcSwap;
use wasmtime::component::Linker;
use wasmtime::{Cache, CacheConfig, Config, Engine};

use super::bindings::{
    authenticator::Authenticator, authorizer::Authorizer, rate_limiter::RateLimiter,
    usage_enricher::UsageEnricher,
};
use angage_core::clock::rfc3339;
use angage_core::config::Settings;
use angage_core::policy::{LoadFailure, Stage, StageStatus};
use angage_store::plugins::{NodePlugin, StoredPlugin};

use super::pool::{CONTRACT_VERSION, LoadError, Loaded, Source, load};
use super::stage::Bindings;
use super::store_data::{Budget, HostCtx, StoreData};

mod builtin {
    include!(concat!(env!("OUT_DIR"), "/builtin_plugins.rs"));
}

/// The built-in plugins, by name.
pub fn builtin(name: &str) -> Option<&'static [u8]> {
    match name {
        "apikey-auth" => Some(builtin::APIKEY_AUTH),
        "module-scopes" => Some(builtin::MODULE_SCOPES),
        "rate-limit" => Some(builtin::RATE_LIMIT),
        "usage-enrich" => Some(builtin::USAGE_ENRICH),
        _ => None,
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("cannot set up the WebAssembly engine: {0}")]
    Engine(String),
    #[error("plugins.stages.{stage} names `{name}`, which is neither a built-in plugin nor a file {file}")]
    Unknown { stage: &'static str, name: String, file: String },
    #[error("plugin `{name}` for stage {stage}: {error}")]
    Load { stage: &'static str, name: String, error: LoadError },
    #[error("no stage uses plugin `{name}`: name it in plugins.stages first")]
    Unused { name: String },
}

/// One process-wide engine: epoch interruption for deadlines, the compilation cache, and a
/// thread that advances the epoch every millisecond.
fn engine(cache_dir: &Path) -> Result<Engine, RuntimeError> {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    if let Some(e) = ENGINE.get() {
        return Ok(e.clone());
    }
    let mut config = Config::new();
    config.epoch_interruption(true).wasm_component_model(true);
    if std::fs::create_dir_all(cache_dir).is_ok() {
        let mut cache = CacheConfig::new();
        cache.with_directory(std::path::absolute(cache_dir).unwrap_or_else(|_| cache_dir.to_path_buf()));
        match Cache::new(cache) {
            Ok(c) => {
                config.cache(Some(c));
            }
            Err(e) => tracing::warn!(error = %e, "plugin compilation cache disabled"),
        }
    }
    let engine = Engine::new(&config).map_err(|e| RuntimeError::Engine(format!("{e:#}")))?;
    let engine = ENGINE.get_or_init(|| {
        let ticker = engine.clone();
        let _ = std::thread::Builder::new().name("angage-epoch".into()).spawn(move || {
            loop {
                std::thread::sleep(Duration::from_millis(1));
                ticker.increment_epoch();
            }
        });
        engine
    });
    Ok(engine.clone())
}

/// The engine, a linker with every host import, and the budget from `plugins.*`.
fn setup(settings: &Settings) -> Result<(Engine, Linker<StoreData>, Budget), RuntimeError> {
    let p = &settings.plugins;
    let cache_dir = if p.cache_dir.as_os_str().is_empty() {
        settings.data.dir.join("plugin-cache")
    } else {
        p.cache_dir.clone()
    };
    let engine = engine(&cache_dir)?;
    let mut linker = Linker::new(&engine);
    Authenticator::add_to_linker::<StoreData, wasmtime::component::HasSelf<StoreData>>(&mut linker, |d| d)
        .map_err(|e| RuntimeError::Engine(format!("{e:#}")))?;
    let budget = Budget {
        deadline_ticks: p.deadline_ms,
        memory_bytes: usize::try_from(p.memory_limit_mib.saturating_mul(1024 * 1024)).unwrap_or(usize::MAX),
        max_instances: p.max_instances,
        queue_timeout: Duration::from_millis(p.queue_timeout_ms),
    };
    Ok((engine, linker, budget))
}

/// Checks that `bytes` loads as plugin `name` for every stage configured to use it (compiled,
/// its contract version checked, one smoke call made), without serving it: what a node would
/// do with it. Its own version (from `info`).
pub(crate) fn check_component(
    settings: &Settings,
    ctx: Arc<HostCtx>,
    name: &str,
    bytes: &[u8],
) -> Result<String, RuntimeError> {
    let (engine, linker, budget) = setup(settings)?;
    let config = config_json(settings, name);
    // Loaded as every node would load it from the store; only its version is kept.
    let version_as = |stage: Stage| {
        fn version<B: Bindings>(
            (engine, linker, ctx, budget): (&Engine, &Linker<StoreData>, &Arc<HostCtx>, Budget),
            (name, bytes, config): (&str, &[u8], &Arc<str>),
        ) -> Result<String, LoadError> {
            load::<B>(engine, linker, ctx.clone(), budget, name, Source::Store(0), bytes, config.clone())
                .map(|l| l.meta.version)
        }
        let host = (&engine, &linker, &ctx, budget);
        let plugin = (name, bytes, &config);
        match stage {
            Stage::Authenticate => version::<Authenticator>(host, plugin),
            Stage::Authorize => version::<Authorizer>(host, plugin),
            Stage::RateLimit => version::<RateLimiter>(host, plugin),
            Stage::EnrichUsage => version::<UsageEnricher>(host, plugin),
        }
    };
    let mut version = None;
    for stage in Stage::ALL.iter().copied().filter(|s| plugin_of(settings, *s) == name) {
        let loaded_version = version_as(stage).map_err(|error| RuntimeError::Load {
            stage: stage.as_str(),
            name: name.to_owned(),
            error,
        })?;
        version = Some(loaded_version);
    }
    version.ok_or_else(|| RuntimeError::Unused { name: name.to_owned() })
}

/// The plugins serving each stage.
pub(crate) struct PluginRuntime {
    engine: Engine,
    linker: Linker<StoreData>,
    ctx: Arc<HostCtx>,
    settings: Arc<Settings>,
    budget: Budget,
    authn: ArcSwap<Loaded<Authenticator>>,
    authz: ArcSwap<Loaded<Authorizer>>,
    rate: ArcSwap<Loaded<RateLimiter>>,
    usage: ArcSwap<Loaded<UsageEnricher>>,
    failures: Mutex<HashMap<Stage, LoadFailure>>,
    reloads: Mutex<HashMap<Stage, u64>>,
}

/// Access to a stage's slot from its bindings type.
pub(crate) trait Slot: Bindings {
    fn slot(rt: &PluginRuntime) -> &ArcSwap<Loaded<Self>>;
}

impl Slot for Authenticator {
    fn slot(rt: &PluginRuntime) -> &ArcSwap<Loaded<Self>> {
        &rt.authn
    }
}
impl Slot for Authorizer {
    fn slot(rt: &PluginRuntime) -> &ArcSwap<Loaded<Self>> {
        &rt.authz
    }
}
impl Slot for RateLimiter {
    fn slot(rt: &PluginRuntime) -> &ArcSwap<Loaded<Self>> {
        &rt.rate
    }
}
impl Slot for UsageEnricher {
    fn slot(rt: &PluginRuntime) -> &ArcSwap<Loaded<Self>> {
        &rt.usage
    }
}

impl PluginRuntime {
    /// The version serving stage `B` now; a call keeps it (and its instances) for its length,
    /// whatever a reload swaps in meanwhile.
    pub(crate) fn serving<B: Slot>(&self) -> Arc<Loaded<B>> {
        B::slot(self).load_full()
    }

    /// Loads every stage's plugin: the version stored for the cluster, else a file in
    /// `plugins.dir`, else the built-in of that name.
    pub(crate) fn start(
        settings: Arc<Settings>,
        ctx: Arc<HostCtx>,
        stored: &[StoredPlugin],
    ) -> Result<Arc<Self>, RuntimeError> {
        let (engine, linker, budget) = setup(&settings)?;
        let initial =
            Initial { engine: &engine, linker: &linker, ctx: &ctx, settings: &settings, budget, stored };
        let authn = initial.load::<Authenticator>()?;
        let authz = initial.load::<Authorizer>()?;
        let rate = initial.load::<RateLimiter>()?;
        let usage = initial.load::<UsageEnricher>()?;
        let rt = Arc::new(Self {
            engine,
            linker,
            ctx,
            settings,
            budget,
            authn: ArcSwap::from_pointee(authn.0),
            authz: ArcSwap::from_pointee(authz.0),
            rate: ArcSwap::from_pointee(rate.0),
            usage: ArcSwap::from_pointee(usage.0),
            failures: Mutex::new(HashMap::new()),
            reloads: Mutex::new(HashMap::new()),
        });
        for (stage, failure) in [authn.1, authz.1, rate.1, usage.1].into_iter().flatten() {
            rt.fail(stage, failure);
        }
        Ok(rt)
    }

    pub(crate) fn dir(&self) -> &Path {
        &self.settings.plugins.dir
    }

    /// The configured plugin name of a stage.
    pub(crate) fn name_of(&self, stage: Stage) -> &str {
        plugin_of(&self.settings, stage)
    }

    fn config_of(&self, name: &str) -> Arc<str> {
        config_json(&self.settings, name)
    }

    /// Reloads a stage from its file (or the built-in when the file is gone). On failure the
    /// serving version stays and the error is recorded.
    pub(crate) async fn reload(self: &Arc<Self>, stage: Stage) {
        match stage {
            Stage::Authenticate => self.reload_typed::<Authenticator>().await,
            Stage::Authorize => self.reload_typed::<Authorizer>().await,
            Stage::RateLimit => self.reload_typed::<RateLimiter>().await,
            Stage::EnrichUsage => self.reload_typed::<UsageEnricher>().await,
        }
    }

    async fn reload_typed<B: Slot>(self: &Arc<Self>) {
        let stage = B::STAGE;
        let name = self.name_of(stage).to_owned();
        let file = self.dir().join(format!("{name}.wasm"));
        let current = B::slot(self).load();
        let stored = match angage_store::plugins::active(&self.ctx.db, &name).await {
            Ok(stored) => stored,
            Err(e) => {
                tracing::warn!(plugin = %name, error = %e, "cannot read the stored plugin; the serving one stays");
                return;
            }
        };
        let (bytes, source) = match stored {
            Some(p) => (p.component, Source::Store(p.version)),
            None => match tokio::fs::read(&file).await {
                Ok(bytes) => (bytes, Source::File(file.clone())),
                Err(_) => match builtin(&name) {
                    Some(b) if current.meta.source != Source::Builtin => (b.to_vec(), Source::Builtin),
                    Some(_) => return,
                    None => {
                        self.fail(stage, self.failure(&file, "the file is gone and there is no built-in of that name; the last version keeps serving"));
                        return;
                    }
                },
            },
        };
        if super::pool::sha256_hex(&bytes) == current.meta.hash && current.meta.source == source {
            return;
        }
        let rt = self.clone();
        let config = self.config_of(&name);
        let label = source.clone();
        let result = tokio::task::spawn_blocking(move || {
            load::<B>(&rt.engine, &rt.linker, rt.ctx.clone(), rt.budget, &name, label, &bytes, config)
        })
        .await;
        match result {
            Ok(Ok(loaded)) => {
                tracing::info!(stage = stage.as_str(), plugin = %loaded.meta.name, version = %loaded.meta.version,
                               hash = %&loaded.meta.hash[..12], "plugin swapped in");
                let report = self.loaded_report(stage, &loaded.meta);
                B::slot(self).store(Arc::new(loaded));
                self.report(report).await;
                *self.reloads.lock().unwrap_or_else(|p| p.into_inner()).entry(stage).or_default() += 1;
                self.failures.lock().unwrap_or_else(|p| p.into_inner()).remove(&stage);
                metrics::counter!("angage_plugin_reloads_total", "stage" => stage.as_str(), "result" => "ok")
                    .increment(1);
                metrics::gauge!("angage_plugin_load_failed", "stage" => stage.as_str()).set(0.0);
            }
            Ok(Err(e)) => self.fail(stage, self.failure(&file, &e.to_string())),
            Err(e) => self.fail(stage, self.failure(&file, &format!("loader crashed: {e}"))),
        }
    }

    /// Reloads every stage configured to use plugin `name` (stored anew, or rolled back).
    pub(crate) async fn reload_named(self: &Arc<Self>, name: &str) {
        for stage in Stage::ALL {
            if self.name_of(stage) == name {
                self.reload(stage).await;
            }
        }
    }

    fn loaded_report(&self, stage: Stage, meta: &super::pool::Meta) -> NodePlugin {
        NodePlugin {
            node: self.ctx.node.id.clone(),
            address: self.ctx.node.address.clone(),
            stage: stage.as_str().to_owned(),
            name: meta.name.clone(),
            source: meta.source.as_str().to_owned(),
            sha256: meta.hash.clone(),
            loaded_at: String::new(),
        }
    }

    /// Tells the store what this node serves at a stage (so `angage plugins list` shows a
    /// node that did not follow).
    async fn report(&self, loaded: NodePlugin) {
        if let Err(e) =
            angage_store::plugins::report_loaded(&self.ctx.db, &loaded, self.ctx.clock.now_ms()).await
        {
            tracing::warn!(stage = %loaded.stage, error = %e, "cannot record which plugin this node serves");
        }
    }

    /// [`Self::report`] for every stage (after start).
    pub(crate) async fn report_all(&self) {
        let metas = [
            (Stage::Authenticate, self.authn.load().meta.clone()),
            (Stage::Authorize, self.authz.load().meta.clone()),
            (Stage::RateLimit, self.rate.load().meta.clone()),
            (Stage::EnrichUsage, self.usage.load().meta.clone()),
        ];
        for (stage, meta) in metas {
            self.report(self.loaded_report(stage, &meta)).await;
        }
    }

    fn failure(&self, file: &Path, message: &str) -> LoadFailure {
        failure(file, message, self.ctx.clock.now_ms())
    }

    fn fail(&self, stage: Stage, f: LoadFailure) {
        tracing::error!(stage = stage.as_str(), file = %f.file, error = %f.message, "plugin not loaded; the previous version keeps serving");
        metrics::counter!("angage_plugin_reloads_total", "stage" => stage.as_str(), "result" => "error")
            .increment(1);
        metrics::gauge!("angage_plugin_load_failed", "stage" => stage.as_str()).set(1.0);
        self.failures.lock().unwrap_or_else(|p| p.into_inner()).insert(stage, f);
    }

    /// Every stage's status.
    pub(crate) fn status(&self) -> Vec<StageStatus> {
        let failures = self.failures.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let reloads = self.reloads.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let metas = [
            self.authn.load().meta.clone(),
            self.authz.load().meta.clone(),
            self.rate.load().meta.clone(),
            self.usage.load().meta.clone(),
        ];
        Stage::ALL
            .iter()
            .zip(metas)
            .map(|(stage, meta)| StageStatus {
                stage: *stage,
                plugin: meta.name,
                source: meta.source.as_str(),
                // The file's name only: where the server keeps files is the operator's business.
                file: match meta.source {
                    Source::File(p) => p.file_name().map(|n| n.to_string_lossy().into_owned()),
                    Source::Builtin | Source::Store(_) => None,
                },
                version: meta.version,
                contract: CONTRACT_VERSION,
                content_hash: meta.hash,
                loaded_at: rfc3339(meta.loaded_at),
                reloads: reloads.get(stage).copied().unwrap_or(0),
                last_error: failures.get(stage).cloned(),
            })
            .collect()
    }
}

fn failure(file: &Path, message: &str, now: i64) -> LoadFailure {
    let name =
        file.file_name().map_or_else(|| file.display().to_string(), |n| n.to_string_lossy().into_owned());
    LoadFailure { message: message.to_owned(), file: name, at: rfc3339(now) }
}

/// The plugin configured for `stage`.
fn plugin_of(settings: &Settings, stage: Stage) -> &str {
    let s = &settings.plugins.stages;
    match stage {
        Stage::Authenticate => &s.authenticate,
        Stage::Authorize => &s.authorize,
        Stage::RateLimit => &s.rate_limit,
        Stage::EnrichUsage => &s.enrich_usage,
    }
}

fn config_json(settings: &Settings, name: &str) -> Arc<str> {
    settings.plugins.config.get(name).map_or_else(|| "{}".into(), |v| v.to_string().into())
}

/// A stage's plugin at start-up, and the file that failed to load in its place, if any.
type Started<B> = (Loaded<B>, Option<(Stage, LoadFailure)>);

/// Start-up loading: a file that fails falls back to the built-in of that name, and the error is
/// kept for the status.
struct Initial<'a> {
    engine: &'a Engine,
    linker: &'a Linker<StoreData>,
    ctx: &'a Arc<HostCtx>,
    settings: &'a Arc<Settings>,
    budget: Budget,
    stored: &'a [StoredPlugin],
}

impl Initial<'_> {
    fn load<B: Bindings>(&self) -> Result<Started<B>, RuntimeError> {
        let stage = B::STAGE;
        let s = &self.settings.plugins;
        let name = plugin_of(self.settings, stage);
        let file: PathBuf = s.dir.join(format!("{name}.wasm"));
        let config = config_json(self.settings, name);
        let try_load = |source: Source, bytes: &[u8]| {
            load::<B>(
                self.engine,
                self.linker,
                self.ctx.clone(),
                self.budget,
                name,
                source,
                bytes,
                config.clone(),
            )
        };
        let mut failed = None;
        if let Some(p) = self.stored.iter().find(|p| p.name == name) {
            match try_load(Source::Store(p.version), &p.component) {
                Ok(loaded) => return Ok((loaded, None)),
                Err(e) => {
                    let label = Path::new(&format!("{name} (stored v{})", p.version)).to_path_buf();
                    failed = Some((stage, failure(&label, &e.to_string(), self.ctx.clock.now_ms())));
                }
            }
        }
        if let Ok(bytes) = std::fs::read(&file) {
            match try_load(Source::File(file.clone()), &bytes) {
                Ok(loaded) => return Ok((loaded, None)),
                Err(e) if builtin(name).is_some() => {
                    failed = Some((stage, failure(&file, &e.to_string(), self.ctx.clock.now_ms())));
                }
                Err(error) => {
                    return Err(RuntimeError::Load { stage: stage.as_str(), name: name.to_owned(), error });
                }
            }
        }
        let Some(bytes) = builtin(name) else {
            return Err(RuntimeError::Unknown {
                stage: stage.as_str(),
                name: name.to_owned(),
                file: file.display().to_string(),
            });
        };
        let loaded = try_load(Source::Builtin, bytes).map_err(|error| RuntimeError::Load {
            stage: stage.as_str(),
            name: name.to_owned(),
            error,
        })?;
        Ok((loaded, failed))
    }
}
