//! The `angage` binary's library half: composition of the store, the rules, the policy engine
//! and the HTTP edge into one server (`app`), the first-start setup, telemetry and the CLI.
//! `main.rs` is a thin shell over it; the integration tests and benches drive it.

pub mod app;
pub mod bootstrap;
pub mod cli;
mod coherence;
pub mod telemetry;
