//! `netml bench rx`: what one rx core costs per packet: `rx_burst` from a net_ring
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
//!
//! The floor ([`floor`]) runs next, on the same feeder, ring and traffic: a receiver that
//! does only `rx_burst`, reads each packet's first 64 bytes and gives the mbufs back
//! through a return ring, where the feeder stamps them as it stamps completed images. The
//! two alternate for `--rounds` rounds, and the report gives netml's ns/packet as a multiple
//! of the floor's in each round and in the median round (the verdict): on a shared machine
//! whose speed changes within seconds, a pair measured together is what compares.
//!
//! [`run`] reads top to bottom: build the traffic, start the bench threads (before
//! `rte_eal_init`, see [`prestarted`]), bring up EAL and the mempool; then, round after
//! round, for each receiver (the pipeline's worker, then the floor of [`floor`]): a net_ring
//! port, the circulation, the receiver and the feeder started, warm-up, measurement,
//! everything stopped and the mbufs counted back; last the report, with netml's ns/packet
//! over the floor's per round and for the median round.
//!
//! Beside [`run`]: [`floor`] (the floor's receiver), [`monitor`] (the warm-up and the
//! measured window), [`report`](mod@report) (text and CSV); shared with the other harnesses:
//! [`crate::traffic`] (the frames and the circulation), [`crate::feeder`] (the feeder
//! thread), [`crate::meter`] (the threads' counters and the rates).

mod floor;
mod monitor;
mod report;

use crate::eal::{check_huge, eal_argv};
use crate::feeder::{prestarted, thread_cpus, thread_dir, Feeder, Job, Returns};
use crate::meter::{rx_observer, FeedMeter, Probes, Rates, RxMeter};
use crate::output::write_file;
use crate::traffic::Traffic;
use clap::Args as ClapArgs;
use floor::FloorWorker;
use monitor::Monitor;
use netml_dpdk::{
    memory_segments, register_thread, ring_port, tsc_hz, Eal, Mbuf, Mempool, Port, PortConfig,
    Ring, DEFAULT_DATA_ROOM,
};
use netml_pipeline::clock::Clock;
use netml_pipeline::config::ChainAction;
use netml_pipeline::stats::{Shared, WorkerCounters};
use netml_pipeline::worker::{dispatch_queue, Worker};
use netml_pktgen::tensor;
use netml_verify::Verifier;
use netml_wire::fragment::Dtype;
use report::{report, report_floor, write_csv, Headline, Ratio, TARGET_VS_FLOOR};
use std::collections::VecDeque;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::Duration;

/// Options of `netml bench rx`.
#[derive(ClapArgs)]
pub struct Args {
    /// Seconds measured (after the warm-up).
    #[arg(long, default_value_t = 5.0)]
    pub(crate) seconds: f64,
    /// Seconds run before measuring.
    #[arg(long, default_value_t = 1.0)]
    pub(crate) warmup: f64,
    /// Packets per rx burst.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u16).range(1..=512))]
    pub(crate) burst: u16,
    /// Flows (source ports) the images are spread over.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub(crate) flows: u16,
    /// Packets of one flow the feeder sends before switching to the next flow (1: every
    /// packet belongs to another image than the one before, the verifier's worst case).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..))]
    pub(crate) interleave: u16,
    /// Capacity of the rx ring (what a NIC rx descriptor ring would hold).
    #[arg(long, default_value_t = 4096)]
    pub(crate) ring: u32,
    /// Tensor shape of an image.
    #[arg(long, default_value = "1x3x224x224")]
    pub(crate) shape: String,
    /// Payload bytes per fragment.
    #[arg(long, default_value_t = 1024)]
    pub(crate) frag_size: u16,
    /// Run on hugepages (`--in-memory` instead of `--no-huge -m 2048`); configure them first
    /// with `scripts/hugepages setup`.
    #[arg(long)]
    pub(crate) huge: bool,
    /// Extra EAL argument (repeatable), appended to the defaults.
    #[arg(long = "eal", allow_hyphen_values = true)]
    pub(crate) eal: Vec<String>,
    /// Measure only the floor: a receiver that does rx_burst, reads each packet's first 64
    /// bytes and gives the mbufs back (by default the floor runs after the pipeline's worker).
    #[arg(long, conflicts_with = "no_floor")]
    pub(crate) floor: bool,
    /// Measure only the pipeline's worker, not the floor.
    #[arg(long)]
    pub(crate) no_floor: bool,
    /// Rounds: each round measures the pipeline's worker and then the floor (or the one
    /// receiver asked for), `--seconds` each; the ratio is the median of the rounds' ratios,
    /// so that a disturbance of the machine that lasts seconds moves one round, not the
    /// verdict.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..=100))]
    pub(crate) rounds: u16,
    /// Append one CSV row per receiver and round to this file (header written when the file
    /// is new): mode (rx-* or floor-*), mpps, ns_per_packet, images_per_s, budget_ns,
    /// target_mpps, vs_floor (netml's ns/packet over the floor's of the same round, on the
    /// rx row), target_vs_floor.
    #[arg(long)]
    pub(crate) csv: Option<PathBuf>,
    /// Write an SVG bar chart of every round to this file: netml's and the floor's
    /// ns/packet, and the target (1.5x the floor), with each round's ratio.
    #[arg(long)]
    pub(crate) plot: Option<PathBuf>,
}

