//! Building a function's instances: engines loaded (one plan per batch size) and warmed up,
//! on the CPU (worker threads on a share of cores, resizable through a shadow instance) or on
//! the GPU (a stream each, in the pipeline's context).

use crate::config::FunctionConfig;
use cudarc::driver::CudaContext;
use netml_gpu::cuda::green::GreenPartition;
use netml_infer::gpu::GpuEngine;
use netml_infer::{Backend, Engine, Precision};
use netml_serve::exec::{
    Answers, BuildEngine, CpuInstance, CpuShare, GpuInstance, Input, Parallel, Prepared, Reshare,
    Shadowed,
};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Where a function's instances run.
pub(super) enum Place {
    /// CPU instances, each on its share of cores (one share per instance; none: one
    /// unpinned thread each).
    Cpu(Vec<CpuShare>),
    /// GPU instances in the pipeline's context, each on a green-context partition of its
    /// share's SMs (one share per instance; none: the whole device).
    Gpu(Arc<CudaContext>, Vec<u32>),
}

/// The cores CPU shares are pinned to, handed out in turn: the rx workers' cores are left
/// out while others remain, and the list wraps around (shares then overlap, said once) when
/// the configured shares ask for more cores than there are.
pub(crate) struct Cores {
    list: Vec<usize>,
    next: usize,
}

impl Cores {
    /// Every online core but those in `avoid` (all of them when that leaves none).
    pub(crate) fn new(avoid: &[usize]) -> Cores {
        // SAFETY: sysconf has no preconditions.
        let online = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) }.max(1) as usize;
        let all: Vec<usize> = (0..online).collect();
        let free: Vec<usize> = all.iter().copied().filter(|c| !avoid.contains(c)).collect();
        Cores {
            list: if free.is_empty() { all } else { free },
            next: 0,
        }
    }

    /// Cores shares are handed out from.
    pub(crate) fn list(&self) -> &[usize] {
        &self.list
    }

    /// `n` cores for one share.
    pub(crate) fn take(&mut self, n: usize) -> Vec<usize> {
        if self.next + n > self.list.len() {
            static SAID: std::sync::Once = std::sync::Once::new();
            SAID.call_once(|| {
                tracing::warn!(
                    "CPU shares ask for more than the {} cores {:?}: shares overlap",
                    self.list.len(),
                    self.list
                )
            });
        }
        (0..n)
            .map(|_| {
                let c = self.list[self.next % self.list.len()];
                self.next += 1;
                c
            })
            .collect()
    }
}

/// The CPU share of each instance of `f`: its `shares` (threads) on cores from `cores`, used
/// as its `parallel` says, or, without shares, one unpinned thread each.
pub(super) fn cpu_shares(f: &FunctionConfig, cores: &mut Cores) -> Result<Vec<CpuShare>, String> {
    let parallel: Parallel = f.parallel.parse()?;
    Ok(f.shares
        .iter()
        .map(|&threads| CpuShare {
            threads: threads as usize,
            cores: cores.take(threads as usize),
            parallel,
        })
        .collect())
}

/// What a CPU instance of a function is built from, for its first share and every resize.
#[derive(Clone)]
pub(crate) struct Recipe {
    /// Worker thread name prefix.
    name: String,
    sizes: Vec<usize>,
    top_k: usize,
    build: BuildEngine,
    parallel: Parallel,
}

impl Recipe {
    /// An instance on `threads` threads pinned to `cores`, its plans built, warmed up and
    /// timed (the latencies the scheduler is seeded or rescaled with).
    pub(crate) fn prepare(
        &self,
        threads: usize,
        cores: Vec<usize>,
    ) -> Result<Prepared<CpuInstance>, String> {
        let share = CpuShare {
            threads,
            cores,
            parallel: self.parallel,
        };
        let mut instance = CpuInstance::spawn(
            &self.name,
            share,
            &self.sizes,
            self.top_k,
            self.build.clone(),
        )?;
        // The workers ran each plan once; this second run is timed.
        let latency = instance.measure_all(&self.sizes)?;
        Ok(Prepared { instance, latency })
    }
}

