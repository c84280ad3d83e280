//! The two stream-ordered GPU modes, `launch` and `cpu-copy`, behind one [`Ingest`]: the same
//! slots, descriptor pool, stream, event book and shutdown; only what a batch enqueues differs
//! ([`launch`](super::launch) or [`cpu_copy`](super::cpu_copy)).

use std::sync::atomic::{fence, Ordering};
use std::sync::Arc;
use std::time::Duration;

use cudarc::driver::{CudaContext, CudaStream};

use super::events::EventBook;
use super::plan::Planner;
use super::pool::EntryPool;
use super::slots::{dev, Slots};
use super::{cpu_copy, drain, launch, leak, GpuIngestOptions, Kernels};
use crate::cuda::MappedPinned;
use crate::host_modes::EntrySpec;
use crate::{
    ImageJob, Ingest, IngestConfig, IngestCounters, IngestError, IngestMode, Target, Ticket,
};

/// What the GPU may still use while batches are in flight (leaked, not freed, when the stream
/// does not drain at drop).
pub(crate) struct Gpu {
    pub kernels: Kernels,
    pub pool: EntryPool,
    pub slots: Slots,
    /// One pinned staging buffer per slot (`cpu-copy` only).
    pub staging: Vec<MappedPinned>,
}

/// The `launch` or `cpu-copy` mode on a GPU.
pub(crate) struct StreamIngest {
    pub(super) mode: IngestMode,
    pub(super) ctx: Arc<CudaContext>,
    pub(super) cfg: IngestConfig,
    planner: Planner,
    shutdown: Duration,
    pub(super) stream: Arc<CudaStream>,
    pub(super) book: EventBook,
    /// Last batch of each slot (`cpu-copy`: its staging is reused only after it completed).
    pub(super) slot_last: Vec<Option<Ticket>>,
    gpu: Option<Gpu>,
}

impl StreamIngest {
    /// Allocates slots, the entry pool (`ring_entries` entries, each with its event), for
    /// `cpu-copy` one pinned staging buffer per slot, and creates the stream.
    pub(crate) fn new(
        ctx: &Arc<CudaContext>,
        cfg: &IngestConfig,
        opts: &GpuIngestOptions,
        kernels: Kernels,
    ) -> Result<Self, IngestError> {
        let n = cfg.ring_entries as usize;
        let stream = ctx.new_stream().map_err(dev("creating the stream"))?;
        let staging = match cfg.mode {
            IngestMode::CpuCopy => (0..cfg.slots)
                .map(|_| MappedPinned::new(ctx, cfg.slot_bytes))
                .collect::<Result<Vec<_>, _>>()
                .map_err(dev("allocating pinned staging"))?,
            _ => Vec::new(),
        };
        let gpu = Gpu {
            kernels,
            pool: EntryPool::new(ctx, n, opts.max_frags_per_entry)?,
            slots: Slots::new(ctx, cfg.slots, cfg.slot_bytes, stream.cu_stream())?,
            staging,
        };
        Ok(Self {
            mode: cfg.mode,
            ctx: ctx.clone(),
            cfg: *cfg,
            planner: Planner::new(cfg.slot_bytes, opts.max_frags_per_entry),
            shutdown: Duration::from_millis(opts.shutdown_ms),
            stream,
            book: EventBook::new(ctx, n, Duration::from_millis(opts.stall_ms))?,
            slot_last: vec![None; cfg.slots],
            gpu: Some(gpu),
        })
    }

    pub(super) fn gpu(&self) -> &Gpu {
        self.gpu.as_ref().expect("GPU resources live until drop")
    }

    /// Writes `spec` into a free pool entry and enqueues `gather_launch` on it, then its
    /// event. Returns whether it had to wait for a free entry.
    ///
    /// # Safety
    /// The entry's sources and destination must stay valid until its event completed.
    pub(super) unsafe fn launch_entry(
        &mut self,
        spec: &EntrySpec,
        what: &'static str,
    ) -> Result<bool, IngestError> {
        let (idx, waited) = self.book.acquire()?;
        let stream = self.stream.cu_stream();
        let gpu = self.gpu.as_ref().expect("GPU resources live until drop");
        // SAFETY: `acquire` handed out entry `idx`: the work that used it last completed, so
        // no kernel reads it.
        unsafe { gpu.pool.write(idx, 0, spec) };
        // The launch orders the kernel after these host writes; the fence keeps the compiler
        // and CPU from sinking the stores past the driver call.
        fence(Ordering::SeqCst);
        let entry = gpu.pool.entry_device_ptr(idx);
        // SAFETY: entry `idx` was just written by this thread and no kernel uses it (acquired).
        let head = unsafe { &*gpu.pool.entry(idx) }.head;
        // SAFETY: the entry is fully written in the pool; the rest is the caller's contract.
        let r = unsafe {
            gpu.kernels
                .launch_entry(self.cfg.blocks, stream, entry, &head)
        };
        if let Err(e) = r {
            return Err(self.book.fail(dev(what)(e)));
        }
        self.book.enqueued(stream)?;
        Ok(waited)
    }
}

impl Ingest for StreamIngest {
    fn mode(&self) -> IngestMode {
        self.mode
    }

    fn target(&self) -> Target {
        Target::Gpu(self.ctx.ordinal())
    }

    fn slots(&self) -> usize {
        self.cfg.slots
    }

    fn slot_bytes(&self) -> usize {
        self.cfg.slot_bytes
    }

    unsafe fn submit(&mut self, slot: usize, jobs: &[ImageJob<'_>]) -> Result<Ticket, IngestError> {
        self.book.healthy()?;
        let base = self.gpu().slots.get(slot)?;
        let planned = self.planner.plan(jobs, base)?;
        self.ctx
            .bind_to_thread()
            .map_err(dev("binding the context"))?;
        // SAFETY: validated batch; submit's contract for its sources and the slot.
        let waited = unsafe {
            match self.mode {
                IngestMode::CpuCopy => cpu_copy::enqueue(self, slot, base, &planned)?,
                _ => launch::enqueue(self, &planned)?,
            }
        };
        let t = self
            .book
            .finish_batch((planned.images, planned.bytes), waited);
        self.slot_last[slot] = Some(t);
        self.planner.recycle(planned);
        Ok(t)
    }

    fn poll(&mut self, ticket: Ticket) -> Result<bool, IngestError> {
        self.book.poll(ticket)
    }

    fn read_slot(&mut self, slot: usize, out: &mut [u8]) -> Result<(), IngestError> {
        self.book.healthy()?;
        let stream = self.stream.cu_stream();
        self.gpu().slots.read(&self.ctx, stream, slot, out)
    }

    fn slot_device_ptr(&self, slot: usize) -> Option<u64> {
        self.gpu().slots.ptr(slot)
    }

    fn counters(&self) -> IngestCounters {
        self.book.counters()
    }
}

impl Drop for StreamIngest {
    fn drop(&mut self) {
        let gpu = self.gpu.take();
        let _ = self.ctx.bind_to_thread();
        match drain(self.stream.cu_stream(), self.shutdown) {
            Ok(true) => drop(gpu),
            Ok(false) => {
                tracing::error!(
                    "{} ingest: the GPU did not finish its batches within {:?}; leaking its \
                     slots, staging and entry pool",
                    self.mode,
                    self.shutdown
                );
                leak(gpu);
            }
            // A failed context: nothing will run any more, freeing is safe (and may fail).
            Err(e) => {
                tracing::warn!("{} ingest: stream failed at shutdown: {e}", self.mode);
                drop(gpu);
            }
        }
    }
}
