//! API keys: the format, digests, grants, limits, IP allowlists, the store and the cached
//! lookup the request path uses.

pub mod cache;
pub mod digest;
pub mod format;
pub mod store;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

pub use angage_plugin_sdk::cidr::{self, Cidr};
pub use digest::Pepper;
pub use format::{ApiKey, KeyFormatError};

use crate::validate::{Errors, FieldError, Input, Need};

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

/// Rate limits; on a key, an absent value means "the tenant's default".
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Limits {
    pub per_second: Option<i64>,
    pub per_minute: Option<i64>,
    pub per_hour: Option<i64>,
    pub per_day: Option<i64>,
    /// Requests allowed in one burst window above the per-second rate.
    pub burst: Option<i64>,
}

impl Limits {
    /// These limits with the tenant's defaults filling the gaps.
    pub fn over(self, defaults: Limits) -> Limits {
        Limits {
            per_second: self.per_second.or(defaults.per_second),
            per_minute: self.per_minute.or(defaults.per_minute),
            per_hour: self.per_hour.or(defaults.per_hour),
            per_day: self.per_day.or(defaults.per_day),
            burst: self.burst.or(defaults.burst),
        }
    }

    pub fn is_empty(&self) -> bool {
        *self == Limits::default()
    }
}

/// Largest limit value accepted.
pub const MAX_LIMIT: i64 = 1_000_000_000;

/// Reads `rate_limits` (`per_second`, ..., `burst`), each a positive integer or null.
pub fn parse_limits(input: Input<'_>, e: &mut Errors) -> Limits {
    input.known(&["per_second", "per_minute", "per_hour", "per_day", "burst"], e);
    Limits {
        per_second: input.int("per_second", Need::Optional, 1, MAX_LIMIT, e),
        per_minute: input.int("per_minute", Need::Optional, 1, MAX_LIMIT, e),
        per_hour: input.int("per_hour", Need::Optional, 1, MAX_LIMIT, e),
        per_day: input.int("per_day", Need::Optional, 1, MAX_LIMIT, e),
        burst: input.int("burst", Need::Optional, 1, MAX_LIMIT, e),
    }
}

/// What an admin asks for when creating a key.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[schema(example = json!({"name":"Warehouse sync","environment":"live","scope":"custom","grants":{"inventory":"read_write","products":"read"},"rate_limits":{"per_minute":60},"ip_allowlist":["203.0.113.0/24"],"expires_in_days":90}))]
pub struct NewKey {
    pub name: String,
    pub description: Option<String>,
    pub environment: Environment,
    pub scope: Scope,
    /// With `scope: custom`: access per module (`none`, `read`, `read_write`).
    #[schema(value_type = Option<BTreeMap<String, Access>>)]
    pub grants: Grants,
    #[serde(default)]
    pub rate_limits: Limits,
    /// CIDR blocks (IPv4 or IPv6); empty allows any address.
    #[serde(default)]
    pub ip_allowlist: Vec<String>,
    /// Absent: the tenant's default key expiration; 0: never.
    pub expires_in_days: Option<i64>,
}

/// What an admin may change on a key; absent fields are kept.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
pub struct KeyUpdate {
    pub name: Option<String>,
    pub description: Option<String>,
    pub scope: Option<Scope>,
    #[schema(value_type = Option<BTreeMap<String, Access>>)]
    pub grants: Option<Grants>,
    /// Replaces all five limits; null values fall back to the tenant's defaults.
    pub rate_limits: Option<Limits>,
    pub ip_allowlist: Option<Vec<String>>,
}

fn parse_grants(input: Input<'_>, e: &mut Errors) -> Grants {
    input.known(MODULES, e);
    let mut grants = Grants::new();
    for m in MODULES {
        if let Some(a) = input
            .choice(m, Need::Optional, &["none", "read", "read_write"], e)
            .and_then(|s| Access::parse(&s))
        {
            grants.insert((*m).to_owned(), a);
        }
    }
    grants
}

fn parse_allowlist(input: &Input<'_>, e: &mut Errors) -> Option<Vec<String>> {
    let list = input.strings("ip_allowlist", 100, 64, e)?;
    let mut out = Vec::with_capacity(list.len());
    for (i, entry) in list.iter().enumerate() {
        match Cidr::parse(entry) {
            Ok(c) => out.push(c.to_string()),
            Err(err) => e.push(format!("ip_allowlist[{i}]"), err.to_string()),
        }
    }
    Some(out)
}

fn parse_scope(input: &Input<'_>, need: Need, e: &mut Errors) -> Option<Scope> {
    input.choice("scope", need, &["full", "read_only", "custom"], e).and_then(|s| Scope::parse(&s))
}

