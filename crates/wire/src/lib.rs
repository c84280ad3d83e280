//! Wire formats of netml, as zero-copy views over byte buffers.
//!
//! Modelled on smoltcp's `wire` module: every format has a `Packet<T: AsRef<[u8]>>`-style
//! view whose accessors read fields in place (byte ranges live in a private `field` module),
//! a `check_len` that makes every accessor panic-free afterwards, and a `Repr` with
//! `parse` (validate and lift into plain values) and `emit` (write into a buffer).
//!
//! Layers:
//! - [`ethernet`], [`ipv4`], [`ipv6`], [`udp`]: the link, network and transport headers a
//!   fragment arrives in (VLAN tags and IPv6 are understood; the fast path is untagged IPv4);
//! - [`fragment`]: the tensor fragment header and the tensor descriptor (docs/protocol.md);
//! - [`result`]: the per-image result message sent back to the sender;
//! - [`frame`]: classification of a whole Ethernet frame into "ours", "other" or "malformed",
//!   and building of complete frames for senders;
//! - [`pcap`]: classic libpcap capture files (read and write);
//! - [`checksum`]: the Internet checksum and the tensor CRC-32;
//! - [`npy`]: NumPy `.npy` files, the tensors senders load and `netml infer` reads.
//!
//! Parsing never panics on any input: this is covered by property tests and a fuzz target.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod checksum;
pub mod ethernet;
pub mod fragment;
pub mod frame;
pub mod ipv4;
pub mod ipv6;
pub mod npy;
pub mod pcap;
pub mod result;
pub mod source;
pub mod template;
pub mod udp;

mod error;
pub use error::{Error, Result};

/// Reads a big-endian `u16` at `at`. Callers have checked the length.
#[inline]
pub(crate) fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

/// Reads a big-endian `u32` at `at`. Callers have checked the length.
#[inline]
pub(crate) fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Reads a big-endian `u64` at `at`. Callers have checked the length.
#[inline]
pub(crate) fn be64(b: &[u8], at: usize) -> u64 {
    let mut x = [0u8; 8];
    x.copy_from_slice(&b[at..at + 8]);
    u64::from_be_bytes(x)
}

#[inline]
pub(crate) fn put16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_be_bytes());
}

#[inline]
pub(crate) fn put32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_be_bytes());
}

#[inline]
pub(crate) fn put64(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_be_bytes());
}
