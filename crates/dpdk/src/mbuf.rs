//! Owning mbuf handles.

use std::fmt;
use std::ptr::NonNull;

use netml_dpdk_sys as sys;

use crate::error::{errno, Error, Result};
use crate::mempool::Mempool;

/// An owned packet buffer (`struct rte_mbuf`, possibly the head of a segment chain).
///
/// Exactly one `Mbuf` owns a given mbuf; dropping it returns the mbuf (and its chain) to
/// its mempool (`rte_pktmbuf_free`), so an mbuf cannot leak through safe code. It is a
/// single pointer (`#[repr(transparent)]`), so `Vec<Mbuf>` can be handed to DPDK's burst
/// functions as an array of `struct rte_mbuf *`.
///
/// [`Mbuf::data`] is the first segment's data; single-segment packets (the netml case,
/// every fragment fits one mbuf) have all of it there.
#[repr(transparent)]
pub struct Mbuf(NonNull<sys::rte_mbuf>);

// SAFETY: an Mbuf is the unique owner of its mbuf; DPDK allows freeing an mbuf from any
// thread (mempool put is thread-safe), and its data is plain memory.
unsafe impl Send for Mbuf {}
// SAFETY: `&Mbuf` only allows reads of the mbuf and its data; writes need `&mut Mbuf`.
unsafe impl Sync for Mbuf {}

impl Mbuf {
    /// Allocates one mbuf from `pool` (`rte_pktmbuf_alloc`): empty, with the default
    /// headroom. Fails with `ENOBUFS` if the pool is exhausted.
    pub fn alloc(pool: &Mempool) -> Result<Mbuf> {
        // SAFETY: the pool is alive (borrowed) and is a pktmbuf pool.
        let m = unsafe { sys::netml_shim_pktmbuf_alloc(pool.as_ptr()) };
        NonNull::new(m).map(Mbuf).ok_or_else(|| {
            Error::with_message(
                format!("rte_pktmbuf_alloc({:?})", pool.name()),
                errno::ENOBUFS,
                "mempool exhausted",
            )
        })
    }

    /// Allocates `n` mbufs from `pool` in one call (`rte_pktmbuf_alloc_bulk`) and appends
    /// them to `out`. All or nothing: on `ENOBUFS` nothing is allocated.
    pub fn alloc_bulk(pool: &Mempool, out: &mut Vec<Mbuf>, n: usize) -> Result<()> {
        let count = u32::try_from(n).map_err(|_| {
            Error::with_message("rte_pktmbuf_alloc_bulk", errno::EINVAL, "n too large")
        })?;
        out.reserve(n);
        let len = out.len();
        // SAFETY: `out` has room for n more pointers past len; on success DPDK writes n valid
        // mbuf pointers there (Mbuf is repr(transparent) over a non-null pointer), on failure
        // it writes nothing we keep.
        let ret = unsafe {
            sys::netml_shim_pktmbuf_alloc_bulk(
                pool.as_ptr(),
                out.as_mut_ptr().add(len).cast::<*mut sys::rte_mbuf>(),
                count,
            )
        };
        if ret != 0 {
            return Err(Error::with_message(
                format!("rte_pktmbuf_alloc_bulk({:?}, {n})", pool.name()),
                errno::ENOBUFS,
                "mempool exhausted",
            ));
        }
        // SAFETY: the n slots were initialised above.
        unsafe { out.set_len(len + n) };
        Ok(())
    }

    /// Allocates an mbuf and copies `bytes` into it. Fails with `EINVAL` if they do not fit
    /// the pool's data room (after the headroom).
    pub fn from_bytes(pool: &Mempool, bytes: &[u8]) -> Result<Mbuf> {
        let mut m = Mbuf::alloc(pool)?;
        match m.append(bytes.len()) {
            Some(dst) => dst.copy_from_slice(bytes),
            None => {
                return Err(Error::with_message(
                    "Mbuf::from_bytes",
                    errno::EINVAL,
                    format!(
                        "{} bytes do not fit ({} bytes of tailroom)",
                        bytes.len(),
                        m.tailroom()
                    ),
                ))
            }
        }
        Ok(m)
    }

