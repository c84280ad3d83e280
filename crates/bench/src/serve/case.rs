//! One case of `bench serve`: a fresh pipeline serving every function under one batching
//! policy, each function offered its rate, warmed up, measured over a window, stopped,
//! drained, every image sent accounted for by its answer, and checked for leaked mbufs.

use super::super::pipeline::feed::Stream;
use super::super::pipeline::rig::{
    percentile, since_epoch, threads_run_ns, threads_wait_ns, Done, Rig,
};
use super::live::progress;
use super::Function;
use netml_pipeline::config::{Config, FunctionConfig, IngestTarget};
use netml_pipeline::stats::{FunctionSnapshot, Snapshot};
use netml_wire::result::Status;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

/// Names of the engine worker threads (`CpuInstance`: `netml-if-<model>-<k>`).
const ENGINE_THREADS: &[&str] = &["netml-if-"];
/// The serving stage's thread.
const SINK_THREAD: &[&str] = &["netml-sink"];
/// Seconds between samples: the engine's batch time is read from each function's last
/// batching decision, so it is sampled often.
const EVERY: f64 = 0.1;

/// What a case runs.
pub(super) struct Setup<'a> {
    /// Index, for unique DPDK object names (the EAL lives for the whole run).
    pub(super) n: usize,
    /// Cases in all, for the progress line.
    pub(super) of: usize,
    pub(super) policy: &'a str,
    /// Which step of the offered load (index into the rates or loads).
    pub(super) step: usize,
    /// Offered images/s, per function.
    pub(super) rates: Vec<f64>,
    pub(super) functions: &'a [Function],
    pub(super) slo_ms: f64,
    pub(super) max_batch: usize,
    pub(super) instances: usize,
    /// Ingest and engines on GPU 0 instead of the host.
    pub(super) gpu: bool,
    pub(super) warmup: f64,
    pub(super) seconds: f64,
    pub(super) epoch: Instant,
    /// Set by SIGINT/SIGTERM.
    pub(super) interrupted: &'a AtomicBool,
}

/// One function's figures in a case.
#[derive(Clone, Debug, Default)]
pub(super) struct PerFunction {
    pub(super) offered: f64,
    /// Over the window, per second: images sent, answered Ok, answered Ok inside the SLO
    /// (the pipeline's `within_slo`), answered `overloaded`, answered `failed`.
    pub(super) sent: f64,
    pub(super) ok: f64,
    pub(super) goodput: f64,
    pub(super) shed: f64,
    pub(super) failed: f64,
    /// `within_slo / answered` over the window.
    pub(super) attainment: f64,
    pub(super) mean_batch: f64,
    /// Sender timestamp -> result read, of the Ok results read in the window (ms).
    pub(super) p50_ms: f64,
    pub(super) p99_ms: f64,
    /// The engine's batch time (ms; the last decision's measured time, or while it runs
    /// the latency model's prediction, sampled every 100 ms in the window) and its engine
    /// batch size, and what the engine alone takes for that size.
    pub(super) engine_ms: f64,
    pub(super) engine_batch: f64,
    pub(super) alone_ms: f64,
    /// Over the whole case: images sent, and results by status (other: any other status).
    pub(super) total_sent: u64,
    pub(super) total_ok: u64,
    pub(super) total_overloaded: u64,
    pub(super) total_failed: u64,
    pub(super) total_other: u64,
}

/// What a case measured.
#[derive(Clone, Debug)]
pub(super) struct Figures {
    pub(super) policy: String,
    pub(super) step: usize,
    pub(super) wall_s: f64,
    pub(super) functions: Vec<PerFunction>,
    /// The serving stage's CPU per batch (`serve_ns / batches`) and its CRC part (us).
    pub(super) serve_us: f64,
    pub(super) crc_us: f64,
    /// Share of one CPU: the sink thread, the rx worker, the engine threads, the sender.
    pub(super) sink_share: f64,
    pub(super) rx_share: f64,
    pub(super) engine_share: f64,
    pub(super) sender_share: f64,
    /// Share of the wall time the sink thread was ready but waited for a CPU (latency it
    /// adds; its `serve_ns` is CPU time and does not include these waits).
    pub(super) sink_wait_share: f64,
    /// Result frames that did not parse, and result messages the pipeline could not send
    /// (tx ring full, no mbuf), over the case.
    pub(super) unparsed: u64,
    pub(super) results_dropped: u64,
    pub(super) leaked: i64,
}

