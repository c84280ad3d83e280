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
use crate::host::{write_entry, EntrySpec};
use crate::ring::{RawEntry, RawFrag, RawStrided};
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

    /// Writes every field of entry `i` except `state` from `spec` (`dst` a device address):
    /// listed descriptors inline or into array `i`; strided images into array `i` as their
    /// headers followed by copies of their source pointer arrays (the caller's arrays are
    /// host memory the GPU cannot read), at most [`capacity`](Self::capacity) bytes in all.
    ///
    /// # Safety
    /// Entry `i` and its descriptor array must belong to the producer: no kernel may read them
    /// until the caller publishes the entry (or launches a kernel on it) after this returns.
    /// A strided spec's source pointers (`nfrags`, `src_stride` bytes apart) must be readable.
    pub(crate) unsafe fn write(&self, i: usize, seq: u32, spec: &EntrySpec) {
        assert!(
            array_bytes(spec) <= self.capacity(),
            "plan exceeded the pool"
        );
        let off = self.frags_offset(i);
        // SAFETY: array `i` (`capacity()` bytes inside the allocation, 16-byte aligned) belongs
        // to the producer (caller's contract), and what goes in fits (asserted above).
        unsafe {
            let arr = self.mem.host_ptr().add(off);
            let dev = self.mem.device_ptr() + off as u64;
            if spec.is_strided() {
                let heads = arr as *mut RawStrided;
                let mut ptrs = size_of::<RawStrided>() * spec.strided.len();
                for (j, s) in spec.strided.iter().enumerate() {
                    let n = s.nfrags as usize;
                    let to = arr.add(ptrs) as *mut u64;
                    if s.src_stride == 8 {
                        std::ptr::copy_nonoverlapping(s.srcs as usize as *const u64, to, n);
                    } else {
                        for k in 0..n {
                            let from = s.srcs as usize + k * s.src_stride as usize;
                            *to.add(k) = *(from as *const u64);
                        }
                    }
                    heads.add(j).write(RawStrided {
                        srcs: dev + ptrs as u64,
                        src_stride: 8,
                        ..*s
                    });
                    ptrs += 8 * n;
                }
            } else if !spec.is_inline() {
                let descs = &spec.descs;
                std::ptr::copy_nonoverlapping(descs.as_ptr(), arr as *mut RawFrag, descs.len());
            }
            write_entry(self.entry(i), seq, spec, dev, true);
        }
    }

    /// Bytes of one entry's descriptor array.
    pub(crate) fn capacity(&self) -> usize {
        self.max_frags * size_of::<RawFrag>()
    }
}

/// Bytes `spec` takes in a pool entry's array: descriptors, or strided headers and pointers.
pub(crate) fn array_bytes(spec: &EntrySpec) -> usize {
    if spec.is_strided() {
        spec.strided
            .iter()
            .map(|s| strided_bytes(s.nfrags as usize))
            .sum()
    } else {
        spec.descs.len() * size_of::<RawFrag>()
    }
}

/// Bytes one strided image of `n` fragments takes in a pool array (header and pointers).
pub(crate) fn strided_bytes(n: usize) -> usize {
    size_of::<RawStrided>() + 8 * n
}
