//! Placement: which instances of which models, in which shares, on how many GPUs, so that
//! every model's rate is served inside its SLO with the fewest GPUs (ParvaGPU's objective).
//!
//! ```text
//! per model: every (share, batch) whose predicted latency meets the SLO rule -> options
//!   -> bulk instances of the best option + one right-sized instance for the rest of the rate
//! instances -> packed onto GPUs (shares summing to at most the units a GPU has free)
//! ```
//!
//! Three strategies go through the same code ([`place`]), differing only in the shares they
//! may use, how they rank options and how they pack:
//! - [`Strategy::Packed`] (ours, after ParvaGPU): any share at the device's granularity; the
//!   bulk option is the one with the most images/s per GPU when a GPU is filled with copies of
//!   it (so shares that leave unusable fragments rank lower); best-fit decreasing packing,
//!   then GPUs emptied into the others' free units where their rate fits there.
//! - [`Strategy::GpuLets`] (the gpu-lets greedy): partitions of 20, 40, 50, 60, 80 or 100% of
//!   a GPU, at most two per GPU; the option with the most images/s per unit; first fit in
//!   allocation order.
//! - [`Strategy::OnePerGpu`]: each model on whole GPUs of its own.
//!
//! Interference (gpu-lets): an instance in less than a whole GPU may share it, so its
//! predicted latency carries a co-location slowdown margin ([`DEFAULT_MARGIN`]); an instance
//! on a whole GPU runs alone and carries none.

mod options;
mod pack;

use crate::share::{Device, ShareCurve};
use std::fmt;
use std::str::FromStr;

pub use options::{options, queue_load, Choice};

/// Default co-location slowdown margin: predicted latencies in a partial share are taken
/// 10% longer. gpu-lets models the slowdown of each co-located pair and plans with it; we
/// plan with one flat margin, and 10% is a planning choice, not a measurement.
pub const DEFAULT_MARGIN: f64 = 0.10;

/// Default planning load: an instance is planned at most at this fraction of the images/s
/// its batch sustains, so that Poisson bursts do not build an endless queue.
pub const DEFAULT_MAX_LOAD: f64 = 0.85;

/// Engine batch sizes considered by default (those of `netml simulate`).
pub const DEFAULT_BATCH_SIZES: [usize; 6] = [1, 2, 4, 8, 16, 32];

/// One model to place.
#[derive(Debug, Clone)]
pub struct Demand {
    /// Its name (the profile's model name).
    pub name: String,
    /// Images per second to serve.
    pub rate: f64,
    /// Latency objective, ns.
    pub slo_ns: u64,
    /// Its latency at a batch size and share.
    pub curve: ShareCurve,
}

/// What placement plans with.
#[derive(Debug, Clone)]
pub struct Params {
    /// One GPU (all GPUs are alike).
    pub device: Device,
    /// Co-location slowdown margin on instances in a partial share (0.1: 10% longer).
    pub margin: f64,
    /// Fraction of an instance's sustainable images/s it is planned at, in (0, 1].
    pub max_load: f64,
    /// Engine batch sizes an instance may run.
    pub batch_sizes: Vec<usize>,
}

impl Params {
    /// The defaults on `device`.
    pub fn new(device: Device) -> Params {
        Params {
            device,
            margin: DEFAULT_MARGIN,
            max_load: DEFAULT_MAX_LOAD,
            batch_sizes: DEFAULT_BATCH_SIZES.to_vec(),
        }
    }

    /// Predicted latency (ns) of `batch` on `share` units, with the co-location margin when
    /// the share is less than the whole device.
    pub fn latency(&self, curve: &ShareCurve, batch: usize, share: u32) -> f64 {
        let alone = share >= self.device.available();
        let margin = if alone { 1.0 } else { 1.0 + self.margin };
        curve.latency(batch, self.device.fraction(share)) * margin
    }

    /// Checks the values.
    pub fn check(&self) -> Result<(), String> {
        if !(self.margin.is_finite() && (0.0..=2.0).contains(&self.margin)) {
            return Err("the interference margin must be in 0..=2".into());
        }
        if !(self.max_load.is_finite() && self.max_load > 0.0 && self.max_load <= 1.0) {
            return Err("the planning load must be in (0, 1]".into());
        }
        if self.batch_sizes.is_empty() || self.batch_sizes.contains(&0) {
            return Err("batch sizes must be at least 1".into());
        }
        Ok(())
    }
}

/// The SLO rule an instance is planned by: an image may wait for the batch in progress and
/// then run in the next one, so twice the predicted batch latency must fit the SLO (the
/// worst case Nexus plans for).
pub fn meets_slo(latency_ns: f64, slo_ns: u64) -> bool {
    2.0 * latency_ns <= slo_ns as f64
}

/// How instances are chosen and packed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// Ours (after ParvaGPU): any share, bulk + right-sized remainder, best-fit decreasing.
    Packed,
    /// The gpu-lets greedy: fixed partition sizes, two per GPU at most.
    GpuLets,
    /// Each model on whole GPUs of its own.
    OnePerGpu,
}

/// gpu-lets' partition sizes, percent of a GPU.
pub const GPU_LETS_PERCENT: [u32; 6] = [20, 40, 50, 60, 80, 100];

