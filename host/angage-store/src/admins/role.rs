//! What an admin (or one of their tokens) may do: owners manage admins too, admins govern the
//! tenant, viewers only read.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Ordered by power: a viewer < an admin < an owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reads everything, changes nothing.
    Viewer,
    /// Governs keys, limits, rules and settings; mints tokens for themselves.
    Admin,
    /// An admin who also adds, changes, disables and removes admins and resets passwords.
    Owner,
}

impl Role {
    pub const NAMES: [&'static str; 3] = ["owner", "admin", "viewer"];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Admin => "admin",
            Role::Owner => "owner",
        }
    }

    pub fn parse(name: &str) -> Option<Role> {
        match name {
            "viewer" => Some(Role::Viewer),
            "admin" => Some(Role::Admin),
            "owner" => Some(Role::Owner),
            _ => None,
        }
    }

    /// A role read from the store, where a CHECK allows only the three names.
    pub(crate) fn stored(name: &str) -> Role {
        Role::parse(name).unwrap_or(Role::Viewer)
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::Role;

    #[test]
    fn roles_are_ordered_by_power_and_round_trip() {
        assert!(Role::Viewer < Role::Admin && Role::Admin < Role::Owner);
        for name in Role::NAMES {
            assert_eq!(Role::parse(name).map(Role::as_str), Some(name));
        }
        assert_eq!(Role::parse("root"), None);
        assert_eq!(Role::stored("garbage"), Role::Viewer, "an unreadable role grants least");
    }
}
