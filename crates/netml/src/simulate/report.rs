//! What `netml simulate` prints and writes: one row per load x policy x function (the same
//! columns in the table, the CSV and the JSON), and a summary per load level: goodput and
//! p99 of each policy, SLAB / the best other, and SLAB against its targets.

use super::trace::Level;
use super::{Context, FnResult, Run};
use crate::bench::output::{append_csv, csv_field};
use netml_serve::FunctionStats;
use serde_json::{json, Value};
use std::fmt::Write as _;
use std::path::Path;

/// One value of a row.
enum Cell {
    Text(String),
    Count(u64),
    /// A number and its decimals.
    Num(f64, usize),
    /// A share, 0..=1 (a percentage in the table).
    Share(f64),
    /// A latency in ms that an empty histogram lacks.
    Ms(Option<f64>),
}

impl Cell {
    fn table(&self, width: usize) -> String {
        match self {
            Cell::Text(s) => format!("{s:<width$}"),
            Cell::Count(n) => format!("{n:>width$}"),
            Cell::Num(v, d) => format!("{v:>width$.d$}"),
            Cell::Share(v) => format!("{:>width$}", format!("{:.2}%", v * 100.0)),
            Cell::Ms(v) => match v {
                Some(v) => format!("{v:>width$.2}"),
                None => format!("{:>width$}", "-"),
            },
        }
    }

    fn csv(&self) -> String {
        match self {
            Cell::Text(s) => csv_field(s),
            Cell::Count(n) => n.to_string(),
            Cell::Num(v, d) => format!("{v:.d$}"),
            Cell::Share(v) => format!("{v:.6}"),
            Cell::Ms(v) => v.map_or(String::new(), |v| format!("{v:.4}")),
        }
    }

    fn json(&self) -> Value {
        match self {
            Cell::Text(s) => json!(s),
            Cell::Count(n) => json!(n),
            Cell::Num(v, _) | Cell::Share(v) => json!(v),
            Cell::Ms(v) => json!(v),
        }
    }
}

/// A column: its CSV and JSON name, its table header and width (0: not in the table).
type Column = (&'static str, &'static str, usize);

const COLUMNS: [Column; 23] = [
    ("load", "load", 5),
    ("policy", "policy", 17),
    ("function", "function", 13),
    ("offered_per_s", "offered/s", 10),
    ("admitted", "admitted", 9),
    ("answered", "answered", 9),
    ("shed", "shed", 8),
    ("throughput_per_s", "throughput/s", 12),
    ("goodput_per_s", "goodput/s", 10),
    ("p50_ms", "p50 ms", 8),
    ("p99_ms", "p99 ms", 9),
    ("attainment", "attainment", 10),
    ("violations", "violations", 10),
    ("model", "", 0),
    ("slo_ms", "", 0),
    ("rate_per_s", "", 0),
    ("capacity_per_s", "", 0),
    ("offered", "", 0),
    ("within_slo", "", 0),
    ("shed_admission", "", 0),
    ("shed_queue_full", "", 0),
    ("shed_expired", "", 0),
    ("mean_batch", "", 0),
];

/// Latency quantile `q` of `s` in ms.
fn ms(s: &FunctionStats, q: f64) -> Option<f64> {
    s.latency.quantile(q).map(|ns| ns as f64 / 1e6)
}

/// Answered images that missed their SLO: late answers among the admitted.
fn violations(s: &FunctionStats) -> u64 {
    s.answered - s.within_slo
}

/// The cells of one function's row, in [`COLUMNS`] order.
fn cells(run: &Run, f: &FnResult) -> [Cell; 23] {
    let s = &f.stats;
    let per_s = |n: u64, seconds: f64| Cell::Num(n as f64 / seconds, 1);
    [
        Cell::Num(f.rate / f.capacity, 3),
        Cell::Text(run.policy.clone()),
        Cell::Text(f.spec.name.clone()),
        per_s(s.offered, run.duration_s),
        Cell::Count(s.admitted),
        Cell::Count(s.answered),
        Cell::Count(s.shed()),
        per_s(s.answered, run.span_s),
        per_s(s.within_slo, run.duration_s),
        Cell::Ms(ms(s, 0.5)),
        Cell::Ms(ms(s, 0.99)),
        Cell::Share(s.attainment()),
        Cell::Count(violations(s)),
        Cell::Count(f.spec.model as u64),
        Cell::Num(f.spec.slo_ns as f64 / 1e6, 3),
        Cell::Num(f.rate, 1),
        Cell::Num(f.capacity, 1),
        Cell::Count(s.offered),
        Cell::Count(s.within_slo),
        Cell::Count(s.shed_admission),
        Cell::Count(s.shed_queue_full),
        Cell::Count(s.shed_expired),
        Cell::Num(s.mean_batch(), 2),
    ]
}

