//! `cpu-copy` mode, the baseline: the submitting thread copies every payload into pinned
//! staging laid out like the slot (one staging buffer per slot; `host_modes::stage`, the host
//! cpu-copy's code), then the bytes go to the slot with `cuMemcpyHtoDAsync` (one call per
//! contiguous run of written bytes: one per batch when images are packed back to back), and an
//! event after the batch is polled. The ingest around it is
//! [`StreamIngest`](super::streamed::StreamIngest).
//!
//! Conversion: the CPU stages the u8 HWC image (at the start of its f32 output range in the
//! staging buffer, laid out like the image), and `gather_launch` converts it into the slot,
//! reading the staging over PCIe through the image's own descriptors with their sources moved
//! to the staging. The conversion code is then the one of the other modes (gather.cuh), not a
//! second implementation, and the CPU still does all the packet copying, which is what this
//! baseline measures.

use cudarc::driver::sys;

use super::backoff;
use super::plan::Planned;
use super::slots::dev;
use super::streamed::StreamIngest;
use crate::host_modes::stage;
use crate::IngestError;

/// Waits until the last batch of `slot` completed (its staging is free). True if it waited.
fn staging_free(ing: &mut StreamIngest, slot: usize) -> Result<bool, IngestError> {
    let Some(t) = ing.slot_last[slot] else {
        return Ok(false);
    };
    let mut spins = 0u32;
    let mut waited = false;
    while !ing.book.poll(t)? {
        waited = true;
        backoff(&mut spins);
    }
    Ok(waited)
}

/// Stages `planned` for the slot at `base` and enqueues the copies (and conversions); returns
/// whether it had to wait (for the slot's staging or a free pool entry).
///
/// # Safety
/// The batch's sources must be readable (submit's contract); `slot` is the batch's slot.
pub(super) unsafe fn enqueue(
    ing: &mut StreamIngest,
    slot: usize,
    base: u64,
    planned: &Planned,
) -> Result<bool, IngestError> {
    let mut waited = staging_free(ing, slot)?;
    let stream = ing.stream.cu_stream();
    let staging = &ing.gpu().staging[slot];
    // SAFETY: staging is as large as a slot and this slot's staging is not in use (its last
    // batch completed); the sources are readable (submit's contract).
    let (runs, converts) = unsafe {
        stage(
            &planned.entries,
            base,
            staging.host_ptr(),
            staging.device_ptr(),
        )
    };
    if !runs.is_empty() || converts.is_empty() {
        // One pool entry for the event after the copies (its descriptors are unused).
        let (_, w) = ing.book.acquire()?;
        waited |= w;
        let staging = ing.gpu().staging[slot].host_ptr();
        for &(a, b) in &runs {
            // SAFETY: `a..b` lies inside both the slot and its pinned staging, which stays
            // untouched until the batch completed.
            let r = unsafe {
                sys::cuMemcpyHtoDAsync_v2(base + a as u64, staging.add(a).cast(), b - a, stream)
            };
            if let Err(e) = r.result() {
                return Err(ing.book.fail(dev("copying staging to the slot")(e)));
            }
        }
        ing.book.enqueued(stream)?;
    }
    for entry in converts {
        // SAFETY: the entry reads this slot's staging and writes the slot, both kept until its
        // event completed.
        waited |= unsafe { ing.launch_entry(&entry, "launching the conversion")? };
    }
    Ok(waited)
}
