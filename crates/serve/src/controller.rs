//! The GSLICE controller: per device, the compute share of each inference function, tuned
//! online from its measured arrival rate, its latency at the current share and its SLO.
//!
//! Every period: each function's *need* is the smallest share at which some batch size both
//! fits the SLO (the batch takes at most `latency_fraction` of it: the rest is the wait for the
//! batch to fill and for the one before it) and keeps up with its arrival rate plus headroom,
//! at the latency the function actually measures there (the scheduler's learned estimate over
//! the curve's, so a model slower than its profile asks for more). A function that missed its
//! SLO or shed images in the period is at risk and gets at least one granule more. What is
//! left of the device is spread over the functions in proportion to their needs (a larger
//! share shortens batches, which absorbs bursts). Growing takes effect at once (limited to the
//! units free); shrinking only after `shrink_after` periods of surplus and by at least a
//! granule, so shares do not oscillate. The batch size within a share stays SLAB's choice,
//! whose estimates follow every resize ([`Function::reshare`](crate::Function::reshare)).

use crate::share::{Device, ShareCurve};

/// The controller's knobs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ControllerConfig {
    /// Time between decisions, ns.
    pub period_ns: u64,
    /// Capacity planned above the measured arrival rate (0.25: 25% more).
    pub headroom: f64,
    /// Fraction of the SLO a batch may take.
    pub latency_fraction: f64,
    /// Periods a function must have surplus before its share shrinks.
    pub shrink_after: u32,
}

impl Default for ControllerConfig {
    fn default() -> ControllerConfig {
        ControllerConfig {
            period_ns: 100_000_000,
            headroom: 0.25,
            latency_fraction: 0.5,
            shrink_after: 3,
        }
    }
}

/// What the controller sees of one function at a decision.
#[derive(Debug, Clone, Copy)]
pub struct View<'a> {
    /// Its latency objective, ns.
    pub slo_ns: u64,
    /// Its engine batch sizes.
    pub batch_sizes: &'a [usize],
    /// Instances on this device (each gets the function's share).
    pub instances: usize,
    /// Images offered so far (cumulative).
    pub offered: u64,
    /// Images answered so far (cumulative).
    pub answered: u64,
    /// Of those, inside the SLO.
    pub within_slo: u64,
    /// Images shed so far (cumulative).
    pub shed: u64,
    /// Its latency at each share.
    pub curve: &'a ShareCurve,
    /// Measured over modelled latency at its current share (1 when nothing is measured).
    pub correction: f64,
}

/// One share change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resize {
    /// When it was decided, ns.
    pub at: u64,
    /// Function index.
    pub function: usize,
    /// Units per instance before.
    pub from: u32,
    /// Units per instance after.
    pub to: u32,
    /// Why.
    pub reason: Reason,
}

/// Why a share changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// Its rate or latency needs more.
    Need,
    /// It missed its SLO or shed images.
    AtRisk,
    /// It had surplus for `shrink_after` periods.
    Surplus,
}

impl Reason {
    /// One word for tables.
    pub fn label(self) -> &'static str {
        match self {
            Reason::Need => "need",
            Reason::AtRisk => "at-risk",
            Reason::Surplus => "surplus",
        }
    }
}

#[derive(Debug, Clone, Default)]
struct State {
    share: u32,
    rate: Option<f64>,
    surplus_periods: u32,
    last: (u64, u64, u64, u64),
}

/// Shares of the functions on one device.
#[derive(Debug, Clone)]
pub struct Controller {
    cfg: ControllerConfig,
    device: Device,
    state: Vec<State>,
    last_decision: Option<u64>,
    log: Vec<Resize>,
}

impl Controller {
    /// Starts from `shares` (units per instance, one entry per function).
    pub fn new(cfg: ControllerConfig, device: Device, shares: &[u32]) -> Controller {
        Controller {
            cfg,
            device,
            state: shares
                .iter()
                .map(|&s| State {
                    share: device.round(s),
                    ..State::default()
                })
                .collect(),
            last_decision: None,
            log: Vec::new(),
        }
    }

    /// Equal shares for `instances[i]` instances of each function, filling the device.
    pub fn equal_shares(device: &Device, instances: &[usize]) -> Vec<u32> {
        let n: usize = instances.iter().sum::<usize>().max(1);
        let g = device.granularity.max(1);
        let each = (device.available() / n as u32 / g * g).max(g);
        vec![each; instances.len()]
    }

    /// The knobs.
    pub fn config(&self) -> &ControllerConfig {
        &self.cfg
    }

    /// Units per instance of each function now.
    pub fn shares(&self) -> Vec<u32> {
        self.state.iter().map(|s| s.share).collect()
    }

    /// Every change so far.
    pub fn log(&self) -> &[Resize] {
        &self.log
    }

    /// When the next decision is due.
    pub fn next_decision(&self) -> u64 {
        self.last_decision.map_or(0, |t| t + self.cfg.period_ns)
    }

