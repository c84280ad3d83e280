//! The three ingest modes on the host ([`Target::Host`]): host threads stand in for the GPU's
//! blocks and copy engine, slots are 64-byte aligned host memory.
//!
//! * [`netml`]: the doorbell ring of [`HostIngest`](crate::HostIngest) (the resident loop).
//! * [`launch`]: one "launch" per batch, woken persistent block threads, a done counter for
//!   the event.
//! * [`cpu_copy`]: the submitting thread copies into staging, a copy-engine thread moves the
//!   staging to the slot (and converts, with the shared C code).
//!
//! What they share lives here: slot memory, the validation of a batch ([`plan`]: the same
//! `describe` as `HostIngest`), the ring entries a batch becomes, staging for cpu-copy, and the
//! ticket book.

mod cpu_copy;
mod engine;
mod launch;
mod mode;
mod netml;
mod plan;
mod staging;

use std::alloc::{alloc_zeroed, dealloc, Layout};
use std::collections::VecDeque;

pub(crate) use crate::host::{backoff, EntrySpec};
use crate::host::{SubmitError, Ticket};
use crate::ingest::{Ingest, IngestConfig, IngestCounters, IngestError, IngestMode};
use mode::HostMode;
pub(crate) use plan::{entries_of, plan, raw_entry, Batch};
pub(crate) use staging::stage;

/// Starts the host implementation of `cfg.mode`.
pub(crate) fn open_host(cfg: &IngestConfig) -> Result<Box<dyn Ingest>, IngestError> {
    check_config(cfg)?;
    Ok(match cfg.mode {
        IngestMode::Netml => Box::new(HostMode::new(netml::NetmlExec::new(cfg), cfg)),
        IngestMode::Launch => Box::new(HostMode::new(launch::LaunchExec::new(cfg), cfg)),
        IngestMode::CpuCopy => Box::new(HostMode::new(cpu_copy::CpuCopyExec::new(cfg), cfg)),
    })
}

/// The configuration rules of every target (a GPU adds its own).
pub(crate) fn check_config(cfg: &IngestConfig) -> Result<(), IngestError> {
    let bad = |why: &str| Err(IngestError::Device(format!("invalid ingest config: {why}")));
    if cfg.slots == 0 || cfg.slot_bytes == 0 {
        return bad("need at least one slot of at least one byte");
    }
    // Offsets inside a slot travel in the ring's 32-bit `dst_off` fields.
    if u32::try_from(cfg.slot_bytes).is_err() {
        return bad("slot_bytes must fit in 32 bits");
    }
    if cfg.blocks == 0 || cfg.ring_entries == 0 {
        return bad("need at least one block and one ring entry");
    }
    Ok(())
}

/// `slots` zeroed slots of `slot_bytes`, each starting 64-byte aligned.
pub(crate) struct SlotMem {
    ptr: *mut u8,
    layout: Layout,
    stride: usize,
    slot_bytes: usize,
}

// SAFETY: plain memory; who writes which slot when is governed by the tickets (a slot is only
// written by the mode's worker threads between its submit and its completion).
unsafe impl Send for SlotMem {}
// SAFETY: as above; `&SlotMem` hands out raw pointers only.
unsafe impl Sync for SlotMem {}

impl SlotMem {
    pub(crate) fn new(slots: usize, slot_bytes: usize) -> Self {
        let stride = slot_bytes.div_ceil(64) * 64;
        let layout = stride
            .checked_mul(slots)
            .and_then(|n| Layout::from_size_align(n, 64).ok())
            .expect("slot memory layout");
        // SAFETY: non-zero size (checked by `check_config`).
        let ptr = unsafe { alloc_zeroed(layout) };
        if ptr.is_null() {
            std::alloc::handle_alloc_error(layout);
        }
        Self {
            ptr,
            layout,
            stride,
            slot_bytes,
        }
    }

    /// Start of `slot` (the caller checked `slot < slots`).
    pub(crate) fn base(&self, slot: usize) -> *mut u8 {
        debug_assert!(self.stride * (slot + 1) <= self.layout.size());
        // SAFETY: inside the allocation (slot < slots).
        unsafe { self.ptr.add(self.stride * slot) }
    }

    /// The whole of `slot` (`slot_bytes` bytes).
    ///
    /// # Safety
    /// No worker may write `slot` while the returned slice lives (its last batch is complete
    /// and nothing is submitted to it meanwhile).
    pub(crate) unsafe fn slot(&self, slot: usize) -> &[u8] {
        // SAFETY: `base` is inside the allocation with `slot_bytes` bytes after it; the caller
        // guarantees no concurrent writer.
        unsafe { std::slice::from_raw_parts(self.base(slot), self.slot_bytes) }
    }

    /// Copies the start of `slot` into `out`.
    ///
    /// # Safety
    /// No worker may be writing `slot` (its last batch is complete).
    pub(crate) unsafe fn read(&self, slot: usize, out: &mut [u8]) {
        assert!(out.len() <= self.slot_bytes);
        // SAFETY: `out.len()` bytes of the slot are inside the allocation; per the caller,
        // nothing writes them meanwhile.
        unsafe { std::ptr::copy_nonoverlapping(self.base(slot), out.as_mut_ptr(), out.len()) }
    }
}

impl Drop for SlotMem {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout; freed once.
        unsafe { dealloc(self.ptr, self.layout) }
    }
}

/// Tickets of the batches in flight, the last batch of every slot, and the counters.
pub(crate) struct Book {
    slot_last: Vec<Option<Ticket>>,
    pending: VecDeque<Ticket>,
    counters: IngestCounters,
}

impl Book {
    pub(crate) fn new(slots: usize) -> Self {
        Self {
            slot_last: vec![None; slots],
            pending: VecDeque::new(),
            counters: IngestCounters::default(),
        }
    }

    /// `Err(NoSuchSlot)` unless `slot` exists.
    pub(crate) fn check_slot(&self, slot: usize) -> Result<(), IngestError> {
        if slot < self.slot_last.len() {
            Ok(())
        } else {
            Err(IngestError::NoSuchSlot(slot))
        }
    }

    /// The last batch submitted into `slot`, if any.
    pub(crate) fn slot_last(&self, slot: usize) -> Option<Ticket> {
        self.slot_last[slot]
    }

    pub(crate) fn submitted(&mut self, slot: usize, t: Ticket, batch: (u64, u64), waited: bool) {
        self.slot_last[slot] = Some(t);
        self.pending.push_back(t);
        self.counters.batches_submitted += 1;
        self.counters.images += batch.0;
        self.counters.bytes += batch.1;
        self.counters.backpressure_waits += u64::from(waited);
    }

    /// Every batch up to and including `t` is complete (tickets complete in order).
    pub(crate) fn completed_through(&mut self, t: Ticket) {
        while self.pending.front().is_some_and(|&p| p <= t) {
            self.pending.pop_front();
            self.counters.batches_completed += 1;
        }
    }

    /// Counters, counting as completed the pending batches `done` says are complete.
    pub(crate) fn counters(&self, done: impl Fn(Ticket) -> bool) -> IngestCounters {
        let mut c = self.counters;
        c.batches_completed += self.pending.iter().take_while(|&&t| done(t)).count() as u64;
        c
    }
}

/// Refuses a read larger than a slot (a caller bug) as an out-of-bounds request.
pub(crate) fn check_read(len: usize, slot_bytes: usize) -> Result<(), IngestError> {
    if len > slot_bytes {
        return Err(SubmitError::OutOfBounds { fragment: 0 }.into());
    }
    Ok(())
}
