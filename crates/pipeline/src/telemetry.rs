//! netml's own commands on DPDK's telemetry socket (`dpdk-telemetry.py -f <file-prefix>`):
//!
//! - `/netml/stats`: the pipeline's totals: rx port, frame classification, verifier, chain
//!   action and backpressure, gather and results, mempool;
//! - `/netml/verifier`: the verifier's counters per rx queue and in total;
//! - `/netml/functions`: per inference function: offered, admitted, answered, within SLO,
//!   shed, latency.
//!
//! ```text
//! run loop --publish (each live-statistics tick, and the final report)--> latest report
//!                                    DPDK's telemetry thread --read (Arc clone)--^
//! ```
//! The handlers run on DPDK's telemetry thread and read only the latest published
//! [`Report`]; the data-plane threads never see this module. The lock around the latest
//! report is held for an `Arc` clone or swap, by the run loop and the telemetry thread only.
//! Every answer carries `finished` (1 once the final report is published) and `age_ms` (how
//! old the report is).

use crate::report::Report;
use crate::Pipeline;
use netml_dpdk::telemetry::{self, Dict, Reply};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// The commands, with their help texts.
pub const COMMANDS: [(&str, &str); 3] = [
    (
        "/netml/stats",
        "netml pipeline totals: port, rx, verifier, chain, sink (results), mempool",
    ),
    (
        "/netml/verifier",
        "netml verifier counters per rx queue (q0, q1, ...) and in total",
    ),
    (
        "/netml/functions",
        "netml inference functions: offered, admitted, answered, within_slo, shed, latency",
    ),
];

/// A published report.
struct Published {
    report: Report,
    finished: bool,
    at: Instant,
}

type Latest = Arc<Mutex<Option<Arc<Published>>>>;

/// The publisher of what the telemetry commands answer.
pub struct Telemetry {
    latest: Latest,
    interval: Duration,
    last: Option<Instant>,
}

