//! The request-path policy stages (authenticate, authorize, the tenant rule, rate-limit) run in
//! lanes. A request queues on its thread's lane and waits for its verdict; the lane takes what is
//! queued, lets the requests that are ready on the runtime join for one scheduler round, and
//! runs the batch stage by stage: every authenticate call back to back on one warm instance,
//! then every authorize call, then the rules, then every rate-limit call.
//!
//! Why: a plugin call is cheap while its instance, its code and the host's glue are in the
//! core's caches, and several times dearer after a request's HTTP, database and response work
//! has pushed them out. Called back to back, each stage pays for cold caches once a batch
//! instead of once a request. A refusal is answered as soon as its stage has run.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use futures_util::FutureExt;
use tokio::sync::{mpsc, oneshot};

use crate::clock::Clock;
use crate::config::FailMode;
use crate::db::Db;
use crate::keys::store::KeyRecord;
use crate::plugins::bindings::types;
use crate::plugins::handles::{PolicyRequest, key_state};
use crate::plugins::{CallError, PluginRuntime, Stage, stage};
use crate::rules::{Inputs, RuleKey, RuleLimits, RuleRequest, RuleSet};
use crate::tenants::flags::SettingsCache;
use crate::tenants::settings::TenantSettings;

/// Requests a lane takes at most at once: the last of a batch waits for the ones before it.
const MAX_BATCH: usize = 64;
/// Requests waiting per lane before new ones wait to queue.
const CAPACITY: usize = 4096;

/// What the stages decided about a request.
pub enum Verdict {
    /// A stage refused it; `key` is the caller once authenticated.
    Denied { key: Option<Arc<KeyRecord>>, denial: types::Denial },
    /// A stage's plugin failed and the stage fails closed.
    Unavailable { key: Option<Arc<KeyRecord>>, stage: Stage, error: CallError },
    /// The caller's tenant settings could not be read.
    NoSettings { key: Arc<KeyRecord>, error: sqlx::Error },
    /// Through authenticate, authorize and the rule, and charged: `decision` says whether the
    /// rate limiter allowed it (`None`: it failed and `rate_limit_failure` is `open`).
    Checked {
        key: Arc<KeyRecord>,
        settings: Arc<TenantSettings>,
        rule: Option<String>,
        decision: Option<types::RateDecision>,
    },
    /// The lane stopped before answering (it never does unless the host has a bug).
    Lost,
}

/// What a lane needs from the app; not the app state itself, so dropping the app ends the lanes.
pub struct LaneCtx {
    pub plugins: Arc<PluginRuntime>,
    pub rules: Arc<RuleSet>,
    pub tenant_settings: Arc<SettingsCache>,
    pub db: Db,
    pub clock: Arc<dyn Clock>,
    pub rate_limit_failure: FailMode,
}

/// The lanes; requests from one thread go to one lane.
pub struct PolicyLanes {
    lanes: Vec<mpsc::Sender<Job>>,
}

struct Job {
    request: Arc<PolicyRequest>,
    /// The settings of the presented key's tenant as the request's own task read them (or
    /// failed to): the lane does not ask the database again.
    settings: Option<Result<Arc<TenantSettings>, sqlx::Error>>,
    reply: oneshot::Sender<Verdict>,
}

impl Job {
    fn answer(self, verdict: Verdict) {
        // The client may have gone; nobody is left to tell.
        let _ = self.reply.send(verdict);
    }
}

impl PolicyLanes {
    /// Starts `lanes` lanes (0: one per CPU); they end when this is dropped.
    pub fn start(ctx: LaneCtx, lanes: usize) -> Self {
        let count = match lanes {
            0 => std::thread::available_parallelism().map_or(1, usize::from),
            n => n,
        };
        let ctx = Arc::new(ctx);
        let lanes = (0..count)
            .map(|_| {
                let (tx, rx) = mpsc::channel(CAPACITY);
                tokio::spawn(lane(ctx.clone(), rx));
                tx
            })
            .collect();
        Self { lanes }
    }

    /// Queues a request on this thread's lane and waits for its verdict. `settings` are those
    /// of the tenant of the key the pipeline prefetched, when it did.
    pub async fn decide(
        &self,
        request: Arc<PolicyRequest>,
        settings: Option<Result<Arc<TenantSettings>, sqlx::Error>>,
    ) -> Verdict {
        let (reply, verdict) = oneshot::channel();
        let lane = &self.lanes[thread_lane() % self.lanes.len()];
        if lane.send(Job { request, settings, reply }).await.is_err() {
            return Verdict::Lost;
        }
        verdict.await.unwrap_or(Verdict::Lost)
    }
}

/// This thread's lane number: threads take lanes in turn the first time they ask.
fn thread_lane() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static LANE: usize = NEXT.fetch_add(1, Ordering::Relaxed);
    }
    LANE.with(|l| *l)
}

async fn lane(ctx: Arc<LaneCtx>, mut rx: mpsc::Receiver<Job>) {
    let sizes = metrics::histogram!("angage_policy_batch_requests");
    let mut jobs = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut jobs, MAX_BATCH).await > 0 {
        // One scheduler round: requests that are ready on other tasks queue behind these.
        tokio::task::yield_now().await;
        while jobs.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => jobs.push(job),
                Err(_) => break,
            }
        }
        sizes.record(jobs.len() as f64);
        let batch = std::mem::replace(&mut jobs, Vec::with_capacity(MAX_BATCH));
        // A panic here is a host bug: its requests get `Lost` (their senders are dropped) and
        // the lane goes on with the next batch.
        if AssertUnwindSafe(run_batch(&ctx, batch)).catch_unwind().await.is_err() {
            tracing::error!("a policy batch panicked; its requests were refused");
        }
    }
}

