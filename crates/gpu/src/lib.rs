//! netml GPU ingest.
//!
//! For now this crate holds the host build of the resident gather kernel: the gather routine,
//! the u8 HWC -> f32 CHW conversion and the doorbell ring protocol live once in
//! `cuda-kernels/gather.cuh`; `build.rs` compiles them for the host, and [`HostIngest`] runs
//! them on host threads that play the kernel's blocks, over the same ring the GPU will poll.
//! See `docs/gpu-ingest.md`.

pub mod cuda;
mod host;
mod host_modes;
mod ingest;
mod open;
mod ring;
pub mod selfcheck;

pub use host::{
    gather_launch, Fragment, HostIngest, IngestStats, Normalize, Scope, SubmitError, Ticket,
};
pub use ingest::{
    wait, ImageJob, Ingest, IngestConfig, IngestCounters, IngestError, IngestMode, RawFragment,
    Target,
};
pub use open::{open, register_sources};
pub use ring::{INLINE_FRAGS, MAX_CHANNELS};
