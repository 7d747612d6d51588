//! API keys: the format, digests, grants, limits, IP allowlists, the store and the cached
//! lookup the request path uses.

pub mod cache;
pub mod digest;
pub mod format;
pub mod store;

use angage_core::key::{Access, Cidr, Environment, Grants, MODULES, Scope};
use angage_core::limits::Limits;
use angage_core::validate::{Errors, FieldError, Input, Need};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

pub use digest::Pepper;
pub use format::{ApiKey, KeyFormatError};

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
    /// The Ed25519 public key the owner signs requests with (RFC 9421): a PEM `PUBLIC KEY` or
    /// the 32 bytes in base64.
    #[schema(value_type = Option<String>)]
    #[serde(default)]
    pub signing_public_key: Option<String>,
    /// Refuse this key's unsigned requests even where the tenant does not require signatures.
    #[serde(default)]
    pub require_signature: bool,
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
    /// A new signing public key; null removes it.
    #[schema(value_type = Option<String>)]
    pub signing_public_key: Option<Option<String>>,
    pub require_signature: Option<bool>,
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

/// `signing_public_key`: absent (`None`), null (`Some(None)`) or a key, stored as base64.
fn parse_signing_key(body: &Value, input: &Input<'_>, e: &mut Errors) -> Option<Option<String>> {
    if body.get("signing_public_key").is_some_and(Value::is_null) {
        return Some(None);
    }
    let text = input.string("signing_public_key", Need::Optional, 1, 2000, e)?;
    match angage_core::signing::parse_public_key(&text) {
        Ok(key) => Some(Some(angage_core::signing::encode_public_key(&key))),
        Err(why) => {
            e.push("signing_public_key", why);
            None
        }
    }
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
                "signing_public_key",
                "require_signature",
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
        let rate_limits = input.object("rate_limits", Need::Optional, &mut e, Limits::parse);
        let ip_allowlist = parse_allowlist(&input, &mut e);
        let expires_in_days = input.int("expires_in_days", Need::Optional, 0, 3650, &mut e);
        let signing_public_key = parse_signing_key(body, &input, &mut e).flatten();
        let require_signature = input.boolean("require_signature", Need::Optional, &mut e);
        if require_signature == Some(true) && signing_public_key.is_none() {
            e.push("require_signature", "needs a `signing_public_key` to verify the signatures with");
        }
        e.finish(|| Self {
            name: name.unwrap_or_default(),
            description,
            environment: environment.unwrap_or(Environment::Live),
            scope: scope.unwrap_or(if grants.is_some() { Scope::Custom } else { Scope::Full }),
            grants: grants.unwrap_or_default(),
            rate_limits: rate_limits.unwrap_or_default(),
            ip_allowlist: ip_allowlist.unwrap_or_default(),
            expires_in_days,
            signing_public_key,
            require_signature: require_signature.unwrap_or(false),
        })
    }
}

impl KeyUpdate {
    pub fn parse(body: &Value) -> Result<Self, Vec<FieldError>> {
        let mut e = Errors::default();
        let Some(input) = Input::root(body, &mut e) else { return Err(e.0) };
        input.known(
            &[
                "name",
                "description",
                "scope",
                "grants",
                "rate_limits",
                "ip_allowlist",
                "signing_public_key",
                "require_signature",
            ],
            &mut e,
        );
        let update = Self {
            name: input.string("name", Need::Optional, 1, 100, &mut e),
            description: input.string("description", Need::Optional, 0, 500, &mut e),
            scope: parse_scope(&input, Need::Optional, &mut e),
            grants: input.object("grants", Need::Optional, &mut e, parse_grants),
            rate_limits: input.object("rate_limits", Need::Optional, &mut e, Limits::parse),
            ip_allowlist: parse_allowlist(&input, &mut e),
            signing_public_key: parse_signing_key(body, &input, &mut e),
            require_signature: input.boolean("require_signature", Need::Optional, &mut e),
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
