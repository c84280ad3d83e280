//! `netml` mode on the host: [`HostIngest`] (host threads running the resident loop of
//! gather.cuh) over its doorbell ring, writing into host slots.

use super::{check_read, entries_of, plan, Book, SlotMem};
use crate::host::{HostIngest, Ticket};
use crate::ingest::{
    wait, ImageJob, Ingest, IngestConfig, IngestCounters, IngestError, IngestMode,
};
use crate::Target;

/// The resident-kernel mode: a batch without conversion is one ring entry, with conversion one
/// entry per image; the ticket is the last entry's (entries complete in order).
pub(crate) struct NetmlHost {
    // Declared first so that it is dropped (its block threads joined) before the slots.
    ingest: HostIngest,
    mem: SlotMem,
    book: Book,
    slots: usize,
    slot_bytes: usize,
}

impl NetmlHost {
    pub(crate) fn new(cfg: &IngestConfig) -> Self {
        Self {
            ingest: HostIngest::start(cfg.blocks, cfg.ring_entries),
            mem: SlotMem::new(cfg.slots, cfg.slot_bytes),
            book: Book::new(cfg.slots),
            slots: cfg.slots,
            slot_bytes: cfg.slot_bytes,
        }
    }
}

impl Ingest for NetmlHost {
    fn mode(&self) -> IngestMode {
        IngestMode::Netml
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
        let batch = plan(jobs, self.slot_bytes, self.ingest.spare_descs())?;
        let sizes = (batch.images.len() as u64, batch.bytes);
        let specs = entries_of(batch, self.mem.base(slot), self.slot_bytes);
        let free = u64::from(self.ingest.ring_entries()) - self.ingest.in_flight();
        let waited = specs.len() as u64 > free;
        let mut last = None;
        for s in specs {
            // The sources stay valid until completion (the caller's contract); the slot range
            // was validated by `plan`; the entry owns its descriptors until reaped.
            last = Some(self.ingest.publish(s.descs, s.dst, s.dst_len, s.convert));
        }
        let t = match last {
            Some(t) => t,
            // An empty batch still gets a ticket: an entry with no fragments.
            None => self
                .ingest
                .publish(Vec::new(), self.mem.base(slot) as u64, 0, None),
        };
        self.book.submitted(slot, t, sizes, waited);
        Ok(t)
    }

    fn poll(&mut self, ticket: Ticket) -> Result<bool, IngestError> {
        let done = self.ingest.poll(ticket);
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
        self.book.counters(|t| self.ingest.poll(t))
    }
}
