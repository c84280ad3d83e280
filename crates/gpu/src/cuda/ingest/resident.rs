//! `netml` mode: `gather_resident` is launched once and polls a doorbell ring in mapped pinned
//! memory; the producer side here is `HostIngest`'s (publish/reap, docs/gpu-ingest.md "The ring
//! protocol") over memory the GPU reads through the mapping.
//!
//! Start-up order matters: every stream this ingest needs is created before the kernel starts
//! (cudarc's first `new_stream` synchronises the context when event tracking is on, which
//! would wait forever on a resident kernel), the grid control block and the slots are zeroed
//! on the kernel's own stream before the launch, and the kernel gets raw addresses only, never
//! cudarc objects that record events. Shutdown sets `quit = DRAIN` and waits a bounded time
//! for the kernel's stream, then `quit = ABORT` (which also ends a grid handoff that a block
//! never reaches); a kernel that stops on neither is reported and its memory leaked
//! ([`leaked_kernels`](super::leaked_kernels)), never waited for without limit.

use std::ffi::c_void;
use std::mem::size_of;
use std::sync::atomic::{fence, Ordering};
use std::sync::Arc;
use std::time::Duration;

use cudarc::driver::{result, sys, CudaContext, CudaStream};

use super::plan::Planner;
use super::pool::EntryPool;
use super::producer::Producer;
use super::slots::{dev, DeviceBuf, Slots};
use super::{drain, leak, stream_idle, GpuIngestOptions, Kernels, THREADS_PER_BLOCK};
use crate::cuda::{GreenPartition, GreenStream, MappedPinned};
use crate::ring::{RawGridCtl, RawRing, QUIT_ABORT, QUIT_DRAIN};
use crate::{
    GatherSms, ImageJob, Ingest, IngestConfig, IngestCounters, IngestError, IngestMode, Target,
    Ticket,
};

/// The stream the resident kernel occupies.
enum KernelStream {
    /// A stream of a green-context partition (the kernel's SMs are its own).
    Green {
        stream: GreenStream,
        /// Keeps the partition for as long as the kernel runs in it.
        _part: GreenPartition,
    },
    /// Fallback when green contexts are unavailable: an ordinary non-blocking stream.
    Plain(Arc<CudaStream>),
}

impl KernelStream {
    fn cu_stream(&self) -> sys::CUstream {
        match self {
            KernelStream::Green { stream, .. } => stream.cu_stream(),
            KernelStream::Plain(s) => s.cu_stream(),
        }
    }
}

/// Everything the running kernel may touch (leaked, not freed, if it does not stop).
struct Gpu {
    kernels: Kernels,
    ring: MappedPinned,
    pool: EntryPool,
    ctl: DeviceBuf,
    slots: Slots,
    stream: KernelStream,
}

impl Gpu {
    fn ring(&self) -> &RawRing {
        // SAFETY: `ring` holds one zero-initialised RawRing (64-byte aligned); the kernel only
        // reads it, and the one word the host writes later (`quit`) is atomic.
        unsafe { &*(self.ring.host_ptr() as *const RawRing) }
    }
}

/// The `netml` mode on a GPU.
pub(crate) struct ResidentIngest {
    /// Where the kernel runs (reported by `gather_sms`).
    placement: GatherSms,
    ctx: Arc<CudaContext>,
    cfg: IngestConfig,
    planner: Planner,
    shutdown: Duration,
    /// For `read_slot` (created before the kernel, like every stream).
    io: Arc<CudaStream>,
    gpu: Option<Gpu>,
    producer: Producer,
}

