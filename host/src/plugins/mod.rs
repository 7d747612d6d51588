//! The plugin runtime: one wasmtime engine, compiled components cached on disk, warm instance
//! pools with deadlines and memory caps, and hot reload from `plugins.dir`.

pub mod bindings;
pub mod counters;
mod deadline;
pub mod handles;
pub mod loaded;
mod permits;
pub mod runtime;
pub mod stage;
pub mod store_data;
pub mod watch;

pub use loaded::{CONTRACT_VERSION, CallError, LoadError};
pub use runtime::{PluginRuntime, StageStatus};
pub use stage::Stage;
