//! `launch` mode on the host: one "launch" of the gather body per batch over persistent block
//! threads ([`Engine`]), completion seen by polling a done counter (the event).

use super::engine::{Engine, Work};
use super::mode::Exec;
use super::{entries_of, raw_entry, Batch};
use crate::host::Ticket;
use crate::ingest::{IngestConfig, IngestMode};
use crate::ring::RawFrag;

/// The one-launch-per-batch mode: the submitting thread writes the batch's entries (one per
/// job form without conversion, one per image with) and wakes `blocks` threads that run
/// `netml_host_gather_block` over them, as `gather_launch` blocks would.
pub(crate) struct LaunchExec {
    engine: Engine,
    /// A descriptor array to reuse (large allocations would fault pages in every batch).
    spare: Vec<Vec<RawFrag>>,
}

impl LaunchExec {
    pub(crate) fn new(cfg: &IngestConfig) -> Self {
        Self {
            engine: Engine::start(cfg.blocks, cfg.ring_entries, "netml-launch"),
            spare: Vec::new(),
        }
    }
}

impl Exec for LaunchExec {
    const MODE: IngestMode = IngestMode::Launch;

    fn spare(&mut self) -> Vec<RawFrag> {
        self.spare.pop().unwrap_or_default()
    }

    unsafe fn run(
        &mut self,
        batch: Batch,
        _slot: usize,
        base: *mut u8,
        slot_bytes: usize,
    ) -> (Ticket, bool) {
        let specs = entries_of(batch, base, slot_bytes);
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
        (t, waited)
    }

    fn is_done(&self, t: Ticket) -> bool {
        self.engine.is_done(t)
    }
}
