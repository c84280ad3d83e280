//! Tests against a real DPDK EAL: one per test binary (rte_eal_init runs once per process),
//! shared by all tests through a `OnceLock`.
//!
//! The EAL runs without hugepages (`--no-huge -m 256`), PCI or shared config files
//! (`--no-shconf`), with virtual devices: `net_null0` (rx generates packets) and `net_ring0`
//! (tx loops back to rx). Set `NETML_DPDK_TEST_HUGE=1` to use hugepages instead (root and
//! configured hugepages needed). `af_packet_on_loopback` needs root (a raw socket) and is
//! ignored by default: `cargo test -p netml-dpdk -- --ignored`.

use std::sync::OnceLock;

use netml_dpdk::{
    errno, memory_segments, memseg_lists, port_by_name, ring_port, Eal, Error, Mbuf, Mempool, Port,
    PortConfig, Ring, DEFAULT_DATA_ROOM, HEADROOM,
};

fn eal_args() -> Vec<String> {
    let mut args: Vec<String> = [
        "netml-test",
        "--no-pci",
        "--no-telemetry",
        "-l",
        "0",
        "--log-level",
        "warning",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.push("--file-prefix".into());
    args.push(format!("netml-test-{}", std::process::id()));
    if std::env::var("NETML_DPDK_TEST_HUGE").as_deref() == Ok("1") {
        args.extend(["--in-memory", "-m", "256"].iter().map(|s| s.to_string()));
    } else {
        // --no-huge implies legacy memory mode, which --in-memory refuses; --no-shconf keeps
        // the EAL from writing shared config files instead.
        args.extend(
            ["--no-huge", "-m", "256", "--no-shconf"]
                .iter()
                .map(|s| s.to_string()),
        );
    }
    for vdev in ["net_null0", "net_ring0"] {
        args.push("--vdev".into());
        args.push(vdev.into());
    }
    args
}

fn eal() -> &'static Eal {
    static EAL: OnceLock<Eal> = OnceLock::new();
    EAL.get_or_init(|| {
        remove_stale_runtime_dirs();
        Eal::init(&eal_args()).unwrap_or_else(|e| panic!("EAL init: {e}"))
    })
}

/// The EAL leaves an empty runtime directory per file prefix (`/var/run/dpdk/<prefix>` as
/// root); remove those of earlier test processes that have exited.
fn remove_stale_runtime_dirs() {
    let mut bases = vec![
        std::path::PathBuf::from("/var/run/dpdk"),
        std::path::PathBuf::from("/tmp/dpdk"),
    ];
    if let Ok(x) = std::env::var("XDG_RUNTIME_DIR") {
        bases.push(std::path::Path::new(&x).join("dpdk"));
    }
    for base in bases {
        let Ok(entries) = std::fs::read_dir(&base) else {
            continue;
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(pid) = name.strip_prefix("netml-test-") else {
                continue;
            };
            if pid.parse::<u32>().is_ok() && !std::path::Path::new("/proc").join(pid).exists() {
                let _ = std::fs::remove_dir(e.path()); // only succeeds if empty
            }
        }
    }
}

/// A pool with a name unique to the test.
fn pool(name: &str, n: u32) -> Mempool {
    eal();
    Mempool::pktmbuf(name, n, 32, DEFAULT_DATA_ROOM).unwrap_or_else(|e| panic!("{e}"))
}

fn frame(i: usize, len: usize) -> Vec<u8> {
    (0..len).map(|j| (i * 31 + j * 7) as u8).collect()
}

#[test]
fn eal_double_init_is_an_error() {
    let e = eal();
    assert!(e.parsed_args() > 1);
    assert!(netml_dpdk::is_initialized());
    let err = Eal::init(&eal_args()).unwrap_err();
    assert_eq!(err.errno(), errno::EALREADY);
    assert!(err.to_string().contains("once per process"), "{err}");
    assert!(netml_dpdk::tsc_hz() > 0);
    let t0 = netml_dpdk::rdtsc();
    assert!(netml_dpdk::rdtsc() >= t0);
    assert!(e.lcore_count() >= 1);
}

