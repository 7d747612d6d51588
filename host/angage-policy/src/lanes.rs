//! The request-path stages, run in lanes. Each thread's requests queue on that thread's lane;
//! a lane takes what is queued (plus what arrives within one scheduler round, up to
//! `MAX_BATCH`), and runs the batch stage by stage: every authenticate call back to back on one
//! warm instance, then every authorize call, then the tenant rules, then every rate-limit call.
//!
//! Why: a plugin call is cheap while its instance, its code and the host's glue are in the
//! core's caches, and several times dearer after a request's HTTP, database and response work
//! has pushed them out. Called back to back, each stage pays for cold caches once a batch
//! instead of once a request. A refusal is answered as soon as its stage has run.

use std::collections::VecDeque;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use angage_core::config::FailMode;
use angage_core::key::KeyRecord;
use angage_core::policy::{Outcome, PolicyRequest, Stage, Verdict};
use angage_core::tenant::TenantId;
use angage_rules::{Allowance, Inputs, RuleKey, RuleRequest, RuleSet};
use futures_util::stream::FuturesUnordered;
use futures_util::{FutureExt, StreamExt};
use tokio::sync::{mpsc, oneshot};

use crate::plugins::counters::{Charge as CounterCharge, Charges, CounterOp, Counters};
use crate::plugins::outputs;
use crate::plugins::store_data::{Charging, effective_limits, to_wit_limits};
use crate::plugins::{
    Authenticator, Authorizer, CallError, KeyRef, Loaded, PluginRuntime, Prefetched, RateLimiter,
    authenticate, authorize, check, types,
};
use crate::refusals;
use crate::signatures::{self, Signed};

/// Requests a lane takes at most at once: the last of a batch waits for the ones before it.
const MAX_BATCH: usize = 64;
/// Batches a lane has started and not finished (each waits at most on one round trip).
const BATCHES_IN_FLIGHT: usize = 8;
/// Requests waiting per lane; beyond it a request is refused at once (503 `overloaded`).
const CAPACITY: usize = 4096;

/// What a lane needs; not the engine itself, so dropping the engine ends the lanes.
pub(crate) struct LaneCtx {
    pub(crate) plugins: Arc<PluginRuntime>,
    pub(crate) rules: Arc<RuleSet>,
    pub(crate) rate_limit_failure: FailMode,
    pub(crate) counters: Arc<dyn Counters>,
    pub(crate) clock: Arc<dyn angage_core::clock::Clock>,
}

/// The lanes; requests from one thread go to one lane.
pub(crate) struct Lanes {
    lanes: Vec<mpsc::Sender<Job>>,
}

struct Job {
    request: Arc<PolicyRequest>,
    /// The key the request's credential names, with its tenant's settings, as the engine read
    /// them before queueing: the lane does not ask the database.
    prefetched: Option<Arc<Prefetched>>,
    reply: oneshot::Sender<Verdict>,
}

impl Job {
    fn presented(&self) -> Option<Arc<KeyRecord>> {
        self.prefetched.as_ref().map(|p| p.key.key.clone())
    }

    fn refuse(self, caller: Option<&KeyRef>, refusal: angage_core::policy::Refusal) {
        let verdict = Verdict {
            outcome: Outcome::Refused(refusal),
            caller: caller.map(|k| k.key.clone()),
            settings: caller.map(|k| k.settings.clone()),
            presented: self.presented(),
            rate: None,
            rule: None,
        };
        self.answer(verdict);
    }

    fn answer(self, verdict: Verdict) {
        // The client may have gone; nobody is left to tell.
        let _ = self.reply.send(verdict);
    }
}

