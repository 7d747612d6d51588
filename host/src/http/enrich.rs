//! Enrich-usage off the request path: a finished exchange is queued here, and one task runs the
//! plugin over the queue in turn (its instance stays warm in one thread's cache) and records
//! each event. When the queue is full, the host's draft is recorded as is: only the plugin's
//! changes are lost, never the event.

use std::sync::Arc;

use tokio::sync::mpsc;

use crate::keys::store::KeyRecord;
use crate::plugins::bindings::types;
use crate::plugins::handles::PolicyRequest;
use crate::plugins::stage;
use crate::plugins::{CallError, PluginRuntime};
use crate::usage::{Ticket, UsageRecord, UsageSink};

/// Exchanges waiting for enrichment; beyond this the draft is recorded without it.
const CAPACITY: usize = 8192;
/// Exchanges handled before the task yields to the request handlers on its thread.
const BATCH: usize = 64;

/// A finished exchange.
pub struct Exchange {
    pub request: Arc<PolicyRequest>,
    /// The authenticated caller.
    pub key: Option<Arc<KeyRecord>>,
    pub status: u16,
    pub error_code: Option<String>,
    pub error_detail: Option<String>,
    pub latency_us: u64,
    /// The limit rule that applied.
    pub rule: Option<String>,
    /// Held until the event is recorded, so a flush waits for it.
    pub ticket: Ticket,
}

pub struct EnrichQueue {
    tx: mpsc::Sender<Exchange>,
    usage: UsageSink,
}

impl EnrichQueue {
    /// Starts the task; it ends when the queue is dropped. `bypass` (bench only) records drafts.
    pub fn start(plugins: Arc<PluginRuntime>, usage: UsageSink, bypass: bool) -> Self {
        let (tx, mut rx) = mpsc::channel::<Exchange>(CAPACITY);
        let sink = usage.clone();
        tokio::spawn(async move {
            let mut batch = Vec::with_capacity(BATCH);
            while rx.recv_many(&mut batch, BATCH).await > 0 {
                let enriched = if bypass { Vec::new() } else { enrich_all(&plugins, &batch).await };
                let mut enriched = enriched.into_iter();
                for x in batch.drain(..) {
                    let event = enriched.next().and_then(Result::ok).unwrap_or_else(|| draft_event(&x));
                    record(&sink, x, event);
                }
                tokio::task::yield_now().await;
            }
        });
        Self { tx, usage }
    }

    pub fn push(&self, x: Exchange) {
        if let Err(mpsc::error::TrySendError::Full(x) | mpsc::error::TrySendError::Closed(x)) =
            self.tx.try_send(x)
        {
            metrics::counter!("angage_usage_enrich_skipped_total").increment(1);
            let draft = draft_event(&x);
            record(&self.usage, x, draft);
        }
    }
}

/// Runs enrich-usage over a batch on one instance (one permit and one hand-off for the lot),
/// each exchange under its own deadline. An exchange whose call fails keeps its draft.
async fn enrich_all(
    plugins: &PluginRuntime,
    batch: &[Exchange],
) -> Vec<Result<types::UsageEvent, CallError>> {
    let enrich = plugins.usage.load_full();
    enrich.call_batch(batch, |b, s, x| stage::enrich(b, s, &x.request, x.key.as_ref(), &draft_event(x))).await
}

/// What the host records about an exchange before enrich-usage amends it.
pub fn draft_event(x: &Exchange) -> types::UsageEvent {
    let request = &x.request;
    let route = request.route.strip_prefix("/v1").unwrap_or(&request.route);
    types::UsageEvent {
        endpoint: format!("{} {route}", request.method),
        module: request.module.clone(),
        key_id: x.key.as_ref().map(|k| k.id.clone()),
        status: x.status,
        status_class: format!("{}xx", x.status / 100),
        error_code: x.error_code.clone(),
        latency_us: x.latency_us,
        tags: Vec::new(),
    }
}

fn record(usage: &UsageSink, x: Exchange, event: types::UsageEvent) {
    // A refused request still counts for the tenant whose key it presented.
    let tenant_id = x.key.as_ref().or(x.request.known()).map(|k| k.tenant_id.clone());
    usage.record(UsageRecord {
        tenant_id,
        key_id: event.key_id.or_else(|| x.request.known().map(|k| k.id.clone())),
        endpoint: event.endpoint,
        module: event.module,
        status: event.status,
        status_class: event.status_class,
        error_code: event.error_code,
        error_detail: x.error_detail,
        latency_us: event.latency_us,
        tags: event
            .tags
            .into_iter()
            .map(|t| (t.key, t.value))
            .chain(x.rule.map(|r| ("rule".to_owned(), r)))
            .collect(),
        at_ms: x.request.time_ms,
    });
    // Only now may a flush consider this request recorded.
    drop(x.ticket);
}
