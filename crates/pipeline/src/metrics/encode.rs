//! A [`Sample`] in the Prometheus text format, through `prometheus-client`.
//!
//! Names follow the report's counter names (`docs/operations.md` lists them all):
//! `netml_` prefix, `_total` on counters, seconds instead of the report's nanoseconds, a
//! `queue` label per rx worker, `port` per DPDK port, `function` per inference function.

use super::families::{counters, family, gauges, none, one, seconds};
use super::functions::functions;
use super::Sample;
use crate::stats::WorkerCounters;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use std::sync::Arc;

/// `Content-Type` of the answer (text format 0.0.4).
pub(super) const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// The sample as the body of a `/metrics` answer.
pub(super) fn render(sample: &Arc<Sample>) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Process));
    registry
        .sub_registry_with_prefix("netml")
        .register_collector(Box::new(Netml(sample.clone())));
    let mut body = String::with_capacity(64 * 1024);
    // Writing into a String cannot fail, and every value encodes.
    prometheus_client::encoding::prometheus_text::encode(&mut body, &registry)
        .expect("metrics encode");
    body
}

/// Everything of the sample, under the `netml_` prefix.
#[derive(Debug)]
struct Netml(Arc<Sample>);

impl Collector for Netml {
    fn encode(&self, mut enc: DescriptorEncoder) -> std::fmt::Result {
        let s = &*self.0;
        run(&mut enc, s)?;
        ports(&mut enc, s)?;
        workers(&mut enc, &s.report.workers)?;
        sink(&mut enc, s)?;
        functions(&mut enc, &s.report.functions)
    }
}

fn run(enc: &mut DescriptorEncoder<'_>, s: &Sample) -> std::fmt::Result {
    let r = &s.report;
    let mut info = family(
        enc,
        "run",
        "The run: ingest target and netml version.",
        MetricType::Info,
    )?;
    info.info(vec![
        ("ingest_target", r.ingest_target.clone()),
        ("version", env!("CARGO_PKG_VERSION").to_string()),
    ])?;
    gauges(
        enc,
        "run_elapsed_seconds",
        "Seconds the pipeline has run (at the end: ran).",
        one(r.elapsed_s),
    )?;
    let g = |enc: &mut DescriptorEncoder<'_>, name, help, v: u64| gauges(enc, name, help, one(v));
    g(
        enc,
        "run_finished",
        "1 once the run has ended and these are its final counters (the JSON report's).",
        s.finished.into(),
    )?;
    g(
        enc,
        "mempool_capacity",
        "Mbufs in the packet mempool.",
        r.mempool_capacity.into(),
    )?;
    g(
        enc,
        "mempool_in_use",
        "Mbufs in use now (at the end: after draining, the report's in_use_at_end).",
        r.mempool_in_use_at_end.into(),
    )?;
    g(
        enc,
        "mempool_in_use_at_start",
        "Mbufs in use right after the ports started.",
        r.mempool_in_use_at_start.into(),
    )?;
    counters(
        enc,
        "metrics_publishes",
        "Samples the run loop published for this endpoint.",
        [(none(), s.publishes)],
    )?;
    counters(
        enc,
        "metrics_publish_seconds",
        "Time the run loop spent collecting and publishing them (all but the last).",
        [(none(), seconds(s.publish_ns))],
    )
}