impl ResidentIngest {
    /// Allocates the ring, the descriptor pool, the grid control block and the slots, creates
    /// the streams, checks co-residency and launches `gather_resident` once.
    pub(crate) fn start(
        ctx: &Arc<CudaContext>,
        cfg: &IngestConfig,
        opts: &GpuIngestOptions,
        kernels: Kernels,
    ) -> Result<Self, IngestError> {
        let n = cfg.ring_entries as usize;
        let pool = EntryPool::new(ctx, n, opts.max_frags_per_entry)?;
        let ring =
            MappedPinned::new(ctx, size_of::<RawRing>()).map_err(dev("allocating the ring"))?;
        // SAFETY: fresh zeroed allocation of one RawRing; no kernel runs yet.
        unsafe {
            let r = ring.host_ptr() as *mut RawRing;
            (*r).nentries = cfg.ring_entries;
            (*r).entries = pool.entries_device_ptr();
        }
        let (stream, sms) = kernel_stream(ctx, opts.green_sms)?;
        // Zeroed on the kernel's stream and complete before the launch (DeviceBuf::zeroed).
        let ctl = DeviceBuf::zeroed(ctx, size_of::<RawGridCtl>(), stream.cu_stream())
            .map_err(dev("allocating ctl"))?;
        let slots = Slots::new(ctx, cfg.slots, cfg.slot_bytes, stream.cu_stream())?;
        let io = ctx.new_stream().map_err(dev("creating the copy stream"))?;
        let per_sm = kernels
            .resident
            .occupancy_max_active_blocks_per_multiprocessor(THREADS_PER_BLOCK, 0, None)
            .map_err(dev("occupancy of gather_resident"))?;
        let placement = GatherSms {
            sms,
            green: matches!(stream, KernelStream::Green { .. }),
        };
        if u64::from(cfg.blocks) > u64::from(per_sm) * u64::from(sms) {
            return Err(IngestError::Device(format!(
                "gather_resident: {} blocks of {THREADS_PER_BLOCK} threads cannot all be \
                 resident on {sms} SMs ({per_sm} per SM); the kernel would wait forever",
                cfg.blocks
            )));
        }
        let gpu = Gpu {
            kernels,
            ring,
            pool,
            ctl,
            slots,
            stream,
        };
        fence(Ordering::SeqCst);
        let mut ring_arg = gpu.ring.device_ptr();
        let mut ctl_arg = gpu.ctl.ptr();
        let mut params = [
            &mut ring_arg as *mut u64 as *mut c_void,
            &mut ctl_arg as *mut u64 as *mut c_void,
        ];
        // SAFETY: `gather_resident(const netml_ring*, netml_grid_ctl*)` gets two addresses:
        // the mapped ring (entries and descriptors in the mapped pool) and zeroed device
        // memory, all kept until the kernel stopped (Drop). The driver copies the parameters.
        unsafe {
            result::launch_kernel(
                gpu.kernels.resident.cu_function(),
                (cfg.blocks, 1, 1),
                (THREADS_PER_BLOCK, 1, 1),
                0,
                gpu.stream.cu_stream(),
                &mut params,
            )
        }
        .map_err(dev("launching gather_resident"))?;
        tracing::info!(
            "netml ingest: gather_resident running, {} blocks x {THREADS_PER_BLOCK} on the \
             {placement}, {n} ring entries",
            cfg.blocks
        );
        Ok(Self {
            placement,
            ctx: ctx.clone(),
            cfg: *cfg,
            planner: Planner::new(cfg.slot_bytes, opts.max_frags_per_entry),
            shutdown: Duration::from_millis(opts.shutdown_ms),
            io,
            gpu: Some(gpu),
            producer: Producer::new(Duration::from_millis(opts.stall_ms)),
        })
    }

    fn gpu(&self) -> &Gpu {
        self.gpu.as_ref().expect("GPU resources live until drop")
    }
}

/// The producer's liveness probe: the kernel must still be running (until Drop sets quit).
fn probe_kernel(ctx: &CudaContext, stream: sys::CUstream) -> Result<(), IngestError> {
    ctx.bind_to_thread().map_err(dev("binding the context"))?;
    match stream_idle(stream) {
        Ok(false) => Ok(()),
        Ok(true) => Err(IngestError::Device(
            "gather_resident exited while work was pending".into(),
        )),
        Err(e) => Err(dev("gather_resident")(e)),
    }
}

/// The kernel's stream and the SMs its blocks can use: a green partition of `green_sms`, or,
/// when that is 0 or fails, an ordinary stream over the whole device.
fn kernel_stream(
    ctx: &Arc<CudaContext>,
    green_sms: u32,
) -> Result<(KernelStream, u32), IngestError> {
    if green_sms > 0 {
        let green = GreenPartition::new(ctx, green_sms).and_then(|part| {
            let stream = part.new_stream()?;
            Ok((part, stream))
        });
        match green {
            Ok((part, stream)) => {
                let sms = part.sm_count();
                return Ok((
                    KernelStream::Green {
                        stream,
                        _part: part,
                    },
                    sms,
                ));
            }
            Err(e) => tracing::warn!(
                "netml ingest: no green context of {green_sms} SMs ({e}); the gather kernel \
                 shares the whole GPU"
            ),
        }
    }
    let stream = ctx
        .new_stream()
        .map_err(dev("creating the gather stream"))?;
    let sms = ctx
        .attribute(sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT)
        .map_err(dev("reading the SM count"))?;
    Ok((KernelStream::Plain(stream), sms.max(0) as u32))
}

