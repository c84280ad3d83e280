//! The three ingest modes on the host ([`Target::Host`]): host threads stand in for the GPU's
//! blocks and copy engine, slots are 64-byte aligned host memory.
//!
//! * [`netml`]: the doorbell ring of [`HostIngest`](crate::HostIngest) (the resident loop).
//! * [`launch`]: one "launch" per batch, woken persistent block threads, a done counter for
//!   the event.
//! * [`cpu_copy`]: the submitting thread copies into staging, a copy-engine thread moves the
//!   staging to the slot (and converts, with the shared C code).
//!
//! What they share lives here: slot memory, the validation of a batch (through the same
//! `describe` as `HostIngest`), the ring entries a batch becomes, and the ticket book.

mod cpu_copy;
mod engine;
mod launch;
mod netml;

use std::alloc::{alloc_zeroed, dealloc, Layout};
use std::collections::VecDeque;

use crate::host::{convert_params, describe_into, ConvertParams, SubmitError, Ticket};
use crate::ingest::{ImageJob, Ingest, IngestConfig, IngestCounters, IngestError, IngestMode};
use crate::ring::{RawEntry, RawFrag, FLAG_CONVERT};

/// Starts the host implementation of `cfg.mode`.
pub(crate) fn open_host(cfg: &IngestConfig) -> Result<Box<dyn Ingest>, IngestError> {
    check_config(cfg)?;
    Ok(match cfg.mode {
        IngestMode::Netml => Box::new(netml::NetmlHost::new(cfg)),
        IngestMode::Launch => Box::new(launch::LaunchHost::new(cfg)),
        IngestMode::CpuCopy => Box::new(cpu_copy::CpuCopyHost::new(cfg)),
    })
}

fn check_config(cfg: &IngestConfig) -> Result<(), IngestError> {
    let bad = |why: &str| Err(IngestError::Device(format!("invalid ingest config: {why}")));
    if cfg.slots == 0 || cfg.slot_bytes == 0 {
        return bad("need at least one slot of at least one byte");
    }
    // Offsets inside a slot travel in the ring's 32-bit `dst_off` fields.
    if u32::try_from(cfg.slot_bytes).is_err() {
        return bad("slot_bytes must fit in 32 bits");
    }
    if cfg.blocks == 0 || cfg.ring_entries == 0 {
        return bad("need at least one block and one ring entry");
    }
    Ok(())
}

/// `slots` zeroed slots of `slot_bytes`, each starting 64-byte aligned.
pub(crate) struct SlotMem {
    ptr: *mut u8,
    layout: Layout,
    stride: usize,
    slot_bytes: usize,
}

// SAFETY: plain memory; who writes which slot when is governed by the tickets (a slot is only
// written by the mode's worker threads between its submit and its completion).
unsafe impl Send for SlotMem {}
// SAFETY: as above; `&SlotMem` hands out raw pointers only.
unsafe impl Sync for SlotMem {}

impl SlotMem {
    pub(crate) fn new(slots: usize, slot_bytes: usize) -> Self {
        let stride = slot_bytes.div_ceil(64) * 64;
        let layout = stride
            .checked_mul(slots)
            .and_then(|n| Layout::from_size_align(n, 64).ok())
            .expect("slot memory layout");
        // SAFETY: non-zero size (checked by `check_config`).
        let ptr = unsafe { alloc_zeroed(layout) };
        if ptr.is_null() {
            std::alloc::handle_alloc_error(layout);
        }
        Self {
            ptr,
            layout,
            stride,
            slot_bytes,
        }
    }

    /// Start of `slot` (the caller checked `slot < slots`).
    pub(crate) fn base(&self, slot: usize) -> *mut u8 {
        debug_assert!(self.stride * (slot + 1) <= self.layout.size());
        // SAFETY: inside the allocation (slot < slots).
        unsafe { self.ptr.add(self.stride * slot) }
    }

    /// Copies the start of `slot` into `out`.
    ///
    /// # Safety
    /// No worker may be writing `slot` (its last batch is complete).
    pub(crate) unsafe fn read(&self, slot: usize, out: &mut [u8]) {
        assert!(out.len() <= self.slot_bytes);
        // SAFETY: `out.len()` bytes of the slot are inside the allocation; per the caller,
        // nothing writes them meanwhile.
        unsafe { std::ptr::copy_nonoverlapping(self.base(slot), out.as_mut_ptr(), out.len()) }
    }
}

impl Drop for SlotMem {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout; freed once.
        unsafe { dealloc(self.ptr, self.layout) }
    }
}

/// One validated image: its descriptors `descs[start..end]` of the batch, where it lands in
/// the slot and, when converted, its u8 size and the conversion constants.
pub(crate) struct Image {
    pub offset: usize,
    pub start: usize,
    pub end: usize,
    pub convert: Option<(usize, ConvertParams)>,
}

