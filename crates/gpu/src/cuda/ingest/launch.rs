//! `launch` mode: per batch, its entries are written into mapped pinned memory and each gets a
//! `gather_launch` (grid = `blocks` x 256) on a stream created at start; an event recorded
//! after the batch is polled for completion (never a host callback).

use std::sync::atomic::{fence, Ordering};
use std::sync::Arc;
use std::time::Duration;

use cudarc::driver::{CudaContext, CudaStream};

use super::events::EventBook;
use super::plan::plan;
use super::pool::EntryPool;
use super::slots::{dev, Slots};
use super::{drain, GpuIngestOptions, Kernels};
use crate::ring::RawFrag;
use crate::{
    ImageJob, Ingest, IngestConfig, IngestCounters, IngestError, IngestMode, Target, Ticket,
};

/// What the GPU may still use while batches are in flight (leaked, not freed, when the stream
/// does not drain at drop).
struct Gpu {
    kernels: Kernels,
    pool: EntryPool,
    slots: Slots,
}

/// The `launch` mode on a GPU.
pub(crate) struct LaunchIngest {
    ctx: Arc<CudaContext>,
    cfg: IngestConfig,
    max_frags: usize,
    /// Descriptor allocation kept from the last batch.
    spare: Vec<RawFrag>,
    shutdown: Duration,
    stream: Arc<CudaStream>,
    book: EventBook,
    gpu: Option<Gpu>,
}

impl LaunchIngest {
    /// Allocates slots, the entry pool (`ring_entries` entries, each with its event) and
    /// creates the stream.
    pub(crate) fn new(
        ctx: &Arc<CudaContext>,
        cfg: &IngestConfig,
        opts: &GpuIngestOptions,
        kernels: Kernels,
    ) -> Result<Self, IngestError> {
        let n = cfg.ring_entries as usize;
        let stream = ctx
            .new_stream()
            .map_err(dev("creating the launch stream"))?;
        let gpu = Gpu {
            kernels,
            pool: EntryPool::new(ctx, n, opts.max_frags_per_entry)?,
            slots: Slots::new(ctx, cfg.slots, cfg.slot_bytes)?,
        };
        Ok(Self {
            ctx: ctx.clone(),
            cfg: *cfg,
            max_frags: opts.max_frags_per_entry,
            spare: Vec::new(),
            shutdown: Duration::from_millis(opts.shutdown_ms),
            stream,
            book: EventBook::new(ctx, n, Duration::from_millis(opts.stall_ms))?,
            gpu: Some(gpu),
        })
    }

    fn gpu(&self) -> &Gpu {
        self.gpu.as_ref().expect("GPU resources live until drop")
    }
}

impl Ingest for LaunchIngest {
    fn mode(&self) -> IngestMode {
        IngestMode::Launch
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
        let spare = std::mem::take(&mut self.spare);
        let planned = plan(jobs, base, self.cfg.slot_bytes, self.max_frags, spare)?;
        self.ctx
            .bind_to_thread()
            .map_err(dev("binding the context"))?;
        let stream = self.stream.cu_stream();
        let mut waited = false;
        for spec in &planned.entries {
            let (idx, w) = self.book.acquire()?;
            waited |= w;
            let gpu = self.gpu.as_ref().expect("GPU resources live until drop");
            // SAFETY: `acquire` handed out entry `idx`: the work that used it last completed,
            // so no kernel reads it.
            unsafe { gpu.pool.write(idx, 0, spec) };
            // The launch orders the kernel after these host writes; the fence keeps the
            // compiler and CPU from sinking the stores past the driver call.
            fence(Ordering::SeqCst);
            let entry = gpu.pool.entry_device_ptr(idx);
            // SAFETY: the entry is fully written; its descriptors are in the pool, the sources
            // are kept by the caller (submit's contract) and the slot by us until the entry's
            // event completed.
            let r = unsafe { gpu.kernels.launch_entry(self.cfg.blocks, stream, entry) };
            if let Err(e) = r {
                return Err(self.book.fail(dev("launching gather_launch")(e)));
            }
            self.book.enqueued(stream)?;
        }
        let t = self
            .book
            .finish_batch((planned.images, planned.bytes), waited);
        self.spare = planned.recycle();
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

impl Drop for LaunchIngest {
    fn drop(&mut self) {
        let gpu = self.gpu.take();
        let _ = self.ctx.bind_to_thread();
        match drain(self.stream.cu_stream(), self.shutdown) {
            Ok(true) => drop(gpu),
            Ok(false) => {
                tracing::error!(
                    "launch ingest: the GPU did not finish its batches within {:?}; leaking its \
                     slots and entry pool",
                    self.shutdown
                );
                std::mem::forget(gpu);
            }
            // A failed context: nothing will run any more, freeing is safe (and may fail).
            Err(e) => {
                tracing::warn!("launch ingest: stream failed at shutdown: {e}");
                drop(gpu);
            }
        }
    }
}
