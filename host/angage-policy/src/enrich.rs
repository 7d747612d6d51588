//! Enrich-usage off the request path: a finished exchange is queued here, and one task runs the
//! plugin over the queue in turn (its instance stays warm in one thread's cache) and records
//! each event. When the queue is full, the host's draft is recorded as is: only the plugin's
//! changes are lost, never the event.

use std::sync::Arc;

use angage_core::policy::Exchange;
use angage_store::usage::requests::{RequestLine, redacted_target};
use angage_store::usage::{Ticket, UsageRecord, UsageSink};
use tokio::sync::mpsc;

use crate::plugins::{CallError, KeyRef, PluginRuntime, UsageEnricher, enrich, types};

/// Exchanges waiting for enrichment; beyond this the draft is recorded without it.
const CAPACITY: usize = 8192;
/// Exchanges handled before the task yields to the request handlers on its thread.
const BATCH: usize = 64;

/// An exchange waiting for its usage event.
struct Finished {
    exchange: Exchange,
    /// The caller as the plugin borrows it.
    key: Option<KeyRef>,
    /// Held until the event is recorded, so a flush waits for it.
    ticket: Ticket,
}

pub(crate) struct EnrichQueue {
    tx: mpsc::Sender<Finished>,
    usage: UsageSink,
}

impl EnrichQueue {
    /// Starts the task; it ends when the queue is dropped.
    pub(crate) fn start(plugins: Arc<PluginRuntime>, usage: UsageSink) -> Self {
        let (tx, mut rx) = mpsc::channel::<Finished>(CAPACITY);
        let sink = usage.clone();
        tokio::spawn(async move {
            let mut batch = Vec::with_capacity(BATCH);
            while rx.recv_many(&mut batch, BATCH).await > 0 {
                let mut enriched = enrich_all(&plugins, &batch).await.into_iter();
                for x in batch.drain(..) {
                    let event =
                        enriched.next().and_then(Result::ok).unwrap_or_else(|| draft_event(&x.exchange));
                    record(&sink, x.exchange, event);
                    drop(x.ticket);
                }
                tokio::task::yield_now().await;
            }
        });
        Self { tx, usage }
    }

    pub(crate) fn push(&self, exchange: Exchange) {
        let key = match (&exchange.verdict.caller, &exchange.verdict.settings) {
            (Some(key), Some(settings)) => Some(KeyRef { key: key.clone(), settings: settings.clone() }),
            _ => None,
        };
        let finished = Finished { exchange, key, ticket: self.usage.ticket() };
        if let Err(mpsc::error::TrySendError::Full(x) | mpsc::error::TrySendError::Closed(x)) =
            self.tx.try_send(finished)
        {
            metrics::counter!("angage_usage_enrich_skipped_total").increment(1);
            record_draft(&self.usage, x.exchange);
        }
    }
}

/// Runs enrich-usage over a batch on one instance (one permit and one hand-off for the lot),
/// each exchange under its own deadline. An exchange whose call fails keeps its draft.
async fn enrich_all(
    plugins: &PluginRuntime,
    batch: &[Finished],
) -> Vec<Result<types::UsageEvent, CallError>> {
    let enricher = plugins.serving::<UsageEnricher>();
    enricher
        .call_batch(batch, |b, s, x| {
            enrich(b, s, &x.exchange.request, x.key.as_ref(), &draft_event(&x.exchange))
        })
        .await
}

/// What the host records about an exchange before enrich-usage amends it.
fn draft_event(x: &Exchange) -> types::UsageEvent {
    let request = &x.request;
    let route = request.route.strip_prefix("/v1").unwrap_or(&request.route);
    types::UsageEvent {
        endpoint: format!("{} {route}", request.method),
        module: request.module.clone(),
        key_id: x.verdict.caller.as_ref().map(|k| k.id.clone()),
        status: x.status,
        status_class: format!("{}xx", x.status / 100),
        error_code: x.error_code.clone(),
        latency_us: x.latency_us,
        tags: Vec::new(),
    }
}

/// Records the exchange with the host's own event, as no plugin amended it.
pub(crate) fn record_draft(usage: &UsageSink, x: Exchange) {
    let draft = draft_event(&x);
    record(usage, x, draft);
}

/// Records `event` (the plugin's, or the draft) for the exchange.
fn record(usage: &UsageSink, x: Exchange, event: types::UsageEvent) {
    let v = x.verdict;
    // A refused request still counts for the tenant whose key it presented.
    let known = v.caller.as_ref().or(v.presented.as_ref());
    let request = &x.request;
    let line = RequestLine {
        method: request.method.clone(),
        path: redacted_target(&request.path, request.query.as_deref()),
        client_ip: request.origin.map_or_else(|| request.client_ip.clone(), |ip| ip.to_string()),
        user_agent: request
            .headers
            .get(http::header::USER_AGENT)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned()),
        request_id: request.request_id.clone(),
        client_id: known.filter(|k| k.oauth).map(|k| k.id.clone()),
    };
    // Errors are always kept raw; successes when the tenant logs every request (else the
    // sink's sample decides).
    let keep_raw = x.status >= 400 || v.settings.as_ref().is_some_and(|s| s.security.log_all_requests);
    usage.record(UsageRecord {
        tenant_id: known.map(|k| k.tenant_id.clone()),
        key_id: event.key_id.or_else(|| v.presented.as_ref().map(|k| k.id.clone())),
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
            .chain(v.rule.map(|r| ("rule".to_owned(), r)))
            .collect(),
        at_ms: x.request.time_ms,
        line,
        keep_raw,
    });
}
