//! [`HostIngest`]: host threads as blocks of the resident gather kernel, fed by the doorbell ring;
//! the validation of jobs and the ring entries every target writes.

#[cfg(test)]
mod abort_tests;
mod describe;
mod entry;
mod ingest;
mod scope;

use std::fmt;
use std::time::Duration;

use crate::ring::MAX_CHANNELS;

pub(crate) use describe::{convert_params, describe, describe_into, ConvertParams};
pub(crate) use entry::{write_entry, EntrySpec};
#[cfg(test)]
pub(crate) use ingest::spawn_block;
pub use ingest::HostIngest;
pub use scope::{gather_launch, Scope};

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
    /// A strided image whose byte count does not match its fragments: `n` pointers of
    /// `frag_size` need `(n - 1) * frag_size < total <= n * frag_size` (`total == 0` when
    /// `n == 0`). `image` counts the batch's images from 0.
    BadStride { image: usize },
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
            Self::BadStride { image } => write!(
                f,
                "strided image {image}: total bytes do not match fragment count and size"
            ),
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

/// Spin, then yield, then sleep: waiting on host threads that share few cores.
pub(crate) fn backoff(spins: &mut u32) {
    *spins = spins.saturating_add(1);
    if *spins < 64 {
        std::hint::spin_loop();
    } else if *spins < 2048 {
        std::thread::yield_now();
    } else {
        std::thread::sleep(Duration::from_micros(20));
    }
}
