//! netml GPU ingest.
//!
//! The [`Ingest`] interface and its three modes (netml, launch, cpu-copy) on the host and on a
//! GPU. The gather routine, the u8 HWC -> f32 CHW conversion and the doorbell ring protocol
//! live once in `cuda-kernels/gather.cuh`; `build.rs` compiles them for the host, and
//! [`HostIngest`] runs them on host threads that play the kernel's blocks, over the same ring
//! the GPU polls. See `docs/gpu-ingest.md`.

// Module docs link the private modules they are built from, for readers of the source and of
// `cargo doc --document-private-items`.
#![allow(rustdoc::private_intra_doc_links)]

pub mod cuda;
mod host;
mod host_modes;
mod ingest;
mod open;
mod ring;
pub mod selfcheck;
mod sources;

pub use host::{
    gather_launch, Fragment, HostIngest, IngestStats, Normalize, Scope, SubmitError, Ticket,
};
pub use ingest::{
    wait, GatherSms, ImageJob, Ingest, IngestConfig, IngestCounters, IngestError, IngestMode,
    RawFragment, Sources, SrcPtrs, Target,
};
pub use open::{open, register_sources};
pub use ring::{INLINE_FRAGS, MAX_CHANNELS};
