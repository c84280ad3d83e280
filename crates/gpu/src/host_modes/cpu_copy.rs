//! `cpu-copy` mode on the host: the submitting thread copies every payload into the slot's
//! staging buffer (the pinned staging of the GPU baseline), then hands "async copies" staging ->
//! slot to one copy-engine thread (the DMA engine), whose completion it polls.
//!
//! Conversion: on a GPU this mode would copy the u8 images and run a small conversion kernel
//! after the copy. On the host the copy-engine thread runs that kernel's body, the shared
//! `netml_convert_span` of gather.cuh (through `netml_host_gather_block`), reading the u8
//! image from staging; the submitting thread's work is the same memcpy either way.

use super::engine::{Engine, Work};
use super::{check_read, plan, raw_entry, Batch, Book, EntrySpec, SlotMem};
use crate::host::Ticket;
use crate::ingest::{
    wait, ImageJob, Ingest, IngestConfig, IngestCounters, IngestError, IngestMode,
};
use crate::ring::RawFrag;
use crate::Target;

/// The CPU-copy baseline.
pub(crate) struct CpuCopyHost {
    // Declared first so that it is dropped (its thread joined) before the buffers.
    engine: Engine,
    mem: SlotMem,
    staging: SlotMem,
    book: Book,
    /// The last batch's descriptor array, reused (only read while staging).
    spare: Vec<RawFrag>,
    slots: usize,
    slot_bytes: usize,
}

impl CpuCopyHost {
    pub(crate) fn new(cfg: &IngestConfig) -> Self {
        Self {
            // One engine thread, like one copy engine per direction; `blocks` does not apply.
            engine: Engine::start(1, cfg.ring_entries, "netml-copy-engine"),
            mem: SlotMem::new(cfg.slots, cfg.slot_bytes),
            staging: SlotMem::new(cfg.slots, cfg.slot_bytes),
            book: Book::new(cfg.slots),
            spare: Vec::new(),
            slots: cfg.slots,
            slot_bytes: cfg.slot_bytes,
        }
    }
}

/// Copies every payload into staging (at the slot position it will have, the u8 image for a
/// conversion) and returns the copy engine's work: the merged byte runs staging -> slot, one
/// per contiguous stretch (one copy for a batch of in-order images), and one conversion entry
/// per converted image reading from staging.
///
/// # Safety
/// The batch's sources must be readable; `stage` and `dst` are slots of the batch's size.
unsafe fn stage_batch(batch: &Batch, stage: *mut u8, dst: *mut u8) -> Work {
    let mut runs: Vec<(usize, usize)> = Vec::new();
    let mut specs = Vec::new();
    for img in &batch.images {
        // Offsets are slot offsets unless the batch converts (then image offsets).
        let shift = if batch.converts { img.offset } else { 0 };
        for d in &batch.descs[img.start..img.end] {
            let at = shift + d.dst_off as usize;
            // SAFETY: `plan` checked `at + len` is inside the slot (for a conversion, inside
            // its u8 image, which is inside its f32 range); sources are the caller's.
            unsafe {
                std::ptr::copy_nonoverlapping(d.src as *const u8, stage.add(at), d.len as usize)
            };
            if img.convert.is_none() && d.len > 0 {
                match runs.last_mut() {
                    Some(r) if r.1 == at => r.1 += d.len as usize,
                    _ => runs.push((at, at + d.len as usize)),
                }
            }
        }
        if let Some((pixels, params)) = img.convert {
            let base = stage as u64 + img.offset as u64;
            let descs = batch.descs[img.start..img.end]
                .iter()
                .map(|d| RawFrag {
                    src: base + u64::from(d.dst_off),
                    ..*d
                })
                .collect();
            specs.push(EntrySpec {
                dst: dst as u64 + img.offset as u64,
                dst_len: 4 * pixels as u64,
                descs,
                convert: Some(params),
            });
        }
    }
    // Reordered fragments leave many runs: sort and merge the touching ones (ranges never
    // overlap, `plan` refused that).
    if runs.len() > 1 {
        runs.sort_unstable();
        let mut merged: Vec<(usize, usize)> = Vec::with_capacity(runs.len());
        for r in runs {
            match merged.last_mut() {
                Some(m) if m.1 == r.0 => m.1 = r.1,
                _ => merged.push(r),
            }
        }
        runs = merged;
    }
    let copies = runs
        .into_iter()
        .map(|(a, b)| (stage as u64 + a as u64, dst as u64 + a as u64, b - a))
        .collect();
    Work {
        entries: specs.iter().map(raw_entry).collect(),
        specs,
        copies,
    }
}

impl Ingest for CpuCopyHost {
    fn mode(&self) -> IngestMode {
        IngestMode::CpuCopy
    }
    fn target(&self) -> Target {
        Target::Host
    }
    fn slots(&self) -> usize {
        self.slots
    }
    fn slot_bytes(&self) -> usize {
        self.slot_bytes
    }

    unsafe fn submit(&mut self, slot: usize, jobs: &[ImageJob<'_>]) -> Result<Ticket, IngestError> {
        self.book.check_slot(slot)?;
        let spare = std::mem::take(&mut self.spare);
        let batch = plan(jobs, self.slot_bytes, spare)?;
        let sizes = (batch.images.len() as u64, batch.bytes);
        // SAFETY: validated batch; the caller keeps the sources readable; the slot's staging
        // is free because the slot's previous batch completed (the `submit` contract).
        let work = unsafe { stage_batch(&batch, self.staging.base(slot), self.mem.base(slot)) };
        self.spare = batch.descs;
        let (t, waited, _) = self.engine.launch(work);
        self.book.submitted(slot, t, sizes, waited);
        Ok(t)
    }

    fn poll(&mut self, ticket: Ticket) -> Result<bool, IngestError> {
        let done = self.engine.is_done(ticket);
        if done {
            self.book.completed_through(ticket);
        }
        Ok(done)
    }

    fn read_slot(&mut self, slot: usize, out: &mut [u8]) -> Result<(), IngestError> {
        self.book.check_slot(slot)?;
        check_read(out.len(), self.slot_bytes)?;
        if let Some(t) = self.book.slot_last(slot) {
            wait(self, t)?;
        }
        // SAFETY: the slot's last batch is complete, so the copy engine does not write it.
        unsafe { self.mem.read(slot, out) };
        Ok(())
    }

    fn slot_device_ptr(&self, _slot: usize) -> Option<u64> {
        None
    }

    fn counters(&self) -> IngestCounters {
        self.book.counters(|t| self.engine.is_done(t))
    }
}
