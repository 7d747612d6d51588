//! Log-bucketed latency histograms: bucket `b` holds values in `[1.02^b, 1.02^(b+1))` µs, so the
//! bucket's geometric middle is within 1% of every value in it. Buckets merge by addition,
//! which makes percentiles over any period a sum of stored counts.

const GROWTH: f64 = 1.02;

/// The bucket of a latency in microseconds (0 µs shares bucket 0 with 1 µs).
pub fn bucket(latency_us: u64) -> i64 {
    if latency_us <= 1 {
        return 0;
    }
    ((latency_us as f64).ln() / GROWTH.ln()).floor() as i64
}

/// The value reported for a bucket: its geometric middle.
pub fn representative(bucket: i64) -> f64 {
    GROWTH.powf(bucket as f64 + 0.5)
}

/// The nearest-rank percentile (`p` in 0..=100) of a histogram given as (bucket, count) pairs.
pub fn percentile(buckets: &[(i64, i64)], p: f64) -> Option<f64> {
    let total: i64 = buckets.iter().map(|(_, c)| *c).sum();
    if total == 0 {
        return None;
    }
    let rank = ((p / 100.0) * total as f64).ceil().max(1.0) as i64;
    let mut sorted = buckets.to_vec();
    sorted.sort_unstable();
    let mut seen = 0;
    for (b, c) in sorted {
        seen += c;
        if seen >= rank {
            return Some(representative(b));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_value_is_within_one_percent_of_its_bucket() {
        for v in [1u64, 2, 3, 10, 99, 100, 101, 999, 1_000, 12_345, 1_000_000, 59_999_999] {
            let r = representative(bucket(v));
            assert!(((r - v as f64) / v as f64).abs() <= 0.01 + 1e-9, "{v} -> {r}");
        }
    }

    #[test]
    fn percentiles_follow_nearest_rank() {
        // 100 values 1 ms .. 100 ms: p95 is the 95th value, p99 the 99th.
        let mut h: std::collections::HashMap<i64, i64> = Default::default();
        for ms in 1..=100u64 {
            *h.entry(bucket(ms * 1000)).or_default() += 1;
        }
        let pairs: Vec<(i64, i64)> = h.into_iter().collect();
        let p95 = percentile(&pairs, 95.0).expect("p95");
        let p99 = percentile(&pairs, 99.0).expect("p99");
        assert!((p95 - 95_000.0).abs() / 95_000.0 <= 0.01, "{p95}");
        assert!((p99 - 99_000.0).abs() / 99_000.0 <= 0.01, "{p99}");
        assert_eq!(percentile(&[], 50.0), None);
    }
}
