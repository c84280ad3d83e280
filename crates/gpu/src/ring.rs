//! Rust mirror of the shared layout in `cuda-kernels/gather.cuh` and the FFI to its host build.

use std::sync::atomic::AtomicU32;

pub(crate) const STATE_FREE: u32 = 0;
pub(crate) const STATE_READY: u32 = 1;
pub(crate) const STATE_DONE: u32 = 2;
/// `ring.quit`: stop once no READY entry is at the head (everything published is gathered).
pub(crate) const QUIT_DRAIN: u32 = 1;
/// `ring.quit`: stop now, even inside a grid handoff a block never reaches (gather.cuh).
pub(crate) const QUIT_ABORT: u32 = 2;
pub(crate) const FLAG_CONVERT: u32 = 1;
pub(crate) const FLAG_STRIDED: u32 = 2;
/// Jobs with at most this many fragments carry their descriptors inside the ring entry.
pub const INLINE_FRAGS: usize = 8;
/// Most channels the u8 -> f32 conversion supports.
pub const MAX_CHANNELS: usize = 4;

/// `struct netml_frag`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct RawFrag {
    pub src: u64,
    pub len: u32,
    pub dst_off: u32,
}

/// `struct netml_strided`: one image of a strided entry (fragment `i` is `frag_size` bytes at
/// `i * frag_size`, the last one short).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct RawStrided {
    pub srcs: u64,
    pub dst_off: u32,
    pub len: u32,
    pub nfrags: u32,
    pub frag_size: u32,
    pub first: u32,
    pub src_stride: u32,
}

/// `struct netml_entry`. `state` is the only word both sides write.
#[repr(C, align(64))]
pub(crate) struct RawEntry {
    pub state: AtomicU32,
    pub seq: u32,
    /// Words `nfrags` .. `bias`, which `gather_launch` also takes by value.
    pub head: RawEntryHead,
    pub dst_len: u64,
    pub pad: [u8; 48],
    pub inline_frags: [RawFrag; INLINE_FRAGS],
}

/// `struct netml_entry_head`: the fields of an entry the kernel needs besides the
/// descriptors (so that no block reads them over PCIe: `gather_launch` takes them by value,
/// `gather_resident`'s block 0 copies them into `RawGridCtl::head`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) struct RawEntryHead {
    pub nfrags: u32,
    pub flags: u32,
    pub dst: u64,
    pub frags: u64,
    pub channels: u32,
    pub hw: u32,
    pub scale: [f32; MAX_CHANNELS],
    pub bias: [f32; MAX_CHANNELS],
}

/// `struct netml_ring`.
#[repr(C, align(64))]
pub(crate) struct RawRing {
    pub quit: AtomicU32,
    pub nentries: u32,
    pub entries: u64,
    pub pad: [u8; 48],
}

/// `struct netml_grid_ctl` (consumer-private).
#[repr(C, align(64))]
pub(crate) struct RawGridCtl {
    pub gen: u32,
    pub cur: u32,
    pub stop: u32,
    pub done: u32,
    pub seq_errors: AtomicU32,
    pub pad0: u32,
    pub entries_done: u64,
    pub pad: [u8; 32],
    /// The current entry's [`RawEntryHead`], copied there by block 0 for the others.
    pub head: [u32; 16],
}

extern "C" {
    /// Runs one host "block" of the resident gather loop until `ring.quit` (see gather.cuh).
    pub(crate) fn netml_host_block_loop(
        ring: *const RawRing,
        ctl: *mut RawGridCtl,
        bid: u32,
        nblocks: u32,
    );
    /// One block's share of one entry (launch-mode body).
    pub(crate) fn netml_host_gather_block(entry: *const RawEntry, bid: u32, nblocks: u32);
    #[cfg(test)]
    /// Writes sizes/offsets of the C layout into `out`; returns how many there are.
    pub(crate) fn netml_host_layout(out: *mut u64, cap: usize) -> usize;
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::{offset_of, size_of};

    #[test]
    fn layout_matches_c() {
        let mut c = [0u64; 64];
        // SAFETY: `c` has room for 64 values and the callee writes at most `cap` of them.
        let n = unsafe { netml_host_layout(c.as_mut_ptr(), c.len()) };
        let rust: [usize; 37] = [
            size_of::<RawFrag>(),
            offset_of!(RawFrag, src),
            offset_of!(RawFrag, len),
            offset_of!(RawFrag, dst_off),
            size_of::<RawEntry>(),
            offset_of!(RawEntry, state),
            offset_of!(RawEntry, seq),
            offset_of!(RawEntry, head) + offset_of!(RawEntryHead, nfrags),
            offset_of!(RawEntry, head) + offset_of!(RawEntryHead, flags),
            offset_of!(RawEntry, head) + offset_of!(RawEntryHead, dst),
            offset_of!(RawEntry, head) + offset_of!(RawEntryHead, frags),
            offset_of!(RawEntry, head) + offset_of!(RawEntryHead, channels),
            offset_of!(RawEntry, head) + offset_of!(RawEntryHead, hw),
            offset_of!(RawEntry, head) + offset_of!(RawEntryHead, scale),
            offset_of!(RawEntry, head) + offset_of!(RawEntryHead, bias),
            offset_of!(RawEntry, dst_len),
            offset_of!(RawEntry, inline_frags),
            size_of::<RawRing>(),
            offset_of!(RawRing, quit),
            offset_of!(RawRing, nentries),
            offset_of!(RawRing, entries),
            size_of::<RawGridCtl>(),
            offset_of!(RawGridCtl, gen),
            offset_of!(RawGridCtl, done),
            offset_of!(RawGridCtl, seq_errors),
            offset_of!(RawGridCtl, entries_done),
            size_of::<RawStrided>(),
            offset_of!(RawStrided, srcs),
            offset_of!(RawStrided, dst_off),
            offset_of!(RawStrided, len),
            offset_of!(RawStrided, nfrags),
            offset_of!(RawStrided, frag_size),
            offset_of!(RawStrided, first),
            offset_of!(RawStrided, src_stride),
            offset_of!(RawGridCtl, head),
            size_of::<RawEntryHead>(),
            offset_of!(RawEntryHead, bias),
        ];
        assert_eq!(n, rust.len());
        for (i, (&r, &cv)) in rust.iter().zip(c.iter()).enumerate() {
            assert_eq!(r as u64, cv, "layout item {i}");
        }
    }
}
