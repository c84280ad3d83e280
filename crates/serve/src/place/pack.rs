//! Packing instances onto GPUs: a GPU holds instances whose shares sum to at most the units
//! it has available (and at most `max_per_gpu` of them).

use super::{Choice, Gpu, Instance};
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

/// Empties GPUs into the free units of the others while it can: the least used GPU first,
/// each of its instances' rates re-split into new instances of the same model in the holes
/// left on the other GPUs (`opts[f]`: model `f`'s options). A GPU is emptied only when all
/// of its rate finds room; the result never has more GPUs than `gpus`.
pub(super) fn consolidate(mut gpus: Vec<Gpu>, opts: &[Vec<Choice>], device: &Device) -> Vec<Gpu> {
    'again: loop {
        let mut by_use: Vec<usize> = (0..gpus.len()).collect();
        by_use.sort_by_key(|&k| gpus[k].used());
        for k in by_use {
            let mut trial = gpus.clone();
            let victim = trial.remove(k);
            if victim
                .instances
                .iter()
                .all(|i| absorb(&mut trial, i, &opts[i.function], device))
            {
                gpus = trial;
                continue 'again;
            }
        }
        return sorted(gpus);
    }
}

/// Re-places `inst`'s rate in the free units of `gpus`: in turn the smallest option that
/// covers what is left in some hole (the tightest hole), else the option with the most
/// images/s that fits any hole. False when some rate finds no room.
fn absorb(gpus: &mut [Gpu], inst: &Instance, opts: &[Choice], device: &Device) -> bool {
    let mut left = inst.rate;
    while left > 1e-9 * inst.rate.max(1.0) {
        let free: Vec<u32> = gpus.iter().map(|g| device.available() - g.used()).collect();
        let mut fitting: Vec<(usize, Choice)> = Vec::new();
        for (k, &f) in free.iter().enumerate() {
            fitting.extend(opts.iter().filter(|c| c.share <= f).map(|c| (k, *c)));
        }
        let covering = fitting
            .iter()
            .filter(|(_, c)| c.capacity >= left)
            .min_by_key(|(k, c)| (c.share, free[*k], c.batch));
        let Some(&(k, c)) = covering.or_else(|| {
            fitting
                .iter()
                .max_by(|a, b| a.1.capacity.total_cmp(&b.1.capacity))
        }) else {
            return false;
        };
        let rate = left.min(c.capacity);
        gpus[k].instances.push(Instance {
            function: inst.function,
            share: c.share,
            batch: c.batch,
            rate,
            capacity: c.capacity,
            latency_ns: c.latency_ns,
        });
        left -= rate;
    }
    true
}
