//! Arrival traces for the simulator: Poisson, bursts, step changes, or given timestamps.

use netml_infer::fixtures::Rng;

/// One image arriving for a model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Arrival {
    /// Time, ns from the start of the trace.
    pub at: u64,
    /// Model id.
    pub model: u8,
}

/// A load shape for one model.
#[derive(Debug, Clone, PartialEq)]
pub enum Shape {
    /// Poisson arrivals at `rate` images/s.
    Poisson {
        /// Images per second.
        rate: f64,
    },
    /// `size` images at once every `period_ns` (plus a Poisson background at `rate`).
    Bursts {
        /// Images per burst.
        size: usize,
        /// Time between bursts, ns.
        period_ns: u64,
        /// Background Poisson rate between bursts, images/s (0 for none).
        rate: f64,
    },
    /// Poisson with a rate that changes at given times: `(from_ns, rate)` pairs, ascending.
    Steps(Vec<(u64, f64)>),
}

impl Shape {
    /// Arrival times (ns, ascending) in `[0, duration_ns)`, seeded.
    pub fn times(&self, duration_ns: u64, seed: u64) -> Vec<u64> {
        let mut rng = Rng::new(seed);
        match self {
            Shape::Poisson { rate } => poisson(&mut rng, 0, duration_ns, *rate),
            Shape::Bursts {
                size,
                period_ns,
                rate,
            } => {
                let mut v = poisson(&mut rng, 0, duration_ns, *rate);
                let mut t = 0;
                while t < duration_ns && *period_ns > 0 {
                    v.extend(std::iter::repeat_n(t, *size));
                    t += period_ns;
                }
                v.sort_unstable();
                v
            }
            Shape::Steps(steps) => {
                let mut v = Vec::new();
                for (i, &(from, rate)) in steps.iter().enumerate() {
                    let to = steps
                        .get(i + 1)
                        .map_or(duration_ns, |s| s.0)
                        .min(duration_ns);
                    v.extend(poisson(&mut rng, from, to, rate));
                }
                v
            }
        }
    }
}

/// Poisson arrivals at `rate`/s in `[from, to)`.
fn poisson(rng: &mut Rng, from: u64, to: u64, rate: f64) -> Vec<u64> {
    let mut v = Vec::new();
    if rate <= 0.0 {
        return v;
    }
    let mean_gap = 1e9 / rate;
    let mut t = from as f64;
    loop {
        // 1 - U is in (0, 1]: ln never sees 0.
        t += -(1.0 - rng.uniform() as f64).ln() * mean_gap;
        if t >= to as f64 {
            return v;
        }
        v.push(t as u64);
    }
}

/// Arrivals of several models, merged in time order.
pub fn merge(per_model: impl IntoIterator<Item = (u8, Vec<u64>)>) -> Vec<Arrival> {
    let mut v: Vec<Arrival> = per_model
        .into_iter()
        .flat_map(|(model, times)| times.into_iter().map(move |at| Arrival { at, model }))
        .collect();
    v.sort_unstable();
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn poisson_has_its_rate_and_repeats_per_seed() {
        let s = Shape::Poisson { rate: 10_000.0 };
        let a = s.times(1_000_000_000, 1);
        assert!((9_700..10_300).contains(&a.len()), "{}", a.len());
        assert!(a.windows(2).all(|w| w[0] <= w[1]));
        assert_eq!(a, s.times(1_000_000_000, 1));
        assert_ne!(a, s.times(1_000_000_000, 2));
    }

    #[test]
    fn bursts_and_steps() {
        let b = Shape::Bursts {
            size: 4,
            period_ns: 1_000_000,
            rate: 0.0,
        }
        .times(3_000_000, 0);
        assert_eq!(
            b,
            vec![
                0, 0, 0, 0, 1_000_000, 1_000_000, 1_000_000, 1_000_000, 2_000_000, 2_000_000,
                2_000_000, 2_000_000
            ]
        );
        let s = Shape::Steps(vec![(0, 1000.0), (500_000_000, 0.0), (700_000_000, 5000.0)])
            .times(1_000_000_000, 3);
        assert!(s.iter().all(|&t| !(500_000_000..700_000_000).contains(&t)));
        let late = s.iter().filter(|&&t| t >= 700_000_000).count();
        assert!((1300..1700).contains(&late), "{late}");
        let m = merge([(2, vec![5, 1]), (1, vec![3])]);
        assert_eq!(
            m.iter().map(|a| (a.at, a.model)).collect::<Vec<_>>(),
            vec![(1, 2), (3, 1), (5, 2)]
        );
    }
}
