//! An example third-party plugin: an authorizer that keeps test keys read-only and otherwise
//! applies the key's module grants like the built-in `module-scopes`.
//!
//! Build it with `cargo build --target wasm32-unknown-unknown --release` and copy the `.wasm`
//! into the plugin directory as `module-scopes.wasm` to replace the built-in authorizer.

use angage_plugin_sdk::{
    Access, Authorizer, Denial, Level, Operation, PluginInfo, Principal, RequestInfo, host,
};

pub struct DenyTestWrites;

impl Authorizer for DenyTestWrites {
    fn info() -> PluginInfo {
        PluginInfo { name: "deny-test-writes".into(), version: env!("CARGO_PKG_VERSION").into() }
    }

    fn authorize(principal: Principal, request: RequestInfo) -> Result<(), Denial> {
        let write = request.operation == Operation::Write;
        if principal.environment == "test" && write {
            host::log(Level::Info, &format!("refused a write by test key {}", principal.key_id));
            host::metric_increment("test_writes_refused", 1);
            return Err(Denial {
                status: 403,
                code: "insufficient_scope".into(),
                detail: "Test keys are read-only on this server".into(),
            });
        }
        let granted =
            principal.grants.iter().find(|g| g.module == request.module).map_or(Access::None, |g| g.access);
        match (granted, write) {
            (Access::ReadWrite, _) | (Access::Read, false) => Ok(()),
            _ => Err(Denial {
                status: 403,
                code: "insufficient_scope".into(),
                detail: format!(
                    "This key may not {} {}",
                    if write { "change" } else { "read" },
                    request.module
                ),
            }),
        }
    }
}

angage_plugin_sdk::export_authorizer!(DenyTestWrites);

#[cfg(test)]
mod tests {
    use angage_plugin_sdk::mock::MockHost;
    use angage_plugin_sdk::{Grant, Limits};

    use super::*;

    #[test]
    fn test_keys_cannot_write() {
        let host = MockHost::new();
        host.install();
        let principal = Principal {
            key_id: "key_t".into(),
            tenant_id: "t".into(),
            tenant: "demo".into(),
            environment: "test".into(),
            app_name: "a".into(),
            grants: vec![Grant { module: "orders".into(), access: Access::ReadWrite }],
            limits: Limits {
                per_second: None,
                per_minute: None,
                per_hour: None,
                per_day: None,
                burst: None,
                burst_window_seconds: 5,
            },
        };
        let request = RequestInfo {
            method: "POST".into(),
            route: "/v1/orders".into(),
            path: "/v1/orders".into(),
            module: "orders".into(),
            operation: Operation::Write,
            headers: vec![],
            client_ip: "127.0.0.1".into(),
            scheme: "http".into(),
            time_ms: 0,
        };
        assert_eq!(
            DenyTestWrites::authorize(principal.clone(), request.clone()).expect_err("denied").code,
            "insufficient_scope"
        );
        assert_eq!(host.metric("test_writes_refused"), 1);
        let read = RequestInfo { method: "GET".into(), operation: Operation::Read, ..request };
        assert!(DenyTestWrites::authorize(principal, read).is_ok());
    }
}