impl Args {
    /// The receivers of one round, in order.
    fn round(&self) -> Vec<Receiver> {
        match (self.floor, self.no_floor) {
            (true, _) => vec![Receiver::Floor],
            (false, true) => vec![Receiver::Netml],
            (false, false) => vec![Receiver::Netml, Receiver::Floor],
        }
    }

    /// The receivers to measure, in order: those of one round, `rounds` times.
    fn receivers(&self) -> Vec<Receiver> {
        self.round().repeat(self.rounds as usize)
    }
}

/// Runs `netml bench rx`.
pub fn run(a: Args) -> Result<ExitCode, String> {
    if a.seconds.is_nan() || a.seconds <= 0.0 || a.warmup.is_nan() || a.warmup < 0.0 {
        return Err("--seconds must be positive and --warmup not negative".into());
    }
    // Set up.
    let traffic = Traffic::new(&a)?;
    check_huge(a.huge)?;
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, stop.clone())
            .map_err(|e| format!("signal handler: {e}"))?;
    }
    let receivers = a.receivers();
    // Before rte_eal_init: see `prestarted`.
    let threads = receivers
        .iter()
        .map(|_| Threads::prestart())
        .collect::<Result<Vec<_>, _>>()?;
    let argv = eal_argv(a.huge, &a.eal);
    eprintln!("EAL: {}", argv.join(" "));
    let _eal = Eal::init(&argv).map_err(|e| format!("EAL init: {e}"))?;
    let hz = tsc_hz() as f64;
    let memory = if a.huge { "huge" } else { "no-huge" };
    let pool_size = traffic.pool_size;
    let pool = Mempool::pktmbuf(
        &format!("bench_{}", std::process::id()),
        pool_size,
        256,
        DEFAULT_DATA_ROOM,
    )
    .map_err(|e| format!("mempool of {pool_size} mbufs: {e}"))?;
    traffic.check_rewrite()?;
    print_setup(&a, &traffic, memory, hz)?;

    // Run each receiver in turn on the same feeder, ring and traffic, round after round.
    let mut measured = Vec::new();
    for (k, (receiver, threads)) in receivers.into_iter().zip(threads).enumerate() {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let phase = Phase {
            a: &a,
            traffic: &traffic,
            pool: &pool,
            stop: &stop,
            hz,
        };
        measured.push(phase.measure(receiver, k, threads)?);
    }

    // Report: the first round in full, then every round's ratio and their median.
    let frags = traffic.frames.frags;
    let (mut text, mut clean) = (String::new(), true);
    // A stopped run ends early: its last round may be short, the others are whole.
    let per_round = a.round().len();
    for (i, m) in measured.iter().enumerate() {
        if i < per_round {
            text.push_str(&m.report(&a, frags));
        }
        clean &= m.clean();
    }
    let rounds: Vec<&[Measured]> = measured.chunks(per_round).collect();
    let ratios: Vec<Option<Ratio>> = rounds.iter().map(|r| round_ratio(r)).collect();
    if rounds.len() > 1 {
        text.push_str(&rounds_report(&rounds, &ratios));
    }
    let measured_ratios: Vec<Ratio> = ratios.iter().flatten().copied().collect();
    if let Some(median) = Ratio::median(&measured_ratios) {
        text.push_str(&median.report(measured_ratios.len()));
    }
    println!("{}", text.trim_end());
    if let Some(path) = &a.csv {
        for (round, ratio) in rounds.iter().zip(&ratios) {
            for m in *round {
                let mode = format!("{}-{memory}", m.receiver.mode());
                let vs_floor = ratio.as_ref().filter(|_| m.receiver == Receiver::Netml);
                write_csv(path, &mode, &m.head, vs_floor)?;
            }
        }
    }
    if let Some(path) = &a.plot {
        write_file(path, &rounds_plot(&rounds, &ratios, memory))?;
        println!("plot: {}", path.display());
    }
    Ok(if clean {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// netml's ns/packet over the floor's, in one round that measured both.
fn round_ratio(round: &[Measured]) -> Option<Ratio> {
    let of = |r: Receiver| round.iter().find(|m| m.receiver == r);
    of(Receiver::Netml)
        .zip(of(Receiver::Floor))
        .map(|(n, f)| Ratio::of(&n.head, &f.head))
}

/// One line per round: each receiver's ns/packet, and their ratio.
fn rounds_report(rounds: &[&[Measured]], ratios: &[Option<Ratio>]) -> String {
    let mut s = String::from("rounds (alternating, --seconds each):\n");
    for (k, (round, ratio)) in rounds.iter().zip(ratios).enumerate() {
        let each: Vec<String> = round
            .iter()
            .map(|m| {
                format!(
                    "{} {:.1} ns/packet",
                    m.receiver.mode(),
                    m.head.ns_per_packet
                )
            })
            .collect();
        let ratio = ratio
            .as_ref()
            .map_or(String::new(), |r| format!(" = {:.2}x", r.value()));
        s.push_str(&format!("  round {}: {}{ratio}\n", k + 1, each.join(", ")));
    }
    s
}

/// The rounds as grouped bars: each receiver's ns/packet and the target, per round.
fn rounds_plot(rounds: &[&[Measured]], ratios: &[Option<Ratio>], memory: &str) -> String {
    let groups: Vec<(String, Vec<(String, f64)>)> = rounds
        .iter()
        .zip(ratios)
        .enumerate()
        .map(|(k, (round, ratio))| {
            let label = match ratio {
                Some(r) => format!("{} ({:.2}x)", k + 1, r.value()),
                None => format!("{}", k + 1),
            };
            let mut bars: Vec<(String, f64)> = round
                .iter()
                .map(|m| (m.receiver.name().to_string(), m.head.ns_per_packet))
                .collect();
            if let Some(floor) = round.iter().find(|m| m.receiver == Receiver::Floor) {
                let target = TARGET_VS_FLOOR * floor.head.ns_per_packet;
                bars.push((format!("target ({TARGET_VS_FLOOR}x floor)"), target));
            }
            (label, bars)
        })
        .collect();
    crate::plot::bar_chart(
        &format!("netml bench rx ({memory}): ns/packet per round (netml / floor below)"),
        "ns/packet",
        false,
        &groups,
    )
}

/// What reads the ring: the pipeline's worker, or the floor (see [`floor`]).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Receiver {
    Netml,
    Floor,
}

impl Receiver {
    /// Its name in plots.
    fn name(self) -> &'static str {
        match self {
            Receiver::Netml => "netml worker",
            Receiver::Floor => "floor",
        }
    }

    /// The CSV mode's prefix.
    fn mode(self) -> &'static str {
        match self {
            Receiver::Netml => "rx",
            Receiver::Floor => "floor",
        }
    }
}

