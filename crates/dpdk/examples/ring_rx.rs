//! Receive rate of one core from a net_ring port fed with pre-built mbufs.
//!
//! ```sh
//! cargo run --release -p netml-dpdk --example ring_rx -- [--seconds 3] [--burst 32]
//!     [--ring 4096] [--size 1088] [--mode requeue|touch|realloc|all] [--huge] [-- EAL args...]
//! ```
//!
//! A net_ring port's rx queue dequeues from an `rte_ring` that holds `--ring` pre-built
//! `--size`-byte mbufs. One thread loops `rx_burst(burst)` and, to stay in steady state,
//! gives the packets back:
//!
//! - `requeue`: re-enqueues the received mbufs into the ring (measures rx_burst + enqueue);
//! - `touch`: as `requeue`, but first reads each packet's first 64 bytes (its headers), as
//!   the classifier will;
//! - `realloc`: frees the received mbufs to the mempool (one bulk free), allocates as many
//!   (one bulk alloc), sets their length and enqueues them: the mbuf life cycle of a real rx
//!   path.
//!
//! It prints Mpps and ns/packet next to the 100 GbE budget for the frame size. The EAL runs
//! with `--no-huge` (4 KiB pages) unless `--huge` (hugepages, `--in-memory`) is given.

use std::time::Duration;

use netml_dpdk::{
    memory_segments, rdtsc, ring_port, tsc_hz, Eal, Mbuf, Mempool, PortConfig, Ring,
    DEFAULT_DATA_ROOM,
};

