//! Ethernet ports (ethdev) and their rx/tx queues.

use std::ffi::{CStr, CString};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};

use netml_dpdk_sys as sys;

use crate::eal::{self, EalRef};
use crate::error::{errno, Error, Result};
use crate::mbuf::Mbuf;
use crate::mempool::Mempool;
use crate::ring::{forget_front, Ring};

/// Port ids that have a live [`Port`] handle (so two handles cannot close one port twice).
static CLAIMED: Mutex<Vec<u16>> = Mutex::new(Vec::new());

fn claimed() -> MutexGuard<'static, Vec<u16>> {
    CLAIMED.lock().unwrap_or_else(|p| p.into_inner())
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Number of ports DPDK knows of (`rte_eth_dev_count_avail`): real NICs bound to DPDK and
/// virtual devices (`--vdev`, [`Port::create_vdev`], [`crate::ring_port`]).
pub fn port_count() -> u16 {
    // SAFETY: reads ethdev's port table; 0 before the EAL is initialised.
    unsafe { sys::rte_eth_dev_count_avail() }
}

/// Opens the port named `name` (same as [`Port::by_name`]), e.g. `"net_ring0"` for
/// `--vdev net_ring0`, or a PCI address such as `"0000:3b:00.0"`.
pub fn port_by_name(name: &str) -> Result<Port> {
    Port::by_name(name)
}

/// How to set a port up ([`Port::configure`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortConfig {
    /// Number of rx queues (one per receiving lcore).
    pub rx_queues: u16,
    /// Number of tx queues.
    pub tx_queues: u16,
    /// Descriptors per rx queue (adjusted to the device's limits).
    pub rx_desc: u16,
    /// Descriptors per tx queue (adjusted to the device's limits).
    pub tx_desc: u16,
    /// Spread packets over the rx queues by an IP/UDP/TCP hash (RSS); only used with more
    /// than one rx queue. Fails with `ENOTSUP` if the device has no RSS.
    pub rss: bool,
    /// Receive frames for any destination MAC.
    pub promiscuous: bool,
}

impl Default for PortConfig {
    /// One rx and one tx queue, 1024 descriptors each, no RSS, promiscuous.
    fn default() -> Self {
        PortConfig {
            rx_queues: 1,
            tx_queues: 1,
            rx_desc: 1024,
            tx_desc: 1024,
            rss: false,
            promiscuous: true,
        }
    }
}

/// A MAC address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct MacAddr(pub [u8; 6]);

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }
}

/// Static facts about a port (`rte_eth_dev_info_get`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortInfo {
    /// Device name, e.g. `net_ring0`.
    pub name: String,
    /// Driver name, e.g. `net_ring`, `net_ice`.
    pub driver: String,
    /// Maximum rx queues.
    pub max_rx_queues: u16,
    /// Maximum tx queues.
    pub max_tx_queues: u16,
    /// Maximum descriptors per rx queue.
    pub max_rx_desc: u16,
    /// Maximum descriptors per tx queue.
    pub max_tx_desc: u16,
    /// RSS hash types the device supports (`RTE_ETH_RSS_*` bits; 0: no RSS).
    pub rss_offloads: u64,
    /// Host interface index (0 if none).
    pub if_index: u32,
    /// Minimum and maximum MTU.
    pub mtu_range: (u16, u16),
    /// NUMA socket of the device (`None` if unknown, e.g. virtual devices).
    pub socket: Option<u32>,
}

/// Link state (`rte_eth_link_get_nowait`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Link {
    /// Link up.
    pub up: bool,
    /// Speed in Mb/s (0 if unknown).
    pub speed_mbps: u32,
    /// Full duplex.
    pub full_duplex: bool,
}