    /// Frees every mbuf in `mbufs` with one `rte_pktmbuf_free_bulk` call and empties the
    /// vector (keeping its capacity).
    pub fn free_bulk(mbufs: &mut Vec<Mbuf>) {
        let n = mbufs.len();
        if n == 0 {
            return;
        }
        // SAFETY: the vector holds n owned mbufs (as raw pointers, repr(transparent)); the
        // length is set to 0 first so none of them is dropped again, even on unwinding.
        unsafe {
            mbufs.set_len(0);
            // rte_pktmbuf_free_bulk takes a u32 count; chunk for absurdly large vectors.
            let base = mbufs.as_mut_ptr().cast::<*mut sys::rte_mbuf>();
            let mut done = 0usize;
            while done < n {
                let chunk = (n - done).min(u32::MAX as usize);
                sys::rte_pktmbuf_free_bulk(base.add(done), chunk as u32);
                done += chunk;
            }
        }
    }

    #[inline]
    fn raw(&self) -> &sys::rte_mbuf {
        // SAFETY: self owns a valid mbuf for its whole lifetime.
        unsafe { self.0.as_ref() }
    }

    /// The first segment's packet data.
    #[inline]
    pub fn data(&self) -> &[u8] {
        let m = self.raw();
        // SAFETY: buf_addr + data_off is the start of data_len initialised bytes inside the
        // mbuf's buffer (DPDK's invariant), owned by this handle.
        unsafe {
            std::slice::from_raw_parts(
                m.buf_addr.cast::<u8>().add(usize::from(m.data_off)),
                usize::from(m.data_len),
            )
        }
    }

    /// Asks the CPU to start loading the first cache line of the packet data (the headers),
    /// so that a burst's header reads overlap instead of each stalling on a miss.
    #[inline]
    pub fn prefetch_data(&self) {
        #[cfg(target_arch = "x86_64")]
        {
            let p = self.data().as_ptr();
            // SAFETY: a prefetch is a hint: it never faults and reads nothing into Rust's view
            // of memory; `p` points into this mbuf's buffer anyway.
            unsafe {
                core::arch::x86_64::_mm_prefetch(p.cast::<i8>(), core::arch::x86_64::_MM_HINT_T0)
            };
        }
    }

    /// The first segment's packet data, writable.
    #[inline]
    pub fn data_mut(&mut self) -> &mut [u8] {
        let m = self.raw();
        let (p, len) = (
            // SAFETY: as in `data`.
            unsafe { m.buf_addr.cast::<u8>().add(usize::from(m.data_off)) },
            usize::from(m.data_len),
        );
        // SAFETY: as in `data`; the handle is borrowed mutably, and it is the only owner of
        // the buffer (this crate never creates clones or indirect mbufs).
        unsafe { std::slice::from_raw_parts_mut(p, len) }
    }

    /// Length of [`Mbuf::data`] (the first segment's `data_len`).
    #[inline]
    pub fn len(&self) -> usize {
        usize::from(self.raw().data_len)
    }

