//! # Writing Angage policy plugins
//!
//! The Angage host runs four policy stages on every `/v1` request, each a WebAssembly component:
//!
//! | stage | trait | export macro | what it decides |
//! | --- | --- | --- | --- |
//! | authenticate | [`Authenticator`] | [`export_authenticator!`] | who is calling (or 401/403) |
//! | authorize | [`Authorizer`] | [`export_authorizer!`] | whether the key may do this (or 403) |
//! | rate-limit | [`RateLimiter`] | [`export_rate_limiter!`] | whether the request fits the limits (or 429) |
//! | enrich-usage | [`UsageEnricher`] | [`export_usage_enricher!`] | what usage event is recorded |
//!
//! A plugin sees a [`Request`] and a [`Key`] that the host lends it for one call, and the
//! functions of [`host`]: key lookup by presented secret, atomic counters, the clock, logging,
//! metrics and its own configuration. It has no files, sockets or database. Each getter of
//! [`Request`] and [`Key`] asks the host for one field, so a plugin pays only for what it reads:
//! read a field once and keep the value rather than asking again.
//!
//! ## Write one
//!
//! ```toml
//! # Cargo.toml
//! [package]
//! name = "deny-test-writes"
//! version = "0.1.0"
//! edition = "2024"
//!
//! [lib]
//! crate-type = ["cdylib", "rlib"]
//!
//! [dependencies]
//! angage-plugin-sdk = "2"
//! ```
//!
//! ```
//! // src/lib.rs: an authorizer that keeps test keys read-only.
//! use angage_plugin_sdk::{Authorizer, Denial, Environment, Key, Operation, PluginInfo, Request};
//!
//! pub struct DenyTestWrites;
//!
//! impl Authorizer for DenyTestWrites {
//!     fn info() -> PluginInfo {
//!         PluginInfo { name: "deny-test-writes".into(), version: env!("CARGO_PKG_VERSION").into() }
//!     }
//!
//!     fn authorize(key: &Key, request: &Request) -> Result<(), Denial> {
//!         if key.state().environment == Environment::Test && request.operation() == Operation::Write {
//!             return Err(Denial { status: 403, code: "insufficient_scope".into(), detail: "test keys are read-only".into() });
//!         }
//!         Ok(())
//!     }
//! }
//!
//! angage_plugin_sdk::export_authorizer!(DenyTestWrites);
//! ```
//!
//! ## Build it
//!
//! ```sh
//! cargo build --target wasm32-unknown-unknown --release
//! ```
//!
//! The result, `target/wasm32-unknown-unknown/release/deny_test_writes.wasm`, is a core module
//! carrying its WIT world; the host turns it into a component when it loads it.
//!
//! ## Test it natively
//!
//! Plugin logic runs in ordinary `cargo test` against a [`mock::MockHost`]: install one with the
//! keys, counters, clock and configuration the test needs, build requests and keys with
//! [`mock::MockRequest`] and [`mock::MockKey`], then call your trait methods.
//!
//! ```
//! use angage_plugin_sdk::mock::{MockHost, MockKey, MockRequest};
//! use angage_plugin_sdk::{Access, Operation, host};
//!
//! let host = MockHost::new().with_time_ms(1_000).with_key("ak_test_...", MockKey::new("key_1"));
//! host.install();
//! assert_eq!(host::now_ms(), 1_000);
//! let key = host::lookup_key("ak_test_...").expect("known");
//! assert_eq!(key.id(), "key_1");
//! assert_eq!(key.access("orders"), Access::ReadWrite);
//! let request = MockRequest::new("POST", "/v1/orders").with_header("user-agent", "curl/8").build();
//! assert_eq!((request.module(), request.operation()), ("orders".to_owned(), Operation::Write));
//! ```
//!
//! ## Install it
//!
//! Copy the `.wasm` file into the host's plugin directory (`plugins.dir`, default `plugins.d/`)
//! under the name of the plugin the stage is configured to use, e.g. `module-scopes.wasm` to
//! replace the built-in authorizer, or name a new plugin in `[plugins.stages]`. The host compiles
//! and checks it off the request path and swaps it in without a restart; requests in flight
//! finish on the old version. A file that fails to load leaves the previous version serving and
//! the error visible in `GET /admin/v1/plugins`. Write the file elsewhere and rename it into place
//! so the host never reads half a file. Configuration for a plugin goes in
//! `[plugins.config.<name>]` and reaches it as JSON through [`host::config`].
//!
//! ## Rules of the road
//!
//! - A stage call has a deadline (a few milliseconds) and a memory cap; a plugin that exceeds
//!   them, or traps, is stopped. For authenticate and authorize the request then fails closed
//!   with 503 `policy_unavailable`.
//! - Instances are reused between requests: keep no per-request state in globals.
//! - The contract is versioned (`angage:policy@2.0.0`); the host refuses a plugin built against
//!   another major version and says which.
//! - A [`Request`] or borrowed [`Key`] is valid only during the call it was passed to: keep no
//!   handle after returning.

