//! The producer side of the doorbell ring for the resident kernel: `HostIngest`'s
//! publish/reap (docs/gpu-ingest.md "The ring protocol") over the entry pool, plus batch
//! tickets and the watchdog. It touches only the pool's memory, so the tests below drive it
//! against the kernel's host build (`netml_host_block_loop`) over a pool in host memory.

use std::collections::VecDeque;
use std::sync::atomic::{fence, AtomicU32, Ordering};
use std::time::{Duration, Instant};

use super::backoff;
use super::plan::Planned;
use super::pool::EntryPool;
use super::watchdog::Watchdog;
use crate::host_modes::EntrySpec;
use crate::ring::{STATE_DONE, STATE_FREE, STATE_READY};
use crate::{IngestCounters, IngestError, Ticket};

/// Asks whether the consumer is still alive (the kernel's stream is busy); called at most
/// every 10 ms while work is pending.
pub(crate) type Probe<'a> = &'a mut dyn FnMut() -> Result<(), IngestError>;

/// Ring and batch bookkeeping of one resident ingest.
pub(crate) struct Producer {
    /// Ring tickets: next to publish, and below `retired` DONE and FREE again.
    next: u64,
    retired: u64,
    /// For each pending batch, the ring ticket its last entry ends before.
    batch_ends: VecDeque<u64>,
    submitted: u64,
    completed: u64,
    watchdog: Watchdog,
    failed: Option<IngestError>,
    counters: IngestCounters,
}

fn state(pool: &EntryPool, ticket: u64) -> &AtomicU32 {
    pool.state((ticket % pool.len() as u64) as usize)
}

impl Producer {
    /// A producer for a fresh (all FREE) pool; `stall` is the watchdog's limit.
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

    fn fail(&mut self, e: IngestError) -> IngestError {
        self.failed.get_or_insert(e).clone()
    }

    /// DONE -> FREE in ring order, batch completion, the watchdog and (rate-limited) `probe`.
    fn reap(&mut self, pool: &EntryPool, probe: Probe<'_>) -> Result<(), IngestError> {
        self.healthy()?;
        let before = self.retired;
        while self.retired < self.next {
            let s = state(pool, self.retired);
            // Acquire pairs with the consumer's system fence before DONE: the slot's bytes are
            // written once DONE is seen.
            if s.load(Ordering::Acquire) != STATE_DONE {
                break;
            }
            s.store(STATE_FREE, Ordering::Relaxed);
            self.retired += 1;
        }
        while self.batch_ends.front().is_some_and(|&e| e <= self.retired) {
            self.batch_ends.pop_front();
            self.completed += 1;
            self.counters.batches_completed += 1;
        }
        let now = Instant::now();
        let pending = self.retired < self.next;
        self.watchdog.observe(now, self.retired > before, pending);
        if let Err(e) = self.watchdog.check(now) {
            return Err(self.fail(e));
        }
        if self.watchdog.probe_due(now) {
            probe().map_err(|e| self.fail(e))?;
        }
        Ok(())
    }

    /// Waits for the next entry to be FREE (reaping), writes it, fences, stores READY.
    fn publish(
        &mut self,
        pool: &EntryPool,
        spec: &EntrySpec,
        probe: Probe<'_>,
    ) -> Result<bool, IngestError> {
        let n = pool.len() as u64;
        let mut waited = false;
        let mut spins = 0u32;
        loop {
            self.reap(pool, probe)?;
            if self.next - self.retired < n {
                break;
            }
            waited = true;
            backoff(&mut spins);
        }
        let ticket = self.next;
        let idx = (ticket % n) as usize;
        debug_assert_eq!(pool.state(idx).load(Ordering::Acquire), STATE_FREE);
        // SAFETY: the entry is FREE: the consumer reads nothing of it but `state` until it
        // sees READY with this sequence number.
        unsafe { pool.write(idx, ticket as u32, spec) };
        // The descriptors and fields must be visible to the consumer before READY is.
        fence(Ordering::SeqCst);
        pool.state(idx).store(STATE_READY, Ordering::Release);
        self.next += 1;
        Ok(waited)
    }

    /// Publishes every entry of a validated batch; returns its ticket.
    pub(crate) fn submit(
        &mut self,
        pool: &EntryPool,
        planned: &Planned,
        probe: Probe<'_>,
    ) -> Result<Ticket, IngestError> {
        self.healthy()?;
        let mut waited = false;
        for spec in &planned.entries {
            waited |= self.publish(pool, spec, probe)?;
        }
        self.batch_ends.push_back(self.next);
        let t = Ticket(self.submitted);
        self.submitted += 1;
        let c = &mut self.counters;
        c.batches_submitted += 1;
        c.images += planned.images;
        c.bytes += planned.bytes;
        c.backpressure_waits += u64::from(waited);
        self.watchdog.observe(Instant::now(), false, true);
        Ok(t)
    }

    /// True once batch `t` completed.
    pub(crate) fn poll(
        &mut self,
        pool: &EntryPool,
        t: Ticket,
        probe: Probe<'_>,
    ) -> Result<bool, IngestError> {
        self.reap(pool, probe)?;
        Ok(t.0 < self.completed)
    }

    /// Counters so far.
    pub(crate) fn counters(&self) -> IngestCounters {
        self.counters
    }
}

#[cfg(test)]
#[path = "producer_tests.rs"]
mod tests;