#[test]
fn error_display_is_one_line_with_strerror() {
    let e = Error::from_errno("rte_eth_dev_configure(port 3)", errno::EINVAL);
    let s = e.to_string();
    assert_eq!(
        s,
        "rte_eth_dev_configure(port 3): Invalid argument (errno 22)"
    );
    assert!(!s.contains('\n'));
    // DPDK's own codes get DPDK's text.
    let e = Error::from_errno("x", 1001); // E_RTE_SECONDARY
    assert!(e.message().contains("secondary"), "{e}");
}

#[test]
fn mbuf_alloc_free_restores_in_use() {
    let p = pool("t-mbuf", 1023);
    assert_eq!(p.capacity(), 1023);
    let start = p.in_use();
    assert_eq!(start, 0);
    assert_eq!(p.available(), 1023);
    assert_eq!(p.data_room(), DEFAULT_DATA_ROOM);

    let mut single: Vec<Mbuf> = (0..10).map(|_| Mbuf::alloc(&p).unwrap()).collect();
    let mut bulk = Vec::new();
    Mbuf::alloc_bulk(&p, &mut bulk, 100).unwrap();
    assert_eq!(p.in_use(), start + 110);

    let m = &mut single[0];
    assert!(m.is_empty());
    assert_eq!(m.headroom(), usize::from(HEADROOM));
    m.append(4).unwrap().copy_from_slice(b"abcd");
    m.prepend(2).unwrap().copy_from_slice(b"xy");
    assert_eq!(m.data(), b"xyabcd");
    assert!(m.adj(1));
    assert!(m.trim(1));
    assert_eq!(m.data(), b"yabc");
    m.data_mut()[0] = b'Y';
    assert_eq!(m.data(), b"Yabc");
    assert_eq!((m.len(), m.pkt_len(), m.nb_segs()), (4, 4, 1));
    assert!(
        m.append(1 << 20).is_none(),
        "append beyond tailroom must fail"
    );
    m.reset();
    assert!(m.is_empty());

    // into_raw / from_raw round trip.
    let raw = single.pop().unwrap().into_raw();
    assert_eq!(p.in_use(), start + 110);
    // SAFETY: `raw` came from into_raw just above and nothing else owns it.
    drop(unsafe { Mbuf::from_raw(raw) });
    assert_eq!(p.in_use(), start + 109);

    drop(single); // one by one
    assert_eq!(p.in_use(), start + 100);
    Mbuf::free_bulk(&mut bulk);
    assert!(bulk.is_empty());
    assert_eq!(p.in_use(), start);
    assert_eq!(p.available(), 1023);

    // Exhaustion is an error, not a panic, and all-or-nothing for bulk.
    let mut all = Vec::new();
    Mbuf::alloc_bulk(&p, &mut all, 1023).unwrap();
    assert_eq!(Mbuf::alloc(&p).unwrap_err().errno(), errno::ENOBUFS);
    let mut more = Vec::new();
    assert!(Mbuf::alloc_bulk(&p, &mut more, 1).is_err());
    assert!(more.is_empty());
    drop(all);
    assert_eq!(p.in_use(), start);
}

#[test]
fn mbufs_move_across_threads() {
    let p = pool("t-threads", 255);
    let bufs: Vec<Mbuf> = (0..64)
        .map(|i| Mbuf::from_bytes(&p, &frame(i, 60)).unwrap())
        .collect();
    let p2 = p.clone();
    std::thread::spawn(move || {
        for (i, m) in bufs.iter().enumerate() {
            assert_eq!(m.data(), frame(i, 60).as_slice());
        }
        drop(bufs);
        assert_eq!(p2.in_use(), 0);
    })
    .join()
    .unwrap();
    assert_eq!(p.in_use(), 0);
}

#[test]
fn mempool_dropped_with_mbufs_out_is_leaked_not_freed() {
    let p = pool("t-leak", 63);
    let mut m = Mbuf::from_bytes(&p, b"still valid").unwrap();
    drop(p); // prints a warning and leaks the pool
    m.data_mut()[0] = b'S';
    assert_eq!(m.data(), b"Still valid");
    drop(m); // returns to the leaked pool: no use-after-free
}

