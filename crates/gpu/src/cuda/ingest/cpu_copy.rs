//! `cpu-copy` mode, the baseline: the submitting thread copies every payload into pinned
//! staging laid out like the slot (one staging buffer per slot), then the bytes go to the slot
//! with `cuMemcpyHtoDAsync` (one call per contiguous run of written bytes: one per batch when
//! images are packed back to back), and an event after the batch is polled.
//!
//! Conversion: the CPU stages the u8 HWC image (at the start of its f32 output range in the
//! staging buffer, laid out like the image), and `gather_launch` converts it into the slot,
//! reading the staging over PCIe through the image's own descriptors with their sources moved
//! to the staging. The conversion code is then the one of the other modes (gather.cuh), not a
//! second implementation, and the CPU still does all the packet copying, which is what this
//! baseline measures.

use std::sync::atomic::{fence, Ordering};
use std::sync::Arc;
use std::time::Duration;

use cudarc::driver::{sys, CudaContext, CudaStream};

use super::events::EventBook;
use super::plan::{plan, Planned};
use super::pool::EntryPool;
use super::slots::{dev, Slots};
use super::{backoff, drain, GpuIngestOptions, Kernels};
use crate::cuda::MappedPinned;
use crate::host_modes::EntrySpec;
use crate::ring::RawFrag;
use crate::{
    ImageJob, Ingest, IngestConfig, IngestCounters, IngestError, IngestMode, Target, Ticket,
};

/// What the GPU may still use while batches are in flight (leaked at drop if it never drains).
struct Gpu {
    kernels: Kernels,
    pool: EntryPool,
    slots: Slots,
    staging: Vec<MappedPinned>,
}

/// The `cpu-copy` mode on a GPU.
pub(crate) struct CpuCopyIngest {
    ctx: Arc<CudaContext>,
    cfg: IngestConfig,
    max_frags: usize,
    /// Descriptor allocation kept from the last batch.
    spare: Vec<RawFrag>,
    shutdown: Duration,
    stream: Arc<CudaStream>,
    book: EventBook,
    /// Last batch of each slot: its staging buffer is reused only after it completed.
    slot_last: Vec<Option<Ticket>>,
    gpu: Option<Gpu>,
}

impl CpuCopyIngest {
    /// Allocates slots, one pinned staging buffer per slot, the entry pool for conversions and
    /// the events, and creates the stream.
    pub(crate) fn new(
        ctx: &Arc<CudaContext>,
        cfg: &IngestConfig,
        opts: &GpuIngestOptions,
        kernels: Kernels,
    ) -> Result<Self, IngestError> {
        let n = cfg.ring_entries as usize;
        let stream = ctx.new_stream().map_err(dev("creating the copy stream"))?;
        let staging = (0..cfg.slots)
            .map(|_| MappedPinned::new(ctx, cfg.slot_bytes))
            .collect::<Result<Vec<_>, _>>()
            .map_err(dev("allocating pinned staging"))?;
        let gpu = Gpu {
            kernels,
            pool: EntryPool::new(ctx, n, opts.max_frags_per_entry)?,
            slots: Slots::new(ctx, cfg.slots, cfg.slot_bytes)?,
            staging,
        };
        Ok(Self {
            ctx: ctx.clone(),
            cfg: *cfg,
            max_frags: opts.max_frags_per_entry,
            spare: Vec::new(),
            shutdown: Duration::from_millis(opts.shutdown_ms),
            stream,
            book: EventBook::new(ctx, n, Duration::from_millis(opts.stall_ms))?,
            slot_last: vec![None; cfg.slots],
            gpu: Some(gpu),
        })
    }

    fn gpu(&self) -> &Gpu {
        self.gpu.as_ref().expect("GPU resources live until drop")
    }

    /// Waits until the last batch of `slot` completed (its staging is free). True if it waited.
    fn staging_free(&mut self, slot: usize) -> Result<bool, IngestError> {
        let Some(t) = self.slot_last[slot] else {
            return Ok(false);
        };
        let mut spins = 0u32;
        let mut waited = false;
        while !self.book.poll(t)? {
            waited = true;
            backoff(&mut spins);
        }
        Ok(waited)
    }
}

/// The CPU's part of a batch: copies every payload of `planned` (for the slot at device address
/// `base`) into the slot's staging at `staging` (device address `staging_dev`), at its slot
/// offset; converted images as u8 HWC at the start of their f32 range. Returns the byte runs
/// to copy to the slot (merged where contiguous) and the conversion entries reading the staging.
///
/// # Safety
/// `staging` must be writable for a slot's size and not in use; every source readable.
pub(crate) unsafe fn stage(
    planned: &Planned,
    base: u64,
    staging: *mut u8,
    staging_dev: u64,
) -> (Vec<(usize, usize)>, Vec<EntrySpec>) {
    let mut runs = Vec::new();
    let mut converts = Vec::new();
    for spec in &planned.entries {
        let at = (spec.dst - base) as usize;
        for d in &spec.descs {
            let off = at + d.dst_off as usize;
            // SAFETY: the plan kept every fragment inside the slot (for conversions, inside
            // the u8 image, a quarter of its f32 range); the rest is the caller's contract.
            unsafe {
                std::ptr::copy_nonoverlapping(
                    d.src as usize as *const u8,
                    staging.add(off),
                    d.len as usize,
                )
            };
            if spec.convert.is_none() && d.len > 0 {
                runs.push((off, off + d.len as usize));
            }
        }
        if spec.convert.is_some() {
            converts.push(from_staging(spec, staging_dev + at as u64));
        }
    }
    merge_runs(&mut runs);
    (runs, converts)
}

