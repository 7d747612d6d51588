//! The request path's key lookup: format and checksum first (no database for a made-up key),
//! then the digest in an in-memory cache, then the store. Last-used times are aggregated here and
//! flushed periodically, never written per request.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, RwLock};

use metrics::Counter;

use angage_core::key::KeyRecord;

use super::store;
use super::{ApiKey, KeyFormatError, Pepper};
use crate::db::Db;

/// Most unknown digests remembered; past that the negative entries are dropped.
const MAX_NEGATIVE: usize = 10_000;

/// The outcome of looking up a presented credential.
#[derive(Debug, Clone)]
pub enum Lookup {
    /// Not a key at all (format or checksum); no database was asked.
    Malformed(KeyFormatError),
    /// Well-formed but not issued here.
    Unknown,
    Found(Arc<KeyRecord>),
}

struct Entry {
    record: Option<Arc<KeyRecord>>,
    fetched_at: i64,
}

/// A digest is already uniformly random: its first eight bytes are a perfect hash.
#[derive(Default)]
struct DigestHasher(u64);

impl Hasher for DigestHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for (i, b) in bytes.iter().take(8).enumerate() {
            self.0 |= u64::from(*b) << (8 * i);
        }
    }
}

type Digest = [u8; 32];
type Entries = HashMap<Digest, Entry, BuildHasherDefault<DigestHasher>>;

/// Digest → key record, with a time to live so changes made by other processes (the CLI, other
/// nodes) are seen within `ttl_ms`; changes made through this process invalidate at once.
pub struct KeyCache {
    pepper: Pepper,
    ttl_ms: i64,
    entries: RwLock<Entries>,
    negative: Mutex<usize>,
    /// Last-used times of records no longer cached, waiting for the next flush.
    pending: Mutex<HashMap<String, i64>>,
    hits: Counter,
    misses: Counter,
    /// Bumped by every invalidation: a read from the store that began before one is not cached
    /// (it may hold what the invalidation was about).
    generation: std::sync::atomic::AtomicU64,
}

impl KeyCache {
    pub fn new(pepper: Pepper, ttl_ms: i64) -> Self {
        Self {
            pepper,
            ttl_ms,
            entries: RwLock::new(Entries::default()),
            negative: Mutex::new(0),
            pending: Mutex::new(HashMap::new()),
            hits: metrics::counter!("angage_key_cache_hits_total"),
            misses: metrics::counter!("angage_key_cache_misses_total"),
            generation: std::sync::atomic::AtomicU64::new(0),
        }
    }

    pub fn pepper(&self) -> &Pepper {
        &self.pepper
    }

    /// Looks a presented secret up, and records its use.
    pub async fn lookup(&self, db: &Db, presented: &str, now: i64) -> Result<Lookup, sqlx::Error> {
        match self.lookup_cached(presented, now) {
            Ok(found) => Ok(found),
            Err(digest) => {
                self.misses.increment(1);
                let generation = self.generation();
                let digest_hex = hex::encode(digest);
                let record = if angage_plugin_sdk::keyfmt::is_token(presented) {
                    crate::oauth::tokens::lookup(db, &digest_hex).await?
                } else {
                    store::lookup(db, &digest_hex).await?
                };
                let record = record.map(Arc::new);
                self.insert(digest, record.clone(), now, generation);
                Ok(self.found(record, now))
            }
        }
    }

    /// The synchronous part of a lookup: format, checksum, digest and the cache. `Err(digest)`
    /// when the store must be asked.
    pub fn lookup_cached(&self, presented: &str, now: i64) -> Result<Lookup, Digest> {
        let key = match ApiKey::parse(presented) {
            Ok(k) => k,
            Err(e) => return Ok(Lookup::Malformed(e)),
        };
        let digest = self.pepper.digest_bytes(&key);
        match self.cached(&digest, now) {
            Some(hit) => {
                self.hits.increment(1);
                Ok(self.found(hit, now))
            }
            None => Err(digest),
        }
    }

    fn cached(&self, digest: &Digest, now: i64) -> Option<Option<Arc<KeyRecord>>> {
        let entries = self.entries.read().unwrap_or_else(|p| p.into_inner());
        let entry = entries.get(digest)?;
        (now - entry.fetched_at < self.ttl_ms).then(|| entry.record.clone())
    }

