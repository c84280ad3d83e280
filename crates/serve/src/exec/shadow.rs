//! Shadow resize: an instance moves to a new compute share without stopping.
//!
//! The new share's instance is prepared on a background thread (worker threads pinned and
//! engine plans built and warmed up on the CPU; a green-context partition, plans and CUDA
//! graphs on a GPU) while the old one keeps serving. The switch happens at a batch boundary:
//! once the old instance has finished its running batch and the new one is ready, the next
//! batch goes to the new one and the old one is dropped off the serving thread. Each batch
//! runs on exactly one of them, so no image is lost or answered twice.
//!
//! The downtime of a resize is the time from the old share's last completed batch to the
//! new share's first started batch, counted when a batch was already waiting at that
//! completion (otherwise the instance would have been idle anyway). For comparison the
//! same gap between batches of one share is kept ([`ResizeStats::gaps`]): what any batch
//! boundary costs the caller's loop.

use super::{Answers, CpuInstance, GpuInstance, Input};
use crossbeam_channel::{Receiver, Sender, TryRecvError};
use std::sync::OnceLock;
use std::time::Instant;

/// An instance the shadow can switch: starts a batch and is polled for its end.
pub trait Instance: Send + 'static {
    /// Starts a batch.
    ///
    /// # Safety
    /// As the implementation's own `start` ([`CpuInstance::start`], [`GpuInstance::start`]).
    unsafe fn start(&mut self, input: Input) -> Result<(), String>;
    /// The running batch's result, once there.
    fn poll(&mut self) -> Option<Result<Answers, String>>;
}

impl Instance for CpuInstance {
    unsafe fn start(&mut self, input: Input) -> Result<(), String> {
        // SAFETY: the caller's contract.
        unsafe { CpuInstance::start(self, input) }
    }
    fn poll(&mut self) -> Option<Result<Answers, String>> {
        CpuInstance::poll(self)
    }
}

impl Instance for GpuInstance {
    unsafe fn start(&mut self, input: Input) -> Result<(), String> {
        // SAFETY: the caller's contract.
        unsafe { GpuInstance::start(self, input) }
    }
    fn poll(&mut self) -> Option<Result<Answers, String>> {
        GpuInstance::poll(self)
    }
}

/// An instance built for a share, with its measured latency `(engine batch, ns)` there.
pub struct Prepared<I> {
    /// The instance, ready to run.
    pub instance: I,
    /// Latency of each engine batch on this share (the warm-up measurement).
    pub latency: Vec<(usize, f64)>,
}

/// A switch to a new share, for the caller's scheduler: rescale the instance's estimates by
/// [`factor`](Reshare::factor) (`Function::reshare`).
#[derive(Debug, Clone, PartialEq)]
pub struct Reshare {
    /// Units before.
    pub from: u32,
    /// Units now.
    pub to: u32,
    /// `(engine batch, new latency / old latency)` where both shares were measured.
    pub factors: Vec<(usize, f64)>,
}

impl Reshare {
    /// New over old latency of `batch` (1 where unmeasured).
    pub fn factor(&self, batch: usize) -> f64 {
        self.factors
            .iter()
            .find(|f| f.0 == batch)
            .map_or(1.0, |f| f.1)
    }
}

/// One resize as it happened.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Resized {
    /// Units before.
    pub from: u32,
    /// Units after.
    pub to: u32,
    /// From the request to the new share ready (built and warmed up in the background), ns.
    pub prepare_ns: u64,
    /// Old share's last completion to the new share's first start, ns; `None` when no batch
    /// was waiting at that completion (no service was lost) or none started since.
    pub downtime_ns: Option<u64>,
}

/// Gaps between a completion and the next start on the same share, while a batch waited.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Gaps {
    /// Gaps counted.
    pub count: u64,
    /// Their sum, ns.
    pub sum_ns: u64,
    /// The longest, ns.
    pub max_ns: u64,
}

impl Gaps {
    fn add(&mut self, ns: u64) {
        self.count += 1;
        self.sum_ns += ns;
        self.max_ns = self.max_ns.max(ns);
    }

    /// Mean gap, ns (0 without any).
    pub fn mean_ns(&self) -> f64 {
        self.sum_ns as f64 / self.count.max(1) as f64
    }
}

/// What the resizes of one instance did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ResizeStats {
    /// Every completed resize, oldest first.
    pub resizes: Vec<Resized>,
    /// Resizes whose preparation failed (the old share kept serving).
    pub failed: u64,
    /// Batch-boundary gaps without a resize, for comparison with the downtimes.
    pub gaps: Gaps,
}

/// A request being prepared in the background.
struct Preparing<I> {
    units: u32,
    asked: Instant,
    result: Receiver<Result<Prepared<I>, String>>,
}

/// An instance on a share, resizable in the background.
pub struct Shadowed<I: Instance> {
    current: I,
    units: u32,
    latency: Vec<(usize, f64)>,
    running: bool,
    /// When the last batch completed, and whether the next start follows a switch.
    last_done: Option<Instant>,
    /// A switch whose downtime is not closed yet (the new share started no batch yet).
    switched: bool,
    preparing: Option<Preparing<I>>,
    /// The old share after a switch, until the new one started a batch.
    retired: Option<I>,
    stats: ResizeStats,
}

