//! The delivery loop of one node: claim what is due (as much as there is room for, overall and
//! per endpoint), send each claimed delivery on its own task, record the outcome, repeat. It
//! wakes when a commit on this node leaves deliveries due, on PostgreSQL when any node's does
//! (`LISTEN`), when a delivery finishes, and every half second for retries coming due.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use angage_core::clock::Clock;
use angage_core::config::WebhookSettings;
use angage_store::db::{Backend, Db};
use angage_store::webhooks::deliveries::{self, Claimed, Next, Outcome, Recorded};
use angage_store::webhooks::{Sealer, endpoints, outbox, target};

use crate::{schedule, send, sign};

/// How often the loop looks for retries that came due, and how often it reports the queue.
const POLL: Duration = Duration::from_millis(500);
const QUEUE_REPORT: Duration = Duration::from_secs(5);
/// A claim holds a delivery this much longer than an attempt may take (to record it).
const LEASE_SLACK_MS: i64 = 5_000;

/// What the worker needs from the composition.
pub struct WorkerDeps {
    pub db: Db,
    pub sealer: Sealer,
    pub clock: Arc<dyn Clock>,
    pub settings: WebhookSettings,
    /// The database URL, for `LISTEN` on PostgreSQL.
    pub database_url: String,
}

struct Shared {
    deps: WorkerDeps,
    client: reqwest::Client,
    /// Deliveries in flight on this node, per endpoint.
    in_flight: Mutex<HashMap<String, usize>>,
    finished: tokio::sync::Notify,
}

