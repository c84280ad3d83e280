//! Ring entries and their out-of-line descriptor arrays in mapped pinned memory.
//!
//! The host build keeps each job's descriptors in a `Box`; the GPU reads them over PCIe, so here
//! they live in a fixed, device-visible pool: entry `i` owns descriptor array `i` of
//! `max_frags` descriptors. An entry and its array are written only while the entry belongs to
//! the producer (FREE in the ring; not in flight in the launch modes), so no allocation happens
//! per job and nothing is freed while the GPU may read it.

use std::mem::size_of;
use std::sync::atomic::AtomicU32;
use std::sync::Arc;

use cudarc::driver::CudaContext;

use super::slots::dev;
use crate::cuda::MappedPinned;
use crate::host_modes::EntrySpec;
use crate::ring::{RawEntry, RawFrag, FLAG_CONVERT, INLINE_FRAGS, MAX_CHANNELS};
use crate::IngestError;

/// Memory of a pool: mapped pinned on a GPU; in tests, plain host memory that host threads
/// running the kernel's host build read (device address = host address).
#[derive(Debug)]
enum PoolMem {
    Mapped(MappedPinned),
    #[cfg(test)]
    Host(HostMem),
}

/// Zeroed host memory owned through a raw pointer (written through it, so never through a
/// shared reference).
#[cfg(test)]
#[derive(Debug)]
struct HostMem(*mut [RawEntry]);

// SAFETY: owned memory; the tests synchronise access through the ring protocol.
#[cfg(test)]
unsafe impl Send for HostMem {}

#[cfg(test)]
impl Drop for HostMem {
    fn drop(&mut self) {
        // SAFETY: made by `Box::into_raw` in `EntryPool::host`, freed once.
        drop(unsafe { Box::from_raw(self.0) });
    }
}

impl PoolMem {
    fn host_ptr(&self) -> *mut u8 {
        match self {
            PoolMem::Mapped(m) => m.host_ptr(),
            #[cfg(test)]
            PoolMem::Host(h) => h.0 as *mut u8,
        }
    }

    fn device_ptr(&self) -> u64 {
        match self {
            PoolMem::Mapped(m) => m.device_ptr(),
            #[cfg(test)]
            PoolMem::Host(h) => h.0 as *mut u8 as u64,
        }
    }
}

/// `n` entries followed by `n` descriptor arrays of `max_frags` each, in one mapped allocation.
#[derive(Debug)]
pub(crate) struct EntryPool {
    mem: PoolMem,
    n: usize,
    max_frags: usize,
}

impl EntryPool {
    /// Allocates a zeroed pool (every entry FREE).
    pub(crate) fn new(
        ctx: &Arc<CudaContext>,
        n: usize,
        max_frags: usize,
    ) -> Result<Self, IngestError> {
        let too_big = || IngestError::Device("descriptor pool size overflows".into());
        let frags = n
            .checked_mul(max_frags)
            .and_then(|f| f.checked_mul(size_of::<RawFrag>()))
            .ok_or_else(too_big)?;
        let len = (n * size_of::<RawEntry>())
            .checked_add(frags)
            .ok_or_else(too_big)?;
        let mem = MappedPinned::new(ctx, len).map_err(dev("allocating the entry pool"))?;
        Ok(Self {
            mem: PoolMem::Mapped(mem),
            n,
            max_frags,
        })
    }

    /// A pool in zeroed host memory, for tests that run the kernel's host build over it.
    #[cfg(test)]
    pub(crate) fn host(n: usize, max_frags: usize) -> Self {
        let bytes = n * size_of::<RawEntry>() + n * max_frags * size_of::<RawFrag>();
        let entries = bytes.div_ceil(size_of::<RawEntry>());
        // SAFETY: all-zero is a valid RawEntry (integers, floats, an atomic).
        let mem: Box<[RawEntry]> = (0..entries)
            .map(|_| unsafe { std::mem::zeroed::<RawEntry>() })
            .collect();
        Self {
            mem: PoolMem::Host(HostMem(Box::into_raw(mem))),
            n,
            max_frags,
        }
    }

    /// Number of entries.
    pub(crate) fn len(&self) -> usize {
        self.n
    }

    /// Host pointer to entry `i`.
    pub(crate) fn entry(&self, i: usize) -> *mut RawEntry {
        assert!(i < self.n);
        // SAFETY: `i < n` and the allocation starts with `n` entries (64-byte aligned base).
        unsafe { (self.mem.host_ptr() as *mut RawEntry).add(i) }
    }

    /// `state` word of entry `i` (the only word the GPU writes).
    pub(crate) fn state(&self, i: usize) -> &AtomicU32 {
        // SAFETY: the entry lives as long as `self`; `state` is an atomic, so shared access
        // from the host and the device (through the mapping) is sound.
        unsafe { &(*self.entry(i)).state }
    }

    /// Device address of the entry array.
    pub(crate) fn entries_device_ptr(&self) -> u64 {
        self.mem.device_ptr()
    }

    /// Device address of entry `i`.
    pub(crate) fn entry_device_ptr(&self, i: usize) -> u64 {
        assert!(i < self.n);
        self.mem.device_ptr() + (i * size_of::<RawEntry>()) as u64
    }

    fn frags_offset(&self, i: usize) -> usize {
        self.n * size_of::<RawEntry>() + i * self.max_frags * size_of::<RawFrag>()
    }

    /// Writes every field of entry `i` except `state` from `spec` (at most `max_frags`
    /// descriptors, `dst` a device address).
    ///
    /// # Safety
    /// Entry `i` and its descriptor array must belong to the producer: no kernel may read them
    /// until the caller publishes the entry (or launches a kernel on it) after this returns.
    pub(crate) unsafe fn write(&self, i: usize, seq: u32, spec: &EntrySpec) {
        let descs = &spec.descs[..];
        assert!(descs.len() <= self.max_frags, "plan exceeded the pool");
        let e = self.entry(i);
        let mut inline = [RawFrag::default(); INLINE_FRAGS];
        let frags_addr = if descs.len() <= INLINE_FRAGS {
            inline[..descs.len()].copy_from_slice(descs);
            0
        } else {
            let off = self.frags_offset(i);
            // SAFETY: array `i` holds `max_frags >= descs.len()` descriptors inside the
            // allocation; it belongs to the producer (caller's contract).
            unsafe {
                let dst = self.mem.host_ptr().add(off) as *mut RawFrag;
                std::ptr::copy_nonoverlapping(descs.as_ptr(), dst, descs.len());
            }
            self.mem.device_ptr() + off as u64
        };
        let (flags, channels, hw, scale, bias) = match spec.convert {
            Some((c, hw, s, b)) => (FLAG_CONVERT, c, hw, s, b),
            None => (0, 0, 0, [0.0; MAX_CHANNELS], [0.0; MAX_CHANNELS]),
        };
        // SAFETY: the entry belongs to the producer (caller's contract); `state` is untouched.
        unsafe {
            (*e).seq = seq;
            (*e).nfrags = descs.len() as u32;
            (*e).flags = flags;
            (*e).dst = spec.dst;
            (*e).frags = frags_addr;
            (*e).channels = channels;
            (*e).hw = hw;
            (*e).scale = scale;
            (*e).bias = bias;
            (*e).dst_len = spec.dst_len;
            (*e).inline_frags = inline;
        }
    }
}
