//! The producer side of the doorbell ring for the resident kernel: `HostIngest`'s
//! publish/reap (docs/gpu-ingest.md "The ring protocol") over the entry pool, plus batch
//! tickets and the watchdog. It touches only the pool's memory, so the tests below drive it
//! against the kernel's host build (`netml_host_block_loop`) over a pool in host memory.

use std::sync::atomic::{fence, AtomicU32, Ordering};
use std::time::Duration;

use super::backoff;
use super::ledger::Ledger;
use super::plan::Planned;
use super::pool::EntryPool;
use crate::host_modes::EntrySpec;
use crate::ring::{STATE_DONE, STATE_FREE, STATE_READY};
use crate::{IngestCounters, IngestError, Ticket};

/// Asks whether the consumer is still alive (the kernel's stream is busy); called at most
/// every 10 ms while work is pending.
pub(crate) type Probe<'a> = &'a mut dyn FnMut() -> Result<(), IngestError>;

/// Ring and batch bookkeeping of one resident ingest (entry tickets are ring tickets).
pub(crate) struct Producer {
    ledger: Ledger,
}

fn state(pool: &EntryPool, ticket: u64) -> &AtomicU32 {
    pool.state((ticket % pool.len() as u64) as usize)
}

impl Producer {
    /// A producer for a fresh (all FREE) pool; `stall` is the watchdog's limit.
    pub(crate) fn new(stall: Duration) -> Self {
        Self {
            ledger: Ledger::new(stall),
        }
    }

    /// The sticky error, if the ingest failed before.
    pub(crate) fn healthy(&self) -> Result<(), IngestError> {
        self.ledger.healthy()
    }

    /// DONE -> FREE in ring order, batch completion, the watchdog and (rate-limited) `probe`.
    fn reap(&mut self, pool: &EntryPool, probe: Probe<'_>) -> Result<(), IngestError> {
        self.healthy()?;
        let l = &mut self.ledger;
        let before = l.retired;
        while l.retired < l.next {
            let s = state(pool, l.retired);
            // Acquire pairs with the consumer's system fence before DONE: the slot's bytes are
            // written once DONE is seen.
            if s.load(Ordering::Acquire) != STATE_DONE {
                break;
            }
            s.store(STATE_FREE, Ordering::Relaxed);
            l.retired += 1;
        }
        let now = l.settle(before)?;
        if l.probe_due(now) {
            probe().map_err(|e| l.fail(e))?;
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
            if self.ledger.next - self.ledger.retired < n {
                break;
            }
            waited = true;
            backoff(&mut spins);
        }
        let ticket = self.ledger.next;
        let idx = (ticket % n) as usize;
        debug_assert_eq!(pool.state(idx).load(Ordering::Acquire), STATE_FREE);
        // SAFETY: the entry is FREE: the consumer reads nothing of it but `state` until it
        // sees READY with this sequence number.
        unsafe { pool.write(idx, ticket as u32, spec) };
        // The descriptors and fields must be visible to the consumer before READY is.
        fence(Ordering::SeqCst);
        pool.state(idx).store(STATE_READY, Ordering::Release);
        self.ledger.enqueued();
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
        Ok(self
            .ledger
            .finish_batch((planned.images, planned.bytes), waited))
    }

    /// True once batch `t` completed.
    pub(crate) fn poll(
        &mut self,
        pool: &EntryPool,
        t: Ticket,
        probe: Probe<'_>,
    ) -> Result<bool, IngestError> {
        self.reap(pool, probe)?;
        Ok(self.ledger.done(t))
    }

    /// Counters so far.
    pub(crate) fn counters(&self) -> IngestCounters {
        self.ledger.counters()
    }
}

#[cfg(test)]
#[path = "producer_tests.rs"]
mod tests;
