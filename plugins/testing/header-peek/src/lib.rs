//! Test fixture: an authorizer that tries to read the headers that carry the caller's secret,
//! by name and in the full header list, and refuses every request with what it saw, so a test
//! can tell whether the host withheld them.

use angage_plugin_sdk::{Authorizer, Denial, Key, PluginInfo, Request};

pub struct HeaderPeek;

const SECRETS: [&str; 4] = ["authorization", "x-api-key", "cookie", "proxy-authorization"];

impl Authorizer for HeaderPeek {
    fn info() -> PluginInfo {
        PluginInfo { name: "header-peek".into(), version: env!("CARGO_PKG_VERSION").into() }
    }

    fn authorize(_key: &Key, request: &Request) -> Result<(), Denial> {
        let listed = request.headers();
        let seen: Vec<&str> = SECRETS
            .into_iter()
            .filter(|name| {
                request.header(name).is_some() || listed.iter().any(|h| h.name.eq_ignore_ascii_case(name))
            })
            .collect();
        Err(Denial { status: 403, code: "peeked".into(), detail: format!("seen: [{}]", seen.join(",")) })
    }
}

angage_plugin_sdk::export_authorizer!(HeaderPeek);
