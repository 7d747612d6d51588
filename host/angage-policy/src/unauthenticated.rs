//! Traffic without a valid key, limited per client address: every request the authenticate
//! stage refused counts against its address, and an address past
//! `server.unauthenticated_per_minute` is answered 429 before any stage runs. Key guessing and
//! floods of made-up keys cost the stages (and every tenant sharing their lanes) nothing.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

const MINUTE_MS: i64 = 60_000;
/// Addresses remembered at most; past that, those of earlier minutes are forgotten.
const MAX_ADDRESSES: usize = 100_000;

pub(crate) struct Unauthenticated {
    per_minute: u64,
    /// Address (`None`: one the host could not read) → minute and refusals in it.
    counts: Mutex<HashMap<Option<IpAddr>, (i64, u64)>>,
}

impl Unauthenticated {
    pub(crate) fn new(per_minute: u64) -> Self {
        Self { per_minute, counts: Mutex::new(HashMap::new()) }
    }

    /// `Some(seconds to wait)` when `ip` has used up this minute's refusals.
    pub(crate) fn over(&self, ip: Option<IpAddr>, now: i64) -> Option<u64> {
        let minute = now.div_euclid(MINUTE_MS);
        let counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        match counts.get(&ip) {
            Some((m, n)) if *m == minute && *n >= self.per_minute => {
                Some(u64::try_from((minute + 1) * MINUTE_MS - now).unwrap_or(0).div_ceil(1000).max(1))
            }
            _ => None,
        }
    }

    /// Counts one refused request from `ip`.
    pub(crate) fn refused(&self, ip: Option<IpAddr>, now: i64) {
        let minute = now.div_euclid(MINUTE_MS);
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        if counts.len() >= MAX_ADDRESSES {
            counts.retain(|_, (m, _)| *m == minute);
        }
        let slot = counts.entry(ip).or_insert((minute, 0));
        if slot.0 != minute {
            *slot = (minute, 0);
        }
        slot.1 += 1;
    }
}