impl NewKey {
    pub fn parse(body: &Value) -> Result<Self, Vec<FieldError>> {
        let mut e = Errors::default();
        let Some(input) = Input::root(body, &mut e) else { return Err(e.0) };
        input.known(
            &[
                "name",
                "description",
                "environment",
                "scope",
                "grants",
                "rate_limits",
                "ip_allowlist",
                "expires_in_days",
            ],
            &mut e,
        );
        let name = input.string("name", Need::Required, 1, 100, &mut e);
        let description = input.string("description", Need::Optional, 0, 500, &mut e);
        let environment = input
            .choice("environment", Need::Optional, &["live", "test"], &mut e)
            .and_then(|s| Environment::parse(&s));
        let scope = parse_scope(&input, Need::Optional, &mut e);
        let grants = input.object("grants", Need::Optional, &mut e, parse_grants);
        if grants.is_some() && scope.is_some_and(|s| s != Scope::Custom) {
            e.push("grants", "are given only with scope `custom`");
        }
        let rate_limits = input.object("rate_limits", Need::Optional, &mut e, parse_limits);
        let ip_allowlist = parse_allowlist(&input, &mut e);
        let expires_in_days = input.int("expires_in_days", Need::Optional, 0, 3650, &mut e);
        e.finish(|| Self {
            name: name.unwrap_or_default(),
            description,
            environment: environment.unwrap_or(Environment::Live),
            scope: scope.unwrap_or(if grants.is_some() { Scope::Custom } else { Scope::Full }),
            grants: grants.unwrap_or_default(),
            rate_limits: rate_limits.unwrap_or_default(),
            ip_allowlist: ip_allowlist.unwrap_or_default(),
            expires_in_days,
        })
    }
}

impl KeyUpdate {
    pub fn parse(body: &Value) -> Result<Self, Vec<FieldError>> {
        let mut e = Errors::default();
        let Some(input) = Input::root(body, &mut e) else { return Err(e.0) };
        input.known(&["name", "description", "scope", "grants", "rate_limits", "ip_allowlist"], &mut e);
        let update = Self {
            name: input.string("name", Need::Optional, 1, 100, &mut e),
            description: input.string("description", Need::Optional, 0, 500, &mut e),
            scope: parse_scope(&input, Need::Optional, &mut e),
            grants: input.object("grants", Need::Optional, &mut e, parse_grants),
            rate_limits: input.object("rate_limits", Need::Optional, &mut e, parse_limits),
            ip_allowlist: parse_allowlist(&input, &mut e),
        };
        e.finish(|| update)
    }
}

/// How long the old secret of a rotated key keeps working.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub enum Grace {
    #[serde(rename = "now")]
    Now,
    #[serde(rename = "1h")]
    OneHour,
    #[serde(rename = "24h")]
    OneDay,
    #[serde(rename = "7d")]
    SevenDays,
}

impl Grace {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "now" => Some(Self::Now),
            "1h" => Some(Self::OneHour),
            "24h" => Some(Self::OneDay),
            "7d" => Some(Self::SevenDays),
            _ => None,
        }
    }

    pub fn millis(self) -> i64 {
        const HOUR: i64 = 3_600_000;
        match self {
            Self::Now => 0,
            Self::OneHour => HOUR,
            Self::OneDay => 24 * HOUR,
            Self::SevenDays => 7 * 24 * HOUR,
        }
    }
}

#[cfg(test)]
mod cidr_properties {
    use std::net::IpAddr;

    use proptest::prelude::*;

    use super::Cidr;

    proptest! {
        #[test]
        fn v4_membership_agrees_with_arithmetic(net in any::<u32>(), prefix in 0u8..=32, probe in any::<u32>()) {
            let cidr = Cidr::parse(&format!("{}/{prefix}", std::net::Ipv4Addr::from(net))).expect("valid");
            let m = if prefix == 0 { 0 } else { u32::MAX << (32 - u32::from(prefix)) };
            prop_assert_eq!(cidr.contains(IpAddr::V4(probe.into())), (net & m) == (probe & m));
        }

        #[test]
        fn v6_membership_agrees_with_arithmetic(net in any::<u128>(), prefix in 0u8..=128, probe in any::<u128>()) {
            let cidr = Cidr::parse(&format!("{}/{prefix}", std::net::Ipv6Addr::from(net))).expect("valid");
            let m = if prefix == 0 { 0 } else { u128::MAX << (128 - u32::from(prefix)) };
            let probe_ip = std::net::Ipv6Addr::from(probe);
            prop_assume!(probe_ip.to_ipv4_mapped().is_none());
            prop_assert_eq!(cidr.contains(IpAddr::V6(probe_ip)), (net & m) == (probe & m));
        }
    }
}
