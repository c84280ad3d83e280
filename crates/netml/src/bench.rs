//! `netml bench`: measurements of the data plane on in-memory sources.
//!
//! `netml bench rx` measures what one rx core costs per packet: `rx_burst` from a net_ring
//! port, frame classification (`netml_verify::receive`) and the completeness verifier
//! (`Verifier::push`), driven by the pipeline's own [`Worker`] loop on one thread.
//!
//! ```text
//!            rte_ring (net_ring rx queue 0)
//! feeder ---------------------------------> Worker::run_observed (rx_burst, classify, verify)
//!   ^                                              |
//!   +------------ dispatch queue (Complete) -------+
//!   rewrite image id + header checksum, re-enqueue
//! ```
//!
//! The feeder starts with enough pre-built fragment frames (real frames from the pktgen
//! fragmenter) in mbufs to keep the ring full, interleaves the flows, and recycles the mbufs
//! of every image the worker completes: it gives each a new image id (so images never
//! repeat and the verifier never sees a late fragment), fixes the fragment header checksum
//! and enqueues them again. Nothing is allocated or freed in steady state.
//!
//! The worker's own time is measured with the TSC around every loop iteration that
//! received packets (empty polls, and iterations the scheduler interrupted, are left out), so
//! the per-core figure holds whether the feeder keeps up or not; the feeder's delivered rate
//! and busy time are reported beside it. Other processes on a small machine are detected
//! through the threads' scheduler statistics (`/proc/.../schedstat`).

use clap::{Args as ClapArgs, Subcommand};
use netml_dpdk::{
    memory_segments, rdtsc, register_thread, ring_port, tsc_hz, Eal, Mbuf, Mempool, PortConfig,
    Ring, DEFAULT_DATA_ROOM,
};
use netml_pipeline::clock::Clock;
use netml_pipeline::config::ChainAction;
use netml_pipeline::stats::{Shared, WorkerCounters};
use netml_pipeline::worker::{dispatch_queue, Complete, Worker};
use netml_pktgen::flows::{FlowConfig, DEFAULT_DST, DEFAULT_SRC};
use netml_pktgen::fragmenter::{self, Damage, FragmentId};
use netml_pktgen::tensor;
use netml_verify::Verifier;
use netml_wire::fragment::{self, Dtype};
use netml_wire::frame::{self, Classified};
use std::collections::VecDeque;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// 100 GbE budget per 1 KiB-payload frame (1102 B on the wire incl. preamble and IFG).
const BUDGET_NS: f64 = 88.0;
/// The same budget as a packet rate.
const BUDGET_MPPS: f64 = 11.34;
/// What one rx core should sustain.
const TARGET_MPPS: f64 = 20.0;
/// Offset of the image id in the fragment header (docs/protocol.md; checked at start-up).
const IMAGE_ID_OFFSET: usize = 4;
/// Model id of the generated images.
const MODEL: u8 = 1;

/// Options of `netml bench`.
#[derive(ClapArgs)]
pub struct Args {
    #[command(subcommand)]
    what: What,
}

#[derive(Subcommand)]
enum What {
    /// Rx + classify + verify per core: the pipeline's rx worker loop on one thread, fed
    /// from a net_ring port by a feeder thread that recycles the mbufs of completed images.
    Rx(RxArgs),
}

/// Options of `netml bench rx`.
#[derive(ClapArgs)]
struct RxArgs {
    /// Seconds measured (after the warm-up).
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// Seconds run before measuring.
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Packets per rx burst.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u16).range(1..=512))]
    burst: u16,
    /// Flows (source ports) the images are spread over.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=1024))]
    flows: u16,
    /// Packets of one flow the feeder sends before switching to the next flow (1: every
    /// packet belongs to another image than the one before, the verifier's worst case).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..))]
    interleave: u16,
    /// Capacity of the rx ring (what a NIC rx descriptor ring would hold).
    #[arg(long, default_value_t = 4096)]
    ring: u32,
    /// Tensor shape of an image.
    #[arg(long, default_value = "1x3x224x224")]
    shape: String,
    /// Payload bytes per fragment.
    #[arg(long, default_value_t = 1024)]
    frag_size: u16,
    /// Run on hugepages (`--in-memory` instead of `--no-huge -m 2048`); configure them first
    /// with `scripts/hugepages setup`.
    #[arg(long)]
    huge: bool,
    /// Extra EAL argument (repeatable), appended to the defaults.
    #[arg(long = "eal", allow_hyphen_values = true)]
    eal: Vec<String>,
    /// Append one CSV row per run to this file (header written when the file is new):
    /// mode, mpps, ns_per_packet, images_per_s, budget_ns, target_mpps.
    #[arg(long)]
    csv: Option<PathBuf>,
}

/// Runs `netml bench ...`.
pub fn run(a: Args) -> Result<ExitCode, String> {
    match a.what {
        What::Rx(a) => rx(a),
    }
}

/// Published by the rx thread every few hundred polls.
#[derive(Default)]
struct RxMeter {
    packets: AtomicU64,
    /// TSC cycles of loop iterations that received packets.
    busy: AtomicU64,
    polls: AtomicU64,
    busy_polls: AtomicU64,
    /// Iterations with packets left out as preempted, and their packets.
    preempted: AtomicU64,
    preempted_packets: AtomicU64,
}

