//! Work in flight on one stream, completion seen by polling events (the `launch` and
//! `cpu-copy` modes). Each entry of the descriptor pool has an event, recorded after the work
//! that uses the entry; work on one stream completes in order, so entries come back in order
//! and a batch is complete when the event of its last entry is. A batch with more entries than
//! the pool just waits for its own first entries, like the resident ring.

use std::sync::Arc;
use std::time::Duration;

use cudarc::driver::{result, sys, CudaContext, CudaEvent};

use super::backoff;
use super::ledger::Ledger;
use super::slots::dev;
use crate::{IngestCounters, IngestError, Ticket};

/// Pool entries, their events, and the tickets of the batches in flight.
pub(crate) struct EventBook {
    ctx: Arc<CudaContext>,
    events: Vec<CudaEvent>,
    /// Entry tickets (entry `e` uses pool index `e mod n`), batches, watchdog, counters.
    ledger: Ledger,
}

impl EventBook {
    /// `n` events (created now, never while work is in flight) for `n` pool entries.
    pub(crate) fn new(
        ctx: &Arc<CudaContext>,
        n: usize,
        stall: Duration,
    ) -> Result<Self, IngestError> {
        let events = (0..n)
            .map(|_| ctx.new_event(None))
            .collect::<Result<Vec<_>, _>>()
            .map_err(dev("creating events"))?;
        Ok(Self {
            ctx: ctx.clone(),
            events,
            ledger: Ledger::new(stall),
        })
    }

    /// The sticky error, if the ingest failed before.
    pub(crate) fn healthy(&self) -> Result<(), IngestError> {
        self.ledger.healthy()
    }

    /// Makes `e` the sticky error (the first one wins) and returns it.
    pub(crate) fn fail(&mut self, e: IngestError) -> IngestError {
        self.ledger.fail(e)
    }

    fn n(&self) -> u64 {
        self.events.len() as u64
    }

    /// Retires completed entries and batches (in order) and runs the watchdog.
    fn reap(&mut self) -> Result<(), IngestError> {
        self.healthy()?;
        let before = self.ledger.retired;
        while self.ledger.retired < self.ledger.next {
            let ev = &self.events[(self.ledger.retired % self.n()) as usize];
            match ev.try_is_complete() {
                Ok(true) => self.ledger.retired += 1,
                Ok(false) => break,
                Err(e) => return Err(self.fail(dev("gather batch")(e))),
            }
        }
        self.ledger.settle(before).map(|_| ())
    }

    /// Waits until the next pool entry is free; returns its index and whether it waited.
    pub(crate) fn acquire(&mut self) -> Result<(usize, bool), IngestError> {
        let mut waited = false;
        let mut spins = 0u32;
        loop {
            self.reap()?;
            if self.ledger.next - self.ledger.retired < self.n() {
                return Ok(((self.ledger.next % self.n()) as usize, waited));
            }
            waited = true;
            backoff(&mut spins);
        }
    }

    /// After the work using the entry from [`acquire`](Self::acquire) was enqueued on
    /// `stream`: records the entry's event.
    pub(crate) fn enqueued(&mut self, stream: sys::CUstream) -> Result<(), IngestError> {
        let ev = self.events[(self.ledger.next % self.n()) as usize].cu_event();
        // SAFETY: a live event and stream of this context; the event is not pending (its
        // entry was free).
        let r = unsafe { result::event::record(ev, stream) };
        r.map_err(|e| self.fail(dev("recording an event")(e)))?;
        self.ledger.enqueued();
        Ok(())
    }

    /// Closes a batch whose entries were all [`enqueued`](Self::enqueued); returns its ticket.
    /// `batch` is (images, bytes).
    pub(crate) fn finish_batch(&mut self, batch: (u64, u64), waited: bool) -> Ticket {
        self.ledger.finish_batch(batch, waited)
    }

    /// True once batch `t` completed.
    pub(crate) fn poll(&mut self, t: Ticket) -> Result<bool, IngestError> {
        self.ctx
            .bind_to_thread()
            .map_err(dev("binding the context"))?;
        self.reap()?;
        Ok(self.ledger.done(t))
    }

    /// Counters so far.
    pub(crate) fn counters(&self) -> IngestCounters {
        self.ledger.counters()
    }
}
