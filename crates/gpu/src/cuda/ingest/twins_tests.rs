//! The `launch` and `cpu-copy` paths of the GPU modes with the kernel's host build in place of
//! the GPU: the same plan, entry pool and staging code, the one-shot kernel body
//! (`netml_host_gather_block`) run inline for each entry, `memcpy` for the DMA, and the
//! target-agnostic self-check comparing every slot with its oracle.

use super::plan::plan;
use super::pool::EntryPool;
use crate::host_modes::stage;
use crate::ring;
use crate::selfcheck::{self, SelfCheckOptions};
use crate::{ImageJob, Ingest, IngestCounters, IngestError, IngestMode, Target, Ticket};

const SLOT_BYTES: usize = 96 * 1024;

/// Host twin of `StreamIngest` (launch / cpu-copy); every batch completes inside `submit`.
struct Twin {
    mode: IngestMode,
    blocks: u32,
    pool: EntryPool,
    max_frags: usize,
    slots: Vec<*mut [u8]>,
    staging: Vec<*mut [u8]>,
    entries_used: usize,
    submitted: u64,
}

// SAFETY: owned allocations, used by the thread that owns the twin only.
unsafe impl Send for Twin {}

fn alloc() -> *mut [u8] {
    Box::into_raw(vec![0u8; SLOT_BYTES].into_boxed_slice())
}

impl Twin {
    fn new(mode: IngestMode, blocks: u32, entries: usize, max_frags: usize) -> Self {
        Self {
            mode,
            blocks,
            pool: EntryPool::host(entries, max_frags),
            max_frags,
            slots: (0..4).map(|_| alloc()).collect(),
            staging: (0..4).map(|_| alloc()).collect(),
            entries_used: 0,
            submitted: 0,
        }
    }

    /// Writes `spec` into the next pool entry and runs the one-shot body over it, block by
    /// block (what `gather_launch` does with `blocks` blocks).
    fn launch(&mut self, spec: &crate::host_modes::EntrySpec) {
        let idx = self.entries_used % self.pool.len();
        self.entries_used += 1;
        // SAFETY: nothing else reads the entry (every earlier one completed inline).
        unsafe { self.pool.write(idx, 0, spec) };
        for bid in 0..self.blocks {
            // SAFETY: the entry, its descriptors, sources and destination are valid now.
            unsafe { ring::netml_host_gather_block(self.pool.entry(idx), bid, self.blocks) };
        }
    }
}

impl Ingest for Twin {
    fn mode(&self) -> IngestMode {
        self.mode
    }
    fn target(&self) -> Target {
        Target::Host
    }
    fn slots(&self) -> usize {
        self.slots.len()
    }
    fn slot_bytes(&self) -> usize {
        SLOT_BYTES
    }
    unsafe fn submit(&mut self, slot: usize, jobs: &[ImageJob<'_>]) -> Result<Ticket, IngestError> {
        let base = self.slots[slot] as *mut u8;
        let planned = plan(jobs, base as u64, SLOT_BYTES, self.max_frags, Vec::new())?;
        if self.mode == IngestMode::Launch {
            for spec in &planned.entries {
                self.launch(spec);
            }
        } else {
            let st = self.staging[slot] as *mut u8;
            // SAFETY: the staging holds a slot's size and no batch uses it; sources readable.
            let (runs, converts) = unsafe { stage(&planned.entries, base as u64, st, st as u64) };
            for (a, b) in runs {
                // SAFETY: `a..b` is inside the slot and its staging.
                unsafe { std::ptr::copy_nonoverlapping(st.add(a), base.add(a), b - a) };
            }
            for spec in &converts {
                self.launch(spec);
            }
        }
        self.submitted += 1;
        Ok(Ticket(self.submitted - 1))
    }
    fn poll(&mut self, t: Ticket) -> Result<bool, IngestError> {
        Ok(t.0 < self.submitted)
    }
    fn read_slot(&mut self, slot: usize, out: &mut [u8]) -> Result<(), IngestError> {
        // SAFETY: every batch completed inside submit; `out` fits a slot.
        unsafe {
            std::ptr::copy_nonoverlapping(
                self.slots[slot] as *const u8,
                out.as_mut_ptr(),
                out.len(),
            )
        };
        Ok(())
    }
    fn slot_device_ptr(&self, _slot: usize) -> Option<u64> {
        None
    }
    fn counters(&self) -> IngestCounters {
        IngestCounters::default()
    }
}

impl Drop for Twin {
    fn drop(&mut self) {
        for p in self.slots.iter().chain(&self.staging) {
            // SAFETY: made by Box::into_raw in `alloc`, freed once.
            drop(unsafe { Box::from_raw(*p) });
        }
    }
}

#[test]
fn launch_and_cpu_copy_paths_pass_the_selfcheck() {
    for mode in [IngestMode::Launch, IngestMode::CpuCopy] {
        // Descriptors per entry: 5 cuts listed copies into many launches (no conversions or
        // strided images then, as those must fit one entry), 700 (11 KiB) cuts strided copy
        // entries by images; 4096 with conversions.
        for (blocks, max_frags, convert, strided) in [
            (3, 5, false, false),
            (2, 700, false, true),
            (4, 4096, true, true),
            (1, 4096, true, true),
        ] {
            let mut twin = Twin::new(mode, blocks, 3, max_frags);
            let opts = SelfCheckOptions {
                rounds: 8,
                convert,
                strided,
                ..SelfCheckOptions::default()
            };
            let rep = selfcheck::run(&mut twin, &opts).expect("self-check ran");
            assert!(rep.passed(), "{mode} {blocks}/{max_frags}: {rep}");
            if convert {
                assert!(rep.converted_images > 0, "{rep}");
            }
            assert_eq!(rep.strided_images > 0, strided, "{rep}");
        }
    }
}
