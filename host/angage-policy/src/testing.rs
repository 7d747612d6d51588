//! Seams for benches and tests (feature `testing`, never in the server's own build): a policy
//! that skips the stages, and the stages called one by one.

use std::sync::Arc;

use angage_core::policy::{
    BoxFuture, Exchange, Outcome, Policy, PolicyRequest, Refusal, StageStatus, Verdict,
};
use angage_core::tenant::TenantId;
use angage_store::keys::cache::Lookup;

use angage_core::config::Settings;

use crate::engine::{Services, StartError, credential};
use crate::enrich::record_draft;
use crate::plugins::store_data::key_state;
use crate::plugins::{
    Authenticator, Authorizer, KeyRef, PluginRuntime, RateLimiter, UsageEnricher, authenticate, authorize,
    check, enrich, types,
};

/// The stages skipped: the key is still looked up for its tenant and the exchange recorded from
/// the host's own usage event, so a comparison with the engine measures the stages alone.
pub struct Bypass(Services);

impl Bypass {
    pub fn new(services: &Services) -> Self {
        Self(services.clone())
    }
}

impl Policy for Bypass {
    fn decide(&self, request: Arc<PolicyRequest>) -> BoxFuture<'_, Verdict> {
        Box::pin(async move {
            let s = &self.0;
            let found = match credential(&request.headers) {
                Some(presented) => s.keys.lookup(&s.db, presented, request.time_ms).await.ok(),
                None => None,
            };
            let (outcome, presented) = match found {
                Some(Lookup::Found(key)) => {
                    (Outcome::Allowed { tenant: TenantId(key.tenant_id.clone()) }, Some(key))
                }
                _ => {
                    let refusal = Refusal {
                        status: 401,
                        code: "invalid_api_key".into(),
                        detail: "Invalid API key".into(),
                        retry_after: None,
                    };
                    (Outcome::Refused(refusal), None)
                }
            };
            Verdict { outcome, caller: None, settings: None, presented, rate: None, rule: None }
        })
    }

    fn finished(&self, exchange: Exchange) {
        let _ticket = self.0.usage.ticket();
        record_draft(&self.0.usage, exchange);
    }

    fn status(&self) -> Vec<StageStatus> {
        Vec::new()
    }

    fn check_plugin(&self, _: String, _: Arc<[u8]>) -> BoxFuture<'_, Result<String, String>> {
        Box::pin(async { Err("the stages are bypassed: no plugin is loaded".to_owned()) })
    }
}

/// The four stages called directly on warm instances of the configured plugins, one request at
/// a time or a lane's batch at a time: what the pipeline bench measures.
pub struct Stages {
    plugins: Arc<PluginRuntime>,
}

/// A caller authenticate returned.
pub struct Caller(KeyRef);

impl Stages {
    pub fn start(settings: Arc<Settings>, services: &Services) -> Result<Self, StartError> {
        Ok(Self { plugins: PluginRuntime::start(settings, services.host_ctx(), &[])? })
    }

    pub async fn authenticate(&self, request: &Arc<PolicyRequest>) -> Caller {
        let key =
            self.plugins.serving::<Authenticator>().call(|b, s| authenticate(b, s, request, None)).await;
        Caller(key.expect("authenticate runs").expect("authenticated"))
    }

    pub async fn authorize(&self, caller: &Caller, request: &Arc<PolicyRequest>) {
        let allowed =
            self.plugins.serving::<Authorizer>().call(|b, s| authorize(b, s, &caller.0, request)).await;
        allowed.expect("authorize runs").expect("allowed");
    }

    /// Charges one unit against the caller's effective limits.
    pub async fn rate_limit(&self, caller: &Caller, request: &Arc<PolicyRequest>) -> bool {
        let limits = key_state(&caller.0.key, &caller.0.settings).limits;
        let rate = self.plugins.serving::<RateLimiter>();
        rate.call(|b, s| check(b, s, &caller.0, request, 1, limits)).await.expect("rate-limit runs").allowed
    }

    pub async fn enrich(&self, caller: &Caller, request: &Arc<PolicyRequest>) {
        let draft = draft(&caller.0);
        let enricher = self.plugins.serving::<UsageEnricher>();
        let event = enricher.call(|b, s| enrich(b, s, request, Some(&caller.0), &draft)).await;
        std::hint::black_box(event.expect("enrich-usage runs"));
    }

    /// One request's worth of policy: the four stage calls.
    pub async fn one(&self, request: &Arc<PolicyRequest>) {
        let caller = self.authenticate(request).await;
        self.authorize(&caller, request).await;
        assert!(self.rate_limit(&caller, request).await, "allowed");
        self.enrich(&caller, request).await;
    }

    /// A batch's policy the way a lane runs it: each stage over the whole batch.
    pub async fn batch(&self, requests: &[Arc<PolicyRequest>]) {
        let p = &self.plugins;
        let keys: Vec<KeyRef> = p
            .serving::<Authenticator>()
            .call_batch(requests, |b, s, r| authenticate(b, s, r, None))
            .await
            .into_iter()
            .map(|k| k.expect("authenticate runs").expect("authenticated"))
            .collect();
        let pairs: Vec<_> = keys.iter().zip(requests).collect();
        for allowed in
            p.serving::<Authorizer>().call_batch(&pairs, |b, s, (k, r)| authorize(b, s, k, r)).await
        {
            allowed.expect("authorize runs").expect("allowed");
        }
        let limits = key_state(&keys[0].key, &keys[0].settings).limits;
        for d in
            p.serving::<RateLimiter>().call_batch(&pairs, |b, s, (k, r)| check(b, s, k, r, 1, limits)).await
        {
            assert!(d.expect("rate-limit runs").allowed);
        }
        let drafts: Vec<_> = pairs.iter().map(|(k, r)| (*k, *r, draft(k))).collect();
        let enricher = p.serving::<UsageEnricher>();
        std::hint::black_box(
            enricher.call_batch(&drafts, |b, s, (k, r, d)| enrich(b, s, r, Some(k), d)).await,
        );
    }
}

/// The host's draft usage event for a 200 (the engine builds one per request).
fn draft(key: &KeyRef) -> types::UsageEvent {
    types::UsageEvent {
        endpoint: "GET /customers/{id}".into(),
        module: "customers".into(),
        key_id: Some(key.key.id.clone()),
        status: 200,
        status_class: "2xx".into(),
        error_code: None,
        latency_us: 350,
        tags: Vec::new(),
    }
}
