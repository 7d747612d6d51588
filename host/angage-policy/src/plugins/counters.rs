//! Counters the host keeps for plugins: atomic check-and-increment over several counters (all
//! charged or none), with a time to live. Each plugin has its own namespace. In process here;
//! shared backends plug in behind the same trait.

use std::collections::HashMap;
use std::sync::Mutex;

/// One counter to charge.
#[derive(Debug, Clone)]
pub struct CounterOp {
    pub key: String,
    pub cost: u64,
    pub limit: u64,
    pub ttl_ms: u64,
}

/// The outcome of a charge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Charge {
    /// Every op fitted; the new values.
    Charged(Vec<u64>),
    /// The first op that did not fit, and the current values; nothing was charged.
    Refused { index: usize, values: Vec<u64> },
}

/// Counters shared by plugin instances; `namespace` is the calling plugin's name.
pub trait Counters: Send + Sync {
    /// Takes the ops by value so a new counter keeps the key without copying it.
    fn check_and_increment(&self, namespace: &str, ops: Vec<CounterOp>, now_ms: i64) -> Charge;
    /// Several counters' values, in order (0 for an absent one).
    fn get_many(&self, namespace: &str, keys: &[String], now_ms: i64) -> Vec<u64>;
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
    fn check_and_increment(&self, namespace: &str, ops: Vec<CounterOp>, now_ms: i64) -> Charge {
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

    fn get_many(&self, namespace: &str, keys: &[String], now_ms: i64) -> Vec<u64> {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let current = inner.namespaces.get(namespace);
        keys.iter().map(|k| value(current, k, now_ms)).collect()
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
        assert_eq!(c.check_and_increment("p", vec![op("a", 2), op("b", 1)], 0), Charge::Charged(vec![1, 1]));
        assert_eq!(
            c.check_and_increment("p", vec![op("a", 2), op("b", 1)], 0),
            Charge::Refused { index: 1, values: vec![1, 1] }
        );
        assert_eq!(c.get_many("p", &["a".into()], 0), [1], "a refused charge leaves every counter as it was");
        assert_eq!(c.get_many("p", &["a".into(), "z".into()], 1000), [0, 0], "expired");
        assert_eq!(c.check_and_increment("p", vec![op("a", 2)], 1000), Charge::Charged(vec![1]));
    }

    #[test]
    fn plugins_do_not_share_counters() {
        let c = LocalCounters::default();
        assert_eq!(c.check_and_increment("p", vec![op("a", 1)], 0), Charge::Charged(vec![1]));
        assert_eq!(c.get_many("q", &["a".into()], 0), [0]);
        assert_eq!(c.check_and_increment("q", vec![op("a", 1)], 0), Charge::Charged(vec![1]));
    }
}
