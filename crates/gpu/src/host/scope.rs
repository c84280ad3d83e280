//! [`Scope`]: jobs borrowing their buffers, waited for before the scope ends; and the launch
//! mode's one-shot twin [`gather_launch`].

use std::marker::PhantomData;

use super::{
    convert_params, describe, EntrySpec, Fragment, HostIngest, Normalize, SubmitError, Ticket,
};
use crate::ring::{self, RawEntry, RawFrag};

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
    pub(super) ingest: &'env HostIngest,
    pub(super) _scope: PhantomData<&'scope mut &'scope ()>,
    pub(super) _env: PhantomData<&'env mut &'env ()>,
}

impl<'scope> Scope<'scope, '_> {
    /// Submits a copy job: each fragment's bytes land at `dst[dst_offset..][..len]`.
    /// Fragments may come in any order; they must not overlap in `dst`.
    pub fn submit(
        &self,
        frags: &[Fragment<'scope>],
        dst: &'scope mut [u8],
    ) -> Result<Ticket, SubmitError> {
        let descs = describe_frags(frags, dst.len())?;
        Ok(self.ingest.publish(EntrySpec {
            dst: dst.as_mut_ptr() as u64,
            dst_len: dst.len() as u64,
            descs,
            ..EntrySpec::default()
        }))
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
        let descs = describe_frags(frags, n)?;
        Ok(self.ingest.publish(EntrySpec {
            dst: dst.as_mut_ptr() as u64,
            dst_len: std::mem::size_of_val(dst) as u64,
            descs,
            strided: Vec::new(),
            convert: Some(params),
        }))
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
    let descs = describe_frags(frags, dst.len())?;
    // SAFETY: all-zero is a valid RawEntry (integers, floats, an atomic).
    let mut entry: Box<RawEntry> = Box::new(unsafe { std::mem::zeroed() });
    entry.head.nfrags = descs.len() as u32;
    entry.head.dst = dst.as_mut_ptr() as u64;
    entry.dst_len = dst.len() as u64;
    entry.head.frags = descs.as_ptr() as u64;
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

/// [`describe`] of a job's fragments against a slot of `slot_len` bytes.
fn describe_frags(frags: &[Fragment<'_>], slot_len: usize) -> Result<Vec<RawFrag>, SubmitError> {
    describe(
        frags
            .iter()
            .map(|f| (f.src.as_ptr(), f.src.len(), f.dst_offset)),
        frags.len(),
        slot_len,
    )
}