/// What one receiver's run measured.
struct Measured {
    receiver: Receiver,
    rates: Rates,
    head: Headline,
    counters: WorkerCounters,
    leaked: u32,
    interrupted: bool,
}

impl Measured {
    fn report(&self, a: &Args, frags: usize) -> String {
        match self.receiver {
            Receiver::Netml => report(
                a,
                &self.rates,
                &self.head,
                &self.counters,
                self.leaked,
                frags,
                self.interrupted,
            ),
            Receiver::Floor => {
                report_floor(a, &self.rates, &self.head, self.leaked, self.interrupted)
            }
        }
    }

    /// Nothing invalid, dropped, evicted, refused or leaked.
    fn clean(&self) -> bool {
        let w = &self.counters;
        w.rx.invalid() == 0
            && w.rx.other == 0
            && w.verifier.dropped() == 0
            && w.verifier.evicted_pressure == 0
            && w.backpressure_images == 0
            && self.leaked == 0
    }
}

/// One receiver's run: its own port and circulation from the shared pool.
struct Phase<'a> {
    a: &'a Args,
    traffic: &'a Traffic,
    pool: &'a Mempool,
    stop: &'a AtomicBool,
    hz: f64,
}

impl Phase<'_> {
    /// Fills the circulation, runs `receiver` and the feeder, warms up, measures, stops
    /// them and counts the mbufs that did not come back to the pool.
    fn measure(&self, receiver: Receiver, k: usize, threads: Threads) -> Result<Measured, String> {
        let (a, traffic, hz) = (self.a, self.traffic, self.hz);
        let rx_port = RxPort::start(self.pool, a.ring, k)?;
        let in_use_at_start = self.pool.in_use();
        let circulation = traffic.fill(self.pool)?;
        eprintln!("measuring {receiver:?}");
        let run = Run::start(receiver, a, traffic, &rx_port, circulation, threads, hz)?;
        let mut monitor = Monitor::new(
            &run.probes,
            &rx_port.ring,
            self.stop,
            hz,
            traffic.frames.frags,
            a.ring,
        );
        if monitor.warm_up(a.warmup) {
            monitor.measure(a.warmup + a.seconds);
        }
        let window = monitor.finish();
        let counters = run.stop();
        rx_port.close();
        let leaked = self.pool.in_use().saturating_sub(in_use_at_start);
        let frags = traffic.frames.frags as f64;
        let rates = Rates::between(&window.begin, &window.end, hz, frags, a.ring);
        let head = Headline::choose(&rates, &window.quiet, hz, frags);
        Ok(Measured {
            receiver,
            rates,
            head,
            counters,
            leaked,
            interrupted: window.interrupted,
        })
    }
}

