//! Built-in authorizer: the route decides the module, the method the access needed, and the
//! key's grants must cover it. Refusals are 403 `insufficient_scope` naming both.

use angage_plugin_sdk::{Access, Authorizer, Denial, PluginInfo, Principal, RequestInfo};

pub struct ModuleScopes;

/// `/v1/customers/{id}` belongs to `customers`; anything else falls back to the host's guess.
pub fn module_of(route: &str) -> Option<&str> {
    route.strip_prefix("/v1/")?.split('/').next().filter(|m| !m.is_empty())
}

fn needs_write(method: &str) -> bool {
    !matches!(method, "GET" | "HEAD" | "OPTIONS")
}

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

    fn authorize(principal: Principal, request: RequestInfo) -> Result<(), Denial> {
        let module = module_of(&request.route).unwrap_or(&request.module);
        let granted = principal.grants.iter().find(|g| g.module == module).map_or(Access::None, |g| g.access);
        let write = needs_write(&request.method);
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
                request.method,
                request.route
            ),
        })
    }
}

angage_plugin_sdk::export_authorizer!(ModuleScopes);

#[cfg(test)]
mod tests {
    use angage_plugin_sdk::{Grant, Limits, Operation};

    use super::*;

    fn principal(grants: &[(&str, Access)]) -> Principal {
        Principal {
            key_id: "k".into(),
            tenant_id: "t".into(),
            tenant: "demo".into(),
            environment: "live".into(),
            app_name: "a".into(),
            grants: grants.iter().map(|(m, a)| Grant { module: (*m).into(), access: *a }).collect(),
            limits: Limits {
                per_second: None,
                per_minute: None,
                per_hour: None,
                per_day: None,
                burst: None,
                burst_window_seconds: 5,
            },
        }
    }

    fn request(method: &str, route: &str) -> RequestInfo {
        RequestInfo {
            method: method.into(),
            route: route.into(),
            path: route.into(),
            module: "other".into(),
            operation: Operation::Read,
            headers: vec![],
            client_ip: "127.0.0.1".into(),
            scheme: "http".into(),
            time_ms: 0,
        }
    }

    #[test]
    fn grants_decide_by_module_and_method() {
        let p = principal(&[("orders", Access::Read), ("customers", Access::ReadWrite)]);
        let table = [
            ("GET", "/v1/orders", true),
            ("GET", "/v1/orders/{id}", true),
            ("POST", "/v1/orders", false),
            ("PUT", "/v1/orders/{id}", false),
            ("DELETE", "/v1/customers/{id}", true),
            ("GET", "/v1/invoices", false),
        ];
        for (method, route, allowed) in table {
            let result = ModuleScopes::authorize(p.clone(), request(method, route));
            assert_eq!(result.is_ok(), allowed, "{method} {route}");
        }
        let denial = ModuleScopes::authorize(p, request("POST", "/v1/orders")).expect_err("refused");
        assert_eq!(denial.code, "insufficient_scope");
        assert_eq!(
            denial.detail,
            "This key has read access to orders; POST /v1/orders needs read_write access to orders"
        );
    }
}
