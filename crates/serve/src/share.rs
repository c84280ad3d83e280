//! Compute shares: the part of a device an inference function's instance runs on, and how a
//! batch's latency depends on it.
//!
//! A share is counted in the device's units: SMs of a GPU (a green-context partition, rounded
//! to the hardware's granularity) or cores of a CPU (an instance's dedicated worker threads).
//! Where a profile measured a model at several shares, latencies come from those rows; where it
//! only measured the whole device, from a scaling model ([`ShareCurve`]) fitted to the share
//! measurements we have, and everything printed from it says "modelled".

use crate::latency::LatencyModel;
use crate::profile::Profile;
use std::fmt;
use std::str::FromStr;

/// What a device's compute is counted in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// Streaming multiprocessors of a GPU.
    Sms,
    /// CPU cores (one worker thread each).
    Threads,
}

impl Unit {
    /// Short name for tables: `SMs` or `threads`.
    pub fn label(self) -> &'static str {
        match self {
            Unit::Sms => "SMs",
            Unit::Threads => "threads",
        }
    }
}

/// A device whose compute is split into shares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Device {
    /// What shares are counted in.
    pub unit: Unit,
    /// Units on the device.
    pub total: u32,
    /// Shares are multiples of this (8 SMs for green contexts on Hopper: asked 66, granted 72).
    pub granularity: u32,
    /// Units kept for the ingest's resident gather kernel, never given to a function.
    pub reserved: u32,
}

/// SMs of an H100/H200 SXM.
pub const HOPPER_SMS: u32 = 132;
/// Green-context SM granularity on Hopper (h100-measurements.md: 66 asked, 72 granted).
pub const HOPPER_SM_GRANULARITY: u32 = 8;

impl Device {
    /// A GPU with `sms` SMs at Hopper's green-context granularity, one granule kept for the
    /// resident gather kernel.
    pub fn gpu(sms: u32) -> Device {
        Device {
            unit: Unit::Sms,
            total: sms,
            granularity: HOPPER_SM_GRANULARITY,
            reserved: HOPPER_SM_GRANULARITY.min(sms / 2),
        }
    }

    /// A CPU with `cores` cores, all available to functions.
    pub fn cpu(cores: u32) -> Device {
        Device {
            unit: Unit::Threads,
            total: cores.max(1),
            granularity: 1,
            reserved: 0,
        }
    }

    /// Units functions can share.
    pub fn available(&self) -> u32 {
        self.total.saturating_sub(self.reserved).max(1)
    }

    /// `units` as granted: rounded up to the granularity, at least one granule, at most
    /// everything available (the last, partial granule included).
    pub fn round(&self, units: u32) -> u32 {
        let g = self.granularity.max(1);
        (units.div_ceil(g) * g).clamp(g.min(self.available()), self.available())
    }

    /// Every share size a function can be granted, ascending.
    pub fn steps(&self) -> Vec<u32> {
        let g = self.granularity.max(1);
        let mut v: Vec<u32> = (1..)
            .map(|i| i * g)
            .take_while(|&u| u < self.available())
            .collect();
        v.push(self.available());
        v
    }

    /// `units` as a fraction of the whole device.
    pub fn fraction(&self, units: u32) -> f64 {
        units as f64 / self.total.max(1) as f64
    }
}

impl fmt::Display for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} (granularity {}, {} reserved for ingest)",
            self.total,
            self.unit.label(),
            self.granularity,
            self.reserved
        )
    }
}

/// How the functions on one device share it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sharing {
    /// Functions take the whole device in turns (CUDA time-slicing between contexts: only one
    /// function's kernels run at a time).
    Temporal,
    /// All functions run concurrently without limits (what default MPS gives): each batch
    /// takes what it can; oversubscribed, every running batch slows down.
    Shared,
    /// Each instance in its own share (green contexts), resized online by the controller.
    Partitioned,
    /// The papers' baseline: instances as processes at fixed `CUDA_MPS_ACTIVE_THREAD_PERCENTAGE`
    /// shares (isolated like partitions, never resized: a resize restarts the process).
    Mps,
}

impl Sharing {
    /// Every mode, in the order tables print them.
    pub const ALL: [Sharing; 4] = [
        Sharing::Temporal,
        Sharing::Shared,
        Sharing::Mps,
        Sharing::Partitioned,
    ];

    /// Whether instances run in isolated shares.
    pub fn isolated(self) -> bool {
        matches!(self, Sharing::Partitioned | Sharing::Mps)
    }
}

impl fmt::Display for Sharing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Sharing::Temporal => "temporal",
            Sharing::Shared => "shared",
            Sharing::Partitioned => "partitioned",
            Sharing::Mps => "mps",
        })
    }
}