/// Every function of a run together.
pub(super) fn total(run: &Run) -> FunctionStats {
    let mut t = FunctionStats::default();
    for f in &run.functions {
        let s = &f.stats;
        t.offered += s.offered;
        t.admitted += s.admitted;
        t.answered += s.answered;
        t.within_slo += s.within_slo;
        t.shed_admission += s.shed_admission;
        t.shed_queue_full += s.shed_queue_full;
        t.shed_expired += s.shed_expired;
        t.latency.merge(&s.latency);
    }
    t
}

/// Goodput of every function together: answers inside the SLO per second of arrivals (the
/// offered rate times the share answered in time; dividing by the run's span instead would
/// count a policy's wait for the last images against it).
pub(super) fn goodput(run: &Run) -> f64 {
    total(run).within_slo as f64 / run.duration_s
}

/// p99 latency in ms over every function of a run.
pub(super) fn p99(run: &Run) -> Option<f64> {
    ms(&total(run), 0.99)
}

/// The progress line's figures for a finished run.
pub(super) fn brief(run: &Run) -> String {
    let t = total(run);
    format!(
        "goodput {:.0}/s, p99 {}, attainment {:.2}%, shed {}",
        t.within_slo as f64 / run.duration_s,
        ms(&t, 0.99).map_or("-".into(), |v| format!("{v:.2} ms")),
        t.attainment() * 100.0,
        t.shed()
    )
}

/// How SLAB did at one level: its goodput over the best other policy's, and its targets
/// (under capacity no admitted image late; at or over it, >= 99% of the answers in time).
pub(super) struct Verdict {
    pub ratio: f64,
    pub best_other: String,
    pub target: Option<(String, bool)>,
}

/// The verdict at one level, when SLAB and another policy ran.
pub(super) fn verdict(at_level: &[&Run]) -> Option<Verdict> {
    let slab = at_level.iter().find(|r| r.policy == "slab")?;
    let best = at_level
        .iter()
        .filter(|r| r.policy != "slab")
        .max_by(|a, b| goodput(a).total_cmp(&goodput(b)))?;
    let t = total(slab);
    let target = match slab.level {
        Level::Load(f) if f < 1.0 => {
            Some((format!("{} late", violations(&t)), violations(&t) == 0))
        }
        Level::Load(_) => Some((
            format!("{:.2}% in time", t.attainment() * 100.0),
            t.attainment() >= 0.99,
        )),
        _ => None,
    };
    Some(Verdict {
        ratio: goodput(slab) / goodput(best),
        best_other: best.policy.clone(),
        target,
    })
}

/// Runs grouped by level, in run order.
pub(super) fn by_level(runs: &[Run]) -> Vec<Vec<&Run>> {
    let mut groups: Vec<Vec<&Run>> = Vec::new();
    for r in runs {
        match groups.last_mut() {
            Some(g) if g[0].level == r.level => g.push(r),
            _ => groups.push(vec![r]),
        }
    }
    groups
}

/// The header lines, the table and the summary.
pub(super) fn text(ctx: &Context, runs: &[Run]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "profile: {}; trace: {}; jitter {}; seed {}",
        ctx.profile, ctx.trace, ctx.jitter, ctx.seed
    );
    for st in ctx.setups {
        let a = &st.arg;
        let _ = writeln!(
            s,
            "function {} (model {}): SLO {} ms, {}, {} instance(s), batches {:?}, capacity {:.0}/s",
            a.name, st.model, a.slo_ms, a.precision, a.instances, a.batch_sizes, st.capacity
        );
    }
    let shown = COLUMNS.iter().filter(|c| c.2 > 0);
    let head: Vec<String> = shown
        .clone()
        .enumerate()
        .map(|(i, c)| {
            if i < 3 {
                format!("{:<w$}", c.1, w = c.2)
            } else {
                format!("{:>w$}", c.1, w = c.2)
            }
        })
        .collect();
    let _ = writeln!(s, "\n{}", head.join(" "));
    for run in runs {
        for f in &run.functions {
            let row: Vec<String> = cells(run, f)
                .iter()
                .zip(COLUMNS)
                .filter(|(_, c)| c.2 > 0)
                .map(|(v, c)| v.table(c.2))
                .collect();
            let _ = writeln!(s, "{}", row.join(" "));
        }
        if run.unknown_model > 0 {
            let _ = writeln!(
                s,
                "  ({} arrivals for no function's model)",
                run.unknown_model
            );
        }
    }
    summary(&mut s, runs);
    s
}

