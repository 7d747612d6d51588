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
use angage_plugin_sdk::{
    Authenticator, Denial, KeyRecord, PluginInfo, Principal, RequestInfo, header, host, keyfmt,
};

pub struct ApiKeyAuth;

struct Config {
    trusted_proxies: Vec<Cidr>,
    environments: Vec<String>,
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
            environments: strings("environments").unwrap_or_else(|| vec!["live".into(), "test".into()]),
        }
    })
}

fn deny(status: u16, code: &str, detail: impl Into<String>) -> Denial {
    Denial { status, code: code.into(), detail: detail.into() }
}

/// The presented credential, if any.
fn credential(request: &RequestInfo) -> Option<&str> {
    if let Some(auth) = header(request, "authorization") {
        let (scheme, token) = auth.split_once(' ')?;
        return scheme.eq_ignore_ascii_case("bearer").then(|| token.trim());
    }
    header(request, "x-api-key").map(str::trim)
}

/// The client's address and scheme, believing forwarding headers only from trusted proxies.
fn client(request: &RequestInfo, cfg: &Config) -> (Option<IpAddr>, String) {
    let peer: Option<IpAddr> = request.client_ip.parse().ok();
    let trusted = |ip: &IpAddr| cfg.trusted_proxies.iter().any(|c| c.contains(*ip));
    if !peer.as_ref().is_some_and(trusted) {
        return (peer, request.scheme.clone());
    }
    // The rightmost address that is not one of our proxies is the client.
    let forwarded = header(request, "x-forwarded-for")
        .map(|v| v.split(',').rev().filter_map(|a| a.trim().parse::<IpAddr>().ok()).find(|a| !trusted(a)))
        .unwrap_or(None);
    let scheme = header(request, "x-forwarded-proto")
        .and_then(|p| p.split(',').next())
        .map(|p| p.trim().to_ascii_lowercase())
        .unwrap_or_else(|| request.scheme.clone());
    (forwarded.or(peer), scheme)
}

fn check_record(record: &KeyRecord, request: &RequestInfo, cfg: &Config) -> Result<(), Denial> {
    if record.revoked {
        return Err(deny(401, "revoked_api_key", "This API key has been revoked"));
    }
    if record.expires_at_ms.is_some_and(|t| t <= host::now_ms()) {
        return Err(deny(401, "expired_api_key", "This API key has expired"));
    }
    if !cfg.environments.contains(&record.environment) {
        return Err(deny(
            401,
            "invalid_api_key",
            format!("{} keys are not accepted by this server", record.environment),
        ));
    }
    let (ip, scheme) = client(request, cfg);
    if !record.ip_allowlist.is_empty() {
        let allowed = ip.is_some_and(|ip| {
            record.ip_allowlist.iter().filter_map(|c| Cidr::parse(c).ok()).any(|c| c.contains(ip))
        });
        if !allowed {
            let shown = ip.map_or_else(|| "unknown".to_owned(), |i| i.to_string());
            return Err(deny(403, "ip_not_allowed", format!("This API key may not be used from {shown}")));
        }
    }
    if record.require_https && scheme != "https" {
        return Err(deny(403, "https_required", "This tenant accepts API requests over HTTPS only"));
    }
    Ok(())
}

impl Authenticator for ApiKeyAuth {
    fn info() -> PluginInfo {
        PluginInfo { name: "apikey-auth".into(), version: env!("CARGO_PKG_VERSION").into() }
    }

    fn authenticate(request: RequestInfo) -> Result<Principal, Denial> {
        let Some(presented) = credential(&request).filter(|c| !c.is_empty()) else {
            return Err(deny(
                401,
                "missing_credentials",
                "Send an API key as `Authorization: Bearer ak_...` or `X-API-Key: ak_...`",
            ));
        };
        if let Err(e) = keyfmt::check(presented) {
            return Err(deny(401, "invalid_api_key", format!("Invalid API key: {e}")));
        }
        let Some(record) = host::lookup_key(presented) else {
            return Err(deny(401, "invalid_api_key", "Invalid API key: no such key"));
        };
        let cfg = config();
        check_record(&record, &request, cfg)?;
        Ok(Principal {
            key_id: record.key_id,
            tenant_id: record.tenant_id,
            tenant: record.tenant,
            environment: record.environment,
            app_name: record.app_name,
            grants: record.grants,
            limits: record.limits,
        })
    }
}

angage_plugin_sdk::export_authenticator!(ApiKeyAuth);

#[cfg(test)]
mod tests {
    use angage_plugin_sdk::mock::MockHost;
    use angage_plugin_sdk::{Header, Limits, Operation};

    use super::*;

    fn key(body_char: char) -> String {
        let head = format!("ak_live_{}", body_char.to_string().repeat(34));
        format!("{head}{}", keyfmt::checksum(&head))
    }

    fn record() -> KeyRecord {
        KeyRecord {
            key_id: "key_1".into(),
            tenant_id: "ten_1".into(),
            tenant: "demo".into(),
            environment: "live".into(),
            app_name: "app".into(),
            grants: vec![],
            limits: Limits {
                per_second: None,
                per_minute: None,
                per_hour: None,
                per_day: None,
                burst: None,
                burst_window_seconds: 5,
            },
            ip_allowlist: vec![],
            expires_at_ms: None,
            revoked: false,
            require_https: false,
        }
    }

    fn request(headers: &[(&str, &str)]) -> RequestInfo {
        RequestInfo {
            method: "GET".into(),
            route: "/v1/customers".into(),
            path: "/v1/customers".into(),
            module: "customers".into(),
            operation: Operation::Read,
            headers: headers.iter().map(|(n, v)| Header { name: (*n).into(), value: (*v).into() }).collect(),
            client_ip: "127.0.0.1".into(),
            scheme: "http".into(),
            time_ms: 0,
        }
    }

    #[test]
    fn each_refusal_has_its_code() {
        let good = key('a');
        let revoked = key('b');
        let expired = key('c');
        let walled = key('d');
        let host = MockHost::new()
            .with_time_ms(1_000)
            .with_key(&good, record())
            .with_key(&revoked, KeyRecord { revoked: true, ..record() })
            .with_key(&expired, KeyRecord { expires_at_ms: Some(1_000), ..record() })
            .with_key(&walled, KeyRecord { ip_allowlist: vec!["10.0.0.0/8".into()], ..record() });
        host.install();
        let code = |h: &[(&str, &str)]| ApiKeyAuth::authenticate(request(h)).err().map(|d| d.code);
        assert_eq!(code(&[]), Some("missing_credentials".into()));
        let bearer = format!("Bearer {good}");
        assert_eq!(code(&[("authorization", &bearer)]), None);
        assert_eq!(code(&[("x-api-key", &good)]), None);
        let mut typo = good.clone();
        typo.replace_range(10..11, "b");
        assert_eq!(code(&[("x-api-key", &typo)]), Some("invalid_api_key".into()));
        assert_eq!(host.lookups(), 2, "a bad checksum never reaches the host");
        assert_eq!(code(&[("x-api-key", &key('z'))]), Some("invalid_api_key".into()));
        assert_eq!(code(&[("x-api-key", &revoked)]), Some("revoked_api_key".into()));
        assert_eq!(code(&[("x-api-key", &expired)]), Some("expired_api_key".into()));
        assert_eq!(code(&[("x-api-key", &walled)]), Some("ip_not_allowed".into()));
    }
}
