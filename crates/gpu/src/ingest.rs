//! The one interface behind which the three ingest modes live, on a GPU or on the host.
//!
//! A pipeline thread hands over a batch: for every image, where it starts in a batch slot and
//! the list of its fragment payloads (still in their mbufs). [`Ingest::submit`] returns a
//! [`Ticket`]; the thread keeps the mbufs until [`Ingest::poll`] says the ticket is complete,
//! then frees them. Completion is always found by polling (mapped flags or events), never by a
//! callback. The slot then holds the batch (on the GPU: device memory the engine reads in place).

use std::fmt;
use std::str::FromStr;

use crate::host::{Normalize, SubmitError, Ticket};
pub use crate::sources::{Sources, SrcPtrs};

/// How payloads get from packet memory into a batch slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum IngestMode {
    /// A resident gather kernel polls a doorbell ring and pulls the payloads itself (NetML).
    #[default]
    Netml,
    /// One gather kernel launch per batch; completion seen by polling an event.
    Launch,
    /// The CPU copies the payloads into pinned staging, then one async copy to the slot
    /// (the baseline the papers compare against).
    CpuCopy,
}

impl IngestMode {
    /// Every mode, in the order reports list them.
    pub const ALL: [IngestMode; 3] = [IngestMode::Netml, IngestMode::Launch, IngestMode::CpuCopy];

    /// The name used in configuration files and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            IngestMode::Netml => "netml",
            IngestMode::Launch => "launch",
            IngestMode::CpuCopy => "cpu-copy",
        }
    }
}

impl fmt::Display for IngestMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for IngestMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        IngestMode::ALL
            .into_iter()
            .find(|m| m.name() == s)
            .ok_or_else(|| {
                format!("unknown ingest mode {s:?} (expected netml, launch or cpu-copy)")
            })
    }
}

/// Where an ingest runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Target {
    /// Host build: host threads play the GPU's blocks (and its copy engine), slots are host
    /// memory. The pipeline's no-GPU path and what CI proves.
    Host,
    /// GPU `ordinal` (cudarc device index), slots in its memory.
    Gpu(usize),
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Host => f.write_str("host"),
            Target::Gpu(i) => write!(f, "gpu{i}"),
        }
    }
}

/// Shape of an ingest: mode, batch slots and the gather grid.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IngestConfig {
    /// How payloads are moved.
    pub mode: IngestMode,
    /// Batch slots (several, so gathering batch k+1 overlaps inference on batch k).
    pub slots: usize,
    /// Bytes per slot (the largest batch, converted if conversion is used).
    pub slot_bytes: usize,
    /// Gather blocks: CUDA blocks of the gather kernel, or host threads standing in for them.
    pub blocks: u32,
    /// Doorbell ring entries (`netml` mode) / jobs in flight (other modes).
    pub ring_entries: u32,
}

impl Default for IngestConfig {
    fn default() -> Self {
        Self {
            mode: IngestMode::Netml,
            slots: 4,
            slot_bytes: 32 * 3 * 224 * 224 * 4,
            blocks: 8,
            ring_entries: 64,
        }
    }
}

/// One payload of one image: `len` bytes at `src` (host memory that is device-visible on a
/// GPU target, e.g. a registered mbuf) landing at byte `dst_offset` of its image (of the u8
/// HWC image when the image is converted).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RawFragment {
    pub src: *const u8,
    pub len: usize,
    pub dst_offset: usize,
}

/// One image of a batch: its fragments land at byte `slot_offset` of the slot, copied as they
/// are or, with `convert`, turned from u8 HWC into normalised f32 CHW.
#[derive(Clone, Copy, Debug)]
pub struct ImageJob<'a> {
    pub slot_offset: usize,
    pub fragments: Sources<'a>,
    pub convert: Option<Normalize>,
}

/// Failures after start: the device went away, or the gather stopped answering.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IngestError {
    /// The job was refused before anything was submitted.
    Submit(SubmitError),
    /// Slot index out of range.
    NoSuchSlot(usize),
    /// The watchdog saw no progress for this long on a submitted job (resident kernel hung).
    Stalled { waited_ms: u64 },
    /// A CUDA call failed (driver error text).
    Device(String),
}