#[test]
fn ring_enqueue_dequeue_and_drop_frees_contents() {
    let p = pool("t-ring", 127);
    let r = Ring::new("t-ring-r", 16).unwrap();
    assert_eq!(r.capacity(), 16);
    let mut v: Vec<Mbuf> = (0..20)
        .map(|i| Mbuf::from_bytes(&p, &frame(i, 64)).unwrap())
        .collect();
    assert_eq!(r.enqueue_burst(&mut v), 16);
    assert_eq!(v.len(), 4, "unenqueued mbufs stay with the caller");
    assert_eq!(v[0].data(), frame(16, 64).as_slice());
    assert_eq!((r.count(), r.free_count()), (16, 0));
    let mut out = Vec::new();
    assert_eq!(r.dequeue_burst(&mut out, 3), 3);
    for (i, m) in out.iter().enumerate() {
        assert_eq!(m.data(), frame(i, 64).as_slice());
    }
    assert_eq!(p.in_use(), 20);
    drop(out);
    drop(v);
    assert_eq!(p.in_use(), 13);
    drop(r); // frees the 13 still queued
    assert_eq!(p.in_use(), 0);
}

#[test]
fn ring_port_loops_tx_to_rx_with_exact_bytes() {
    let p = pool("t-loop", 1023);
    let ring = Ring::new("t-loop-r", 1024).unwrap();
    let mut port = ring_port("loop", &[&ring], &[&ring]).unwrap();
    assert_eq!(port.name(), "net_ring_loop");
    let info = port.info().unwrap();
    assert_eq!(info.driver, "net_ring");
    assert!(info.max_rx_queues >= 1);
    port.configure(&PortConfig::default(), &p).unwrap();
    port.start().unwrap();
    port.reset_stats().unwrap();
    let (mut rxq, mut txq) = (port.rx_queue(0).unwrap(), port.tx_queue(0).unwrap());

    let sizes = [60usize, 64, 1088, 1514];
    let mut pkts: Vec<Mbuf> = (0..100)
        .map(|i| Mbuf::from_bytes(&p, &frame(i, sizes[i % 4])).unwrap())
        .collect();
    assert_eq!(txq.tx_burst(&mut pkts), 100);
    assert!(pkts.is_empty());

    let mut rx = Vec::new();
    while rx.len() < 100 {
        assert!(rxq.rx_burst(&mut rx, 32) <= 32);
    }
    assert_eq!(rx.len(), 100);
    for (i, m) in rx.iter().enumerate() {
        assert_eq!(m.data(), frame(i, sizes[i % 4]).as_slice(), "packet {i}");
    }
    assert_eq!(rxq.rx_burst(&mut rx, 32), 0);

    let s = port.stats().unwrap();
    assert_eq!((s.ipackets, s.opackets), (100, 100));
    assert_eq!(s.q_ipackets, vec![100]);
    assert_eq!(s.q_opackets, vec![100]);
    Mbuf::free_bulk(&mut rx);
    assert_eq!(p.in_use(), 0);

    // Pre-built mbufs enqueued straight into the rx ring are received as they are.
    let mut pre: Vec<Mbuf> = (0..32)
        .map(|i| Mbuf::from_bytes(&p, &frame(i, 1088)).unwrap())
        .collect();
    assert_eq!(ring.enqueue_burst(&mut pre), 32);
    assert_eq!(rxq.rx_burst(&mut rx, 64), 32);
    assert!(rx
        .iter()
        .enumerate()
        .all(|(i, m)| m.data() == frame(i, 1088).as_slice()));
    drop(rx);

    // The port cannot stop while queue handles exist; queue handles are exclusive.
    assert_eq!(port.stop().unwrap_err().errno(), errno::EBUSY);
    assert_eq!(port.rx_queue(0).unwrap_err().errno(), errno::EBUSY);
    drop((rxq, txq));
    port.stop().unwrap();
    assert_eq!(port.rx_queue(0).unwrap_err().errno(), errno::EINVAL);
    port.close().unwrap();
    // The name is free again once the port is closed.
    let again = ring_port("loop", &[&ring], &[&ring]).unwrap();
    drop(again);
    assert_eq!(p.in_use(), 0);
}

