//! Work in flight on one stream, completion seen by polling events (the `launch` and
//! `cpu-copy` modes). Each entry of the descriptor pool has an event, recorded after the work
//! that uses the entry; work on one stream completes in order, so entries come back in order
//! and a batch is complete when the event of its last entry is. A batch with more entries than
//! the pool just waits for its own first entries, like the resident ring.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cudarc::driver::{result, sys, CudaContext, CudaEvent};

use super::backoff;
use super::slots::dev;
use super::watchdog::Watchdog;
use crate::{IngestCounters, IngestError, Ticket};

/// Pool entries, their events, and the tickets of the batches in flight.
pub(crate) struct EventBook {
    ctx: Arc<CudaContext>,
    events: Vec<CudaEvent>,
    /// Entries enqueued so far / completed (entry `e` uses pool index `e mod n`).
    next: u64,
    retired: u64,
    /// For each pending batch, the entry count its last entry ends before.
    batch_ends: VecDeque<u64>,
    submitted: u64,
    completed: u64,
    watchdog: Watchdog,
    /// The first device error or stall; every later call reports it again.
    failed: Option<IngestError>,
    counters: IngestCounters,
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
            next: 0,
            retired: 0,
            batch_ends: VecDeque::new(),
            submitted: 0,
            completed: 0,
            watchdog: Watchdog::new(stall, Instant::now()),
            failed: None,
            counters: IngestCounters::default(),
        })
    }

    /// The sticky error, if the ingest failed before.
    pub(crate) fn healthy(&self) -> Result<(), IngestError> {
        self.failed.clone().map_or(Ok(()), Err)
    }

    /// Makes `e` the sticky error (the first one wins) and returns it.
    pub(crate) fn fail(&mut self, e: IngestError) -> IngestError {
        self.failed.get_or_insert(e).clone()
    }

    fn n(&self) -> u64 {
        self.events.len() as u64
    }

    /// Retires completed entries and batches (in order) and runs the watchdog.
    fn reap(&mut self) -> Result<(), IngestError> {
        self.healthy()?;
        let before = self.retired;
        while self.retired < self.next {
            let ev = &self.events[(self.retired % self.n()) as usize];
            match ev.try_is_complete() {
                Ok(true) => self.retired += 1,
                Ok(false) => break,
                Err(e) => return Err(self.fail(dev("gather batch")(e))),
            }
        }
        while self.batch_ends.front().is_some_and(|&e| e <= self.retired) {
            self.batch_ends.pop_front();
            self.completed += 1;
            self.counters.batches_completed += 1;
        }
        let now = Instant::now();
        let pending = self.retired < self.next;
        self.watchdog.observe(now, self.retired > before, pending);
        self.watchdog.check(now).map_err(|e| self.fail(e))
    }

    /// Waits until the next pool entry is free; returns its index and whether it waited.
    pub(crate) fn acquire(&mut self) -> Result<(usize, bool), IngestError> {
        let mut waited = false;
        let mut spins = 0u32;
        loop {
            self.reap()?;
            if self.next - self.retired < self.n() {
                return Ok(((self.next % self.n()) as usize, waited));
            }
            waited = true;
            backoff(&mut spins);
        }
    }

    /// After the work using the entry from [`acquire`](Self::acquire) was enqueued on
    /// `stream`: records the entry's event.
    pub(crate) fn enqueued(&mut self, stream: sys::CUstream) -> Result<(), IngestError> {
        let ev = self.events[(self.next % self.n()) as usize].cu_event();
        // SAFETY: a live event and stream of this context; the event is not pending (its
        // entry was free).
        let r = unsafe { result::event::record(ev, stream) };
        r.map_err(|e| self.fail(dev("recording an event")(e)))?;
        self.next += 1;
        self.watchdog.observe(Instant::now(), false, true);
        Ok(())
    }

    /// Closes a batch whose entries were all [`enqueued`](Self::enqueued); returns its ticket.
    /// `batch` is (images, bytes).
    pub(crate) fn finish_batch(&mut self, batch: (u64, u64), waited: bool) -> Ticket {
        self.batch_ends.push_back(self.next);
        let t = Ticket(self.submitted);
        self.submitted += 1;
        let c = &mut self.counters;
        c.batches_submitted += 1;
        c.images += batch.0;
        c.bytes += batch.1;
        c.backpressure_waits += u64::from(waited);
        t
    }

    /// True once batch `t` completed.
    pub(crate) fn poll(&mut self, t: Ticket) -> Result<bool, IngestError> {
        self.ctx
            .bind_to_thread()
            .map_err(dev("binding the context"))?;
        self.reap()?;
        Ok(t.0 < self.completed)
    }

    /// Counters so far.
    pub(crate) fn counters(&self) -> IngestCounters {
        self.counters
    }
}