/// The rx port: a net_ring port whose rx queue 0 is `ring`, which the feeder fills.
struct RxPort {
    /// Which port of the run it is.
    index: usize,
    port: Port,
    tx_ring: Ring,
    ring: Ring,
}

impl RxPort {
    /// The `k`-th port of the run (names are unique in the process).
    fn start(pool: &Mempool, size: u32, k: usize) -> Result<RxPort, String> {
        let ring = Ring::new(&format!("bench_rx{k}"), size).map_err(|e| format!("rx ring: {e}"))?;
        let tx_ring =
            Ring::new(&format!("bench_tx{k}"), 64).map_err(|e| format!("tx ring: {e}"))?;
        let mut port =
            ring_port(&format!("bench{k}"), &[&ring], &[&tx_ring]).map_err(|e| e.to_string())?;
        port.configure(&PortConfig::default(), pool)
            .map_err(|e| e.to_string())?;
        port.start().map_err(|e| e.to_string())?;
        Ok(RxPort {
            index: k,
            port,
            tx_ring,
            ring,
        })
    }

    /// Closes the port and frees the rings (and the mbufs left in them).
    fn close(self) {
        let RxPort {
            index: _,
            port,
            tx_ring,
            ring,
        } = self;
        drop(port);
        drop(ring);
        drop(tx_ring);
    }
}

/// The line that says what is measured and on what memory.
fn print_setup(a: &Args, t: &Traffic, memory: &str, hz: f64) -> Result<(), String> {
    let segs = memory_segments().map_err(|e| e.to_string())?;
    let page_kib: std::collections::BTreeSet<u64> =
        segs.iter().map(|s| s.hugepage_sz >> 10).collect();
    let (frags, flows, burst) = (t.frames.frags, a.flows, a.burst);
    let (images_total, mbufs) = (t.images_total, t.mbufs);
    println!(
        "netml bench rx: {} {} per image = {frags} fragments of {} B (frames {}/{} B), {flows} flow(s), interleave {}, burst {burst}, ring {}, {images_total} images ({mbufs} mbufs) in circulation; memory {memory} (pages {:?} KiB, {} MiB); TSC {:.3} GHz",
        a.shape,
        tensor::dtype_name(Dtype::F32),
        a.frag_size,
        t.frames.frame_lens.0,
        t.frames.frame_lens.1,
        a.interleave,
        a.ring,
        page_kib,
        segs.iter().map(|s| s.len).sum::<usize>() >> 20,
        hz / 1e9,
    );
    Ok(())
}

/// The rx and feeder threads, started before `rte_eal_init` (see [`prestarted`]).
struct Threads {
    rx_job: mpsc::Sender<Job>,
    rx_thread: JoinHandle<()>,
    feed_job: mpsc::Sender<Job>,
    feed_thread: JoinHandle<()>,
}

impl Threads {
    fn prestart() -> Result<Threads, String> {
        let (rx_job, rx_thread) = prestarted("netml-bench-rx")?;
        let (feed_job, feed_thread) = prestarted("netml-bench-feed")?;
        Ok(Threads {
            rx_job,
            rx_thread,
            feed_job,
            feed_thread,
        })
    }
}

/// The loop the rx thread runs.
enum RxLoop {
    /// Boxed: a worker is ~500 bytes, moved out before it runs.
    Netml(Box<Worker>),
    Floor(FloorWorker),
}

/// The rx worker and the feeder, running.
struct Run {
    probes: Probes,
    /// Cleared to stop the rx worker; set to stop the feeder.
    running: Arc<AtomicBool>,
    feed_stop: Arc<AtomicBool>,
    rx_thread: JoinHandle<()>,
    feed_thread: JoinHandle<()>,
}