/// Published by the feeder every few hundred iterations.
#[derive(Default)]
struct FeedMeter {
    packets: AtomicU64,
    /// TSC cycles of iterations that recycled images or enqueued packets.
    busy: AtomicU64,
    images: AtomicU64,
    /// Enqueue attempts that found the ring full.
    ring_full: AtomicU64,
}

/// Everything at one moment.
#[derive(Clone)]
struct Sample {
    at: Instant,
    tsc: u64,
    rx_packets: u64,
    rx_busy: u64,
    rx_polls: u64,
    rx_busy_polls: u64,
    rx_preempted: u64,
    rx_preempted_packets: u64,
    feed_packets: u64,
    feed_busy: u64,
    feed_ring_full: u64,
    worker: WorkerCounters,
    /// Scheduler statistics of the rx and feeder threads.
    rx_sched: SchedStat,
    feed_sched: SchedStat,
    /// Sum and number of ring occupancy samples.
    ring_sum: u64,
    ring_n: u64,
}

/// A thread's `/proc/<pid>/task/<tid>/schedstat`: nanoseconds on a CPU and waiting for one.
#[derive(Clone, Copy, Default)]
struct SchedStat {
    run_ns: u64,
    wait_ns: u64,
}

impl SchedStat {
    /// Reads it for the thread whose `/proc/<pid>/task/<tid>` directory is `dir`.
    fn read(dir: Option<&Path>) -> SchedStat {
        let text = dir.and_then(|d| std::fs::read_to_string(d.join("schedstat")).ok());
        let mut it = text
            .as_deref()
            .unwrap_or("")
            .split_whitespace()
            .map(|v| v.parse::<u64>().unwrap_or(0));
        SchedStat {
            run_ns: it.next().unwrap_or(0),
            wait_ns: it.next().unwrap_or(0),
        }
    }
}

/// The rx thread's figures over the 100-ms intervals in which it did not wait for a CPU
/// (other processes on a small machine take it away now and then).
#[derive(Default)]
struct Quiet {
    packets: u64,
    busy: u64,
    wall_s: f64,
    total_s: f64,
}

impl Quiet {
    /// Less than this fraction of an interval spent waiting for a CPU counts as undisturbed
    /// (the sampling thread itself wakes up briefly every interval).
    const MAX_WAIT: f64 = 0.005;

    fn add(&mut self, a: &Sample, b: &Sample) {
        let wall_s = b.at.duration_since(a.at).as_secs_f64();
        self.total_s += wall_s;
        let wait = b.rx_sched.wait_ns.saturating_sub(a.rx_sched.wait_ns) as f64 / 1e9;
        if wait <= Self::MAX_WAIT * wall_s {
            self.packets += b.rx_packets.saturating_sub(a.rx_packets);
            self.busy += b.rx_busy.saturating_sub(a.rx_busy);
            self.wall_s += wall_s;
        }
    }

    fn coverage(&self) -> f64 {
        if self.total_s > 0.0 {
            self.wall_s / self.total_s
        } else {
            0.0
        }
    }

    /// Mpps and ns/packet of the rx core in those intervals.
    fn figures(&self, hz: f64) -> Option<(f64, f64)> {
        (self.packets > 0 && self.busy > 0).then(|| {
            let s = self.busy as f64 / hz;
            (self.packets as f64 / s / 1e6, s * 1e9 / self.packets as f64)
        })
    }
}

/// Rates between two samples.
struct Rates {
    wall_s: f64,
    /// Per rx core: packets over the rx thread's own time, its loop iterations that
    /// received packets (TSC), less those the scheduler interrupted.
    mpps: f64,
    ns_per_packet: f64,
    images_per_s: f64,
    rx_busy: f64,
    /// Fraction of the wall time the rx thread was on a CPU, and waiting for one.
    rx_oncpu: f64,
    rx_wait: f64,
    /// Iterations left out as preempted, and their packets.
    rx_preempted: u64,
    rx_preempted_packets: u64,
    pkts_per_poll: f64,
    wall_mpps: f64,
    wall_images_per_s: f64,
    feed_mpps: f64,
    feed_ns_per_packet: f64,
    feed_busy: f64,
    feed_oncpu: f64,
    feed_ring_full: u64,
    ring_fill: f64,
}

