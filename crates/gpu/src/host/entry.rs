//! What one ring entry carries ([`EntrySpec`]) and the one routine that writes it into the
//! shared layout, for the host ring, the launch modes and the GPU's mapped pool alike.

use super::ConvertParams;
use crate::ring::{
    RawEntry, RawEntryHead, RawFrag, RawStrided, FLAG_CONVERT, FLAG_STRIDED, INLINE_FRAGS,
    MAX_CHANNELS,
};

/// One ring entry / launch entry: listed descriptors, or (when `strided` is not empty) strided
/// images, landing at `dst`.
#[derive(Debug, Default)]
pub(crate) struct EntrySpec {
    pub dst: u64,
    pub dst_len: u64,
    /// Listed fragments (`dst_off` relative to `dst`).
    pub descs: Vec<RawFrag>,
    /// Strided images (`dst_off` relative to `dst`, `first` numbering the entry's fragments);
    /// their `srcs` are the caller's pointer arrays.
    pub strided: Vec<RawStrided>,
    pub convert: Option<ConvertParams>,
}

impl EntrySpec {
    /// The entry's `nfrags`: descriptors, or images when strided.
    pub(crate) fn count(&self) -> usize {
        if self.strided.is_empty() {
            self.descs.len()
        } else {
            self.strided.len()
        }
    }

    /// Whether the entry carries strided images.
    pub(crate) fn is_strided(&self) -> bool {
        !self.strided.is_empty()
    }

    /// Whether the descriptors travel inside the entry (listed, at most [`INLINE_FRAGS`]).
    pub(crate) fn is_inline(&self) -> bool {
        !self.is_strided() && self.descs.len() <= INLINE_FRAGS
    }

    /// Address of the out-of-line array as it lies in this spec (host memory).
    pub(crate) fn array_addr(&self) -> u64 {
        if self.is_strided() {
            self.strided.as_ptr() as u64
        } else {
            self.descs.as_ptr() as u64
        }
    }
}

/// Writes every field of entry `e` except `state` from `spec`. `frags` is the address the
/// consumer reads the out-of-line array from (descriptors, or strided images); it is ignored
/// when the spec's descriptors go inline ([`EntrySpec::is_inline`]) and `inline_ok` is set.
///
/// # Safety
/// `e` must be valid for writes and belong to the producer: no consumer reads it until the
/// caller publishes it (or launches a kernel on it) after this returns.
pub(crate) unsafe fn write_entry(
    e: *mut RawEntry,
    seq: u32,
    spec: &EntrySpec,
    frags: u64,
    inline_ok: bool,
) {
    let mut inline = [RawFrag::default(); INLINE_FRAGS];
    let frags_addr = if inline_ok && spec.is_inline() {
        inline[..spec.descs.len()].copy_from_slice(&spec.descs);
        0
    } else {
        frags
    };
    let (mut flags, channels, hw, scale, bias) = match spec.convert {
        Some((c, hw, s, b)) => (FLAG_CONVERT, c, hw, s, b),
        None => (0, 0, 0, [0.0; MAX_CHANNELS], [0.0; MAX_CHANNELS]),
    };
    if spec.is_strided() {
        flags |= FLAG_STRIDED;
    }
    // SAFETY: valid and owned by the producer (caller's contract); `state` is untouched.
    unsafe {
        (*e).seq = seq;
        (*e).head = RawEntryHead {
            nfrags: spec.count() as u32,
            flags,
            dst: spec.dst,
            frags: frags_addr,
            channels,
            hw,
            scale,
            bias,
        };
        (*e).dst_len = spec.dst_len;
        (*e).inline_frags = inline;
    }
}
