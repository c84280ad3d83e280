//! An [`Intercept`] for the self-check on a GPU: the self-check's sources are ordinary
//! heap buffers, which the gather kernel cannot read (the pipeline's packet memory is
//! registered once at start; a test's many small buffers cannot be registered safely, as
//! registrations may not overlap and small buffers share pages). The wrapper copies every
//! fragment into mapped pinned memory at the same address modulo 64 (so the kernel meets the
//! same alignment cases) and submits the copies in the job's form (listed or strided; moved
//! strided pointer arrays are kept until their batch completed); everything else passes
//! through ([`Intercepted`]).

use netml_gpu::cuda::MappedPinned;
use netml_gpu::selfcheck::{Intercept, Intercepted};
use netml_gpu::{wait, ImageJob, Ingest, IngestError, RawFragment, Sources, SrcPtrs, Ticket};

/// See the module documentation.
pub struct Bounce<'a> {
    buf: &'a MappedPinned,
    used: usize,
    /// The last batch submitted: once it completed, every earlier one did too and the buffer
    /// can be reused from the start.
    last: Option<Ticket>,
    /// Strided pointer arrays of the batches in flight (freed with the buffer's reuse).
    held: Vec<Vec<*const u8>>,
}

// SAFETY: `held` holds addresses into `buf` that only the wrapped ingest reads (as the submit
// contract allows); everything else is `Send` already.
unsafe impl Send for Bounce<'_> {}

impl<'a> Bounce<'a> {
    /// Wraps `inner`, bouncing through `buf` (large enough for the batches in flight at once;
    /// it must outlive every batch, so drop the ingest first).
    pub fn new(inner: &'a mut dyn Ingest, buf: &'a MappedPinned) -> Intercepted<'a, Self> {
        let hook = Self {
            buf,
            used: 0,
            last: None,
            held: Vec::new(),
        };
        Intercepted { inner, hook }
    }
}

impl Intercept for Bounce<'_> {
    unsafe fn submit(
        &mut self,
        inner: &mut dyn Ingest,
        slot: usize,
        jobs: &[ImageJob<'_>],
    ) -> Result<Ticket, IngestError> {
        let need: usize = jobs
            .iter()
            .flat_map(|j| j.fragments.iter().map(|(_, len, _)| len + 64))
            .sum();
        if need > self.buf.len() {
            return Err(IngestError::Device(format!(
                "bounce buffer of {} bytes too small for a batch of {need}",
                self.buf.len()
            )));
        }
        if let Some(t) = self.last {
            if self.used + need > self.buf.len() {
                wait(inner, t)?;
            }
            if inner.poll(t)? {
                self.used = 0;
                self.held.clear();
            }
        }
        let base = self.buf.host_ptr();
        // Per image: the moved listed fragments, or the moved strided source pointers (the
        // same form goes to the GPU).
        let mut moved: Vec<(Vec<RawFragment>, Vec<*const u8>)> = Vec::with_capacity(jobs.len());
        for job in jobs {
            let (mut listed, mut srcs) = (Vec::new(), Vec::new());
            for (src, len, dst_offset) in job.fragments.iter() {
                let pos = self.used.div_ceil(64) * 64 + (src as usize % 64);
                // SAFETY: `pos + len <= used + need <= buf.len()` (the buffer is 64-byte
                // aligned); the source is readable (the caller's submit contract), and this
                // part of the buffer belongs to no batch in flight (reset only when all done).
                let dst = unsafe { base.add(pos) };
                unsafe { std::ptr::copy_nonoverlapping(src, dst, len) };
                self.used = pos + len;
                match job.fragments {
                    Sources::Listed(_) => listed.push(RawFragment {
                        src: dst,
                        len,
                        dst_offset,
                    }),
                    Sources::Strided { .. } => srcs.push(dst as *const u8),
                }
            }
            moved.push((listed, srcs));
        }
        let bounced: Vec<ImageJob<'_>> = jobs
            .iter()
            .zip(&moved)
            .map(|(j, (listed, srcs))| ImageJob {
                fragments: match j.fragments {
                    Sources::Listed(_) => Sources::Listed(listed),
                    Sources::Strided {
                        frag_size, total, ..
                    } => Sources::Strided {
                        srcs: SrcPtrs::new(srcs),
                        frag_size,
                        total,
                    },
                },
                ..*j
            })
            .collect();
        // SAFETY: the copies stay in `buf`, untouched until this batch completed (see above),
        // and the pointer arrays in `held` (heap buffers: moving the vectors keeps them put);
        // the slot contract is the caller's, passed on unchanged.
        let t = unsafe { inner.submit(slot, &bounced)? };
        drop(bounced);
        self.held.extend(
            moved
                .into_iter()
                .map(|(_, srcs)| srcs)
                .filter(|s| !s.is_empty()),
        );
        self.last = Some(t);
        Ok(t)
    }
}
