//! `rte_ring`s of mbufs, and net_ring ports made from them.

use std::ffi::CString;
use std::ptr::NonNull;
use std::sync::Arc;

use netml_dpdk_sys as sys;

use crate::eal::{self, EalRef};
use crate::error::{errno, Error, Result};
use crate::mbuf::Mbuf;
use crate::port::Port;

/// A lockless FIFO of mbufs (`rte_ring`), e.g. the receive or transmit side of a net_ring
/// port ([`ring_port`]).
///
/// The ring owns the mbufs in it: dropping the last handle frees them, then the ring.
/// Cloning is cheap and shares the ring. Rings from [`Ring::new`] are multi-producer and
/// multi-consumer; [`Ring::new_single`] makes faster single-producer/single-consumer ones.
#[derive(Clone)]
pub struct Ring {
    inner: Arc<Inner>,
}

struct Inner {
    ptr: NonNull<sys::rte_ring>,
    name: String,
    _eal: EalRef,
}

// SAFETY: an rte_ring is used only through DPDK's ring functions; multi-producer/consumer
// rings are thread-safe, and single-producer/consumer rings can only be made through the
// unsafe `Ring::new_single`, whose caller promises not to use them concurrently from two
// producers or two consumers.
unsafe impl Send for Inner {}
// SAFETY: as above.
unsafe impl Sync for Inner {}

impl Drop for Inner {
    fn drop(&mut self) {
        // Free the mbufs still queued (the ring owns them), then the ring.
        let mut buf: Vec<*mut std::ffi::c_void> = vec![std::ptr::null_mut(); 256];
        loop {
            // SAFETY: the ring is alive and this is its last handle (no port uses it: ports
            // hold a clone), so this thread is its only consumer.
            let n = unsafe {
                sys::netml_shim_ring_dequeue_burst(
                    self.ptr.as_ptr(),
                    buf.as_mut_ptr(),
                    buf.len() as u32,
                    std::ptr::null_mut(),
                )
            } as usize;
            if n == 0 {
                break;
            }
            // SAFETY: everything in a Ring is an owned mbuf (Ring only accepts Mbufs, and the
            // net_ring PMD only enqueues mbufs handed to tx_burst).
            unsafe { sys::rte_pktmbuf_free_bulk(buf.as_mut_ptr().cast(), n as u32) };
        }
        // SAFETY: the ring is empty and unreferenced.
        unsafe { sys::rte_ring_free(self.ptr.as_ptr()) };
    }
}

impl Ring {
    /// Creates a multi-producer, multi-consumer ring holding up to `capacity` mbufs, on the
    /// calling thread's socket. `name` must be unique in the process.
    pub fn new(name: &str, capacity: u32) -> Result<Ring> {
        Self::create(name, capacity, 0)
    }

    /// Creates a ring with single-producer and/or single-consumer synchronisation (faster:
    /// no compare-and-swap).
    ///
    /// # Safety
    ///
    /// With `single_producer`, at most one thread may enqueue at a time; with
    /// `single_consumer`, at most one thread may dequeue at a time. That counts every user:
    /// this handle and its clones ([`Ring::enqueue_burst`] / [`Ring::dequeue_burst`]) and a
    /// port made with [`ring_port`] (its tx queue enqueues into its tx rings, its rx queue
    /// dequeues from its rx rings).
    pub unsafe fn new_single(
        name: &str,
        capacity: u32,
        single_producer: bool,
        single_consumer: bool,
    ) -> Result<Ring> {
        let mut flags = 0;
        if single_producer {
            flags |= sys::RING_F_SP_ENQ;
        }
        if single_consumer {
            flags |= sys::RING_F_SC_DEQ;
        }
        Self::create(name, capacity, flags)
    }

    fn create(name: &str, capacity: u32, flags: u32) -> Result<Ring> {
        let eal = eal::current("rte_ring_create")?;
        let op = || format!("rte_ring_create({name:?}, {capacity})");
        let cname = CString::new(name)
            .map_err(|_| Error::with_message(op(), errno::EINVAL, "name contains a NUL byte"))?;
        // SAFETY: reads a constant.
        let max = unsafe { sys::netml_shim_ring_namesize } as usize;
        if name.len() >= max {
            return Err(Error::with_message(
                op(),
                errno::ENAMETOOLONG,
                format!("name longer than {} bytes", max - 1),
            ));
        }
        // SAFETY: reads a thread-local variable.
        let socket = unsafe { sys::rte_socket_id() } as i32;
        // SAFETY: EAL initialised; valid C string (copied by DPDK). RING_F_EXACT_SZ makes the
        // usable capacity exactly `capacity`.
        let ptr = unsafe {
            sys::rte_ring_create(
                cname.as_ptr(),
                capacity,
                socket,
                flags | sys::RING_F_EXACT_SZ,
            )
        };
        let ptr = NonNull::new(ptr).ok_or_else(|| Error::last(op()))?;
        Ok(Ring {
            inner: Arc::new(Inner {
                ptr,
                name: name.to_string(),
                _eal: eal,
            }),
        })
    }