/// Port counters (`rte_eth_stats_get`). Per-queue vectors have one entry per configured
/// queue, up to DPDK's 16 queue counters; drivers that keep no per-queue counters report 0.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PortStats {
    /// Packets received.
    pub ipackets: u64,
    /// Packets sent.
    pub opackets: u64,
    /// Bytes received.
    pub ibytes: u64,
    /// Bytes sent.
    pub obytes: u64,
    /// Packets dropped by the device because no rx descriptor was free (rx too slow).
    pub imissed: u64,
    /// Erroneous received packets.
    pub ierrors: u64,
    /// Failed transmissions.
    pub oerrors: u64,
    /// Rx mbuf allocation failures (mempool exhausted).
    pub rx_nombuf: u64,
    /// Packets received per rx queue.
    pub q_ipackets: Vec<u64>,
    /// Bytes received per rx queue.
    pub q_ibytes: Vec<u64>,
    /// Packets sent per tx queue.
    pub q_opackets: Vec<u64>,
    /// Bytes sent per tx queue.
    pub q_obytes: Vec<u64>,
}

#[derive(Default)]
struct State {
    /// (rx queues, tx queues) once configured.
    queues: Option<(u16, u16)>,
    started: bool,
    rx_claimed: Vec<bool>,
    tx_claimed: Vec<bool>,
    /// Mempool of the rx queues: kept alive while the port may hold its mbufs.
    pool: Option<Mempool>,
}

struct Shared {
    id: u16,
    name: String,
    /// Virtual device to remove (`rte_vdev_uninit`) after close.
    vdev: Option<CString>,
    /// Rings a net_ring port was made from, dropped after the port is closed (and before
    /// the mempool in `state`, so the mbufs they free find their pool still there).
    _rings: Vec<Ring>,
    state: Mutex<State>,
    _eal: EalRef,
}

impl Drop for Shared {
    fn drop(&mut self) {
        let st = self.state.get_mut().unwrap_or_else(|p| p.into_inner());
        // SAFETY: this is the last handle to the port (Port and every queue hold an Arc), so
        // no burst call can run concurrently; stop and close are valid on a configured or
        // unconfigured port, and errors on teardown are ignored (nothing to report them to).
        unsafe {
            if st.started {
                sys::rte_eth_dev_stop(self.id);
            }
            sys::rte_eth_dev_close(self.id);
            if let Some(vdev) = &self.vdev {
                sys::rte_vdev_uninit(vdev.as_ptr());
            }
        }
        // The mempool (in State) and rings are dropped after this, once the port released
        // its mbufs.
        claimed().retain(|&p| p != self.id);
    }
}

/// An Ethernet port (ethdev), owned: dropping the last handle (the `Port` and every
/// [`RxQueue`]/[`TxQueue`] taken from it) stops and closes it.
///
/// Life cycle: open ([`Port::by_id`], [`Port::by_name`], [`Port::create_vdev`],
/// [`crate::ring_port`]) → [`Port::configure`] → [`Port::start`] → take queues
/// ([`Port::rx_queue`], [`Port::tx_queue`]) and move them to their lcores → drop the
/// queues → [`Port::stop`] (or just drop everything).
pub struct Port {
    shared: Arc<Shared>,
}

impl Port {
    /// Opens port `id`. Fails with `ENODEV` if there is no such port, `EBUSY` if another
    /// `Port` handle has it.
    pub fn by_id(id: u16) -> Result<Port> {
        let _eal = eal::current("Port::by_id")?;
        // SAFETY: EAL initialised; any id is accepted.
        if unsafe { sys::rte_eth_dev_is_valid_port(id) } == 0 {
            return Err(Error::with_message(
                format!("Port::by_id({id})"),
                errno::ENODEV,
                "no such port",
            ));
        }
        Self::adopt(id, None, Vec::new())
    }

    /// Opens the port named `name` (`rte_eth_dev_get_port_by_name`).
    pub fn by_name(name: &str) -> Result<Port> {
        let _eal = eal::current("Port::by_name")?;
        let op = || format!("rte_eth_dev_get_port_by_name({name:?})");
        let cname = CString::new(name)
            .map_err(|_| Error::with_message(op(), errno::EINVAL, "name contains a NUL byte"))?;
        let mut id = 0u16;
        // SAFETY: EAL initialised; valid C string and out pointer.
        let ret = unsafe { sys::rte_eth_dev_get_port_by_name(cname.as_ptr(), &mut id) };
        if ret < 0 {
            return Err(Error::with_message(op(), -ret, "no port with this name"));
        }
        Self::adopt(id, None, Vec::new())
    }

