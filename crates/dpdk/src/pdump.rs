//! Packet capture by secondary processes (`dpdk-dumpcap`, `dpdk-pdump`): the primary's
//! side, `rte_pdump_init`.
//!
//! A capture tool is a DPDK secondary process attached to this one's shared memory: it asks
//! the primary (over the multi-process socket) to copy every packet a port's queues
//! receive into its ring. That needs, in this process:
//!
//! - hugepages with shared files (not `--no-huge`: a secondary cannot map that memory;
//!   not `--in-memory`), a `--file-prefix` the tool is given too, and no `--no-shconf`;
//! - multi-process kept open: DPDK refuses secondaries once a thread of the primary was
//!   adopted with `rte_thread_register`, so while a [`Pdump`] is alive
//!   [`crate::register_thread`] declines (such threads run without an lcore id, hence
//!   without per-lcore mempool caches).

use std::sync::atomic::{AtomicBool, Ordering};

use netml_dpdk_sys as sys;

use crate::eal::{self, EalRef};
use crate::error::{Error, Result};

/// Set while a [`Pdump`] is alive.
static SERVING_CAPTURES: AtomicBool = AtomicBool::new(false);

/// Whether this process serves capture tools now (a [`Pdump`] is alive).
pub fn serving_captures() -> bool {
    SERVING_CAPTURES.load(Ordering::Acquire)
}

/// Packet capture served to secondary processes while this handle lives
/// (`rte_pdump_init`; `rte_pdump_uninit` on drop).
pub struct Pdump {
    _eal: EalRef,
}

impl Pdump {
    /// Starts serving capture requests. Call it right after [`crate::Eal::init`], before
    /// any thread is registered with [`crate::register_thread`].
    pub fn init() -> Result<Pdump> {
        let eal = eal::current("rte_pdump_init")?;
        if SERVING_CAPTURES.swap(true, Ordering::AcqRel) {
            return Err(Error::with_message(
                "rte_pdump_init",
                crate::errno::EALREADY,
                "packet capture is already initialised in this process",
            ));
        }
        // SAFETY: the EAL is initialised (we hold a reference); registers an IPC action.
        let rc = unsafe { sys::rte_pdump_init() };
        if rc != 0 {
            SERVING_CAPTURES.store(false, Ordering::Release);
            let e = Error::last("rte_pdump_init");
            return Err(Error::with_message(
                "rte_pdump_init",
                e.errno(),
                format!(
                    "{} (capture needs the EAL's multi-process channel: hugepages, a \
                     --file-prefix, no --in-memory or --no-shconf, and no thread registered \
                     before)",
                    e.message()
                ),
            ));
        }
        Ok(Pdump { _eal: eal })
    }
}

impl Drop for Pdump {
    fn drop(&mut self) {
        // SAFETY: rte_pdump_init succeeded; unregisters its IPC action.
        unsafe { sys::rte_pdump_uninit() };
        SERVING_CAPTURES.store(false, Ordering::Release);
    }
}

impl std::fmt::Debug for Pdump {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pdump")
    }
}
