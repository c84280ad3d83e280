//! Generated traffic for `netml run` on its built-in defaults: a net_ring port whose rx
//! rings are fed by netml-pktgen's send loop and whose tx rings (the results) are read back
//! and matched against what was sent. Everything crosses real DPDK rings and mbufs.

use netml_dpdk::{ring_port, Mbuf, Mempool, Port, Ring};
use netml_pktgen::faults::Faults;
use netml_pktgen::manifest::Entry;
use netml_pktgen::output::Sink;
use netml_pktgen::pace::Rate;
use netml_pktgen::recv::{Arrival, Matcher};
use netml_pktgen::report::Report;
use netml_pktgen::send::{self, Limit};
use netml_pktgen::summary::Summary;
use netml_pktgen::tensor;
use netml_wire::fragment::Dtype;
use netml_wire::frame;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// What the generator sends.
#[derive(Debug, Clone, clap::Args)]
pub struct DemoArgs {
    /// Images the demo generator sends.
    #[arg(long, default_value_t = 1000)]
    pub demo_images: u64,
    /// Generator rate in images per second (0: as fast as it can).
    #[arg(long, default_value_t = 0.0)]
    pub demo_ips: f64,
    /// Tensor shape of the generated images.
    #[arg(long, default_value = "1x3x224x224")]
    pub demo_shape: String,
    /// Flows (source ports) the generator spreads images over.
    #[arg(long, default_value_t = 4)]
    pub demo_flows: u16,
    /// Seeded faults: fraction of fragments lost, duplicated (and reordered in windows of 32).
    #[arg(long, default_value_t = 0.00002)]
    pub demo_loss: f64,
    /// Fraction of fragments duplicated.
    #[arg(long, default_value_t = 0.001)]
    pub demo_dup: f64,
}

/// The demo's rings, generator and receiver.
pub struct Demo {
    generator: Option<JoinHandle<Result<Summary, String>>>,
    receiver: Option<JoinHandle<()>>,
    manifest: Arc<Mutex<Vec<Entry>>>,
    arrivals: Arc<Mutex<Vec<Arrival>>>,
    stop_receiver: Arc<AtomicBool>,
    stop_generator: Arc<AtomicBool>,
    rx_rings: Vec<Ring>,
}

/// The generator's error when it is told to stop early.
const STOPPED: &str = "demo stopped";

/// Name of the demo port (`net_ring_` + this).
pub const PORT: &str = "demo";

/// Creates the net_ring port: `queues` rx rings and `queues + 1` tx rings (the last one
/// carries results).
pub fn create_port(queues: u16) -> Result<(Port, Vec<Ring>, Vec<Ring>), String> {
    let mk = |kind: &str, i: u16| {
        Ring::new(&format!("demo_{kind}{i}"), 16384).map_err(|e| format!("demo ring: {e}"))
    };
    let rx: Vec<Ring> = (0..queues).map(|i| mk("rx", i)).collect::<Result<_, _>>()?;
    let tx: Vec<Ring> = (0..=queues)
        .map(|i| mk("tx", i))
        .collect::<Result<_, _>>()?;
    let port = ring_port(
        PORT,
        &rx.iter().collect::<Vec<_>>(),
        &tx.iter().collect::<Vec<_>>(),
    )
    .map_err(|e| format!("demo port: {e}"))?;
    Ok((port, rx, tx))
}

/// Frames from pktgen's send loop into mbufs on the rx rings (flow f to ring f mod n, as RSS
/// would spread them).
struct RingSink {
    pool: Mempool,
    rings: Vec<Ring>,
    pending: Vec<Vec<Mbuf>>,
    stop: Arc<AtomicBool>,
}

impl RingSink {
    fn push(&mut self, ring: usize) {
        let pending = &mut self.pending[ring];
        while !pending.is_empty() {
            self.rings[ring].enqueue_burst(pending);
            if !pending.is_empty() {
                if self.stop.load(Ordering::Relaxed) {
                    Mbuf::free_bulk(pending);
                    return;
                }
                std::thread::yield_now();
            }
        }
    }
}

impl Sink for RingSink {
    fn send(
        &mut self,
        frame: &[u8],
        _ts: u64,
        flow: usize,
        _payload: usize,
    ) -> netml_pktgen::Result<usize> {
        let ring = flow % self.rings.len();
        let m = loop {
            match Mbuf::from_bytes(&self.pool, frame) {
                Ok(m) => break m,
                // The pool is empty while the pipeline holds mbufs: wait for it.
                Err(_) => {
                    if self.stop.load(Ordering::Relaxed) {
                        return Err(netml_pktgen::Error::new(STOPPED));
                    }
                    self.push(ring);
                    std::thread::yield_now();
                }
            }
        };
        self.pending[ring].push(m);
        if self.pending[ring].len() >= 32 {
            self.push(ring);
        }
        if self.stop.load(Ordering::Relaxed) {
            self.push(ring);
            return Err(netml_pktgen::Error::new(STOPPED));
        }
        Ok(frame.len())
    }
    fn finish(&mut self) -> netml_pktgen::Result<()> {
        for r in 0..self.rings.len() {
            self.push(r);
        }
        Ok(())
    }
    fn is_live(&self) -> bool {
        true
    }
}