fn ports(enc: &mut DescriptorEncoder<'_>, s: &Sample) -> std::fmt::Result {
    let ports = &s.report.ports;
    let per_port = |f: fn(&netml_dpdk::PortStats) -> u64| {
        ports
            .iter()
            .map(move |p| (vec![("port", p.name.clone())], f(&p.stats)))
    };
    counters(
        enc,
        "port_rx_packets",
        "Packets the port received (ipackets).",
        per_port(|s| s.ipackets),
    )?;
    counters(
        enc,
        "port_rx_bytes",
        "Bytes the port received (ibytes).",
        per_port(|s| s.ibytes),
    )?;
    counters(
        enc,
        "port_rx_missed",
        "Packets dropped by the NIC: rx queue full (imissed).",
        per_port(|s| s.imissed),
    )?;
    counters(
        enc,
        "port_rx_errors",
        "Erroneous packets received (ierrors).",
        per_port(|s| s.ierrors),
    )?;
    counters(
        enc,
        "port_rx_nombuf",
        "Receive mbuf allocation failures (rx_nombuf).",
        per_port(|s| s.rx_nombuf),
    )?;
    counters(
        enc,
        "port_tx_packets",
        "Packets the port sent (opackets).",
        per_port(|s| s.opackets),
    )?;
    counters(
        enc,
        "port_tx_bytes",
        "Bytes the port sent (obytes).",
        per_port(|s| s.obytes),
    )?;
    counters(
        enc,
        "port_tx_errors",
        "Failed transmissions (oerrors).",
        per_port(|s| s.oerrors),
    )?;
    counters(
        enc,
        "port_queue_rx_packets",
        "Packets received per rx queue (q_ipackets).",
        ports.iter().flat_map(|p| {
            p.stats
                .q_ipackets
                .iter()
                .enumerate()
                .map(|(q, &n)| (vec![("port", p.name.clone()), ("queue", q.to_string())], n))
        }),
    )
}

