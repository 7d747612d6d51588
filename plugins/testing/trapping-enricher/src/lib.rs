//! Test fixture: a usage enricher that traps (panics) on requests whose path contains `trap`
//! and tags every other event `enriched=yes`. The host must still record every event, and
//! enrich the ones after a trap on a fresh instance.

use angage_plugin_sdk::{Key, PluginInfo, Request, Tag, UsageEnricher, UsageEvent};

pub struct Trapping;

impl UsageEnricher for Trapping {
    fn info() -> PluginInfo {
        PluginInfo { name: "trapping-enricher".into(), version: env!("CARGO_PKG_VERSION").into() }
    }

    fn enrich(request: &Request, _key: Option<&Key>, mut event: UsageEvent) -> UsageEvent {
        if request.path().contains("trap") {
            panic!("trapping enricher traps on purpose");
        }
        event.tags.push(Tag { key: "enriched".into(), value: "yes".into() });
        event
    }
}

angage_plugin_sdk::export_usage_enricher!(Trapping);
