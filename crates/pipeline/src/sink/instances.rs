//! Building a function's instances: engines loaded (one plan per batch size) and warmed up,
//! on the CPU (a worker thread each) or on the GPU (a stream each, in the pipeline's context).

use crate::config::FunctionConfig;
use cudarc::driver::CudaContext;
use netml_infer::gpu::GpuEngine;
use netml_infer::{Backend, Engine, Precision};
use netml_serve::exec::{Answers, BuildEngine, CpuInstance, CpuShare, GpuInstance, Input};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Where a function's instances run.
pub(super) enum Place {
    /// CPU instances, each on its share of cores (one share per instance).
    Cpu(Vec<CpuShare>),
    Gpu(Arc<CudaContext>),
}

/// A running instance's engine side.
pub(crate) enum Executor {
    Cpu(CpuInstance),
    Gpu(GpuInstance),
}

impl Executor {
    /// Whether its input must be device memory.
    pub(crate) fn on_gpu(&self) -> bool {
        matches!(self, Executor::Gpu(_))
    }

    /// f32 values per image.
    pub(crate) fn per_image(&self) -> usize {
        match self {
            Executor::Cpu(c) => c.per_image(),
            Executor::Gpu(g) => g.per_image(),
        }
    }

    /// Starts a batch.
    ///
    /// # Safety
    /// As [`CpuInstance::start`] (host memory) or [`GpuInstance::start`] (device memory).
    pub(crate) unsafe fn start(&mut self, input: Input) -> Result<(), String> {
        match self {
            // SAFETY: the caller's contract.
            Executor::Cpu(c) => unsafe { c.start(input) },
            // SAFETY: the caller's contract.
            Executor::Gpu(g) => unsafe { g.start(input) },
        }
    }

    /// The running batch's result, once there.
    pub(crate) fn poll(&mut self) -> Option<Result<Answers, String>> {
        match self {
            Executor::Cpu(c) => c.poll(),
            Executor::Gpu(g) => g.poll(),
        }
    }
}

/// A built instance: its executor, the warm-up time of each plan `(batch, ns)` and the
/// per-image input shape.
pub(super) type Built = (Executor, Vec<(usize, f64)>, Vec<usize>);

/// One instance of `f` with plans for `sizes`: its executor, the warm-up time of each plan
/// (ns, the scheduler's first estimate) and the per-image input shape.
pub(super) fn build(
    f: &FunctionConfig,
    k: usize,
    sizes: &[usize],
    precision: Precision,
    place: &Place,
) -> Result<Built, String> {
    let (name, file) = (&f.name, f.model_file.display());
    let mut measured = Vec::new();
    let mut shape = Vec::new();
    let executor = match place {
        Place::Cpu(shares) => {
            let share = shares.get(k).cloned().unwrap_or_else(CpuShare::single);
            let mut instance = cpu_instance(f, k, sizes, precision, share)?;
            shape = instance.input_shape().to_vec();
            for &b in sizes {
                // The workers ran each plan once; this second run is timed.
                let t = instance
                    .measure(b, b)
                    .map_err(|e| format!("function {name:?}: {file}: {e}"))?;
                measured.push((b, t));
            }
            Executor::Cpu(instance)
        }
        Place::Gpu(ctx) => {
            // Each plan is loaded once, warmed up (its second run timed) and kept.
            let mut warm = |e: &mut dyn Engine, b: usize| -> Result<(), String> {
                shape = e.input_shape().to_vec();
                let t = warm_up(e, b).map_err(|e| format!("function {name:?}: {file}: {e}"))?;
                measured.push((b, t));
                Ok(())
            };
            let loading = |b: usize| {
                move |e: netml_infer::Error| {
                    format!(
                        "function {name:?}: loading {} for batch {b}: {e}",
                        f.model_file.display()
                    )
                }
            };
            let mut engines = BTreeMap::new();
            for &b in sizes {
                let mut e = netml_infer::Plan::load(&f.model_file, b, precision)
                    .and_then(|p| GpuEngine::with_context(ctx, p))
                    .map_err(loading(b))?;
                warm(&mut e, b)?;
                engines.insert(b, e);
            }
            Executor::Gpu(
                GpuInstance::new(ctx, engines, f.top_k)
                    .map_err(|e| format!("function {name:?}: {file} on the GPU: {e}"))?,
            )
        }
    };
    Ok((executor, measured, shape))
}

/// A CPU instance of `f` on `share`, each worker building its plans for `sizes` (ready and
/// warmed up once when this returns).
pub(super) fn cpu_instance(
    f: &FunctionConfig,
    k: usize,
    sizes: &[usize],
    precision: Precision,
    share: CpuShare,
) -> Result<CpuInstance, String> {
    let path = f.model_file.clone();
    let build: BuildEngine = Arc::new(move |b, _threads| {
        netml_infer::open(&path, Backend::Cpu, b, precision)
            .map_err(|e| format!("loading {}: {e}", path.display()))
    });
    CpuInstance::spawn(
        &format!("netml-if-{}-{k}", f.model),
        share,
        sizes,
        f.top_k,
        build,
    )
    .map_err(|e| format!("function {:?}: {e}", f.name))
}

/// Runs a zero batch twice (the first run pays for lazy allocation and cold caches) and
/// returns the second run's time in ns: the scheduler's first estimate, so that no image is
/// admitted blind and no cold start teaches it a latency it will never see again.
fn warm_up(e: &mut dyn Engine, batch: usize) -> Result<f64, String> {
    let zeros = vec![0f32; batch * e.input_shape().iter().product::<usize>()];
    e.run(&zeros, batch).map_err(|e| e.to_string())?;
    let t = std::time::Instant::now();
    e.run(&zeros, batch).map_err(|e| e.to_string())?;
    Ok(t.elapsed().as_nanos() as f64)
}
