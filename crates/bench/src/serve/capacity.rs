//! The engines alone: images/s of each model's CPU engine per batch size, with nothing else
//! of the pipeline running. The best of them is the function's capacity on this machine,
//! which `--loads` are fractions of and the live figures are compared with.

use crate::engines::{open_engine, random_input};
use netml_infer::engine::Backend;
use netml_infer::plan::Precision;
use std::path::Path;
use std::time::Instant;

/// Seconds of timed batches per batch size (after two untimed ones).
const SECONDS_PER_SIZE: f64 = 0.4;

/// One model's engine measured alone.
#[derive(Clone, Debug)]
pub(super) struct Capacity {
    /// Per engine batch size: (batch, mean ms per batch).
    pub(super) per_batch: Vec<(usize, f64)>,
    /// The best images/s over the batch sizes, and the batch it was reached with.
    pub(super) best_per_s: f64,
    pub(super) best_batch: usize,
}

impl Capacity {
    /// Mean ms per batch of the measured size nearest `batch` from above (the engine pads a
    /// batch up to the next size it has), or of the largest.
    pub(super) fn ms_at(&self, batch: f64) -> f64 {
        self.per_batch
            .iter()
            .find(|(b, _)| *b as f64 >= batch)
            .or(self.per_batch.last())
            .map_or(0.0, |&(_, ms)| ms)
    }
}

/// Times `model`'s engine (fp32; the CPU one, or the GPU one with `gpu`) at each of
/// `sizes`, as the serving stage would run it (one instance: one batch at a time).
pub(super) fn measure(model: &Path, sizes: &[usize], gpu: bool) -> Result<Capacity, String> {
    let backend = if gpu { Backend::Gpu } else { Backend::Cpu };
    let mut per_batch = Vec::with_capacity(sizes.len());
    for &b in sizes {
        let (mut engine, _) = open_engine(model, backend, b, Precision::Fp32)?;
        let per: usize = engine.input_shape().iter().product();
        let input = random_input(1, per * b);
        let mut run = || {
            engine
                .run(&input, b)
                .map(|_| ())
                .map_err(|e| format!("{}: {e}", model.display()))
        };
        // The first runs pay for lazy allocation and cold caches.
        run()?;
        run()?;
        let t0 = Instant::now();
        let mut runs = 0u32;
        while runs < 3 || t0.elapsed().as_secs_f64() < SECONDS_PER_SIZE {
            run()?;
            runs += 1;
        }
        per_batch.push((b, t0.elapsed().as_secs_f64() * 1e3 / f64::from(runs)));
    }
    let (best_batch, best_per_s) = per_batch
        .iter()
        .map(|&(b, ms)| (b, b as f64 * 1e3 / ms))
        .max_by(|x, y| x.1.total_cmp(&y.1))
        .ok_or("no batch sizes")?;
    Ok(Capacity {
        per_batch,
        best_per_s,
        best_batch,
    })
}