    fn found(&self, record: Option<Arc<KeyRecord>>, now: i64) -> Lookup {
        match record {
            Some(r) => {
                r.last_used.fetch_max(now, Ordering::Relaxed);
                Lookup::Found(r)
            }
            None => Lookup::Unknown,
        }
    }

    /// The invalidation count now; pass it back to [`Self::insert`] after reading the store.
    fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Caches what the store said, unless an invalidation came since `generation`.
    fn insert(&self, digest: Digest, record: Option<Arc<KeyRecord>>, now: i64, generation: u64) {
        let mut entries = self.entries.write().unwrap_or_else(|p| p.into_inner());
        if self.generation() != generation {
            return;
        }
        if let Some(old) = entries.get(&digest).and_then(|e| e.record.clone()) {
            self.park(&old);
        }
        if record.is_none() {
            let mut negative = self.negative.lock().unwrap_or_else(|p| p.into_inner());
            if *negative >= MAX_NEGATIVE {
                entries.retain(|_, e| e.record.is_some());
                *negative = 0;
            }
            *negative += 1;
        }
        entries.insert(digest, Entry { record, fetched_at: now });
    }

    /// Forgets one key (after a change through this process) and every unknown digest, so a key
    /// just issued is found at once.
    pub fn invalidate_key(&self, key_id: &str) {
        let mut entries = self.entries.write().unwrap_or_else(|p| p.into_inner());
        self.generation.fetch_add(1, Ordering::AcqRel);
        entries.retain(|_, e| match &e.record {
            Some(r) if r.id == key_id => {
                self.park(r);
                false
            }
            Some(_) => true,
            None => false,
        });
        *self.negative.lock().unwrap_or_else(|p| p.into_inner()) = 0;
    }

    /// Forgets every key of a tenant (its settings changed).
    pub fn invalidate_tenant(&self, tenant_id: &str) {
        let mut entries = self.entries.write().unwrap_or_else(|p| p.into_inner());
        self.generation.fetch_add(1, Ordering::AcqRel);
        entries.retain(|_, e| match &e.record {
            Some(r) if r.tenant_id == tenant_id => {
                self.park(r);
                false
            }
            Some(_) => true,
            None => false,
        });
        *self.negative.lock().unwrap_or_else(|p| p.into_inner()) = 0;
    }

    /// Forgets everything (changes may have been missed).
    pub fn clear(&self) {
        let mut entries = self.entries.write().unwrap_or_else(|p| p.into_inner());
        self.generation.fetch_add(1, Ordering::AcqRel);
        for record in entries.values().filter_map(|e| e.record.as_ref()) {
            self.park(record);
        }
        entries.clear();
        *self.negative.lock().unwrap_or_else(|p| p.into_inner()) = 0;
    }

    /// Keeps the unflushed last-used time of a record leaving the cache.
    fn park(&self, record: &KeyRecord) {
        let at = record.last_used.swap(0, Ordering::Relaxed);
        if at > 0 {
            let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
            let slot = pending.entry(record.id.clone()).or_insert(at);
            *slot = (*slot).max(at);
        }
    }

    /// Takes the last-used times gathered since the previous call.
    pub fn take_last_used(&self) -> Vec<(String, i64)> {
        let mut used = std::mem::take(&mut *self.pending.lock().unwrap_or_else(|p| p.into_inner()));
        let entries = self.entries.read().unwrap_or_else(|p| p.into_inner());
        for record in entries.values().filter_map(|e| e.record.as_ref()) {
            let at = record.last_used.swap(0, Ordering::Relaxed);
            if at > 0 {
                let slot = used.entry(record.id.clone()).or_insert(at);
                *slot = (*slot).max(at);
            }
        }
        used.into_iter().collect()
    }

    /// Writes the gathered last-used times; on failure they are kept for the next flush.
    pub async fn flush_last_used(&self, db: &Db) -> Result<usize, sqlx::Error> {
        let used = self.take_last_used();
        if let Err(e) = store::flush_last_used(db, &used).await {
            let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
            for (id, at) in used {
                let slot = pending.entry(id).or_insert(at);
                *slot = (*slot).max(at);
            }
            return Err(e);
        }
        Ok(used.len())
    }
}
