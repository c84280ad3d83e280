//! The text tables and the summary of `netml bench serve` (CSV and plot: [`super::files`]).

use super::super::output::{loadavg, Files};
use super::case::Figures;
use super::{Args, Function};
use std::fmt::Write as _;

/// The serving stage's target: CPU per batch it adds (routing, admission, batching,
/// starting engines, collecting results, answers), in us.
pub(super) const SERVE_LIMIT_US: f64 = 20.0;

const CSV_HEADER: &str = "policy,function,model,load,offered_per_s,sent_per_s,ok_per_s,\
     goodput_per_s,shed_per_s,failed_per_s,attainment,mean_batch,latency_p50_ms,\
     latency_p99_ms,slo_ms,engine_batch_ms,engine_batch,engine_alone_ms,capacity_per_s,\
     serve_us_per_batch,serve_limit_us,crc_us_per_batch,sink_cpu_share,rx_cpu_share,\
     engine_cpu_share,sender_cpu_share,sink_wait_share,sent,ok,overloaded,failed,other,unanswered,\
     results_dropped,leaked_mbufs,seconds";

/// One function as the report names it.
pub(super) struct Named {
    pub(super) name: String,
    pub(super) model: u8,
    pub(super) capacity: f64,
    pub(super) per_batch: Vec<(usize, f64)>,
    pub(super) best_batch: usize,
}

/// Everything measured in one run.
pub(super) struct Report {
    pub(super) what: String,
    pub(super) functions: Vec<Named>,
    /// The offered load per step (fraction of capacity, or images/s per function).
    pub(super) steps: Vec<f64>,
    pub(super) by_load: bool,
    /// Offered images/s per step and function.
    pub(super) rates: Vec<Vec<f64>>,
    pub(super) slo_ms: f64,
    /// "on the CPU" or "on the GPU" (`--target`).
    pub(super) place: &'static str,
    pub(super) files: Files,
    pub(super) rows: Vec<Figures>,
    /// Cases that could not run.
    pub(super) failed: usize,
    pub(super) load_start: String,
}

/// Where the functions run, as the report says it.
fn place(a: &Args) -> &'static str {
    if a.target == "gpu" {
        "on the GPU"
    } else {
        "on the CPU"
    }
}

impl Report {
    pub(super) fn new(
        a: &Args,
        functions: &[Function],
        steps: &[f64],
        by_load: bool,
        rates: &[Vec<f64>],
    ) -> Report {
        let place = place(a);
        Report {
            what: format!(
                "{} function(s) {}, {} f32 images, SLO {} ms, batches of <= {}, {} instance(s) each, {} s per case after {} s warm-up",
                functions.len(), place, a.shape, a.slo_ms, a.max_batch, a.instances, a.seconds, a.warmup
            ),
            functions: functions
                .iter()
                .map(|f| Named {
                    name: f.name.clone(),
                    model: f.model,
                    capacity: f.capacity.best_per_s,
                    per_batch: f.capacity.per_batch.clone(),
                    best_batch: f.capacity.best_batch,
                })
                .collect(),
            steps: steps.to_vec(),
            by_load,
            rates: rates.to_vec(),
            slo_ms: a.slo_ms,
            place,
            files: Files {
                csv: a.csv.clone(),
                plot: a.plot.clone(),
            },
            rows: Vec::new(),
            failed: 0,
            load_start: loadavg(),
        }
    }

    pub(super) fn add(&mut self, f: Figures) {
        self.rows.push(f);
    }

    /// How a step is offered: `load 0.50` or `100/s`.
    fn step(&self, i: usize) -> String {
        if self.by_load {
            format!("load {:.2}", self.steps[i])
        } else {
            format!("{:.0}/s", self.steps[i])
        }
    }

