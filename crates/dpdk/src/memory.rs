//! DPDK's memory map: the virtual address ranges mbufs (and everything else DPDK
//! allocates) live in, e.g. to register them with a GPU driver for DMA.

use std::ffi::{c_int, c_void};

use netml_dpdk_sys as sys;

use crate::eal;
use crate::error::{Error, Result};

/// A virtually contiguous range of DPDK memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemSegment {
    /// Start virtual address.
    pub addr: usize,
    /// Length in bytes.
    pub len: usize,
    /// IO address of the first byte (`u64::MAX` if unknown). The range is IOVA-contiguous
    /// only if `iova_contiguous`.
    pub iova: u64,
    /// Whether IO addresses increase with virtual addresses over the whole range (always
    /// true in IOVA-as-VA mode and for a single page).
    pub iova_contiguous: bool,
    /// Page size backing the range (2 MiB or 1 GiB hugepages; 4 KiB with `--no-huge`).
    pub hugepage_sz: u64,
    /// NUMA socket (`-1` if any/unknown).
    pub socket: i32,
    /// Memory registered with DPDK from outside (`rte_extmem_*`), not allocated by the EAL.
    pub external: bool,
}

impl MemSegment {
    /// Whether `addr` lies inside the range.
    pub fn contains(&self, addr: usize) -> bool {
        addr >= self.addr && addr - self.addr < self.len
    }

    /// The start as a pointer.
    pub fn as_ptr(&self) -> *const u8 {
        self.addr as *const u8
    }
}

struct Walk {
    segs: Vec<MemSegment>,
    bad_iova: u64,
}

unsafe extern "C" fn on_memseg(
    msl: *const sys::rte_memseg_list,
    ms: *const sys::rte_memseg,
    arg: *mut c_void,
) -> c_int {
    // SAFETY: rte_memseg_walk passes valid list and segment pointers for the duration of the
    // callback, and `arg` is the &mut Walk that memory_segments passed in.
    let (msl, ms, walk) = unsafe { (&*msl, &*ms, &mut *arg.cast::<Walk>()) };
    // SAFETY: rte_memseg is packed, so its fields are read unaligned through raw pointers;
    // all are plain integers, and `addr`/`addr_64` alias the same 8 bytes.
    let (addr, len, iova, hugepage_sz, socket) = unsafe {
        (
            std::ptr::addr_of!(ms.__bindgen_anon_1.addr_64).read_unaligned() as usize,
            std::ptr::addr_of!(ms.len).read_unaligned(),
            std::ptr::addr_of!(ms.iova).read_unaligned(),
            std::ptr::addr_of!(ms.hugepage_sz).read_unaligned(),
            std::ptr::addr_of!(ms.socket_id).read_unaligned(),
        )
    };
    let external = msl.external != 0;
    let bad = walk.bad_iova;
    if let Some(last) = walk.segs.last_mut() {
        if last.addr + last.len == addr
            && last.hugepage_sz == hugepage_sz
            && last.socket == socket
            && last.external == external
        {
            let expected = last.iova.wrapping_add(last.len as u64);
            last.iova_contiguous &= last.iova != bad && iova == expected;
            last.len += len;
            return 0;
        }
    }
    walk.segs.push(MemSegment {
        addr,
        len,
        iova,
        iova_contiguous: iova != bad,
        hugepage_sz,
        socket,
        external,
    });
    0
}

/// DPDK's memory, one entry per virtually contiguous range of same-sized pages on one
/// socket (adjacent segments from `rte_memseg_walk` merged), sorted by address.
///
/// Every mbuf of every mempool lies inside one of these ranges. With `--no-huge` the EAL
/// backs its memory (`-m` MiB) with 4 KiB pages, so expect one large range; with
/// hugepages, one or more ranges per socket and page size.
pub fn memory_segments() -> Result<Vec<MemSegment>> {
    let _eal = eal::current("rte_memseg_walk")?;
    let mut walk = Walk {
        segs: Vec::new(),
        // SAFETY: reads a constant.
        bad_iova: unsafe { sys::netml_shim_bad_iova },
    };
    // SAFETY: the EAL is initialised (we hold a reference); the callback only reads the
    // segment and pushes into `walk` (no DPDK allocation, which would deadlock on the memory
    // lock the walk holds), and `walk` outlives the call.
    let ret = unsafe { sys::rte_memseg_walk(Some(on_memseg), std::ptr::addr_of_mut!(walk).cast()) };
    if ret < 0 {
        return Err(Error::last("rte_memseg_walk"));
    }
    let mut segs = walk.segs;
    segs.sort_by_key(|s| s.addr);
    // Merge across memseg lists too, when they happen to be adjacent.
    let mut merged: Vec<MemSegment> = Vec::with_capacity(segs.len());
    for s in segs {
        if let Some(last) = merged.last_mut() {
            if last.addr + last.len == s.addr
                && last.hugepage_sz == s.hugepage_sz
                && last.socket == s.socket
                && last.external == s.external
            {
                last.iova_contiguous &=
                    s.iova_contiguous && s.iova == last.iova.wrapping_add(last.len as u64);
                last.len += s.len;
                continue;
            }
        }
        merged.push(s);
    }
    Ok(merged)
}

/// A memseg list: an address range the EAL reserved for one socket and page size, of which
/// [`memory_segments`] are the parts currently backed by memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemsegList {
    /// Start of the reserved virtual range.
    pub base: usize,
    /// Length of the reserved range.
    pub len: usize,
    /// Page size.
    pub page_sz: u64,
    /// NUMA socket.
    pub socket: i32,
    /// External memory.
    pub external: bool,
}

unsafe extern "C" fn on_list(msl: *const sys::rte_memseg_list, arg: *mut c_void) -> c_int {
    // SAFETY: valid list for the callback's duration; arg is the &mut Vec passed below.
    let (msl, out) = unsafe { (&*msl, &mut *arg.cast::<Vec<MemsegList>>()) };
    out.push(MemsegList {
        // SAFETY: `base_va` and `addr_64` alias the same plain 8 bytes.
        base: unsafe { msl.__bindgen_anon_1.addr_64 } as usize,
        len: msl.len,
        page_sz: msl.page_sz,
        socket: msl.socket_id,
        external: msl.external != 0,
    });
    0
}

/// The EAL's memseg lists (`rte_memseg_list_walk`): reserved address space, backed or not.
pub fn memseg_lists() -> Result<Vec<MemsegList>> {
    let _eal = eal::current("rte_memseg_list_walk")?;
    let mut out: Vec<MemsegList> = Vec::new();
    // SAFETY: EAL initialised; the callback only pushes into `out`, which outlives the call.
    let ret =
        unsafe { sys::rte_memseg_list_walk(Some(on_list), std::ptr::addr_of_mut!(out).cast()) };
    if ret < 0 {
        return Err(Error::last("rte_memseg_list_walk"));
    }
    Ok(out)
}
