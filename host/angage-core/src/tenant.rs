//! The tenant a caller acts for.

/// The caller's tenant; every query is scoped by it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TenantId(pub String);