impl Strategy {
    /// Every strategy, in the order tables print them.
    pub const ALL: [Strategy; 3] = [Strategy::OnePerGpu, Strategy::GpuLets, Strategy::Packed];

    /// Shares (units) the strategy may give an instance on `device`, ascending.
    pub fn shares(self, device: &Device) -> Vec<u32> {
        let avail = device.available();
        match self {
            Strategy::Packed => device.steps(),
            Strategy::OnePerGpu => vec![avail],
            // Rounded down to the granularity so that two partitions summing to 100% fit.
            Strategy::GpuLets => {
                let g = device.granularity.max(1);
                let mut v: Vec<u32> = GPU_LETS_PERCENT
                    .iter()
                    .map(|&p| match p {
                        100 => avail,
                        _ => (avail * p / 100 / g * g).max(g.min(avail)),
                    })
                    .collect();
                v.dedup();
                v
            }
        }
    }

    /// Instances per GPU at most.
    pub fn max_per_gpu(self) -> usize {
        match self {
            Strategy::GpuLets => 2,
            Strategy::OnePerGpu => 1,
            Strategy::Packed => usize::MAX,
        }
    }
}

impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Strategy::Packed => "ours",
            Strategy::GpuLets => "gpu-lets",
            Strategy::OnePerGpu => "one-per-gpu",
        })
    }
}

impl FromStr for Strategy {
    type Err = String;
    fn from_str(s: &str) -> Result<Strategy, String> {
        Strategy::ALL
            .into_iter()
            .find(|m| m.to_string() == s)
            .ok_or_else(|| format!("unknown strategy {s:?} (ours, gpu-lets or one-per-gpu)"))
    }
}

/// One planned instance.
#[derive(Debug, Clone, PartialEq)]
pub struct Instance {
    /// Index of its model in the demands.
    pub function: usize,
    /// Units of the GPU it runs in.
    pub share: u32,
    /// The batch it is planned at.
    pub batch: usize,
    /// Images/s it is planned to serve.
    pub rate: f64,
    /// Images/s it sustains inside the SLO rule at the planning load.
    pub capacity: f64,
    /// Predicted batch latency (margin included), ns.
    pub latency_ns: f64,
}

/// One GPU's instances.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Gpu {
    /// Its instances.
    pub instances: Vec<Instance>,
}

impl Gpu {
    /// Units given to instances.
    pub fn used(&self) -> u32 {
        self.instances.iter().map(|i| i.share).sum()
    }
}

/// A placement: the GPUs and their instances.
#[derive(Debug, Clone, PartialEq)]
pub struct Placement {
    /// How it was computed.
    pub strategy: Strategy,
    /// The GPUs used, each with at least one instance.
    pub gpus: Vec<Gpu>,
}

impl Placement {
    /// Units given to instances over units available on the GPUs used.
    pub fn utilisation(&self, device: &Device) -> f64 {
        let used: u32 = self.gpus.iter().map(Gpu::used).sum();
        used as f64 / (device.available() as f64 * self.gpus.len().max(1) as f64)
    }

    /// Planned images/s of function `f` over all GPUs.
    pub fn planned(&self, f: usize) -> f64 {
        self.gpus
            .iter()
            .flat_map(|g| &g.instances)
            .filter(|i| i.function == f)
            .map(|i| i.rate)
            .sum()
    }
}

/// Places `demands` with `strategy`. Fails when a model cannot meet its SLO in any share the
/// strategy may use.
pub fn place(strategy: Strategy, demands: &[Demand], p: &Params) -> Result<Placement, String> {
    p.check()?;
    let shares = strategy.shares(&p.device);
    let mut instances = Vec::new();
    let mut all_opts = vec![Vec::new(); demands.len()];
    // gpu-lets allocates the most demanding model first and packs in that order.
    let mut order: Vec<usize> = (0..demands.len()).collect();
    if strategy == Strategy::GpuLets {
        order.sort_by(|&a, &b| demands[b].rate.total_cmp(&demands[a].rate));
    }
    for f in order {
        let d = &demands[f];
        if !(d.rate.is_finite() && d.rate > 0.0) {
            return Err(format!("{}: the rate must be a positive number", d.name));
        }
        let opts = options(d, p, &shares);
        if opts.is_empty() {
            return Err(format!(
                "{}: no share and batch meets its {} ms SLO (2 x batch latency <= SLO)",
                d.name,
                d.slo_ns as f64 / 1e6
            ));
        }
        instances.extend(options::split(f, d.rate, &opts, strategy, &p.device));
        all_opts[f] = opts;
    }
    let gpus = match strategy {
        Strategy::GpuLets => pack::first_fit(instances, &p.device, strategy.max_per_gpu()),
        Strategy::OnePerGpu => pack::best_fit_decreasing(instances, &p.device, 1),
        Strategy::Packed => pack::consolidate(
            pack::best_fit_decreasing(instances, &p.device, usize::MAX),
            &all_opts,
            &p.device,
        ),
    };
    Ok(Placement { strategy, gpus })
}

#[cfg(test)]
mod tests;