#[test]
fn tx_burst_keeps_unsent_mbufs() {
    let p = pool("t-txfull", 255);
    let rx_ring = Ring::new("t-txfull-rx", 8).unwrap();
    let tx_ring = Ring::new("t-txfull-tx", 8).unwrap();
    let mut port = ring_port("txfull", &[&rx_ring], &[&tx_ring]).unwrap();
    port.configure(&PortConfig::default(), &p).unwrap();
    port.start().unwrap();
    let mut txq = port.tx_queue(0).unwrap();
    let mut pkts: Vec<Mbuf> = (0..20)
        .map(|i| Mbuf::from_bytes(&p, &frame(i, 100)).unwrap())
        .collect();
    assert_eq!(txq.tx_burst(&mut pkts), 8);
    assert_eq!(pkts.len(), 12);
    assert_eq!(
        pkts[0].data(),
        frame(8, 100).as_slice(),
        "unsent keep their order"
    );
    assert_eq!(p.in_use(), 20);
    let mut sent = Vec::new();
    assert_eq!(tx_ring.dequeue_burst(&mut sent, 100), 8);
    assert_eq!(sent[7].data(), frame(7, 100).as_slice());
    assert_eq!(txq.tx_burst(&mut pkts), 8);
    drop((pkts, sent, txq));
    drop(port); // closes; the tx ring (still holding 8) lives on in `tx_ring`
    assert_eq!(p.in_use(), 8);
    drop(tx_ring);
    assert_eq!(p.in_use(), 0);
}

#[test]
fn vdev_net_ring0_from_eal_args_loops_back() {
    let p = pool("t-ring0", 511);
    let mut port = port_by_name("net_ring0").unwrap();
    assert_eq!(port_by_name("net_ring0").unwrap_err().errno(), errno::EBUSY);
    port.configure(&PortConfig::default(), &p).unwrap();
    port.start().unwrap();
    let mut txq = port.tx_queue(0).unwrap();
    let mut rxq = port.rx_queue(0).unwrap();
    let mut v = vec![Mbuf::from_bytes(&p, b"hello ring").unwrap()];
    assert_eq!(txq.tx_burst(&mut v), 1);
    assert_eq!(rxq.rx_burst(&mut v, 32), 1);
    assert_eq!(v[0].data(), b"hello ring");
    let s = port.stats().unwrap();
    assert_eq!((s.ipackets, s.opackets), (1, 1));
    assert!(port.link().unwrap().up);
    let _ = port.mac_addr().unwrap();
}

#[test]
fn net_null_rx_generates_packets_and_counts_them() {
    let p = pool("t-null", 2047);
    let mut port = Port::by_name("net_null0").unwrap();
    let info = port.info().unwrap();
    assert_eq!(info.driver, "net_null");
    port.configure(
        &PortConfig {
            rx_queues: 1,
            tx_queues: 1,
            rx_desc: 512,
            tx_desc: 512,
            rss: false,
            promiscuous: true,
        },
        &p,
    )
    .unwrap();
    assert!(port.promiscuous());
    let mac = port.mac_addr().unwrap();
    assert_eq!(mac.to_string().len(), 17);
    port.start().unwrap();
    port.reset_stats().unwrap();
    let mut rxq = port.rx_queue(0).unwrap();
    let mut txq = port.tx_queue(0).unwrap();
    let mut rx = Vec::new();
    let mut total = 0;
    for _ in 0..10 {
        let n = rxq.rx_burst(&mut rx, 32);
        assert_eq!(n, 32, "net_null always fills the burst");
        total += n;
        assert!(
            rx.iter().all(|m| m.len() == 64),
            "net_null's default packet size"
        );
        // net_null tx frees what it is given.
        assert_eq!(txq.tx_burst(&mut rx), 32);
    }
    let s = port.stats().unwrap();
    assert_eq!(s.ipackets, total as u64);
    assert_eq!(s.opackets, total as u64);
    // net_null in DPDK 22.11 counts packets but not bytes.
    assert!(s.ibytes == 0 || s.ibytes == 64 * total as u64, "{s:?}");
    assert_eq!(p.in_use(), 0);

    // net_null emulates RSS: reconfigure with two rss queues.
    drop((rxq, txq));
    port.stop().unwrap();
    assert_ne!(info.rss_offloads, 0);
    port.configure(
        &PortConfig {
            rx_queues: 2,
            rss: true,
            ..PortConfig::default()
        },
        &p,
    )
    .unwrap();
    port.start().unwrap();
    let mut q1 = port.rx_queue(1).unwrap();
    assert_eq!(q1.rx_burst(&mut rx, 4), 4);
    assert_eq!(port.stats().unwrap().q_ipackets.len(), 2);
}

