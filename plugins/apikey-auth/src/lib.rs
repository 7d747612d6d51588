//! Built-in authenticator: API keys from `Authorization: Bearer` or `X-API-Key`.
//!
//! Order of checks: a credential is present; its format and checksum are valid (no host call
//! otherwise); the host knows it; it is not revoked or expired; its environment is accepted
//! here; the client address is on its allowlist; HTTPS when the tenant requires it.
//! `X-Forwarded-For` and `X-Forwarded-Proto` are believed only from `trusted_proxies`.
//!
//! Configuration (`[plugins.config.apikey-auth]`):
//! `trusted_proxies` (CIDR list, default none), `environments` (default `["live", "test"]`).

use std::net::IpAddr;
use std::sync::OnceLock;

use angage_plugin_sdk::cidr::Cidr;
use angage_plugin_sdk::forwarded;
use angage_plugin_sdk::{
    Authenticator, Denial, Environment, Key, KeyState, PluginInfo, Request, host, keyfmt,
};

pub struct ApiKeyAuth;

struct Config {
    trusted_proxies: Vec<Cidr>,
    environments: Vec<Environment>,
}

fn config() -> &'static Config {
    static CONFIG: OnceLock<Config> = OnceLock::new();
    CONFIG.get_or_init(|| {
        let json: serde_json::Value = serde_json::from_str(&host::config()).unwrap_or_default();
        let strings = |key: &str| -> Option<Vec<String>> {
            json.get(key)?
                .as_array()
                .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
        };
        Config {
            trusted_proxies: strings("trusted_proxies")
                .unwrap_or_default()
                .iter()
                .filter_map(|c| Cidr::parse(c).ok())
                .collect(),
            environments: strings("environments")
                .unwrap_or_else(|| vec!["live".into(), "test".into()])
                .iter()
                .filter_map(|e| match e.as_str() {
                    "live" => Some(Environment::Live),
                    "test" => Some(Environment::Test),
                    _ => None,
                })
                .collect(),
        }
    })
}

fn deny(status: u16, code: &str, detail: impl Into<String>) -> Denial {
    Denial { status, code: code.into(), detail: detail.into() }
}

fn environment_name(e: Environment) -> &'static str {
    match e {
        Environment::Live => "live",
        Environment::Test => "test",
    }
}

/// The presented credential, read as the host reads it.
fn credential(request: &Request) -> Option<String> {
    let (auth, api_key) = (request.header("authorization"), request.header("x-api-key"));
    forwarded::credential(auth.as_deref(), api_key.as_deref()).map(str::to_owned)
}

/// The client's address and scheme, believing forwarding headers only from trusted proxies
/// (every `X-Forwarded-*` line; the rightmost untrusted hop is the client).
fn client(request: &Request, cfg: &Config) -> (Option<IpAddr>, String) {
    let peer: Option<IpAddr> = request.client_ip().parse().ok();
    let headers = request.headers();
    let values = |name: &str| -> Vec<&str> {
        headers.iter().filter(|h| h.name.eq_ignore_ascii_case(name)).map(|h| h.value.as_str()).collect()
    };
    let trusted = |ip: &IpAddr| cfg.trusted_proxies.iter().any(|c| c.contains(*ip));
    let (ip, scheme) =
        forwarded::client(peer, &values("x-forwarded-for"), &values("x-forwarded-proto"), trusted);
    (ip, scheme.unwrap_or_else(|| request.scheme()))
}

fn check_key(
    key: &Key,
    state: &KeyState,
    request: &Request,
    cfg: &Config,
    token: bool,
) -> Result<(), Denial> {
    if state.revoked {
        return Err(match token {
            true => deny(401, "revoked_token", "This access token has been revoked"),
            false => deny(401, "revoked_api_key", "This API key has been revoked"),
        });
    }
    if state.expires_at_ms.is_some_and(|t| t <= host::now_ms()) {
        return Err(match token {
            true => deny(401, "expired_token", "This access token has expired; request a new one"),
            false => deny(401, "expired_api_key", "This API key has expired"),
        });
    }
    if !cfg.environments.contains(&state.environment) {
        return Err(deny(
            401,
            "invalid_api_key",
            format!("{} keys are not accepted by this server", environment_name(state.environment)),
        ));
    }
    // The client's address and scheme are read only when the key's settings need them.
    if !state.ip_restricted && !state.require_https {
        return Ok(());
    }
    let (ip, scheme) = client(request, cfg);
    if state.ip_restricted {
        let allowed = ip.is_some_and(|ip| {
            key.ip_allowlist().iter().filter_map(|c| Cidr::parse(c).ok()).any(|c| c.contains(ip))
        });
        if !allowed {
            let shown = ip.map_or_else(|| "unknown".to_owned(), |i| i.to_string());
            return Err(deny(403, "ip_not_allowed", format!("This API key may not be used from {shown}")));
        }
    }
    if state.require_https && scheme != "https" {
        return Err(deny(
            403,
            "https_required",
            "This tenant's \"Require HTTPS only\" setting refuses plain HTTP; send the request over https://",
        ));
    }
    Ok(())
}

