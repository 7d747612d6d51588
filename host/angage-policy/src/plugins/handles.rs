//! The request and key the host lends plugins as WIT resources, as host values. A stage call
//! puts them in its store (`Lent`) for the length of the call and hands the plugin borrowed
//! handles with fixed numbers; keys a plugin owns (from `lookup-key`) live in the store's
//! resource table. The bottom layer of the runtime: it imports nothing of its siblings.

use std::sync::Arc;

use angage_core::key::KeyRecord;
use angage_core::policy::PolicyRequest;
use angage_core::settings::TenantSettings;

/// The WIT `request` resource. A request is only ever lent, never owned by a plugin: the handle
/// names `Lent::request`. (`pub`: the generated bindings re-export it.)
#[allow(unreachable_pub)]
pub struct RequestRef;

/// The WIT `key` resource: a key the store issued, with its tenant's settings (a plugin reads
/// the key's effective limits and the HTTPS requirement through it).
#[derive(Clone)]
#[allow(unreachable_pub)]
pub struct KeyRef {
    pub(crate) key: Arc<KeyRecord>,
    pub(crate) settings: Arc<TenantSettings>,
}

/// A credential the host resolved before the stages ran: `lookup-key` for the same string
/// during this request answers with the key without hashing it again.
pub(crate) struct Prefetched {
    pub(crate) presented: String,
    pub(crate) key: KeyRef,
}

/// What one stage call lends its plugin. Borrowed handles carry these fixed numbers instead of a
/// resource-table entry: lending costs no allocation, and the component model already stops a
/// plugin from keeping a borrowed handle past the call.
#[derive(Default)]
pub(crate) struct Lent {
    pub(crate) request: Option<Arc<PolicyRequest>>,
    pub(crate) prefetched: Option<Arc<Prefetched>>,
    pub(crate) key: Option<KeyRef>,
}

/// The handle number of the lent request.
pub(crate) const LENT_REQUEST: u32 = u32::MAX;
/// The handle number of the lent key; the resource table never grows this far.
pub(crate) const LENT_KEY: u32 = u32::MAX - 1;
