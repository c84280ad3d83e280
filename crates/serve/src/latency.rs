//! The latency model of one instance: batch latency per engine batch size, seeded from a
//! profile and learned online from measured gather + inference times.

/// Weight of a new measurement in the running estimate (1/8: a few batches follow a
/// change, one outlier moves the estimate by an eighth).
const LEARN_RATE: f64 = 0.125;

/// Predicted batch latency per batch size.
#[derive(Debug, Clone)]
pub struct LatencyModel {
    /// Engine batch sizes, ascending.
    sizes: Vec<usize>,
    /// Estimate per size (ns), `None` until seeded or measured.
    est: Vec<Option<f64>>,
    /// Measurements seen per size (the first replaces a seed: the profile may come from
    /// another machine).
    seen: Vec<u64>,
    /// Running mean of |measured - predicted| / predicted over all sizes: how far a batch
    /// strays from its estimate.
    spread: f64,
}

/// Deadline checks plan with this many spreads of margin: a batch that runs long then still
/// finishes inside the SLO, instead of the oldest image of every backlog batch (planned at
/// zero slack) being answered late.
const MARGIN_SPREADS: f64 = 2.0;

impl LatencyModel {
    /// A model with no estimate for `sizes` (sorted, deduplicated here).
    pub fn new(sizes: &[usize]) -> LatencyModel {
        let mut sizes = sizes.to_vec();
        sizes.sort_unstable();
        sizes.dedup();
        let n = sizes.len();
        LatencyModel {
            sizes,
            est: vec![None; n],
            seen: vec![0; n],
            spread: 0.0,
        }
    }

    /// Seeds the estimates from `(batch, ns)` points, e.g. a profile's rows for this model;
    /// sizes between or beyond the points are predicted from them.
    pub fn seeded(sizes: &[usize], points: &[(usize, f64)]) -> LatencyModel {
        let mut m = LatencyModel::new(sizes);
        if !points.is_empty() {
            let mut pts = points.to_vec();
            pts.sort_by_key(|p| p.0);
            for i in 0..m.sizes.len() {
                m.est[i] = Some(interpolate(&pts, m.sizes[i]));
            }
        }
        m
    }

    /// Engine batch sizes, ascending.
    pub fn sizes(&self) -> &[usize] {
        &self.sizes
    }

    /// Whether any size has an estimate.
    pub fn known(&self) -> bool {
        self.est.iter().any(Option::is_some)
    }

    /// Records a measured batch latency for engine batch `size`.
    pub fn observe(&mut self, size: usize, ns: u64) {
        let Some(i) = self.sizes.iter().position(|&s| s == size) else {
            return;
        };
        let m = ns as f64;
        if self.seen[i] == 0 {
            // A seed measured elsewhere (a profile, a warm-up on an idle machine) is right
            // about the shape across batch sizes, less about the scale here: the first real
            // measurement rescales every size not measured yet.
            if let Some(seed) = self.est[i].filter(|&e| e > 0.0) {
                let ratio = m / seed;
                for j in 0..self.est.len() {
                    if self.seen[j] == 0 {
                        self.est[j] = self.est[j].map(|e| e * ratio);
                    }
                }
            }
        }
        if let (Some(e), true) = (self.est[i], self.seen[i] > 0) {
            let miss = ((m - e) / e.max(1.0)).abs();
            self.spread += LEARN_RATE * (miss - self.spread);
        }
        self.est[i] = Some(match (self.est[i], self.seen[i]) {
            (Some(e), n) if n > 0 => e + LEARN_RATE * (m - e),
            _ => m,
        });
        self.seen[i] += 1;
    }

    /// Predicted latency (ns) of engine batch `size`, `None` while nothing is known.
    /// Unknown sizes are interpolated between known ones; beyond the largest known size
    /// the per-image cost of the two largest is extended (proportional with one point), and
    /// below the smallest the smallest's latency is used: both err on the slow side.
    pub fn predict(&self, size: usize) -> Option<u64> {
        if let Some(i) = self.sizes.iter().position(|&s| s == size) {
            if let Some(e) = self.est[i] {
                return Some(e as u64);
            }
        }
        let pts: Vec<(usize, f64)> = self
            .sizes
            .iter()
            .zip(&self.est)
            .filter_map(|(&s, e)| e.map(|e| (s, e)))
            .collect();
        if pts.is_empty() {
            return None;
        }
        Some(interpolate(&pts, size) as u64)
    }
}

