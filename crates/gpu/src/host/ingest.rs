//! The host build of the resident gather kernel and the producer side of its doorbell ring.

use std::alloc::{alloc_zeroed, dealloc, Layout};
use std::fmt;
use std::marker::PhantomData;
use std::sync::atomic::{fence, AtomicU32, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::thread::JoinHandle;

use super::{
    backoff, describe, write_entry, EntrySpec, Fragment, IngestStats, Normalize, Scope,
    SubmitError, Ticket,
};
use crate::ring::{
    self, RawEntry, RawFrag, RawGridCtl, RawRing, STATE_DONE, STATE_FREE, STATE_READY,
};

/// A zeroed, 64-byte aligned allocation holding one value or array of `T`.
struct Shared<T> {
    ptr: *mut T,
    layout: Layout,
}

impl<T> Shared<T> {
    fn zeroed(n: usize) -> Self {
        let layout = Layout::array::<T>(n)
            .and_then(|l| l.align_to(64))
            .expect("ring layout");
        assert!(layout.size() > 0);
        // SAFETY: the layout has a non-zero size; all our `T`s (integers, floats, atomics and
        // arrays of them) are valid when zeroed.
        let ptr = unsafe { alloc_zeroed(layout) } as *mut T;
        if ptr.is_null() {
            std::alloc::handle_alloc_error(layout);
        }
        Self { ptr, layout }
    }
}

impl<T> Drop for Shared<T> {
    fn drop(&mut self) {
        // SAFETY: allocated in `zeroed` with this layout; freed once.
        unsafe { dealloc(self.ptr as *mut u8, self.layout) }
    }
}

/// Raw pointers handed to a block thread.
struct BlockArgs {
    ring: *const RawRing,
    ctl: *mut RawGridCtl,
    bid: u32,
    nblocks: u32,
}

// SAFETY: the pointers stay valid until the thread is joined (`spawn_block`'s contract), and
// all cross-thread access through them follows the ring protocol (atomics + fences in
// gather.cuh).
unsafe impl Send for BlockArgs {}

/// Starts block `bid` of `nblocks`: a thread named `netml-gather-{bid}` running the kernel's
/// host block loop over `ring` and `ctl`.
///
/// # Safety
/// `ring` (with its entries) and `ctl` stay valid until the thread is joined.
///
/// # Panics
/// If the thread cannot be spawned.
pub(crate) unsafe fn spawn_block(
    ring: *const RawRing,
    ctl: *mut RawGridCtl,
    bid: u32,
    nblocks: u32,
) -> JoinHandle<()> {
    let args = BlockArgs {
        ring,
        ctl,
        bid,
        nblocks,
    };
    std::thread::Builder::new()
        .name(format!("netml-gather-{bid}"))
        .spawn(move || {
            let a = args;
            // SAFETY: see `BlockArgs`: valid ring/ctl until this thread is joined.
            unsafe { ring::netml_host_block_loop(a.ring, a.ctl, a.bid, a.nblocks) }
        })
        .expect("spawn gather block thread")
}

struct Producer {
    /// Next ticket to hand out.
    next: u64,
    /// Tickets below this are complete and their entries FREE again.
    retired: u64,
    /// Specs of in-flight entries whose arrays are out of line (index = ring slot).
    descs: Vec<Option<EntrySpec>>,
    /// Arrays of reaped entries, kept for reuse ([`HostIngest::spare_descs`]): fresh large
    /// allocations for every batch cost page faults.
    spare: Vec<Vec<RawFrag>>,
}

/// The host build of the resident gather kernel: `n_blocks` host threads run the kernel's loop
/// (`netml_resident_loop` in gather.cuh) over a ring of `ring_entries` doorbell entries.
///
/// Jobs are submitted inside [`HostIngest::scope`] (borrowed buffers, waited for before the
/// scope returns) or with the unsafe [`HostIngest::submit_raw`]. Completion is in ticket order.
pub struct HostIngest {
    ring: Shared<RawRing>,
    entries: Shared<RawEntry>,
    ctl: Shared<RawGridCtl>,
    nentries: u32,
    n_blocks: u32,
    threads: Vec<JoinHandle<()>>,
    producer: Mutex<Producer>,
}

// SAFETY: the raw allocations are shared with the block threads under the ring protocol; the
// producer side is serialised by the `producer` mutex; `ctl` is only read after the join.
unsafe impl Send for HostIngest {}
// SAFETY: as above; every `&self` method goes through the mutex or atomics.
unsafe impl Sync for HostIngest {}

impl HostIngest {
    /// Starts `n_blocks` block threads over a fresh ring of `ring_entries` entries.
    ///
    /// # Panics
    /// If `n_blocks` or `ring_entries` is 0, or a thread cannot be spawned.
    pub fn start(n_blocks: u32, ring_entries: u32) -> Self {
        assert!(
            n_blocks > 0 && ring_entries > 0,
            "need at least one block and one entry"
        );
        let ring = Shared::<RawRing>::zeroed(1);
        let entries = Shared::<RawEntry>::zeroed(ring_entries as usize);
        let ctl = Shared::<RawGridCtl>::zeroed(1);
        // SAFETY: `ring.ptr` is a fresh, exclusively owned allocation; no thread runs yet.
        unsafe {
            (*ring.ptr).nentries = ring_entries;
            (*ring.ptr).entries = entries.ptr as u64;
        }
        let mut me = Self {
            ring,
            entries,
            ctl,
            nentries: ring_entries,
            n_blocks,
            threads: Vec::with_capacity(n_blocks as usize),
            producer: Mutex::new(Producer {
                next: 0,
                retired: 0,
                descs: (0..ring_entries).map(|_| None).collect(),
                spare: Vec::new(),
            }),
        };
        fence(Ordering::SeqCst);
        for bid in 0..n_blocks {
            // SAFETY: HostIngest joins its threads before freeing the ring and ctl.
            let t = unsafe { spawn_block(me.ring.ptr, me.ctl.ptr, bid, n_blocks) };
            me.threads.push(t);
        }
        me
    }

    /// Number of host blocks.
    pub fn n_blocks(&self) -> u32 {
        self.n_blocks
    }

    /// Number of ring entries.
    pub fn ring_entries(&self) -> u32 {
        self.nentries
    }

    /// Runs `f` with a [`Scope`] whose jobs may borrow buffers living outside the call; every
    /// job submitted (by anyone) before `scope` returns is complete when it returns, also when
    /// `f` panics.
    pub fn scope<'env, F, T>(&'env self, f: F) -> T
    where
        F: for<'scope> FnOnce(&'scope Scope<'scope, 'env>) -> T,
    {
        struct Drain<'a>(&'a HostIngest);
        impl Drop for Drain<'_> {
            fn drop(&mut self) {
                self.0.wait_all();
            }
        }
        let _drain = Drain(self);
        let scope = Scope {
            ingest: self,
            _scope: PhantomData,
            _env: PhantomData,
        };
        f(&scope)
    }

    /// Gathers one job and waits for it.
    pub fn gather(&self, frags: &[Fragment<'_>], dst: &mut [u8]) -> Result<(), SubmitError> {
        self.scope(|s| s.submit(frags, dst).map(|t| s.wait(t)))
    }

    /// Converts one job (u8 HWC fragments -> f32 CHW) and waits for it.
    pub fn convert(
        &self,
        frags: &[Fragment<'_>],
        norm: &Normalize,
        dst: &mut [f32],
    ) -> Result<(), SubmitError> {
        self.scope(|s| s.submit_convert(frags, norm, dst).map(|t| s.wait(t)))
    }

    /// Submits a copy job whose buffers are raw pointers (e.g. mbuf payloads).
    ///
    /// # Safety
    /// Every `(src, len)` must be readable and `dst[..dst_len]` writable, with nothing else
    /// writing the sources or accessing the destination, until [`poll`](Self::poll) returned
    /// true for the ticket (or [`wait`](Self::wait) returned).
    pub unsafe fn submit_raw(
        &self,
        frags: &[(*const u8, usize, usize)],
        dst: *mut u8,
        dst_len: usize,
    ) -> Result<Ticket, SubmitError> {
        let descs = describe(frags.iter().copied(), frags.len(), dst_len)?;
        Ok(self.publish(EntrySpec {
            dst: dst as u64,
            dst_len: dst_len as u64,
            descs,
            ..EntrySpec::default()
        }))
    }

    /// True once the job of `t` is complete (its destination may be used again).
    pub fn poll(&self, t: Ticket) -> bool {
        let mut p = self.lock();
        self.reap(&mut p);
        t.0 < p.retired
    }

    /// Waits until the job of `t` is complete.
    pub fn wait(&self, t: Ticket) {
        let mut spins = 0u32;
        while !self.poll(t) {
            backoff(&mut spins);
        }
    }

    /// Waits until every job submitted so far is complete.
    pub fn wait_all(&self) {
        let last = self.lock().next;
        if last > 0 {
            self.wait(Ticket(last - 1));
        }
    }

    /// Sets the quit flag and joins the block threads (jobs already submitted are finished
    /// first). Returns the consumer's counters.
    pub fn stop(mut self) -> IngestStats {
        self.shutdown()
    }

    fn shutdown(&mut self) -> IngestStats {
        if self.threads.is_empty() {
            return IngestStats::default();
        }
        // SAFETY: `ring.ptr` is valid for the life of `self`; `quit` is atomic.
        unsafe { &(*self.ring.ptr).quit }.store(ring::QUIT_DRAIN, Ordering::Release);
        for t in self.threads.drain(..) {
            t.join().expect("gather block thread panicked");
        }
        fence(Ordering::SeqCst);
        // SAFETY: every block thread has been joined, so nothing else accesses `ctl`.
        let ctl = unsafe { &*self.ctl.ptr };
        IngestStats {
            entries_done: ctl.entries_done,
            seq_errors: ctl.seq_errors.load(Ordering::Relaxed),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Producer> {
        self.producer.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn entry(&self, idx: usize) -> *mut RawEntry {
        debug_assert!(idx < self.nentries as usize);
        // SAFETY: idx < nentries, inside the entries allocation.
        unsafe { self.entries.ptr.add(idx) }
    }

    fn state(&self, idx: usize) -> &AtomicU32 {
        // SAFETY: the entry is valid for the life of `self`; `state` is atomic.
        unsafe { &(*self.entry(idx)).state }
    }

    /// Producer retirement: DONE -> FREE, in ring order.
    fn reap(&self, p: &mut Producer) {
        while p.retired < p.next {
            let idx = (p.retired % self.nentries as u64) as usize;
            if self.state(idx).load(Ordering::Acquire) != STATE_DONE {
                break;
            }
            if let Some(d) = p.descs[idx].take() {
                if p.spare.len() < 4 && d.descs.capacity() > 0 {
                    p.spare.push(d.descs);
                }
            }
            self.state(idx).store(STATE_FREE, Ordering::Relaxed);
            p.retired += 1;
        }
    }

    /// An empty descriptor array for the next [`publish`](Self::publish), reusing the
    /// allocation of a reaped entry when there is one.
    pub(crate) fn spare_descs(&self) -> Vec<RawFrag> {
        let mut d = self.lock().spare.pop().unwrap_or_default();
        d.clear();
        d
    }

    /// Producer: waits for a FREE entry, writes it, fences and publishes READY.
    ///
    /// The caller guarantees what [`submit_raw`](Self::submit_raw) requires of the spec's
    /// sources (and strided `srcs` arrays) and of `dst[..dst_len]` (validated by `describe` or
    /// `host_modes::plan`; for a conversion, `dst` holds the f32 CHW tensor). The entry keeps
    /// the spec (its out-of-line array) until it is reaped.
    pub(crate) fn publish(&self, spec: EntrySpec) -> Ticket {
        self.publish_waited(spec).0
    }

    /// [`publish`](Self::publish), also telling whether it had to wait for a FREE entry.
    pub(crate) fn publish_waited(&self, spec: EntrySpec) -> (Ticket, bool) {
        let mut spins = 0u32;
        let mut p = loop {
            let mut p = self.lock();
            self.reap(&mut p);
            if p.next - p.retired < self.nentries as u64 {
                break p;
            }
            drop(p);
            backoff(&mut spins);
        };
        let seq = p.next;
        let idx = (seq % self.nentries as u64) as usize;
        assert_eq!(
            self.state(idx).load(Ordering::Acquire),
            STATE_FREE,
            "ring entry not FREE"
        );
        // SAFETY: the entry is FREE, i.e. owned by the producer (whose mutex we hold): the
        // consumer reads no field but `state` until it sees READY with this seq. The
        // out-of-line array is the spec's heap buffer, which stays put when the spec moves
        // into `p.descs` below and lives until the entry is reaped.
        unsafe { write_entry(self.entry(idx), seq as u32, &spec, spec.array_addr(), true) };
        p.descs[idx] = (!spec.is_inline()).then_some(spec);
        fence(Ordering::SeqCst);
        self.state(idx).store(STATE_READY, Ordering::Release);
        p.next += 1;
        (Ticket(seq), spins > 0)
    }
}

impl Drop for HostIngest {
    fn drop(&mut self) {
        self.shutdown();
    }
}

impl fmt::Debug for HostIngest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HostIngest")
            .field("n_blocks", &self.n_blocks)
            .field("ring_entries", &self.nentries)
            .finish_non_exhaustive()
    }
}