/// The running worker; dropping it stops claiming (deliveries in flight are abandoned and their
/// leases run out, so another node or the next start sends them again).
pub struct Worker {
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Worker {
    pub fn start(deps: WorkerDeps) -> Result<Self, reqwest::Error> {
        let client = send::client(&deps.settings)?;
        let shared = Arc::new(Shared {
            deps,
            client,
            in_flight: Mutex::default(),
            finished: tokio::sync::Notify::new(),
        });
        Ok(Self { task: tokio::spawn(run(shared)) })
    }
}

async fn run(shared: Arc<Shared>) {
    let mut listener = listen(&shared.deps).await;
    let mut last_report = Instant::now() - QUEUE_REPORT;
    loop {
        let claimed = claim(&shared).await;
        if last_report.elapsed() >= QUEUE_REPORT {
            last_report = Instant::now();
            report_queue(&shared.deps).await;
        }
        if claimed > 0 {
            continue;
        }
        let db = &shared.deps.db;
        let notified = async {
            match listener.as_mut() {
                Some(l) => {
                    if let Err(e) = l.recv().await {
                        tracing::warn!(error = %e, "the webhook listener failed; polling");
                        std::future::pending::<()>().await;
                    }
                }
                None => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            () = db.webhooks_due() => {}
            () = shared.finished.notified() => {}
            () = notified => {}
            () = tokio::time::sleep(POLL) => {}
        }
    }
}

/// `LISTEN` for other nodes' deliveries on PostgreSQL; none on SQLite (one node).
async fn listen(deps: &WorkerDeps) -> Option<sqlx::postgres::PgListener> {
    if deps.db.backend != Backend::Postgres {
        return None;
    }
    let listening = async {
        let mut l = sqlx::postgres::PgListener::connect(&deps.database_url).await?;
        l.listen(outbox::CHANNEL).await?;
        Ok::<_, sqlx::Error>(l)
    };
    match listening.await {
        Ok(l) => Some(l),
        Err(e) => {
            tracing::warn!(error = %e, "cannot LISTEN for webhook deliveries; polling");
            None
        }
    }
}

/// Moves new events into deliveries, then claims what there is room for and starts sending it;
/// returns how many events and deliveries it took.
async fn claim(shared: &Arc<Shared>) -> usize {
    let dispatched = match outbox::dispatch(&shared.deps.db, shared.deps.clock.now_ms()).await {
        Ok(n) => n,
        Err(e) => {
            tracing::warn!(error = %e, "cannot move webhook events into deliveries; will retry");
            0
        }
    };
    dispatched + send_due(shared).await
}

/// Claims what there is room for and starts sending it; returns how many it claimed.
async fn send_due(shared: &Arc<Shared>) -> usize {
    let settings = &shared.deps.settings;
    let (room, busy) = {
        let in_flight = shared.in_flight.lock().unwrap_or_else(|p| p.into_inner());
        let total: usize = in_flight.values().sum();
        (settings.max_in_flight.saturating_sub(total), in_flight.clone())
    };
    if room == 0 {
        return 0;
    }
    let cap = settings.max_in_flight_per_endpoint;
    let now = shared.deps.clock.now_ms();
    let lease_ms = i64::try_from(settings.timeout_ms).unwrap_or(i64::MAX / 2) + LEASE_SLACK_MS;
    let full: Vec<String> = busy.iter().filter(|(_, n)| **n >= cap).map(|(e, _)| e.clone()).collect();
    let claimed = deliveries::claim(&shared.deps.db, now, lease_ms, room, &full, |endpoint| {
        cap.saturating_sub(busy.get(endpoint).copied().unwrap_or(0))
    })
    .await;
    let claimed = match claimed {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(error = %e, "cannot claim webhook deliveries; will retry");
            return 0;
        }
    };
    let n = claimed.len();
    {
        let mut in_flight = shared.in_flight.lock().unwrap_or_else(|p| p.into_inner());
        for c in &claimed {
            *in_flight.entry(c.endpoint_id.clone()).or_default() += 1;
        }
    }
    for c in claimed {
        let shared = shared.clone();
        tokio::spawn(async move {
            deliver(&shared, &c).await;
            let mut in_flight = shared.in_flight.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(count) = in_flight.get_mut(&c.endpoint_id) {
                *count -= 1;
                if *count == 0 {
                    in_flight.remove(&c.endpoint_id);
                }
            }
            drop(in_flight);
            shared.finished.notify_one();
        });
    }
    n
}

/// One attempt of one delivery, recorded.
async fn deliver(shared: &Shared, c: &Claimed) {
    let deps = &shared.deps;
    let started_at = deps.clock.now_ms();
    let clock = Instant::now();
    let answer = attempt(shared, c, started_at).await;
    let latency = clock.elapsed();
    let attempt_no = c.attempts + 1;
    let next = match answer.status {
        Some(s) if (200..300).contains(&s) => Next::Done,
        Some(410) => Next::Gone,
        _ => match schedule::retry_at(attempt_no, deps.clock.now_ms(), &mut rand::rng()) {
            Some(at) => Next::RetryAt(at),
            None => Next::GiveUp,
        },
    };
    let outcome = Outcome {
        started_at,
        latency_ms: i64::try_from(latency.as_millis()).unwrap_or(i64::MAX),
        status: answer.status,
        error: answer.error,
        excerpt: answer.excerpt,
        next,
    };
    metrics::histogram!("angage_webhook_attempt_seconds").record(latency.as_secs_f64());
    if next == Next::Done {
        // Commit to delivery: the time from the event's commit to the receiver's 2xx.
        let waited = (deps.clock.now_ms() - c.event_created_at).max(0) as f64 / 1000.0;
        metrics::histogram!("angage_webhook_delivery_lag_seconds").record(waited);
    }
    let label = match next {
        Next::Done => "delivered",
        Next::RetryAt(_) => "retrying",
        Next::GiveUp => "failed",
        Next::Gone => "gone",
    };
    match deliveries::record(&deps.db, c, &outcome, deps.clock.now_ms()).await {
        Ok(Recorded::Saved) => {
            metrics::counter!("angage_webhook_deliveries_total", "outcome" => label).increment(1)
        }
        Ok(Recorded::Disabled(reason)) => {
            metrics::counter!("angage_webhook_deliveries_total", "outcome" => label).increment(1);
            tracing::warn!(endpoint = %c.endpoint_id, %reason, "webhook endpoint disabled");
        }
        Ok(Recorded::LeaseLost) => {
            metrics::counter!("angage_webhook_deliveries_total", "outcome" => "lease_lost").increment(1);
            tracing::warn!(delivery = %c.id, "a delivery took longer than its lease; another worker has it");
        }
        Err(e) => {
            tracing::warn!(delivery = %c.id, error = %e, "cannot record a webhook attempt; it will be sent again")
        }
    }
    if attempt_no > 1 && next == Next::Done {
        tracing::info!(delivery = %c.id, attempts = attempt_no, "webhook delivered after retries");
    }
}

async fn attempt(shared: &Shared, c: &Claimed, started_at: i64) -> send::Answer {
    let deps = &shared.deps;
    let refused = |why: String| send::Answer { status: None, excerpt: None, error: Some(why) };
    if let Err(why) = target::check_url(&c.url, &deps.settings) {
        return refused(format!("refused: the URL {why}"));
    }
    let secrets = match endpoints::signing_secrets(
        &deps.sealer,
        &c.secret,
        c.previous_secret.as_deref(),
        c.previous_until,
        started_at,
    ) {
        Ok(s) => s,
        Err(e) => return refused(e.to_string()),
    };
    let timestamp = started_at.div_euclid(1000);
    let body = outbox::body(&c.event_id, &c.event_type, c.event_created_at, &c.tenant_slug, &c.object);
    let Some(signature) = sign::header(&secrets, &c.event_id, timestamp, body.as_bytes()) else {
        return refused("the signing secret is not a whsec_ key".into());
    };
    let headers = [
        ("webhook-id", c.event_id.clone()),
        ("webhook-timestamp", timestamp.to_string()),
        ("webhook-signature", signature),
    ];
    send::post(&shared.client, &c.url, headers, body, deps.settings.timeout_ms).await
}

async fn report_queue(deps: &WorkerDeps) {
    match deliveries::queue(&deps.db, deps.clock.now_ms()).await {
        Ok((depth, oldest_ms)) => {
            metrics::gauge!("angage_webhook_queue_depth").set(depth as f64);
            metrics::gauge!("angage_webhook_oldest_pending_seconds").set(oldest_ms as f64 / 1000.0);
        }
        Err(e) => tracing::debug!(error = %e, "cannot read the webhook queue"),
    }
}
