//! `netml bench rx`: the setup, the run and the tear-down, in the order they happen.
//!
//! [`rx`] reads top to bottom: build the traffic, start the bench threads (before
//! `rte_eal_init`, see [`prestarted`]), bring up EAL, the mempool and the net_ring port,
//! fill the circulation, start the rx worker and the feeder, warm up, measure, stop
//! everything and report.

use super::eal::{check_huge, eal_argv};
use super::feeder::{prestarted, thread_cpus, thread_dir, Feeder, Job};
use super::meter::{rx_observer, FeedMeter, Probes, Rates, RxMeter};
use super::monitor::Monitor;
use super::report::{report, write_csv, Headline};
use super::traffic::Traffic;
use super::RxArgs;
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
use std::collections::VecDeque;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::Duration;

pub(super) fn rx(a: RxArgs) -> Result<ExitCode, String> {
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
    // Before rte_eal_init: see `prestarted`.
    let threads = Threads::prestart()?;
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
    let rx_port = RxPort::start(&pool, a.ring)?;
    let in_use_at_start = pool.in_use();
    let circulation = traffic.fill(&pool)?;
    traffic.check_rewrite()?;
    print_setup(&a, &traffic, memory, hz)?;

    // Run: the rx worker and the feeder on their threads, watched from this one.
    let run = Run::start(&a, &traffic, &rx_port, circulation, threads, hz)?;
    let mut monitor = Monitor::new(
        &run.probes,
        &rx_port.ring,
        &stop,
        hz,
        traffic.frames.frags,
        a.ring,
    );
    if monitor.warm_up(a.warmup) {
        monitor.measure(a.warmup + a.seconds);
    }
    let window = monitor.finish();

    // Tear down, then count the mbufs that did not come back to the pool.
    let w = run.stop();
    rx_port.close();
    let leaked = pool.in_use().saturating_sub(in_use_at_start);

    // Report.
    let frags = traffic.frames.frags;
    let r = Rates::between(&window.begin, &window.end, hz, frags as f64, a.ring);
    let head = Headline::choose(&r, &window.quiet, hz, frags as f64);
    let mode = format!("rx-{memory}");
    let text = report(&a, &r, &head, &w, leaked, frags, window.interrupted);
    println!("{}", text.trim_end());
    if let Some(path) = &a.csv {
        write_csv(path, &mode, &head)?;
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

/// The rx port: a net_ring port whose rx queue 0 is `ring`, which the feeder fills.
struct RxPort {
    port: Port,
    tx_ring: Ring,
    ring: Ring,
}

impl RxPort {
    fn start(pool: &Mempool, size: u32) -> Result<RxPort, String> {
        let ring = Ring::new("bench_rx0", size).map_err(|e| format!("rx ring: {e}"))?;
        let tx_ring = Ring::new("bench_tx0", 64).map_err(|e| format!("tx ring: {e}"))?;
        let mut port = ring_port("bench", &[&ring], &[&tx_ring]).map_err(|e| e.to_string())?;
        port.configure(&PortConfig::default(), pool)
            .map_err(|e| e.to_string())?;
        port.start().map_err(|e| e.to_string())?;
        Ok(RxPort {
            port,
            tx_ring,
            ring,
        })
    }

    /// Closes the port and frees the rings (and the mbufs left in them).
    fn close(self) {
        let RxPort {
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
fn print_setup(a: &RxArgs, t: &Traffic, memory: &str, hz: f64) -> Result<(), String> {
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
    /// Gives the rx thread the pipeline's [`Worker`] on rx queue 0 and the feeder thread
    /// the circulation, and reports the CPUs they may run on.
    fn start(
        a: &RxArgs,
        traffic: &Traffic,
        rx_port: &RxPort,
        (queues, next_id): (Vec<VecDeque<Mbuf>>, Vec<u32>),
        threads: Threads,
        hz: f64,
    ) -> Result<Run, String> {
        let burst = usize::from(a.burst);
        let shared = Arc::new(Shared::new(1));
        let running = Arc::new(AtomicBool::new(true));
        let (out, completed) = dispatch_queue(traffic.images_total * 2 + 16);
        let worker = Worker {
            index: 0,
            rxq: rx_port.port.rx_queue(0).map_err(|e| e.to_string())?,
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
                worker.run_observed(rx_observer(rm, preempted));
            }))
            .map_err(|_| "rx thread gone")?;
        threads
            .feed_job
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