impl Demo {
    /// Starts the generator on `rx` rings, drawing mbufs from `pool` (the pipeline's, so that
    /// its accounting covers the demo's packets too), and the receiver on `tx` rings.
    pub fn start(
        args: &DemoArgs,
        pool: Mempool,
        rx: Vec<Ring>,
        tx: Vec<Ring>,
    ) -> Result<Demo, String> {
        let shape = tensor::parse_shape(&args.demo_shape).map_err(|e| e.to_string())?;
        let tensors = tensor::synthetic(&shape, Dtype::F32, 4, 1).map_err(|e| e.to_string())?;
        let mut cfg = send::Config::new(tensors);
        cfg.models = vec![1, 2];
        cfg.flows.flows = args.demo_flows.max(1);
        cfg.faults = Faults {
            loss: args.demo_loss,
            dup: args.demo_dup,
            reorder: 32,
            ..Faults::default()
        };
        cfg.rate = if args.demo_ips > 0.0 {
            Rate::Ips(args.demo_ips)
        } else {
            Rate::Unlimited
        };
        cfg.limit = Limit {
            count: Some(args.demo_images),
            ..Limit::default()
        };
        let manifest = Arc::new(Mutex::new(Vec::new()));
        let m2 = manifest.clone();
        let pending = (0..rx.len()).map(|_| Vec::new()).collect();
        let stop_generator = Arc::new(AtomicBool::new(false));
        let (stop_gen, rx_rings) = (stop_generator.clone(), rx.clone());
        let generator = std::thread::Builder::new()
            .name("netml-demo-gen".into())
            .spawn(move || {
                netml_pipeline::unpin_thread();
                let _ = netml_dpdk::register_thread();
                let mut sink = RingSink {
                    pool,
                    rings: rx,
                    pending,
                    stop: stop_gen,
                };
                let mut on_image = |e: &Entry| {
                    m2.lock().expect("manifest").push(e.clone());
                    Ok(())
                };
                send::run(&cfg, &mut sink, &mut on_image).map_err(|e| e.to_string())
            })
            .map_err(|e| e.to_string())?;

        let arrivals = Arc::new(Mutex::new(Vec::new()));
        let stop_receiver = Arc::new(AtomicBool::new(false));
        let (a2, stop) = (arrivals.clone(), stop_receiver.clone());
        let receiver = std::thread::Builder::new()
            .name("netml-demo-recv".into())
            .spawn(move || receive(tx, a2, stop))
            .map_err(|e| e.to_string())?;
        Ok(Demo {
            generator: Some(generator),
            receiver: Some(receiver),
            manifest,
            arrivals,
            stop_receiver,
            stop_generator,
            rx_rings,
        })
    }

    /// Whether the generator has sent everything.
    pub fn generator_done(&self) -> bool {
        self.generator.as_ref().is_none_or(|g| g.is_finished())
    }

    /// Intact images sent so far and results received so far.
    pub fn progress(&self) -> (usize, usize) {
        let intact = self
            .manifest
            .lock()
            .expect("manifest")
            .iter()
            .filter(|e| e.intact)
            .count();
        (intact, self.arrivals.lock().expect("arrivals").len())
    }

    /// Stops the generator (if still sending), stops the receiver and matches results to
    /// what was sent. The summary is `None` when the generator was stopped early.
    pub fn finish(mut self) -> Result<(Option<Summary>, Report), String> {
        // The pipeline has stopped: nothing drains the rx rings any more.
        self.stop_generator.store(true, Ordering::Relaxed);
        let summary = match self.generator.take().map(|g| g.join()) {
            Some(Ok(r)) => r,
            _ => return Err("demo generator panicked".into()),
        };
        let mut left = Vec::new();
        for r in &self.rx_rings {
            while r.dequeue_burst(&mut left, 256) > 0 {
                Mbuf::free_bulk(&mut left);
            }
        }
        let summary = match summary {
            Err(e) if e.contains(STOPPED) => None,
            other => Some(other?),
        };
        self.stop_receiver.store(true, Ordering::Relaxed);
        if let Some(r) = self.receiver.take() {
            let _ = r.join();
        }
        let manifest = std::mem::take(&mut *self.manifest.lock().expect("manifest"));
        let mut matcher = Matcher::new(manifest);
        for a in self.arrivals.lock().expect("arrivals").iter() {
            matcher.add(a);
        }
        Ok((summary, matcher.into_report()))
    }
}

/// Reads result frames off the tx rings until told to stop (then drains once more).
fn receive(rings: Vec<Ring>, arrivals: Arc<Mutex<Vec<Arrival>>>, stop: Arc<AtomicBool>) {
    netml_pipeline::unpin_thread();
    let _ = netml_dpdk::register_thread();
    let mut burst = Vec::with_capacity(64);
    loop {
        let stopping = stop.load(Ordering::Relaxed);
        let mut got = 0;
        for r in &rings {
            got += r.dequeue_burst(&mut burst, 64);
            let recv_ns = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64);
            let mut out = arrivals.lock().expect("arrivals");
            for m in burst.drain(..) {
                if let Ok(Some(d)) = frame::parse_udp(m.data()) {
                    let data = m.data()[d.payload.clone()].to_vec();
                    out.push(Arrival {
                        local: d.dst,
                        peer: d.src,
                        recv_ns,
                        data,
                    });
                }
            }
        }
        if got == 0 {
            if stopping {
                break;
            }
            std::thread::sleep(Duration::from_micros(200));
        }
    }
}
