//! A CPU instance: a share of `threads` worker threads, each pinned to a core of its own,
//! reading its input in place from the function's (host) ingest slot.
//!
//! The share's threads are used one of two ways ([`Parallel`]): either a batch is split
//! data-parallel across them (each thread owns single-threaded engine plans for the
//! sub-batch it runs), or one engine computes on all of them with its own intra-op thread
//! pool (ONNX Runtime), driven by one worker whose core mask its pool threads inherit.

use super::{Answers, Input};
use crossbeam_channel::{Receiver, Sender, TryRecvError};
use netml_infer::Engine;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Builds an engine for batches of up to `batch` images computing on `threads` threads.
/// Called on the worker thread that will run it (after it is pinned).
pub type BuildEngine = Arc<dyn Fn(usize, usize) -> Result<Box<dyn Engine>, String> + Send + Sync>;

/// How an instance uses the threads of its share.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parallel {
    /// Each batch is split across the threads: thread `t` runs its contiguous slice of the
    /// images on its own single-threaded engine plan for that slice's size.
    Split,
    /// One engine computes each batch on all the threads (its own intra-op pool), driven by
    /// one worker pinned to all the share's cores.
    Engine,
}

impl std::str::FromStr for Parallel {
    type Err = String;
    fn from_str(s: &str) -> Result<Parallel, String> {
        match s {
            "split" => Ok(Parallel::Split),
            "engine" => Ok(Parallel::Engine),
            _ => Err(format!("parallel {s:?}: expected split or engine")),
        }
    }
}

/// The cores a CPU instance computes on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpuShare {
    /// Threads (at least 1).
    pub threads: usize,
    /// Cores the threads are pinned to, one per thread (`threads` of them; fewer are shared
    /// in turn); empty: unpinned.
    pub cores: Vec<usize>,
    /// How the threads are used.
    pub parallel: Parallel,
}

impl CpuShare {
    /// One unpinned thread: the instance as it was before shares.
    pub fn single() -> CpuShare {
        CpuShare {
            threads: 1,
            cores: Vec::new(),
            parallel: Parallel::Split,
        }
    }

    /// The engine plan size that serves engine batch `batch`: the slice one thread runs
    /// when split, the whole batch otherwise.
    fn plan_size(&self, batch: usize) -> usize {
        match self.parallel {
            Parallel::Split => batch.div_ceil(self.threads.max(1)),
            Parallel::Engine => batch,
        }
    }

    /// Worker threads: one per thread when split, one driving the engine otherwise.
    fn workers(&self) -> usize {
        match self.parallel {
            Parallel::Split => self.threads.max(1),
            Parallel::Engine => 1,
        }
    }

    /// Threads each engine computes on.
    fn engine_threads(&self) -> usize {
        match self.parallel {
            Parallel::Split => 1,
            Parallel::Engine => self.threads.max(1),
        }
    }

    /// Cores worker `w` is pinned to (empty: unpinned).
    fn cores_of(&self, w: usize) -> Vec<usize> {
        match self.parallel {
            // Fewer cores than threads: they are shared in turn.
            Parallel::Split if self.cores.is_empty() => Vec::new(),
            Parallel::Split => vec![self.cores[w % self.cores.len()]],
            Parallel::Engine => self.cores.clone(),
        }
    }
}

/// A slice of a batch for one worker.
struct Part {
    /// First value of the slice.
    ptr: u64,
    images: usize,
    /// The plan to run it on (padded up to it).
    plan: usize,
}

/// What each worker reports once its plans are built and warmed up: `(per-image input
/// shape, whether it is pinned)`.
type Ready = Result<(Vec<usize>, bool), String>;

struct Worker {
    jobs: Option<Sender<Part>>,
    handle: Option<JoinHandle<()>>,
}

/// The batch being computed: the workers' answers as they come.
struct Running {
    parts: Vec<Option<Answers>>,
    left: usize,
    error: Option<String>,
}

/// A CPU instance: worker threads owning engine plans, one batch at a time.
pub struct CpuInstance {
    workers: Vec<Worker>,
    done: Receiver<(usize, Result<Answers, String>)>,
    share: CpuShare,
    input_shape: Vec<usize>,
    per_image: usize,
    pinned: bool,
    running: Option<Running>,
}

