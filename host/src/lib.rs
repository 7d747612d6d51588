//! The Angage API Platform host: HTTP server, admin API, key store, plugin runtime, rule engine
//! and usage pipeline. `main.rs` is a thin CLI over this library.

pub mod admins;
pub mod app;
pub mod bootstrap;
pub mod cli;
pub mod clock;
pub mod config;
pub mod db;
pub mod http;
pub mod ids;
pub mod keys;
pub mod plugins;
pub mod resources;
pub mod rules;
pub mod telemetry;
pub mod tenants;
pub mod usage;
pub mod validate;
