//! `launch` mode: per batch, its entries are written into mapped pinned memory and each gets a
//! `gather_launch` (grid = `blocks` x 256) on a stream created at start; an event recorded
//! after each entry is polled for completion (never a host callback). The ingest around it is
//! [`StreamIngest`](super::streamed::StreamIngest).

use super::plan::Planned;
use super::streamed::StreamIngest;
use crate::IngestError;

/// Enqueues one `gather_launch` per entry of `planned`; returns whether it had to wait for a
/// free pool entry.
///
/// # Safety
/// The batch's sources stay valid until it completed (submit's contract).
pub(super) unsafe fn enqueue(
    ing: &mut StreamIngest,
    planned: &Planned,
) -> Result<bool, IngestError> {
    let mut waited = false;
    for spec in &planned.entries {
        // SAFETY: the descriptors are copied into the pool, the sources are kept by the
        // caller and the slot by the ingest until the entry's event completed.
        waited |= unsafe { ing.launch_entry(spec, "launching gather_launch")? };
    }
    Ok(waited)
}