/// Everything read at one moment of a case.
#[derive(Clone)]
pub(super) struct Sample {
    pub(super) at: Instant,
    /// Images sent per function.
    pub(super) sent: Vec<u64>,
    pub(super) snap: Snapshot,
    engine_ns: u64,
    sender_ns: u64,
    sink_wait_ns: u64,
}

fn config(s: &Setup) -> Result<Config, String> {
    let frames = &s.functions[0].frames;
    let mut c = Config::default();
    c.rx.udp_ports = vec![frames.udp_port];
    c.responses.enabled = true;
    c.ingest.max_batch = s.max_batch;
    c.ingest.max_image_bytes = frames.tensor_bytes.next_multiple_of(256);
    // The CRC read-back is not part of serving; `crc_ns` still says what it would cost.
    c.ingest.check_crc = false;
    c.ingest.target = if s.gpu {
        IngestTarget::Gpu
    } else {
        IngestTarget::Host
    };
    c.functions = s
        .functions
        .iter()
        .map(|f| FunctionConfig {
            name: f.name.clone(),
            model: f.model,
            model_file: f.file.clone(),
            slo_ms: s.slo_ms,
            max_batch: s.max_batch,
            instances: s.instances,
            target: if s.gpu { "auto" } else { "cpu" }.into(),
            policy: s.policy.into(),
            ..FunctionConfig::default()
        })
        .collect();
    c.validate()?;
    Ok(c)
}

pub(super) fn function(snap: &Snapshot, model: u8) -> Option<&FunctionSnapshot> {
    snap.functions.iter().find(|f| f.model == model)
}

