//! A [`Sample`] in the Prometheus text format, through `prometheus-client`.
//!
//! Names follow the report's counter names (`docs/operations.md` lists them all):
//! `netml_` prefix, `_total` on counters, seconds instead of the report's nanoseconds, a
//! `queue` label per rx worker, `port` per DPDK port, `function` per inference function.

use super::Sample;
use crate::stats::{FunctionSnapshot, WorkerCounters};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeCounterValue, EncodeGaugeValue, EncodeMetric, MetricEncoder,
    NoLabelSet,
};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use std::sync::Arc;

/// `Content-Type` of the answer (text format 0.0.4).
pub(super) const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// Upper bounds (seconds) of the request latency histogram's buckets.
const LATENCY_BOUNDS_S: [f64; 14] = [
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.2, 0.5, 1.0, 5.0,
];
/// Upper bounds of the batch size histogram's buckets (images).
const BATCH_BOUNDS: [u64; 9] = [1, 2, 4, 8, 16, 32, 64, 128, 256];

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

type Labels = Vec<(&'static str, String)>;

/// One metric family: its descriptor, then a value per label set.
struct Family<'e> {
    out: MetricEncoder<'e>,
}

fn family<'e>(
    enc: &'e mut DescriptorEncoder<'_>,
    name: &'e str,
    help: &str,
    kind: MetricType,
) -> Result<Family<'e>, std::fmt::Error> {
    Ok(Family {
        out: enc.encode_descriptor(name, help, None, kind)?,
    })
}

impl Family<'_> {
    fn counter(&mut self, labels: &Labels, v: impl EncodeCounterValue) -> std::fmt::Result {
        ConstCounter::new(v).encode(self.out.encode_family(labels)?)
    }

    fn gauge(&mut self, labels: &Labels, v: impl EncodeGaugeValue) -> std::fmt::Result {
        ConstGauge::new(v).encode(self.out.encode_family(labels)?)
    }

    fn histogram(&mut self, labels: &Labels, h: &ConstHistogram) -> std::fmt::Result {
        h.encode(self.out.encode_family(labels)?)
    }
}

/// A counter family with one value per label set.
fn counters<V: EncodeCounterValue>(
    enc: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    rows: impl IntoIterator<Item = (Labels, V)>,
) -> std::fmt::Result {
    let mut f = family(enc, name, help, MetricType::Counter)?;
    for (labels, v) in rows {
        f.counter(&labels, v)?;
    }
    Ok(())
}

/// A gauge family with one value per label set.
fn gauges<V: EncodeGaugeValue>(
    enc: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    rows: impl IntoIterator<Item = (Labels, V)>,
) -> std::fmt::Result {
    let mut f = family(enc, name, help, MetricType::Gauge)?;
    for (labels, v) in rows {
        f.gauge(&labels, v)?;
    }
    Ok(())
}

fn seconds(ns: u64) -> f64 {
    ns as f64 / 1e9
}

fn none() -> Labels {
    Vec::new()
}

/// A single unlabelled value.
fn one<V>(v: V) -> [(Labels, V); 1] {
    [(none(), v)]
}

/// A histogram from counts already made: per-bucket counts (not cumulative), sum, count.
#[derive(Debug)]
struct ConstHistogram {
    buckets: Vec<(f64, u64)>,
    sum: f64,
    count: u64,
}

impl ConstHistogram {
    /// From cumulative counts at each bound.
    fn from_cumulative(
        bounds: &[f64],
        at_most: impl Fn(usize) -> u64,
        sum: f64,
        count: u64,
    ) -> Self {
        let mut prev = 0;
        let buckets = bounds
            .iter()
            .enumerate()
            .map(|(i, &b)| {
                let c = at_most(i);
                let n = c - prev;
                prev = c;
                (b, n)
            })
            .collect();
        ConstHistogram {
            buckets,
            sum,
            count,
        }
    }
}

