//! Integration tests: the real server over HTTP on port 0, each test on a fresh database.
//! Storage tests run on SQLite always and on PostgreSQL when `ANGAGE_TEST_POSTGRES_URL` is set.

mod admin_keys;
mod admins;
mod cli_config;
mod cli_keys;
mod connections;
mod console;
mod crash;
mod fuzz;
mod hardening;
mod health;
mod helpers;
mod integrity;
mod nodes;
mod oauth;
mod openapi;
mod plugins;
mod race;
mod receiver;
mod request_log;
mod rules;
mod shutdown;
mod signatures;
mod signing_samples;
mod storage;
mod tidy;
mod tls;
mod usage;
mod v1_commerce;
mod v1_customers;
/// The receivers' verification code of `docs/webhooks/`, as integrators copy it.
#[path = "../../docs/webhooks/verify.rs"]
mod verify;
mod wait;
mod webhook_verify;
mod webhooks;