impl LatencyModel {
    /// [`predict`](Self::predict) plus a margin of twice the observed relative spread: what
    /// deadline checks plan with.
    pub fn predict_safe(&self, size: usize) -> Option<u64> {
        self.predict(size)
            .map(|p| (p as f64 * (1.0 + MARGIN_SPREADS * self.spread)) as u64)
    }

    /// Observed relative spread of batch times around their estimates.
    pub fn spread(&self) -> f64 {
        self.spread
    }

    /// Multiplies every estimate by `factor(size)`: the instance moved to another share, and
    /// what it learned about this machine carries over at the new share's scale.
    pub fn rescale(&mut self, factor: impl Fn(usize) -> f64) {
        for (e, &s) in self.est.iter_mut().zip(&self.sizes) {
            *e = e.map(|v| v * factor(s));
        }
    }
}

/// Piecewise-linear through `pts` (sorted by batch); see [`LatencyModel::predict`] outside.
fn interpolate(pts: &[(usize, f64)], b: usize) -> f64 {
    let x = b as f64;
    let (first, last) = (pts[0], pts[pts.len() - 1]);
    if b <= first.0 {
        return first.1;
    }
    if b >= last.0 {
        if pts.len() == 1 {
            return last.1 * x / last.0 as f64;
        }
        let prev = pts[pts.len() - 2];
        let slope = ((last.1 - prev.1) / (last.0 - prev.0) as f64).max(last.1 / last.0 as f64);
        return last.1 + slope * (x - last.0 as f64);
    }
    let i = pts
        .iter()
        .position(|p| p.0 >= b)
        .expect("b is inside the points");
    let (lo, hi) = (pts[i - 1], pts[i]);
    lo.1 + (hi.1 - lo.1) * (x - lo.0 as f64) / (hi.0 - lo.0) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interpolates_and_errs_on_the_slow_side_outside() {
        let m = LatencyModel::seeded(
            &[1, 2, 4, 8, 16, 32],
            &[(1, 1000.0), (8, 2400.0), (32, 8000.0)],
        );
        assert_eq!(m.predict(1), Some(1000));
        assert_eq!(m.predict(8), Some(2400));
        assert_eq!(m.predict(4), Some(1600)); // 1000 + 1400 * 3/7
        assert_eq!(m.predict(16), Some(4266)); // 2400 + 5600 * 8/24
                                               // Beyond the largest point: the per-image cost of the last segment (233/img) is
                                               // below the average (250/img), so the average is used.
        assert_eq!(m.predict(64), Some(16000));
        let one = LatencyModel::seeded(&[4, 8], &[(4, 400.0)]);
        assert_eq!(one.predict(8), Some(800));
        assert_eq!(one.predict(2), Some(400));
    }

    #[test]
    fn learns_online_and_the_first_measurement_replaces_the_seed() {
        let mut m = LatencyModel::seeded(&[1, 8], &[(1, 1000.0), (8, 2000.0)]);
        m.observe(8, 4000);
        assert_eq!(m.predict(8), Some(4000));
        assert_eq!(m.predict(1), Some(2000), "the unmeasured seed is rescaled");
        m.observe(8, 4800);
        assert_eq!(m.predict(8), Some(4100));
        m.observe(3, 1); // not an engine size: ignored
        assert_eq!(m.predict(1), Some(2000));
        assert!(m.spread() > 0.0);
        assert!(m.predict_safe(8).unwrap() > m.predict(8).unwrap());
        let mut blank = LatencyModel::new(&[1, 2]);
        assert!(!blank.known());
        assert_eq!(blank.predict(2), None);
        blank.observe(1, 500);
        assert_eq!(blank.predict(2), Some(1000));
    }
}