#[test]
fn rss_on_a_device_without_it_is_an_error() {
    let p = pool("t-norss", 255);
    let (a, b) = (
        Ring::new("t-norss-a", 64).unwrap(),
        Ring::new("t-norss-b", 64).unwrap(),
    );
    let mut port = ring_port("norss", &[&a, &b], &[&a]).unwrap();
    assert_eq!(port.info().unwrap().rss_offloads, 0);
    let cfg = PortConfig {
        rx_queues: 2,
        rss: true,
        ..PortConfig::default()
    };
    let err = port.configure(&cfg, &p).unwrap_err();
    assert_eq!(err.errno(), errno::ENOTSUP, "{err}");
    // Without RSS, two queues are fine: each polls its own ring.
    port.configure(&PortConfig { rss: false, ..cfg }, &p)
        .unwrap();
    port.start().unwrap();
    let mut v = vec![Mbuf::from_bytes(&p, b"to queue 1").unwrap()];
    assert_eq!(b.enqueue_burst(&mut v), 1);
    let mut q0 = port.rx_queue(0).unwrap();
    let mut q1 = port.rx_queue(1).unwrap();
    assert_eq!(q0.rx_burst(&mut v, 8), 0);
    assert_eq!(q1.rx_burst(&mut v, 8), 1);
    assert_eq!(v[0].data(), b"to queue 1");
    assert_eq!(port.stats().unwrap().q_ipackets, vec![0, 1]);
}

#[test]
fn memory_segments_cover_mbufs() {
    let p = pool("t-memseg", 1023);
    let segs = memory_segments().unwrap();
    assert!(!segs.is_empty());
    assert!(
        segs.windows(2).all(|w| w[0].addr + w[0].len <= w[1].addr),
        "sorted, disjoint"
    );
    let total: usize = segs.iter().map(|s| s.len).sum();
    assert!(total >= 1 << 20, "{segs:?}");
    let mut v = Vec::new();
    Mbuf::alloc_bulk(&p, &mut v, 1023).unwrap();
    for m in &mut v {
        let d = m.append(1088).unwrap();
        let (start, end) = (d.as_ptr() as usize, d.as_ptr() as usize + d.len() - 1);
        let seg = segs
            .iter()
            .find(|s| s.contains(start))
            .unwrap_or_else(|| panic!("{start:#x} not in {segs:?}"));
        assert!(seg.contains(end));
        assert!(seg.contains(m.as_ptr() as usize), "the mbuf header too");
    }
    assert!(!memseg_lists().unwrap().is_empty());
}

#[test]
fn create_vdev_at_runtime() {
    let p = pool("t-null1", 511);
    let mut port = Port::create_vdev("net_null1", "size=128").unwrap();
    port.configure(&PortConfig::default(), &p).unwrap();
    port.start().unwrap();
    let mut rxq = port.rx_queue(0).unwrap();
    let mut rx = Vec::new();
    assert_eq!(rxq.rx_burst(&mut rx, 8), 8);
    assert!(rx.iter().all(|m| m.len() == 128));
    drop((rx, rxq));
    port.close().unwrap();
    // Closed and removed: the name can be created again.
    drop(Port::create_vdev("net_null1", "").unwrap());
}

#[test]
#[ignore = "needs root (AF_PACKET raw socket): cargo test -p netml-dpdk -- --ignored"]
fn af_packet_on_loopback() {
    let p = pool("t-afp", 1023);
    let mut port = Port::create_vdev("net_af_packet0", "iface=lo").unwrap();
    assert_eq!(port.info().unwrap().driver, "net_af_packet");
    port.configure(&PortConfig::default(), &p).unwrap();
    port.start().unwrap();
    let mut txq = port.tx_queue(0).unwrap();
    let mut rxq = port.rx_queue(0).unwrap();
    // An Ethernet frame with a made-up EtherType: on `lo` the kernel loops it back.
    let mut f = vec![0u8; 60];
    f[12] = 0x88;
    f[13] = 0xb5; // local experimental EtherType
    f[14..20].copy_from_slice(b"netml!");
    let mut v = vec![Mbuf::from_bytes(&p, &f).unwrap()];
    assert_eq!(txq.tx_burst(&mut v), 1);
    let mut rx = Vec::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    while !rx
        .iter()
        .any(|m: &Mbuf| m.data().get(14..20) == Some(b"netml!"))
    {
        assert!(std::time::Instant::now() < deadline, "frame not seen on lo");
        rxq.rx_burst(&mut rx, 32);
    }
}
