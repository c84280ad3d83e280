//! Persistent worker threads fed one unit of [`Work`] at a time, in order: the host twin of a
//! CUDA stream that runs one kernel launch (or one async copy) per submission.
//!
//! The submitting thread writes the work into a ring cell it owns, bumps `published` and wakes
//! sleeping workers (a futex wake through the condvar, only when one sleeps): that is what a
//! "launch" costs it. Every worker runs its share, then counts itself in the cell's done
//! counter; the last one advances `completed`, the event the submitter polls. Threads are
//! started once, never per launch.

use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

use super::{backoff, EntrySpec};
use crate::host::Ticket;
use crate::ring::{self, RawEntry};

/// One launch: entries run by all workers (fragment `f` of an entry by worker `f mod n`, the
/// gather kernel's split), and plain copies (copy `i` by worker `i mod n`: the DMA engine).
#[derive(Default)]
pub(crate) struct Work {
    /// Ring entries built from `specs` (their descriptors point into `specs`).
    pub entries: Vec<RawEntry>,
    /// Owners of the entries' descriptor arrays (alive while the entries are in use).
    pub specs: Vec<EntrySpec>,
    /// `(src, dst, len)` copies.
    pub copies: Vec<(u64, u64, usize)>,
}

struct Shared {
    cells: Box<[UnsafeCell<Work>]>,
    done: Box<[AtomicU32]>,
    published: AtomicU64,
    completed: AtomicU64,
    sleepers: AtomicU32,
    quit: Mutex<bool>,
    wake: Condvar,
    nthreads: u32,
}

// SAFETY: a cell is written only by the submitter, and only while no worker can read it
// (launch `n` is written after launch `n - depth` completed, i.e. after every worker finished
// with the cell, and published with a release store workers acquire before reading). The
// pointers inside `Work` are plain integers whose targets the submitter keeps valid (the
// `Ingest::submit` contract).
unsafe impl Sync for Shared {}

/// `nthreads` persistent workers over a ring of `depth` launches.
pub(crate) struct Engine {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
    next: u64,
}

impl Engine {
    /// Starts the workers (named `name-<i>`).
    pub(crate) fn start(nthreads: u32, depth: u32, name: &str) -> Self {
        let shared = Arc::new(Shared {
            cells: (0..depth)
                .map(|_| UnsafeCell::new(Work::default()))
                .collect(),
            done: (0..depth).map(|_| AtomicU32::new(0)).collect(),
            published: AtomicU64::new(0),
            completed: AtomicU64::new(0),
            sleepers: AtomicU32::new(0),
            quit: Mutex::new(false),
            wake: Condvar::new(),
            nthreads,
        });
        let threads = (0..nthreads)
            .map(|bid| {
                let sh = Arc::clone(&shared);
                std::thread::Builder::new()
                    .name(format!("{name}-{bid}"))
                    .spawn(move || worker(&sh, bid))
                    .expect("spawn ingest worker thread")
            })
            .collect();
        Self {
            shared,
            threads,
            next: 0,
        }
    }

    /// Publishes `work` (waiting while `depth` launches are in flight) and wakes the workers.
    /// Returns its ticket, whether it had to wait, and the completed work its cell held (to
    /// recycle its allocations).
    pub(crate) fn launch(&mut self, work: Work) -> (Ticket, bool, Work) {
        let sh = &*self.shared;
        let depth = sh.cells.len() as u64;
        let n = self.next;
        let mut waited = false;
        let mut spins = 0u32;
        while n - sh.completed.load(Ordering::Acquire) >= depth {
            waited = true;
            backoff(&mut spins);
        }
        let idx = (n % depth) as usize;
        // SAFETY: launch `n - depth` used this cell and has completed (checked above), so no
        // worker reads it until `published` passes `n` below (see `Shared`).
        let old = std::mem::replace(unsafe { &mut *sh.cells[idx].get() }, work);
        sh.done[idx].store(0, Ordering::Relaxed);
        // SeqCst pairs with the workers' `sleepers` increment: either we see a sleeper and
        // notify under the lock, or it sees this launch before it waits.
        sh.published.store(n + 1, Ordering::SeqCst);
        if sh.sleepers.load(Ordering::SeqCst) > 0 {
            let _g = sh.quit.lock().unwrap_or_else(|e| e.into_inner());
            sh.wake.notify_all();
        }
        self.next = n + 1;
        (Ticket(n), waited, old)
    }

    /// True once the launch of `t` completed (the "event" query).
    pub(crate) fn is_done(&self, t: Ticket) -> bool {
        t.0 < self.shared.completed.load(Ordering::Acquire)
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        // Workers drain everything published before they see `quit`.
        *self.shared.quit.lock().unwrap_or_else(|e| e.into_inner()) = true;
        self.shared.wake.notify_all();
        for t in self.threads.drain(..) {
            t.join().expect("ingest worker thread panicked");
        }
    }
}

fn worker(sh: &Shared, bid: u32) {
    let depth = sh.cells.len() as u64;
    let n_threads = sh.nthreads as usize;
    let mut n = 0u64;
    while wait_for(sh, n) {
        let idx = (n % depth) as usize;
        // SAFETY: launch `n` is published (acquired in `wait_for`) and its cell is not written
        // again before every worker counted itself done (see `Shared`).
        let w = unsafe { &*sh.cells[idx].get() };
        for &(src, dst, len) in w.copies.iter().skip(bid as usize).step_by(n_threads) {
            // SAFETY: the submitter validated the copy (inside a slot, from a staging buffer it
            // keeps alive until completion); copies of one launch do not overlap.
            unsafe { std::ptr::copy_nonoverlapping(src as *const u8, dst as *mut u8, len) }
        }
        for e in &w.entries {
            // SAFETY: the entry and its descriptors live in the cell; its sources and
            // destination were validated by `plan` and stay valid until completion.
            unsafe { ring::netml_host_gather_block(e, bid, sh.nthreads) }
        }
        if sh.done[idx].fetch_add(1, Ordering::AcqRel) + 1 == sh.nthreads {
            sh.completed.fetch_max(n + 1, Ordering::Release);
        }
        n += 1;
    }
}

/// Waits until launch `n` is published (true) or quit was asked with nothing left (false).
fn wait_for(sh: &Shared, n: u64) -> bool {
    for spin in 0..256u32 {
        if sh.published.load(Ordering::Acquire) > n {
            return true;
        }
        if spin < 64 {
            std::hint::spin_loop();
        } else {
            std::thread::yield_now();
        }
    }
    let mut quit = sh.quit.lock().unwrap_or_else(|e| e.into_inner());
    sh.sleepers.fetch_add(1, Ordering::SeqCst);
    let published = loop {
        if sh.published.load(Ordering::SeqCst) > n {
            break true;
        }
        if *quit {
            break false;
        }
        quit = sh.wake.wait(quit).unwrap_or_else(|e| e.into_inner());
    };
    sh.sleepers.fetch_sub(1, Ordering::SeqCst);
    published
}
