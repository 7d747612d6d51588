//! A loaded plugin: its compiled component, checked against the contract, with warm instances.
//! A call takes the instance this thread used last (or one from the shared pool, or makes one),
//! runs under the epoch deadline and the memory cap, and keeps the instance unless it trapped.

use std::any::Any;
use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Instant;

use wasmtime::component::{Component, InstancePre, Linker};
use wasmtime::{Engine, Store, Trap};

/// The contract version this host speaks: the SDK reads it from the WIT package, so host and
/// guests take it from one place.
pub use angage_plugin_sdk::CONTRACT_VERSION;

use super::permits::Permits;
use super::stage::{self, Bindings};
use super::store_data::{Budget, HostCtx, Identity, StoreData};

const CONTRACT_PACKAGE: &str = "angage:policy";

/// Where a plugin came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Source {
    Builtin,
    File(std::path::PathBuf),
    /// The store's version of this name (installed for the whole cluster).
    Store(i64),
}

impl Source {
    pub(crate) fn as_str(&self) -> &'static str {
        match self {
            Source::Builtin => "builtin",
            Source::File(_) => "file",
            Source::Store(_) => "store",
        }
    }
}

/// What is shown about a loaded plugin.
#[derive(Debug, Clone)]
pub(crate) struct Meta {
    /// The configured name (`apikey-auth`, or the file's stem).
    pub name: String,
    pub source: Source,
    /// The plugin's own version, from its `info` export.
    pub version: String,
    /// SHA-256 of the file as loaded.
    pub hash: String,
    pub loaded_at: i64,
}

/// Why a plugin could not be loaded. The previous version keeps serving.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("not a WebAssembly module or component")]
    NotWasm,
    #[error("cannot turn the core module into a component: {0}")]
    Encode(String),
    #[error("does not compile: {0}")]
    Compile(String),
    #[error("built against contract {plugin}; this host speaks {CONTRACT_PACKAGE}@{CONTRACT_VERSION}")]
    Contract { plugin: String },
    #[error("does not export {wanted} (it exports: {found})")]
    MissingExport { wanted: String, found: String },
    #[error("imports what this host does not offer: {0}")]
    Imports(String),
    #[error("failed its smoke call: {0}")]
    Smoke(String),
}

/// Why a call did not produce an answer.
#[derive(Debug, Clone, thiserror::Error)]
pub(crate) enum CallError {
    #[error("no instance became free within the queue timeout")]
    Overloaded,
    #[error("ran past its deadline")]
    Deadline,
    #[error("trapped: {0}")]
    Trap(String),
    #[error("could not be instantiated: {0}")]
    Instantiate(String),
    /// The shared counters could not be reached and `redis.failure = "closed"` refuses: the
    /// request is refused as such, not as a failing plugin.
    #[error("the shared counters are unavailable")]
    CountersRefused,
}

impl CallError {
    pub(crate) fn outcome(&self) -> &'static str {
        match self {
            Self::Overloaded => "overloaded",
            Self::Deadline => "deadline",
            Self::Trap(_) => "trap",
            Self::Instantiate(_) => "instantiate",
            Self::CountersRefused => "counters_refused",
        }
    }
}

/// Metric handles registered once per plugin, so a call records without a registry lookup.
struct CallMetrics {
    /// Sampled: one call in `TIMING_SAMPLE` per thread is timed.
    seconds: metrics::Histogram,
    ok: metrics::Counter,
}

pub(crate) struct Loaded<B> {
    pub meta: Meta,
    /// Tells this version's instances apart from any other's in the per-thread slots.
    id: u64,
    /// Dropped with this version: threads then let go of the instances they kept for it.
    alive: Arc<()>,
    metrics: CallMetrics,
    pre: InstancePre<StoreData>,
    idle: Mutex<Vec<Instance<B>>>,
    permits: Permits,
    engine: Engine,
    identity: Identity,
    ctx: Arc<HostCtx>,
    budget: Budget,
}

