//! [`HostIngest`]: host threads as blocks of the resident gather kernel, fed by the doorbell ring.

use std::alloc::{alloc_zeroed, dealloc, Layout};
use std::fmt;
use std::marker::PhantomData;
use std::sync::atomic::{fence, AtomicU32, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::ring::{
    self, RawEntry, RawFrag, RawGridCtl, RawRing, FLAG_CONVERT, INLINE_FRAGS, MAX_CHANNELS,
    STATE_DONE, STATE_FREE, STATE_READY,
};

/// One fragment of a job: its payload and where it lands in the gathered image (byte offset;
/// for the conversion, the offset in the u8 HWC image).
#[derive(Clone, Copy, Debug)]
pub struct Fragment<'a> {
    pub src: &'a [u8],
    pub dst_offset: usize,
}

/// u8 HWC -> f32 CHW normalisation: `out[c][h][w] = (x / 255 - mean[c]) / std[c]`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Normalize {
    pub channels: u32,
    pub height: u32,
    pub width: u32,
    pub mean: [f32; MAX_CHANNELS],
    pub std: [f32; MAX_CHANNELS],
}

/// Completion handle of one submitted job (the ring sequence number).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ticket(pub(crate) u64);

impl Ticket {
    /// The job's sequence number (tickets complete in this order).
    pub fn seq(self) -> u64 {
        self.0
    }
}

/// Why a job was refused (nothing was submitted).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SubmitError {
    /// A fragment ends past the destination slot.
    OutOfBounds { fragment: usize },
    /// Two fragments write the same destination bytes.
    Overlap { first: usize, second: usize },
    /// A length, offset or count does not fit the ring's 32-bit fields.
    TooLarge,
    /// Invalid normalisation (channels not in 1..=4, zero/non-finite std, slot size mismatch).
    BadNormalize,
}

impl fmt::Display for SubmitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::OutOfBounds { fragment } => write!(f, "fragment {fragment} ends past the slot"),
            Self::Overlap { first, second } => {
                write!(f, "fragments {first} and {second} overlap in the slot")
            }
            Self::TooLarge => f.write_str("job does not fit the ring's 32-bit fields"),
            Self::BadNormalize => f.write_str("invalid normalisation parameters"),
        }
    }
}

impl std::error::Error for SubmitError {}

/// Counters read after the consumer stopped.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IngestStats {
    /// Entries the consumer completed.
    pub entries_done: u64,
    /// READY entries seen with an unexpected sequence number (a protocol bug if not 0).
    pub seq_errors: u32,
}

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

// SAFETY: the pointers stay valid until the thread is joined (HostIngest joins its threads
// before freeing the ring), and all cross-thread access through them follows the ring protocol
// (atomics + fences in gather.cuh).
unsafe impl Send for BlockArgs {}