    /// Creates a virtual device at run time (`rte_vdev_init`, like `--vdev name,args`) and
    /// opens its port, e.g. `create_vdev("net_af_packet0", "iface=eth0")`. The device is
    /// removed when the port is closed.
    pub fn create_vdev(name: &str, args: &str) -> Result<Port> {
        let _eal = eal::current("rte_vdev_init")?;
        let op = || format!("rte_vdev_init({name:?}, {args:?})");
        let cname = CString::new(name)
            .map_err(|_| Error::with_message(op(), errno::EINVAL, "name contains a NUL byte"))?;
        let cargs = CString::new(args)
            .map_err(|_| Error::with_message(op(), errno::EINVAL, "args contain a NUL byte"))?;
        // SAFETY: EAL initialised; valid C strings (copied by DPDK).
        let ret = unsafe { sys::rte_vdev_init(cname.as_ptr(), cargs.as_ptr()) };
        Error::check(ret, op)?;
        let mut id = 0u16;
        // SAFETY: valid C string and out pointer.
        let ret = unsafe { sys::rte_eth_dev_get_port_by_name(cname.as_ptr(), &mut id) };
        if ret < 0 {
            // SAFETY: undo the rte_vdev_init above.
            unsafe { sys::rte_vdev_uninit(cname.as_ptr()) };
            return Err(Error::with_message(
                op(),
                -ret,
                "device created but it has no ethdev port",
            ));
        }
        Self::adopt(id, Some(name.to_string()), Vec::new())
    }

    /// Wraps port `id` (known valid) in a handle, claiming it.
    pub(crate) fn adopt(id: u16, vdev: Option<String>, rings: Vec<Ring>) -> Result<Port> {
        let eal = eal::current("Port")?;
        let vdev = vdev.map(|v| CString::new(v).expect("vdev names have no NUL"));
        {
            let mut c = claimed();
            if c.contains(&id) {
                return Err(Error::with_message(
                    format!("Port({id})"),
                    errno::EBUSY,
                    "port already has a Port handle in this process",
                ));
            }
            c.push(id);
        }
        let mut buf = [0 as std::ffi::c_char; sys::RTE_ETH_NAME_MAX_LEN as usize];
        // SAFETY: buf has RTE_ETH_NAME_MAX_LEN bytes as the function requires.
        let ret = unsafe { sys::rte_eth_dev_get_name_by_port(id, buf.as_mut_ptr()) };
        let name = if ret == 0 {
            // SAFETY: on success buf holds a NUL-terminated name.
            unsafe { CStr::from_ptr(buf.as_ptr()) }
                .to_string_lossy()
                .into_owned()
        } else {
            format!("port{id}")
        };
        Ok(Port {
            shared: Arc::new(Shared {
                id,
                name,
                vdev,
                _rings: rings,
                state: Mutex::new(State::default()),
                _eal: eal,
            }),
        })
    }

    /// The port id.
    pub fn id(&self) -> u16 {
        self.shared.id
    }

    /// The device name.
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    fn op(&self, f: &str) -> String {
        format!("{f}(port {})", self.shared.id)
    }

    fn dev_info(&self) -> Result<sys::rte_eth_dev_info> {
        let mut info = sys::rte_eth_dev_info::default();
        // SAFETY: valid port (claimed, not closed); info is a valid out pointer.
        let ret = unsafe { sys::rte_eth_dev_info_get(self.shared.id, &mut info) };
        Error::check(ret, || self.op("rte_eth_dev_info_get"))?;
        Ok(info)
    }