impl Authenticator for ApiKeyAuth {
    fn info() -> PluginInfo {
        PluginInfo { name: "apikey-auth".into(), version: env!("CARGO_PKG_VERSION").into() }
    }

    fn authenticate(request: &Request) -> Result<Key, Denial> {
        let Some(presented) = credential(request).filter(|c| !c.is_empty()) else {
            return Err(deny(
                401,
                "missing_credentials",
                "Send an API key as `Authorization: Bearer ak_...` or `X-API-Key: ak_...`",
            ));
        };
        if let Err(e) = keyfmt::check(&presented) {
            return Err(deny(401, "invalid_api_key", format!("Invalid API key: {e}")));
        }
        let Some(key) = host::lookup_key(&presented) else {
            return Err(deny(401, "invalid_api_key", "Invalid API key: no such key"));
        };
        // OAuth access tokens have the keys' shape; the host resolves them to their client.
        check_key(&key, &key.state(), request, config(), keyfmt::is_token(&presented))?;
        Ok(key)
    }
}

angage_plugin_sdk::export_authenticator!(ApiKeyAuth);

#[cfg(test)]
mod tests {
    use angage_plugin_sdk::mock::{MockHost, MockKey, MockRequest};

    use super::*;

    fn key(body_char: char) -> String {
        let head = format!("ak_live_{}", body_char.to_string().repeat(34));
        format!("{head}{}", keyfmt::checksum(&head))
    }

    fn request(headers: &[(&str, &str)]) -> Request {
        headers.iter().fold(MockRequest::new("GET", "/v1/customers"), |r, (n, v)| r.with_header(n, v)).build()
    }

    #[test]
    fn each_refusal_has_its_code() {
        let good = key('a');
        let revoked = key('b');
        let expired = key('c');
        let walled = key('d');
        let mut revoked_key = MockKey::new("key_2");
        revoked_key.state.revoked = true;
        let mut expired_key = MockKey::new("key_3");
        expired_key.state.expires_at_ms = Some(1_000);
        let host = MockHost::new()
            .with_time_ms(1_000)
            .with_key(&good, MockKey::new("key_1"))
            .with_key(&revoked, revoked_key)
            .with_key(&expired, expired_key)
            .with_key(&walled, MockKey::new("key_4").with_ip_allowlist(&["10.0.0.0/8"]));
        host.install();
        let code = |h: &[(&str, &str)]| ApiKeyAuth::authenticate(&request(h)).err().map(|d| d.code);
        assert_eq!(code(&[]), Some("missing_credentials".into()));
        let bearer = format!("Bearer {good}");
        assert_eq!(code(&[("authorization", &bearer)]), None);
        let found = ApiKeyAuth::authenticate(&request(&[("x-api-key", &good)])).expect("authenticated");
        assert_eq!(found.id(), "key_1", "the key the host looked up is the caller");
        let mut typo = good.clone();
        typo.replace_range(10..11, "b");
        assert_eq!(code(&[("x-api-key", &typo)]), Some("invalid_api_key".into()));
        assert_eq!(host.lookups(), 2, "a bad checksum never reaches the host");
        assert_eq!(code(&[("x-api-key", &key('z'))]), Some("invalid_api_key".into()));
        assert_eq!(code(&[("x-api-key", &revoked)]), Some("revoked_api_key".into()));
        assert_eq!(code(&[("x-api-key", &expired)]), Some("expired_api_key".into()));
        assert_eq!(code(&[("x-api-key", &walled)]), Some("ip_not_allowed".into()));
    }

    #[test]
    fn forwarding_headers_count_only_from_trusted_proxies() {
        let good = key('a');
        let mut https_only = MockKey::new("key_1").with_ip_allowlist(&["203.0.113.0/24"]);
        https_only.state.require_https = true;
        MockHost::new().with_key(&good, https_only).install();
        let via_proxy = |peer: &str| {
            MockRequest::new("GET", "/v1/customers")
                .with_header("x-api-key", &good)
                .with_header("x-forwarded-for", "203.0.113.7")
                .with_header("x-forwarded-proto", "https")
                .with_client_ip(peer)
                .build()
        };
        let code = |r: &Request| ApiKeyAuth::authenticate(r).err().map(|d| d.code);
        // Without configured proxies the peer's own address and scheme decide.
        assert_eq!(code(&via_proxy("10.1.2.3")), Some("ip_not_allowed".into()));
        let direct = MockRequest::new("GET", "/v1/customers")
            .with_header("x-api-key", &good)
            .with_client_ip("203.0.113.9")
            .build();
        assert_eq!(code(&direct), Some("https_required".into()));
    }
}
