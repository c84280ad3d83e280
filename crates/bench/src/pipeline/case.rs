//! One case of `bench pipeline`: a fresh pipeline for one ingest mode on its own net_ring
//! port, fed at one offered rate, warmed up, measured over a window, stopped, drained and
//! checked for leaked mbufs.

use super::super::traffic::Frames;
use super::drain::Answer;
use super::feed::Stream;
use super::rig::{percentile, since_epoch, threads_run_ns, Done, Rig};
use netml_gpu::IngestMode;
use netml_pipeline::config::{Config, IngestTarget};
use netml_pipeline::stats::Snapshot;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// What a case runs.
pub(super) struct Setup<'a> {
    /// Index, for unique DPDK object names (the EAL lives for the whole run).
    pub(super) n: usize,
    /// Cases in all, for the progress line.
    pub(super) of: usize,
    pub(super) mode: IngestMode,
    pub(super) target: IngestTarget,
    /// Offered images/s; 0: as fast as the sender can.
    pub(super) rate: f64,
    pub(super) max_batch: usize,
    /// The sink reads every batch back and checks each image's CRC-32.
    pub(super) check_crc: bool,
    pub(super) warmup: f64,
    pub(super) seconds: f64,
    pub(super) frames: &'a Arc<Frames>,
    pub(super) epoch: Instant,
    /// Set by SIGINT/SIGTERM.
    pub(super) interrupted: &'a AtomicBool,
}

/// What a case measured, over its window.
#[derive(Clone, Debug)]
pub(super) struct Figures {
    pub(super) mode: IngestMode,
    pub(super) target: String,
    pub(super) rate: f64,
    pub(super) wall_s: f64,
    /// Images wholly sent, and answered Ok with the right CRC, per second.
    pub(super) sent_per_s: f64,
    pub(super) answered_per_s: f64,
    /// The sink (gather/result) thread: CPU per answered image and share of the wall time.
    pub(super) sink_us: f64,
    pub(super) sink_share: f64,
    /// The part of it spent in `Ingest::submit`, per image.
    pub(super) submit_us: f64,
    /// The rx worker thread, likewise.
    pub(super) rx_us: f64,
    pub(super) rx_share: f64,
    /// Host threads standing in for the GPU (gather blocks, copy engine), share of one CPU.
    pub(super) standin_share: f64,
    /// The sender thread, share of one CPU.
    pub(super) feeder_share: f64,
    /// Latency sender timestamp -> result read, of the results read in the window (us).
    pub(super) p50_us: f64,
    pub(super) p99_us: f64,
    /// The part inside the pipeline (stage timestamps: first fragment in -> result out).
    pub(super) inside_p50_us: f64,
    pub(super) inside_p99_us: f64,
    /// Over the whole case: results not Ok or with a wrong CRC.
    pub(super) bad: u64,
    /// Images the pipeline dropped (backpressure, evictions) over the whole case.
    pub(super) dropped: u64,
    /// Mbufs not back in the pool after stop and drain.
    pub(super) leaked: i64,
    pub(super) pool_waits: u64,
    pub(super) ring_waits: u64,
}

/// Everything read at one edge of the window.
#[derive(Clone)]
struct Sample {
    at: Instant,
    sent: u64,
    answered: u64,
    snap: Snapshot,
    standin_ns: u64,
    feeder_ns: u64,
}

fn config(s: &Setup) -> Result<Config, String> {
    let mut c = Config::default();
    c.rx.udp_ports = vec![s.frames.udp_port];
    c.responses.enabled = true;
    c.ingest.mode = s.mode.name().into();
    c.ingest.target = s.target;
    c.ingest.max_batch = s.max_batch;
    // Images at 256-byte strides in the slot, as the GPU gather wants them aligned.
    c.ingest.max_image_bytes = s.frames.tensor_bytes.next_multiple_of(256);
    c.ingest.check_crc = s.check_crc;
    c.validate()?;
    Ok(c)
}