struct Opts {
    seconds: f64,
    burst: usize,
    ring: u32,
    size: usize,
    modes: Vec<Mode>,
    huge: bool,
    eal_extra: Vec<String>,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Mode {
    Requeue,
    Touch,
    Realloc,
}

fn usage() -> ! {
    eprintln!(
        "usage: ring_rx [--seconds S] [--burst N] [--ring N] [--size BYTES] \
         [--mode requeue|touch|realloc|all] [--huge] [-- EAL args]"
    );
    std::process::exit(2)
}

fn parse() -> Opts {
    let mut o = Opts {
        seconds: 3.0,
        burst: 32,
        ring: 4096,
        size: 1088,
        modes: vec![Mode::Requeue, Mode::Touch, Mode::Realloc],
        huge: false,
        eal_extra: Vec::new(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = || args.next().unwrap_or_else(|| usage());
        match a.as_str() {
            "--seconds" => o.seconds = val().parse().unwrap_or_else(|_| usage()),
            "--burst" => o.burst = val().parse().unwrap_or_else(|_| usage()),
            "--ring" => o.ring = val().parse().unwrap_or_else(|_| usage()),
            "--size" => o.size = val().parse().unwrap_or_else(|_| usage()),
            "--mode" => {
                o.modes = match val().as_str() {
                    "requeue" => vec![Mode::Requeue],
                    "touch" => vec![Mode::Touch],
                    "realloc" => vec![Mode::Realloc],
                    "all" => vec![Mode::Requeue, Mode::Touch, Mode::Realloc],
                    _ => usage(),
                }
            }
            "--huge" => o.huge = true,
            "--" => {
                o.eal_extra = args.by_ref().collect();
                break;
            }
            _ => usage(),
        }
    }
    o
}

fn main() -> netml_dpdk::Result<()> {
    let o = parse();
    let mut eal_args: Vec<String> = [
        "ring_rx",
        "-m",
        "256",
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
    eal_args.push("--file-prefix".into());
    eal_args.push(format!("netml-ring-rx-{}", std::process::id()));
    if o.huge {
        eal_args.push("--in-memory".into());
    } else {
        eal_args.extend(["--no-huge".to_string(), "--no-shconf".to_string()]);
    }
    eal_args.extend(o.eal_extra.iter().cloned());
    let _eal = Eal::init(&eal_args)?;
    let segs = memory_segments()?;
    println!(
        "DPDK memory: {} range(s), {} MiB, page sizes {:?} KiB",
        segs.len(),
        segs.iter().map(|s| s.len).sum::<usize>() >> 20,
        segs.iter()
            .map(|s| s.hugepage_sz >> 10)
            .collect::<std::collections::BTreeSet<_>>()
    );

    // Enough mbufs for the ring plus one burst in flight (realloc mode), 2^k - 1.
    let n_mbufs = (o.ring as usize + 2 * o.burst + 1).next_power_of_two() as u32 - 1;
    let pool = Mempool::pktmbuf("ring_rx", n_mbufs, 256, DEFAULT_DATA_ROOM)?;
    // SAFETY: this thread is the ring's only producer (it re-enqueues) and, through the port's
    // single rx queue that it alone polls, its only consumer.
    let ring = unsafe { Ring::new_single("ring_rx", o.ring, true, true)? };
    let tx_ring = Ring::new("ring_rx_tx", 64)?;
    let mut port = ring_port("bench", &[&ring], &[&tx_ring])?;
    port.configure(&PortConfig::default(), &pool)?;
    port.start()?;
    let mut rxq = port.rx_queue(0)?;

    // Pre-built frames: a byte pattern, distinct per mbuf.
    let mut pkts = Vec::with_capacity(o.ring as usize);
    for i in 0..o.ring as usize {
        let frame: Vec<u8> = (0..o.size)
            .map(|j| (i.wrapping_mul(131) ^ j) as u8)
            .collect();
        pkts.push(Mbuf::from_bytes(&pool, &frame)?);
    }
    let queued = ring.enqueue_burst(&mut pkts);
    assert_eq!(queued, o.ring as usize);

    let hz = tsc_hz();
    let wire_bits = ((o.size + 4 + 20) * 8) as f64; // + FCS, + preamble and inter-frame gap
    let budget_pps = 100e9 / wire_bits;
    let budget_ns = 1e9 / budget_pps;
    println!(
        "ring_rx: net_ring port, {} pre-built {}-byte mbufs, rx_burst({}), one core, TSC {:.3} GHz, DPDK {}",
        o.ring,
        o.size,
        o.burst,
        hz as f64 / 1e9,
        Eal::version()
    );
    println!(
        "100 GbE budget for {}-byte frames (+4 FCS +20 preamble/IFG): {:.2} Mpps = {:.1} ns/packet",
        o.size,
        budget_pps / 1e6,
        budget_ns
    );

    for &mode in &o.modes {
        let mut run_for = |dur| run(mode, &o, &mut rxq, &ring, &pool, hz, dur);
        port.reset_stats()?;
        // Warm up, then measure.
        run_for(Duration::from_millis(300));
        port.reset_stats()?;
        let (packets, ticks) = run_for(Duration::from_secs_f64(o.seconds));
        let secs = ticks as f64 / hz as f64;
        let mpps = packets as f64 / secs / 1e6;
        let ns = secs * 1e9 / packets as f64;
        let stats = port.stats()?;
        assert_eq!(stats.ipackets, packets, "port counters agree");
        println!(
            "{:<8} {:>11} packets in {:.2} s: {:>6.2} Mpps, {:>5.2} ns/packet ({:.1}x the 100 GbE budget)",
            format!("{mode:?}").to_lowercase(),
            packets,
            secs,
            mpps,
            ns,
            budget_ns / ns,
        );
    }
    assert_eq!(
        ring.count() as usize,
        o.ring as usize,
        "every mbuf went back to the ring"
    );
    assert_eq!(pool.in_use(), o.ring, "no mbuf leaked");
    Ok(())
}

/// Runs one mode for `dur`; returns (packets, TSC ticks).
fn run(
    mode: Mode,
    o: &Opts,
    rxq: &mut netml_dpdk::RxQueue,
    ring: &Ring,
    pool: &Mempool,
    hz: u64,
    dur: Duration,
) -> (u64, u64) {
    let mut burst: Vec<Mbuf> = Vec::with_capacity(o.burst);
    let mut packets = 0u64;
    let mut sink = 0u64;
    let start = rdtsc();
    let end = start + (dur.as_secs_f64() * hz as f64) as u64;
    let mut iter = 0u32;
    loop {
        let n = rxq.rx_burst(&mut burst, o.burst);
        packets += n as u64;
        match mode {
            Mode::Requeue => {}
            Mode::Touch => {
                for m in &burst {
                    let d = m.data();
                    // First cache line: Ethernet + IP + UDP + fragment header.
                    sink = sink.wrapping_add(
                        u64::from(d[0]) + u64::from(d[23]) + u64::from(d[42]) + u64::from(d[63]),
                    );
                }
            }
            Mode::Realloc => {
                Mbuf::free_bulk(&mut burst);
                Mbuf::alloc_bulk(pool, &mut burst, n)
                    .expect("pool sized for the ring plus a burst");
                for m in &mut burst {
                    m.append(o.size).expect("size fits the data room");
                }
            }
        }
        let q = ring.enqueue_burst(&mut burst);
        debug_assert_eq!(q, n);
        iter = iter.wrapping_add(1);
        if iter.is_multiple_of(256) && rdtsc() >= end {
            break;
        }
    }
    std::hint::black_box(sink);
    (packets, rdtsc() - start)
}
