//! A model's options, every (share, batch) that meets the SLO rule, and the split of its rate
//! into bulk instances of the best option plus one right-sized instance for the rest.

use super::{meets_slo, Demand, Instance, Params, Strategy};
use crate::share::Device;
use std::cmp::Ordering;

/// One way to run an instance of a model.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Choice {
    /// Units of the GPU.
    pub share: u32,
    /// Engine batch it is planned at.
    pub batch: usize,
    /// Predicted batch latency (margin included), ns.
    pub latency_ns: f64,
    /// Images/s it is planned to sustain: batch / latency times the planning load or the
    /// [`queue_load`], whichever is lower.
    pub capacity: f64,
}

/// Every `(share, batch)` of `shares` x the batch sizes whose predicted latency meets
/// [`meets_slo`] for `d` with room for queueing ([`queue_load`] above zero).
pub fn options(d: &Demand, p: &Params, shares: &[u32]) -> Vec<Choice> {
    let mut v = Vec::new();
    for &share in shares {
        for &batch in &p.batch_sizes {
            let latency_ns = p.latency(&d.curve, batch, share);
            if !(latency_ns > 0.0 && meets_slo(latency_ns, d.slo_ns)) {
                continue;
            }
            let load = p.max_load.min(queue_load(latency_ns, d.slo_ns, batch));
            if load > 0.0 {
                v.push(Choice {
                    share,
                    batch,
                    latency_ns,
                    capacity: load * batch as f64 * 1e9 / latency_ns,
                });
            }
        }
    }
    v
}

/// `ln(1 / 1%) / 2`: see [`queue_load`].
const QUEUE_Z: f64 = 2.303;

/// The load at which an instance's queue outgrows its slack for at most ~1% of the images:
/// with `k = SLO / latency - 2` batches of slack (beyond the batch in progress and its own),
/// images queue past `k x batch` with probability about `exp(-2 (1 - load) k batch)` (the
/// diffusion approximation of a queue with Poisson arrivals and even service), so the load
/// is kept to `1 - 2.3 / (k x batch)`. Zero or less: the option has no room for queueing.
pub fn queue_load(latency_ns: f64, slo_ns: u64, batch: usize) -> f64 {
    let slack = slo_ns as f64 / latency_ns - 2.0;
    if slack <= 0.0 {
        return 0.0;
    }
    1.0 - QUEUE_Z / (slack * batch as f64)
}

/// How well `c` serves bulk load under `strategy`: ours and one-per-GPU count the images/s
/// of a GPU filled with copies of it (a share that leaves an unusable fragment ranks lower);
/// gpu-lets its images/s per unit.
fn score(c: &Choice, strategy: Strategy, device: &Device) -> f64 {
    match strategy {
        Strategy::GpuLets => c.capacity / c.share as f64,
        Strategy::Packed | Strategy::OnePerGpu => {
            (device.available() / c.share) as f64 * c.capacity
        }
    }
}

/// The bulk option: the best score; on a tie the smaller share, then the smaller batch.
fn bulk(opts: &[Choice], strategy: Strategy, device: &Device) -> Choice {
    let better = |a: &Choice, b: &Choice| {
        let (sa, sb) = (score(a, strategy, device), score(b, strategy, device));
        if (sa - sb).abs() > 1e-9 * sa.abs().max(sb.abs()) {
            return sa.total_cmp(&sb);
        }
        (b.share, b.batch).cmp(&(a.share, a.batch))
    };
    *opts
        .iter()
        .max_by(|a, b| better(a, b))
        .expect("options are not empty")
}

/// Instances of function `f` for `rate` images/s: as many of the bulk option as the rate
/// fills, then the smallest share (and at it the smallest batch) that covers what is left.
pub(super) fn split(
    f: usize,
    rate: f64,
    opts: &[Choice],
    strategy: Strategy,
    device: &Device,
) -> Vec<Instance> {
    let best = bulk(opts, strategy, device);
    let instance = |c: &Choice, rate: f64| Instance {
        function: f,
        share: c.share,
        batch: c.batch,
        rate,
        capacity: c.capacity,
        latency_ns: c.latency_ns,
    };
    let mut out = Vec::new();
    let mut left = rate;
    while left > best.capacity * (1.0 + 1e-9) {
        out.push(instance(&best, best.capacity));
        left -= best.capacity;
    }
    if left > 0.0 {
        let rest = opts
            .iter()
            .filter(|c| c.capacity >= left)
            .min_by(|a, b| match a.share.cmp(&b.share) {
                Ordering::Equal => a.batch.cmp(&b.batch),
                o => o,
            })
            .unwrap_or(&best);
        out.push(instance(rest, left));
    }
    out
}
