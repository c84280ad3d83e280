//! What the pipeline tells its operator: a live line per interval and a final report
//! (text or JSON).

use crate::stats::{FunctionSnapshot, SharesSnapshot, SinkCounters, Snapshot, WorkerCounters};
use crate::Pipeline;
use netml_dpdk::{Port, PortStats};
use serde_json::{json, Map, Value};
use std::fmt::Write as _;

/// A port's statistics with its name.
#[derive(Debug, Clone)]
pub struct PortReport {
    /// DPDK port name.
    pub name: String,
    /// Its counters.
    pub stats: PortStats,
}

impl PortReport {
    /// Reads a port's statistics (zeros if the PMD cannot say).
    pub fn read(port: &Port) -> PortReport {
        PortReport {
            name: port.name().to_string(),
            stats: port.stats().unwrap_or_default(),
        }
    }
}

/// The final counters of a run.
#[derive(Debug, Clone)]
pub struct Report {
    /// Seconds the pipeline ran.
    pub elapsed_s: f64,
    /// The rx port and, if separate, the chain port.
    pub ports: Vec<PortReport>,
    /// Per rx worker.
    pub workers: Vec<WorkerCounters>,
    /// Summed over the workers.
    pub total: WorkerCounters,
    /// The gather/result stage.
    pub sink: SinkCounters,
    /// Per inference function.
    pub functions: Vec<FunctionSnapshot>,
    /// Where the ingest ran (`host` or `gpuN`).
    pub ingest_target: String,
    /// Mempool size.
    pub mempool_capacity: u32,
    /// Mbufs in use after the ports started.
    pub mempool_in_use_at_start: u32,
    /// Mbufs in use at the end, after draining (equal to the start value when nothing leaked).
    pub mempool_in_use_at_end: u32,
}

impl Report {
    pub(crate) fn collect(p: &Pipeline) -> Report {
        let snap = p.snapshot();
        let mut ports = vec![PortReport::read(p.rx_port())];
        ports.extend(p.chain_port().map(PortReport::read));
        Report {
            elapsed_s: p.elapsed_s(),
            ports,
            total: snap.total(),
            workers: snap.workers,
            sink: snap.sink,
            functions: snap.functions.clone(),
            ingest_target: p.ingest_target().to_string(),
            mempool_capacity: p.mempool().capacity(),
            mempool_in_use_at_start: p.mempool_in_use_at_start(),
            mempool_in_use_at_end: p.mempool().in_use(),
        }
    }

    /// The report as JSON (counter names as in the structs).
    pub fn to_json(&self) -> Value {
        let ports: Vec<Value> = self
            .ports
            .iter()
            .map(|p| {
                let s = &p.stats;
                json!({
                    "name": p.name, "ipackets": s.ipackets, "ibytes": s.ibytes, "imissed": s.imissed,
                    "ierrors": s.ierrors, "rx_nombuf": s.rx_nombuf, "opackets": s.opackets,
                    "obytes": s.obytes, "oerrors": s.oerrors, "q_ipackets": s.q_ipackets,
                })
            })
            .collect();
        json!({
            "elapsed_s": self.elapsed_s,
            "ports": ports,
            "total": worker_json(&self.total),
            "workers": self.workers.iter().map(worker_json).collect::<Vec<_>>(),
            "sink": sink_json(&self.sink),
            "functions": self.functions.iter().map(function_json).collect::<Vec<_>>(),
            "ingest_target": self.ingest_target,
            "mempool": {
                "capacity": self.mempool_capacity,
                "in_use_at_start": self.mempool_in_use_at_start,
                "in_use_at_end": self.mempool_in_use_at_end,
            },
        })
    }