impl Rates {
    fn between(a: &Sample, b: &Sample, hz: f64, frags_per_image: f64, ring: u32) -> Rates {
        let wall_s = b.at.duration_since(a.at).as_secs_f64().max(1e-9);
        let wall_cycles = b.tsc.saturating_sub(a.tsc).max(1) as f64;
        let pk = b.rx_packets.saturating_sub(a.rx_packets) as f64;
        let all_pk = pk
            + b.rx_preempted_packets
                .saturating_sub(a.rx_preempted_packets) as f64;
        let busy = b.rx_busy.saturating_sub(a.rx_busy) as f64;
        let run_ns = b.rx_sched.run_ns.saturating_sub(a.rx_sched.run_ns) as f64;
        let wait_ns = b.rx_sched.wait_ns.saturating_sub(a.rx_sched.wait_ns) as f64;
        let busy_s = busy / hz;
        let fpk = b.feed_packets.saturating_sub(a.feed_packets) as f64;
        let fbusy = b.feed_busy.saturating_sub(a.feed_busy) as f64;
        let mpps = if busy_s > 0.0 { pk / busy_s / 1e6 } else { 0.0 };
        let images = b
            .worker
            .verifier
            .images_completed
            .saturating_sub(a.worker.verifier.images_completed) as f64;
        let ring_n = b.ring_n.saturating_sub(a.ring_n);
        Rates {
            wall_s,
            mpps,
            ns_per_packet: if pk > 0.0 { busy_s * 1e9 / pk } else { 0.0 },
            images_per_s: mpps * 1e6 / frags_per_image,
            rx_busy: busy / wall_cycles,
            rx_oncpu: run_ns / 1e9 / wall_s,
            rx_wait: wait_ns / 1e9 / wall_s,
            rx_preempted: b.rx_preempted.saturating_sub(a.rx_preempted),
            rx_preempted_packets: b
                .rx_preempted_packets
                .saturating_sub(a.rx_preempted_packets),
            pkts_per_poll: pk / (b.rx_busy_polls.saturating_sub(a.rx_busy_polls)).max(1) as f64,
            wall_mpps: all_pk / wall_s / 1e6,
            wall_images_per_s: images / wall_s,
            feed_mpps: fpk / wall_s / 1e6,
            feed_ns_per_packet: if fpk > 0.0 {
                fbusy / hz * 1e9 / fpk
            } else {
                0.0
            },
            feed_busy: fbusy / wall_cycles,
            feed_oncpu: b.feed_sched.run_ns.saturating_sub(a.feed_sched.run_ns) as f64
                / 1e9
                / wall_s,
            feed_ring_full: b.feed_ring_full.saturating_sub(a.feed_ring_full),
            ring_fill: if ring_n > 0 {
                b.ring_sum.saturating_sub(a.ring_sum) as f64 / ring_n as f64 / f64::from(ring)
            } else {
                0.0
            },
        }
    }

    fn live(&self, elapsed: f64, warming: bool, w: &WorkerCounters, polls: u64) -> String {
        format!(
            "[{elapsed:6.1}s{}] rx {:.2} Mpps/core {:.1} ns/pkt {:.0} img/s/core (busy {:.0}%, on CPU {:.0}%, {:.1} pkts/poll, {} polls) | wall {:.2} Mpps {:.0} img/s | feeder {:.2} Mpps {:.1} ns/pkt busy {:.0}% | ring {:.0}% full | invalid {} dropped {} backpressure {}",
            if warming { " warm-up" } else { "" },
            self.mpps,
            self.ns_per_packet,
            self.images_per_s,
            self.rx_busy * 100.0,
            self.rx_oncpu * 100.0,
            self.pkts_per_poll,
            polls,
            self.wall_mpps,
            self.wall_images_per_s,
            self.feed_mpps,
            self.feed_ns_per_packet,
            self.feed_busy * 100.0,
            self.ring_fill * 100.0,
            w.rx.invalid(),
            w.verifier.dropped(),
            w.backpressure_images,
        )
    }
}

/// A thread started before `rte_eal_init`, waiting for its work. `rte_eal_init` pins the
/// calling thread to the main lcore's CPU and threads inherit the affinity of the thread
/// that creates them; threads made before it keep the process's CPU set, so the scheduler
/// can put the rx loop and the feeder on different cores.
type Job = Box<dyn FnOnce() + Send>;

fn prestarted(name: &str) -> Result<(mpsc::Sender<Job>, JoinHandle<()>), String> {
    let (tx, rx) = mpsc::channel::<Job>();
    let h = std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            if let Ok(job) = rx.recv() {
                job()
            }
        })
        .map_err(|e| format!("spawning {name}: {e}"))?;
    Ok((tx, h))
}

/// The calling thread's `/proc/<pid>/task/<tid>` directory.
fn thread_dir() -> Option<PathBuf> {
    std::fs::read_link("/proc/thread-self")
        .ok()
        .map(|p| Path::new("/proc").join(p))
}

/// The calling thread's allowed CPUs, as the kernel lists them.
fn thread_cpus() -> String {
    std::fs::read_to_string("/proc/thread-self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
                .map(|v| v.trim().to_string())
        })
        .unwrap_or_else(|| "?".into())
}

/// Free hugepages over all sizes (sysfs), in bytes.
fn free_hugepage_bytes() -> u64 {
    let Ok(dir) = std::fs::read_dir("/sys/kernel/mm/hugepages") else {
        return 0;
    };
    dir.flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let kb: u64 = name
                .strip_prefix("hugepages-")?
                .strip_suffix("kB")?
                .parse()
                .ok()?;
            let free: u64 = std::fs::read_to_string(e.path().join("free_hugepages"))
                .ok()?
                .trim()
                .parse()
                .ok()?;
            Some(kb * 1024 * free)
        })
        .sum()
}