/// Runs one case.
pub(super) fn run(s: &Setup) -> Result<Figures, String> {
    let streams = vec![Stream {
        frames: s.frames.clone(),
        rate: s.rate,
    }];
    let crc = s.check_crc.then_some(s.frames.crc32);
    let rig = Rig::start(&format!("bp{}", s.n), &config(s)?, streams, crc, s.epoch)?;
    let sample = |r: &Rig| Sample {
        at: Instant::now(),
        sent: r.feed.images.load(Ordering::Relaxed),
        answered: r.drained.answered.load(Ordering::Relaxed),
        snap: r.p.snapshot(),
        standin_ns: threads_run_ns(STANDIN),
        feeder_ns: r.feed.cpu_ns.load(Ordering::Relaxed),
    };
    let (begin, end) = rig.measure(
        s.warmup,
        s.seconds,
        1.0,
        s.interrupted,
        sample,
        |t, a, b| progress(s, t, a, b, rig.pool.in_use()),
    );
    let (feed, drained) = (rig.feed.clone(), rig.drained.clone());
    let Done {
        report,
        answers,
        leaked,
    } = rig.finish()?;

    let wall_s = end.at.duration_since(begin.at).as_secs_f64().max(1e-9);
    let answered = end.answered.saturating_sub(begin.answered) as f64;
    let per_image = |ns: u64| {
        if answered > 0.0 {
            ns as f64 / answered / 1e3
        } else {
            0.0
        }
    };
    let sink_ns = end.snap.sink.cpu_ns.saturating_sub(begin.snap.sink.cpu_ns);
    let rx_ns = end
        .snap
        .total()
        .cpu_ns
        .saturating_sub(begin.snap.total().cpu_ns);
    let submit_ns = end
        .snap
        .sink
        .gather_ns
        .saturating_sub(begin.snap.sink.gather_ns);
    let share = |ns: u64| ns as f64 / 1e9 / wall_s;
    let (lo, hi) = (since_epoch(s.epoch, begin.at), since_epoch(s.epoch, end.at));
    let window: Vec<&Answer> = answers
        .iter()
        .filter(|a| a.good && a.read_ns >= lo && a.read_ns < hi)
        .collect();
    let sorted = |f: fn(&Answer) -> u64| {
        let mut v: Vec<u64> = window.iter().map(|a| f(a)).collect();
        v.sort_unstable();
        v
    };
    let (lat, inside) = (sorted(|a| a.latency_ns), sorted(|a| a.inside_ns));
    let t = &report.total;
    Ok(Figures {
        mode: s.mode,
        target: report.ingest_target.clone(),
        rate: s.rate,
        wall_s,
        sent_per_s: end.sent.saturating_sub(begin.sent) as f64 / wall_s,
        answered_per_s: answered / wall_s,
        sink_us: per_image(sink_ns),
        sink_share: share(sink_ns),
        submit_us: per_image(submit_ns),
        rx_us: per_image(rx_ns),
        rx_share: share(rx_ns),
        standin_share: share(end.standin_ns.saturating_sub(begin.standin_ns)),
        feeder_share: share(end.feeder_ns.saturating_sub(begin.feeder_ns)),
        p50_us: percentile(&lat, 0.50) / 1e3,
        p99_us: percentile(&lat, 0.99) / 1e3,
        inside_p50_us: percentile(&inside, 0.50) / 1e3,
        inside_p99_us: percentile(&inside, 0.99) / 1e3,
        bad: drained.bad.load(Ordering::Relaxed),
        dropped: t.backpressure_images
            + t.verifier.evicted_pressure
            + t.verifier.evicted_timeout
            + report.sink.results_dropped
            + report.sink.ingest_failed,
        leaked,
        pool_waits: feed.pool_waits.load(Ordering::Relaxed),
        ring_waits: feed.ring_waits.load(Ordering::Relaxed),
    })
}

/// The once-a-second progress line.
fn progress(s: &Setup, t: f64, a: &Sample, b: &Sample, in_use: u32) {
    let dt = b.at.duration_since(a.at).as_secs_f64().max(1e-9);
    let rate = |x: u64, y: u64| y.saturating_sub(x) as f64 / dt;
    let images = b.snap.sink.images.saturating_sub(a.snap.sink.images);
    let sink = b.snap.sink.cpu_ns.saturating_sub(a.snap.sink.cpu_ns);
    eprintln!(
        "[case {}/{} {} {}{:5.1}s] sent {:.0} img/s answered {:.0} img/s | sink CPU {:.1} us/img ({:.0}%) | mbufs in use {in_use}",
        s.n + 1,
        s.of,
        s.mode,
        if s.rate > 0.0 { format!("{:.0}/s ", s.rate) } else { "max ".into() },
        t,
        rate(a.sent, b.sent),
        rate(a.answered, b.answered),
        if images > 0 { sink as f64 / images as f64 / 1e3 } else { 0.0 },
        sink as f64 / 1e9 / dt * 100.0,
    );
}

/// Names of the host threads that stand in for the GPU: gather blocks, the copy engine
/// and the launch workers.
const STANDIN: &[&str] = &["netml-gather", "netml-copy-eng", "netml-launch"];
