//! Webhook delivery: a worker on every node claims due deliveries from the store, signs them as
//! the Standard Webhooks specification says, POSTs them (never to a forbidden address, never
//! following a redirect), and records each attempt with what comes next: done, a retry with
//! backoff, or the end. The store's outbox made the deliveries; this crate only sends them.

pub mod schedule;
mod send;
pub mod sign;
mod worker;

pub use worker::{Worker, WorkerDeps};