impl Run {
    /// Gives the rx thread `receiver` on rx queue 0 (the pipeline's [`Worker`] or the
    /// [`FloorWorker`]) and the feeder thread the circulation, and reports the CPUs they may
    /// run on.
    fn start(
        receiver: Receiver,
        a: &Args,
        traffic: &Traffic,
        rx_port: &RxPort,
        (queues, next_id): (Vec<VecDeque<Mbuf>>, Vec<u32>),
        threads: Threads,
        hz: f64,
    ) -> Result<Run, String> {
        let burst = usize::from(a.burst);
        let shared = Arc::new(Shared::new(1));
        let running = Arc::new(AtomicBool::new(true));
        let rxq = rx_port.port.rx_queue(0).map_err(|e| e.to_string())?;
        let (rx_loop, returns) = match receiver {
            Receiver::Netml => {
                let (out, completed) = dispatch_queue(traffic.images_total * 2 + 16);
                let worker = Worker {
                    index: 0,
                    rxq,
                    chain_txq: None,
                    chain: ChainAction::Drop,
                    udp_ports: vec![traffic.frames.udp_port],
                    burst,
                    verifier: Verifier::new(netml_verify::Config::default()),
                    out,
                    refused: None,
                    shared: shared.clone(),
                    running: running.clone(),
                    clock: Clock::new(),
                };
                let returns = Returns::Images(Box::new(move || completed.try_recv().ok()));
                (RxLoop::Netml(Box::new(worker)), returns)
            }
            Receiver::Floor => {
                let capacity = (traffic.mbufs + 4 * burst) as u32;
                let ring = Ring::new(&format!("bench_back{}", rx_port.index), capacity)
                    .map_err(|e| format!("return ring: {e}"))?;
                let floor = FloorWorker {
                    rxq,
                    burst,
                    returns: ring.clone(),
                    running: running.clone(),
                };
                (RxLoop::Floor(floor), Returns::Packets(ring))
            }
        };
        let rx_meter = Arc::new(RxMeter::default());
        // A burst normally takes a few microseconds; one that took 250 us (or 1 us per
        // packet of a large burst) was preempted.
        let preempted = (hz * (250e-6f64).max(burst as f64 * 1e-6)) as u64;
        let feed_meter = Arc::new(FeedMeter::default());
        let feed_stop = Arc::new(AtomicBool::new(false));
        let feeder = Feeder {
            ring: rx_port.ring.clone(),
            queues,
            next_id,
            base_port: traffic.frames.base_port,
            udp_off: traffic.frames.udp_off,
            burst,
            interleave: usize::from(a.interleave),
            stop: feed_stop.clone(),
            meter: feed_meter.clone(),
        };

        // Each thread says where it runs; its /proc directory gives its scheduler stats.
        type Hello = (&'static str, String, Option<PathBuf>);
        let (cpu_tx, cpu_rx) = mpsc::channel::<Hello>();
        let (rm, ctx) = (rx_meter.clone(), cpu_tx.clone());
        threads
            .rx_job
            .send(Box::new(move || {
                let _ = ctx.send(("rx", thread_cpus(), thread_dir()));
                if let Err(e) = register_thread() {
                    eprintln!("netml bench: rx thread: {e}; running without an lcore id");
                }
                match rx_loop {
                    RxLoop::Netml(worker) => (*worker).run_observed(rx_observer(rm, preempted)),
                    RxLoop::Floor(floor) => floor.run_observed(rx_observer(rm, preempted)),
                }
            }))
            .map_err(|_| "rx thread gone")?;
        threads
            .feed_job
            .send(Box::new(move || {
                let _ = cpu_tx.send(("feeder", thread_cpus(), thread_dir()));
                feeder.run(returns);
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
        Ok(Run {
            probes: Probes {
                rx: rx_meter,
                feed: feed_meter,
                shared,
                rx_dir,
                feed_dir,
            },
            running,
            feed_stop,
            rx_thread: threads.rx_thread,
            feed_thread: threads.feed_thread,
        })
    }

    /// Stops rx first (it evicts what is incomplete), then the feeder; returns the
    /// worker's counters over the whole run.
    fn stop(self) -> WorkerCounters {
        self.running.store(false, Ordering::Relaxed);
        let _ = self.rx_thread.join();
        self.feed_stop.store(true, Ordering::Relaxed);
        let _ = self.feed_thread.join();
        *self.probes.shared.workers[0].lock().expect("stats lock")
    }
}
