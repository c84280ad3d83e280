//! The netml data plane: rx workers on DPDK queues, the NF-chain action, the completeness
//! verifier holding mbufs, and (until GPU ingest and inference land) the host gather and
//! result stage.
//!
//! ```text
//! rx queue i -> Worker i (classify, verify, chain) --dispatch queue--> Sink (gather, results)
//! ```
//! [`Pipeline::start`] configures and starts the ports and spawns the threads;
//! [`Pipeline::stop`] stops rx, drains, frees everything and returns the final counters.

#![warn(missing_docs)]

pub mod clock;
pub mod config;
pub mod ingest;
pub mod metrics;
pub mod report;
pub mod sink;
pub mod stats;
pub mod telemetry;
pub mod worker;

use clock::Clock;
use config::{ChainAction, Config};
use netml_dpdk::{Mempool, Port, PortConfig, DEFAULT_DATA_ROOM};
use netml_serve::exec::cpu::{all_cores, set_affinity};
use netml_verify::Verifier;
use sink::Sink;
use stats::Shared;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use worker::Worker;

/// Opens a port by name, creating the virtual device first when `vdev_args` is given.
pub fn open_port(name: &str, vdev_args: Option<&str>) -> Result<Port, String> {
    match vdev_args {
        Some(args) => Port::create_vdev(name, args).map_err(|e| format!("port {name}: {e}")),
        None => Port::by_name(name).map_err(|e| format!("port {name}: {e}")),
    }
}

/// A running pipeline.
pub struct Pipeline {
    rx_port: Port,
    chain_port: Option<Port>,
    pool: Mempool,
    shared: Arc<Shared>,
    running: Arc<AtomicBool>,
    workers: Vec<JoinHandle<()>>,
    sink: Option<JoinHandle<()>>,
    ingest_target: netml_gpu::Target,
    /// Packet memory registered with the GPU; unregistered after the gather stage has ended.
    _registrations: Vec<netml_gpu::cuda::Registered>,
    mempool_in_use_at_start: u32,
    started: std::time::Instant,
}

