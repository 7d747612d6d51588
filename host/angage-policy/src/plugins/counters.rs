//! Counters the host keeps for plugins: atomic check-and-increment over several counters (all
//! charged or none), with a time to live. Each plugin has its own namespace. In this process
//! ([`LocalCounters`]), or in Redis for every node ([`SharedCounters`]), where a lane's whole
//! batch of charges is one round trip (`lanes.rs` records the charges, sends them, replays).

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;

use angage_core::config::RedisFailure;
use angage_store::shared::Redis;
pub use angage_store::shared::{Charge, CounterOp};

/// Several calls' charges: each call's plugin namespace and ops.
pub type Charges = Vec<(String, Vec<CounterOp>)>;

/// Charges could not be made, and `redis.failure = "closed"` says to refuse.
#[derive(Debug, Clone, thiserror::Error)]
#[error("the shared counters are unavailable")]
pub struct Refuse;

/// Counters shared by plugin instances; `namespace` is the calling plugin's name.
pub trait Counters: Send + Sync {
    /// Takes the ops by value so a new counter keeps the key without copying it.
    fn check_and_increment(
        &self,
        namespace: &str,
        ops: Vec<CounterOp>,
        now_ms: i64,
    ) -> Result<Charge, Refuse>;
    /// Several counters' values, in order (0 for an absent one).
    fn get_many(&self, namespace: &str, keys: &[String], now_ms: i64) -> Result<Vec<u64>, Refuse>;
    /// Whether a batch's charges are worth gathering into one [`Counters::charge_batch`] (a
    /// round trip to make), rather than made one call at a time.
    fn batched(&self) -> bool {
        false
    }
    /// Every call's charges, in order, in one round trip.
    fn charge_batch<'a>(
        &'a self,
        charges: &'a [(String, Vec<CounterOp>)],
        now_ms: i64,
    ) -> Pin<Box<dyn Future<Output = Result<Vec<Charge>, Refuse>> + Send + 'a>> {
        Box::pin(async move {
            charges.iter().map(|(ns, ops)| self.check_and_increment(ns, ops.clone(), now_ms)).collect()
        })
    }
}

/// Counters in this process's memory.
#[derive(Default)]
pub struct LocalCounters {
    inner: Mutex<Inner>,
}

// foldhash rather than SipHash: ten counter keys are hashed per request, and the keys are
// made by plugins from the host's key ids, not by API callers.
type Values = HashMap<String, (u64, i64), foldhash::fast::RandomState>;

#[derive(Default)]
struct Inner {
    namespaces: HashMap<String, Values, foldhash::fast::RandomState>,
    ops_since_sweep: u32,
}

fn value(values: Option<&Values>, key: &str, now_ms: i64) -> u64 {
    values.and_then(|v| v.get(key)).filter(|(_, e)| *e > now_ms).map_or(0, |(v, _)| *v)
}

impl Counters for LocalCounters {
    fn check_and_increment(
        &self,
        namespace: &str,
        ops: Vec<CounterOp>,
        now_ms: i64,
    ) -> Result<Charge, Refuse> {
        Ok(self.charge(namespace, ops, now_ms))
    }

    fn get_many(&self, namespace: &str, keys: &[String], now_ms: i64) -> Result<Vec<u64>, Refuse> {
        Ok(self.values(namespace, keys, now_ms))
    }
}

impl LocalCounters {
    fn charge(&self, namespace: &str, ops: Vec<CounterOp>, now_ms: i64) -> Charge {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.ops_since_sweep += 1;
        if inner.ops_since_sweep >= 10_000 {
            for values in inner.namespaces.values_mut() {
                values.retain(|_, (_, expires)| *expires > now_ms);
            }
            inner.ops_since_sweep = 0;
        }
        let current = inner.namespaces.get(namespace);
        let values: Vec<u64> = ops.iter().map(|op| value(current, &op.key, now_ms)).collect();
        if let Some(index) = ops.iter().zip(&values).position(|(op, v)| v.saturating_add(op.cost) > op.limit)
        {
            return Charge::Refused { index, values };
        }
        let counters = match inner.namespaces.get_mut(namespace) {
            Some(c) => c,
            None => inner.namespaces.entry(namespace.to_owned()).or_default(),
        };
        let mut out = Vec::with_capacity(ops.len());
        for op in ops {
            let expires = now_ms.saturating_add(i64::try_from(op.ttl_ms).unwrap_or(i64::MAX));
            let slot = counters.entry(op.key).or_insert((0, expires));
            if slot.1 <= now_ms {
                *slot = (0, expires);
            }
            slot.0 += op.cost;
            out.push(slot.0);
        }
        Charge::Charged(out)
    }

    fn values(&self, namespace: &str, keys: &[String], now_ms: i64) -> Vec<u64> {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let current = inner.namespaces.get(namespace);
        keys.iter().map(|k| value(current, k, now_ms)).collect()
    }
}

