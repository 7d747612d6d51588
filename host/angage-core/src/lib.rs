//! The vocabulary every other crate shares: time, ids, input checking, configuration, the key
//! and tenant models, the one `Limits` model, and the policy façade's contract (`policy`), so
//! the HTTP edge and the policy engine meet without knowing each other.

pub mod clock;
pub mod config;
pub mod ids;
pub mod key;
pub mod limits;
pub mod policy;
pub mod settings;
pub mod signing;
pub mod tenant;
pub mod validate;