impl CpuInstance {
    /// Starts the workers `name-<t>` of `share`; each pins itself, builds with `build` the
    /// plans serving the engine batches `batches` and runs each once (warm-up). Returns when
    /// every worker is ready; answers carry the `top_k` best classes.
    pub fn spawn(
        name: &str,
        share: CpuShare,
        batches: &[usize],
        top_k: usize,
        build: BuildEngine,
    ) -> Result<CpuInstance, String> {
        let share = CpuShare {
            threads: share.threads.max(1),
            ..share
        };
        let mut plans: Vec<usize> = batches.iter().map(|&b| share.plan_size(b)).collect();
        plans.sort_unstable();
        plans.dedup();
        if plans.is_empty() {
            return Err(format!("{name}: no batch size"));
        }
        let (done_tx, done) = crossbeam_channel::unbounded();
        let (ready_tx, ready) = crossbeam_channel::unbounded::<Ready>();
        let mut instance = CpuInstance {
            workers: Vec::new(),
            done,
            input_shape: Vec::new(),
            per_image: 0,
            pinned: true,
            running: None,
            share: share.clone(),
        };
        for w in 0..share.workers() {
            let (jobs, job_rx) = crossbeam_channel::bounded::<Part>(1);
            let setup = Setup {
                index: w,
                cores: share.cores_of(w),
                plans: plans.clone(),
                threads: share.engine_threads(),
                build: build.clone(),
                top_k,
            };
            let (done_tx, ready_tx) = (done_tx.clone(), ready_tx.clone());
            let handle = std::thread::Builder::new()
                .name(format!("{name}-{w}"))
                .spawn(move || setup.work(job_rx, done_tx, ready_tx))
                .map_err(|e| format!("spawning {name}-{w}: {e}"))?;
            instance.workers.push(Worker {
                jobs: Some(jobs),
                handle: Some(handle),
            });
        }
        drop(ready_tx);
        for _ in 0..share.workers() {
            let (shape, pinned) = ready
                .recv()
                .map_err(|_| format!("{name}: a worker exited while building"))?
                .map_err(|e| format!("{name}: {e}"))?;
            instance.per_image = shape.iter().product();
            instance.input_shape = shape;
            instance.pinned &= pinned;
        }
        if !share.cores.is_empty() && !instance.pinned {
            warn_unpinned(name, &share.cores);
        }
        Ok(instance)
    }

    /// f32 values per image the engines take.
    pub fn per_image(&self) -> usize {
        self.per_image
    }

    /// Per-image input shape the engines take, e.g. `[3, 224, 224]`.
    pub fn input_shape(&self) -> &[usize] {
        &self.input_shape
    }

    /// The share it runs on.
    pub fn share(&self) -> &CpuShare {
        &self.share
    }

    /// Whether every worker runs pinned to its cores (false when the share names no cores
    /// or pinning failed).
    pub fn pinned(&self) -> bool {
        self.pinned && !self.share.cores.is_empty()
    }

    /// Starts a batch: one slice per worker that has images.
    ///
    /// # Safety
    /// `input.ptr` must point to `input.images * per_image()` readable f32 values that stay
    /// valid and unchanged until [`poll`](Self::poll) has returned this batch's result.
    pub unsafe fn start(&mut self, input: Input) -> Result<(), String> {
        if self.running.is_some() {
            return Err("instance busy".into());
        }
        let slice = self.share.plan_size(input.engine_batch).max(1);
        let parts = input.images.div_ceil(slice);
        if parts > self.workers.len() || input.images == 0 {
            return Err(format!(
                "{} images as engine batch {} do not fit {} workers",
                input.images,
                input.engine_batch,
                self.workers.len()
            ));
        }
        for (w, worker) in self.workers.iter().take(parts).enumerate() {
            let first = w * slice;
            let part = Part {
                ptr: input.ptr + (first * self.per_image * 4) as u64,
                images: slice.min(input.images - first),
                plan: slice,
            };
            let jobs = worker.jobs.as_ref().ok_or("instance stopped")?;
            // A worker that cannot take its part is gone or still busy: the earlier parts
            // may run; their answers are collected and the batch fails as a whole.
            if jobs.try_send(part).is_err() {
                self.running = Some(Running {
                    parts: vec![None; w],
                    left: w,
                    error: Some(format!("worker {w} busy or gone")),
                });
                return Err(format!("worker {w} busy or gone"));
            }
        }
        self.running = Some(Running {
            parts: vec![None; parts],
            left: parts,
            error: None,
        });
        Ok(())
    }

    /// The running batch's result, once every worker answered its slice.
    pub fn poll(&mut self) -> Option<Result<Answers, String>> {
        let running = self.running.as_mut()?;
        while running.left > 0 {
            match self.done.try_recv() {
                Ok((w, r)) => {
                    running.left -= 1;
                    match r {
                        Ok(a) => running.parts[w] = Some(a),
                        Err(e) => running.error = Some(e),
                    }
                }
                Err(TryRecvError::Empty) => return None,
                Err(TryRecvError::Disconnected) => {
                    running.left = 0;
                    running.error = Some("the instance's workers exited".into());
                }
            }
        }
        let running = self.running.take()?;
        if let Some(e) = running.error {
            return Some(Err(e));
        }
        Some(Ok(running.parts.into_iter().flatten().flatten().collect()))
    }

    /// [`measure`](Self::measure) of each engine batch in `batches`, full: `(batch, ns)`,
    /// the latencies a scheduler is seeded with for this share.
    pub fn measure_all(&mut self, batches: &[usize]) -> Result<Vec<(usize, f64)>, String> {
        batches
            .iter()
            .map(|&b| self.measure(b, b).map(|ns| (b, ns)))
            .collect()
    }

