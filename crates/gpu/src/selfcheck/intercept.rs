//! Wrappers that change what is submitted to an ingest and pass everything else through:
//! how a test makes an ingest lose a fragment (to see the self-check catch it), and how the
//! self-check on a GPU moves its heap sources into memory the kernel can read.

use crate::host::Ticket;
use crate::ingest::{ImageJob, Ingest, IngestCounters, IngestError, IngestMode, Target};

/// What an [`Intercepted`] ingest does with a batch in place of submitting it as it is.
pub trait Intercept: Send {
    /// Submits `jobs` for `slot` to `inner`, changed (or moved) as this interceptor does.
    ///
    /// # Safety
    ///
    /// [`Ingest::submit`]'s contract for `slot` and `jobs`.
    unsafe fn submit(
        &mut self,
        inner: &mut dyn Ingest,
        slot: usize,
        jobs: &[ImageJob<'_>],
    ) -> Result<Ticket, IngestError>;
}

/// An [`Ingest`] that is `inner` in everything but its submissions, which go through `hook`.
pub struct Intercepted<'a, H> {
    /// The ingest that does the work.
    pub inner: &'a mut dyn Ingest,
    /// What it does with every batch.
    pub hook: H,
}

impl<H: Intercept> Ingest for Intercepted<'_, H> {
    fn mode(&self) -> IngestMode {
        self.inner.mode()
    }

    fn target(&self) -> Target {
        self.inner.target()
    }

    fn slots(&self) -> usize {
        self.inner.slots()
    }

    fn slot_bytes(&self) -> usize {
        self.inner.slot_bytes()
    }

    unsafe fn submit(&mut self, slot: usize, jobs: &[ImageJob<'_>]) -> Result<Ticket, IngestError> {
        // SAFETY: the caller's submit contract, passed on unchanged.
        unsafe { self.hook.submit(self.inner, slot, jobs) }
    }

    fn poll(&mut self, ticket: Ticket) -> Result<bool, IngestError> {
        self.inner.poll(ticket)
    }

    fn read_slot(&mut self, slot: usize, out: &mut [u8]) -> Result<(), IngestError> {
        self.inner.read_slot(slot, out)
    }

    fn slot_device_ptr(&self, slot: usize) -> Option<u64> {
        self.inner.slot_device_ptr(slot)
    }

    fn counters(&self) -> IngestCounters {
        self.inner.counters()
    }
}