    /// The report as text: one line per JSON section, with the JSON's counter names
    /// (`rx:` and `verifier:` are `total.rx` and `total.verifier`, `chain:` the other
    /// counters of `total`, `sink:` is `sink`, `mempool:` is `mempool`).
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        let t = &self.total;
        let _ = writeln!(s, "ran {:.1} s", self.elapsed_s);
        for p in &self.ports {
            let st = &p.stats;
            let _ = writeln!(
                s,
                "port {}: rx {} pkts {} bytes, missed {}, errors {}, no-mbuf {}; tx {} pkts; per queue rx {:?}",
                p.name, st.ipackets, st.ibytes, st.imissed, st.ierrors, st.rx_nombuf, st.opackets, st.q_ipackets
            );
        }
        let _ = writeln!(s, "rx:       {}", pairs(&t.rx.fields()));
        let _ = writeln!(s, "verifier: {}", pairs(&t.verifier.fields()));
        let _ = writeln!(
            s,
            "chain:    chain_forwarded={} chain_dropped={} chain_tx_full={} backpressure_images={} backpressure_fragments={} backpressure_unanswered={}",
            t.chain_forwarded,
            t.chain_dropped,
            t.chain_tx_full,
            t.backpressure_images,
            t.backpressure_fragments,
            t.backpressure_unanswered
        );
        let k = &self.sink;
        let per_image = |ns: u64| {
            if k.images > 0 {
                ns as f64 / k.images as f64 / 1e3
            } else {
                0.0
            }
        };
        let _ = writeln!(
            s,
            "sink:     {} submit_per_image={:.1}us serve_per_batch={:.1}us on {}",
            pairs(&k.fields()[..15]),
            per_image(k.gather_ns),
            k.serve_ns_per_batch() / 1e3,
            self.ingest_target
        );
        for f in &self.functions {
            let _ = writeln!(s, "function: {}", function_text(f));
        }
        let _ = writeln!(
            s,
            "cpu:      rx workers {:.1} ms ({:.1}us per image), gather thread {:.1} ms ({:.1}us per image){}",
            t.cpu_ns as f64 / 1e6,
            per_image(t.cpu_ns),
            k.cpu_ns as f64 / 1e6,
            per_image(k.cpu_ns),
            if self.ingest_target == "host" {
                "; host threads standing in for the GPU not counted"
            } else {
                ""
            }
        );
        let _ = writeln!(
            s,
            "mempool:  capacity={} in_use_at_start={} in_use_at_end={}",
            self.mempool_capacity, self.mempool_in_use_at_start, self.mempool_in_use_at_end
        );
        s
    }
}

fn pairs(fields: &[(&str, u64)]) -> String {
    fields
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(" ")
}

fn obj(fields: &[(&str, u64)]) -> Value {
    Value::Object(
        fields
            .iter()
            .map(|(k, v)| (k.to_string(), json!(v)))
            .collect::<Map<_, _>>(),
    )
}

fn worker_json(w: &WorkerCounters) -> Value {
    json!({
        "rx": obj(&w.rx.fields()),
        "verifier": obj(&w.verifier.fields()),
        "chain_forwarded": w.chain_forwarded,
        "chain_dropped": w.chain_dropped,
        "chain_tx_full": w.chain_tx_full,
        "backpressure_images": w.backpressure_images,
        "backpressure_fragments": w.backpressure_fragments,
        "backpressure_unanswered": w.backpressure_unanswered,
        "in_flight": w.in_flight,
        "held_fragments": w.held_fragments,
        "cpu_ns": w.cpu_ns,
    })
}

fn sink_json(k: &SinkCounters) -> Value {
    obj(&k.fields())
}

/// Milliseconds with two decimals, from ns.
fn ms(ns: u64) -> f64 {
    (ns as f64 / 1e4).round() / 100.0
}

fn function_text(f: &FunctionSnapshot) -> String {
    let st = &f.stats;
    let q = |p| {
        st.latency
            .quantile(p)
            .map_or("-".to_string(), |v| format!("{:.2}", ms(v)))
    };
    format!(
        "{} (model {}, {}, slo {} ms) offered={} admitted={} answered={} within_slo={} attainment={:.4} shed_admission={} shed_queue_full={} shed_expired={} failed={} batches={} mean_batch={:.1} p50={}ms p99={}ms prediction_error={:.1}% instances={} queued={}",
        f.name, f.model, f.policy, ms(f.slo_ns), st.offered, st.admitted, st.answered, st.within_slo,
        st.attainment(), st.shed_admission, st.shed_queue_full, st.shed_expired, st.failed, st.batches,
        st.mean_batch(), q(0.5), q(0.99), st.mean_prediction_error() * 100.0, f.instances, f.queued
    ) + &f.shares.as_ref().map_or(String::new(), shares_text)
}

/// ` threads=2,1 resizes=3 downtime_us=[80.1,-,95.0] gap_us=41.2`: threads per instance now,
/// each resize's downtime (`-`: no batch was waiting), the mean gap at other batch boundaries.
fn shares_text(s: &SharesSnapshot) -> String {
    let threads: Vec<String> = s.threads.iter().map(u32::to_string).collect();
    let downtimes: Vec<String> = s
        .resizes
        .iter()
        .map(|(_, r)| {
            r.downtime_ns
                .map_or("-".into(), |d| format!("{:.1}", d as f64 / 1e3))
        })
        .collect();
    format!(
        " threads={} resizes={} downtime_us=[{}] gap_us={:.1}",
        threads.join(","),
        s.resizes.len(),
        downtimes.join(","),
        s.gaps.mean_ns() / 1e3
    )
}

