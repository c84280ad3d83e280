//! `launch` mode on the host: one "launch" of the gather body per batch over persistent block
//! threads ([`Engine`]), completion seen by polling a done counter (the event).

use super::engine::{Engine, Work};
use super::{check_read, entries_of, plan, raw_entry, Book, SlotMem};
use crate::host::Ticket;
use crate::ingest::{
    wait, ImageJob, Ingest, IngestConfig, IngestCounters, IngestError, IngestMode,
};
use crate::ring::RawFrag;
use crate::Target;

/// The one-launch-per-batch mode: the submitting thread writes the batch's entries (one
/// without conversion, one per image with) and wakes `blocks` threads that run
/// `netml_host_gather_block` over them, as `gather_launch` blocks would.
pub(crate) struct LaunchHost {
    // Declared first so that it is dropped (its threads joined) before the slots.
    engine: Engine,
    mem: SlotMem,
    book: Book,
    /// A descriptor array to reuse (large allocations would fault pages in every batch).
    spare: Vec<Vec<RawFrag>>,
    slots: usize,
    slot_bytes: usize,
}

impl LaunchHost {
    pub(crate) fn new(cfg: &IngestConfig) -> Self {
        Self {
            engine: Engine::start(cfg.blocks, cfg.ring_entries, "netml-launch"),
            mem: SlotMem::new(cfg.slots, cfg.slot_bytes),
            book: Book::new(cfg.slots),
            spare: Vec::new(),
            slots: cfg.slots,
            slot_bytes: cfg.slot_bytes,
        }
    }
}

impl Ingest for LaunchHost {
    fn mode(&self) -> IngestMode {
        IngestMode::Launch
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
        let batch = plan(jobs, self.slot_bytes, self.spare.pop().unwrap_or_default())?;
        let sizes = (batch.images.len() as u64, batch.bytes);
        let specs = entries_of(batch, self.mem.base(slot), self.slot_bytes);
        let entries = specs.iter().map(raw_entry).collect();
        let work = Work {
            entries,
            specs,
            copies: Vec::new(),
        };
        let (t, waited, old) = self.engine.launch(work);
        // Keep the largest descriptor array of the replaced launch for the next batch.
        if let Some(d) = old
            .specs
            .into_iter()
            .map(|s| s.descs)
            .max_by_key(Vec::capacity)
        {
            self.spare.push(d);
        }
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
        // SAFETY: the slot's last batch is complete, so no block thread writes it.
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