/// A request that passed authenticate.
struct Authenticated {
    job: Job,
    key: Arc<KeyRecord>,
}

/// A request ready for the rate limiter.
struct Charge {
    job: Job,
    key: Arc<KeyRecord>,
    settings: Arc<TenantSettings>,
    rule: Option<String>,
    cost: u64,
    limits: types::Limits,
}

async fn run_batch(ctx: &LaneCtx, jobs: Vec<Job>) {
    let plugins = &ctx.plugins;
    let authn = plugins.authn.load_full();
    let keys = authn.call_batch(&jobs, |b, s, job| stage::authenticate(b, s, &job.request)).await;
    let mut authenticated = Vec::with_capacity(jobs.len());
    for (job, key) in jobs.into_iter().zip(keys) {
        match key {
            Ok(Ok(key)) => authenticated.push(Authenticated { job, key }),
            Ok(Err(denial)) => job.answer(Verdict::Denied { key: None, denial }),
            Err(error) => job.answer(Verdict::Unavailable { key: None, stage: Stage::Authenticate, error }),
        }
    }

    let authz = plugins.authz.load_full();
    let allowed =
        authz.call_batch(&authenticated, |b, s, a| stage::authorize(b, s, &a.key, &a.job.request)).await;
    let mut charges = Vec::with_capacity(authenticated.len());
    for (Authenticated { mut job, key }, allowed) in authenticated.into_iter().zip(allowed) {
        match allowed {
            Ok(Ok(())) => {}
            Ok(Err(denial)) => {
                job.answer(Verdict::Denied { key: Some(key), denial });
                continue;
            }
            Err(error) => {
                job.answer(Verdict::Unavailable { key: Some(key), stage: Stage::Authorize, error });
                continue;
            }
        }
        match settings_for(ctx, &mut job, &key).await {
            Ok(settings) => charges.push(apply_rules(ctx, job, key, settings)),
            Err(error) => job.answer(Verdict::NoSettings { key, error }),
        }
    }

    let rate = plugins.rate.load_full();
    let decisions = rate
        .call_batch(&charges, |b, s, c| stage::check(b, s, &c.key, &c.job.request, c.cost, c.limits))
        .await;
    for (c, decision) in charges.into_iter().zip(decisions) {
        let decision = match decision {
            Ok(d) => Some(d),
            Err(error) if ctx.rate_limit_failure == FailMode::Closed => {
                c.job.answer(Verdict::Unavailable { key: Some(c.key), stage: Stage::RateLimit, error });
                continue;
            }
            Err(_) => None,
        };
        let Charge { job, key, settings, rule, .. } = c;
        job.answer(Verdict::Checked { key, settings, rule, decision });
    }
}

/// What the request's task read of the settings, when the caller is the key it prefetched; else
/// the cache's (a plugin may authenticate by something other than the credential header).
async fn settings_for(
    ctx: &LaneCtx,
    job: &mut Job,
    key: &KeyRecord,
) -> Result<Arc<TenantSettings>, sqlx::Error> {
    let prefetched_tenant = job.request.known().map(|k| k.tenant_id.as_str());
    match job.settings.take() {
        Some(read) if prefetched_tenant == Some(key.tenant_id.as_str()) => read,
        _ => ctx.tenant_settings.get(&ctx.db, &key.tenant_id, ctx.clock.now_ms()).await,
    }
}

/// The tenant rule: the limits and cost this request is charged with.
fn apply_rules(ctx: &LaneCtx, job: Job, key: Arc<KeyRecord>, settings: Arc<TenantSettings>) -> Charge {
    let key_limits = key_state(&key).limits;
    let inputs = || Inputs::new(rule_request(&job.request, &settings.timezone), rule_key(&key));
    let evaluated = ctx.rules.evaluate(&key.tenant_id, inputs, rule_limits(&key_limits));
    let l = evaluated.limits;
    let limits = types::Limits {
        per_second: l.per_second,
        per_minute: l.per_minute,
        per_hour: l.per_hour,
        per_day: l.per_day,
        burst: l.burst,
        burst_window_seconds: key_limits.burst_window_seconds,
    };
    Charge { job, key, settings, rule: evaluated.rule, cost: l.cost, limits }
}

fn rule_request(info: &PolicyRequest, timezone: &str) -> RuleRequest {
    RuleRequest {
        method: info.method.as_str().into(),
        route: info.route.as_str().into(),
        path: info.path.as_str().into(),
        module: info.module.as_str().into(),
        operation: if info.operation == types::Operation::Read { "read".into() } else { "write".into() },
        time_ms: info.time_ms,
        timezone: timezone.into(),
    }
}

fn rule_key(k: &KeyRecord) -> RuleKey {
    RuleKey {
        id: k.id.as_str().into(),
        name: k.name.as_str().into(),
        environment: k.environment.as_str().into(),
        grants: k.grants.clone(),
    }
}

fn rule_limits(l: &types::Limits) -> RuleLimits {
    RuleLimits {
        per_second: l.per_second,
        per_minute: l.per_minute,
        per_hour: l.per_hour,
        per_day: l.per_day,
        burst: l.burst,
        cost: 1,
    }
}