impl FromStr for Sharing {
    type Err = String;
    fn from_str(s: &str) -> Result<Sharing, String> {
        Sharing::ALL
            .into_iter()
            .find(|m| m.to_string() == s)
            .ok_or_else(|| {
                format!("unknown sharing mode {s:?} (temporal, shared, partitioned or mps)")
            })
    }
}

/// The share measurements the scaling model is fitted to (h100-measurements.md, "Controlled
/// spatial sharing"): one compute-bound kernel (264 blocks x 1024 threads) at `(SMs, ms)`.
pub const SPIN_KERNEL_SMS_MS: [(f64, f64); 4] =
    [(132.0, 0.52), (72.0, 1.02), (32.0, 2.54), (16.0, 4.56)];

/// The exponent `k` of `time ∝ units^-k` fitted by least squares in log-log space to
/// [`SPIN_KERNEL_SMS_MS`] (about 1.0: a saturating kernel scales with the SMs it is given).
pub fn fitted_exponent() -> f64 {
    let pts: Vec<(f64, f64)> = SPIN_KERNEL_SMS_MS
        .iter()
        .map(|&(s, t)| (s.ln(), t.ln()))
        .collect();
    let n = pts.len() as f64;
    let (mx, my) = (
        pts.iter().map(|p| p.0).sum::<f64>() / n,
        pts.iter().map(|p| p.1).sum::<f64>() / n,
    );
    let sxy: f64 = pts.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    let sxx: f64 = pts.iter().map(|p| (p.0 - mx) * (p.0 - mx)).sum();
    -sxy / sxx
}

/// Smallest demand a batch is taken to have (a batch of one still keeps a few SMs busy).
const MIN_DEMAND: f64 = 0.02;

/// A model's batch latency as a function of batch size and share.
///
/// Measured rows at a share are used as they are (interpolated across shares in log-log
/// space). Otherwise the latency at fraction `f` of the device is modelled as
/// `t(b) * max(1, d(b) / f)^k`: `t(b)` the whole-device latency, `k` [`fitted_exponent`],
/// and `d(b)` the batch's demand, the fraction of the device it keeps busy, taken from the
/// profile as `b * c / t(b)` with `c` the model's best per-image time over its batch sizes
/// (the largest batches saturate the device; batch 1 of a small CNN keeps a few percent of it
/// busy). A share above the demand costs nothing; below it, the batch slows as the spin kernel
/// did. This is the knee GSLICE tunes each function to.
#[derive(Debug, Clone)]
pub struct ShareCurve {
    whole: LatencyModel,
    per_image_best: f64,
    exponent: f64,
    /// `(fraction, batch, ns)` measured below the whole device.
    measured: Vec<(f64, usize, f64)>,
}

impl ShareCurve {
    /// From `(batch, ns)` points on the whole device; `None` without points.
    pub fn new(whole: &[(usize, f64)]) -> Option<ShareCurve> {
        let sizes: Vec<usize> = whole.iter().map(|p| p.0).collect();
        let per_image_best = whole
            .iter()
            .map(|&(b, ns)| ns / b.max(1) as f64)
            .fold(f64::INFINITY, f64::min);
        if whole.is_empty() || !per_image_best.is_finite() {
            return None;
        }
        Some(ShareCurve {
            whole: LatencyModel::seeded(&sizes, whole),
            per_image_best,
            exponent: fitted_exponent(),
            measured: Vec::new(),
        })
    }

    /// `model` at `precision` from a profile: its whole-device rows, and its rows at other
    /// `gpu_share_pct` as measurements.
    pub fn from_profile(p: &Profile, model: &str, precision: &str) -> Option<ShareCurve> {
        let mut c = ShareCurve::new(&p.points(model, precision))?;
        c.measured = p
            .rows
            .iter()
            .filter(|r| r.model == model && r.precision == precision && r.share_pct < 100)
            .map(|r| (r.share_pct as f64 / 100.0, r.batch, r.ms * 1e6))
            .collect();
        Some(c)
    }

    /// Whether any latency below the whole device was measured rather than modelled.
    pub fn measured_shares(&self) -> bool {
        !self.measured.is_empty()
    }

    /// Latency (ns) of `batch` on the whole device.
    pub fn whole(&self, batch: usize) -> f64 {
        self.whole.predict(batch).unwrap_or(0) as f64
    }

    /// Fraction of the device `batch` keeps busy, in `[MIN_DEMAND, 1]`.
    pub fn demand(&self, batch: usize) -> f64 {
        let t = self.whole(batch);
        if t <= 0.0 {
            return 1.0;
        }
        (batch as f64 * self.per_image_best / t).clamp(MIN_DEMAND, 1.0)
    }