impl EncodeMetric for ConstHistogram {
    fn encode(&self, mut encoder: MetricEncoder) -> std::fmt::Result {
        encoder.encode_histogram::<NoLabelSet>(self.sum, self.count, &self.buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
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
    ConstInfo(vec![
        ("ingest_target", r.ingest_target.clone()),
        ("version", env!("CARGO_PKG_VERSION").to_string()),
    ])
    .encode(info.out.encode_family(&none())?)?;
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

/// An info metric's labels (value 1).
#[derive(Debug)]
struct ConstInfo(Labels);

impl EncodeMetric for ConstInfo {
    fn encode(&self, mut encoder: MetricEncoder) -> std::fmt::Result {
        encoder.encode_info(&self.0)
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Info
    }
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

fn workers(enc: &mut DescriptorEncoder<'_>, workers: &[WorkerCounters]) -> std::fmt::Result {
    let queue = |i: usize| vec![("queue", i.to_string())];
    // The classification and verifier counters, named after the report's fields.
    let rx_names = WorkerCounters::default().rx.fields().map(|(k, _)| k);
    for (j, field) in rx_names.iter().enumerate() {
        let name = format!("rx_{field}");
        let help = format!("Frames classified as counted in the report's rx.{field}.");
        counters(
            enc,
            &name,
            &help,
            workers
                .iter()
                .enumerate()
                .map(|(i, w)| (queue(i), w.rx.fields()[j].1)),
        )?;
    }
    let verifier_names = WorkerCounters::default().verifier.fields().map(|(k, _)| k);
    for (j, field) in verifier_names.iter().enumerate() {
        let name = format!("verifier_{field}");
        let help = format!("The verifier's {field} counter (the report's verifier.{field}).");
        counters(
            enc,
            &name,
            &help,
            workers
                .iter()
                .enumerate()
                .map(|(i, w)| (queue(i), w.verifier.fields()[j].1)),
        )?;
    }
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

fn functions(enc: &mut DescriptorEncoder<'_>, fs: &[FunctionSnapshot]) -> std::fmt::Result {
    if fs.is_empty() {
        return Ok(());
    }
    let label = |f: &FunctionSnapshot| vec![("function", f.name.clone())];
    let mut info = family(
        enc,
        "function",
        "An inference function: its model id and batching policy.",
        MetricType::Info,
    )?;
    for f in fs {
        let labels = vec![("model", f.model.to_string()), ("policy", f.policy.clone())];
        ConstInfo(label(f).into_iter().chain(labels).collect())
            .encode(info.out.encode_family(&none())?)?;
    }
    let each = |v: fn(&FunctionSnapshot) -> u64| fs.iter().map(move |f| (label(f), v(f)));
    let each_f = |v: fn(&FunctionSnapshot) -> f64| fs.iter().map(move |f| (label(f), v(f)));
    counters(
        enc,
        "function_offered",
        "Images offered to the function (their model id matched).",
        each(|f| f.stats.offered),
    )?;
    counters(
        enc,
        "function_admitted",
        "Images admitted into the function's queue.",
        each(|f| f.stats.admitted),
    )?;
    let outcomes: [(&str, fn(&FunctionSnapshot) -> u64); 5] = [
        ("answered", |f| f.stats.answered),
        ("shed_admission", |f| f.stats.shed_admission),
        ("shed_queue_full", |f| f.stats.shed_queue_full),
        ("shed_expired", |f| f.stats.shed_expired),
        ("failed", |f| f.stats.failed),
    ];
    counters(
        enc,
        "function_requests",
        "Images by outcome: answered after inference, shed (answered overloaded) on admission, on a full queue or expired in it, failed.",
        fs.iter().flat_map(|f| {
            outcomes.iter().map(move |(status, v)| {
                (vec![("function", f.name.clone()), ("status", status.to_string())], v(f))
            })
        }),
    )?;
    counters(
        enc,
        "function_within_slo",
        "Answered images that finished inside the SLO.",
        each(|f| f.stats.within_slo),
    )?;
    counters(
        enc,
        "function_batches",
        "Batches dispatched.",
        each(|f| f.stats.batches),
    )?;
    counters(
        enc,
        "function_completed_batches",
        "Batches completed (their latency measured).",
        each(|f| f.stats.completed_batches),
    )?;
    counters(
        enc,
        "function_batch_duration_seconds",
        "Measured batch latencies (gather + inference), summed.",
        each_f(|f| seconds(f.stats.measured_sum_ns)),
    )?;
    counters(
        enc,
        "function_instances_failed",
        "Instances taken out of rotation.",
        each(|f| f.stats.instances_failed),
    )?;
    let mut latency = family(enc, "function_latency_seconds", "Arrival to answer of answered images (a bucket counts the images known to be within its bound: the recorder resolves 1/32 of a value).", MetricType::Histogram)?;
    for f in fs {
        let h = &f.stats.latency;
        let bounds_ns: Vec<u64> = LATENCY_BOUNDS_S.iter().map(|s| (s * 1e9) as u64).collect();
        let hist = ConstHistogram::from_cumulative(
            &LATENCY_BOUNDS_S,
            |i| h.count_at_most(bounds_ns[i]),
            seconds(h.sum()),
            h.count(),
        );
        latency.histogram(&label(f), &hist)?;
    }
    let mut batch = family(
        enc,
        "function_batch_size",
        "Images per dispatched batch.",
        MetricType::Histogram,
    )?;
    for f in fs {
        let sizes = &f.stats.batch_sizes;
        let at_most = |b: u64| sizes.iter().take(b as usize + 1).sum::<u64>();
        let bounds: Vec<f64> = BATCH_BOUNDS.iter().map(|&b| b as f64).collect();
        let hist = ConstHistogram::from_cumulative(
            &bounds,
            |i| at_most(BATCH_BOUNDS[i]),
            f.stats.batched_images as f64,
            f.stats.batches,
        );
        batch.histogram(&label(f), &hist)?;
    }
    gauges(
        enc,
        "function_slo_attainment_ratio",
        "Share of answered images inside the SLO (1 before any answer).",
        each_f(|f| f.stats.attainment()),
    )?;
    gauges(
        enc,
        "function_slo_seconds",
        "The function's latency objective.",
        each_f(|f| seconds(f.slo_ns)),
    )?;
    gauges(
        enc,
        "function_latency_max_seconds",
        "Largest arrival-to-answer latency so far.",
        each_f(|f| seconds(f.stats.latency.max())),
    )?;
    gauges(
        enc,
        "function_queued_images",
        "Images queued now.",
        fs.iter().map(|f| (label(f), f.queued as u64)),
    )?;
    gauges(
        enc,
        "function_instances",
        "Instances in rotation.",
        fs.iter().map(|f| (label(f), f.instances as u64)),
    )?;
    gauges(
        enc,
        "function_prediction_error_ratio",
        "Mean relative error of the batch latency predictions.",
        each_f(|f| f.stats.mean_prediction_error()),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{PortReport, Report};
    use crate::stats::SinkCounters;

    fn sample() -> Sample {
        let mut w = WorkerCounters::default();
        w.rx.frames = 7;
        w.verifier.images_completed = 3;
        w.cpu_ns = 1_500_000_000;
        let mut stats = netml_serve::FunctionStats {
            answered: 3,
            within_slo: 2,
            batches: 2,
            batched_images: 3,
            batch_sizes: vec![0, 1, 1],
            ..Default::default()
        };
        for ns in [400_000, 3_000_000, 60_000_000] {
            stats.latency.record(ns);
        }
        Sample {
            report: Report {
                elapsed_s: 2.5,
                ports: vec![PortReport {
                    name: "net_ring_demo".into(),
                    stats: netml_dpdk::PortStats {
                        ipackets: 9,
                        q_ipackets: vec![9],
                        ..Default::default()
                    },
                }],
                workers: vec![WorkerCounters::default(), w],
                total: w,
                sink: SinkCounters {
                    ok: 3,
                    gather_ns: 1234,
                    ..Default::default()
                },
                functions: vec![FunctionSnapshot {
                    name: "mobilenet".into(),
                    model: 2,
                    slo_ns: 50_000_000,
                    policy: "slab".into(),
                    queued: 0,
                    instances: 1,
                    stats,
                    shares: None,
                }],
                ingest_target: "host".into(),
                mempool_capacity: 100,
                mempool_in_use_at_start: 10,
                mempool_in_use_at_end: 10,
            },
            finished: true,
            publishes: 4,
            publish_ns: 2_000,
        }
    }

    #[test]
    fn every_part_of_the_report_is_named_by_the_conventions() {
        let body = render(&Arc::new(sample()));
        for line in [
            "# TYPE netml_rx_frames_total counter",
            "netml_rx_frames_total{queue=\"0\"} 0",
            "netml_rx_frames_total{queue=\"1\"} 7",
            "netml_verifier_images_completed_total{queue=\"1\"} 3",
            "netml_worker_cpu_seconds_total{queue=\"1\"} 1.5",
            "netml_port_rx_packets_total{port=\"net_ring_demo\"} 9",
            "netml_port_queue_rx_packets_total{port=\"net_ring_demo\",queue=\"0\"} 9",
            "netml_answers_total{status=\"ok\"} 3",
            "netml_gather_seconds_total 0.000001234",
            "netml_run_finished 1",
            "netml_run_info{ingest_target=\"host\",version=\"0.1.0\"} 1",
            "netml_function_info{function=\"mobilenet\",model=\"2\",policy=\"slab\"} 1",
            "netml_function_requests_total{function=\"mobilenet\",status=\"answered\"} 3",
            "# TYPE netml_function_latency_seconds histogram",
            "netml_function_latency_seconds_bucket{function=\"mobilenet\",le=\"0.0005\"} 1",
            "netml_function_latency_seconds_bucket{function=\"mobilenet\",le=\"0.05\"} 2",
            "netml_function_latency_seconds_bucket{function=\"mobilenet\",le=\"+Inf\"} 3",
            "netml_function_latency_seconds_sum{function=\"mobilenet\"} 0.0634",
            "netml_function_latency_seconds_count{function=\"mobilenet\"} 3",
            "netml_function_batch_size_bucket{function=\"mobilenet\",le=\"1\"} 1",
            "netml_function_batch_size_bucket{function=\"mobilenet\",le=\"2\"} 2",
            "netml_function_batch_size_sum{function=\"mobilenet\"} 3.0",
            "netml_function_slo_attainment_ratio{function=\"mobilenet\"} 0.6666666666666666",
            "netml_mempool_in_use 10",
            "# TYPE process_cpu_seconds_total counter",
        ] {
            assert!(body.lines().any(|l| l == line), "{line} missing in\n{body}");
        }
    }
}
