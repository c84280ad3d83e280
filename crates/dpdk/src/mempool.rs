//! Packet-buffer mempools.

use std::ffi::{CStr, CString};
use std::mem::ManuallyDrop;
use std::ptr::NonNull;
use std::sync::Arc;

use netml_dpdk_sys as sys;

use crate::eal::{self, EalRef};
use crate::error::{errno, Error, Result};

/// Bytes reserved in front of the packet data in every mbuf (`RTE_PKTMBUF_HEADROOM`).
pub const HEADROOM: u16 = sys::RTE_PKTMBUF_HEADROOM as u16;

/// The usual data room: 2048 bytes of packet data plus [`HEADROOM`]
/// (`RTE_MBUF_DEFAULT_BUF_SIZE`).
pub const DEFAULT_DATA_ROOM: u16 =
    (sys::RTE_MBUF_DEFAULT_DATAROOM + sys::RTE_PKTMBUF_HEADROOM) as u16;

/// A pool of packet buffers (`rte_pktmbuf_pool_create`).
///
/// Cloning is cheap and shares the pool; it is freed (`rte_mempool_free`) when the last
/// clone, and every port configured with it, is gone. If mbufs from it are still out at that
/// point, the pool is deliberately leaked instead (and keeps the EAL up), since freeing it
/// would let those mbufs write into freed memory.
#[derive(Clone)]
pub struct Mempool {
    inner: Arc<Inner>,
}

struct Inner {
    ptr: NonNull<sys::rte_mempool>,
    name: String,
    eal: ManuallyDrop<EalRef>,
}

// SAFETY: DPDK mempools are thread-safe (the default "ring_mp_mc" handler, per-lcore caches
// only touched by their own lcore); the pointer is only used through DPDK's API.
unsafe impl Send for Inner {}
// SAFETY: as above; shared access only calls thread-safe DPDK functions.
unsafe impl Sync for Inner {}

impl Drop for Inner {
    fn drop(&mut self) {
        // SAFETY: the pool is alive until rte_mempool_free below.
        let in_use = unsafe { sys::rte_mempool_in_use_count(self.ptr.as_ptr()) };
        if in_use == 0 {
            // SAFETY: no mbuf of this pool is outstanding and no port references it (ports
            // hold a clone), so nothing can touch it after it is freed.
            unsafe { sys::rte_mempool_free(self.ptr.as_ptr()) };
            // SAFETY: dropped exactly once, here.
            unsafe { ManuallyDrop::drop(&mut self.eal) };
        } else {
            // Leak the pool and its EAL reference: the outstanding mbufs still point into it.
            eprintln!(
                "netml-dpdk: mempool {:?} dropped with {in_use} mbuf(s) still in use; leaking it",
                self.name
            );
        }
    }
}

impl Mempool {
    /// Creates a pool of `n` packet mbufs (`rte_pktmbuf_pool_create`) on the calling
    /// thread's NUMA socket (any socket on a non-EAL thread).
    ///
    /// - `name`: unique in the process (DPDK memzone names are global).
    /// - `n`: number of mbufs; `2^k - 1` is the most memory-efficient.
    /// - `cache`: per-lcore cache size (0 for none; at most 512 and at most `n / 1.5`).
    /// - `data_room`: buffer size per mbuf *including* [`HEADROOM`], e.g.
    ///   [`DEFAULT_DATA_ROOM`].
    pub fn pktmbuf(name: &str, n: u32, cache: u32, data_room: u16) -> Result<Mempool> {
        let eal = eal::current("rte_pktmbuf_pool_create")?;
        let op = || format!("rte_pktmbuf_pool_create({name:?})");
        let cname = CString::new(name)
            .map_err(|_| Error::with_message(op(), errno::EINVAL, "name contains a NUL byte"))?;
        // SAFETY: reads a constant.
        let max = unsafe { sys::netml_shim_mempool_namesize } as usize;
        if name.len() >= max {
            return Err(Error::with_message(
                op(),
                errno::ENAMETOOLONG,
                format!("name longer than {} bytes", max - 1),
            ));
        }
        // SAFETY: reads a thread-local variable.
        let socket = unsafe { sys::rte_socket_id() } as i32;
        // SAFETY: the EAL is initialised (we hold a reference); cname is a valid C string
        // for the duration of the call (DPDK copies the name).
        let ptr =
            unsafe { sys::rte_pktmbuf_pool_create(cname.as_ptr(), n, cache, 0, data_room, socket) };
        let ptr = NonNull::new(ptr).ok_or_else(|| Error::last(op()))?;
        Ok(Mempool {
            inner: Arc::new(Inner {
                ptr,
                name: name.to_string(),
                eal: ManuallyDrop::new(eal),
            }),
        })
    }

    /// The pool's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// Number of mbufs in the pool.
    pub fn capacity(&self) -> u32 {
        // SAFETY: the pool is alive while self is; reads its `size` field.
        unsafe { sys::netml_shim_mempool_size(self.inner.ptr.as_ptr()) }
    }

    /// Mbufs currently allocated (held by the application, a ring, or a port's rx
    /// descriptors): `capacity() - available()`.
    pub fn in_use(&self) -> u32 {
        // SAFETY: the pool is alive while self is.
        unsafe { sys::rte_mempool_in_use_count(self.inner.ptr.as_ptr()) }
    }

    /// Mbufs free for allocation, including those in per-lcore caches.
    pub fn available(&self) -> u32 {
        // SAFETY: the pool is alive while self is.
        unsafe { sys::rte_mempool_avail_count(self.inner.ptr.as_ptr()) }
    }

    /// Buffer size per mbuf including headroom (the `data_room` it was created with).
    pub fn data_room(&self) -> u16 {
        // SAFETY: the pool is alive and is a pktmbuf pool (it has the private area read).
        unsafe { sys::netml_shim_pktmbuf_data_room_size(self.inner.ptr.as_ptr()) }
    }

    /// The raw `rte_mempool` pointer, valid while this pool (any clone) is alive.
    pub fn as_ptr(&self) -> *mut sys::rte_mempool {
        self.inner.ptr.as_ptr()
    }

    /// The name DPDK records for the pool (same as [`Mempool::name`]).
    pub(crate) fn dpdk_name(&self) -> String {
        // SAFETY: the pool is alive; its name is a NUL-terminated array inside it.
        unsafe { CStr::from_ptr(sys::netml_shim_mempool_name(self.as_ptr())) }
            .to_string_lossy()
            .into_owned()
    }
}

impl std::fmt::Debug for Mempool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mempool")
            .field("name", &self.dpdk_name())
            .field("capacity", &self.capacity())
            .field("in_use", &self.in_use())
            .finish()
    }
}
