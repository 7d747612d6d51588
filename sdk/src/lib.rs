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
//! A plugin sees only the records of the contract ([`RequestInfo`], [`Principal`], ...) and the
//! functions of [`host`]: key lookup by presented secret, atomic counters, the clock, logging,
//! metrics and its own configuration. It has no files, sockets or database.
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
//! angage-plugin-sdk = "1"
//! ```
//!
//! ```
//! // src/lib.rs: an authorizer that keeps test keys read-only.
//! use angage_plugin_sdk::{Authorizer, Denial, Operation, PluginInfo, Principal, RequestInfo};
//!
//! pub struct DenyTestWrites;
//!
//! impl Authorizer for DenyTestWrites {
//!     fn info() -> PluginInfo {
//!         PluginInfo { name: "deny-test-writes".into(), version: env!("CARGO_PKG_VERSION").into() }
//!     }
//!
//!     fn authorize(principal: Principal, request: RequestInfo) -> Result<(), Denial> {
//!         if principal.environment == "test" && request.operation == Operation::Write {
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
//! keys, counters, clock and configuration the test needs, then call your trait methods.
//!
//! ```
//! use angage_plugin_sdk::mock::MockHost;
//!
//! let host = MockHost::new().with_time_ms(1_000).with_config(r#"{"trusted_proxies":[]}"#);
//! host.install();
//! assert_eq!(angage_plugin_sdk::host::now_ms(), 1_000);
//! assert_eq!(angage_plugin_sdk::host::config(), r#"{"trusted_proxies":[]}"#);
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
//! - The contract is versioned (`angage:policy@1.0.0`); the host refuses a plugin built against
//!   another major version and says which.

#![deny(missing_docs)]

// Lets the generated code name this crate the same way from inside and from plugin crates.
extern crate self as angage_plugin_sdk;

pub mod cidr;
pub mod keyfmt;
pub mod mock;

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

pub use bindings::angage::policy::host::{ChargeResult, CounterOp, KeyRecord, Level, Refusal};
pub use bindings::angage::policy::types::{
    Access, Denial, Exchange, Grant, Header, Limits, Operation, PluginInfo, Principal, RateDecision,
    RateRequest, RequestInfo, Tag, UsageEvent, WindowState,
};

/// The contract version this SDK builds plugins against.
pub const CONTRACT_VERSION: &str = "1.0.0";

/// The authenticate stage: turn a request's credentials into a [`Principal`], or refuse.
pub trait Authenticator {
    /// The plugin's name and version, shown by the host's admin API.
    fn info() -> PluginInfo;
    /// Reads the credential and returns who is calling, or a 401/403 [`Denial`].
    fn authenticate(request: RequestInfo) -> Result<Principal, Denial>;
}

/// The authorize stage: may this principal do this request?
pub trait Authorizer {
    /// The plugin's name and version.
    fn info() -> PluginInfo;
    /// `Ok(())` to let the request through, or a 403 [`Denial`].
    fn authorize(principal: Principal, request: RequestInfo) -> Result<(), Denial>;
}

/// The rate-limit stage: does the request fit the limits? Use [`host::check_and_increment`].
pub trait RateLimiter {
    /// The plugin's name and version.
    fn info() -> PluginInfo;
    /// Charges the request against its windows (all or none) and reports every window's state.
    fn check(request: RateRequest) -> RateDecision;
}

/// The enrich-usage stage: what is recorded about a finished exchange.
pub trait UsageEnricher {
    /// The plugin's name and version.
    fn info() -> PluginInfo;
    /// Builds the usage event; runs after the response is sent and can never change it.
    fn enrich(exchange: Exchange) -> UsageEvent;
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
                    request: $crate::RequestInfo,
                ) -> ::core::result::Result<$crate::Principal, $crate::Denial> {
                    <$plugin as $crate::Authenticator>::authenticate(request)
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
                    principal: $crate::Principal,
                    request: $crate::RequestInfo,
                ) -> ::core::result::Result<(), $crate::Denial> {
                    <$plugin as $crate::Authorizer>::authorize(principal, request)
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
                fn check(request: $crate::RateRequest) -> $crate::RateDecision {
                    <$plugin as $crate::RateLimiter>::check(request)
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
                fn enrich(exchange: $crate::Exchange) -> $crate::UsageEvent {
                    <$plugin as $crate::UsageEnricher>::enrich(exchange)
                }
            }
            export!(Bridge);
        }
    };
}

/// The host's functions. In a `wasm32` build they call the host; in a native build (your unit
/// tests) they call the [`mock::MockHost`] installed on the current thread.
pub mod host {
    use super::{ChargeResult, CounterOp, KeyRecord, Level};

    #[cfg(target_arch = "wasm32")]
    use super::bindings::angage::policy::host as imp;

    #[cfg(not(target_arch = "wasm32"))]
    use super::mock::native as imp;

    /// Looks up a presented API key; the host hashes it. `None` when no such key was issued.
    pub fn lookup_key(presented: &str) -> Option<KeyRecord> {
        imp::lookup_key(presented)
    }

    /// Charges every counter or none: see the WIT documentation of `check-and-increment`.
    pub fn check_and_increment(ops: &[CounterOp]) -> ChargeResult {
        imp::check_and_increment(ops)
    }

    /// A counter's value (0 when absent).
    pub fn get_counter(key: &str) -> u64 {
        imp::get_counter(key)
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

/// Looks up a header (names are lowercase) of a request.
pub fn header<'a>(request: &'a RequestInfo, name: &str) -> Option<&'a str> {
    request.headers.iter().find(|h| h.name.eq_ignore_ascii_case(name)).map(|h| h.value.as_str())
}