/// A CPU instance on its share, resizable.
pub(crate) struct CpuExecutor {
    pub(crate) shadow: Shadowed<CpuInstance>,
    pub(crate) recipe: Recipe,
}

/// A running instance's engine side.
pub(crate) enum Executor {
    Cpu(Box<CpuExecutor>),
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
            Executor::Cpu(c) => c.shadow.current().per_image(),
            Executor::Gpu(g) => g.per_image(),
        }
    }

    /// Starts a batch; `waiting`: it was queued when the instance's previous batch completed
    /// (the gap since then counts as a batch-boundary gap, or as a resize's downtime).
    ///
    /// # Safety
    /// As [`CpuInstance::start`] (host memory) or [`GpuInstance::start`] (device memory).
    pub(crate) unsafe fn start(&mut self, input: Input, waiting: bool) -> Result<(), String> {
        match self {
            // SAFETY: the caller's contract.
            Executor::Cpu(c) => unsafe { c.shadow.start(input, waiting) },
            // SAFETY: the caller's contract.
            Executor::Gpu(g) => unsafe { g.start(input) },
        }
    }

    /// The running batch's result, once there.
    pub(crate) fn poll(&mut self) -> Option<Result<Answers, String>> {
        match self {
            Executor::Cpu(c) => c.shadow.poll(),
            Executor::Gpu(g) => g.poll(),
        }
    }

    /// At a batch boundary: moves to a prepared share if one is ready.
    pub(crate) fn switch(&mut self) -> Option<Reshare> {
        match self {
            Executor::Cpu(c) => c.shadow.switch(),
            Executor::Gpu(_) => None,
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
            let recipe = recipe(f, k, sizes, precision, share.parallel);
            let prepared = recipe
                .prepare(share.threads, share.cores)
                .map_err(|e| format!("function {name:?}: {e}"))?;
            shape = prepared.instance.input_shape().to_vec();
            measured = prepared.latency.clone();
            let threads = prepared.instance.share().threads as u32;
            Executor::Cpu(Box::new(CpuExecutor {
                shadow: Shadowed::new(prepared, threads),
                recipe,
            }))
        }
        Place::Gpu(ctx, shares) => {
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
            // Unrun: written without a GPU at hand. The seeds above were timed on the whole
            // device; on a partition the scheduler learns its latency from the first batches.
            // Each partition is split off the whole device (`GreenPartition::new`), so two
            // partitions (or one and the gather kernel's) may share SMs: disjoint ones need a
            // split of what the others left, which `netml_gpu` does not offer yet.
            let instance = match shares.get(k) {
                Some(&sms) => GreenPartition::new(ctx, sms)
                    .map_err(|e| format!("a green-context partition of {sms} SMs: {e:?}"))
                    .and_then(|p| {
                        tracing::info!(
                            "function {name:?} instance {k}: {} SMs (asked {sms})",
                            p.sm_count()
                        );
                        GpuInstance::on_partition(ctx, &p, engines, f.top_k)
                    }),
                None => GpuInstance::new(ctx, engines, f.top_k),
            };
            Executor::Gpu(
                instance.map_err(|e| format!("function {name:?}: {file} on the GPU: {e}"))?,
            )
        }
    };
    Ok((executor, measured, shape))
}

/// How instance `k` of `f` is built on the CPU: each worker loads its plans for `sizes`.
fn recipe(
    f: &FunctionConfig,
    k: usize,
    sizes: &[usize],
    precision: Precision,
    parallel: Parallel,
) -> Recipe {
    let path = f.model_file.clone();
    let build: BuildEngine = Arc::new(move |b, threads| {
        netml_infer::open_threads(&path, Backend::Cpu, b, precision, threads)
            .map_err(|e| format!("loading {} for batch {b}: {e}", path.display()))
    });
    Recipe {
        name: format!("netml-if-{}-{k}", f.model),
        sizes: sizes.to_vec(),
        top_k: f.top_k,
        build,
        parallel,
    }
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
