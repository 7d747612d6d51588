//! Built-in usage enricher: keeps the host's draft (endpoint template, module, key, status
//! class, error code, latency) and adds client tags: the SDK or tool and its version read from
//! `User-Agent`, the key's environment and application name.

use angage_plugin_sdk::{Environment, Key, PluginInfo, Request, Tag, UsageEnricher, UsageEvent};

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

    fn enrich(request: &Request, key: Option<&Key>, mut event: UsageEvent) -> UsageEvent {
        if let Some((sdk, version)) = request.header("user-agent").as_deref().and_then(client_of) {
            event.tags.push(Tag { key: "sdk".into(), value: sdk });
            event.tags.push(Tag { key: "sdk_version".into(), value: version });
        }
        if let Some(key) = key {
            let environment = match key.state().environment {
                Environment::Live => "live",
                Environment::Test => "test",
            };
            event.tags.push(Tag { key: "environment".into(), value: environment.into() });
            event.tags.push(Tag { key: "app".into(), value: key.app_name() });
        }
        event
    }
}

angage_plugin_sdk::export_usage_enricher!(UsageEnrich);

#[cfg(test)]
mod tests {
    use angage_plugin_sdk::mock::{MockKey, MockRequest};

    use super::*;

    #[test]
    fn the_draft_is_kept_and_client_tags_added() {
        let request = MockRequest::new("GET", "/v1/customers/{id}")
            .with_header("user-agent", "python-requests/2.31.0")
            .build();
        let key = MockKey::new("key_1").test_environment().build();
        let draft = UsageEvent {
            endpoint: "GET /customers/{id}".into(),
            module: "customers".into(),
            key_id: Some("key_1".into()),
            status: 404,
            status_class: "4xx".into(),
            error_code: Some("not_found".into()),
            latency_us: 120,
            tags: Vec::new(),
        };
        let event = UsageEnrich::enrich(&request, Some(&key), draft);
        assert_eq!(event.endpoint, "GET /customers/{id}");
        assert_eq!((event.module.as_str(), event.key_id.as_deref()), ("customers", Some("key_1")));
        assert_eq!((event.status_class.as_str(), event.error_code.as_deref()), ("4xx", Some("not_found")));
        let tags: Vec<(String, String)> = event.tags.into_iter().map(|t| (t.key, t.value)).collect();
        assert_eq!(
            tags,
            [("sdk", "python-requests"), ("sdk_version", "2.31.0"), ("environment", "test"), ("app", "app")]
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
        );
    }

    #[test]
    fn user_agents_become_client_tags() {
        assert_eq!(client_of("python-requests/2.31.0"), Some(("python-requests".into(), "2.31.0".into())));
        assert_eq!(client_of("angage-node/1.4.2 (linux)"), Some(("angage-node".into(), "1.4.2".into())));
        assert_eq!(client_of("curl/8.5.0"), Some(("curl".into(), "8.5.0".into())));
        assert_eq!(client_of("something"), None);
        assert_eq!(client_of("evil/1 <script>"), None);
    }
}