    /// The ring's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// Enqueues as many mbufs from the front of `pkts` as fit (`rte_ring_enqueue_burst`),
    /// removing them from the vector; the rest stay in it, still owned by the caller.
    /// Returns how many were enqueued.
    pub fn enqueue_burst(&self, pkts: &mut Vec<Mbuf>) -> usize {
        let len = pkts.len();
        let n = len.min(u32::MAX as usize) as u32;
        // SAFETY: pkts holds `len` owned mbufs, laid out as `struct rte_mbuf *` (Mbuf is
        // repr(transparent)); the ring is alive; the synchronisation contract is the
        // constructor's.
        let done = unsafe {
            sys::netml_shim_ring_enqueue_burst(
                self.inner.ptr.as_ptr(),
                pkts.as_ptr().cast::<*mut std::ffi::c_void>(),
                n,
                std::ptr::null_mut(),
            )
        } as usize;
        // SAFETY: the first `done` mbufs now belong to the ring: shift the rest to the front
        // without dropping anything.
        unsafe { forget_front(pkts, done) };
        done
    }

    /// Dequeues up to `max` mbufs (`rte_ring_dequeue_burst`), appending them to `out`.
    /// Returns how many.
    pub fn dequeue_burst(&self, out: &mut Vec<Mbuf>, max: usize) -> usize {
        let max = max.min(u32::MAX as usize);
        out.reserve(max);
        let len = out.len();
        // SAFETY: `out` has room for max pointers past len; the ring only holds owned mbufs,
        // which become owned by `out`.
        let n = unsafe {
            sys::netml_shim_ring_dequeue_burst(
                self.inner.ptr.as_ptr(),
                out.as_mut_ptr().add(len).cast::<*mut std::ffi::c_void>(),
                max as u32,
                std::ptr::null_mut(),
            )
        } as usize;
        // SAFETY: n slots initialised above.
        unsafe { out.set_len(len + n) };
        n
    }

    /// Mbufs currently queued.
    pub fn count(&self) -> u32 {
        // SAFETY: ring alive.
        unsafe { sys::netml_shim_ring_count(self.inner.ptr.as_ptr()) }
    }

    /// Free slots.
    pub fn free_count(&self) -> u32 {
        // SAFETY: ring alive.
        unsafe { sys::netml_shim_ring_free_count(self.inner.ptr.as_ptr()) }
    }

    /// Maximum number of mbufs the ring holds.
    pub fn capacity(&self) -> u32 {
        // SAFETY: ring alive.
        unsafe { sys::netml_shim_ring_get_capacity(self.inner.ptr.as_ptr()) }
    }

    /// The raw `rte_ring` pointer, valid while this ring (any clone) is alive.
    pub fn as_ptr(&self) -> *mut sys::rte_ring {
        self.inner.ptr.as_ptr()
    }
}

impl std::fmt::Debug for Ring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ring")
            .field("name", &self.name())
            .field("count", &self.count())
            .field("capacity", &self.capacity())
            .finish()
    }
}

/// Removes the first `n` elements of `v` without dropping them.
///
/// # Safety
///
/// Ownership of those `n` elements must have been transferred elsewhere.
pub(crate) unsafe fn forget_front<T>(v: &mut Vec<T>, n: usize) {
    let len = v.len();
    debug_assert!(n <= len);
    if n == 0 {
        return;
    }
    let p = v.as_mut_ptr();
    // SAFETY: n <= len; the length is set to 0 first, so nothing is dropped twice even if
    // this were interrupted; then the len - n kept elements move to the front (overlapping
    // copy) and become the vector's contents.
    unsafe {
        v.set_len(0);
        std::ptr::copy(p.add(n), p, len - n);
        v.set_len(len - n);
    }
}

/// Creates a net_ring port (`rte_eth_from_rings`) whose rx queue `i` dequeues from `rx[i]`
/// and whose tx queue `i` enqueues into `tx[i]`. Passing the same ring as rx and tx makes a
/// loopback port.
///
/// The port is named `net_ring_<name>`; it keeps the rings alive, and when it is closed its
/// virtual device is removed, so the name can be reused.
pub fn ring_port(name: &str, rx: &[&Ring], tx: &[&Ring]) -> Result<Port> {
    let _eal = eal::current("rte_eth_from_rings")?;
    let op = || format!("rte_eth_from_rings({name:?})");
    let cname = CString::new(name)
        .map_err(|_| Error::with_message(op(), errno::EINVAL, "name contains a NUL byte"))?;
    if rx.is_empty() && tx.is_empty() {
        return Err(Error::with_message(op(), errno::EINVAL, "no rings"));
    }
    let rxp: Vec<*mut sys::rte_ring> = rx.iter().map(|r| r.as_ptr()).collect();
    let txp: Vec<*mut sys::rte_ring> = tx.iter().map(|r| r.as_ptr()).collect();
    // SAFETY: reads a thread-local variable (SOCKET_ID_ANY on a non-EAL thread, which DPDK
    // accepts as "any").
    let socket = unsafe { sys::rte_socket_id() };
    // SAFETY: EAL initialised; the ring arrays are valid for the call, and the rings stay
    // alive as long as the port (it keeps clones).
    let ret = unsafe {
        sys::rte_eth_from_rings(
            cname.as_ptr(),
            rxp.as_ptr(),
            rxp.len() as u32,
            txp.as_ptr(),
            txp.len() as u32,
            socket,
        )
    };
    if ret < 0 {
        return Err(Error::last(op()));
    }
    let port_id =
        u16::try_from(ret).map_err(|_| Error::with_message(op(), errno::EINVAL, "bad port id"))?;
    let rings = rx.iter().chain(tx.iter()).map(|r| (*r).clone()).collect();
    Port::adopt(port_id, Some(format!("net_ring_{name}")), rings)
}