    /// The smallest share per instance at which `v` meets its SLO at `rate` images/s.
    pub fn need(&self, v: &View, rate: f64) -> u32 {
        let per_instance = rate / v.instances.max(1) as f64 * (1.0 + self.cfg.headroom);
        let bound = v.slo_ns as f64 * self.cfg.latency_fraction;
        let steps = self.device.steps();
        let meets = |units: u32| {
            let f = self.device.fraction(units);
            v.batch_sizes.iter().any(|&b| {
                let ns = v.curve.latency(b, f) * v.correction.max(0.01);
                ns <= bound && b as f64 * 1e9 / ns >= per_instance
            })
        };
        steps
            .iter()
            .copied()
            .find(|&u| meets(u))
            .unwrap_or(self.device.available())
    }

    /// Decides at `now` (when [`next_decision`](Self::next_decision) is due; earlier calls
    /// return nothing). Returns the changes, also kept in [`log`](Self::log).
    pub fn decide(&mut self, now: u64, views: &[View]) -> Vec<Resize> {
        if now < self.next_decision() || views.len() != self.state.len() {
            return Vec::new();
        }
        let period = self
            .last_decision
            .map_or(self.cfg.period_ns, |t| now.saturating_sub(t))
            .max(1);
        self.last_decision = Some(now);
        let g = self.device.granularity.max(1);
        let mut wants: Vec<(u32, bool)> = Vec::with_capacity(views.len());
        for (s, v) in self.state.iter_mut().zip(views) {
            let (offered, answered, within, shed) = s.last;
            s.last = (v.offered, v.answered, v.within_slo, v.shed);
            let now_rate = v.offered.saturating_sub(offered) as f64 * 1e9 / period as f64;
            // Up at once, down slowly: a burst is planned for, a lull is not trusted yet.
            let rate = match s.rate {
                Some(r) if now_rate < r => r + (now_rate - r) / 4.0,
                _ => now_rate,
            };
            s.rate = Some(rate);
            let missed = v.answered.saturating_sub(answered) > v.within_slo.saturating_sub(within);
            let at_risk = missed || v.shed > shed;
            wants.push((0, at_risk));
        }
        for (i, v) in views.iter().enumerate() {
            let rate = self.state[i].rate.unwrap_or(0.0);
            let mut need = self.need(v, rate);
            if wants[i].1 {
                need = need.max(self.device.round(self.state[i].share + g));
            }
            wants[i].0 = need;
        }
        let targets = self.spread(views, &wants);
        self.apply(now, views, &wants, &targets)
    }

    /// Targets per instance: the needs, plus what is left spread in proportion to them; when
    /// the needs exceed the device, the needs scaled down to it.
    fn spread(&self, views: &[View], wants: &[(u32, bool)]) -> Vec<u32> {
        let g = self.device.granularity.max(1);
        let avail = self.device.available() as f64;
        let weight: Vec<f64> = views
            .iter()
            .zip(wants)
            .map(|(v, w)| (w.0 as f64) * v.instances.max(1) as f64)
            .collect();
        let total: f64 = weight.iter().sum::<f64>().max(1.0);
        let scale = avail / total;
        wants
            .iter()
            .map(|w| {
                let per = w.0 as f64 * scale;
                let units = if scale >= 1.0 {
                    // Round down what is spread, never below the need.
                    ((per as u32) / g * g).max(w.0)
                } else {
                    ((per as u32) / g * g).max(g)
                };
                units.min(self.device.available())
            })
            .collect()
    }