/// Compiles and checks `bytes` for stage `B`, and makes its first (smoke-tested) instance.
#[allow(clippy::too_many_arguments)]
pub(super) fn load<B: Bindings>(
    engine: &Engine,
    linker: &Linker<StoreData>,
    ctx: Arc<HostCtx>,
    budget: Budget,
    name: &str,
    source: Source,
    bytes: &[u8],
    config: Arc<str>,
) -> Result<Loaded<B>, LoadError> {
    let component_bytes = as_component(bytes)?;
    let component =
        Component::new(engine, &component_bytes).map_err(|e| LoadError::Compile(format!("{e:#}")))?;
    check_contract::<B>(engine, &component)?;
    let pre = linker.instantiate_pre(&component).map_err(|e| LoadError::Imports(format!("{e:#}")))?;
    let identity = Identity::new(name, B::STAGE, config);
    let mut store = new_store(engine, &identity, &ctx, budget);
    // The first call pages memory in: give it more room than a request's deadline.
    store.set_epoch_deadline(budget.deadline_ticks.saturating_mul(20).max(200));
    let bindings = B::instantiate(&pre, &mut store).map_err(|e| LoadError::Smoke(format!("{e:#}")))?;
    let info = bindings.info(&mut store).map_err(|e| LoadError::Smoke(format!("info: {e:#}")))?;
    bindings.smoke(&mut store).map_err(|e| LoadError::Smoke(format!("{e:#}")))?;
    let meta = Meta {
        name: name.to_owned(),
        source,
        version: info.version,
        hash: sha256_hex(bytes),
        loaded_at: ctx.clock.now_ms(),
    };
    let stage = B::STAGE.as_str();
    static NEXT_ID: AtomicU64 = AtomicU64::new(1);
    Ok(Loaded {
        meta,
        id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
        alive: Arc::new(()),
        metrics: CallMetrics {
            seconds: metrics::histogram!("angage_plugin_call_seconds", "stage" => stage),
            ok: metrics::counter!("angage_plugin_calls_total", "stage" => stage, "outcome" => "ok"),
        },
        pre,
        idle: Mutex::new(vec![Box::new((store, bindings))]),
        permits: Permits::new(budget.max_instances),
        engine: engine.clone(),
        identity,
        ctx,
        budget,
    })
}

fn new_store(engine: &Engine, identity: &Identity, ctx: &Arc<HostCtx>, budget: Budget) -> Store<StoreData> {
    let mut store = Store::new(engine, StoreData::new(identity.clone(), ctx.clone(), budget));
    store.limiter(|data| &mut data.limits);
    store.epoch_deadline_callback(|mut cx| Ok(cx.data_mut().deadline.on_expiry()));
    store
}

/// A core module from `wasm32-unknown-unknown` becomes a component with `wit-component`; a
/// component is taken as is.
fn as_component(bytes: &[u8]) -> Result<Vec<u8>, LoadError> {
    match bytes.get(..8) {
        Some([0, b'a', b's', b'm', _, _, 1, 0]) => Ok(bytes.to_vec()),
        Some([0, b'a', b's', b'm', 1, 0, 0, 0]) => wit_component::ComponentEncoder::default()
            .module(bytes)
            .and_then(|e| e.validate(true).encode())
            .map_err(|e| LoadError::Encode(format!("{e:#}"))),
        _ => Err(LoadError::NotWasm),
    }
}