    /// Driver name, queue limits and other device facts.
    pub fn info(&self) -> Result<PortInfo> {
        let info = self.dev_info()?;
        let driver = if info.driver_name.is_null() {
            String::new()
        } else {
            // SAFETY: DPDK sets driver_name to a static NUL-terminated string.
            unsafe { CStr::from_ptr(info.driver_name) }
                .to_string_lossy()
                .into_owned()
        };
        // SAFETY: valid port.
        let socket = unsafe { sys::rte_eth_dev_socket_id(self.shared.id) };
        Ok(PortInfo {
            name: self.shared.name.clone(),
            driver,
            max_rx_queues: info.max_rx_queues,
            max_tx_queues: info.max_tx_queues,
            max_rx_desc: info.rx_desc_lim.nb_max,
            max_tx_desc: info.tx_desc_lim.nb_max,
            rss_offloads: info.flow_type_rss_offloads,
            if_index: info.if_index,
            mtu_range: (info.min_mtu, info.max_mtu),
            socket: u32::try_from(socket).ok(),
        })
    }

    /// Configures the port and sets up its queues; rx queues receive into mbufs from
    /// `pool` (kept alive by the port). The port must be stopped. Can be called again to
    /// reconfigure.
    pub fn configure(&mut self, cfg: &PortConfig, pool: &Mempool) -> Result<()> {
        let id = self.shared.id;
        let mut st = lock(&self.shared.state);
        if st.started {
            return Err(Error::with_message(
                self.op("rte_eth_dev_configure"),
                errno::EBUSY,
                "port is started; stop it first",
            ));
        }
        if cfg.rx_queues == 0 && cfg.tx_queues == 0 {
            return Err(Error::with_message(
                self.op("rte_eth_dev_configure"),
                errno::EINVAL,
                "no queues",
            ));
        }
        let info = self.dev_info()?;
        if cfg.rx_queues > info.max_rx_queues || cfg.tx_queues > info.max_tx_queues {
            return Err(Error::with_message(
                self.op("rte_eth_dev_configure"),
                errno::EINVAL,
                format!(
                    "{} rx / {} tx queues asked, device allows {} / {}",
                    cfg.rx_queues, cfg.tx_queues, info.max_rx_queues, info.max_tx_queues
                ),
            ));
        }
        let mut conf = sys::rte_eth_conf::default();
        if cfg.rss && cfg.rx_queues > 1 {
            // SAFETY: reading constants.
            let want = unsafe {
                sys::netml_shim_rss_ip | sys::netml_shim_rss_udp | sys::netml_shim_rss_tcp
            };
            let hf = want & info.flow_type_rss_offloads;
            if hf == 0 {
                return Err(Error::with_message(
                    self.op("rte_eth_dev_configure"),
                    errno::ENOTSUP,
                    "device has no IP/UDP/TCP RSS",
                ));
            }
            conf.rxmode.mq_mode = sys::rte_eth_rx_mq_mode::RTE_ETH_MQ_RX_RSS;
            conf.rx_adv_conf.rss_conf.rss_hf = hf;
            conf.rx_adv_conf.rss_conf.rss_key = std::ptr::null_mut(); // driver's default key
        }
        // SAFETY: valid, stopped port; conf is a valid, zero-initialised-then-filled config.
        let ret = unsafe { sys::rte_eth_dev_configure(id, cfg.rx_queues, cfg.tx_queues, &conf) };
        Error::check(ret, || self.op("rte_eth_dev_configure"))?;
        // The queue layout changed: forget the old one before anything else can fail.
        st.queues = None;

        let (mut nb_rx, mut nb_tx) = (cfg.rx_desc, cfg.tx_desc);
        // SAFETY: valid port; valid out pointers.
        let ret = unsafe { sys::rte_eth_dev_adjust_nb_rx_tx_desc(id, &mut nb_rx, &mut nb_tx) };
        Error::check(ret, || self.op("rte_eth_dev_adjust_nb_rx_tx_desc"))?;
        // SAFETY: valid port.
        let socket = unsafe { sys::rte_eth_dev_socket_id(id) };
        let socket = if socket < 0 {
            sys::SOCKET_ID_ANY as u32
        } else {
            socket as u32
        };
        for q in 0..cfg.rx_queues {
            // SAFETY: configured, stopped port; q < configured rx queues; null rxconf means the
            // driver's defaults; the pool is alive and kept alive by the port (st.pool).
            let ret = unsafe {
                sys::rte_eth_rx_queue_setup(id, q, nb_rx, socket, std::ptr::null(), pool.as_ptr())
            };
            Error::check(ret, || {
                format!("rte_eth_rx_queue_setup(port {id}, queue {q})")
            })?;
        }
        for q in 0..cfg.tx_queues {
            // SAFETY: as above; null txconf means the driver's defaults.
            let ret =
                unsafe { sys::rte_eth_tx_queue_setup(id, q, nb_tx, socket, std::ptr::null()) };
            Error::check(ret, || {
                format!("rte_eth_tx_queue_setup(port {id}, queue {q})")
            })?;
        }
        st.pool = Some(pool.clone());
        st.queues = Some((cfg.rx_queues, cfg.tx_queues));
        st.rx_claimed = vec![false; usize::from(cfg.rx_queues)];
        st.tx_claimed = vec![false; usize::from(cfg.tx_queues)];
        drop(st);
        self.set_promiscuous(cfg.promiscuous)
    }

