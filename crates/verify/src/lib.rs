//! The completeness verifier: turns a stream of tensor fragments into whole images.
//!
//! It holds each fragment's handle (a DPDK mbuf in the pipeline, an owned buffer in tests)
//! without touching the payload, until every fragment of the image has arrived, and then
//! releases the handles in fragment order. It is exact where the published NetML code
//! counts packets: a per-image record of the fragments held (their count while they arrive
//! in order, a bitmap once one arrives out of turn) catches duplicates, every header is
//! checked against the image's first fragment, and the table is bounded in images and in
//! time.
//!
//! One [`Verifier`] serves one rx queue and takes no locks. Work per fragment is O(1);
//! work per image (slot reset, release) is O(fragments of that image).
//!
//! Every pushed fragment is counted in exactly one of `accepted`, `duplicate`,
//! `out_of_range`, `inconsistent` and `late` ([`Counters`]); every accepted fragment
//! leaves either in a completed [`Image`] or by eviction, and its handle is dropped (freed)
//! exactly once, by the verifier or by whoever receives the image.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod arrivals;
mod counters;
mod hash;
mod recent;
mod rx;
mod table;

pub use counters::{Counters, Drop};
pub use rx::{receive, receive_plain, Plain, Rx, RxCounters};
pub use table::{Config, Evicted, Fragment, Image, ImageKey, Push, Verifier};
