//! What `netml simulate` prints and writes: the header lines, one row per load x policy x
//! function (the same [`columns`](super::columns) in the table, the CSV and the JSON), and
//! the [`summary`](super::summary) per load level.

use super::columns::{cells, Cell, COLUMNS};
use super::summary::{by_level, goodput, p99, summary, verdict};
use super::{Context, Run};
use netml_bench::output::{append_csv, csv_field};
use serde_json::{json, Value};
use std::fmt::Write as _;
use std::path::Path;

/// The header lines, the table and the summary.
pub(super) fn text(ctx: &Context, runs: &[Run]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "profile: {}; trace: {}; jitter {}; seed {}",
        ctx.profile, ctx.trace, ctx.jitter, ctx.seed
    );
    if let Some(sharing) = &ctx.sharing {
        let _ = writeln!(s, "{sharing}");
    }
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
    summary(&mut s, runs, ctx.trace == "poisson");
    s
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
            let v = verdict(g, ctx.trace == "poisson")?;
            Some(json!({
                "level": g[0].level.label(), "slab_over_best_other": v.ratio,
                "best_other": v.best_other, "slab_target_met": v.target.map(|t| t.1),
            }))
        })
        .collect();
    json!({
        "profile": ctx.profile, "sharing": ctx.sharing, "trace": ctx.trace, "seed": ctx.seed, "jitter": ctx.jitter,
        "duration_s": runs.first().map(|r| r.duration_s), "functions": functions,
        "runs": runs_json, "summary": summary,
    })
}