/// Writes image id `id` into a fragment frame whose UDP payload (the fragment header)
/// starts at `udp_off`, and recomputes the header checksum.
#[inline]
fn set_image_id(frame: &mut [u8], udp_off: usize, id: u32) {
    let hdr = &mut frame[udp_off..];
    hdr[IMAGE_ID_OFFSET..IMAGE_ID_OFFSET + 4].copy_from_slice(&id.to_be_bytes());
    fragment::Packet::new_unchecked(hdr).fill_checksum();
}

/// The feeder's state.
struct Feeder {
    ring: Ring,
    /// Per flow: packets ready to send, in order, ids already rewritten.
    queues: Vec<VecDeque<Mbuf>>,
    /// Per flow: the next image id.
    next_id: Vec<u32>,
    /// Source port of flow 0 (flow f sends from `base_port + f`).
    base_port: u16,
    udp_off: usize,
    burst: usize,
    interleave: usize,
    stop: Arc<AtomicBool>,
    meter: Arc<FeedMeter>,
}

impl Feeder {
    fn run(mut self, mut completed: impl FnMut() -> Option<Complete>) {
        let _ = register_thread();
        let flows = self.queues.len();
        let mut staged: Vec<Mbuf> = Vec::with_capacity(self.burst);
        let (mut rr, mut in_chunk) = (0usize, 0usize);
        let (mut packets, mut busy, mut images, mut ring_full) = (0u64, 0u64, 0u64, 0u64);
        let mut iterations = 0u32;
        while !self.stop.load(Ordering::Relaxed) {
            let t0 = rdtsc();
            let mut worked = false;
            // Recycle completed images under fresh ids.
            while let Some(done) = completed() {
                let port = done.image.key.source.port();
                let flow = usize::from(port.wrapping_sub(self.base_port)) % flows;
                let id = self.next_id[flow];
                self.next_id[flow] = id.wrapping_add(1);
                let q = &mut self.queues[flow];
                for held in done.image.fragments {
                    let mut m = held.mbuf;
                    set_image_id(m.data_mut(), self.udp_off, id);
                    q.push_back(m);
                }
                images += 1;
                worked = true;
            }
            // Top up the burst, `interleave` packets per flow in turn.
            let mut dry = 0;
            while staged.len() < self.burst && dry < flows {
                match self.queues[rr].pop_front() {
                    Some(m) => {
                        staged.push(m);
                        dry = 0;
                        in_chunk += 1;
                        if in_chunk >= self.interleave {
                            in_chunk = 0;
                            rr = (rr + 1) % flows;
                        }
                    }
                    None => {
                        dry += 1;
                        in_chunk = 0;
                        rr = (rr + 1) % flows;
                    }
                }
            }
            if !staged.is_empty() {
                let n = self.ring.enqueue_burst(&mut staged);
                if n > 0 {
                    packets += n as u64;
                    worked = true;
                } else {
                    ring_full += 1;
                }
            }
            if worked {
                busy += rdtsc().wrapping_sub(t0);
            } else {
                std::hint::spin_loop();
            }
            iterations = iterations.wrapping_add(1);
            if iterations & 0xff == 0 {
                self.publish(packets, busy, images, ring_full);
            }
        }
        self.publish(packets, busy, images, ring_full);
        // The staged packets and the queues are freed here (dropped).
    }

    fn publish(&self, packets: u64, busy: u64, images: u64, ring_full: u64) {
        let m = &self.meter;
        m.packets.store(packets, Ordering::Relaxed);
        m.busy.store(busy, Ordering::Relaxed);
        m.images.store(images, Ordering::Relaxed);
        m.ring_full.store(ring_full, Ordering::Relaxed);
    }
}

/// The rx loop's observer: TSC cycles of the iterations that received packets. An
/// iteration longer than `preempted` cycles (hundreds of times a burst's normal cost) was
/// interrupted by the scheduler; it is counted apart and left out of the figures.
fn rx_observer(meter: Arc<RxMeter>, preempted: u64) -> impl FnMut(usize) {
    let (mut packets, mut busy, mut polls, mut busy_polls) = (0u64, 0u64, 0u64, 0u64);
    let (mut skipped, mut skipped_packets) = (0u64, 0u64);
    let mut last = rdtsc();
    move |n| {
        let now = rdtsc();
        polls += 1;
        if n > 0 {
            let dt = now.wrapping_sub(last);
            if dt < preempted {
                packets += n as u64;
                busy += dt;
                busy_polls += 1;
            } else {
                skipped += 1;
                skipped_packets += n as u64;
            }
        }
        last = now;
        if polls & 0xff == 0 {
            meter.packets.store(packets, Ordering::Relaxed);
            meter.busy.store(busy, Ordering::Relaxed);
            meter.polls.store(polls, Ordering::Relaxed);
            meter.busy_polls.store(busy_polls, Ordering::Relaxed);
            meter.preempted.store(skipped, Ordering::Relaxed);
            meter
                .preempted_packets
                .store(skipped_packets, Ordering::Relaxed);
        }
    }
}

