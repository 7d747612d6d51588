//! State every node shares beyond the database: Redis, for rate-limit counters and login
//! throttling. One connection manager per process (it reconnects by itself); every round trip
//! is bounded by `redis.timeout_ms`; after a failure, calls fail at once for a moment instead of
//! each waiting out the timeout, then one probes.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::{Duration, Instant};

use ::redis::aio::{ConnectionManager, ConnectionManagerConfig};
use ::redis::{Client, ErrorKind, RedisResult, Script, ServerErrorKind, Value};

use angage_core::config::RedisSettings;

/// One counter to charge.
#[derive(Debug, Clone, PartialEq, Eq)]
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

/// Redis could not answer in time (or at all).
#[derive(Debug, Clone, thiserror::Error)]
#[error("Redis is unavailable: {0}")]
pub struct Unavailable(pub String);

/// How long calls fail at once after a failure, before one probes again.
const BACKOFF_MS: i64 = 500;

/// A batch of charges, each all-or-nothing over its counters, atomically on the server: every
/// counter of a charge fits its limit with its cost added, or none of that charge's is. Charges
/// run in order, so two for one counter see each other. A new counter expires with its window.
/// KEYS: every charge's counters, one charge after another; ARGV: the number of charges, then
/// for each its number of counters and, per counter, cost, limit and ttl (ms). Returns, per
/// charge, {1, -1, values...} when charged or {0, index, values...} when the counter at `index`
/// (0-based) did not fit. One script call per batch: Redis parses and dispatches it once. A
/// charge increments first and takes its increments back when one does not fit, so the common
/// case (it fits) costs one command per counter.
const CHARGE: &str = r"
local out, k, a = {}, 0, 2
for _ = 1, tonumber(ARGV[1]) do
  local n = tonumber(ARGV[a])
  a = a + 1
  local values, refused = {}, -1
  for i = 1, n do
    local key, cost = KEYS[k + i], ARGV[a + i * 3 - 3]
    local c, v = tonumber(cost), 0
    if c > 0 then
      v = redis.call('INCRBY', key, cost)
      if v == c then redis.call('PEXPIRE', key, ARGV[a + i * 3 - 1]) end
    else
      v = tonumber(redis.call('GET', key)) or 0
    end
    values[i] = v
    if v > tonumber(ARGV[a + i * 3 - 2]) then
      refused = i - 1
      for j = 1, i do
        local cj = tonumber(ARGV[a + j * 3 - 3])
        if cj > 0 then values[j] = redis.call('DECRBY', KEYS[k + j], cj) end
      end
      for j = i + 1, n do values[j] = tonumber(redis.call('GET', KEYS[k + j])) or 0 end
      break
    end
  end
  out[#out + 1] = refused < 0 and 1 or 0
  out[#out + 1] = refused
  for i = 1, n do out[#out + 1] = values[i] end
  k = k + n
  a = a + n * 3
end
return out
";

/// A process's handle on Redis.
#[derive(Clone)]
pub struct Redis(Arc<Inner>);

struct Inner {
    manager: ConnectionManager,
    charge: Script,
    prefix: String,
    timeout: Duration,
    started: Instant,
    /// Milliseconds since `started` until which calls fail at once.
    down_until: AtomicI64,
    /// Whether the last round trip failed (for the once-per-outage warning).
    down: AtomicBool,
}

impl Redis {
    /// A handle for `settings.url`; `None` when it is empty. Connects lazily, so a server starts
    /// while Redis is down and uses it once it is up.
    pub fn open(settings: &RedisSettings) -> Result<Option<Self>, Unavailable> {
        if settings.url.is_empty() {
            return Ok(None);
        }
        let client = Client::open(settings.url.as_str()).map_err(|e| Unavailable(e.to_string()))?;
        let timeout = Duration::from_millis(settings.timeout_ms);
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(1)))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(200));
        let manager = ConnectionManager::new_lazy_with_config(client, config)
            .map_err(|e| Unavailable(e.to_string()))?;
        Ok(Some(Self(Arc::new(Inner {
            manager,
            charge: Script::new(CHARGE),
            prefix: settings.prefix.clone(),
            timeout,
            started: Instant::now(),
            down_until: AtomicI64::new(0),
            down: AtomicBool::new(false),
        }))))
    }

    /// The key this deployment uses for `name`.
    pub fn key(&self, name: &str) -> String {
        format!("{}{name}", self.0.prefix)
    }

    /// Whether the last round trip succeeded.
    pub fn is_up(&self) -> bool {
        !self.0.down.load(Ordering::Acquire)
    }

    fn now_ms(&self) -> i64 {
        i64::try_from(self.0.started.elapsed().as_millis()).unwrap_or(i64::MAX)
    }

    /// One round trip, bounded, counted, and failed at once while Redis was just seen down.
    async fn round_trip<T>(
        &self,
        what: &'static str,
        call: impl Future<Output = RedisResult<T>>,
    ) -> Result<T, Unavailable> {
        if self.now_ms() < self.0.down_until.load(Ordering::Acquire) {
            return Err(Unavailable("down a moment ago".into()));
        }
        metrics::counter!("angage_redis_round_trips_total", "op" => what).increment(1);
        let started = Instant::now();
        let result = match tokio::time::timeout(self.0.timeout, call).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(Unavailable(e.to_string())),
            Err(_) => Err(Unavailable(format!("no answer within {:?}", self.0.timeout))),
        };
        metrics::histogram!("angage_redis_round_trip_seconds").record(started.elapsed().as_secs_f64());
        match &result {
            Ok(_) => {
                if self.0.down.swap(false, Ordering::AcqRel) {
                    tracing::info!("Redis answers again");
                    metrics::gauge!("angage_redis_up").set(1.0);
                }
            }
            Err(e) => {
                metrics::counter!("angage_redis_failures_total").increment(1);
                self.0.down_until.store(self.now_ms() + BACKOFF_MS, Ordering::Release);
                if !self.0.down.swap(true, Ordering::AcqRel) {
                    tracing::warn!(error = %e, "Redis is unavailable; falling back as redis.failure says");
                    metrics::gauge!("angage_redis_up").set(0.0);
                }
            }
        }
        result
    }

    /// Whether Redis answers a PING now (for `/readyz`).
    pub async fn ping(&self) -> bool {
        let mut conn = self.0.manager.clone();
        self.round_trip("ping", async move { ::redis::cmd("PING").query_async::<String>(&mut conn).await })
            .await
            .is_ok()
    }

    /// Charges several requests' counters in one round trip and one script call, in order.
    /// `namespace` keeps plugins' counters apart.
    pub async fn charge_batch(&self, charges: &[(&str, &[CounterOp])]) -> Result<Vec<Charge>, Unavailable> {
        if charges.is_empty() {
            return Ok(Vec::new());
        }
        let keys: usize = charges.iter().map(|(_, ops)| ops.len()).sum();
        let mut pipe = ::redis::pipe();
        let cmd = pipe.cmd("EVALSHA").arg(self.0.charge.get_hash()).arg(keys);
        for (namespace, ops) in charges {
            for op in *ops {
                cmd.arg(self.counter_key(namespace, &op.key));
            }
        }
        cmd.arg(charges.len());
        for (_, ops) in charges {
            cmd.arg(ops.len());
            for op in *ops {
                cmd.arg(op.cost).arg(op.limit).arg(op.ttl_ms.max(1));
            }
        }
        let mut values: Vec<Value> = self.pipeline_with_script(&pipe).await?;
        let bad = || Unavailable("an unexpected answer to a charge".into());
        let Some(Value::Array(items)) = values.pop().filter(|_| values.is_empty()) else { return Err(bad()) };
        let mut items = items.into_iter();
        charges.iter().map(|(_, ops)| parse_charge(ops.len(), items.by_ref().take(ops.len() + 2))).collect()
    }

    /// A pipeline holding the script call; when Redis lost the script (a restart, a flush), it is
    /// loaded and the pipeline sent once more.
    async fn pipeline_with_script(&self, pipe: &::redis::Pipeline) -> Result<Vec<Value>, Unavailable> {
        let mut conn = self.0.manager.clone();
        let first =
            self.round_trip("charge", async { Ok(pipe.query_async::<Vec<Value>>(&mut conn).await) }).await?;
        match first {
            Ok(values) => Ok(values),
            Err(e) if e.kind() == ErrorKind::Server(ServerErrorKind::NoScript) => {
                let mut conn = self.0.manager.clone();
                let script = &self.0.charge;
                self.round_trip("load", async move {
                    script.load_async(&mut conn).await?;
                    pipe.query_async::<Vec<Value>>(&mut conn).await
                })
                .await
            }
            Err(e) => {
                let e = Unavailable(e.to_string());
                tracing::warn!(error = %e, "Redis refused a charge");
                Err(e)
            }
        }
    }

    /// Counters' values, in order (0 for an absent one).
    pub async fn get_many(&self, namespace: &str, keys: &[String]) -> Result<Vec<u64>, Unavailable> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let names: Vec<String> = keys.iter().map(|k| self.counter_key(namespace, k)).collect();
        let mut conn = self.0.manager.clone();
        let values: Vec<Option<u64>> = self
            .round_trip("get", async move { ::redis::cmd("MGET").arg(&names).query_async(&mut conn).await })
            .await?;
        Ok(values.into_iter().map(Option::unwrap_or_default).collect())
    }

    /// Runs `script` over `keys` with `args` and `last` as arguments; its integer answer.
    pub async fn script(
        &self,
        script: &Script,
        keys: &[String],
        args: &[i64],
        last: &str,
    ) -> Result<i64, Unavailable> {
        let mut invocation = script.prepare_invoke();
        for k in keys {
            invocation.key(k);
        }
        for a in args {
            invocation.arg(*a);
        }
        invocation.arg(last);
        let mut conn = self.0.manager.clone();
        self.round_trip("script", async move { invocation.invoke_async::<i64>(&mut conn).await }).await
    }

    /// Forgives one attempt: `account` starts over and `member` leaves `address`'s set.
    pub async fn forgive(&self, account: &str, address: &str, member: &str) -> Result<(), Unavailable> {
        let (account, address, member) = (account.to_owned(), address.to_owned(), member.to_owned());
        let mut conn = self.0.manager.clone();
        self.round_trip("forgive", async move {
            ::redis::pipe()
                .atomic()
                .cmd("DEL")
                .arg(&account)
                .ignore()
                .cmd("ZREM")
                .arg(&address)
                .arg(&member)
                .ignore()
                .query_async::<()>(&mut conn)
                .await
        })
        .await
    }

    fn counter_key(&self, namespace: &str, key: &str) -> String {
        format!("{}c:{namespace}:{key}", self.0.prefix)
    }
}