impl Pipeline {
    /// Configures and starts `rx_port` (and `chain_port`, when other traffic is forwarded
    /// elsewhere) and spawns one worker per rx queue plus the gather/result stage.
    pub fn start(
        cfg: &Config,
        mut rx_port: Port,
        mut chain_port: Option<Port>,
    ) -> Result<Pipeline, String> {
        let queues = cfg.rx.queues;
        let pool = Mempool::pktmbuf(
            &format!("netml_rx_{}", std::process::id()),
            cfg.mempool.mbufs,
            cfg.mempool.cache,
            DEFAULT_DATA_ROOM,
        )
        .map_err(|e| {
            format!(
                "mempool of {} mbufs: {e} (lower mempool.mbufs or raise EAL -m)",
                cfg.mempool.mbufs
            )
        })?;
        let forward_same_port = cfg.chain.action == ChainAction::Forward && chain_port.is_none();
        // Results leave by the rx port's last tx queue. Forwarding other traffic back out of
        // the same port takes one more tx queue per worker (each queue has one owner); ports
        // that only offer as many tx as rx queues (af_packet, pcap) then need a chain port.
        let tx_queues = if forward_same_port { queues + 1 } else { 1 };
        let port_cfg = PortConfig {
            rx_queues: queues,
            tx_queues,
            rx_desc: cfg.rx.rx_desc,
            rss: cfg.rx.rss,
            ..PortConfig::default()
        };
        rx_port
            .configure(&port_cfg, &pool)
            .map_err(|e| format!("port {}: {e}", rx_port.name()))?;
        rx_port
            .start()
            .map_err(|e| format!("port {}: {e}", rx_port.name()))?;
        if let Some(p) = chain_port.as_mut() {
            let c = PortConfig {
                rx_queues: 1,
                tx_queues: queues,
                ..PortConfig::default()
            };
            p.configure(&c, &pool)
                .map_err(|e| format!("chain port {}: {e}", p.name()))?;
            p.start()
                .map_err(|e| format!("chain port {}: {e}", p.name()))?;
        }
        let mempool_in_use_at_start = pool.in_use();
        // Before any thread starts: on a GPU this registers the packet memory just created;
        // every engine is loaded and every ingest opened here, so a model that fails to load
        // stops the start with its function named.
        let prepared = ingest::prepare(&cfg.ingest)?;
        let ingest_target = prepared.target;
        let (server, lanes, control) = sink::open::open(cfg, ingest_target)?;

        let shared = Arc::new(Shared::new(queues as usize));
        let running = Arc::new(AtomicBool::new(true));
        let clock = Clock::new();
        let (tx, rx) = crossbeam_channel::bounded(cfg.dispatch_queue);
        let (refused_tx, refused_rx) =
            crossbeam_channel::bounded(worker::REFUSED_QUEUE * queues as usize);
        let mut workers = Vec::new();
        for q in 0..queues {
            let chain_txq = match (&chain_port, forward_same_port) {
                (Some(p), _) if cfg.chain.action == ChainAction::Forward => Some(p.tx_queue(q)),
                (None, true) => Some(rx_port.tx_queue(q)),
                _ => None,
            }
            .transpose()
            .map_err(|e| format!("chain tx queue {q}: {e}"))?;
            let worker = Worker {
                index: q as usize,
                rxq: rx_port
                    .rx_queue(q)
                    .map_err(|e| format!("rx queue {q}: {e}"))?,
                chain_txq,
                chain: cfg.chain.action,
                udp_ports: cfg.rx.udp_ports.clone(),
                burst: cfg.rx.burst,
                verifier: {
                    let mut v = Verifier::new(cfg.verifier.to_verify());
                    // Every image a sender started gets an answer, `incomplete` too.
                    if cfg.responses.enabled {
                        v.report_evictions();
                    }
                    v
                },
                out: tx.clone(),
                refused: cfg.responses.enabled.then(|| refused_tx.clone()),
                shared: shared.clone(),
                running: running.clone(),
                clock,
            };
            let lcore = cfg.rx.lcores.get(q as usize).copied();
            let handle = std::thread::Builder::new()
                .name(format!("netml-rx{q}"))
                .spawn(move || {
                    match lcore {
                        Some(core) => pin_to_core(core),
                        None => unpin_thread(),
                    }
                    if let Err(e) = netml_dpdk::register_thread() {
                        tracing::warn!(
                            "rx worker {q}: {e}; running without an lcore id (no mempool cache)"
                        );
                    }
                    worker.run()
                })
                .map_err(|e| format!("spawning rx worker {q}: {e}"))?;
            workers.push(handle);
        }
        drop(tx);
        drop(refused_tx);
        let txq = if cfg.responses.enabled {
            Some(
                rx_port
                    .tx_queue(tx_queues - 1)
                    .map_err(|e| format!("result tx queue: {e}"))?,
            )
        } else {
            None
        };
        let sink = Sink {
            input: rx,
            refused: refused_rx,
            replies: sink::Replies {
                txq,
                pool: pool.clone(),
                clock,
                out: Vec::with_capacity(64),
            },
            shared: shared.clone(),
            clock,
            server,
            lanes,
            record: cfg.record.clone(),
            waited: None,
            serving: !cfg.functions.is_empty(),
            control,
        };
        let sink = std::thread::Builder::new()
            .name("netml-sink".into())
            .spawn(move || {
                unpin_thread();
                let _ = netml_dpdk::register_thread();
                sink.run()
            })
            .map_err(|e| format!("spawning the gather stage: {e}"))?;
        Ok(Pipeline {
            rx_port,
            chain_port,
            pool,
            shared,
            running,
            workers,
            sink: Some(sink),
            ingest_target,
            _registrations: prepared.registrations,
            mempool_in_use_at_start,
            started: std::time::Instant::now(),
        })
    }

    /// Counters now.
    pub fn snapshot(&self) -> stats::Snapshot {
        self.shared.snapshot()
    }

    /// The receive port.
    pub fn rx_port(&self) -> &Port {
        &self.rx_port
    }

    /// The chain port, if separate.
    pub fn chain_port(&self) -> Option<&Port> {
        self.chain_port.as_ref()
    }

    /// Where the ingest runs.
    pub fn ingest_target(&self) -> netml_gpu::Target {
        self.ingest_target
    }

    /// The packet mempool.
    pub fn mempool(&self) -> &Mempool {
        &self.pool
    }

    /// Mbufs in use right after the ports started (rx rings may hold some).
    pub fn mempool_in_use_at_start(&self) -> u32 {
        self.mempool_in_use_at_start
    }

    /// Seconds since start.
    pub fn elapsed_s(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }

    /// Stops rx, lets the workers evict what is incomplete, drains the dispatch queue,
    /// answers what was complete, and returns the final report. Ports are stopped and
    /// closed when the pipeline is dropped.
    pub fn stop(&mut self) -> report::Report {
        self.running.store(false, Ordering::Relaxed);
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
        if let Some(s) = self.sink.take() {
            let _ = s.join();
        }
        report::Report::collect(self)
    }
}

impl Drop for Pipeline {
    fn drop(&mut self) {
        if self.sink.is_some() {
            self.stop();
        }
    }
}

/// Lets the calling thread run on every online CPU. `rte_eal_init` pins the main thread to
/// its main lcore and threads spawned afterwards inherit that mask, so without this every
/// pipeline thread would share one core.
pub fn unpin_thread() {
    if let Err(e) = set_affinity(&all_cores()) {
        tracing::warn!("could not widen the CPU affinity: {e}");
    }
}

fn pin_to_core(core: usize) {
    if let Err(e) = set_affinity(&[core]) {
        tracing::warn!("could not pin to core {core}: {e}");
    }
}
