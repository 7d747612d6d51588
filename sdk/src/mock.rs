//! A host for native unit tests: keys, counters, a clock, configuration and captured logs, on
//! the current thread. In a `wasm32` build the real host is used and nothing here runs.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use crate::{ChargeResult, CounterOp, KeyRecord, Level, Refusal};

/// What a test sets up and later inspects.
#[derive(Debug, Default, Clone)]
pub struct MockHost {
    state: Rc<RefCell<State>>,
}

#[derive(Debug, Default)]
struct State {
    keys: HashMap<String, KeyRecord>,
    counters: HashMap<String, (u64, i64)>,
    now_ms: i64,
    config: String,
    logs: Vec<(Level, String)>,
    metrics: HashMap<String, u64>,
    lookups: usize,
}

thread_local! {
    static CURRENT: RefCell<Option<MockHost>> = const { RefCell::new(None) };
}

impl MockHost {
    /// An empty host: no keys, time 0, configuration `{}`.
    pub fn new() -> Self {
        let host = Self::default();
        host.state.borrow_mut().config = "{}".into();
        host
    }

    /// Makes `presented` resolve to `record`.
    pub fn with_key(self, presented: &str, record: KeyRecord) -> Self {
        self.state.borrow_mut().keys.insert(presented.to_owned(), record);
        self
    }

    /// Sets the clock.
    pub fn with_time_ms(self, now_ms: i64) -> Self {
        self.state.borrow_mut().now_ms = now_ms;
        self
    }

    /// Sets the plugin's configuration JSON.
    pub fn with_config(self, json: &str) -> Self {
        self.state.borrow_mut().config = json.to_owned();
        self
    }

    /// Moves the clock.
    pub fn advance_ms(&self, ms: i64) {
        self.state.borrow_mut().now_ms += ms;
    }

    /// Makes this the host of the current thread (replacing any other).
    pub fn install(&self) {
        CURRENT.with(|c| *c.borrow_mut() = Some(self.clone()));
    }

    /// Log lines the plugin wrote.
    pub fn logs(&self) -> Vec<(Level, String)> {
        self.state.borrow().logs.clone()
    }

    /// How many times the plugin asked to look a key up.
    pub fn lookups(&self) -> usize {
        self.state.borrow().lookups
    }

    /// A metric's total.
    pub fn metric(&self, name: &str) -> u64 {
        self.state.borrow().metrics.get(name).copied().unwrap_or(0)
    }
}

/// The native implementations behind [`crate::host`].
#[doc(hidden)]
pub mod native {
    use super::*;

    fn with<T>(f: impl FnOnce(&mut State) -> T) -> T {
        CURRENT.with(|c| {
            let current = c.borrow();
            let host = current
                .as_ref()
                .expect("no MockHost installed on this thread: call MockHost::install() first");
            let mut state = host.state.borrow_mut();
            f(&mut state)
        })
    }

    pub fn lookup_key(presented: &str) -> Option<KeyRecord> {
        with(|s| {
            s.lookups += 1;
            s.keys.get(presented).cloned()
        })
    }

    pub fn check_and_increment(ops: &[CounterOp]) -> ChargeResult {
        with(|s| {
            let now = s.now_ms;
            s.counters.retain(|_, (_, expires)| *expires > now);
            let values: Vec<u64> = ops.iter().map(|op| s.counters.get(&op.key).map_or(0, |c| c.0)).collect();
            if let Some(index) = ops.iter().zip(&values).position(|(op, v)| v + op.cost > op.limit) {
                return ChargeResult::Refused(Refusal { index: index as u32, values });
            }
            let mut out = Vec::with_capacity(ops.len());
            for op in ops {
                let ttl = i64::try_from(op.ttl_ms).unwrap_or(i64::MAX);
                let slot = s.counters.entry(op.key.clone()).or_insert((0, now.saturating_add(ttl)));
                slot.0 += op.cost;
                out.push(slot.0);
            }
            ChargeResult::Charged(out)
        })
    }

    pub fn get_counter(key: &str) -> u64 {
        with(|s| {
            let now = s.now_ms;
            s.counters.get(key).filter(|c| c.1 > now).map_or(0, |c| c.0)
        })
    }

    pub fn now_ms() -> i64 {
        with(|s| s.now_ms)
    }

    pub fn log(level: Level, message: &str) {
        with(|s| s.logs.push((level, message.to_owned())))
    }

    pub fn metric_increment(name: &str, value: u64) {
        with(|s| *s.metrics.entry(name.to_owned()).or_default() += value)
    }

    pub fn config() -> String {
        with(|s| s.config.clone())
    }
}
