//! The store: one connection pool over SQLite or PostgreSQL and the repositories that own every
//! table: the `/v1` resources, keys, tenants and their settings, admins, rule versions and usage.
//! Nothing here knows HTTP or the plugin runtime.

pub mod admins;
pub mod changes;
mod circuit;
pub mod db;
mod failure;
pub mod keys;
pub mod oauth;
pub mod plugins;
pub mod resources;
pub mod rules;
pub mod shared;
pub mod tenants;
pub mod usage;
pub mod webhooks;