    /// What runs, the capacity measured, and the limits.
    pub(super) fn header(&self) -> String {
        let mut s = format!(
            "netml bench serve: {}; {} CPU(s) online, load average {}\n",
            self.what,
            std::thread::available_parallelism().map_or(0, |n| n.get()),
            self.load_start
        );
        for f in &self.functions {
            let sizes: Vec<String> = f
                .per_batch
                .iter()
                .map(|(b, ms)| format!("b{b} {ms:.2} ms"))
                .collect();
            let _ = writeln!(
                s,
                "capacity of {} (model {}), engine alone on one thread: {:.0} images/s at batch {} ({})",
                f.name, f.model, f.capacity, f.best_batch, sizes.join(", ")
            );
        }
        for (i, r) in self.rates.iter().enumerate() {
            let each: Vec<String> = r.iter().map(|x| format!("{x:.0}")).collect();
            let _ = writeln!(s, "{}: offered {} images/s", self.step(i), each.join(" + "));
        }
        let _ = write!(
            s,
            "limits: serving path adds <= {SERVE_LIMIT_US} us CPU per batch (serve_ns / batches); no function answers more than its capacity; the functions share the CPUs with the rx worker, the sink and the sender"
        );
        s
    }

    /// One line per case as it finishes.
    pub(super) fn case_line(&self, c: &Figures) -> String {
        let mut s = format!("{} {}:", c.policy, self.step(c.step));
        for (f, n) in c.functions.iter().zip(&self.functions) {
            let _ = write!(
                s,
                " {} goodput {:.0}/s of {:.0} offered (ok {:.0}, shed {:.0}, batch {:.1}, p99 {:.1} ms);",
                n.name, f.goodput, f.offered, f.ok, f.shed, f.mean_batch, f.p99_ms
            );
        }
        let _ = write!(
            s,
            " serve {:.1} us/batch (limit {SERVE_LIMIT_US}); leaked {}",
            c.serve_us, c.leaked
        );
        s
    }

    /// One table per offered step, then goodput per policy and SLAB over the best other.
    pub(super) fn text(&self) -> String {
        let mut s = String::new();
        for step in 0..self.steps.len() {
            let rows: Vec<&Figures> = self.rows.iter().filter(|r| r.step == step).collect();
            if rows.is_empty() {
                continue;
            }
            let _ = writeln!(s, "\n{}:", self.step(step));
            let _ = writeln!(
                s,
                "  {:<17} {:<20} {:>7} {:>7} {:>7} {:>7} {:>6} {:>6} {:>5} {:>7} {:>7} | {:>13} | {:>9} {:>5} {:>5} {:>5} {:>5} | {:>10}",
                "policy", "function", "offered", "ok/s", "good/s", "shed/s", "slo%", "good%", "batch",
                "p50 ms", "p99 ms", "engine ms", "serve us", "sink", "wait", "rx", "eng", "answered"
            );
            for r in rows {
                for (f, n) in r.functions.iter().zip(&self.functions) {
                    let answered = f.total_ok + f.total_overloaded + f.total_failed + f.total_other;
                    let _ = writeln!(
                        s,
                        "  {:<17} {:<20} {:>7.0} {:>7.0} {:>7.0} {:>7.0} {:>5.1}% {:>5.1}% {:>5.1} {:>7.1} {:>7.1} | {:>5.2} ({:>5.2}) | {:>9.1} {:>4.0}% {:>4.0}% {:>4.0}% {:>4.0}% | {:>10}",
                        r.policy,
                        n.name,
                        f.offered,
                        f.ok,
                        f.goodput,
                        f.shed,
                        f.attainment * 100.0,
                        if f.sent > 0.0 { f.goodput / f.sent * 100.0 } else { 0.0 },
                        f.mean_batch,
                        f.p50_ms,
                        f.p99_ms,
                        f.engine_ms,
                        f.alone_ms,
                        r.serve_us,
                        r.sink_share * 100.0,
                        r.sink_wait_share * 100.0,
                        r.rx_share * 100.0,
                        r.engine_share * 100.0,
                        format!("{answered}/{}", f.total_sent),
                    );
                }
            }
        }
        let _ = writeln!(
            s,
            "\nok/s: answered after inference; good/s: of those, inside the SLO ({} ms, the pipeline's within_slo: image complete -> answer); shed/s: answered overloaded; slo%: good / ok; good%: good / sent; p50/p99: sender timestamp -> result read, ok answers; engine ms: batch time live (the last batch's measured time, or while it runs the scheduler's latency-model prediction, sampled every 100 ms) and (in brackets) the engine alone at that batch; serve us: the serving stage's time per batch (serve_ns / batches: CPU time of its working turns), limit {SERVE_LIMIT_US} us; sink, rx, eng: % of one CPU (eng: every engine thread); wait: % of the time the sink thread was ready to run but off a CPU (preempted, or after its own yields while batches run); answered: results of any status / images sent, whole case",
            self.slo_ms
        );
        s += &self.summary();
        let leaked: i64 = self.rows.iter().map(|r| r.leaked).sum();
        let unanswered: u64 = self.rows.iter().map(unanswered).sum();
        let dropped: u64 = self.rows.iter().map(|r| r.results_dropped).sum();
        let lost: u64 = self.rows.iter().map(lost).sum();
        let _ = writeln!(
            s,
            "images sent without a result read: {unanswered}, of which result messages the pipeline counted as dropped (tx ring full: the reader had no CPU): {dropped}; images lost without a trace: {lost}; mbufs leaked: {leaked}; cases that failed to run: {}; load average at the end: {}",
            self.failed,
            loadavg()
        );
        s
    }