impl<I: Instance> Shadowed<I> {
    /// `prepared` running on `units` of its device.
    pub fn new(prepared: Prepared<I>, units: u32) -> Shadowed<I> {
        Shadowed {
            current: prepared.instance,
            units,
            latency: prepared.latency,
            running: false,
            last_done: None,
            switched: false,
            preparing: None,
            retired: None,
            stats: ResizeStats::default(),
        }
    }

    /// The instance serving now.
    pub fn current(&self) -> &I {
        &self.current
    }

    /// Units of the share serving now.
    pub fn units(&self) -> u32 {
        self.units
    }

    /// The share being prepared, if any.
    pub fn pending(&self) -> Option<u32> {
        self.preparing.as_ref().map(|p| p.units)
    }

    /// Resizes so far.
    pub fn stats(&self) -> &ResizeStats {
        &self.stats
    }

    /// Starts preparing a share of `units` with `prepare` on a background thread; the old
    /// share serves meanwhile. A request still being prepared is abandoned (its instance is
    /// dropped on its own thread when it is ready).
    pub fn resize(
        &mut self,
        units: u32,
        prepare: impl FnOnce() -> Result<Prepared<I>, String> + Send + 'static,
    ) -> Result<(), String> {
        let (tx, result) = crossbeam_channel::bounded(1);
        std::thread::Builder::new()
            .name("netml-resize".into())
            .spawn(move || {
                let _ = tx.send(prepare());
            })
            .map_err(|e| format!("spawning the resize thread: {e}"))?;
        self.preparing = Some(Preparing {
            units,
            asked: Instant::now(),
            result,
        });
        Ok(())
    }

    /// At a batch boundary (no batch running), switches to the prepared share if it is
    /// ready. Returns the reshare for the scheduler when it switched; a failed preparation
    /// is logged and counted, and the old share stays.
    pub fn switch(&mut self) -> Option<Reshare> {
        if self.running {
            return None;
        }
        let prepared = match self.preparing.as_ref()?.result.try_recv() {
            Ok(Ok(p)) => p,
            Err(TryRecvError::Empty) => return None,
            Ok(Err(e)) => {
                tracing::error!("resize to {} units failed: {e}", self.pending()?);
                self.stats.failed += 1;
                self.preparing = None;
                return None;
            }
            Err(TryRecvError::Disconnected) => {
                tracing::error!("resize to {} units: its thread died", self.pending()?);
                self.stats.failed += 1;
                self.preparing = None;
                return None;
            }
        };
        let asked = self.preparing.take()?;
        let old = std::mem::replace(&mut self.current, prepared.instance);
        // Torn down once the new share has started its first batch: tearing down competes
        // for the cores, and the first start is what the downtime waits for.
        self.retired = Some(old);
        let factors = prepared
            .latency
            .iter()
            .filter_map(|&(b, new)| {
                let old = self.latency.iter().find(|o| o.0 == b)?.1;
                (old > 0.0).then(|| (b, new / old))
            })
            .collect();
        let reshare = Reshare {
            from: self.units,
            to: asked.units,
            factors,
        };
        self.stats.resizes.push(Resized {
            from: self.units,
            to: asked.units,
            prepare_ns: asked.asked.elapsed().as_nanos() as u64,
            downtime_ns: None,
        });
        self.switched = true;
        self.units = asked.units;
        self.latency = prepared.latency;
        Some(reshare)
    }

    /// Starts a batch on the current share. `waiting`: the batch was already waiting when
    /// the previous batch completed (the instance would have stayed busy), which makes the
    /// gap since then count as downtime (after a switch) or as a normal gap.
    ///
    /// # Safety
    /// As [`Instance::start`].
    pub unsafe fn start(&mut self, input: Input, waiting: bool) -> Result<(), String> {
        let now = Instant::now();
        // SAFETY: the caller's contract.
        unsafe { self.current.start(input) }?;
        let gap = self
            .last_done
            .filter(|_| waiting)
            .map(|t| now.duration_since(t).as_nanos() as u64);
        self.running = true;
        if std::mem::take(&mut self.switched) {
            if let Some(r) = self.stats.resizes.last_mut() {
                r.downtime_ns = gap;
            }
        } else if let Some(g) = gap {
            self.stats.gaps.add(g);
        }
        if let Some(old) = self.retired.take() {
            retire(Box::new(old));
        }
        Ok(())
    }

    /// The running batch's result, once there.
    pub fn poll(&mut self) -> Option<Result<Answers, String>> {
        let r = self.current.poll()?;
        self.running = false;
        self.last_done = Some(Instant::now());
        Some(r)
    }
}

/// Drops `old` on the process's retiring thread: joining an old share's workers (or
/// destroying its stream and partition) is not the serving loop's business. Dropped here
/// when that thread cannot be started.
fn retire(old: Box<dyn Send>) {
    static RETIRING: OnceLock<Option<Sender<Box<dyn Send>>>> = OnceLock::new();
    let sender = RETIRING.get_or_init(|| {
        let (tx, rx) = crossbeam_channel::unbounded::<Box<dyn Send>>();
        std::thread::Builder::new()
            .name("netml-retire".into())
            .spawn(move || rx.iter().for_each(drop))
            .ok()
            .map(|_| tx)
    });
    if let Some(Err(e)) = sender.as_ref().map(|tx| tx.send(old)) {
        drop(e.into_inner());
    }
}