/// Refuses plugins built against another contract version, naming both versions.
fn check_contract<B: Bindings>(engine: &Engine, component: &Component) -> Result<(), LoadError> {
    let ty = component.component_type();
    let names: Vec<String> = ty
        .imports(engine)
        .map(|(n, _)| n.to_owned())
        .chain(ty.exports(engine).map(|(n, _)| n.to_owned()))
        .collect();
    for name in &names {
        if let Some(version) =
            name.strip_prefix(CONTRACT_PACKAGE).and_then(|rest| rest.split_once('@')).map(|(_, v)| v)
        {
            let major = |v: &str| v.split('.').next().map(str::to_owned);
            if major(version) != major(CONTRACT_VERSION) {
                return Err(LoadError::Contract { plugin: format!("{CONTRACT_PACKAGE}@{version}") });
            }
        }
    }
    let wanted = format!("{}@{CONTRACT_VERSION}", stage::export(B::STAGE));
    if ty.get_export(engine, &wanted).is_none() {
        let found: Vec<String> = ty.exports(engine).map(|(n, _)| n.to_owned()).collect();
        return Err(LoadError::MissingExport {
            wanted,
            found: if found.is_empty() { "nothing".into() } else { found.join(", ") },
        });
    }
    Ok(())
}

pub(super) fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(bytes))
}

/// Timing every call (two clock reads and a histogram sample) cost a measurable share of a
/// request's throughput; the call counters stay exact.
const TIMING_SAMPLE: u32 = 16;

/// Whether this thread times its current call.
fn timed() -> bool {
    CALLS.with(|c| {
        let n = c.get().wrapping_add(1);
        c.set(n);
        n % TIMING_SAMPLE == 0
    })
}

