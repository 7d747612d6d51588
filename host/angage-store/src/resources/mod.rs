//! The `/v1` resources: domain types, input parsing and repositories on the store. No HTTP here.

pub mod customers;
pub mod idempotency;
pub mod inventory;
pub mod invoices;
pub mod orders;
pub mod payments;
pub mod products;
pub mod store;
