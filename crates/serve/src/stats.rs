//! Counters and latency distributions of an inference function, bounded in memory.

/// Sub-buckets per power of two: percentiles within 1/32 (~2.2%) of the true value.
const SUB: u32 = 32;
/// Powers of two covered: 1 ns .. 2^40 ns (~18 min).
const OCTAVES: u32 = 40;

/// A log-bucketed histogram of nanosecond values: fixed size, O(1) per sample.
#[derive(Debug, Clone)]
pub struct Histogram {
    buckets: Vec<u64>,
    count: u64,
    sum: u64,
    max: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            buckets: vec![0; (SUB * OCTAVES) as usize],
            count: 0,
            sum: 0,
            max: 0,
        }
    }
}

impl Histogram {
    fn bucket(v: u64) -> usize {
        if v < SUB as u64 {
            return v as usize;
        }
        let octave = 63 - v.leading_zeros(); // >= 5
        let shift = octave - SUB.trailing_zeros();
        let sub = ((v >> shift) as u32) - SUB; // 0..SUB
        (((octave - SUB.trailing_zeros() + 1) * SUB + sub) as usize)
            .min((SUB * OCTAVES) as usize - 1)
    }

    /// The largest value a bucket holds.
    fn upper(i: usize) -> u64 {
        let i = i as u32;
        if i < SUB {
            return i as u64;
        }
        let shift = i / SUB - 1;
        let sub = (i % SUB + SUB) as u64;
        ((sub + 1) << shift) - 1
    }

    /// Adds one value.
    pub fn record(&mut self, v: u64) {
        self.buckets[Self::bucket(v)] += 1;
        self.count += 1;
        self.sum = self.sum.saturating_add(v);
        self.max = self.max.max(v);
    }

    /// Values recorded.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Largest value recorded.
    pub fn max(&self) -> u64 {
        self.max
    }

    /// Values recorded, summed (saturating).
    pub fn sum(&self) -> u64 {
        self.sum
    }

    /// Values known to be at most `v`: those in buckets whose upper bound is `<= v`. A
    /// value within 1/32 below `v` may share a bucket with larger ones and is then left
    /// out (the cumulative counts of a Prometheus histogram at fixed bounds).
    pub fn count_at_most(&self, v: u64) -> u64 {
        let last = self.buckets.len() - 1;
        self.buckets
            .iter()
            .enumerate()
            .take_while(|&(i, _)| i < last && Self::upper(i) <= v)
            .map(|(_, n)| n)
            .sum()
    }

    /// The `q`-quantile (0..=1, nearest rank), as its bucket's upper bound (capped at the
    /// maximum); `None` when empty.
    pub fn quantile(&self, q: f64) -> Option<u64> {
        if self.count == 0 {
            return None;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.count as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, &n) in self.buckets.iter().enumerate() {
            seen += n;
            if seen >= rank {
                // The last bucket also holds everything beyond the range.
                let last = i + 1 == self.buckets.len();
                return Some(if last {
                    self.max
                } else {
                    Self::upper(i).min(self.max)
                });
            }
        }
        Some(self.max)
    }

    /// Adds another histogram's samples.
    pub fn merge(&mut self, o: &Histogram) {
        for (a, b) in self.buckets.iter_mut().zip(&o.buckets) {
            *a += b;
        }
        self.count += o.count;
        self.sum = self.sum.saturating_add(o.sum);
        self.max = self.max.max(o.max);
    }
}

/// The last batching decision of a function, for the live line and the report.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Decision {
    /// Images in the batch.
    pub images: usize,
    /// Engine batch it ran as (images padded up to it).
    pub engine_batch: usize,
    /// Predicted batch latency at dispatch, ns (0 while unknown).
    pub predicted_ns: u64,
    /// Measured batch latency, ns (0 until it completed).
    pub measured_ns: u64,
    /// The oldest image's deadline minus the predicted completion at dispatch, ns.
    pub slack_ns: i64,
}