/// A conversion entry reading its u8 image from staging (at device address `staged`, laid out
/// like the image) instead of the packets: the same descriptors with their sources moved, so
/// exactly the pixels the packets carried are converted, spread over the warps as usual.
fn from_staging(spec: &EntrySpec, staged: u64) -> EntrySpec {
    let descs = spec
        .descs
        .iter()
        .map(|d| RawFrag {
            src: staged + u64::from(d.dst_off),
            ..*d
        })
        .collect();
    EntrySpec {
        dst: spec.dst,
        dst_len: spec.dst_len,
        descs,
        convert: spec.convert,
    }
}

/// Sorts `runs` and merges the ones that touch, so that contiguous bytes go in one copy.
fn merge_runs(runs: &mut Vec<(usize, usize)>) {
    runs.sort_unstable();
    let mut out: Vec<(usize, usize)> = Vec::with_capacity(runs.len());
    for &(a, b) in runs.iter() {
        match out.last_mut() {
            Some(last) if a <= last.1 => last.1 = last.1.max(b),
            _ => out.push((a, b)),
        }
    }
    *runs = out;
}

impl Ingest for CpuCopyIngest {
    fn mode(&self) -> IngestMode {
        IngestMode::CpuCopy
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
        let mut waited = self.staging_free(slot)?;
        let stream = self.stream.cu_stream();
        let gpu = self.gpu.as_ref().expect("GPU resources live until drop");
        let staging = &gpu.staging[slot];
        // SAFETY: staging is as large as a slot and this slot's staging is not in use (its
        // last batch completed); the sources are readable (submit's contract).
        let (runs, converts) =
            unsafe { stage(&planned, base, staging.host_ptr(), staging.device_ptr()) };
        if !runs.is_empty() || converts.is_empty() {
            // One pool entry for the event after the copies (its descriptors are unused).
            let (_, w) = self.book.acquire()?;
            waited |= w;
            let gpu = self.gpu.as_ref().expect("GPU resources live until drop");
            let staging = &gpu.staging[slot];
            for &(a, b) in &runs {
                // SAFETY: `a..b` lies inside both the slot and its pinned staging, which stays
                // untouched until the batch completed.
                let r = unsafe {
                    sys::cuMemcpyHtoDAsync_v2(
                        base + a as u64,
                        staging.host_ptr().add(a).cast(),
                        b - a,
                        stream,
                    )
                };
                if let Err(e) = r.result() {
                    return Err(self.book.fail(dev("copying staging to the slot")(e)));
                }
            }
            self.book.enqueued(stream)?;
        }
        for entry in converts {
            let (idx, w) = self.book.acquire()?;
            waited |= w;
            let gpu = self.gpu.as_ref().expect("GPU resources live until drop");
            // SAFETY: `acquire` handed out entry `idx`: no kernel reads it any more.
            unsafe { gpu.pool.write(idx, 0, &entry) };
            fence(Ordering::SeqCst);
            // SAFETY: the entry is written; it reads this slot's staging and writes the slot,
            // both kept until its event completed.
            let r = unsafe {
                gpu.kernels
                    .launch_entry(self.cfg.blocks, stream, gpu.pool.entry_device_ptr(idx))
            };
            if let Err(e) = r {
                return Err(self.book.fail(dev("launching the conversion")(e)));
            }
            self.book.enqueued(stream)?;
        }
        let t = self
            .book
            .finish_batch((planned.images, planned.bytes), waited);
        self.slot_last[slot] = Some(t);
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

impl Drop for CpuCopyIngest {
    fn drop(&mut self) {
        let gpu = self.gpu.take();
        let _ = self.ctx.bind_to_thread();
        match drain(self.stream.cu_stream(), self.shutdown) {
            Ok(true) => drop(gpu),
            Ok(false) => {
                tracing::error!(
                    "cpu-copy ingest: the GPU did not finish its batches within {:?}; leaking \
                     its slots and staging",
                    self.shutdown
                );
                std::mem::forget(gpu);
            }
            Err(e) => {
                tracing::warn!("cpu-copy ingest: stream failed at shutdown: {e}");
                drop(gpu);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_merge_when_they_touch() {
        let mut r = vec![(10, 20), (0, 10), (30, 40), (35, 38), (20, 25)];
        merge_runs(&mut r);
        assert_eq!(r, [(0, 25), (30, 40)]);
    }

    #[test]
    fn conversion_reads_staging_laid_out_like_the_image() {
        let spec = EntrySpec {
            dst: 4096,
            dst_len: 48,
            descs: vec![
                RawFrag {
                    src: 0xdead_0000,
                    len: 5,
                    dst_off: 7,
                },
                RawFrag {
                    src: 0xbeef_0000,
                    len: 7,
                    dst_off: 0,
                },
            ],
            convert: Some((3, 4, [1.0; 4], [0.0; 4])),
        };
        let e = from_staging(&spec, 1 << 20);
        let got: Vec<_> = e.descs.iter().map(|d| (d.src, d.len, d.dst_off)).collect();
        assert_eq!(got, [((1 << 20) + 7, 5, 7), (1 << 20, 7, 0)]);
        assert_eq!(
            (e.dst, e.dst_len, e.convert),
            (spec.dst, spec.dst_len, spec.convert)
        );
    }
}
