//! Test fixture: a usage enricher that traps (panics) on requests whose path contains `trap`
//! and tags every other event `enriched=yes`. The host must still record every event, and
//! enrich the ones after a trap on a fresh instance. On paths containing `oversize` it returns
//! what no store should keep: a latency of `u64::MAX`, a 10 000-character endpoint, 100 tags.

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
        if request.path().contains("oversize") {
            event.latency_us = u64::MAX;
            event.endpoint = "E".repeat(10_000);
            event.tags = (0..100).map(|i| Tag { key: format!("t{i}"), value: "v".repeat(10_000) }).collect();
            return event;
        }
        event.tags.push(Tag { key: "enriched".into(), value: "yes".into() });
        event
    }
}

angage_plugin_sdk::export_usage_enricher!(Trapping);
