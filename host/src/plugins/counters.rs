//! Counters the host keeps for plugins: atomic check-and-increment over several counters (all
//! charged or none), with a time to live. In process here; shared backends plug in behind the
//! same trait.

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

/// Counters shared by plugin instances.
pub trait Counters: Send + Sync {
    fn check_and_increment(&self, ops: &[CounterOp], now_ms: i64) -> Charge;
    fn get(&self, key: &str, now_ms: i64) -> u64;
}

/// Counters in this process's memory.
#[derive(Default)]
pub struct LocalCounters {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    values: HashMap<String, (u64, i64)>,
    ops_since_sweep: u32,
}

impl Counters for LocalCounters {
    fn check_and_increment(&self, ops: &[CounterOp], now_ms: i64) -> Charge {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.ops_since_sweep += 1;
        if inner.ops_since_sweep >= 10_000 {
            inner.values.retain(|_, (_, expires)| *expires > now_ms);
            inner.ops_since_sweep = 0;
        }
        let values: Vec<u64> = ops
            .iter()
            .map(|op| inner.values.get(&op.key).filter(|(_, e)| *e > now_ms).map_or(0, |(v, _)| *v))
            .collect();
        if let Some(index) = ops.iter().zip(&values).position(|(op, v)| v.saturating_add(op.cost) > op.limit)
        {
            return Charge::Refused { index, values };
        }
        let mut out = Vec::with_capacity(ops.len());
        for op in ops {
            let expires = now_ms.saturating_add(i64::try_from(op.ttl_ms).unwrap_or(i64::MAX));
            let slot = inner.values.entry(op.key.clone()).or_insert((0, expires));
            if slot.1 <= now_ms {
                *slot = (0, expires);
            }
            slot.0 += op.cost;
            out.push(slot.0);
        }
        Charge::Charged(out)
    }

    fn get(&self, key: &str, now_ms: i64) -> u64 {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.values.get(key).filter(|(_, e)| *e > now_ms).map_or(0, |(v, _)| *v)
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
        assert_eq!(c.check_and_increment(&[op("a", 2), op("b", 1)], 0), Charge::Charged(vec![1, 1]));
        assert_eq!(
            c.check_and_increment(&[op("a", 2), op("b", 1)], 0),
            Charge::Refused { index: 1, values: vec![1, 1] }
        );
        assert_eq!(c.get("a", 0), 1, "a refused charge leaves every counter as it was");
        assert_eq!(c.get("a", 1000), 0, "expired");
        assert_eq!(c.check_and_increment(&[op("a", 2)], 1000), Charge::Charged(vec![1]));
    }
}
