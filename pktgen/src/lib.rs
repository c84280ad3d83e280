//! netml-pktgen: the traffic generator of netml.
//!
//! It turns tensors (PNG/JPEG images, `.npy` files or seeded synthetic data) into netml
//! fragment traffic (`netml_wire::fragment`), with seeded fault injection (loss,
//! truncation, header corruption, duplication, reordering, incomplete images), and writes
//! it to a pcap file, a Linux interface (AF_PACKET) or UDP sockets. Every image sent is
//! recorded in a manifest; the receiver matches the pipeline's result messages
//! (`netml_wire::result`) against it and reports answers, losses and latency.
//!
//! Modules, one concern each: [`tensor`], [`npy`] and [`images`] make tensors;
//! [`fragmenter`] cuts them into frames; [`faults`] and [`reorder`] decide what happens to
//! each frame; [`output`] (with [`afpacket`] and [`mmsg`], batched `sendmmsg`) and
//! [`pace`] put frames on the wire; [`send`] drives a run and [`summary`]/[`manifest`] record it; [`recv`] collects results
//! and [`report`] presents them, with SLO attainment ([`slo`]) and top-1 checks against
//! expected classes ([`expected`]).

#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod afpacket;
pub mod error;
pub mod expected;
pub mod faults;
pub mod flows;
pub mod fragmenter;
pub mod images;
pub mod manifest;
pub mod mmsg;
pub mod npy;
pub mod output;
pub mod pace;
pub mod progress;
pub mod recv;
pub mod reorder;
pub mod report;
pub mod rng;
pub mod send;
pub mod slo;
pub mod summary;
pub mod tensor;

pub use error::{Error, Result};
