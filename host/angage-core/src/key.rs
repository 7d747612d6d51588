//! What an API key is to the domain: its environment, its grants per module, and the record the
//! request path works with. The store issues and persists keys; the policy engine judges them.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::AtomicI64;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

pub use angage_plugin_sdk::cidr::{self, Cidr};

use crate::limits::Limits;

/// `live` keys reach production data; `test` keys are for development.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Environment {
    Live,
    Test,
}

impl Environment {
    pub fn key_prefix(self) -> &'static str {
        match self {
            Self::Live => "ak_live_",
            Self::Test => "ak_test_",
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Live => "live",
            Self::Test => "test",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "live" => Some(Self::Live),
            "test" => Some(Self::Test),
            _ => None,
        }
    }
}

/// The modules a key's grants are given for.
pub const MODULES: &[&str] =
    &["customers", "products", "orders", "invoices", "payments", "inventory", "settings"];

/// What a key may do in one module.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Access {
    None,
    Read,
    ReadWrite,
}

impl Access {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "none" => Some(Self::None),
            "read" => Some(Self::Read),
            "read_write" => Some(Self::ReadWrite),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Read => "read",
            Self::ReadWrite => "read_write",
        }
    }
}

/// `full` (read and write everywhere), `read_only`, or `custom` grants per module.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    Full,
    ReadOnly,
    Custom,
}

impl Scope {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "full" => Some(Self::Full),
            "read_only" | "read-only" => Some(Self::ReadOnly),
            "custom" => Some(Self::Custom),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Full => "full",
            Self::ReadOnly => "read_only",
            Self::Custom => "custom",
        }
    }
}

/// Access per module; every module of [`MODULES`] is present.
pub type Grants = BTreeMap<String, Access>;

/// The grants a scope gives; `custom` fills modules not named with `none`.
pub fn grants_for(scope: Scope, custom: &Grants) -> Grants {
    MODULES
        .iter()
        .map(|m| {
            let access = match scope {
                Scope::Full => Access::ReadWrite,
                Scope::ReadOnly => Access::Read,
                Scope::Custom => custom.get(*m).copied().unwrap_or(Access::None),
            };
            ((*m).to_owned(), access)
        })
        .collect()
}

/// Everything the request path needs about a key, looked up by digest. Tenant settings are not
/// part of it: they come from their own cache (`settings`), so a change to them never waits for
/// key records to expire.
#[derive(Debug)]
pub struct KeyRecord {
    pub id: String,
    pub tenant_id: String,
    pub tenant_slug: String,
    pub name: String,
    pub environment: Environment,
    /// Shared with the tenant rules of every request that uses the key.
    pub grants: Arc<Grants>,
    /// The key's own limits; absent windows take the tenant's defaults.
    pub limits: Limits,
    pub ip_allowlist: Vec<Cidr>,
    /// Whether the key may be used only from `ip_allowlist` (also when that list is empty
    /// because the stored one did not read back: such a key is refused everywhere).
    pub ip_restricted: bool,
    pub expires_at: Option<i64>,
    pub revoked_at: Option<i64>,
    /// The Ed25519 public key the key's owner signs requests with (RFC 9421), when registered.
    pub signing_key: Option<[u8; 32]>,
    /// Whether every request with this key must be signed, whatever the tenant's switch says.
    pub require_signature: bool,
    /// An OAuth access token rather than an API key: `id` is then its client's id (limits and
    /// usage are the client's) and the tenant's OAuth switch must be on.
    pub oauth: bool,
    /// Last use not yet written to the store (0: none); the store's key cache aggregates it.
    pub last_used: AtomicI64,
}