struct Producer {
    /// Next ticket to hand out.
    next: u64,
    /// Tickets below this are complete and their entries FREE again.
    retired: u64,
    /// Out-of-line descriptor arrays of in-flight entries (index = ring slot).
    descs: Vec<Option<Vec<RawFrag>>>,
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
            let args = BlockArgs {
                ring: me.ring.ptr,
                ctl: me.ctl.ptr,
                bid,
                nblocks: n_blocks,
            };
            let t = std::thread::Builder::new()
                .name(format!("netml-gather-{bid}"))
                .spawn(move || {
                    let a = args;
                    // SAFETY: see `BlockArgs`: valid ring/ctl until this thread is joined.
                    unsafe { ring::netml_host_block_loop(a.ring, a.ctl, a.bid, a.nblocks) }
                })
                .expect("spawn gather block thread");
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
        Ok(self.publish(descs, dst as u64, dst_len as u64, None))
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
        unsafe { &(*self.ring.ptr).quit }.store(1, Ordering::Release);
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
                if p.spare.len() < 4 {
                    p.spare.push(d);
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

    /// Entries published and not yet reaped (reaps first); `ring_entries()` means full.
    pub(crate) fn in_flight(&self) -> u64 {
        let mut p = self.lock();
        self.reap(&mut p);
        p.next - p.retired
    }

    /// Producer: waits for a FREE entry, writes it, fences and publishes READY.
    ///
    /// The caller guarantees what [`submit_raw`](Self::submit_raw) requires of `descs` and
    /// `dst[..dst_len]` (validated by [`describe`]; for a conversion, `dst` holds the f32 CHW
    /// tensor of `params`).
    pub(crate) fn publish(
        &self,
        descs: Vec<RawFrag>,
        dst: u64,
        dst_len: u64,
        convert: Option<ConvertParams>,
    ) -> Ticket {
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
        let e = self.entry(idx);
        let nfrags = descs.len() as u32;
        let mut inline = [RawFrag::default(); INLINE_FRAGS];
        let frags_addr = if descs.len() <= INLINE_FRAGS {
            inline[..descs.len()].copy_from_slice(&descs);
            p.descs[idx] = None;
            0
        } else {
            let a = descs.as_ptr() as u64;
            p.descs[idx] = Some(descs);
            a
        };
        let (flags, channels, hw, scale, bias) = match convert {
            Some((c, hw, s, b)) => (FLAG_CONVERT, c, hw, s, b),
            None => (0, 0, 0, [0.0; MAX_CHANNELS], [0.0; MAX_CHANNELS]),
        };
        // SAFETY: the entry is FREE, i.e. owned by the producer (whose mutex we hold): the
        // consumer reads no field but `state` until it sees READY with this seq.
        unsafe {
            (*e).seq = seq as u32;
            (*e).nfrags = nfrags;
            (*e).flags = flags;
            (*e).dst = dst;
            (*e).frags = frags_addr;
            (*e).channels = channels;
            (*e).hw = hw;
            (*e).scale = scale;
            (*e).bias = bias;
            (*e).dst_len = dst_len;
            (*e).inline_frags = inline;
        }
        fence(Ordering::SeqCst);
        self.state(idx).store(STATE_READY, Ordering::Release);
        p.next += 1;
        Ticket(seq)
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

/// Submission handle of [`HostIngest::scope`]: jobs borrow their buffers for `'scope`, and the
/// scope waits for all of them before it ends.
///
/// ```
/// use netml_gpu::{Fragment, HostIngest};
/// let ingest = HostIngest::start(2, 4);
/// let (a, b) = ([1u8; 3], [2u8; 5]);
/// let mut slot = [0u8; 8];
/// ingest.scope(|s| {
///     let frags = [Fragment { src: &b, dst_offset: 3 }, Fragment { src: &a, dst_offset: 0 }];
///     let t = s.submit(&frags, &mut slot).unwrap();
///     s.wait(t);
/// });
/// assert_eq!(slot, [1, 1, 1, 2, 2, 2, 2, 2]);
/// ingest.stop();
/// ```
///
/// A slot must outlive the scope:
/// ```compile_fail,E0597
/// # use netml_gpu::{Fragment, HostIngest};
/// let ingest = HostIngest::start(1, 2);
/// let data = [1u8; 4];
/// ingest.scope(|s| {
///     let mut local = vec![0u8; 4];
///     s.submit(&[Fragment { src: &data, dst_offset: 0 }], &mut local).unwrap();
/// });
/// ```
///
/// and cannot be touched while the scope may still be writing it:
/// ```compile_fail,E0499
/// # use netml_gpu::{Fragment, HostIngest};
/// let ingest = HostIngest::start(1, 2);
/// let data = [1u8; 4];
/// let mut outer = vec![0u8; 4];
/// ingest.scope(|s| {
///     s.submit(&[Fragment { src: &data, dst_offset: 0 }], &mut outer).unwrap();
///     outer[0] = 3;
/// });
/// ```
pub struct Scope<'scope, 'env: 'scope> {
    ingest: &'env HostIngest,
    _scope: PhantomData<&'scope mut &'scope ()>,
    _env: PhantomData<&'env mut &'env ()>,
}

impl<'scope> Scope<'scope, '_> {
    /// Submits a copy job: each fragment's bytes land at `dst[dst_offset..][..len]`.
    /// Fragments may come in any order; they must not overlap in `dst`.
    pub fn submit(
        &self,
        frags: &[Fragment<'scope>],
        dst: &'scope mut [u8],
    ) -> Result<Ticket, SubmitError> {
        let descs = describe(
            frags
                .iter()
                .map(|f| (f.src.as_ptr(), f.src.len(), f.dst_offset)),
            frags.len(),
            dst.len(),
        )?;
        let (ptr, len) = (dst.as_mut_ptr(), dst.len());
        Ok(self.ingest.publish(descs, ptr as u64, len as u64, None))
    }

    /// Submits a conversion job: fragments of a u8 HWC image (`dst_offset` in that image)
    /// become the f32 CHW tensor `dst` (`channels * height * width` values).
    pub fn submit_convert(
        &self,
        frags: &[Fragment<'scope>],
        norm: &Normalize,
        dst: &'scope mut [f32],
    ) -> Result<Ticket, SubmitError> {
        let (n, params) = convert_params(norm)?;
        if dst.len() != n {
            return Err(SubmitError::BadNormalize);
        }
        let descs = describe(
            frags
                .iter()
                .map(|f| (f.src.as_ptr(), f.src.len(), f.dst_offset)),
            frags.len(),
            n,
        )?;
        let ptr = dst.as_mut_ptr();
        let bytes = std::mem::size_of_val(dst) as u64;
        Ok(self.ingest.publish(descs, ptr as u64, bytes, Some(params)))
    }

    /// True once the job of `t` is complete.
    pub fn poll(&self, t: Ticket) -> bool {
        self.ingest.poll(t)
    }

    /// Waits until the job of `t` is complete.
    pub fn wait(&self, t: Ticket) {
        self.ingest.wait(t)
    }
}

/// The "launch" mode's host twin: one job, gathered by `n_blocks` freshly spawned threads
/// running the one-shot kernel body (`gather_launch` in gather.cu), no ring involved.
pub fn gather_launch(
    n_blocks: u32,
    frags: &[Fragment<'_>],
    dst: &mut [u8],
) -> Result<(), SubmitError> {
    assert!(n_blocks > 0, "need at least one block");
    let descs = describe(
        frags
            .iter()
            .map(|f| (f.src.as_ptr(), f.src.len(), f.dst_offset)),
        frags.len(),
        dst.len(),
    )?;
    // SAFETY: all-zero is a valid RawEntry (integers, floats, an atomic).
    let mut entry: Box<RawEntry> = Box::new(unsafe { std::mem::zeroed() });
    entry.nfrags = descs.len() as u32;
    entry.dst = dst.as_mut_ptr() as u64;
    entry.dst_len = dst.len() as u64;
    entry.frags = descs.as_ptr() as u64;
    struct EntryPtr(*const RawEntry);
    // SAFETY: the entry, the descriptors, the sources and `dst` outlive the scoped threads
    // (joined before this function returns); the threads write disjoint parts of `dst`
    // (overlaps were refused by `describe`), and nothing else touches them meanwhile.
    unsafe impl Send for EntryPtr {}
    unsafe impl Sync for EntryPtr {}
    let e = EntryPtr(&*entry);
    std::thread::scope(|s| {
        for bid in 0..n_blocks {
            let e = &e;
            s.spawn(move || {
                // SAFETY: see `EntryPtr`.
                unsafe { ring::netml_host_gather_block(e.0, bid, n_blocks) }
            });
        }
    });
    drop(descs);
    Ok(())
}

/// Conversion constants of an entry: channels, H * W, `scale[c]`, `bias[c]`.
pub(crate) type ConvertParams = (u32, u32, [f32; MAX_CHANNELS], [f32; MAX_CHANNELS]);

/// Validates `norm` and derives the entry's constants; also returns the pixel count
/// `C * H * W` (bytes of the u8 HWC image, f32 values of the CHW tensor).
pub(crate) fn convert_params(norm: &Normalize) -> Result<(usize, ConvertParams), SubmitError> {
    let c = norm.channels as usize;
    let hw = (norm.height as usize)
        .checked_mul(norm.width as usize)
        .ok_or(SubmitError::TooLarge)?;
    let n = hw.checked_mul(c).ok_or(SubmitError::TooLarge)?;
    if !(1..=MAX_CHANNELS).contains(&c) {
        return Err(SubmitError::BadNormalize);
    }
    let hw32 = u32::try_from(hw).map_err(|_| SubmitError::TooLarge)?;
    let (mut scale, mut bias) = ([0.0f32; MAX_CHANNELS], [0.0f32; MAX_CHANNELS]);
    for i in 0..c {
        let (m, s) = (norm.mean[i], norm.std[i]);
        if !(m.is_finite() && s.is_finite() && s != 0.0) {
            return Err(SubmitError::BadNormalize);
        }
        scale[i] = 1.0 / (255.0 * s);
        bias[i] = -m / s;
    }
    Ok((n, (c as u32, hw32, scale, bias)))
}

/// Validates a job against a slot of `slot_len` bytes and builds its descriptors.
pub(crate) fn describe(
    frags: impl Iterator<Item = (*const u8, usize, usize)>,
    count: usize,
    slot_len: usize,
) -> Result<Vec<RawFrag>, SubmitError> {
    let mut descs = Vec::with_capacity(count);
    describe_into(frags, count, slot_len, 0, &mut descs)?;
    Ok(descs)
}

/// What [`describe_into`] saw of a valid job.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Described {
    /// Smallest start and largest end of the non-empty fragments (unshifted), if any.
    pub extent: Option<(usize, usize)>,
    /// Payload bytes.
    pub bytes: u64,
}

/// [`describe`], appending to `out` with every `dst_off` shifted by `shift` (where the job
/// starts in a larger buffer; `shift + slot_len` must fit the 32-bit offsets). On error `out`
/// is left as it was. Fragments in destination order (what the verifier hands over) are
/// checked for overlaps in one pass; only out-of-order jobs pay for a sort.
pub(crate) fn describe_into(
    frags: impl Iterator<Item = (*const u8, usize, usize)>,
    count: usize,
    slot_len: usize,
    shift: usize,
    out: &mut Vec<RawFrag>,
) -> Result<Described, SubmitError> {
    u32::try_from(count).map_err(|_| SubmitError::TooLarge)?;
    let start = out.len();
    let r = describe_checked(frags, slot_len, shift, out);
    if r.is_err() {
        out.truncate(start);
    }
    r
}

fn describe_checked(
    frags: impl Iterator<Item = (*const u8, usize, usize)>,
    slot_len: usize,
    shift: usize,
    out: &mut Vec<RawFrag>,
) -> Result<Described, SubmitError> {
    let first = out.len();
    let (mut d, mut in_order, mut prev_end) = (Described::default(), true, 0usize);
    for (i, (src, len, off)) in frags.enumerate() {
        let end = off
            .checked_add(len)
            .ok_or(SubmitError::OutOfBounds { fragment: i })?;
        if end > slot_len {
            return Err(SubmitError::OutOfBounds { fragment: i });
        }
        let len32 = u32::try_from(len).map_err(|_| SubmitError::TooLarge)?;
        let off32 = u32::try_from(off + shift).map_err(|_| SubmitError::TooLarge)?;
        if len > 0 {
            in_order &= off >= prev_end;
            prev_end = end;
            d.extent = Some(
                d.extent
                    .map_or((off, end), |(a, b)| (a.min(off), b.max(end))),
            );
            d.bytes += len as u64;
        }
        out.push(RawFrag {
            src: src as u64,
            len: len32,
            dst_off: off32,
        });
    }
    if !in_order {
        let mut ranges: Vec<(u64, u64, usize)> = out[first..]
            .iter()
            .enumerate()
            .filter(|(_, f)| f.len > 0)
            .map(|(i, f)| {
                let a = u64::from(f.dst_off);
                (a, a + u64::from(f.len), i)
            })
            .collect();
        ranges.sort_unstable();
        for w in ranges.windows(2) {
            if w[1].0 < w[0].1 {
                let (a, b) = (w[0].2.min(w[1].2), w[0].2.max(w[1].2));
                return Err(SubmitError::Overlap {
                    first: a,
                    second: b,
                });
            }
        }
    }
    Ok(d)
}

fn backoff(spins: &mut u32) {
    *spins += 1;
    if *spins < 64 {
        std::hint::spin_loop();
    } else if *spins < 2048 {
        std::thread::yield_now();
    } else {
        std::thread::sleep(Duration::from_micros(20));
    }
}