    /// Starts the port (`rte_eth_dev_start`). It must be configured.
    pub fn start(&mut self) -> Result<()> {
        let mut st = lock(&self.shared.state);
        if st.queues.is_none() {
            return Err(Error::with_message(
                self.op("rte_eth_dev_start"),
                errno::EINVAL,
                "port is not configured",
            ));
        }
        if st.started {
            return Ok(());
        }
        // SAFETY: valid, configured port.
        let ret = unsafe { sys::rte_eth_dev_start(self.shared.id) };
        Error::check(ret, || self.op("rte_eth_dev_start"))?;
        st.started = true;
        Ok(())
    }

    /// Stops the port (`rte_eth_dev_stop`). Fails with `EBUSY` while rx/tx queue handles
    /// exist (a queue must not be polled during stop).
    pub fn stop(&mut self) -> Result<()> {
        let mut st = lock(&self.shared.state);
        if !st.started {
            return Ok(());
        }
        if st.rx_claimed.iter().chain(st.tx_claimed.iter()).any(|&c| c) {
            return Err(Error::with_message(
                self.op("rte_eth_dev_stop"),
                errno::EBUSY,
                "rx/tx queue handles still exist; drop them first",
            ));
        }
        // SAFETY: valid, started port; no queue handle exists, so no burst call is running.
        let ret = unsafe { sys::rte_eth_dev_stop(self.shared.id) };
        Error::check(ret, || self.op("rte_eth_dev_stop"))?;
        st.started = false;
        Ok(())
    }

    /// Stops and closes the port now (`rte_eth_dev_close`). Fails with `EBUSY` if queue
    /// handles still exist; the port is then closed when the last of them is dropped.
    pub fn close(self) -> Result<()> {
        match Arc::try_unwrap(self.shared) {
            Ok(shared) => {
                drop(shared); // Shared::drop stops and closes
                Ok(())
            }
            Err(shared) => {
                let id = shared.id;
                drop(shared);
                Err(Error::with_message(
                    format!("rte_eth_dev_close(port {id})"),
                    errno::EBUSY,
                    "rx/tx queue handles still exist; the port closes when they are dropped",
                ))
            }
        }
    }

    /// Whether the port is started.
    pub fn is_started(&self) -> bool {
        lock(&self.shared.state).started
    }

    /// Takes the handle of rx queue `queue`: one per queue, exclusive, movable to the lcore
    /// that polls it. The port must be started.
    pub fn rx_queue(&self, queue: u16) -> Result<RxQueue> {
        self.claim(queue, true)?;
        Ok(RxQueue {
            port: self.shared.id,
            queue,
            shared: Arc::clone(&self.shared),
        })
    }

    /// Takes the handle of tx queue `queue` (see [`Port::rx_queue`]).
    pub fn tx_queue(&self, queue: u16) -> Result<TxQueue> {
        self.claim(queue, false)?;
        Ok(TxQueue {
            port: self.shared.id,
            queue,
            shared: Arc::clone(&self.shared),
        })
    }