#![deny(missing_docs)]

// Lets the generated code name this crate the same way from inside and from plugin crates.
extern crate self as angage_plugin_sdk;

pub mod cidr;
pub mod forwarded;
mod handles;
pub mod keyfmt;
pub mod mock;

pub use handles::{Key, Request};

/// The generated bindings of the contract's types and host functions.
#[doc(hidden)]
#[allow(missing_docs, unsafe_code, clippy::all)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "wit",
        world: "plugin-support",
        runtime_path: "::angage_plugin_sdk::__wit_bindgen::rt",
    });
}

#[doc(hidden)]
pub use wit_bindgen as __wit_bindgen;

pub use bindings::angage::policy::host::{ChargeResult, CounterOp, Level, Refusal};
pub use bindings::angage::policy::types::{
    Access, Denial, Environment, Grant, Header, KeyState, Limits, Operation, PluginInfo, RateDecision, Tag,
    UsageEvent, WindowState,
};

/// The authenticate stage: find the [`Key`] a request's credentials name, or refuse.
pub trait Authenticator {
    /// The plugin's name and version, shown by the host's admin API.
    fn info() -> PluginInfo;
    /// Reads the credential and returns the caller's key (from [`host::lookup_key`]), or a
    /// 401/403 [`Denial`].
    fn authenticate(request: &Request) -> Result<Key, Denial>;
}

/// The authorize stage: may this key do this request?
pub trait Authorizer {
    /// The plugin's name and version.
    fn info() -> PluginInfo;
    /// `Ok(())` to let the request through, or a 403 [`Denial`].
    fn authorize(key: &Key, request: &Request) -> Result<(), Denial>;
}

/// The rate-limit stage: does the request fit the limits? Use [`host::check_and_increment`].
pub trait RateLimiter {
    /// The plugin's name and version.
    fn info() -> PluginInfo;
    /// Charges `cost` units against the windows of `limits` (all or none) and reports every
    /// window's state. `limits` are the key's, or what a tenant rule made of them.
    fn check(key: &Key, request: &Request, cost: u64, limits: Limits) -> RateDecision;
}

/// The enrich-usage stage: what is recorded about a finished exchange.
pub trait UsageEnricher {
    /// The plugin's name and version.
    fn info() -> PluginInfo;
    /// Returns the usage event to record, given the host's draft (endpoint, module, key, status
    /// and its class, error code, latency; no tags). Runs after the response is sent and can
    /// never change it. `key` is the authenticated caller, when there was one.
    fn enrich(request: &Request, key: Option<&Key>, event: UsageEvent) -> UsageEvent;
}

include!(concat!(env!("OUT_DIR"), "/generate.rs"));

/// Exports a type implementing [`Authenticator`] as this crate's plugin.
#[macro_export]
macro_rules! export_authenticator {
    ($plugin:ty) => {
        // Only a wasm32 build exports anything: native builds (unit tests) link no exports.
        #[cfg(target_arch = "wasm32")]
        #[doc(hidden)]
        #[allow(unsafe_code)]
        mod __angage_authenticator {
            use super::*;
            $crate::__angage_generate!(authenticator);
            struct Bridge;
            impl exports::angage::policy::authenticate::Guest for Bridge {
                fn info() -> $crate::PluginInfo {
                    <$plugin as $crate::Authenticator>::info()
                }
                fn authenticate(
                    request: &$crate::bindings::angage::policy::types::Request,
                ) -> ::core::result::Result<$crate::bindings::angage::policy::types::Key, $crate::Denial>
                {
                    <$plugin as $crate::Authenticator>::authenticate($crate::Request::from_host(request))
                        .map($crate::Key::into_host)
                }
            }
            export!(Bridge);
        }
    };
}

/// Exports a type implementing [`Authorizer`] as this crate's plugin.
#[macro_export]
macro_rules! export_authorizer {
    ($plugin:ty) => {
        // Only a wasm32 build exports anything: native builds (unit tests) link no exports.
        #[cfg(target_arch = "wasm32")]
        #[doc(hidden)]
        #[allow(unsafe_code)]
        mod __angage_authorizer {
            use super::*;
            $crate::__angage_generate!(authorizer);
            struct Bridge;
            impl exports::angage::policy::authorize::Guest for Bridge {
                fn info() -> $crate::PluginInfo {
                    <$plugin as $crate::Authorizer>::info()
                }
                fn authorize(
                    key: &$crate::bindings::angage::policy::types::Key,
                    request: &$crate::bindings::angage::policy::types::Request,
                ) -> ::core::result::Result<(), $crate::Denial> {
                    <$plugin as $crate::Authorizer>::authorize(
                        $crate::Key::from_host(key),
                        $crate::Request::from_host(request),
                    )
                }
            }
            export!(Bridge);
        }
    };
}