impl Telemetry {
    /// Registers the commands; until the first [`Telemetry::tick`] they answer with an
    /// error. `interval` is the most time between two publications (the live-statistics
    /// interval).
    pub fn register(interval: Duration) -> Result<Telemetry, String> {
        let latest: Latest = Arc::default();
        let fills: [fn(&Report, &mut Dict<'_>) -> netml_dpdk::Result<()>; 3] =
            [fill_stats, fill_verifier, fill_functions];
        for ((command, help), fill) in COMMANDS.into_iter().zip(fills) {
            let latest = latest.clone();
            telemetry::register_command(command, help, move |_params, reply: Reply<'_>| {
                let published = latest
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .clone();
                let Some(p) = published else {
                    return reply.string("netml: the pipeline has not started yet");
                };
                let mut d = reply.dict()?;
                d.u64("finished", p.finished.into())?;
                d.u64("age_ms", p.at.elapsed().as_millis() as u64)?;
                fill(&p.report, &mut d)
            })
            .map_err(|e| format!("telemetry command {command}: {e}"))?;
        }
        Ok(Telemetry {
            latest,
            interval,
            last: None,
        })
    }

    /// Publishes the pipeline's counters when `interval` has passed since the last time
    /// (call it from the run loop's every turn).
    pub fn tick(&mut self, pipeline: &Pipeline) {
        if self.last.is_some_and(|t| t.elapsed() < self.interval) {
            return;
        }
        self.last = Some(Instant::now());
        self.publish(Report::collect(pipeline), false);
    }

    /// Publishes the final report; the commands answer with it until the process exits.
    pub fn finish(&mut self, report: &Report) {
        self.publish(report.clone(), true);
    }

    fn publish(&self, report: Report, finished: bool) {
        let p = Arc::new(Published {
            report,
            finished,
            at: Instant::now(),
        });
        // The old report is dropped after the lock is released.
        let _old = self
            .latest
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .replace(p);
    }
}

fn fill_stats(r: &Report, d: &mut Dict<'_>) -> netml_dpdk::Result<()> {
    d.u64("elapsed_ms", (r.elapsed_s * 1e3) as u64)?;
    d.string("ingest_target", &r.ingest_target)?;
    if let Some(p) = r.ports.first() {
        let s = &p.stats;
        d.dict("port", |d| {
            d.string("name", &p.name)?;
            d.u64s(&[
                ("ipackets", s.ipackets),
                ("ibytes", s.ibytes),
                ("imissed", s.imissed),
                ("ierrors", s.ierrors),
                ("rx_nombuf", s.rx_nombuf),
                ("opackets", s.opackets),
                ("obytes", s.obytes),
                ("oerrors", s.oerrors),
            ])
        })?;
    }
    let t = &r.total;
    d.dict("rx", |d| d.u64s(&t.rx.fields()))?;
    d.dict("verifier", |d| d.u64s(&t.verifier.fields()))?;
    d.dict("chain", |d| {
        d.u64s(&[
            ("chain_forwarded", t.chain_forwarded),
            ("chain_dropped", t.chain_dropped),
            ("chain_tx_full", t.chain_tx_full),
            ("backpressure_images", t.backpressure_images),
            ("backpressure_fragments", t.backpressure_fragments),
            ("backpressure_unanswered", t.backpressure_unanswered),
        ])
    })?;
    d.dict("sink", |d| d.u64s(&r.sink.fields()))?;
    d.dict("mempool", |d| {
        d.u64s(&[
            ("capacity", r.mempool_capacity.into()),
            ("in_use_at_start", r.mempool_in_use_at_start.into()),
            ("in_use", r.mempool_in_use_at_end.into()),
        ])
    })
}

fn fill_verifier(r: &Report, d: &mut Dict<'_>) -> netml_dpdk::Result<()> {
    let queues = r
        .workers
        .iter()
        .enumerate()
        .map(|(i, w)| (format!("q{i}"), w));
    for (name, w) in std::iter::once(("total".to_string(), &r.total)).chain(queues) {
        d.dict(&name, |d| {
            d.u64s(&w.verifier.fields())?;
            d.u64s(&[
                ("in_flight", w.in_flight),
                ("held_fragments", w.held_fragments),
            ])
        })?;
    }
    Ok(())
}

fn fill_functions(r: &Report, d: &mut Dict<'_>) -> netml_dpdk::Result<()> {
    for f in &r.functions {
        let st = &f.stats;
        let us = |ns: Option<u64>| ns.map_or(0, |v| v / 1_000);
        d.dict(&telemetry_name(&f.name), |d| {
            d.string("name", &f.name)?;
            d.string("policy", &f.policy)?;
            d.string("attainment", &format!("{:.4}", st.attainment()))?;
            d.u64s(&[
                ("model", f.model.into()),
                ("slo_us", f.slo_ns / 1_000),
                ("offered", st.offered),
                ("admitted", st.admitted),
                ("answered", st.answered),
                ("within_slo", st.within_slo),
                ("shed", st.shed()),
                ("shed_admission", st.shed_admission),
                ("shed_queue_full", st.shed_queue_full),
                ("shed_expired", st.shed_expired),
                ("failed", st.failed),
                ("batches", st.batches),
                ("batched_images", st.batched_images),
                ("latency_p50_us", us(st.latency.quantile(0.5))),
                ("latency_p99_us", us(st.latency.quantile(0.99))),
                ("latency_max_us", st.latency.max() / 1_000),
                ("instances", f.instances as u64),
                ("queued", f.queued as u64),
            ])
        })?;
    }
    Ok(())
}

/// A function's name as a telemetry key: DPDK allows letters, digits, `_` and `/` only.
fn telemetry_name(name: &str) -> String {
    name.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::telemetry_name;

    #[test]
    fn function_names_become_valid_keys() {
        assert_eq!(telemetry_name("resnet50-small.v2"), "resnet50_small_v2");
        assert_eq!(telemetry_name("mobilenet_v2"), "mobilenet_v2");
    }
}
