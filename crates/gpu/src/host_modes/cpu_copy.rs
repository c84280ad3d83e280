//! `cpu-copy` mode on the host: the submitting thread copies every payload into the slot's
//! staging buffer (the pinned staging of the GPU baseline), then hands "async copies" staging ->
//! slot to one copy-engine thread (the DMA engine), whose completion it polls.
//!
//! Conversion: on a GPU this mode would copy the u8 images and run a small conversion kernel
//! after the copy. On the host the copy-engine thread runs that kernel's body, the shared
//! `netml_convert_span` of gather.cuh (through `netml_host_gather_block`), reading the u8
//! image from staging; the submitting thread's work is the same memcpy either way.

use super::engine::{Engine, Work};
use super::mode::Exec;
use super::{entries_of, raw_entry, stage, Batch, SlotMem};
use crate::host::Ticket;
use crate::ingest::{IngestConfig, IngestMode};
use crate::ring::RawFrag;

/// The CPU-copy baseline.
pub(crate) struct CpuCopyExec {
    // Declared first so that it is dropped (its thread joined) before the staging.
    engine: Engine,
    staging: SlotMem,
    /// The last batch's descriptor array, reused (only read while staging).
    spare: Vec<RawFrag>,
}

impl CpuCopyExec {
    pub(crate) fn new(cfg: &IngestConfig) -> Self {
        Self {
            // One engine thread, like one copy engine per direction; `blocks` does not apply.
            engine: Engine::start(1, cfg.ring_entries, "netml-copy-engine"),
            staging: SlotMem::new(cfg.slots, cfg.slot_bytes),
            spare: Vec::new(),
        }
    }
}

/// Stages `batch` for the slot at `dst` through the shared `stage` (the GPU cpu-copy's CPU
/// part) and returns the copy engine's work: the merged byte runs staging -> slot (one copy
/// for a batch of in-order images) and one conversion entry per converted image reading from
/// staging. Also returns the batch's descriptor allocation for reuse.
///
/// # Safety
/// The batch's sources must be readable; `stage_at` and `dst` are slots of the batch's size,
/// the staging not in use.
unsafe fn stage_batch(
    batch: Batch,
    stage_at: *mut u8,
    dst: *mut u8,
    slot_bytes: usize,
) -> (Work, Vec<RawFrag>) {
    let specs = entries_of(batch, dst, slot_bytes);
    // SAFETY: the caller's contract; the staging's consumer (the copy-engine thread) reads
    // it at its host address.
    let (runs, converts) = unsafe { stage(&specs, dst as u64, stage_at, stage_at as u64) };
    let copies = runs
        .into_iter()
        .map(|(a, b)| (stage_at as u64 + a as u64, dst as u64 + a as u64, b - a))
        .collect();
    let spare = specs
        .into_iter()
        .map(|s| s.descs)
        .max_by_key(Vec::capacity)
        .unwrap_or_default();
    let work = Work {
        entries: converts.iter().map(raw_entry).collect(),
        specs: converts,
        copies,
    };
    (work, spare)
}

impl Exec for CpuCopyExec {
    const MODE: IngestMode = IngestMode::CpuCopy;

    fn spare(&mut self) -> Vec<RawFrag> {
        std::mem::take(&mut self.spare)
    }

    unsafe fn run(
        &mut self,
        batch: Batch,
        slot: usize,
        base: *mut u8,
        slot_bytes: usize,
    ) -> (Ticket, bool) {
        // SAFETY: validated batch; the caller keeps the sources readable; the slot's staging
        // is free because the slot's previous batch completed (the `submit` contract).
        let (work, spare) =
            unsafe { stage_batch(batch, self.staging.base(slot), base, slot_bytes) };
        self.spare = spare;
        let (t, waited, _) = self.engine.launch(work);
        (t, waited)
    }

    fn is_done(&self, t: Ticket) -> bool {
        self.engine.is_done(t)
    }
}