impl Ingest for ResidentIngest {
    fn mode(&self) -> IngestMode {
        IngestMode::Netml
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
        self.producer.healthy()?;
        let gpu = self.gpu.as_ref().expect("GPU resources live until drop");
        let base = gpu.slots.get(slot)?;
        let planned = self.planner.plan(jobs, base)?;
        let (ctx, stream) = (&self.ctx, gpu.stream.cu_stream());
        let t = self
            .producer
            .submit(&gpu.pool, &planned, &mut || probe_kernel(ctx, stream))?;
        self.planner.recycle(planned);
        Ok(t)
    }

    fn poll(&mut self, ticket: Ticket) -> Result<bool, IngestError> {
        let gpu = self.gpu.as_ref().expect("GPU resources live until drop");
        let (ctx, stream) = (&self.ctx, gpu.stream.cu_stream());
        self.producer
            .poll(&gpu.pool, ticket, &mut || probe_kernel(ctx, stream))
    }

    fn read_slot(&mut self, slot: usize, out: &mut [u8]) -> Result<(), IngestError> {
        self.producer.healthy()?;
        self.gpu()
            .slots
            .read(&self.ctx, self.io.cu_stream(), slot, out)
    }

    fn slot_device_ptr(&self, slot: usize) -> Option<u64> {
        self.gpu().slots.ptr(slot)
    }

    fn counters(&self) -> IngestCounters {
        self.producer.counters()
    }

    fn gather_sms(&self) -> Option<GatherSms> {
        Some(self.placement)
    }
}

impl Drop for ResidentIngest {
    fn drop(&mut self) {
        let Some(gpu) = self.gpu.take() else { return };
        let _ = self.ctx.bind_to_thread();
        let stream = gpu.stream.cu_stream();
        // Entries already READY are drained first: the kernel looks at quit only when its head
        // entry is not READY.
        let stopped = quit(&gpu, QUIT_DRAIN, stream, self.shutdown).and_then(|stopped| {
            if stopped {
                return Ok(true);
            }
            let stopped = quit(&gpu, QUIT_ABORT, stream, ABORT_WAIT)?;
            if stopped {
                tracing::error!(
                    "netml ingest: gather_resident did not drain within {:?} of quit; it \
                     stopped on abort (a block never reached the grid handoff: not \
                     co-resident, or stuck); the entry in progress was abandoned",
                    self.shutdown
                );
            }
            Ok(stopped)
        });
        match stopped {
            Ok(true) => {
                report_stats(&gpu);
                drop(gpu);
            }
            Ok(false) => {
                tracing::error!(
                    "netml ingest: gather_resident did not stop within {:?} of quit nor {:?} \
                     of abort; leaking its ring, slots and module rather than hanging (the \
                     context must not be waited on any more: see leaked_kernels)",
                    self.shutdown,
                    ABORT_WAIT
                );
                leak(gpu);
            }
            Err(e) => {
                tracing::warn!("netml ingest: gather_resident failed: {e}");
                drop(gpu);
            }
        }
    }
}

/// How long the kernel may take to stop once `quit = ABORT` (blocks that run see it within
/// microseconds).
const ABORT_WAIT: Duration = Duration::from_millis(500);

/// Stores `how` into `ring.quit` and waits up to `limit` for the kernel's stream to go idle.
fn quit(
    gpu: &Gpu,
    how: u32,
    stream: sys::CUstream,
    limit: Duration,
) -> Result<bool, cudarc::driver::DriverError> {
    gpu.ring().quit.store(how, Ordering::Release);
    fence(Ordering::SeqCst);
    drain(stream, limit)
}

/// Logs the kernel's counters after it stopped; a sequence error is a protocol bug.
fn report_stats(gpu: &Gpu) {
    let mut raw = [0u8; size_of::<RawGridCtl>()];
    // SAFETY: `ctl` holds one RawGridCtl; the kernel has exited.
    if unsafe { result::memcpy_dtoh_sync(&mut raw[..], gpu.ctl.ptr()) }.is_err() {
        return;
    }
    // SAFETY: `raw` has the size of RawGridCtl, all of whose bit patterns are valid.
    let ctl: RawGridCtl = unsafe { std::ptr::read_unaligned(raw.as_ptr() as *const RawGridCtl) };
    let seq_errors = ctl.seq_errors.load(Ordering::Relaxed);
    if seq_errors != 0 {
        tracing::error!("netml ingest: {seq_errors} ring sequence errors (protocol bug)");
    }
    tracing::debug!(
        "netml ingest: gather_resident completed {} entries",
        ctl.entries_done
    );
}
