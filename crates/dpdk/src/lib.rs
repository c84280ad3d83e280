//! Safe DPDK layer for netml.
//!
//! Three layers, as in cudarc: `netml-dpdk-sys` (bindgen over an allowlist of DPDK 22.11
//! plus a C shim for its static-inline functions), thin `Result`-returning wrappers with
//! [`Error`] carrying `rte_errno` and `rte_strerror`, and RAII types here:
//!
//! - [`Eal`]: `rte_eal_init` with pass-through arguments, once per process.
//! - [`Mempool`]: pktmbuf pools; [`Mbuf`]: an owning mbuf handle (drop frees it).
//! - [`Port`] with [`RxQueue`] / [`TxQueue`] handles (one owner each, `Send`).
//! - [`Ring`] and [`ring_port`]: net_ring ports over `rte_ring`s.
//! - [`memory_segments`]: DPDK's memory ranges (for GPU registration); [`tsc_hz`], [`rdtsc`].
//! - [`telemetry`]: commands of the application's own on DPDK's telemetry socket.
//! - [`Pdump`]: packet capture served to `dpdk-dumpcap` (`rte_pdump_init`).
//!
//! Ownership rules that make the API safe:
//! - Every object (mempool, port, ring) keeps the EAL alive; `rte_eal_cleanup` runs when
//!   the last one goes (or [`Eal::cleanup`] when nothing else is left).
//! - A port keeps its rx mempool and its rings alive; queue handles keep the port open, and
//!   the port cannot be stopped while they exist.
//! - A mempool dropped while mbufs are still out is leaked rather than freed.
//!
//! ```no_run
//! use netml_dpdk::{Eal, Mempool, Mbuf, Port, PortConfig, DEFAULT_DATA_ROOM};
//! # fn main() -> netml_dpdk::Result<()> {
//! let _eal = Eal::init(&["app", "--no-huge", "-m", "256", "--no-pci", "-l", "0",
//!                        "--file-prefix", "app-1", "--vdev", "net_ring0"])?;
//! let pool = Mempool::pktmbuf("rx", 8191, 256, DEFAULT_DATA_ROOM)?;
//! let mut port = Port::by_name("net_ring0")?;
//! port.configure(&PortConfig::default(), &pool)?;
//! port.start()?;
//! let (mut rxq, mut txq) = (port.rx_queue(0)?, port.tx_queue(0)?);
//! let mut pkts = vec![Mbuf::from_bytes(&pool, &[0u8; 64])?];
//! txq.tx_burst(&mut pkts);                   // net_ring0 loops tx back to rx
//! let mut rx = Vec::with_capacity(32);
//! let n = rxq.rx_burst(&mut rx, 32);
//! assert_eq!(n, 1);
//! # Ok(()) }
//! ```

#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs, clippy::undocumented_unsafe_blocks)]

mod eal;
mod error;
mod mbuf;
mod memory;
mod mempool;
mod pdump;
mod port;
mod ring;
pub mod telemetry;

pub use eal::{is_initialized, lcore_id, rdtsc, register_thread, socket_id, tsc_hz, Eal};
pub use error::{errno, Error, Result};
pub use mbuf::Mbuf;
pub use memory::{memory_segments, memseg_lists, MemSegment, MemsegList};
pub use mempool::{Mempool, DEFAULT_DATA_ROOM, HEADROOM};
pub use pdump::{serving_captures, Pdump};
pub use port::{
    port_by_name, port_count, Link, MacAddr, Port, PortConfig, PortInfo, PortStats, RxQueue,
    TxQueue,
};
pub use ring::{ring_port, Ring};

/// The raw bindings, for what this layer does not wrap.
pub use netml_dpdk_sys as sys;