/// Runs one case.
pub(super) fn run(s: &Setup) -> Result<Figures, String> {
    let streams = s
        .functions
        .iter()
        .zip(&s.rates)
        .map(|(f, &rate)| Stream {
            frames: f.frames.clone(),
            rate,
        })
        .collect();
    let rig = Rig::start(&format!("bs{}", s.n), &config(s)?, streams, None, s.epoch)?;
    let sample = |r: &Rig| Sample {
        at: Instant::now(),
        sent: r
            .feed
            .by_stream
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .collect(),
        snap: r.p.snapshot(),
        engine_ns: threads_run_ns(ENGINE_THREADS),
        sender_ns: r.feed.cpu_ns.load(Ordering::Relaxed),
        sink_wait_ns: threads_wait_ns(SINK_THREAD),
    };
    // Per function: (sum of sampled batch ms, of engine batch sizes, samples).
    let mut batch_ms = vec![(0.0, 0.0, 0u32); s.functions.len()];
    let mut shown: Option<Sample> = None;
    let (begin, end) = rig.measure(
        s.warmup,
        s.seconds,
        EVERY,
        s.interrupted,
        sample,
        |t, a, b| {
            for (acc, f) in batch_ms.iter_mut().zip(s.functions) {
                let Some(d) = function(&b.snap, f.model).map(|x| x.stats.last) else {
                    continue;
                };
                // A batch still running has no measured time yet: the latency model's
                // prediction (learned from the measured batches) stands in.
                let ns = if d.measured_ns > 0 {
                    d.measured_ns
                } else {
                    d.predicted_ns
                };
                if t >= s.warmup && ns > 0 {
                    *acc = (
                        acc.0 + ns as f64 / 1e6,
                        acc.1 + d.engine_batch as f64,
                        acc.2 + 1,
                    );
                }
            }
            let from = shown.get_or_insert_with(|| a.clone());
            if b.at.duration_since(from.at).as_secs_f64() >= 1.0 {
                progress(s, t, from, b, rig.pool.in_use());
                shown = Some(b.clone());
            }
        },
    );
    let (feed, drained) = (rig.feed.clone(), rig.drained.clone());
    let Done {
        report,
        answers,
        leaked,
    } = rig.finish()?;

    let wall_s = end.at.duration_since(begin.at).as_secs_f64().max(1e-9);
    let per_s = |a: u64, b: u64| b.saturating_sub(a) as f64 / wall_s;
    let (lo, hi) = (since_epoch(s.epoch, begin.at), since_epoch(s.epoch, end.at));
    let functions = s
        .functions
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let (x, y) = (
                function(&begin.snap, f.model).map(|x| x.stats.clone()),
                function(&end.snap, f.model).map(|x| x.stats.clone()),
            );
            let (x, y) = (x.unwrap_or_default(), y.unwrap_or_default());
            let mut lat: Vec<u64> = answers
                .iter()
                .filter(|a| a.model == f.model && a.good && a.read_ns >= lo && a.read_ns < hi)
                .map(|a| a.latency_ns)
                .collect();
            lat.sort_unstable();
            let count = |st: Status| {
                answers
                    .iter()
                    .filter(|a| a.model == f.model && a.status == st)
                    .count() as u64
            };
            let mine = answers.iter().filter(|a| a.model == f.model).count() as u64;
            let (ok, overloaded, failed) = (
                count(Status::Ok),
                count(Status::Overloaded),
                count(Status::Failed),
            );
            let answered = y.answered.saturating_sub(x.answered);
            let within = y.within_slo.saturating_sub(x.within_slo);
            let batches = y.batches.saturating_sub(x.batches);
            let (ms, eb, k) = batch_ms[i];
            let mean_batch =
                y.batched_images.saturating_sub(x.batched_images) as f64 / batches.max(1) as f64;
            let engine_batch = if k > 0 { eb / f64::from(k) } else { 0.0 };
            PerFunction {
                offered: s.rates[i],
                sent: per_s(begin.sent[i], end.sent[i]),
                ok: per_s(x.answered, y.answered),
                goodput: per_s(x.within_slo, y.within_slo),
                shed: per_s(x.shed(), y.shed()),
                failed: per_s(x.failed, y.failed),
                attainment: if answered > 0 {
                    within as f64 / answered as f64
                } else {
                    0.0
                },
                mean_batch,
                p50_ms: percentile(&lat, 0.50) / 1e6,
                p99_ms: percentile(&lat, 0.99) / 1e6,
                engine_ms: if k > 0 { ms / f64::from(k) } else { 0.0 },
                engine_batch,
                alone_ms: f.capacity.ms_at(engine_batch.max(mean_batch)),
                // The sender stopped in `finish`: its count is final, the window's is not.
                total_sent: feed.by_stream[i].load(Ordering::Relaxed),
                total_ok: ok,
                total_overloaded: overloaded,
                total_failed: failed,
                total_other: mine - ok - overloaded - failed,
            }
        })
        .collect();
    let (k0, k1) = (&begin.snap.sink, &end.snap.sink);
    // No batch in the window: no CPU per batch (NaN), rather than the idle turns' CPU.
    let batches = match k1.batches.saturating_sub(k0.batches) {
        0 => f64::NAN,
        b => b as f64,
    };
    let share = |a: u64, b: u64| b.saturating_sub(a) as f64 / 1e9 / wall_s;
    Ok(Figures {
        policy: s.policy.to_string(),
        step: s.step,
        wall_s,
        functions,
        serve_us: k1.serve_ns.saturating_sub(k0.serve_ns) as f64 / batches / 1e3,
        crc_us: k1.crc_ns.saturating_sub(k0.crc_ns) as f64 / batches / 1e3,
        sink_share: share(k0.cpu_ns, k1.cpu_ns),
        rx_share: share(begin.snap.total().cpu_ns, end.snap.total().cpu_ns),
        engine_share: share(begin.engine_ns, end.engine_ns),
        sender_share: share(begin.sender_ns, end.sender_ns),
        sink_wait_share: share(begin.sink_wait_ns, end.sink_wait_ns),
        unparsed: drained.unparsed.load(Ordering::Relaxed),
        results_dropped: report.sink.results_dropped,
        leaked,
    })
}