    fn claim(&self, queue: u16, rx: bool) -> Result<()> {
        let what = if rx { "rx" } else { "tx" };
        let op = || format!("Port::{what}_queue(port {}, queue {queue})", self.shared.id);
        let mut st = lock(&self.shared.state);
        if !st.started {
            return Err(Error::with_message(
                op(),
                errno::EINVAL,
                "port is not started",
            ));
        }
        let slots = if rx {
            &mut st.rx_claimed
        } else {
            &mut st.tx_claimed
        };
        match slots.get_mut(usize::from(queue)) {
            None => Err(Error::with_message(op(), errno::EINVAL, "no such queue")),
            Some(true) => Err(Error::with_message(
                op(),
                errno::EBUSY,
                "queue handle already taken",
            )),
            Some(c) => {
                *c = true;
                Ok(())
            }
        }
    }

    /// The port's MAC address.
    pub fn mac_addr(&self) -> Result<MacAddr> {
        let mut a = sys::rte_ether_addr::default();
        // SAFETY: valid port; valid out pointer.
        let ret = unsafe { sys::rte_eth_macaddr_get(self.shared.id, &mut a) };
        Error::check(ret, || self.op("rte_eth_macaddr_get"))?;
        Ok(MacAddr(a.addr_bytes))
    }

    /// Enables or disables promiscuous mode. Disabling is a no-op on devices without the
    /// feature.
    pub fn set_promiscuous(&mut self, on: bool) -> Result<()> {
        // SAFETY: valid port.
        let ret = unsafe {
            if on {
                sys::rte_eth_promiscuous_enable(self.shared.id)
            } else {
                sys::rte_eth_promiscuous_disable(self.shared.id)
            }
        };
        if !on && ret == -errno::ENOTSUP {
            return Ok(());
        }
        Error::check(ret, || {
            self.op(if on {
                "rte_eth_promiscuous_enable"
            } else {
                "rte_eth_promiscuous_disable"
            })
        })
        .map(|_| ())
    }

    /// Whether promiscuous mode is on.
    pub fn promiscuous(&self) -> bool {
        // SAFETY: valid port.
        unsafe { sys::rte_eth_promiscuous_get(self.shared.id) == 1 }
    }

    /// Link state, without waiting for autonegotiation.
    pub fn link(&self) -> Result<Link> {
        let mut l = sys::rte_eth_link::default();
        // SAFETY: valid port; valid out pointer.
        let ret = unsafe { sys::rte_eth_link_get_nowait(self.shared.id, &mut l) };
        Error::check(ret, || self.op("rte_eth_link_get_nowait"))?;
        Ok(Link {
            up: l.link_status() != 0,
            speed_mbps: l.link_speed,
            full_duplex: l.link_duplex() != 0,
        })
    }

    /// Reads the port counters.
    pub fn stats(&self) -> Result<PortStats> {
        let mut s = sys::rte_eth_stats::default();
        // SAFETY: valid port; valid out pointer.
        let ret = unsafe { sys::rte_eth_stats_get(self.shared.id, &mut s) };
        Error::check(ret, || self.op("rte_eth_stats_get"))?;
        let (rxq, txq) = lock(&self.shared.state).queues.unwrap_or((0, 0));
        let nrx = usize::from(rxq).min(s.q_ipackets.len());
        let ntx = usize::from(txq).min(s.q_opackets.len());
        Ok(PortStats {
            ipackets: s.ipackets,
            opackets: s.opackets,
            ibytes: s.ibytes,
            obytes: s.obytes,
            imissed: s.imissed,
            ierrors: s.ierrors,
            oerrors: s.oerrors,
            rx_nombuf: s.rx_nombuf,
            q_ipackets: s.q_ipackets[..nrx].to_vec(),
            q_ibytes: s.q_ibytes[..nrx].to_vec(),
            q_opackets: s.q_opackets[..ntx].to_vec(),
            q_obytes: s.q_obytes[..ntx].to_vec(),
        })
    }

    /// Zeroes the port counters.
    pub fn reset_stats(&self) -> Result<()> {
        // SAFETY: valid port.
        let ret = unsafe { sys::rte_eth_stats_reset(self.shared.id) };
        Error::check(ret, || self.op("rte_eth_stats_reset")).map(|_| ())
    }
}