thread_local! {
    /// One warm instance per loaded plugin per thread. Stage calls never await, so the
    /// instance a thread used last is free when it calls again: taking it touches no lock, and
    /// the plugin's memory is still in this core's cache.
    static WARM: RefCell<Vec<WarmSlot>> = const { RefCell::new(Vec::new()) };
    /// Calls made on this thread, for `timed`.
    static CALLS: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

/// A warm instance: its store and the stage's bindings. Boxed once when made, so passing it
/// between the pool, a call and a thread's slot moves a pointer and allocates nothing.
type Instance<B> = Box<(Store<StoreData>, B)>;

/// An instance kept by a thread for one loaded plugin.
struct WarmSlot {
    id: u64,
    alive: Weak<()>,
    /// `Instance<B>` of that plugin's stage, unsized in place.
    instance: Box<dyn Any>,
}

impl<B: Bindings> Loaded<B> {
    fn take_warm(&self) -> Option<Instance<B>> {
        WARM.with(|w| {
            let mut slots = w.borrow_mut();
            let at = slots.iter().position(|s| s.id == self.id)?;
            slots.swap_remove(at).instance.downcast::<(Store<StoreData>, B)>().ok()
        })
    }

    /// Keeps the instance for this thread's next call; the one it held goes back to the pool.
    fn keep_warm(&self, instance: Instance<B>) {
        let spilled = WARM.with(|w| {
            let mut slots = w.borrow_mut();
            // Instances of versions that were replaced since this thread last called.
            slots.retain(|s| s.alive.strong_count() > 0);
            if slots.iter().any(|s| s.id == self.id) {
                return Some(instance);
            }
            slots.push(WarmSlot { id: self.id, alive: Arc::downgrade(&self.alive), instance });
            None
        });
        if let Some(instance) = spilled {
            self.idle.lock().unwrap_or_else(|p| p.into_inner()).push(instance);
        }
    }

    /// Runs `f` on a warm instance under the deadline. A trapped instance is thrown away.
    #[cfg(feature = "testing")]
    pub(crate) async fn call<R>(
        &self,
        f: impl FnOnce(&B, &mut Store<StoreData>) -> wasmtime::Result<R>,
    ) -> Result<R, CallError> {
        let _permit = self.permit().await?;
        let mut instance = self.instance()?;
        let (store, bindings) = &mut *instance;
        match self.run(bindings, store, f) {
            Ok(value) => {
                self.keep_warm(instance);
                self.metrics.ok.increment(1);
                Ok(value)
            }
            Err(e) => Err(self.failed(e)),
        }
    }

    /// Calls `f` for each of `items`, in order, on one warm instance: one permit and one
    /// hand-off for the lot, and a deadline per item. An item whose call fails gets its error
    /// and the instance is thrown away; the items after it go on, on a fresh instance.
    pub(crate) async fn call_batch<T, R>(
        &self,
        items: &[T],
        mut f: impl FnMut(&B, &mut Store<StoreData>, &T) -> wasmtime::Result<R>,
    ) -> Vec<Result<R, CallError>> {
        let mut out = Vec::with_capacity(items.len());
        if items.is_empty() {
            return out;
        }
        let _permit = match self.permit().await {
            Ok(p) => p,
            Err(e) => {
                out.extend(items.iter().map(|_| Err(e.clone())));
                return out;
            }
        };
        let mut warm: Option<Instance<B>> = None;
        for item in items {
            let mut instance = match warm.take().map_or_else(|| self.instance(), Ok) {
                Ok(i) => i,
                Err(e) => {
                    out.push(Err(e));
                    continue;
                }
            };
            let (store, bindings) = &mut *instance;
            match self.run(bindings, store, |b, s| f(b, s, item)) {
                Ok(value) => {
                    out.push(Ok(value));
                    warm = Some(instance);
                }
                Err(e) => out.push(Err(self.failed(e))),
            }
        }
        self.metrics.ok.increment(out.iter().filter(|r| r.is_ok()).count() as u64);
        if let Some(instance) = warm {
            self.keep_warm(instance);
        }
        out
    }

    /// The common case takes a free slot at once; only a full count waits (with a timeout).
    async fn permit(&self) -> Result<super::permits::Permit<'_>, CallError> {
        match self.permits.try_acquire() {
            Some(p) => Ok(p),
            None => self.permits.acquire(self.budget.queue_timeout).await.ok_or(CallError::Overloaded),
        }
    }

    /// One call under a fresh deadline (`deadline.rs`); one in `TIMING_SAMPLE` is timed.
    fn run<R>(
        &self,
        bindings: &B,
        store: &mut Store<StoreData>,
        f: impl FnOnce(&B, &mut Store<StoreData>) -> wasmtime::Result<R>,
    ) -> wasmtime::Result<R> {
        store.set_epoch_deadline(self.budget.deadline_ticks);
        store.data_mut().deadline.start();
        let start = timed().then(Instant::now);
        let result = f(bindings, store);
        if let Some(start) = start {
            self.metrics.seconds.record(start.elapsed().as_secs_f64());
        }
        result
    }

    /// Counts and logs a failed call; the caller throws its instance away.
    fn failed(&self, e: wasmtime::Error) -> CallError {
        let err = if e.downcast_ref::<Trap>() == Some(&Trap::Interrupt) {
            CallError::Deadline
        } else if e.downcast_ref::<super::counters::Refuse>().is_some() {
            // Said once per outage where Redis is; not a plugin's fault.
            metrics::counter!("angage_plugin_calls_total", "stage" => B::STAGE.as_str(), "outcome" => "counters_refused")
                .increment(1);
            return CallError::CountersRefused;
        } else {
            CallError::Trap(format!("{e:#}").lines().next().unwrap_or_default().to_owned())
        };
        let stage = B::STAGE.as_str();
        metrics::counter!("angage_plugin_calls_total", "stage" => stage, "outcome" => err.outcome())
            .increment(1);
        tracing::warn!(stage, plugin = %self.meta.name, error = %err, "plugin call failed; instance discarded");
        err
    }

    /// This thread's warm instance, else one from the pool, else a new one.
    fn instance(&self) -> Result<Instance<B>, CallError> {
        if let Some(warm) =
            self.take_warm().or_else(|| self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop())
        {
            return Ok(warm);
        }
        let mut store = new_store(&self.engine, &self.identity, &self.ctx, self.budget);
        store.set_epoch_deadline(self.budget.deadline_ticks.saturating_mul(20).max(200));
        let bindings =
            B::instantiate(&self.pre, &mut store).map_err(|e| CallError::Instantiate(format!("{e:#}")))?;
        Ok(Box::new((store, bindings)))
    }
}
