//! An example third-party plugin: an authorizer that keeps test keys read-only and otherwise
//! applies the key's module grants like the built-in `module-scopes`.
//!
//! Build it with `cargo build --target wasm32-unknown-unknown --release` and copy the `.wasm`
//! into the plugin directory as `module-scopes.wasm` to replace the built-in authorizer.

use angage_plugin_sdk::{
    Access, Authorizer, Denial, Environment, Key, Level, Operation, PluginInfo, Request, host,
};

pub struct DenyTestWrites;

impl Authorizer for DenyTestWrites {
    fn info() -> PluginInfo {
        PluginInfo { name: "deny-test-writes".into(), version: env!("CARGO_PKG_VERSION").into() }
    }

    fn authorize(key: &Key, request: &Request) -> Result<(), Denial> {
        let write = request.operation() == Operation::Write;
        if write && key.state().environment == Environment::Test {
            host::log(Level::Info, &format!("refused a write by test key {}", key.id()));
            host::metric_increment("test_writes_refused", 1);
            return Err(Denial {
                status: 403,
                code: "insufficient_scope".into(),
                detail: "Test keys are read-only on this server".into(),
            });
        }
        let module = request.module();
        match (key.access(&module), write) {
            (Access::ReadWrite, _) | (Access::Read, false) => Ok(()),
            _ => Err(Denial {
                status: 403,
                code: "insufficient_scope".into(),
                detail: format!("This key may not {} {module}", if write { "change" } else { "read" }),
            }),
        }
    }
}

angage_plugin_sdk::export_authorizer!(DenyTestWrites);

#[cfg(test)]
mod tests {
    use angage_plugin_sdk::mock::{MockHost, MockKey, MockRequest};

    use super::*;

    #[test]
    fn test_keys_cannot_write() {
        let host = MockHost::new();
        host.install();
        let key =
            MockKey::new("key_t").test_environment().with_grants(&[("orders", Access::ReadWrite)]).build();
        let write = MockRequest::new("POST", "/v1/orders").build();
        assert_eq!(DenyTestWrites::authorize(&key, &write).expect_err("denied").code, "insufficient_scope");
        assert_eq!(host.metric("test_writes_refused"), 1);
        assert!(DenyTestWrites::authorize(&key, &MockRequest::new("GET", "/v1/orders").build()).is_ok());
    }
}
