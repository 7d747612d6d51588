//! [`Request`] and [`Key`]: the host's resources in a `wasm32` build, the mock's in a native one,
//! behind one API so plugin code and its unit tests are the same code.

use crate::{Access, Grant, Header, KeyState, Operation};

#[cfg(target_arch = "wasm32")]
use crate::bindings::angage::policy::types as imp;

#[cfg(not(target_arch = "wasm32"))]
use crate::mock::native as imp;

/// The request being handled, lent by the host for one call. Every getter asks the host (a
/// string crosses into the plugin each time): read a field once and keep it.
#[repr(transparent)]
pub struct Request(imp::Request);

/// An API key the host's store issued (no secret, no digest). [`host::lookup_key`](crate::host::lookup_key)
/// hands one out; an authenticator returns it; the later stages borrow it as the caller.
#[repr(transparent)]
pub struct Key(imp::Key);

impl Request {
    /// Wraps the host's handle (used by the export macros).
    #[doc(hidden)]
    pub fn from_host(inner: &imp::Request) -> &Self {
        // SAFETY: `Request` is `repr(transparent)` over `imp::Request`, so the layouts match
        // and the reference keeps the borrowed lifetime.
        #[allow(unsafe_code)]
        unsafe {
            &*(inner as *const imp::Request).cast::<Self>()
        }
    }

    /// Wraps a handle this crate built (the mock's requests).
    #[cfg(not(target_arch = "wasm32"))]
    pub(crate) fn from_owned(inner: imp::Request) -> Self {
        Self(inner)
    }

    /// `GET`, `POST`, ...
    pub fn method(&self) -> String {
        self.0.method()
    }

    /// The matched route template, e.g. `/v1/customers/{id}`.
    pub fn route(&self) -> String {
        self.0.route()
    }

    /// The request path, e.g. `/v1/customers/CUST-10001`.
    pub fn path(&self) -> String {
        self.0.path()
    }

    /// The host's module for the route (`customers`, `orders`, ...).
    pub fn module(&self) -> String {
        self.0.module()
    }

    /// Read (GET, HEAD, OPTIONS) or write (anything else).
    pub fn operation(&self) -> Operation {
        self.0.operation()
    }

    /// The first value of a header, its name matched without regard to case.
    pub fn header(&self, name: &str) -> Option<String> {
        self.0.header(name)
    }

    /// Every header, in the order received (names lowercase).
    pub fn headers(&self) -> Vec<Header> {
        self.0.headers()
    }

    /// The address of the TCP peer (a proxy, when there is one).
    pub fn client_ip(&self) -> String {
        self.0.client_ip()
    }

    /// `http` or `https` as the host's listener saw the connection.
    pub fn scheme(&self) -> String {
        self.0.scheme()
    }

    /// When the host received the request, in milliseconds since the Unix epoch.
    pub fn time_ms(&self) -> i64 {
        self.0.time_ms()
    }
}

impl Key {
    /// Wraps the host's borrowed handle (used by the export macros).
    #[doc(hidden)]
    pub fn from_host(inner: &imp::Key) -> &Self {
        // SAFETY: `Key` is `repr(transparent)` over `imp::Key`, so the layouts match and the
        // reference keeps the borrowed lifetime.
        #[allow(unsafe_code)]
        unsafe {
            &*(inner as *const imp::Key).cast::<Self>()
        }
    }

    pub(crate) fn from_owned(inner: imp::Key) -> Self {
        Self(inner)
    }

    /// Gives the handle back to the host (used by the export macros).
    #[doc(hidden)]
    pub fn into_host(self) -> imp::Key {
        self.0
    }

    /// The key's id (`key_...`).
    pub fn id(&self) -> String {
        self.0.id()
    }

    /// The id of the tenant that owns the key.
    pub fn tenant_id(&self) -> String {
        self.0.tenant_id()
    }

    /// The tenant's slug.
    pub fn tenant(&self) -> String {
        self.0.tenant()
    }

    /// The key's name, as the admin gave it (the calling application).
    pub fn app_name(&self) -> String {
        self.0.app_name()
    }

    /// Environment, revocation, expiry, HTTPS and IP restrictions and limits, in one call.
    pub fn state(&self) -> KeyState {
        self.0.state()
    }

    /// The key's access to one module ([`Access::None`] without a grant for it).
    pub fn access(&self, module: &str) -> Access {
        self.0.access(module)
    }

    /// Every grant of the key.
    pub fn grants(&self) -> Vec<Grant> {
        self.0.grants()
    }

    /// CIDR blocks the key may be used from; empty when [`KeyState::ip_restricted`] is false.
    pub fn ip_allowlist(&self) -> Vec<String> {
        self.0.ip_allowlist()
    }
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Request").finish_non_exhaustive()
    }
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Key").finish_non_exhaustive()
    }
}
