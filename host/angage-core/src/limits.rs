//! The one rate-limit model: a limit per window. It is converted only at the edges that speak
//! another language: the WIT contract (in the policy engine) and the rhai rules.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::validate::{Errors, Input, Need};

/// Largest limit value accepted anywhere.
pub const MAX_LIMIT: u64 = 1_000_000_000;

/// Requests allowed per window. On a key an absent window means "the tenant's default"; after
/// the defaults are applied (and in a rule's output) it means "not limited".
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Limits {
    pub per_second: Option<u64>,
    pub per_minute: Option<u64>,
    pub per_hour: Option<u64>,
    pub per_day: Option<u64>,
    /// Requests allowed in one burst window above the per-second rate.
    pub burst: Option<u64>,
}

impl Limits {
    /// These limits with `defaults` filling the gaps.
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

impl Limits {
    /// Reads `{per_second, ..., burst}`, each a positive integer or null.
    pub fn parse(input: Input<'_>, e: &mut Errors) -> Limits {
        input.known(&WINDOWS, e);
        let [per_second, per_minute, per_hour, per_day, burst] = WINDOWS.map(|w| window(&input, w, e));
        Limits { per_second, per_minute, per_hour, per_day, burst }
    }
}

/// The windows' names, as configuration, the API and rules spell them.
pub const WINDOWS: [&str; 5] = ["per_second", "per_minute", "per_hour", "per_day", "burst"];

fn window(input: &Input<'_>, name: &str, e: &mut Errors) -> Option<u64> {
    let max = i64::try_from(MAX_LIMIT).unwrap_or(i64::MAX);
    input.int(name, Need::Optional, 1, max, e).and_then(|n| u64::try_from(n).ok())
}
