//! `netml` mode on the host: [`HostIngest`] (host threads running the resident loop of
//! gather.cuh) over its doorbell ring, writing into host slots.

use super::mode::Exec;
use super::{entries_of, Batch};
use crate::host::{HostIngest, Ticket};
use crate::ingest::{IngestConfig, IngestMode};
use crate::ring::RawFrag;

/// The resident-kernel mode: a batch without conversion is one ring entry per job form
/// (listed, strided), with conversion one entry per image; the ticket is the last entry's
/// (entries complete in order).
pub(crate) struct NetmlExec {
    ingest: HostIngest,
}

impl NetmlExec {
    pub(crate) fn new(cfg: &IngestConfig) -> Self {
        Self {
            ingest: HostIngest::start(cfg.blocks, cfg.ring_entries),
        }
    }
}

impl Exec for NetmlExec {
    const MODE: IngestMode = IngestMode::Netml;

    fn spare(&mut self) -> Vec<RawFrag> {
        self.ingest.spare_descs()
    }

    unsafe fn run(
        &mut self,
        batch: Batch,
        _slot: usize,
        base: *mut u8,
        slot_bytes: usize,
    ) -> (Ticket, bool) {
        let (mut last, mut waited) = (None, false);
        for s in entries_of(batch, base, slot_bytes) {
            // The sources (and strided pointer arrays) stay valid until completion (the
            // caller's contract); the slot range was validated by `plan`; the entry owns its
            // out-of-line array until reaped.
            let (t, w) = self.ingest.publish_waited(s);
            (last, waited) = (Some(t), waited | w);
        }
        // `entries_of` always returns at least one entry (an empty batch: an empty one).
        (last.expect("a batch has an entry"), waited)
    }

    fn is_done(&self, t: Ticket) -> bool {
        self.ingest.poll(t)
    }
}