/// The script's answer: {1, -1, values...} or {0, index, values...}.
/// One charge's part of the script's answer: `n` + 2 integers.
fn parse_charge(n: usize, items: impl Iterator<Item = Value>) -> Result<Charge, Unavailable> {
    let bad = || Unavailable("an unexpected answer to a charge".into());
    let numbers: Vec<i64> = items
        .map(|v| match v {
            Value::Int(i) => Ok(i),
            _ => Err(bad()),
        })
        .collect::<Result<_, _>>()?;
    if numbers.len() != n + 2 {
        return Err(bad());
    }
    let values = numbers[2..].iter().map(|v| u64::try_from(*v).unwrap_or(0)).collect();
    Ok(if numbers[0] == 1 {
        Charge::Charged(values)
    } else {
        Charge::Refused { index: usize::try_from(numbers[1]).map_err(|_| bad())?, values }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(key: &str, cost: u64, limit: u64) -> CounterOp {
        CounterOp { key: key.into(), cost, limit, ttl_ms: 60_000 }
    }

    /// Against the Redis of `ANGAGE_TEST_REDIS_URL`, under a prefix of its own.
    #[tokio::test]
    async fn a_batch_charges_in_order_and_each_charge_all_or_nothing() {
        let Some(url) = std::env::var("ANGAGE_TEST_REDIS_URL").ok().filter(|u| !u.is_empty()) else {
            let required = std::env::var("ANGAGE_TEST_REQUIRE_SERVICES").is_ok_and(|v| v == "1");
            assert!(!required, "ANGAGE_TEST_REDIS_URL is not set, and ANGAGE_TEST_REQUIRE_SERVICES=1");
            eprintln!("ANGAGE_TEST_REDIS_URL is not set: skipping");
            return;
        };
        let prefix = format!("angage-t-{}:", angage_core::ids::random_base62(10));
        let settings = RedisSettings {
            url,
            failure: angage_core::config::RedisFailure::Closed,
            timeout_ms: 1000,
            prefix,
        };
        let redis = Redis::open(&settings).expect("url").expect("configured");
        let both = [op("a", 1, 2), op("b", 1, 1)];
        let only_a = [op("a", 1, 2)];
        let answers = redis
            .charge_batch(&[("p", &both), ("p", &both), ("p", &only_a), ("q", &only_a)])
            .await
            .expect("charged");
        assert_eq!(
            answers,
            [
                Charge::Charged(vec![1, 1]),
                // `b` is full, so `a` is not charged either, and the next charge sees that.
                Charge::Refused { index: 1, values: vec![1, 1] },
                Charge::Charged(vec![2]),
                // Another namespace, other counters.
                Charge::Charged(vec![1]),
            ]
        );
        assert_eq!(
            redis.get_many("p", &["a".into(), "b".into(), "c".into()]).await.expect("read"),
            [2, 1, 0]
        );
        let mut conn = redis.0.manager.clone();
        let keys: Vec<String> = ::redis::cmd("KEYS")
            .arg(format!("{}*", settings.prefix))
            .query_async(&mut conn)
            .await
            .expect("keys");
        let ttl: i64 = ::redis::cmd("PTTL").arg(&keys[0]).query_async(&mut conn).await.expect("ttl");
        assert!(ttl > 0 && ttl <= 60_000, "a counter expires with its window: {ttl}");
        let _: i64 = ::redis::cmd("DEL").arg(&keys).query_async(&mut conn).await.expect("del");
    }
}