/// Counters in Redis, for every node; while Redis cannot be reached, `redis.failure` decides:
/// this node's own counters (`local`), no counting (`open`) or refusal (`closed`).
pub struct SharedCounters {
    redis: Redis,
    failure: RedisFailure,
    local: LocalCounters,
}

impl SharedCounters {
    pub fn new(redis: Redis, failure: RedisFailure) -> Self {
        Self { redis, failure, local: LocalCounters::default() }
    }

    /// What a charge gets while Redis is away.
    fn fallback(&self, namespace: &str, ops: Vec<CounterOp>, now_ms: i64) -> Result<Charge, Refuse> {
        metrics::counter!("angage_redis_fallbacks_total", "mode" => mode_name(self.failure)).increment(1);
        match self.failure {
            RedisFailure::Local => Ok(self.local.charge(namespace, ops, now_ms)),
            RedisFailure::Open => Ok(Charge::Charged(ops.iter().map(|o| o.cost).collect())),
            RedisFailure::Closed => Err(Refuse),
        }
    }
}

fn mode_name(mode: RedisFailure) -> &'static str {
    match mode {
        RedisFailure::Local => "local",
        RedisFailure::Open => "open",
        RedisFailure::Closed => "closed",
    }
}

/// A round trip from inside a plugin call (a cache of the plugin's missed, or a charge that did
/// not go as recorded): this worker waits for it, bounded by `redis.timeout_ms`.
fn wait<T>(call: impl Future<Output = T>) -> Option<T> {
    let handle = tokio::runtime::Handle::try_current().ok()?;
    (handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread)
        .then(|| tokio::task::block_in_place(|| handle.block_on(call)))
}

impl Counters for SharedCounters {
    fn check_and_increment(
        &self,
        namespace: &str,
        ops: Vec<CounterOp>,
        now_ms: i64,
    ) -> Result<Charge, Refuse> {
        let charges = [(namespace, ops.as_slice())];
        match wait(self.redis.charge_batch(&charges)) {
            Some(Ok(mut answers)) if answers.len() == 1 => Ok(answers.remove(0)),
            _ => self.fallback(namespace, ops, now_ms),
        }
    }

    fn get_many(&self, namespace: &str, keys: &[String], now_ms: i64) -> Result<Vec<u64>, Refuse> {
        match wait(self.redis.get_many(namespace, keys)) {
            Some(Ok(values)) => Ok(values),
            _ => match self.failure {
                RedisFailure::Local => Ok(self.local.values(namespace, keys, now_ms)),
                RedisFailure::Open => Ok(vec![0; keys.len()]),
                RedisFailure::Closed => Err(Refuse),
            },
        }
    }

    fn batched(&self) -> bool {
        true
    }

    fn charge_batch<'a>(
        &'a self,
        charges: &'a [(String, Vec<CounterOp>)],
        now_ms: i64,
    ) -> Pin<Box<dyn Future<Output = Result<Vec<Charge>, Refuse>> + Send + 'a>> {
        Box::pin(async move {
            let refs: Vec<(&str, &[CounterOp])> =
                charges.iter().map(|(ns, ops)| (ns.as_str(), ops.as_slice())).collect();
            match self.redis.charge_batch(&refs).await {
                Ok(answers) if answers.len() == charges.len() => Ok(answers),
                _ => charges.iter().map(|(ns, ops)| self.fallback(ns, ops.clone(), now_ms)).collect(),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(key: &str, limit: u64) -> CounterOp {
        CounterOp { key: key.into(), cost: 1, limit, ttl_ms: 1000 }
    }

    #[test]
    fn all_or_nothing_and_expiry() {
        let c = LocalCounters::default();
        assert_eq!(c.charge("p", vec![op("a", 2), op("b", 1)], 0), Charge::Charged(vec![1, 1]));
        assert_eq!(
            c.charge("p", vec![op("a", 2), op("b", 1)], 0),
            Charge::Refused { index: 1, values: vec![1, 1] }
        );
        assert_eq!(c.values("p", &["a".into()], 0), [1], "a refused charge leaves every counter as it was");
        assert_eq!(c.values("p", &["a".into(), "z".into()], 1000), [0, 0], "expired");
        assert_eq!(c.charge("p", vec![op("a", 2)], 1000), Charge::Charged(vec![1]));
    }

    #[test]
    fn plugins_do_not_share_counters() {
        let c = LocalCounters::default();
        assert_eq!(c.charge("p", vec![op("a", 1)], 0), Charge::Charged(vec![1]));
        assert_eq!(c.values("q", &["a".into()], 0), [0]);
        assert_eq!(c.charge("q", vec![op("a", 1)], 0), Charge::Charged(vec![1]));
    }
}