/// A function's shares as JSON: threads per instance, every resize, the batch-boundary gaps.
fn shares_json(s: &SharesSnapshot) -> Value {
    json!({
        "threads": s.threads,
        "resizes": s.resizes.iter().map(|(k, r)| json!({
            "instance": k, "from": r.from, "to": r.to, "prepare_ms": r.prepare_ns as f64 / 1e6,
            "downtime_us": r.downtime_ns.map(|d| d as f64 / 1e3),
        })).collect::<Vec<_>>(),
        "gap_us": {"count": s.gaps.count, "mean": s.gaps.mean_ns() / 1e3, "max": s.gaps.max_ns as f64 / 1e3},
    })
}

/// One function as JSON: its counters, latency percentiles and last batching decision.
pub fn function_json(f: &FunctionSnapshot) -> Value {
    let st = &f.stats;
    let d = &st.last;
    json!({
        "name": f.name, "model": f.model, "policy": f.policy, "slo_ms": ms(f.slo_ns),
        "offered": st.offered, "admitted": st.admitted, "answered": st.answered,
        "within_slo": st.within_slo, "attainment": st.attainment(),
        "shed_admission": st.shed_admission, "shed_queue_full": st.shed_queue_full,
        "shed_expired": st.shed_expired, "failed": st.failed, "batches": st.batches,
        "mean_batch": st.mean_batch(),
        "batch_sizes": st.batch_sizes.iter().enumerate().filter(|(_, n)| **n > 0).map(|(b, n)| json!([b, n])).collect::<Vec<_>>(),
        "latency_ms": {"p50": st.latency.quantile(0.5).map(ms), "p99": st.latency.quantile(0.99).map(ms), "max": ms(st.latency.max())},
        "prediction_error": st.mean_prediction_error(),
        "mean_batch_ms": st.mean_batch_ns() / 1e6,
        "last_decision": {"images": d.images, "engine_batch": d.engine_batch, "predicted_ms": ms(d.predicted_ns), "measured_ms": ms(d.measured_ns), "slack_ms": d.slack_ns as f64 / 1e6},
        "instances": f.instances, "queued": f.queued,
        "shares": f.shares.as_ref().map(shares_json),
    })
}

/// One live statistics line: rates over the interval between `prev` and `cur`.
pub fn live_line(
    elapsed_s: f64,
    prev: &Snapshot,
    cur: &Snapshot,
    port_prev: &PortStats,
    port_cur: &PortStats,
    mempool_in_use: u32,
) -> String {
    let dt = cur.at.duration_since(prev.at).as_secs_f64().max(1e-9);
    let rate = |a: u64, b: u64| (b.saturating_sub(a)) as f64 / dt;
    let (p, c) = (prev.total(), cur.total());
    let queues: Vec<String> = port_cur
        .q_ipackets
        .iter()
        .enumerate()
        .map(|(i, &q)| {
            let before = port_prev.q_ipackets.get(i).copied().unwrap_or(0);
            format!("q{i} {:.2}", rate(before, q) / 1e6)
        })
        .collect();
    // Some PMDs (net_ring, net_null) count packets but not bytes.
    let gbits = match port_cur.ibytes {
        0 => "n/a".to_string(),
        b => format!("{:.2}", rate(port_prev.ibytes, b) * 8.0 / 1e9),
    };
    format!(
        "[{elapsed_s:7.1}s] rx {:.2} Mpps {gbits} Gbit/s missed {} ({}) Mpps | frags {} dup {} late {} invalid {} | images {:.0}/s total {} in-flight {} evicted {} backpressure {} | results {:.0}/s | mbufs in use {}",
        rate(port_prev.ipackets, port_cur.ipackets) / 1e6,
        port_cur.imissed,
        queues.join(" "),
        c.verifier.accepted,
        c.verifier.duplicate,
        c.verifier.late,
        c.rx.invalid(),
        rate(p.verifier.images_completed, c.verifier.images_completed),
        c.verifier.images_completed,
        c.in_flight,
        c.verifier.evicted_pressure + c.verifier.evicted_timeout,
        c.backpressure_images,
        rate(prev.sink.results_sent, cur.sink.results_sent),
        mempool_in_use,
    ) + &live_functions(dt, prev, cur)
}

/// Per function: answered/s, mean batch over the interval, queue, attainment so far.
fn live_functions(dt: f64, prev: &Snapshot, cur: &Snapshot) -> String {
    let mut s = String::new();
    for f in &cur.functions {
        let before = prev
            .functions
            .iter()
            .find(|p| p.model == f.model)
            .map(|p| &p.stats);
        let (answered, batches, images) =
            before.map_or((0, 0, 0), |b| (b.answered, b.batches, b.batched_images));
        let st = &f.stats;
        let batch = (st.batched_images - images) as f64 / (st.batches - batches).max(1) as f64;
        let _ = write!(
            s,
            " | {} {:.0}/s batch {batch:.1} queue {} shed {} slo {:.1}%",
            f.name,
            (st.answered - answered) as f64 / dt,
            f.queued,
            st.shed(),
            st.attainment() * 100.0
        );
    }
    s
}