/// A validated batch: nothing of it has been submitted yet.
pub(crate) struct Batch {
    /// Descriptors of all images, in image order. Without conversion anywhere in the batch
    /// their offsets are slot offsets (shifted by each image's offset); otherwise image offsets.
    pub descs: Vec<RawFrag>,
    pub images: Vec<Image>,
    pub bytes: u64,
    pub converts: bool,
}

/// Validates `jobs` for a slot of `slot_bytes`: every image with `describe_into` (the checks
/// of `HostIngest`) against the bytes from its offset to the end of the slot, conversions with
/// the same checks as `submit_convert` (and a 4-byte aligned `slot_offset`), and no two
/// images writing the same slot bytes ([`SubmitError::Overlap`]). Fragment indices in errors
/// count across the whole batch.
///
/// The descriptors go into `descs` (cleared first): pass a recycled allocation where there
/// is one, since fresh large ones cost page faults in every batch.
pub(crate) fn plan(
    jobs: &[ImageJob<'_>],
    slot_bytes: usize,
    mut descs: Vec<RawFrag>,
) -> Result<Batch, IngestError> {
    let converts = jobs.iter().any(|j| j.convert.is_some());
    let total = jobs.iter().map(|j| j.fragments.len()).sum();
    descs.clear();
    descs.reserve(total);
    let mut images = Vec::with_capacity(jobs.len());
    // Slot bytes each image writes: (start, end, its first fragment's batch-wide index).
    let mut extents = Vec::with_capacity(jobs.len());
    let mut bytes = 0u64;
    for job in jobs {
        let first = descs.len();
        let room = slot_bytes
            .checked_sub(job.slot_offset)
            .ok_or(SubmitError::OutOfBounds { fragment: first })?;
        let frags = job.fragments.iter().map(|f| (f.src, f.len, f.dst_offset));
        let n = job.fragments.len();
        let shift = if converts { 0 } else { job.slot_offset };
        let (d, convert) = match &job.convert {
            None => (describe_into(frags, n, room, shift, &mut descs), None),
            Some(norm) => {
                let (pixels, params) = convert_params(norm)?;
                // f32 stores: a misaligned tensor would fault on the GPU.
                let misaligned = job.slot_offset % 4 != 0;
                if misaligned || pixels.checked_mul(4).map_or(true, |b| b > room) {
                    return Err(SubmitError::BadNormalize.into());
                }
                let d = describe_into(frags, n, pixels, 0, &mut descs);
                (d, Some((pixels, params)))
            }
        };
        let d = d.map_err(|e| shift_error(e, first))?;
        let extent = match convert {
            Some((pixels, _)) => d.extent.map(|_| (0, 4 * pixels)),
            None => d.extent,
        };
        if let Some((a, b)) = extent {
            extents.push((job.slot_offset + a, job.slot_offset + b, first));
        }
        bytes += d.bytes;
        images.push(Image {
            offset: job.slot_offset,
            start: first,
            end: descs.len(),
            convert,
        });
    }
    u32::try_from(descs.len()).map_err(|_| SubmitError::TooLarge)?;
    extents.sort_unstable();
    if extents.windows(2).any(|w| w[1].0 < w[0].1) {
        // Images interleave: compare their fragments.
        cross_check(jobs, &images)?;
    }
    Ok(Batch {
        descs,
        images,
        bytes,
        converts,
    })
}

/// Overlap check between the images of a batch whose extents interleave (rare: slow path).
fn cross_check(jobs: &[ImageJob<'_>], images: &[Image]) -> Result<(), SubmitError> {
    let mut ranges = Vec::new();
    for (job, img) in jobs.iter().zip(images) {
        match img.convert {
            Some((pixels, _)) if img.end > img.start => {
                ranges.push((img.offset, img.offset + 4 * pixels, img.start))
            }
            Some(_) => {}
            None => ranges.extend(
                job.fragments
                    .iter()
                    .enumerate()
                    .filter(|(_, f)| f.len > 0)
                    .map(|(i, f)| {
                        let a = img.offset + f.dst_offset;
                        (a, a + f.len, img.start + i)
                    }),
            ),
        }
    }
    ranges.sort_unstable();
    match ranges.windows(2).find(|w| w[1].0 < w[0].1) {
        Some(w) => Err(SubmitError::Overlap {
            first: w[0].2.min(w[1].2),
            second: w[0].2.max(w[1].2),
        }),
        None => Ok(()),
    }
}

/// Renumbers the fragments of an image's error into the batch's numbering.
fn shift_error(e: SubmitError, first: usize) -> SubmitError {
    match e {
        SubmitError::OutOfBounds { fragment } => SubmitError::OutOfBounds {
            fragment: first + fragment,
        },
        SubmitError::Overlap {
            first: a,
            second: b,
        } => SubmitError::Overlap {
            first: first + a,
            second: first + b,
        },
        other => other,
    }
}

/// What one ring entry / launch entry carries.
pub(crate) struct EntrySpec {
    pub dst: u64,
    pub dst_len: u64,
    pub descs: Vec<RawFrag>,
    pub convert: Option<ConvertParams>,
}

/// The entries of a batch landing at `base` (a slot of `slot_bytes`): without conversion all
/// fragments of all images in one entry (the batch's descriptors as they are); with
/// conversion one entry per image.
pub(crate) fn entries_of(batch: Batch, base: *mut u8, slot_bytes: usize) -> Vec<EntrySpec> {
    if !batch.converts {
        return vec![EntrySpec {
            dst: base as u64,
            dst_len: slot_bytes as u64,
            descs: batch.descs,
            convert: None,
        }];
    }
    batch
        .images
        .iter()
        .map(|img| EntrySpec {
            dst: base as u64 + img.offset as u64,
            dst_len: match img.convert {
                Some((pixels, _)) => 4 * pixels as u64,
                None => (slot_bytes - img.offset) as u64,
            },
            descs: batch.descs[img.start..img.end].to_vec(),
            convert: img.convert.map(|(_, p)| p),
        })
        .collect()
}

/// A ring entry for the one-shot body (`netml_host_gather_block`): descriptors out of line
/// (the caller keeps `spec.descs` alive and unmoved while the entry is in use).
pub(crate) fn raw_entry(spec: &EntrySpec) -> RawEntry {
    // SAFETY: all-zero is a valid RawEntry (integers, floats, an atomic).
    let mut e: RawEntry = unsafe { std::mem::zeroed() };
    e.nfrags = spec.descs.len() as u32;
    e.dst = spec.dst;
    e.dst_len = spec.dst_len;
    e.frags = spec.descs.as_ptr() as u64;
    if let Some((c, hw, scale, bias)) = spec.convert {
        e.flags = FLAG_CONVERT;
        e.channels = c;
        e.hw = hw;
        e.scale = scale;
        e.bias = bias;
    }
    e
}

/// Tickets of the batches in flight, the last batch of every slot, and the counters.
pub(crate) struct Book {
    slot_last: Vec<Option<Ticket>>,
    pending: VecDeque<Ticket>,
    counters: IngestCounters,
}

impl Book {
    pub(crate) fn new(slots: usize) -> Self {
        Self {
            slot_last: vec![None; slots],
            pending: VecDeque::new(),
            counters: IngestCounters::default(),
        }
    }

    /// `Err(NoSuchSlot)` unless `slot` exists.
    pub(crate) fn check_slot(&self, slot: usize) -> Result<(), IngestError> {
        if slot < self.slot_last.len() {
            Ok(())
        } else {
            Err(IngestError::NoSuchSlot(slot))
        }
    }

    /// The last batch submitted into `slot`, if any.
    pub(crate) fn slot_last(&self, slot: usize) -> Option<Ticket> {
        self.slot_last[slot]
    }

    pub(crate) fn submitted(&mut self, slot: usize, t: Ticket, batch: (u64, u64), waited: bool) {
        self.slot_last[slot] = Some(t);
        self.pending.push_back(t);
        self.counters.batches_submitted += 1;
        self.counters.images += batch.0;
        self.counters.bytes += batch.1;
        self.counters.backpressure_waits += u64::from(waited);
    }

    /// Every batch up to and including `t` is complete (tickets complete in order).
    pub(crate) fn completed_through(&mut self, t: Ticket) {
        while self.pending.front().is_some_and(|&p| p <= t) {
            self.pending.pop_front();
            self.counters.batches_completed += 1;
        }
    }

    /// Counters, counting as completed the pending batches `done` says are complete.
    pub(crate) fn counters(&self, done: impl Fn(Ticket) -> bool) -> IngestCounters {
        let mut c = self.counters;
        c.batches_completed += self.pending.iter().take_while(|&&t| done(t)).count() as u64;
        c
    }
}

/// Spin, then yield, then sleep: waiting on host threads that share few cores.
pub(crate) fn backoff(spins: &mut u32) {
    *spins = spins.saturating_add(1);
    if *spins < 64 {
        std::hint::spin_loop();
    } else if *spins < 2048 {
        std::thread::yield_now();
    } else {
        std::thread::sleep(std::time::Duration::from_micros(20));
    }
}

/// Refuses a read larger than a slot (a caller bug) as an out-of-bounds request.
pub(crate) fn check_read(len: usize, slot_bytes: usize) -> Result<(), IngestError> {
    if len > slot_bytes {
        return Err(SubmitError::OutOfBounds { fragment: 0 }.into());
    }
    Ok(())
}