impl fmt::Debug for Port {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Port")
            .field("id", &self.shared.id)
            .field("name", &self.shared.name)
            .finish()
    }
}

/// The receive side of one port queue. Exactly one handle per queue exists; it is `Send`,
/// so it can move to the lcore that polls it, and `rx_burst` takes `&mut self`, so one
/// thread polls it at a time, as DPDK requires.
pub struct RxQueue {
    port: u16,
    queue: u16,
    shared: Arc<Shared>,
}

impl RxQueue {
    /// Receives up to `max` packets (`rte_eth_rx_burst`, at most 65535), appending them to
    /// `out`; returns how many. Never blocks; 0 means nothing was waiting.
    #[inline]
    pub fn rx_burst(&mut self, out: &mut Vec<Mbuf>, max: usize) -> usize {
        let max = max.min(usize::from(u16::MAX));
        out.reserve(max);
        let len = out.len();
        // SAFETY: the port is started and stays so while this handle exists (stop refuses
        // while queue handles exist); this handle is the only poller of the queue (&mut self,
        // one handle per queue); `out` has room for `max` pointers past `len`, and the PMD
        // writes that many valid, owned mbuf pointers at most (Mbuf is repr(transparent)).
        let n = unsafe {
            sys::netml_shim_rx_burst(
                self.port,
                self.queue,
                out.as_mut_ptr().add(len).cast::<*mut sys::rte_mbuf>(),
                max as u16,
            )
        };
        // SAFETY: the PMD initialised n slots.
        unsafe { out.set_len(len + usize::from(n)) };
        usize::from(n)
    }

    /// The port id.
    pub fn port_id(&self) -> u16 {
        self.port
    }

    /// The queue id.
    pub fn queue_id(&self) -> u16 {
        self.queue
    }
}

impl Drop for RxQueue {
    fn drop(&mut self) {
        if let Some(c) = lock(&self.shared.state)
            .rx_claimed
            .get_mut(usize::from(self.queue))
        {
            *c = false;
        }
    }
}

impl fmt::Debug for RxQueue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RxQueue")
            .field("port", &self.port)
            .field("queue", &self.queue)
            .finish()
    }
}

/// The transmit side of one port queue (see [`RxQueue`] for the ownership rules).
pub struct TxQueue {
    port: u16,
    queue: u16,
    shared: Arc<Shared>,
}

impl TxQueue {
    /// Transmits packets from the front of `pkts` (`rte_eth_tx_burst`, at most 65535 per
    /// call). Sent ones are removed from the vector (the driver frees them once sent);
    /// unsent ones stay in it, still owned by the caller (retry, or drop to free them).
    /// Returns how many were sent.
    #[inline]
    pub fn tx_burst(&mut self, pkts: &mut Vec<Mbuf>) -> usize {
        let n = pkts.len().min(usize::from(u16::MAX)) as u16;
        // SAFETY: started port, exclusive queue handle (see RxQueue::rx_burst); pkts holds
        // `n` owned mbufs laid out as `struct rte_mbuf *`. The driver takes ownership of the
        // first `sent`.
        let sent = usize::from(unsafe {
            sys::netml_shim_tx_burst(
                self.port,
                self.queue,
                pkts.as_mut_ptr().cast::<*mut sys::rte_mbuf>(),
                n,
            )
        });
        // SAFETY: the first `sent` mbufs now belong to the driver.
        unsafe { forget_front(pkts, sent) };
        sent
    }

    /// The port id.
    pub fn port_id(&self) -> u16 {
        self.port
    }

    /// The queue id.
    pub fn queue_id(&self) -> u16 {
        self.queue
    }
}

impl Drop for TxQueue {
    fn drop(&mut self) {
        if let Some(c) = lock(&self.shared.state)
            .tx_claimed
            .get_mut(usize::from(self.queue))
        {
            *c = false;
        }
    }
}

impl fmt::Debug for TxQueue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TxQueue")
            .field("port", &self.port)
            .field("queue", &self.queue)
            .finish()
    }
}
