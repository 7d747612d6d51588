//! The policy engine: the plugin runtime (wasmtime, one component per stage), the lanes that run
//! the request-path stages in batches, the tenant rules between authorize and rate-limit, and
//! enrich-usage after the response. Its one door is [`PolicyEngine`], which implements the
//! core's `Policy`: WIT types never leave this crate, and it knows nothing of HTTP frameworks.

mod engine;
mod enrich;
mod lanes;
pub mod plugins;
mod refusals;
mod signatures;
#[cfg(feature = "testing")]
pub mod testing;
mod unauthenticated;

pub use engine::{PolicyEngine, Services, StartError};
pub use plugins::store_data::Node;