/// What happened to a function's images and batches.
#[derive(Debug, Clone, Default)]
pub struct FunctionStats {
    /// Images offered (its model id matched).
    pub offered: u64,
    /// Images queued.
    pub admitted: u64,
    /// Refused on arrival: could not finish inside the SLO (answered `overloaded`).
    pub shed_admission: u64,
    /// Refused on arrival: the queue was at its bound (answered `overloaded`).
    pub shed_queue_full: u64,
    /// Queued, then dropped when they could no longer finish in time (answered `overloaded`).
    pub shed_expired: u64,
    /// Answered after inference.
    pub answered: u64,
    /// Of those, finished inside the SLO.
    pub within_slo: u64,
    /// Answered `failed` (engine error, failed or stalled instance).
    pub failed: u64,
    /// Batches dispatched.
    pub batches: u64,
    /// Images in dispatched batches.
    pub batched_images: u64,
    /// Batches per image count (index = images).
    pub batch_sizes: Vec<u64>,
    /// Arrival to answer, ns, of answered images.
    pub latency: Histogram,
    /// |predicted - measured| / measured summed over batches with a prediction.
    pub prediction_error_sum: f64,
    /// Batches with a prediction.
    pub predicted_batches: u64,
    /// Instances taken out of rotation.
    pub instances_failed: u64,
    /// Batches completed (their latency measured).
    pub completed_batches: u64,
    /// Measured batch latencies summed, ns.
    pub measured_sum_ns: u64,
    /// The last decision.
    pub last: Decision,
}

impl FunctionStats {
    /// Share of answered images inside the SLO.
    pub fn attainment(&self) -> f64 {
        if self.answered == 0 {
            return 1.0;
        }
        self.within_slo as f64 / self.answered as f64
    }

    /// Images answered `overloaded`, for every reason.
    pub fn shed(&self) -> u64 {
        self.shed_admission + self.shed_queue_full + self.shed_expired
    }

    /// Mean images per batch.
    pub fn mean_batch(&self) -> f64 {
        self.batched_images as f64 / self.batches.max(1) as f64
    }

    /// Mean measured batch latency, ns (dispatch to result: gather + inference).
    pub fn mean_batch_ns(&self) -> f64 {
        self.measured_sum_ns as f64 / self.completed_batches.max(1) as f64
    }

    /// Mean relative error of the latency predictions.
    pub fn mean_prediction_error(&self) -> f64 {
        self.prediction_error_sum / self.predicted_batches.max(1) as f64
    }

    pub(crate) fn record_batch(&mut self, d: Decision) {
        self.batches += 1;
        self.batched_images += d.images as u64;
        if self.batch_sizes.len() <= d.images {
            self.batch_sizes.resize(d.images + 1, 0);
        }
        self.batch_sizes[d.images] += 1;
        self.last = d;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_are_within_the_bucket_precision() {
        let mut h = Histogram::default();
        for v in 1..=10_000u64 {
            h.record(v * 1000);
        }
        for (q, exact) in [
            (0.5, 5_000_000f64),
            (0.99, 9_900_000.0),
            (1.0, 10_000_000.0),
        ] {
            let got = h.quantile(q).unwrap() as f64;
            assert!(
                got >= exact && got <= exact * 1.035,
                "q{q}: {got} vs {exact}"
            );
        }
        assert_eq!(h.max(), 10_000_000);
        assert_eq!(Histogram::default().quantile(0.5), None);
        let mut small = Histogram::default();
        small.record(3);
        assert_eq!(small.quantile(0.5), Some(3));
        small.record(u64::MAX);
        assert_eq!(small.quantile(1.0), Some(u64::MAX));
    }

    #[test]
    fn counts_at_most_a_bound_never_include_larger_values() {
        let mut h = Histogram::default();
        for v in [5u64, 31, 1_000, 1_000_000, 2_000_000, 1 << 45] {
            h.record(v);
        }
        assert_eq!(h.sum(), 5 + 31 + 1_000 + 1_000_000 + 2_000_000 + (1 << 45));
        assert_eq!(h.count_at_most(4), 0);
        assert_eq!(h.count_at_most(5), 1);
        assert_eq!(h.count_at_most(1_100), 3);
        // 1 ms shares its bucket with values up to ~1.016 ms: counted from there on.
        assert_eq!(h.count_at_most(1_000_000), 3);
        assert_eq!(h.count_at_most(1_050_000), 4);
        // Beyond the range: only the count says how many.
        assert_eq!(h.count_at_most(u64::MAX), 5);
        assert_eq!(h.count(), 6);
    }

    #[test]
    fn buckets_are_monotonic_and_cover_their_values() {
        let mut last = 0;
        for v in (0..200_000u64).chain([1 << 30, (1 << 39) + 5]) {
            let b = Histogram::bucket(v);
            assert!(b >= last);
            assert!(Histogram::upper(b) >= v, "{v} in bucket {b}");
            last = b;
        }
    }
}
