//! Test fixture: a careless vendor authenticator. It hands back whatever key the host finds for
//! the credential and checks nothing (not revocation, not expiry), so a test can show the host
//! holds the line by itself.

use angage_plugin_sdk::{Authenticator, Denial, Key, PluginInfo, Request, host};

pub struct AcceptAnyKey;

impl Authenticator for AcceptAnyKey {
    fn info() -> PluginInfo {
        PluginInfo { name: "accept-any-key".into(), version: env!("CARGO_PKG_VERSION").into() }
    }

    fn authenticate(request: &Request) -> Result<Key, Denial> {
        let presented = request
            .header("authorization")
            .and_then(|a| a.strip_prefix("Bearer ").map(str::to_owned))
            .or_else(|| request.header("x-api-key"))
            .unwrap_or_default();
        host::lookup_key(&presented).ok_or_else(|| Denial {
            status: 401,
            code: "invalid_api_key".into(),
            detail: "No such key".into(),
        })
    }
}

angage_plugin_sdk::export_authenticator!(AcceptAnyKey);