impl fmt::Display for IngestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IngestError::Submit(e) => write!(f, "ingest job refused: {e}"),
            IngestError::NoSuchSlot(s) => write!(f, "no batch slot {s}"),
            IngestError::Stalled { waited_ms } => {
                write!(
                    f,
                    "gather stopped answering (no progress for {waited_ms} ms)"
                )
            }
            IngestError::Device(e) => write!(f, "GPU ingest: {e}"),
        }
    }
}

impl std::error::Error for IngestError {}

impl From<SubmitError> for IngestError {
    fn from(e: SubmitError) -> Self {
        IngestError::Submit(e)
    }
}

/// Counters of an ingest, readable at any time.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IngestCounters {
    /// Batches submitted / completed.
    pub batches_submitted: u64,
    pub batches_completed: u64,
    /// Images and payload bytes submitted.
    pub images: u64,
    pub bytes: u64,
    /// Submissions that had to wait for a free ring entry or staging buffer.
    pub backpressure_waits: u64,
}

/// The ingest interface: the same for the three modes, on a GPU and on the host.
///
/// Tickets complete in submission order.
pub trait Ingest: Send {
    /// The mode this ingest runs.
    fn mode(&self) -> IngestMode;
    /// Where it runs.
    fn target(&self) -> Target;
    /// Number of batch slots.
    fn slots(&self) -> usize;
    /// Bytes per slot.
    fn slot_bytes(&self) -> usize;

    /// Submits one batch into `slot`. Validates every job first (bounds, overlaps, sizes);
    /// on error nothing was submitted.
    ///
    /// # Safety
    /// Every fragment's `src[..len]` must stay readable and unchanged, and the slot must not be
    /// read or submitted to again, until [`poll`](Self::poll) returned `Ok(true)` for the
    /// returned ticket (or a later one). For [`Sources::Strided`] images the `srcs` arrays
    /// too: the host modes read them in place while the batch is in flight.
    unsafe fn submit(&mut self, slot: usize, jobs: &[ImageJob<'_>]) -> Result<Ticket, IngestError>;

    /// True once the batch of `ticket` is in its slot and its sources may be released.
    fn poll(&mut self, ticket: Ticket) -> Result<bool, IngestError>;

    /// Copies `out.len()` bytes from the start of `slot` into `out` (checks, CPU inference).
    /// The slot's last batch must be complete.
    fn read_slot(&mut self, slot: usize, out: &mut [u8]) -> Result<(), IngestError>;

    /// Device address of `slot` (GPU targets; `None` on the host).
    fn slot_device_ptr(&self, slot: usize) -> Option<u64>;

    /// The whole of `slot` in place, once its last batch is complete, where the slot is host
    /// memory (host targets): checks and CPU inference then read it without a copy. `None`
    /// where it is not (GPU targets: use [`read_slot`](Self::read_slot)).
    fn host_slot(&mut self, slot: usize) -> Result<Option<&[u8]>, IngestError> {
        let _ = slot;
        Ok(None)
    }

    /// Counters so far.
    fn counters(&self) -> IngestCounters;

    /// Where the gather kernel runs, when that is fixed for the ingest's life (`netml` mode on
    /// a GPU); `None` elsewhere.
    fn gather_sms(&self) -> Option<GatherSms> {
        None
    }
}

/// The SMs a resident gather kernel runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GatherSms {
    /// SMs its blocks may use: what the driver granted the green partition (rounded up from
    /// the request), or every SM of the GPU.
    pub sms: u32,
    /// Whether they are a green-context partition (false: green contexts were unavailable and
    /// the kernel shares the whole GPU).
    pub green: bool,
}

impl std::fmt::Display for GatherSms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.green {
            write!(f, "{}-SM green partition", self.sms)
        } else {
            write!(f, "whole GPU ({} SMs; no green context)", self.sms)
        }
    }
}

/// Waits (spinning, then yielding) until `ticket` is complete.
pub fn wait(ingest: &mut dyn Ingest, ticket: Ticket) -> Result<(), IngestError> {
    let mut spins = 0u32;
    while !ingest.poll(ticket)? {
        spins = spins.saturating_add(1);
        if spins < 64 {
            std::hint::spin_loop();
        } else {
            std::thread::yield_now();
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mode_names_round_trip() {
        for m in IngestMode::ALL {
            assert_eq!(m.name().parse::<IngestMode>(), Ok(m));
        }
        assert!("gpu"
            .parse::<IngestMode>()
            .unwrap_err()
            .contains("cpu-copy"));
    }
}
