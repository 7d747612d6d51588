//! Built-in usage enricher: endpoint template, module, key, status class, error code and
//! latency, plus client tags: the SDK or tool and its version read from `User-Agent`, the key's
//! environment and application name.

use angage_plugin_sdk::{Exchange, PluginInfo, Tag, UsageEnricher, UsageEvent, header};

pub struct UsageEnrich;

/// `(name, version)` of the client library, from a `User-Agent` such as `python-requests/2.31.0`.
pub fn client_of(user_agent: &str) -> Option<(String, String)> {
    let first = user_agent.split_whitespace().next()?;
    let (name, version) = first.split_once('/')?;
    let name = name.to_ascii_lowercase();
    let known = [
        "angage-",
        "python-requests",
        "python-httpx",
        "curl",
        "axios",
        "node-fetch",
        "node",
        "guzzlehttp",
        "php",
        "okhttp",
        "go-http-client",
        "java",
        "ruby",
        "postmanruntime",
        "mozilla",
        "insomnia",
        "reqwest",
    ];
    known
        .iter()
        .any(|k| name.starts_with(k))
        .then(|| (name, version.trim_end_matches(|c: char| !c.is_ascii_alphanumeric()).to_owned()))
}

impl UsageEnricher for UsageEnrich {
    fn info() -> PluginInfo {
        PluginInfo { name: "usage-enrich".into(), version: env!("CARGO_PKG_VERSION").into() }
    }

    fn enrich(exchange: Exchange) -> UsageEvent {
        let req = &exchange.request;
        let route = req.route.strip_prefix("/v1").unwrap_or(&req.route);
        let mut tags = Vec::new();
        if let Some((sdk, version)) = header(req, "user-agent").and_then(client_of) {
            tags.push(Tag { key: "sdk".into(), value: sdk });
            tags.push(Tag { key: "sdk_version".into(), value: version });
        }
        if let Some(p) = &exchange.principal {
            tags.push(Tag { key: "environment".into(), value: p.environment.clone() });
            tags.push(Tag { key: "app".into(), value: p.app_name.clone() });
        }
        UsageEvent {
            endpoint: format!("{} {route}", req.method),
            module: req.module.clone(),
            key_id: exchange.principal.as_ref().map(|p| p.key_id.clone()),
            status: exchange.status,
            status_class: format!("{}xx", exchange.status / 100),
            error_code: exchange.error_code.clone(),
            latency_us: exchange.latency_us,
            tags,
        }
    }
}

angage_plugin_sdk::export_usage_enricher!(UsageEnrich);

#[cfg(test)]
mod tests {
    use super::client_of;

    #[test]
    fn user_agents_become_client_tags() {
        assert_eq!(client_of("python-requests/2.31.0"), Some(("python-requests".into(), "2.31.0".into())));
        assert_eq!(client_of("angage-node/1.4.2 (linux)"), Some(("angage-node".into(), "1.4.2".into())));
        assert_eq!(client_of("curl/8.5.0"), Some(("curl".into(), "8.5.0".into())));
        assert_eq!(client_of("something"), None);
        assert_eq!(client_of("evil/1 <script>"), None);
    }
}