    /// Applies targets with hysteresis, never granting more than the device holds.
    fn apply(
        &mut self,
        now: u64,
        views: &[View],
        wants: &[(u32, bool)],
        targets: &[u32],
    ) -> Vec<Resize> {
        let g = self.device.granularity.max(1);
        let mut next: Vec<u32> = self.state.iter().map(|s| s.share).collect();
        let mut reasons = vec![None; next.len()];
        for (i, s) in self.state.iter_mut().enumerate() {
            let t = targets[i];
            if t + g <= s.share && wants[i].0 < s.share && !wants[i].1 {
                s.surplus_periods += 1;
                if s.surplus_periods >= self.cfg.shrink_after {
                    next[i] = t;
                    reasons[i] = Some(Reason::Surplus);
                    s.surplus_periods = 0;
                }
            } else {
                s.surplus_periods = 0;
            }
        }
        let used = |next: &[u32]| -> u32 {
            next.iter()
                .zip(views)
                .map(|(&u, v)| u * v.instances.max(1) as u32)
                .sum()
        };
        // A function that needs more than is free takes it from those with surplus now,
        // without waiting out their hysteresis.
        let n_of = |i: usize| views[i].instances.max(1) as u32;
        let short: u32 = (0..next.len())
            .filter(|&i| targets[i] > next[i])
            .map(|i| (targets[i] - next[i]) * n_of(i))
            .sum();
        if short > self.device.available().saturating_sub(used(&next)) {
            for (i, s) in self.state.iter_mut().enumerate() {
                if targets[i] < next[i] && wants[i].0 < next[i] && !wants[i].1 {
                    next[i] = targets[i];
                    reasons[i] = Some(Reason::Surplus);
                    s.surplus_periods = 0;
                }
            }
        }
        // Grows, the most at risk first, then the largest shortfall, within what is free.
        let mut grows: Vec<usize> = (0..next.len()).filter(|&i| targets[i] > next[i]).collect();
        grows.sort_by_key(|&i| (!wants[i].1, std::cmp::Reverse(targets[i] - next[i])));
        for i in grows {
            let n = n_of(i);
            let free = self.device.available().saturating_sub(used(&next));
            let room = next[i] + free / n / g * g;
            let to = targets[i].min(room);
            if to > next[i] {
                next[i] = to;
                reasons[i] = Some(if wants[i].1 {
                    Reason::AtRisk
                } else {
                    Reason::Need
                });
            }
        }
        let mut out = Vec::new();
        for (i, s) in self.state.iter_mut().enumerate() {
            if let (Some(reason), true) = (reasons[i], next[i] != s.share) {
                out.push(Resize {
                    at: now,
                    function: i,
                    from: s.share,
                    to: next[i],
                    reason,
                });
                s.share = next[i];
            }
        }
        self.log.extend_from_slice(&out);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    fn resnet() -> ShareCurve {
        ShareCurve::new(&[(1, 4.22e6), (8, 3.44e6), (32, 6.07e6)]).unwrap()
    }

    fn view<'a>(curve: &'a ShareCurve, sizes: &'a [usize], offered: u64) -> View<'a> {
        View {
            slo_ns: 50 * MS,
            batch_sizes: sizes,
            instances: 1,
            offered,
            answered: offered,
            within_slo: offered,
            shed: 0,
            curve,
            correction: 1.0,
        }
    }

    #[test]
    fn the_need_grows_with_the_rate_and_the_measured_slowness() {
        let d = Device::gpu(132);
        let c = Controller::new(ControllerConfig::default(), d, &[8]);
        let curve = resnet();
        let sizes = [1, 2, 4, 8, 16, 32];
        let v = view(&curve, &sizes, 0);
        let low = c.need(&v, 200.0);
        let high = c.need(&v, 4000.0);
        assert!(low < high, "{low} {high}");
        let slow = View {
            correction: 2.0,
            ..v
        };
        assert!(c.need(&slow, 2000.0) > c.need(&v, 2000.0));
        assert_eq!(
            c.need(&v, 1e9),
            d.available(),
            "beyond the device: all of it"
        );
    }

    #[test]
    fn shares_stay_inside_the_device_and_shrink_only_after_surplus() {
        let d = Device::gpu(132);
        let cfg = ControllerConfig::default();
        let mut c = Controller::new(cfg, d, &[56, 56]);
        let curve = resnet();
        let sizes = [1, 2, 4, 8, 16, 32];
        let p = cfg.period_ns;
        // Function 0 at 4000 images/s, function 1 at 100: 1 grows, 0 is spread the rest.
        let (mut a, mut b) = (0u64, 0u64);
        let mut changes = Vec::new();
        for k in 1..=12u64 {
            a += 400;
            b += 10;
            let vs = [view(&curve, &sizes, a), view(&curve, &sizes, b)];
            changes.extend(c.decide(k * p, &vs));
            let s = c.shares();
            assert!(s.iter().sum::<u32>() <= d.available(), "{s:?}");
        }
        let s = c.shares();
        assert!(s[0] > s[1], "{s:?}");
        // Steady load: no change in the last periods (no oscillation).
        let tail: Vec<_> = changes.iter().filter(|r| r.at > 6 * p).collect();
        assert!(tail.is_empty(), "{tail:?}");
        assert!(changes
            .iter()
            .any(|r| r.function == 1 && r.reason == Reason::Surplus));
    }

    #[test]
    fn a_function_that_misses_its_slo_gets_more_at_once() {
        let d = Device::gpu(132);
        let mut c = Controller::new(ControllerConfig::default(), d, &[16, 16]);
        let curve = resnet();
        let sizes = [1, 8];
        let p = ControllerConfig::default().period_ns;
        let v0 = [view(&curve, &sizes, 10), view(&curve, &sizes, 10)];
        c.decide(p, &v0);
        let before = c.shares()[0];
        let mut missed = view(&curve, &sizes, 20);
        missed.answered = 20;
        missed.within_slo = 15;
        let r = c.decide(2 * p, &[missed, view(&curve, &sizes, 20)]);
        assert!(
            c.shares()[0] > before || r.iter().any(|r| r.function == 0),
            "{r:?}"
        );
        assert!(c.decide(2 * p + 1, &v0).is_empty(), "not before the period");
    }
}
