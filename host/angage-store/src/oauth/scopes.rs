//! OAuth scopes onto the module grants: `customers:read` is read access to customers,
//! `customers:write` read and write, for each of the seven modules.

use angage_core::key::{Access, Grants, MODULES};

/// `<module>:read` or `<module>:write`.
pub fn parse(scope: &str) -> Option<(&'static str, Access)> {
    let (module, access) = scope.split_once(':')?;
    let module = MODULES.iter().find(|m| **m == module)?;
    let access = match access {
        "read" => Access::Read,
        "write" => Access::ReadWrite,
        _ => return None,
    };
    Some((module, access))
}

/// The grants `scopes` give (unknown scopes give nothing; callers parse first).
pub fn to_grants<S: AsRef<str>>(scopes: &[S]) -> Grants {
    let mut grants: Grants = MODULES.iter().map(|m| ((*m).to_owned(), Access::None)).collect();
    for (module, access) in scopes.iter().filter_map(|s| parse(s.as_ref())) {
        let slot = grants.entry(module.to_owned()).or_insert(Access::None);
        *slot = (*slot).max(access);
    }
    grants
}

/// The scopes that give exactly `grants`, in module order.
pub fn of_grants(grants: &Grants) -> Vec<String> {
    let mut out = Vec::new();
    for m in MODULES {
        match grants.get(*m).copied().unwrap_or(Access::None) {
            Access::None => {}
            Access::Read => out.push(format!("{m}:read")),
            Access::ReadWrite => {
                out.push(format!("{m}:read"));
                out.push(format!("{m}:write"));
            }
        }
    }
    out
}

/// Whether `wanted` asks for nothing beyond `allowed`.
pub fn within(wanted: &Grants, allowed: &Grants) -> bool {
    wanted.iter().all(|(m, a)| *a <= allowed.get(m).copied().unwrap_or(Access::None))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_map_onto_grants_and_back() {
        let g = to_grants(&["customers:read", "orders:write", "orders:read"]);
        assert_eq!(g["customers"], Access::Read);
        assert_eq!(g["orders"], Access::ReadWrite);
        assert_eq!(g["products"], Access::None);
        assert_eq!(of_grants(&g), ["customers:read", "orders:read", "orders:write"]);
        assert!(within(&to_grants(&["orders:read"]), &g));
        assert!(!within(&to_grants(&["customers:write"]), &g));
        assert_eq!(parse("customers:admin"), None);
        assert_eq!(parse("nothing:read"), None);
    }
}