    /// Runs `images` zero images as engine batch `batch` through the instance (blocking)
    /// and returns the time it took, ns: a plan's latency on this share.
    pub fn measure(&mut self, batch: usize, images: usize) -> Result<f64, String> {
        let zeros = vec![0f32; images * self.per_image];
        let t = Instant::now();
        // SAFETY: `zeros` holds `images * per_image` values and outlives the batch: this
        // function returns only after `poll` returned its result.
        unsafe {
            self.start(Input {
                ptr: zeros.as_ptr() as u64,
                images,
                engine_batch: batch,
            })?;
        }
        loop {
            if let Some(r) = self.poll() {
                r?;
                return Ok(t.elapsed().as_nanos() as f64);
            }
            std::thread::sleep(Duration::from_micros(20));
        }
    }
}

impl Drop for CpuInstance {
    fn drop(&mut self) {
        for w in &mut self.workers {
            w.jobs = None; // the worker's loop ends with its channel
        }
        for w in &mut self.workers {
            if let Some(h) = w.handle.take() {
                let _ = h.join();
            }
        }
    }
}

/// What one worker is given to set itself up.
struct Setup {
    index: usize,
    cores: Vec<usize>,
    /// Engine plan sizes to build.
    plans: Vec<usize>,
    threads: usize,
    build: BuildEngine,
    top_k: usize,
}

impl Setup {
    fn work(
        self,
        jobs: Receiver<Part>,
        done: Sender<(usize, Result<Answers, String>)>,
        ready: Sender<Ready>,
    ) {
        let pinned = if self.cores.is_empty() {
            // Unpinned means every core, not the spawning thread's mask.
            let _ = set_affinity(&all_cores());
            true
        } else {
            match set_affinity(&self.cores) {
                Ok(()) => true,
                Err(_) => {
                    let _ = set_affinity(&all_cores());
                    false
                }
            }
        };
        let mut engines = BTreeMap::new();
        let mut shape = Vec::new();
        for &p in &self.plans {
            let built = (self.build)(p, self.threads).and_then(|mut e| {
                shape = e.input_shape().to_vec();
                let zeros = vec![0f32; p * shape.iter().product::<usize>()];
                e.run(&zeros, p).map_err(|e| e.to_string())?;
                Ok(e)
            });
            match built {
                Ok(e) => {
                    engines.insert(p, e);
                }
                Err(e) => {
                    let _ = ready.send(Err(format!("plan for batch {p}: {e}")));
                    return;
                }
            }
        }
        if ready.send(Ok((shape, pinned))).is_err() {
            return;
        }
        drop(ready);
        while let Ok(part) = jobs.recv() {
            let result = run(&mut engines, &part, self.top_k);
            if done.send((self.index, result)).is_err() {
                return;
            }
        }
    }
}

fn run(
    engines: &mut BTreeMap<usize, Box<dyn Engine>>,
    part: &Part,
    k: usize,
) -> Result<Answers, String> {
    let engine = engines
        .get_mut(&part.plan)
        .ok_or_else(|| format!("no engine plan for batch {}", part.plan))?;
    let per: usize = engine.input_shape().iter().product();
    // SAFETY: `CpuInstance::start`'s contract: the batch's values stay valid until its
    // result has been received, and this slice lies inside the batch.
    let values = unsafe { std::slice::from_raw_parts(part.ptr as *const f32, part.images * per) };
    let out = engine.run(values, part.images).map_err(|e| e.to_string())?;
    let classes: usize = engine.output_shape().iter().product();
    Ok(super::top_k_rows(&out.data, part.images, classes, k))
}

/// Every online core (below `CPU_SETSIZE`).
pub fn all_cores() -> Vec<usize> {
    // SAFETY: sysconf has no preconditions.
    let online = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) }.max(1) as usize;
    (0..online.min(libc::CPU_SETSIZE as usize)).collect()
}

/// Restricts the calling thread (and the threads it spawns later) to `cores`.
pub fn set_affinity(cores: &[usize]) -> std::io::Result<()> {
    if cores.iter().any(|&c| c >= libc::CPU_SETSIZE as usize) {
        return Err(std::io::Error::from(std::io::ErrorKind::InvalidInput));
    }
    // SAFETY: a zeroed cpu_set_t is a valid empty set; every index is below CPU_SETSIZE
    // (checked above), so CPU_SET stays within it.
    let rc = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        for &c in cores {
            libc::CPU_SET(c, &mut set);
        }
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set)
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Says once per process that a share could not be pinned.
fn warn_unpinned(name: &str, cores: &[usize]) {
    static SAID: std::sync::Once = std::sync::Once::new();
    SAID.call_once(|| {
        tracing::warn!(
            "{name}: cannot pin to cores {cores:?} (fewer cores online?): running unpinned; said once for every instance"
        )
    });
}