impl Lanes {
    /// Starts `lanes` lanes (0: one per CPU); they end when this is dropped.
    pub(crate) fn start(ctx: LaneCtx, lanes: usize) -> Self {
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

    /// Queues a request on this thread's lane and waits for its verdict.
    pub(crate) async fn decide(
        &self,
        request: Arc<PolicyRequest>,
        prefetched: Option<Arc<Prefetched>>,
    ) -> Verdict {
        let presented = prefetched.as_ref().map(|p| p.key.key.clone());
        let (reply, verdict) = oneshot::channel();
        let lane = &self.lanes[thread_lane() % self.lanes.len()];
        let refusal = match lane.try_send(Job { request, prefetched, reply }) {
            Ok(()) => match verdict.await {
                Ok(verdict) => return verdict,
                // The lane stopped before answering (it never does unless the host has a bug).
                Err(_) => refusals::unavailable(None, &"its lane dropped the request"),
            },
            Err(mpsc::error::TrySendError::Full(_)) => refusals::overloaded(),
            Err(mpsc::error::TrySendError::Closed(_)) => refusals::unavailable(None, &"its lane has stopped"),
        };
        Verdict {
            outcome: Outcome::Refused(refusal),
            caller: None,
            settings: None,
            presented,
            rate: None,
            rule: None,
        }
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
    // A batch waiting on a round trip (the shared counters) does not hold the lane: the next
    // one is taken meanwhile.
    let mut running = FuturesUnordered::new();
    loop {
        tokio::select! {
            biased;
            Some(()) = running.next(), if !running.is_empty() => {}
            taken = rx.recv_many(&mut jobs, MAX_BATCH), if running.len() < BATCHES_IN_FLIGHT => {
                if taken == 0 {
                    break;
                }
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
                let ctx = ctx.clone();
                running.push(async move {
                    // A panic here is a host bug: its requests get a 503 (their senders are
                    // dropped) and the lane goes on with the next batch.
                    if AssertUnwindSafe(run_batch(&ctx, batch)).catch_unwind().await.is_err() {
                        tracing::error!("a policy batch panicked; its requests were refused");
                    }
                });
            }
        }
    }
    while running.next().await.is_some() {}
}

/// A request that passed authenticate.
struct Authenticated {
    job: Job,
    key: KeyRef,
}

/// A request ready for the rate limiter.
struct Charge {
    job: Job,
    key: KeyRef,
    rule: Option<String>,
    cost: u64,
    limits: types::Limits,
}

async fn run_batch(ctx: &LaneCtx, jobs: Vec<Job>) {
    let plugins = &ctx.plugins;
    let authn = plugins.serving::<Authenticator>();
    let keys =
        authn.call_batch(&jobs, |b, s, job| authenticate(b, s, &job.request, job.prefetched.as_ref())).await;
    let mut authenticated = Vec::with_capacity(jobs.len());
    // Signed requests whose signature verified, to be charged once against replays.
    let mut fresh = Vec::new();
    for (job, key) in jobs.into_iter().zip(keys) {
        match key {
            // Whatever authenticator runs, a revoked or expired key is never a caller.
            Ok(Ok(key)) => match refusals::unusable(&key.key, job.request.time_ms)
                .or_else(|| refusals::oauth_off(&key))
            {
                Some(refusal) => job.refuse(None, refusal),
                None => match signatures::check(&key, &job.request) {
                    Ok(Signed::NotNeeded) => authenticated.push(Authenticated { job, key }),
                    Ok(Signed::Fresh(op)) => fresh.push((Authenticated { job, key }, op)),
                    Err(refusal) => job.refuse(Some(&key), refusal),
                },
            },
            Ok(Err(denial)) => job.refuse(None, outputs::denial(denial)),
            Err(error) => job.refuse(None, failed(Stage::Authenticate, &error)),
        }
    }
    if !fresh.is_empty() {
        unreplayed(ctx, fresh, &mut authenticated).await;
    }

    let authz = plugins.serving::<Authorizer>();
    let allowed = authz.call_batch(&authenticated, |b, s, a| authorize(b, s, &a.key, &a.job.request)).await;
    let mut charges = Vec::with_capacity(authenticated.len());
    for (Authenticated { job, key }, allowed) in authenticated.into_iter().zip(allowed) {
        match allowed {
            Ok(Ok(())) => charges.push(apply_rules(ctx, job, key)),
            Ok(Err(denial)) => job.refuse(Some(&key), outputs::denial(denial)),
            Err(error) => job.refuse(Some(&key), failed(Stage::Authorize, &error)),
        }
    }

    let rate = plugins.serving::<RateLimiter>();
    let decisions = if ctx.counters.batched() {
        match charge_shared(ctx, &rate, &charges).await {
            Some(decisions) => decisions,
            None => {
                // `redis.failure = "closed"`, and Redis cannot be reached.
                for c in charges {
                    c.job.refuse(Some(&c.key), refusals::counters_unavailable());
                }
                return;
            }
        }
    } else {
        rate.call_batch(&charges, |b, s, c| check(b, s, &c.key, &c.job.request, c.cost, c.limits)).await
    };
    for (c, decision) in charges.into_iter().zip(decisions) {
        let decision = match decision {
            Ok(d) => Some(d),
            Err(CallError::CountersRefused) => {
                c.job.refuse(Some(&c.key), refusals::counters_unavailable());
                continue;
            }
            Err(error) if ctx.rate_limit_failure == FailMode::Closed => {
                c.job.refuse(Some(&c.key), failed(Stage::RateLimit, &error));
                continue;
            }
            Err(_) => None,
        };
        charged(c, decision);
    }
}

/// Charges each verified signature once (one round trip for the batch when the counters are
/// shared): a signature charged before is a replay and refused; the rest go on.
async fn unreplayed(ctx: &LaneCtx, fresh: Vec<(Authenticated, CounterOp)>, out: &mut Vec<Authenticated>) {
    let charges: Charges =
        fresh.iter().map(|(_, op)| (signatures::REPLAY_NAMESPACE.to_owned(), vec![op.clone()])).collect();
    let answers = ctx.counters.charge_batch(&charges, ctx.clock.now_ms()).await;
    match answers {
        Ok(answers) => {
            for ((a, _), answer) in fresh.into_iter().zip(answers) {
                match answer {
                    CounterCharge::Charged(_) => out.push(a),
                    CounterCharge::Refused { .. } => a.job.refuse(Some(&a.key), signatures::replayed()),
                }
            }
        }
        // `redis.failure = "closed"` and Redis is out: a replay cannot be ruled out.
        Err(_) => {
            for (a, _) in fresh {
                a.job.refuse(Some(&a.key), refusals::counters_unavailable());
            }
        }
    }
}

/// The rate limiter over shared counters, in one round trip for the batch: each call runs once
/// with its charges recorded (and answered as if they fitted), the charges go to the counters
/// together, and each call runs again answered from them; that second run's decision stands.
/// `None` when the counters refuse (`redis.failure = "closed"` during an outage).
async fn charge_shared(
    ctx: &LaneCtx,
    rate: &Loaded<RateLimiter>,
    charges: &[Charge],
) -> Option<Vec<Result<types::RateDecision, CallError>>> {
    // One time for the batch's two passes (see `Charging`).
    let now_ms = ctx.clock.now_ms();
    let recorded = rate
        .call_batch(charges, |b, s, c| {
            s.data_mut().charging = Charging::Record { log: Vec::new(), now_ms };
            let out = check(b, s, &c.key, &c.job.request, c.cost, c.limits);
            let log = std::mem::take(&mut s.data_mut().charging).recorded();
            out.map(|_| log)
        })
        .await;
    let mut sent: Charges = Vec::new();
    let mut owners = Vec::new();
    for (i, log) in recorded.iter().enumerate() {
        for (namespace, ops) in log.iter().flatten() {
            sent.push((namespace.clone(), ops.clone()));
            owners.push(i);
        }
    }
    let answers = ctx.counters.charge_batch(&sent, now_ms).await.ok()?;
    let mut replies: Vec<VecDeque<(Vec<CounterOp>, CounterCharge)>> =
        charges.iter().map(|_| VecDeque::new()).collect();
    for ((owner, (_, ops)), answer) in owners.into_iter().zip(sent).zip(answers) {
        replies[owner].push_back((ops, answer));
    }
    // Each call carries its own answers (a call that cannot start skips its item, not its turn).
    let replayed: Vec<(&Charge, Mutex<VecDeque<_>>)> =
        charges.iter().zip(replies).map(|(c, r)| (c, Mutex::new(r))).collect();
    Some(
        rate.call_batch(&replayed, |b, s, (c, replies)| {
            let answers = std::mem::take(&mut *replies.lock().unwrap_or_else(|p| p.into_inner()));
            s.data_mut().charging = Charging::Replay { answers, now_ms };
            let out = check(b, s, &c.key, &c.job.request, c.cost, c.limits);
            s.data_mut().charging = Charging::Direct;
            out
        })
        .await,
    )
}

fn failed(stage: Stage, error: &CallError) -> angage_core::policy::Refusal {
    refusals::unavailable(Some(stage), error)
}

/// The tenant rule: the limits and cost this request is charged with.
fn apply_rules(ctx: &LaneCtx, job: Job, key: KeyRef) -> Charge {
    let settings = &key.settings;
    let own = Allowance::new(effective_limits(&key.key, settings));
    let inputs = || Inputs::new(rule_request(&job.request, &settings.timezone), rule_key(&key.key));
    let evaluated = ctx.rules.evaluate(&key.key.tenant_id, inputs, own);
    let limits = to_wit_limits(&evaluated.limits.limits, settings.rate_limits.burst_window_seconds);
    Charge { job, rule: evaluated.rule, cost: evaluated.limits.cost, limits, key }
}

/// Answers a charged request: served, or refused by a window; the headers as the tenant wants.
fn charged(c: Charge, decision: Option<types::RateDecision>) {
    let Charge { job, key, rule, .. } = c;
    let limits = &key.settings.rate_limits;
    let outcome = match &decision {
        Some(d) if !d.allowed => Outcome::Refused(refusals::rate_limited(
            d.denied_window.as_deref().map(outputs::window_name).as_deref(),
            outputs::retry_after(d.retry_after_seconds),
            limits.send_retry_after,
        )),
        _ => Outcome::Allowed { tenant: TenantId(key.key.tenant_id.clone()) },
    };
    let rate = decision.filter(|_| limits.send_rate_limit_headers).map(outputs::rate_state);
    let verdict = Verdict {
        outcome,
        caller: Some(key.key),
        settings: Some(key.settings),
        presented: job.presented(),
        rate,
        rule,
    };
    job.answer(verdict);
}

fn rule_request(info: &PolicyRequest, timezone: &str) -> RuleRequest {
    RuleRequest {
        method: info.method.as_str().into(),
        route: info.route.as_str().into(),
        path: info.path.as_str().into(),
        module: info.module.as_str().into(),
        operation: info.operation.as_str().into(),
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
