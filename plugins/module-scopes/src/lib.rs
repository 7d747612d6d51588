//! Built-in authorizer: the route decides the module, the method the access needed, and the
//! key's grants must cover it. Refusals are 403 `insufficient_scope` naming both.
//!
//! A request that passes costs three questions to the host (the module, the operation and the
//! key's access to that module); the method and route are read only to word a refusal.

use angage_plugin_sdk::{Access, Authorizer, Denial, Key, Operation, PluginInfo, Request};

pub struct ModuleScopes;

fn name(access: Access) -> &'static str {
    match access {
        Access::None => "no",
        Access::Read => "read",
        Access::ReadWrite => "read_write",
    }
}

impl Authorizer for ModuleScopes {
    fn info() -> PluginInfo {
        PluginInfo { name: "module-scopes".into(), version: env!("CARGO_PKG_VERSION").into() }
    }

    fn authorize(key: &Key, request: &Request) -> Result<(), Denial> {
        let module = request.module();
        let write = request.operation() == Operation::Write;
        let granted = key.access(&module);
        let ok = match granted {
            Access::ReadWrite => true,
            Access::Read => !write,
            Access::None => false,
        };
        if ok {
            return Ok(());
        }
        let needed = if write { "read_write" } else { "read" };
        Err(Denial {
            status: 403,
            code: "insufficient_scope".into(),
            detail: format!(
                "This key has {} access to {module}; {} {} needs {needed} access to {module}",
                name(granted),
                request.method(),
                request.route()
            ),
        })
    }
}

angage_plugin_sdk::export_authorizer!(ModuleScopes);

#[cfg(test)]
mod tests {
    use angage_plugin_sdk::mock::{MockKey, MockRequest};

    use super::*;

    #[test]
    fn grants_decide_by_module_and_method() {
        let key = MockKey::new("k")
            .with_grants(&[("orders", Access::Read), ("customers", Access::ReadWrite)])
            .build();
        let table = [
            ("GET", "/v1/orders", true),
            ("GET", "/v1/orders/{id}", true),
            ("POST", "/v1/orders", false),
            ("PUT", "/v1/orders/{id}", false),
            ("DELETE", "/v1/customers/{id}", true),
            ("GET", "/v1/invoices", false),
        ];
        for (method, route, allowed) in table {
            let result = ModuleScopes::authorize(&key, &MockRequest::new(method, route).build());
            assert_eq!(result.is_ok(), allowed, "{method} {route}");
        }
        let denial = ModuleScopes::authorize(&key, &MockRequest::new("POST", "/v1/orders").build())
            .expect_err("refused");
        assert_eq!(denial.code, "insufficient_scope");
        assert_eq!(
            denial.detail,
            "This key has read access to orders; POST /v1/orders needs read_write access to orders"
        );
    }
}
