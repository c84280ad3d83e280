//! [`HostMode`]: the [`Ingest`] of every host mode around an [`Exec`], the part that differs
//! (how a validated batch reaches its slot and how its completion is seen).

use super::{check_read, plan, Batch, Book, SlotMem};
use crate::host::Ticket;
use crate::ingest::{
    wait, ImageJob, Ingest, IngestConfig, IngestCounters, IngestError, IngestMode,
};
use crate::ring::RawFrag;
use crate::Target;

/// How one host mode moves a validated batch into its slot.
pub(crate) trait Exec: Send {
    /// The mode it implements.
    const MODE: IngestMode;

    /// A descriptor allocation to reuse for the next batch (fresh large ones fault pages).
    fn spare(&mut self) -> Vec<RawFrag>;

    /// Submits `batch` into slot `slot` at `base` (`slot_bytes` long); returns its ticket and
    /// whether it had to wait for room.
    ///
    /// # Safety
    /// [`Ingest::submit`]'s contract for the batch's sources; the slot's previous batch is
    /// complete.
    unsafe fn run(
        &mut self,
        batch: Batch,
        slot: usize,
        base: *mut u8,
        slot_bytes: usize,
    ) -> (Ticket, bool);

    /// True once the batch of `t` completed.
    fn is_done(&self, t: Ticket) -> bool;
}

/// A host mode: its [`Exec`], the slots and the ticket book.
pub(crate) struct HostMode<X> {
    // Declared first so that it is dropped (its threads joined) before the slots.
    exec: X,
    mem: SlotMem,
    book: Book,
    slots: usize,
    slot_bytes: usize,
}

impl<X: Exec> HostMode<X> {
    /// Slots for `cfg` around `exec`.
    pub(crate) fn new(exec: X, cfg: &IngestConfig) -> Self {
        Self {
            exec,
            mem: SlotMem::new(cfg.slots, cfg.slot_bytes),
            book: Book::new(cfg.slots),
            slots: cfg.slots,
            slot_bytes: cfg.slot_bytes,
        }
    }
}

impl<X: Exec> Ingest for HostMode<X> {
    fn mode(&self) -> IngestMode {
        X::MODE
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
        let batch = plan(jobs, self.slot_bytes, self.exec.spare())?;
        let sizes = (batch.images.len() as u64, batch.bytes);
        // SAFETY: validated batch, the caller's contract for the sources and the slot.
        let (t, waited) = unsafe {
            self.exec
                .run(batch, slot, self.mem.base(slot), self.slot_bytes)
        };
        self.book.submitted(slot, t, sizes, waited);
        Ok(t)
    }

    fn poll(&mut self, ticket: Ticket) -> Result<bool, IngestError> {
        let done = self.exec.is_done(ticket);
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
        // SAFETY: the slot's last batch is complete, so nothing writes it.
        unsafe { self.mem.read(slot, out) };
        Ok(())
    }

    fn slot_device_ptr(&self, _slot: usize) -> Option<u64> {
        None
    }

    fn host_slot(&mut self, slot: usize) -> Result<Option<&[u8]>, IngestError> {
        self.book.check_slot(slot)?;
        if let Some(t) = self.book.slot_last(slot) {
            wait(self, t)?;
        }
        // SAFETY: the slot's last batch is complete, so no worker writes it, and it cannot be
        // submitted to again while the returned borrow of `self` lives.
        Ok(Some(unsafe { self.mem.slot(slot) }))
    }

    fn counters(&self) -> IngestCounters {
        self.book.counters(|t| self.exec.is_done(t))
    }
}
