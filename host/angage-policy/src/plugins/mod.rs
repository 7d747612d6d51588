//! The plugin runtime: one wasmtime engine, compiled components cached on disk, warm instance
//! pools with deadlines and memory caps, and hot reload from `plugins.dir`.
//!
//! Layers, each importing only those above it: `handles` (the lent values) and `counters`,
//! `deadline`, `permits`; `bindings` (generated from the WIT); `outputs` (what a plugin returns,
//! bounded before use); `store_data` (an instance's
//! state and every host import); `stage` (one call per stage); `pool` (a loaded plugin and its
//! instances); `runtime` (a slot per stage, reload, status); `watch`.

mod bindings;
pub mod counters;
mod deadline;
mod handles;
pub(crate) mod outputs;
mod permits;
mod pool;
mod runtime;
mod stage;
pub(crate) mod store_data;
pub(crate) mod watch;

pub(crate) use bindings::authenticator::Authenticator;
pub(crate) use bindings::authorizer::Authorizer;
pub(crate) use bindings::rate_limiter::RateLimiter;
pub(crate) use bindings::types;
pub(crate) use bindings::usage_enricher::UsageEnricher;
pub(crate) use handles::{KeyRef, Prefetched};
pub use pool::{CONTRACT_VERSION, LoadError};
pub(crate) use pool::{CallError, Loaded};
pub(crate) use runtime::PluginRuntime;
pub(crate) use runtime::check_component;
pub use runtime::{RuntimeError, builtin};
pub(crate) use stage::{authenticate, authorize, check, enrich};