/// Exports a type implementing [`RateLimiter`] as this crate's plugin.
#[macro_export]
macro_rules! export_rate_limiter {
    ($plugin:ty) => {
        // Only a wasm32 build exports anything: native builds (unit tests) link no exports.
        #[cfg(target_arch = "wasm32")]
        #[doc(hidden)]
        #[allow(unsafe_code)]
        mod __angage_rate_limiter {
            use super::*;
            $crate::__angage_generate!(rate - limiter);
            struct Bridge;
            impl exports::angage::policy::rate_limit::Guest for Bridge {
                fn info() -> $crate::PluginInfo {
                    <$plugin as $crate::RateLimiter>::info()
                }
                fn check(
                    key: &$crate::bindings::angage::policy::types::Key,
                    request: &$crate::bindings::angage::policy::types::Request,
                    cost: u64,
                    limits: $crate::Limits,
                ) -> $crate::RateDecision {
                    <$plugin as $crate::RateLimiter>::check(
                        $crate::Key::from_host(key),
                        $crate::Request::from_host(request),
                        cost,
                        limits,
                    )
                }
            }
            export!(Bridge);
        }
    };
}

/// Exports a type implementing [`UsageEnricher`] as this crate's plugin.
#[macro_export]
macro_rules! export_usage_enricher {
    ($plugin:ty) => {
        // Only a wasm32 build exports anything: native builds (unit tests) link no exports.
        #[cfg(target_arch = "wasm32")]
        #[doc(hidden)]
        #[allow(unsafe_code)]
        mod __angage_usage_enricher {
            use super::*;
            $crate::__angage_generate!(usage - enricher);
            struct Bridge;
            impl exports::angage::policy::enrich_usage::Guest for Bridge {
                fn info() -> $crate::PluginInfo {
                    <$plugin as $crate::UsageEnricher>::info()
                }
                fn enrich(
                    request: &$crate::bindings::angage::policy::types::Request,
                    key: ::core::option::Option<&$crate::bindings::angage::policy::types::Key>,
                    event: $crate::UsageEvent,
                ) -> $crate::UsageEvent {
                    <$plugin as $crate::UsageEnricher>::enrich(
                        $crate::Request::from_host(request),
                        key.map($crate::Key::from_host),
                        event,
                    )
                }
            }
            export!(Bridge);
        }
    };
}

/// The host's functions. In a `wasm32` build they call the host; in a native build (your unit
/// tests) they call the [`mock::MockHost`] installed on the current thread.
pub mod host {
    use super::{ChargeResult, CounterOp, Key, Level};

    #[cfg(target_arch = "wasm32")]
    use super::bindings::angage::policy::host as imp;

    #[cfg(not(target_arch = "wasm32"))]
    use super::mock::native as imp;

    /// Looks up a presented API key; the host hashes it. `None` when no such key was issued.
    pub fn lookup_key(presented: &str) -> Option<Key> {
        imp::lookup_key(presented).map(Key::from_owned)
    }

    /// Charges every counter or none: see the WIT documentation of `check-and-increment`.
    pub fn check_and_increment(ops: &[CounterOp]) -> ChargeResult {
        imp::check_and_increment(ops)
    }

    /// Counters' values in the order asked (0 for an absent one), in one call to the host.
    pub fn get_counters(keys: &[String]) -> Vec<u64> {
        imp::get_counters(keys)
    }

    /// A counter's value (0 when absent). Prefer [`get_counters`] for several.
    pub fn get_counter(key: &str) -> u64 {
        get_counters(&[key.to_owned()]).first().copied().unwrap_or(0)
    }

    /// Milliseconds since the Unix epoch, from the host's clock.
    pub fn now_ms() -> i64 {
        imp::now_ms()
    }

    /// Writes to the host's log, tagged with the plugin's name.
    pub fn log(level: Level, message: &str) {
        imp::log(level, message)
    }

    /// Adds `value` to the host metric `angage_plugin_<name>_total`.
    pub fn metric_increment(name: &str, value: u64) {
        imp::metric_increment(name, value)
    }

    /// This plugin's configuration as JSON (`{}` when none).
    pub fn config() -> String {
        imp::config()
    }
}