    /// Goodput summed over the functions, per step and policy, and SLAB / best other.
    fn summary(&self) -> String {
        let mut s = String::from("\ngoodput (images/s answered inside the SLO, all functions):\n");
        let mut policies: Vec<&str> = self.rows.iter().map(|r| r.policy.as_str()).collect();
        policies.dedup();
        policies.sort_unstable();
        policies.dedup();
        for step in 0..self.steps.len() {
            let good = |p: &str| {
                self.rows
                    .iter()
                    .find(|r| r.step == step && r.policy == p)
                    .map(total_goodput)
            };
            let cells: Vec<String> = policies
                .iter()
                .map(|p| good(p).map_or(format!("{p} -"), |g| format!("{p} {g:.0}")))
                .collect();
            let best_other = policies
                .iter()
                .filter(|p| **p != "slab")
                .filter_map(|p| good(p))
                .fold(None, |m: Option<f64>, g| Some(m.map_or(g, |m| m.max(g))));
            let ratio = match (good("slab"), best_other) {
                (Some(a), Some(b)) if b > 0.0 => format!("{:.2}", a / b),
                (Some(a), Some(_)) if a > 0.0 => "inf (the others 0)".into(),
                _ => "-".into(),
            };
            let offered: f64 = self.rates[step].iter().sum();
            let _ = writeln!(
                s,
                "  {:<10} offered {:>6.0}/s: {}; SLAB / best other {ratio}",
                self.step(step),
                offered,
                cells.join(", ")
            );
        }
        s
    }

    /// Every case ran, every image sent was answered (its result read, or counted by the
    /// pipeline as a result message it could not send), no frame was unreadable and no mbuf
    /// leaked.
    pub(super) fn clean(&self) -> bool {
        self.failed == 0
            && !self.rows.is_empty()
            && self
                .rows
                .iter()
                .all(|r| r.leaked == 0 && r.unparsed == 0 && lost(r) == 0)
    }

    pub(super) fn write_files(&self) -> Result<(), String> {
        self.files
            .write(CSV_HEADER, || self.csv_rows(), || self.svg())
    }
}

pub(super) fn total_goodput(r: &Figures) -> f64 {
    r.functions.iter().map(|f| f.goodput).sum()
}

/// Images sent in a case that got no result.
fn unanswered(r: &Figures) -> u64 {
    r.functions
        .iter()
        .map(|f| {
            f.total_sent
                .saturating_sub(f.total_ok + f.total_overloaded + f.total_failed + f.total_other)
        })
        .sum()
}

/// Images sent in a case that got no result and that the pipeline did not count as a result
/// message dropped (its count is per case, not per function).
fn lost(r: &Figures) -> u64 {
    unanswered(r).saturating_sub(r.results_dropped)
}
