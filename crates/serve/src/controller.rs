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

/// What one function asks for at a decision.
#[derive(Debug, Clone, Copy)]
struct Want {
    /// The smallest share that meets its rate with headroom (grown to at once).
    need: u32,
    /// The share it keeps once it has it: the need at twice the headroom (the band between
    /// the two keeps a noisy rate from moving the share back and forth).
    keep: u32,
    /// It missed its SLO or shed in the last period.
    at_risk: bool,
}

/// Late or shed images in a period below which a function is never at risk.
const AT_RISK_IMAGES: u64 = 3;

/// Decisions an at-risk function keeps the granule it was given.
const FLOOR_PERIODS: u32 = 20;

#[derive(Debug, Clone, Default)]
struct State {
    share: u32,
    /// A lower bound on the need after the function was at risk: units, decisions left.
    floor: (u32, u32),
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
        let mut wants: Vec<Want> = Vec::with_capacity(views.len());
        for (s, v) in self.state.iter_mut().zip(views) {
            let (offered, answered, within, shed) = s.last;
            s.last = (v.offered, v.answered, v.within_slo, v.shed);
            let arrived = v.offered.saturating_sub(offered);
            let now_rate = arrived as f64 * 1e9 / period as f64;
            // Up fast, down slowly: a burst is planned for within a period or two, a lull is
            // not trusted yet; half a step up keeps one noisy period from moving the share.
            let rate = match s.rate {
                Some(r) if now_rate < r => r + (now_rate - r) / 4.0,
                Some(r) => r + (now_rate - r) / 2.0,
                None => now_rate,
            };
            s.rate = Some(rate);
            // At risk: more than 1% of the period's images late or shed, and not one or two
            // (at a few dozen images per period, one late image is noise, not a trend).
            let answered_now = v.answered.saturating_sub(answered);
            let late = answered_now - v.within_slo.saturating_sub(within).min(answered_now);
            let lost = late + v.shed.saturating_sub(shed);
            wants.push(Want {
                need: 0,
                keep: 0,
                at_risk: lost >= AT_RISK_IMAGES && lost * 100 > arrived,
            });
        }
        for (i, v) in views.iter().enumerate() {
            let rate = self.state[i].rate.unwrap_or(0.0);
            wants[i].need = self.need(v, rate);
            wants[i].keep = self.need(v, rate * (1.0 + self.cfg.headroom));
        }
        let needed: u32 = wants
            .iter()
            .zip(views)
            .map(|(w, v)| w.need * v.instances.max(1) as u32)
            .sum();
        let overloaded = needed > self.device.available();
        for (w, s) in wants.iter_mut().zip(&mut self.state) {
            // A function that missed with what the model says is enough gets a granule more
            // and keeps it a while (without the memory it would probe up and settle down
            // again every few periods). Overloaded, everyone misses: the proportional split
            // stands instead.
            if w.at_risk && !overloaded {
                s.floor = (self.device.round(s.share + g), FLOOR_PERIODS);
            }
            if s.floor.1 > 0 {
                w.need = w.need.max(s.floor.0);
                w.keep = w.keep.max(s.floor.0);
                s.floor.1 -= 1;
            }
            w.at_risk &= !overloaded;
        }
        let targets = self.spread(views, &wants);
        self.apply(now, views, &wants, &targets)
    }

    /// Targets per instance: what each keeps, plus what is left spread in proportion to
    /// it; when that exceeds the device, the needs plus the rest; when even the needs do,
    /// the device split in proportion to them.
    fn spread(&self, views: &[View], wants: &[Want]) -> Vec<u32> {
        let g = self.device.granularity.max(1);
        let avail = self.device.available();
        let sum = |f: &dyn Fn(&Want) -> u32| -> u32 {
            wants
                .iter()
                .zip(views)
                .map(|(w, v)| f(w) * v.instances.max(1) as u32)
                .sum()
        };
        let (base, total): (fn(&Want) -> u32, u32) = if sum(&|w| w.keep) <= avail {
            (|w| w.keep, sum(&|w| w.keep))
        } else {
            (|w| w.need, sum(&|w| w.need))
        };
        // Granules in proportion to the base, the rounding remainders going to the largest
        // fractions (rounding every share down would starve the small ones first).
        let n = |i: usize| views[i].instances.max(1) as u32;
        let scale = avail as f64 / total.max(1) as f64;
        let exact: Vec<f64> = wants
            .iter()
            .map(|w| base(w) as f64 * scale / g as f64)
            .collect();
        let mut whole: Vec<u32> = exact.iter().map(|&x| (x.floor() as u32).max(1)).collect();
        let taken: u32 = (0..whole.len()).map(|i| whole[i] * n(i)).sum();
        let mut left = (avail / g).saturating_sub(taken);
        let mut order: Vec<usize> = (0..exact.len()).collect();
        order.sort_by(|&a, &b| {
            (exact[b] - exact[b].floor()).total_cmp(&(exact[a] - exact[a].floor()))
        });
        for i in order {
            if left >= n(i) && exact[i] > whole[i] as f64 {
                whole[i] += 1;
                left -= n(i);
            }
        }
        whole
            .iter()
            .zip(wants)
            .map(|(&k, w)| {
                let units = if scale >= 1.0 {
                    (k * g).max(base(w))
                } else {
                    k * g
                };
                units.min(avail)
            })
            .collect()
    }

    /// Applies the needs at once and the targets slowly, never granting more than the
    /// device holds: a function below its need grows now, taking units from those above
    /// theirs when too few are free; moving toward the spread targets (giving spare away,
    /// taking it back) waits `shrink_after` periods in the same direction.
    fn apply(&mut self, now: u64, views: &[View], wants: &[Want], targets: &[u32]) -> Vec<Resize> {
        let g = self.device.granularity.max(1);
        let avail = self.device.available();
        let n_of = |i: usize| views[i].instances.max(1) as u32;
        let mut next: Vec<u32> = self.state.iter().map(|s| s.share).collect();
        let mut reasons: Vec<Option<Reason>> = vec![None; next.len()];
        let used =
            |next: &[u32]| -> u32 { next.iter().enumerate().map(|(i, &u)| u * n_of(i)).sum() };
        // Needs first, the most at risk, then the largest shortfall.
        let mut short: Vec<usize> = (0..next.len())
            .filter(|&i| wants[i].need > next[i])
            .collect();
        short.sort_by_key(|&i| {
            (
                !wants[i].at_risk,
                std::cmp::Reverse(wants[i].need - next[i]),
            )
        });
        for i in short {
            let mut missing = (wants[i].need - next[i]) * n_of(i);
            let free = avail.saturating_sub(used(&next));
            if missing > free {
                // Reclaim what others hold above what they keep, the largest surplus first.
                let mut donors: Vec<usize> = (0..next.len())
                    .filter(|&j| j != i && next[j] > wants[j].keep.max(g))
                    .collect();
                donors.sort_by_key(|&j| std::cmp::Reverse(next[j] - wants[j].keep.max(g)));
                let mut lacking = missing - free;
                for j in donors {
                    if lacking == 0 {
                        break;
                    }
                    let per = lacking.div_ceil(n_of(j)).div_ceil(g) * g;
                    let to = next[j].saturating_sub(per).max(wants[j].keep.max(g));
                    lacking = lacking.saturating_sub((next[j] - to) * n_of(j));
                    next[j] = to;
                    reasons[j] = Some(Reason::Surplus);
                    self.state[j].surplus_periods = 0;
                }
            }
            missing = missing.min(avail.saturating_sub(used(&next)));
            let to = next[i] + missing / n_of(i) / g * g;
            if to > next[i] {
                next[i] = to;
                reasons[i] = Some(if wants[i].at_risk {
                    Reason::AtRisk
                } else {
                    Reason::Need
                });
            }
        }
        // Then the spread targets, after `shrink_after` periods the same way.
        for i in 0..next.len() {
            if reasons[i].is_some() {
                continue;
            }
            let s = &mut self.state[i];
            let t = targets[i];
            // Two granules of band: rounding the spread moves targets by one.
            let away = t + 2 * g <= next[i] || t >= next[i] + 2 * g;
            if !away {
                s.surplus_periods = 0;
                continue;
            }
            s.surplus_periods += 1;
            if s.surplus_periods < self.cfg.shrink_after {
                continue;
            }
            let to = if t < next[i] {
                t
            } else {
                let free = avail.saturating_sub(used(&next));
                t.min(next[i] + free / n_of(i) / g * g)
            };
            if to != next[i] {
                reasons[i] = Some(if to < next[i] {
                    Reason::Surplus
                } else {
                    Reason::Need
                });
                next[i] = to;
                self.state[i].surplus_periods = 0;
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
        missed.within_slo = 10;
        let r = c.decide(2 * p, &[missed, view(&curve, &sizes, 20)]);
        assert!(
            c.shares()[0] > before || r.iter().any(|r| r.function == 0),
            "{r:?}"
        );
        assert!(c.decide(2 * p + 1, &v0).is_empty(), "not before the period");
    }
}