    /// Latency (ns) of `batch` on `fraction` of the device.
    pub fn latency(&self, batch: usize, fraction: f64) -> f64 {
        let f = fraction.clamp(1e-3, 1.0);
        if let Some(ns) = self.measured_at(batch, f) {
            return ns;
        }
        self.whole(batch) * (self.demand(batch) / f).max(1.0).powf(self.exponent)
    }

    /// Slowdown of `batch` when `demand_sum` of the device is asked for at once (shared
    /// mode): everyone gets `1 / demand_sum` of what they ask.
    pub fn oversubscribed(&self, demand_sum: f64) -> f64 {
        demand_sum.max(1.0).powf(self.exponent)
    }

    /// A measured latency at `fraction` for `batch`, interpolated in log-log space between
    /// the measured shares (and the whole device) around it.
    fn measured_at(&self, batch: usize, f: f64) -> Option<f64> {
        let mut pts: Vec<(f64, f64)> = self
            .measured
            .iter()
            .filter(|m| m.1 == batch)
            .map(|m| (m.0, m.2))
            .collect();
        if pts.is_empty() {
            return None;
        }
        pts.push((1.0, self.whole(batch)));
        pts.sort_by(|a, b| a.0.total_cmp(&b.0));
        let lo = pts.iter().rev().find(|p| p.0 <= f);
        let hi = pts.iter().find(|p| p.0 >= f);
        match (lo, hi) {
            (Some(a), Some(b)) if b.0 > a.0 => {
                let w = (f.ln() - a.0.ln()) / (b.0.ln() - a.0.ln());
                Some((a.1.ln() + w * (b.1.ln() - a.1.ln())).exp())
            }
            (Some(a), _) => Some(a.1),
            // Below the smallest measured share: the model's slope from there.
            (None, Some(b)) => Some(b.1 * (b.0 / f).powf(self.exponent)),
            (None, None) => None,
        }
    }

    /// A latency model for `sizes` at `fraction` of the device (what a function's scheduler
    /// is seeded with for that share).
    pub fn model_at(&self, sizes: &[usize], fraction: f64) -> LatencyModel {
        let pts: Vec<(usize, f64)> = sizes
            .iter()
            .map(|&b| (b, self.latency(b, fraction)))
            .collect();
        LatencyModel::seeded(sizes, &pts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_spin_kernel_fit_scales_with_the_sms() {
        let k = fitted_exponent();
        assert!((0.9..1.15).contains(&k), "{k}");
    }

    #[test]
    fn green_context_granularity_rounds_up_like_the_measurement() {
        let d = Device::gpu(132);
        assert_eq!(d.available(), 124);
        assert_eq!(d.round(66), 72, "66 asked, 72 granted");
        assert_eq!(d.round(1), 8);
        assert_eq!(d.round(500), 124);
        let steps = d.steps();
        assert_eq!(steps.first(), Some(&8));
        assert_eq!(steps.last(), Some(&124));
        assert_eq!(steps.len(), 16);
        assert_eq!(Device::cpu(2).steps(), vec![1, 2]);
    }

    #[test]
    fn small_batches_keep_their_latency_down_to_their_demand() {
        // alexnet fp32 on the H100 profile: batch 1 keeps ~7% of the GPU busy.
        let c = ShareCurve::new(&[(1, 0.43e6), (8, 0.52e6), (32, 0.97e6)]).unwrap();
        assert!((c.demand(1) - 0.0705).abs() < 0.001, "{}", c.demand(1));
        assert_eq!(c.demand(32), 1.0);
        assert_eq!(c.latency(1, 0.25), c.whole(1), "above its demand: no cost");
        let half = c.latency(32, 0.5) / c.whole(32);
        assert!((1.9..2.2).contains(&half), "{half}");
        assert!(!c.measured_shares());
    }

    #[test]
    fn measured_share_rows_win_over_the_model() {
        let p = Profile::parse(
            "model,precision,batch,gpu_share_pct,ms\nm,fp32,8,100,1.0\nm,fp32,8,50,1.5\nm,fp32,8,25,3.0\n",
        )
        .unwrap();
        let c = ShareCurve::from_profile(&p, "m", "fp32").unwrap();
        assert!(c.measured_shares());
        assert!((c.latency(8, 0.5) - 1.5e6).abs() < 1.0);
        assert!((c.latency(8, 0.25) - 3.0e6).abs() < 1.0);
        let between = c.latency(8, 0.35);
        assert!(between > 1.5e6 && between < 3.0e6);
        assert!(c.latency(8, 0.125) > 3.0e6, "extended below the smallest");
    }

    #[test]
    fn sharing_modes_parse_and_print() {
        for m in Sharing::ALL {
            assert_eq!(m.to_string().parse::<Sharing>(), Ok(m));
        }
        assert!("mig".parse::<Sharing>().unwrap_err().contains("temporal"));
    }
}
