//! The bookkeeping every GPU mode shares: entry tickets (enqueued / retired, in order), which
//! entry ends each pending batch, batch tickets, the watchdog, the sticky first error and the
//! counters. The resident producer retires entries by their ring state words, the event book
//! by their events; everything after that is here.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::watchdog::Watchdog;
use crate::{IngestCounters, IngestError, Ticket};

/// See the module documentation.
pub(crate) struct Ledger {
    /// Entry tickets: the next to enqueue; those below `retired` are complete.
    pub next: u64,
    pub retired: u64,
    /// For each pending batch, the entry ticket its last entry ends before.
    batch_ends: VecDeque<u64>,
    submitted: u64,
    completed: u64,
    watchdog: Watchdog,
    /// The first device error or stall; every later call reports it again.
    failed: Option<IngestError>,
    counters: IngestCounters,
}

impl Ledger {
    /// An empty ledger; `stall` is the watchdog's limit.
    pub(crate) fn new(stall: Duration) -> Self {
        Self {
            next: 0,
            retired: 0,
            batch_ends: VecDeque::new(),
            submitted: 0,
            completed: 0,
            watchdog: Watchdog::new(stall, Instant::now()),
            failed: None,
            counters: IngestCounters::default(),
        }
    }

    /// The sticky error, if the ingest failed before.
    pub(crate) fn healthy(&self) -> Result<(), IngestError> {
        self.failed.clone().map_or(Ok(()), Err)
    }

    /// Makes `e` the sticky error (the first one wins) and returns it.
    pub(crate) fn fail(&mut self, e: IngestError) -> IngestError {
        self.failed.get_or_insert(e).clone()
    }

    /// After entries were retired up to `retired` (from `before`): completes the batches
    /// whose last entry is retired and runs the watchdog. Returns the time it looked at.
    pub(crate) fn settle(&mut self, before: u64) -> Result<Instant, IngestError> {
        while self.batch_ends.front().is_some_and(|&e| e <= self.retired) {
            self.batch_ends.pop_front();
            self.completed += 1;
            self.counters.batches_completed += 1;
        }
        let now = Instant::now();
        let pending = self.retired < self.next;
        self.watchdog.observe(now, self.retired > before, pending);
        self.watchdog.check(now).map_err(|e| self.fail(e))?;
        Ok(now)
    }

    /// Whether the consumer's liveness probe is due (rate-limited by the watchdog).
    pub(crate) fn probe_due(&mut self, now: Instant) -> bool {
        self.watchdog.probe_due(now)
    }

    /// One more entry was enqueued: work is pending from now on.
    pub(crate) fn enqueued(&mut self) {
        self.next += 1;
        self.watchdog.observe(Instant::now(), false, true);
    }

    /// Closes a batch whose entries were all enqueued; returns its ticket. `batch` is
    /// (images, bytes).
    pub(crate) fn finish_batch(&mut self, batch: (u64, u64), waited: bool) -> Ticket {
        self.batch_ends.push_back(self.next);
        let t = Ticket(self.submitted);
        self.submitted += 1;
        let c = &mut self.counters;
        c.batches_submitted += 1;
        c.images += batch.0;
        c.bytes += batch.1;
        c.backpressure_waits += u64::from(waited);
        self.watchdog.observe(Instant::now(), false, true);
        t
    }

    /// True once batch `t` completed (as of the last [`settle`](Self::settle)).
    pub(crate) fn done(&self, t: Ticket) -> bool {
        t.0 < self.completed
    }

    /// Counters so far.
    pub(crate) fn counters(&self) -> IngestCounters {
        self.counters
    }
}