    /// Whether the first segment holds no data.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.raw().data_len == 0
    }

    /// Total packet length over all segments (`pkt_len`).
    #[inline]
    pub fn pkt_len(&self) -> usize {
        self.raw().pkt_len as usize
    }

    /// Number of segments in the chain.
    #[inline]
    pub fn nb_segs(&self) -> u16 {
        self.raw().nb_segs
    }

    /// Free bytes in front of the data.
    pub fn headroom(&self) -> usize {
        // SAFETY: valid mbuf.
        usize::from(unsafe { sys::netml_shim_pktmbuf_headroom(self.0.as_ptr()) })
    }

    /// Free bytes after the data in the last segment.
    pub fn tailroom(&self) -> usize {
        // SAFETY: valid mbuf.
        usize::from(unsafe { sys::netml_shim_pktmbuf_tailroom(self.0.as_ptr()) })
    }

    /// Extends the packet by `len` bytes at the end (of the last segment) and returns them
    /// (`rte_pktmbuf_append`; their contents are unspecified). `None` if the tailroom is too
    /// small; the mbuf is unchanged then.
    pub fn append(&mut self, len: usize) -> Option<&mut [u8]> {
        let len16 = u16::try_from(len).ok()?;
        // SAFETY: valid mbuf owned by self; DPDK checks the tailroom.
        let p = unsafe { sys::netml_shim_pktmbuf_append(self.0.as_ptr(), len16) };
        // SAFETY: on success p points to len bytes inside the last segment's buffer, owned by
        // this handle and borrowed mutably for the returned lifetime. The bytes may be
        // uninitialised memory from DPDK's point of view but were zeroed or written by earlier
        // use (hugepage/anonymous memory is never uninitialised at the OS level).
        NonNull::new(p)
            .map(|p| unsafe { std::slice::from_raw_parts_mut(p.as_ptr().cast::<u8>(), len) })
    }

    /// Extends the packet by `len` bytes at the front (into the headroom) and returns them
    /// (`rte_pktmbuf_prepend`). `None` if the headroom is too small.
    pub fn prepend(&mut self, len: usize) -> Option<&mut [u8]> {
        let len16 = u16::try_from(len).ok()?;
        // SAFETY: valid mbuf owned by self; DPDK checks the headroom.
        let p = unsafe { sys::netml_shim_pktmbuf_prepend(self.0.as_ptr(), len16) };
        // SAFETY: on success p points to len bytes at the new start of the data (see `append`).
        NonNull::new(p)
            .map(|p| unsafe { std::slice::from_raw_parts_mut(p.as_ptr().cast::<u8>(), len) })
    }

    /// Removes `len` bytes from the front of the packet (`rte_pktmbuf_adj`). Returns false
    /// (and changes nothing) if the first segment is shorter.
    pub fn adj(&mut self, len: usize) -> bool {
        let Ok(len16) = u16::try_from(len) else {
            return false;
        };
        // SAFETY: valid mbuf owned by self; DPDK checks the length.
        !unsafe { sys::netml_shim_pktmbuf_adj(self.0.as_ptr(), len16) }.is_null()
    }

    /// Removes `len` bytes from the end of the packet (`rte_pktmbuf_trim`). Returns false
    /// (and changes nothing) if the last segment is shorter.
    pub fn trim(&mut self, len: usize) -> bool {
        let Ok(len16) = u16::try_from(len) else {
            return false;
        };
        // SAFETY: valid mbuf owned by self; DPDK checks the length.
        unsafe { sys::netml_shim_pktmbuf_trim(self.0.as_ptr(), len16) == 0 }
    }

    /// Empties the packet and restores the default headroom (`rte_pktmbuf_reset`), freeing
    /// any further segments first.
    pub fn reset(&mut self) {
        // SAFETY: self owns the chain; the tail is detached from the head before it is freed,
        // so the head never points at freed segments, then the head is reset.
        unsafe {
            let m = self.0.as_ptr();
            let next = (*m).next;
            if !next.is_null() {
                (*m).next = std::ptr::null_mut();
                sys::netml_shim_pktmbuf_free(next);
            }
            sys::netml_shim_pktmbuf_reset(m);
        }
    }

    /// The input port a NIC PMD recorded for a received packet (software PMDs such as
    /// net_ring leave whatever the mbuf had).
    pub fn port(&self) -> u16 {
        self.raw().port
    }

    /// The RSS hash the NIC computed (meaningful when the port uses RSS).
    pub fn rss_hash(&self) -> u32 {
        // SAFETY: reading a plain u32 out of a union of plain integers.
        unsafe { self.raw().__bindgen_anon_2.hash.rss }
    }

    /// The DPDK offload flags (`ol_flags`).
    pub fn ol_flags(&self) -> u64 {
        self.raw().ol_flags
    }

    /// IO address of the first data byte (`buf_iova + data_off`), what a device (NIC, GPU
    /// via DMA) uses to reach [`Mbuf::data`].
    pub fn data_iova(&self) -> u64 {
        let m = self.raw();
        m.buf_iova + u64::from(m.data_off)
    }

    /// The raw pointer, still owned by this handle.
    #[inline]
    pub fn as_ptr(&self) -> *mut sys::rte_mbuf {
        self.0.as_ptr()
    }

    /// Gives up ownership: the caller must eventually free the mbuf (or turn it back into an
    /// `Mbuf` with [`Mbuf::from_raw`]).
    #[inline]
    pub fn into_raw(self) -> NonNull<sys::rte_mbuf> {
        let p = self.0;
        std::mem::forget(self);
        p
    }

    /// Takes ownership of a raw mbuf.
    ///
    /// # Safety
    ///
    /// `m` must be a valid packet mbuf (from a pktmbuf pool, or received from a port) that
    /// nothing else owns or uses afterwards: its reference count is 1, it is not in any
    /// ring, queue or other `Mbuf`, and its pool outlives the handle's use of it.
    #[inline]
    pub unsafe fn from_raw(m: NonNull<sys::rte_mbuf>) -> Mbuf {
        Mbuf(m)
    }
}

impl Drop for Mbuf {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: self is the unique owner of a valid mbuf chain, never used again.
        unsafe { sys::netml_shim_pktmbuf_free(self.0.as_ptr()) }
    }
}

impl fmt::Debug for Mbuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mbuf")
            .field("ptr", &self.0)
            .field("len", &self.len())
            .field("pkt_len", &self.pkt_len())
            .field("nb_segs", &self.nb_segs())
            .finish()
    }
}
