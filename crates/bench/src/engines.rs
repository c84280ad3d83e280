//! Opening a model for `netml infer`, `netml bench infer` and `netml bench serve`: the
//! existence check, the load time and the one-line errors they share, the `--threads`
//! parser and the seeded random input.

use netml_infer::engine::{self, Backend, Engine};
use netml_infer::plan::Precision;
use std::path::Path;
use std::time::Instant;

/// Opens `model` on `backend` for batches of up to `batch`, on one thread
/// ([`open_engine_threads`] with 1).
pub fn open_engine(
    model: &Path,
    backend: Backend,
    batch: usize,
    precision: Precision,
) -> Result<(Box<dyn Engine>, f64), String> {
    open_engine_threads(model, backend, batch, precision, 1)
}

/// Opens `model` on `backend` for batches of up to `batch`, the CPU backends on `threads`
/// threads; also returns the load time in ms. Errors are one line naming the file.
pub fn open_engine_threads(
    model: &Path,
    backend: Backend,
    batch: usize,
    precision: Precision,
    threads: usize,
) -> Result<(Box<dyn Engine>, f64), String> {
    if !model.exists() {
        return Err(format!("{}: no such file", model.display()));
    }
    let t0 = Instant::now();
    let engine = engine::open_threads(model, backend, batch, precision, threads)
        .map_err(|e| format!("{}: {e}", model.display()))?;
    Ok((engine, t0.elapsed().as_secs_f64() * 1e3))
}

/// A thread count: a positive number, or `all` for every core this process may use.
pub fn parse_threads(s: &str) -> Result<usize, String> {
    if s.eq_ignore_ascii_case("all") {
        return Ok(std::thread::available_parallelism().map_or(1, |n| n.get()));
    }
    match s.parse::<usize>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!(
            "'{s}': expected a positive number of threads or 'all'"
        )),
    }
}

/// `n` seeded pseudo-random values in [-1, 1) (xorshift64), the default input.
pub fn random_input(seed: u64, n: usize) -> Vec<f32> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
        })
        .collect()
}
