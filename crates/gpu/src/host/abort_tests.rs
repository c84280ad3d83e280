//! The ABORT path of the resident loop (gather.cuh), on its host build: a grid whose blocks are
//! not all running (the GPU case: a block that is not co-resident) must still stop when the
//! host sets `quit = ABORT`, where `quit = DRAIN` leaves block 0 waiting in the handoff.
//!
//! "Not co-resident" is played by starting only some of the block threads; a late block is
//! started after the others stopped, as a GPU schedules it once the others exit.

use std::sync::atomic::{fence, AtomicU32, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::{spawn_block, write_entry, EntrySpec};
use crate::ring::{RawEntry, RawFrag, RawGridCtl, RawRing, QUIT_ABORT, QUIT_DRAIN, STATE_READY};

/// A ring of two entries with one READY entry (one 64-byte fragment), and its control block.
struct Grid {
    ring: Box<RawRing>,
    entries: Box<[RawEntry; 2]>,
    ctl: Box<RawGridCtl>,
    src: Vec<u8>,
    dst: Vec<u8>,
}

impl Grid {
    fn with_one_ready_entry() -> Self {
        // SAFETY: all-zero values of these plain C structs (integers, floats, atomics) are valid.
        let mut g = unsafe {
            Grid {
                ring: Box::new(std::mem::zeroed()),
                entries: Box::new(std::mem::zeroed()),
                ctl: Box::new(std::mem::zeroed()),
                src: (0..64).collect(),
                dst: vec![0; 64],
            }
        };
        g.ring.nentries = 2;
        g.ring.entries = g.entries.as_ptr() as u64;
        let spec = EntrySpec {
            dst: g.dst.as_mut_ptr() as u64,
            dst_len: 64,
            descs: vec![RawFrag {
                src: g.src.as_ptr() as u64,
                len: 64,
                dst_off: 0,
            }],
            ..EntrySpec::default()
        };
        // SAFETY: entry 0 belongs to us (no block runs yet); its descriptor goes inline.
        unsafe { write_entry(&mut g.entries[0], 0, &spec, 0, true) };
        fence(Ordering::SeqCst);
        g.entries[0].state.store(STATE_READY, Ordering::Release);
        g
    }

    /// Starts block `bid` of `nblocks`.
    fn block(&mut self, bid: u32, nblocks: u32) -> JoinHandle<()> {
        // SAFETY: every test joins its block threads before the grid is dropped.
        unsafe { spawn_block(&*self.ring, &mut *self.ctl, bid, nblocks) }
    }

    fn quit(&self, how: u32) {
        self.ring.quit.store(how, Ordering::Release);
    }

    /// The control block's `gen` and `stop`, read atomically (the blocks write them with
    /// atomic_ref on the host build).
    fn gen_stop(&self) -> (u32, u32) {
        let ctl = &*self.ctl as *const RawGridCtl as *mut RawGridCtl;
        // SAFETY: aligned u32 fields of a live allocation, accessed only atomically while
        // block threads run.
        unsafe {
            (
                AtomicU32::from_ptr(std::ptr::addr_of_mut!((*ctl).gen)).load(Ordering::Acquire),
                AtomicU32::from_ptr(std::ptr::addr_of_mut!((*ctl).stop)).load(Ordering::Acquire),
            )
        }
    }
}

/// Joins `t` if it finishes within `limit` (a guard against hanging the test run, not a
/// timing assertion: the blocks stop in microseconds when correct).
fn join_within(t: JoinHandle<()>, limit: Duration) -> bool {
    let start = Instant::now();
    while !t.is_finished() {
        if start.elapsed() > limit {
            return false;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    t.join().expect("block thread panicked");
    true
}

const HANG: Duration = Duration::from_secs(20);

#[test]
fn abort_releases_block_0_from_a_handoff_a_block_never_reaches() {
    let mut g = Grid::with_one_ready_entry();
    // Block 1 of 2 is "not resident": block 0 broadcasts the entry, copies its share and
    // waits for block 1's count.
    let b0 = g.block(0, 2);
    let start = Instant::now();
    while g.gen_stop().0 == 0 {
        assert!(
            start.elapsed() < HANG,
            "block 0 never broadcast the READY entry"
        );
        std::thread::yield_now();
    }
    // DRAIN does not end a handoff: block 0 keeps waiting for block 1.
    g.quit(QUIT_DRAIN);
    std::thread::sleep(Duration::from_millis(50));
    assert!(
        !b0.is_finished(),
        "DRAIN must not abandon an entry in progress"
    );
    g.quit(QUIT_ABORT);
    assert!(join_within(b0, HANG), "block 0 did not stop on ABORT");
    let (gen, stop) = g.gen_stop();
    assert_eq!(
        (gen, stop),
        (2, 1),
        "block 0 must broadcast stop as a new generation"
    );
    assert_eq!(
        g.entries[0].state.load(Ordering::Acquire),
        STATE_READY,
        "the abandoned entry must not be marked DONE"
    );
    assert_eq!(g.ctl.entries_done, 0);
    // The late block, scheduled once the others exited, sees the stop and returns.
    let b1 = g.block(1, 2);
    assert!(join_within(b1, HANG), "a late block did not see the stop");
}

#[test]
fn abort_stops_blocks_whose_block_0_never_runs() {
    let mut g = Grid::with_one_ready_entry();
    // Block 0 is the one missing: blocks 1 and 2 wait for a broadcast that never comes.
    let others = [g.block(1, 3), g.block(2, 3)];
    g.quit(QUIT_ABORT);
    for b in others {
        assert!(
            join_within(b, HANG),
            "a block waiting for block 0 did not stop on ABORT"
        );
    }
    // Block 0 starting late copies its share of the READY entry, then gives up waiting for
    // the blocks that already left and stops.
    let b0 = g.block(0, 3);
    assert!(
        join_within(b0, HANG),
        "a late block 0 did not stop on ABORT"
    );
    assert_eq!(g.ctl.entries_done, 0);
    assert_eq!(g.entries[0].state.load(Ordering::Acquire), STATE_READY);
}