fn eal_argv(a: &RxArgs) -> Vec<String> {
    let mut argv: Vec<String> = vec!["netml".into()];
    if a.huge {
        argv.push("--in-memory".into());
    } else {
        argv.extend(["--no-huge", "-m", "2048", "--no-shconf"].map(String::from));
    }
    argv.extend(["--no-pci", "--no-telemetry", "--log-level", "warning"].map(String::from));
    argv.extend(a.eal.iter().cloned());
    if !a.eal.iter().any(|s| s.starts_with("--file-prefix")) {
        argv.push(format!("--file-prefix=netml-bench-{}", std::process::id()));
    }
    argv
}

fn rx(a: RxArgs) -> Result<ExitCode, String> {
    if a.seconds.is_nan() || a.seconds <= 0.0 || a.warmup.is_nan() || a.warmup < 0.0 {
        return Err("--seconds must be positive and --warmup not negative".into());
    }
    let flows = usize::from(a.flows);
    let burst = usize::from(a.burst);

    // The traffic: one image per flow, cut by the pktgen fragmenter.
    let shape = tensor::parse_shape(&a.shape).map_err(|e| e.to_string())?;
    let t = tensor::synthetic(&shape, Dtype::F32, 1, 1)
        .map_err(|e| e.to_string())?
        .remove(0);
    let mut fc = FlowConfig::new(
        DEFAULT_SRC.parse().expect("default source"),
        DEFAULT_DST.parse().expect("default destination"),
    );
    fc.flows = a.flows;
    let endpoints = fc.endpoints().map_err(|e| e.to_string())?;
    fragmenter::check_frag_size(a.frag_size, &endpoints[0], fragmenter::DEFAULT_MTU)
        .map_err(|e| e.to_string())?;
    let count = fragmenter::fragment_count(&t, a.frag_size).map_err(|e| e.to_string())?;
    let templates: Vec<Vec<Vec<u8>>> = endpoints
        .iter()
        .map(|ep| {
            (0..count)
                .map(|index| {
                    let id = FragmentId {
                        model: MODEL,
                        image: 0,
                        index,
                        count,
                        frag_size: a.frag_size,
                    };
                    fragmenter::build(ep, &t, id, 1, Damage::None)
                })
                .collect()
        })
        .collect();
    let udp_off = frame::parse_udp(&templates[0][0])
        .ok()
        .flatten()
        .ok_or("template frame does not parse")?
        .payload
        .start;
    let udp_port = fc.dst.port();
    let frags = usize::from(count);
    let frame_lens = (templates[0][0].len(), templates[0][frags.min(2) - 1].len());

    // Enough images in circulation to keep the ring full while the worker holds one
    // incomplete image per flow and a few complete ones wait to be recycled.
    let images_total = (a.ring as usize + (flows + 2) * frags)
        .div_ceil(frags)
        .max(2 * flows);
    let mbufs = images_total * frags;
    let pool_size = ((mbufs + 4 * burst + 1024).next_power_of_two() - 1) as u32;

    if a.huge && free_hugepage_bytes() == 0 {
        return Err(
            "--huge: no free hugepages (see /sys/kernel/mm/hugepages); reserve some with \
             `sudo scripts/hugepages setup 1024`, or run without --huge"
                .into(),
        );
    }

    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, stop.clone())
            .map_err(|e| format!("signal handler: {e}"))?;
    }
    // Before rte_eal_init: see `prestarted`.
    let (rx_job, rx_thread) = prestarted("netml-bench-rx")?;
    let (feed_job, feed_thread) = prestarted("netml-bench-feed")?;

    let argv = eal_argv(&a);
    eprintln!("EAL: {}", argv.join(" "));
    let _eal = Eal::init(&argv).map_err(|e| format!("EAL init: {e}"))?;
    let hz = tsc_hz() as f64;
    let memory = if a.huge { "huge" } else { "no-huge" };

    let pool = Mempool::pktmbuf(
        &format!("bench_{}", std::process::id()),
        pool_size,
        256,
        DEFAULT_DATA_ROOM,
    )
    .map_err(|e| format!("mempool of {pool_size} mbufs: {e}"))?;
    let ring = Ring::new("bench_rx0", a.ring).map_err(|e| format!("rx ring: {e}"))?;
    let tx_ring = Ring::new("bench_tx0", 64).map_err(|e| format!("tx ring: {e}"))?;
    let mut port = ring_port("bench", &[&ring], &[&tx_ring]).map_err(|e| e.to_string())?;
    port.configure(&PortConfig::default(), &pool)
        .map_err(|e| e.to_string())?;
    port.start().map_err(|e| e.to_string())?;
    let in_use_at_start = pool.in_use();

    // Fill the circulation: images dealt to the flows in turn, ids 0, 1, ... per flow.
    let mut queues: Vec<VecDeque<Mbuf>> = (0..flows).map(|_| VecDeque::new()).collect();
    let mut next_id = vec![0u32; flows];
    for k in 0..images_total {
        let f = k % flows;
        let id = next_id[f];
        next_id[f] += 1;
        for bytes in &templates[f] {
            let mut m = Mbuf::from_bytes(&pool, bytes).map_err(|e| e.to_string())?;
            set_image_id(m.data_mut(), udp_off, id);
            queues[f].push_back(m);
        }
    }
    // The rewrite must give valid fragments of the new image (and touch nothing else).
    for (f, frames) in templates.iter().enumerate() {
        for index in [0, frags - 1] {
            let mut copy = frames[index].clone();
            set_image_id(&mut copy, udp_off, 0x5eed_0001);
            match frame::classify(&copy, |p| p == udp_port) {
                Classified::Fragment { header, .. }
                    if header.image == 0x5eed_0001 && usize::from(header.index) == index => {}
                other => {
                    return Err(format!(
                    "flow {f} fragment {index}: rewriting the image id breaks the frame: {other:?}"
                ))
                }
            }
        }
    }

    let segs = memory_segments().map_err(|e| e.to_string())?;
    let page_kib: std::collections::BTreeSet<u64> =
        segs.iter().map(|s| s.hugepage_sz >> 10).collect();
    println!(
        "netml bench rx: {} {} per image = {frags} fragments of {} B (frames {}/{} B), {flows} flow(s), interleave {}, burst {burst}, ring {}, {images_total} images ({mbufs} mbufs) in circulation; memory {memory} (pages {:?} KiB, {} MiB); TSC {:.3} GHz",
        a.shape,
        tensor::dtype_name(Dtype::F32),
        a.frag_size,
        frame_lens.0,
        frame_lens.1,
        a.interleave,
        a.ring,
        page_kib,
        segs.iter().map(|s| s.len).sum::<usize>() >> 20,
        hz / 1e9,
    );

    let shared = Arc::new(Shared::new(1));
    let running = Arc::new(AtomicBool::new(true));
    let (out, completed) = dispatch_queue(images_total * 2 + 16);
    let worker = Worker {
        index: 0,
        rxq: port.rx_queue(0).map_err(|e| e.to_string())?,
        chain_txq: None,
        chain: ChainAction::Drop,
        udp_ports: vec![udp_port],
        burst,
        verifier: Verifier::new(netml_verify::Config::default()),
        out,
        shared: shared.clone(),
        running: running.clone(),
        clock: Clock::new(),
    };
    let rx_meter = Arc::new(RxMeter::default());
    // A burst normally takes a few microseconds; one that took 250 us (or 1 us per packet
    // of a large burst) was preempted.
    let preempted = (hz * (250e-6f64).max(burst as f64 * 1e-6)) as u64;
    let feed_meter = Arc::new(FeedMeter::default());
    let feed_stop = Arc::new(AtomicBool::new(false));
    let feeder = Feeder {
        ring: ring.clone(),
        queues,
        next_id,
        base_port: endpoints[0].src.port(),
        udp_off,
        burst,
        interleave: usize::from(a.interleave),
        stop: feed_stop.clone(),
        meter: feed_meter.clone(),
    };
    type Hello = (&'static str, String, Option<PathBuf>);
    let (cpu_tx, cpu_rx) = mpsc::channel::<Hello>();
    let (rm, ctx) = (rx_meter.clone(), cpu_tx.clone());
    rx_job
        .send(Box::new(move || {
            let _ = ctx.send(("rx", thread_cpus(), thread_dir()));
            if let Err(e) = register_thread() {
                eprintln!("netml bench: rx thread: {e}; running without an lcore id");
            }
            worker.run_observed(rx_observer(rm, preempted));
        }))
        .map_err(|_| "rx thread gone")?;
    feed_job
        .send(Box::new(move || {
            let _ = cpu_tx.send(("feeder", thread_cpus(), thread_dir()));
            feeder.run(move || completed.try_recv().ok());
        }))
        .map_err(|_| "feeder thread gone")?;
    let hellos: Vec<Hello> = (0..2)
        .filter_map(|_| cpu_rx.recv_timeout(Duration::from_secs(5)).ok())
        .collect();
    let dir_of = |who: &str| hellos.iter().find(|h| h.0 == who).and_then(|h| h.2.clone());
    let (rx_dir, feed_dir) = (dir_of("rx"), dir_of("feeder"));
    let cpus: Vec<String> = hellos
        .iter()
        .map(|(who, c, _)| format!("{who} thread on CPUs {c}"))
        .collect();
    println!(
        "{}; main thread (after rte_eal_init) on CPUs {}",
        cpus.join(", "),
        thread_cpus()
    );

    // Sample every 100 ms (rarely, not to take a CPU from the two busy threads), print every
    // second, measure after the warm-up.
    let (mut ring_sum, mut ring_n) = (0u64, 0u64);
    let sample = |ring_sum: u64, ring_n: u64| Sample {
        at: Instant::now(),
        tsc: rdtsc(),
        rx_packets: rx_meter.packets.load(Ordering::Relaxed),
        rx_busy: rx_meter.busy.load(Ordering::Relaxed),
        rx_polls: rx_meter.polls.load(Ordering::Relaxed),
        rx_busy_polls: rx_meter.busy_polls.load(Ordering::Relaxed),
        rx_preempted: rx_meter.preempted.load(Ordering::Relaxed),
        rx_preempted_packets: rx_meter.preempted_packets.load(Ordering::Relaxed),
        feed_packets: feed_meter.packets.load(Ordering::Relaxed),
        feed_busy: feed_meter.busy.load(Ordering::Relaxed),
        feed_ring_full: feed_meter.ring_full.load(Ordering::Relaxed),
        worker: *shared.workers[0].lock().expect("stats lock"),
        rx_sched: SchedStat::read(rx_dir.as_deref()),
        feed_sched: SchedStat::read(feed_dir.as_deref()),
        ring_sum,
        ring_n,
    };
    let started = Instant::now();
    let mut prev = sample(0, 0);
    let mut measure_from: Option<Sample> = if a.warmup == 0.0 {
        Some(prev.clone())
    } else {
        None
    };
    let mut last_print = Instant::now();
    let mut interrupted = false;
    let mut tick = prev.clone();
    let mut quiet = Quiet::default();
    loop {
        std::thread::sleep(Duration::from_millis(100));
        ring_sum += u64::from(ring.count());
        ring_n += 1;
        let elapsed = started.elapsed().as_secs_f64();
        if stop.load(Ordering::Relaxed) {
            interrupted = true;
            break;
        }
        let now = sample(ring_sum, ring_n);
        if measure_from.is_some() {
            quiet.add(&tick, &now);
        } else if elapsed >= a.warmup {
            measure_from = Some(now.clone());
        }
        tick = now;
        if last_print.elapsed() >= Duration::from_secs(1) {
            let cur = tick.clone();
            let r = Rates::between(&prev, &cur, hz, frags as f64, a.ring);
            eprintln!(
                "{}",
                r.live(
                    elapsed,
                    measure_from.is_none(),
                    &cur.worker,
                    cur.rx_polls - prev.rx_polls
                )
            );
            prev = cur;
            last_print = Instant::now();
        }
        if elapsed >= a.warmup + a.seconds {
            break;
        }
    }
    let end = sample(ring_sum, ring_n);
    quiet.add(&tick, &end);
    let begin = measure_from.unwrap_or_else(|| prev.clone());

    // Stop rx first (it evicts what is incomplete), then the feeder.
    running.store(false, Ordering::Relaxed);
    let _ = rx_thread.join();
    feed_stop.store(true, Ordering::Relaxed);
    let _ = feed_thread.join();
    let w = *shared.workers[0].lock().expect("stats lock");
    drop(port);
    drop(ring);
    drop(tx_ring);
    let leaked = pool.in_use().saturating_sub(in_use_at_start);

    let r = Rates::between(&begin, &end, hz, frags as f64, a.ring);
    let head = Headline::choose(&r, &quiet, hz, frags as f64);
    let mode = format!("rx-{memory}");
    let text = report(&a, &r, &head, &w, leaked, frags, interrupted);
    println!("{}", text.trim_end());
    if let Some(path) = &a.csv {
        write_csv(path, &mode, &head).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    let clean = w.rx.invalid() == 0
        && w.rx.other == 0
        && w.verifier.dropped() == 0
        && w.verifier.evicted_pressure == 0
        && w.backpressure_images == 0
        && leaked == 0;
    Ok(if clean {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The per-core figures a run reports (and writes to the CSV file).
struct Headline {
    mpps: f64,
    ns_per_packet: f64,
    images_per_s: f64,
    /// Where they come from.
    source: String,
}

impl Headline {
    /// The undisturbed intervals when they cover at least a quarter of the window (on a
    /// quiet machine: all of it), else the whole window.
    fn choose(r: &Rates, q: &Quiet, hz: f64, frags_per_image: f64) -> Headline {
        match q.figures(hz) {
            Some((mpps, ns)) if q.coverage() >= 0.25 => Headline {
                mpps,
                ns_per_packet: ns,
                images_per_s: mpps * 1e6 / frags_per_image,
                source: format!(
                    "over the {:.0}% of the window in which the rx thread never waited for a CPU",
                    q.coverage() * 100.0
                ),
            },
            _ => Headline {
                mpps: r.mpps,
                ns_per_packet: r.ns_per_packet,
                images_per_s: r.images_per_s,
                source: format!(
                    "over the whole window (undisturbed intervals cover only {:.0}% of it)",
                    q.coverage() * 100.0
                ),
            },
        }
    }
}

fn report(
    a: &RxArgs,
    r: &Rates,
    h: &Headline,
    w: &WorkerCounters,
    leaked: u32,
    frags: usize,
    interrupted: bool,
) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "result ({:.2} s measured after {:.1} s warm-up{}; memory {}):",
        r.wall_s,
        a.warmup,
        if interrupted { ", interrupted" } else { "" },
        if a.huge {
            "hugepages"
        } else {
            "no-huge (4 KiB pages)"
        }
    );
    let _ = writeln!(
        s,
        "  rx core (rx_burst + classify + verify, Worker loop): {:.2} Mpps, {:.1} ns/packet, {:.0} images/s  [{}]",
        h.mpps, h.ns_per_packet, h.images_per_s, h.source
    );
    let _ = writeln!(
        s,
        "    whole window: {:.2} Mpps, {:.1} ns/packet; rx thread {:.1}% in busy polls, on a CPU {:.1}%, waiting for one {:.1}%; {:.1} packets/poll; {} preempted polls ({} packets) left out",
        r.mpps, r.ns_per_packet, r.rx_busy * 100.0, r.rx_oncpu * 100.0, r.rx_wait * 100.0, r.pkts_per_poll, r.rx_preempted, r.rx_preempted_packets
    );
    if r.rx_wait > 0.02 {
        let _ = writeln!(
            s,
            "  WARNING: other processes kept the rx thread off a CPU {:.1}% of the time (and shared the caches); rerun on a quiet machine",
            r.rx_wait * 100.0
        );
    }
    let _ = writeln!(
        s,
        "  100 GbE budget {BUDGET_NS:.0} ns/packet ({BUDGET_MPPS} Mpps): {}",
        if h.ns_per_packet > 0.0 {
            format!(
                "{:.0}% of it used, {:.2}x the line rate per core",
                h.ns_per_packet / BUDGET_NS * 100.0,
                h.mpps / BUDGET_MPPS
            )
        } else {
            "n/a".into()
        }
    );
    let _ = writeln!(
        s,
        "  target >= {TARGET_MPPS:.0} Mpps per core: {}",
        if h.mpps >= TARGET_MPPS {
            "met".to_string()
        } else {
            format!(
                "NOT met ({:.2} Mpps, {:.0}% of it)",
                h.mpps,
                h.mpps / TARGET_MPPS * 100.0
            )
        }
    );
    let _ = writeln!(
        s,
        "  delivered (wall clock): {:.2} Mpps, {:.0} images/s",
        r.wall_mpps, r.wall_images_per_s
    );
    let bound = if r.rx_wait > 0.02 {
        "disturbed: other processes took CPU time from the bench threads, the delivered rate says little"
    } else if r.rx_busy >= 0.9 && r.feed_busy < 0.8 {
        "rx-bound: the rx core was busy nearly all the time, the source was not the bottleneck"
    } else if r.rx_busy >= 0.9 {
        "both near their limits: the rx core was busy nearly all the time and so was the feeder"
    } else {
        "feeder-bound: the rx core idled part of the time (empty polls are excluded from its figure)"
    };
    let _ = writeln!(
        s,
        "  feeder: {:.2} Mpps delivered, {:.1} ns/packet busy ({:.0}% busy, on a CPU {:.0}%), ring {:.0}% full on average, found full {} times -> {bound}",
        r.feed_mpps,
        r.feed_ns_per_packet,
        r.feed_busy * 100.0,
        r.feed_oncpu * 100.0,
        r.ring_fill * 100.0,
        r.feed_ring_full,
    );
    let v = &w.verifier;
    let _ = writeln!(
        s,
        "  checks (whole run): frames {} fragments {} other {} invalid {}; verifier accepted {} dropped {} (dup {} late {} inconsistent {} out-of-range {}); images {} ({} fragments each), evicted under pressure {}, at stop {}; backpressure {}; mbufs leaked {leaked}",
        w.rx.frames,
        w.rx.fragments,
        w.rx.other,
        w.rx.invalid(),
        v.accepted,
        v.dropped(),
        v.duplicate,
        v.late,
        v.inconsistent,
        v.out_of_range,
        v.images_completed,
        frags,
        v.evicted_pressure,
        v.evicted_timeout,
        w.backpressure_images,
    );
    s
}

const CSV_HEADER: &str = "mode,mpps,ns_per_packet,images_per_s,budget_ns,target_mpps";

fn write_csv(path: &Path, mode: &str, r: &Headline) -> std::io::Result<()> {
    let new = std::fs::metadata(path).map_or(true, |m| m.len() == 0);
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    if new {
        writeln!(f, "{CSV_HEADER}")?;
    }
    writeln!(
        f,
        "{mode},{:.3},{:.2},{:.0},{BUDGET_NS},{TARGET_MPPS}",
        r.mpps, r.ns_per_packet, r.images_per_s
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use netml_pktgen::flows::FlowConfig;

    #[test]
    fn image_id_rewrite_keeps_the_frame_valid() {
        let t = tensor::synthetic(&[1, 3, 8, 8], Dtype::F32, 1, 1)
            .unwrap()
            .remove(0);
        let ep = FlowConfig::new(DEFAULT_SRC.parse().unwrap(), DEFAULT_DST.parse().unwrap())
            .endpoints()
            .unwrap()[0];
        let count = fragmenter::fragment_count(&t, 256).unwrap();
        for index in [0, 1, count - 1] {
            let id = FragmentId {
                model: MODEL,
                image: 7,
                index,
                count,
                frag_size: 256,
            };
            let mut f = fragmenter::build(&ep, &t, id, 1, Damage::None);
            let off = frame::parse_udp(&f).unwrap().unwrap().payload.start;
            set_image_id(&mut f, off, 0xdead_beef);
            match frame::classify(&f, |p| p == 9000) {
                Classified::Fragment { header, .. } => {
                    assert_eq!((header.image, header.index), (0xdead_beef, index));
                }
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn csv_has_one_header_and_a_row_per_run() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("b.csv");
        let r = Headline {
            mpps: 20.5,
            ns_per_packet: 48.78,
            images_per_s: 34_864.0,
            source: String::new(),
        };
        write_csv(&p, "rx-no-huge", &r).unwrap();
        write_csv(&p, "rx-huge", &r).unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], CSV_HEADER);
        assert_eq!(lines[1], "rx-no-huge,20.500,48.78,34864,88,20");
        assert_eq!(lines.len(), 3);
    }
}