/// One counter family per field of a per-queue counter group, named `{prefix}_{field}`.
fn field_counters(
    enc: &mut DescriptorEncoder<'_>,
    workers: &[WorkerCounters],
    prefix: &str,
    help: impl Fn(&str) -> String,
    fields: impl Fn(&WorkerCounters) -> Vec<(&'static str, u64)>,
) -> std::fmt::Result {
    let names = fields(&WorkerCounters::default());
    for (j, (field, _)) in names.iter().enumerate() {
        counters(
            enc,
            &format!("{prefix}_{field}"),
            &help(field),
            workers
                .iter()
                .enumerate()
                .map(|(i, w)| (queue(i), fields(w)[j].1)),
        )?;
    }
    Ok(())
}

/// The label of rx queue `i`.
fn queue(i: usize) -> Vec<(&'static str, String)> {
    vec![("queue", i.to_string())]
}

fn workers(enc: &mut DescriptorEncoder<'_>, workers: &[WorkerCounters]) -> std::fmt::Result {
    // The classification and verifier counters, named after the report's fields.
    field_counters(
        enc,
        workers,
        "rx",
        |f| format!("Frames classified as counted in the report's rx.{f}."),
        |w| w.rx.fields().to_vec(),
    )?;
    field_counters(
        enc,
        workers,
        "verifier",
        |f| format!("The verifier's {f} counter (the report's verifier.{f})."),
        |w| w.verifier.fields().to_vec(),
    )?;
    let per_queue = |f: fn(&WorkerCounters) -> u64| {
        workers
            .iter()
            .enumerate()
            .map(move |(i, w)| (queue(i), f(w)))
    };
    counters(
        enc,
        "chain_forwarded",
        "Other traffic forwarded by the NF-chain action.",
        per_queue(|w| w.chain_forwarded),
    )?;
    counters(
        enc,
        "chain_dropped",
        "Other traffic dropped by the NF-chain action.",
        per_queue(|w| w.chain_dropped),
    )?;
    counters(
        enc,
        "chain_tx_full",
        "Other traffic dropped because the chain tx queue was full.",
        per_queue(|w| w.chain_tx_full),
    )?;
    counters(
        enc,
        "backpressure_images",
        "Complete images dropped because the dispatch queue was full.",
        per_queue(|w| w.backpressure_images),
    )?;
    counters(
        enc,
        "backpressure_fragments",
        "Fragments freed with those images.",
        per_queue(|w| w.backpressure_fragments),
    )?;
    counters(
        enc,
        "backpressure_unanswered",
        "Of those images, the ones whose overloaded answer could not be queued either.",
        per_queue(|w| w.backpressure_unanswered),
    )?;
    gauges(
        enc,
        "in_flight_images",
        "Incomplete images the verifier holds.",
        per_queue(|w| w.in_flight),
    )?;
    gauges(
        enc,
        "held_fragments",
        "Fragments the verifier holds.",
        per_queue(|w| w.held_fragments),
    )?;
    counters(
        enc,
        "worker_cpu_seconds",
        "CPU time of the rx worker's thread.",
        per_queue(|w| w.cpu_ns).map(|(l, v)| (l, seconds(v))),
    )
}

fn sink(enc: &mut DescriptorEncoder<'_>, s: &Sample) -> std::fmt::Result {
    let k = &s.report.sink;
    let fields = k.fields();
    // The report lists the answer statuses first.
    let statuses = [
        "ok",
        "unknown_model",
        "shape_mismatch",
        "overloaded",
        "failed",
        "incomplete",
    ];
    debug_assert!(statuses.iter().zip(&fields).all(|(s, f)| *s == f.0));
    counters(
        enc,
        "answers",
        "Images answered, by result status.",
        fields[..statuses.len()]
            .iter()
            .map(|(st, n)| (vec![("status", st.to_string())], *n)),
    )?;
    counters(
        enc,
        "gather_images",
        "Images gathered into batch buffers.",
        one(k.images),
    )?;
    counters(enc, "gather_bytes", "Tensor bytes gathered.", one(k.bytes))?;
    counters(
        enc,
        "gather_batches",
        "Batches submitted to the ingest.",
        one(k.batches),
    )?;
    counters(
        enc,
        "gather_seconds",
        "Time the serving stage spent handing batches to the ingest.",
        one(seconds(k.gather_ns)),
    )?;
    counters(
        enc,
        "crc_mismatch",
        "Images whose gathered bytes do not match the sender's CRC-32.",
        one(k.crc_mismatch),
    )?;
    counters(
        enc,
        "crc_seconds",
        "Time spent reading slots back and computing CRC-32s.",
        one(seconds(k.crc_ns)),
    )?;
    counters(
        enc,
        "ingest_failed",
        "Images lost to an ingest failure (answered failed).",
        one(k.ingest_failed),
    )?;
    counters(
        enc,
        "ingest_stalls",
        "Times the ingest watchdog reported a batch without progress.",
        one(k.ingest_stalls),
    )?;
    counters(
        enc,
        "instances_lost",
        "Inference instances taken out of rotation.",
        one(k.instances_lost),
    )?;
    counters(
        enc,
        "results_sent",
        "Result messages sent.",
        one(k.results_sent),
    )?;
    counters(
        enc,
        "results_dropped",
        "Result messages dropped (tx queue full or no mbuf).",
        one(k.results_dropped),
    )?;
    counters(
        enc,
        "serve_cpu_seconds",
        "CPU time of the serving stage's thread on routing, admission, batching and answers.",
        one(seconds(k.serve_ns)),
    )?;
    counters(
        enc,
        "sink_cpu_seconds",
        "CPU time of the serving stage's thread, all of it.",
        one(seconds(k.cpu_ns)),
    )
}

/// The process's CPU time, memory and start time, read at each scrape (standard names,
/// no prefix, as every Prometheus client library exports them).
#[derive(Debug)]
struct Process;

impl Collector for Process {
    fn encode(&self, mut enc: DescriptorEncoder) -> std::fmt::Result {
        let p = super::process::read();
        counters(
            &mut enc,
            "process_cpu_seconds",
            "User and system CPU time of the process.",
            [(none(), p.cpu_s)],
        )?;
        gauges(
            &mut enc,
            "process_resident_memory_bytes",
            "Resident memory of the process.",
            [(none(), p.resident_bytes)],
        )?;
        gauges(
            &mut enc,
            "process_start_time_seconds",
            "Start time of the process since the Unix epoch.",
            [(none(), p.start_time_s)],
        )?;
        gauges(
            &mut enc,
            "process_threads",
            "Threads of the process.",
            [(none(), p.threads)],
        )
    }
}