/// The summary table: per level, each policy's goodput/s and p99 ms (all functions).
fn summary(s: &mut String, runs: &[Run]) {
    let groups = by_level(runs);
    let Some(first) = groups.first() else { return };
    let _ = writeln!(
        s,
        "\nsummary: goodput/s (answers inside the SLO per second) | p99 ms, all functions together"
    );
    let mut head = format!("{:<14}", "level");
    for r in first {
        let _ = write!(head, " {:<20}", r.policy);
    }
    let _ = writeln!(s, "{head} slab/best other");
    for g in &groups {
        let _ = write!(s, "{:<14}", g[0].level.label());
        for r in g {
            let p = p99(r).map_or("-".into(), |v| format!("{v:.2}"));
            let _ = write!(s, " {:<20}", format!("{:>9.0} | {p}", goodput(r)));
        }
        if let Some(v) = verdict(g) {
            let _ = write!(
                s,
                " {:.3} ({}): {}",
                v.ratio,
                v.best_other,
                if v.ratio >= 1.0 { "ok" } else { "BELOW" }
            );
            if let Some((what, ok)) = v.target {
                let _ = write!(s, "; slab {what}: {}", if ok { "ok" } else { "MISSED" });
            }
        }
        let _ = writeln!(s);
    }
}

/// Appends one CSV row per load x policy x function to `path`.
pub(super) fn write_csv(path: &Path, ctx: &Context, runs: &[Run]) -> Result<(), String> {
    let mut header: Vec<&str> = COLUMNS.iter().map(|c| c.0).collect();
    header.extend(["duration_s", "span_s", "trace", "seed"]);
    let mut rows = String::new();
    for run in runs {
        for f in &run.functions {
            let mut v: Vec<String> = cells(run, f).iter().map(Cell::csv).collect();
            v.extend([
                run.duration_s.to_string(),
                format!("{:.6}", run.span_s),
                csv_field(&ctx.trace),
                ctx.seed.to_string(),
            ]);
            let _ = writeln!(rows, "{}", v.join(","));
        }
    }
    append_csv(path, &header.join(","), &rows)
}

/// The whole simulation as one JSON document.
pub(super) fn json(ctx: &Context, runs: &[Run]) -> Value {
    let functions: Vec<Value> = ctx
        .setups
        .iter()
        .map(|s| {
            let a = &s.arg;
            json!({
                "name": a.name, "model": s.model, "slo_ms": a.slo_ms, "precision": a.precision,
                "instances": a.instances, "batch_sizes": a.batch_sizes,
                "capacity_per_s": s.capacity,
            })
        })
        .collect();
    let runs_json: Vec<Value> = runs
        .iter()
        .map(|run| {
            let rows: Vec<Value> = run
                .functions
                .iter()
                .map(|f| {
                    let c = cells(run, f);
                    Value::Object(
                        COLUMNS
                            .iter()
                            .zip(&c)
                            .map(|(k, v)| (k.0.to_string(), v.json()))
                            .collect(),
                    )
                })
                .collect();
            json!({
                "level": run.level.label(), "policy": run.policy, "goodput_per_s": goodput(run),
                "p99_ms": p99(run), "unknown_model": run.unknown_model, "functions": rows,
            })
        })
        .collect();
    let summary: Vec<Value> = by_level(runs)
        .iter()
        .filter_map(|g| {
            let v = verdict(g)?;
            Some(json!({
                "level": g[0].level.label(), "slab_over_best_other": v.ratio,
                "best_other": v.best_other, "slab_target_met": v.target.map(|t| t.1),
            }))
        })
        .collect();
    json!({
        "profile": ctx.profile, "trace": ctx.trace, "seed": ctx.seed, "jitter": ctx.jitter,
        "duration_s": runs.first().map(|r| r.duration_s), "functions": functions,
        "runs": runs_json, "summary": summary,
    })
}
