//! Packing instances onto GPUs: a GPU holds instances whose shares sum to at most the units
//! it has available (and at most `max_per_gpu` of them).

use super::{Gpu, Instance};
use crate::share::Device;

/// Whether `i` fits on `g`.
fn fits(g: &Gpu, i: &Instance, device: &Device, max_per_gpu: usize) -> bool {
    g.instances.len() < max_per_gpu && g.used() + i.share <= device.available()
}

/// Places `i` on `gpus[at]`, or on a new GPU when `at` is `None`.
fn put(gpus: &mut Vec<Gpu>, at: Option<usize>, i: Instance) {
    match at {
        Some(k) => gpus[k].instances.push(i),
        None => gpus.push(Gpu { instances: vec![i] }),
    }
}

/// Largest share first, each onto the GPU it leaves the least free on (the smallest
/// fragment), a new GPU when none has room.
pub(super) fn best_fit_decreasing(
    mut instances: Vec<Instance>,
    device: &Device,
    max_per_gpu: usize,
) -> Vec<Gpu> {
    instances.sort_by(|a, b| b.share.cmp(&a.share).then(a.function.cmp(&b.function)));
    let mut gpus: Vec<Gpu> = Vec::new();
    for i in instances {
        let at = (0..gpus.len())
            .filter(|&k| fits(&gpus[k], &i, device, max_per_gpu))
            .min_by_key(|&k| device.available() - gpus[k].used());
        put(&mut gpus, at, i);
    }
    sorted(gpus)
}

/// In the order given, each onto the first GPU with room.
pub(super) fn first_fit(instances: Vec<Instance>, device: &Device, max_per_gpu: usize) -> Vec<Gpu> {
    let mut gpus: Vec<Gpu> = Vec::new();
    for i in instances {
        let at = (0..gpus.len()).find(|&k| fits(&gpus[k], &i, device, max_per_gpu));
        put(&mut gpus, at, i);
    }
    sorted(gpus)
}

/// Each GPU's instances by function, then largest share first (for tables and configs).
fn sorted(mut gpus: Vec<Gpu>) -> Vec<Gpu> {
    for g in &mut gpus {
        g.instances
            .sort_by(|a, b| a.function.cmp(&b.function).then(b.share.cmp(&a.share)));
    }
    gpus
}
