//! The two plots of `netml simulate`: goodput against load per policy (with the offered
//! rate for reference), and p99 latency against load per policy (with the SLO when every
//! function has the same one).

use super::summary::{by_level, goodput, p99, total};
use super::trace::Level;
use super::{Context, Run};
use netml_bench::output::{beside, write_file};
use netml_bench::plot::line_chart;
use std::path::Path;

/// Writes the goodput plot to `path` and the p99 plot to `<name>-p99.svg` beside it.
pub(super) fn write(path: &Path, ctx: &Context, runs: &[Run]) -> Result<(), String> {
    let (good, tail) = charts(ctx, runs);
    write_file(path, &good)?;
    write_file(&beside(path, "p99", "simulate"), &tail)
}

/// The two SVG documents.
fn charts(ctx: &Context, runs: &[Run]) -> (String, String) {
    let levels = by_level(runs);
    let x_label = match levels.first().map(|g| g[0].level) {
        Some(Level::Rate(_)) => "offered images/s per function",
        Some(Level::Capture) => "the capture",
        _ if ctx.sharing.is_some() => "load (fraction of the GPU's capacity for the mix)",
        _ => "load (fraction of each function's capacity)",
    };
    let mut policies: Vec<&str> = Vec::new();
    for r in runs {
        if !policies.contains(&r.policy.as_str()) {
            policies.push(&r.policy);
        }
    }
    // SLAB last: drawn on top where the lines meet (under capacity they all do).
    policies.sort_by_key(|p| *p == "slab");
    let series = |y: &dyn Fn(&Run) -> Option<f64>| -> Vec<(String, Vec<(f64, f64)>)> {
        policies
            .iter()
            .map(|p| {
                let pts = runs
                    .iter()
                    .filter(|r| r.policy == *p)
                    .filter_map(|r| Some((r.level.x(), y(r)?)))
                    .collect();
                (p.to_string(), pts)
            })
            .collect()
    };
    // The reference line comes first in both plots: drawn under the policies' lines, and
    // each policy keeps its colour from one plot to the other.
    let offered: Vec<(f64, f64)> = levels
        .iter()
        .map(|g| (g[0].level.x(), total(g[0]).offered as f64 / g[0].duration_s))
        .collect();
    let mut good = vec![("offered".to_string(), offered)];
    good.extend(series(&|r| Some(goodput(r))));
    let slo = ctx.setups.first().map(|s| s.arg.slo_ms);
    let mut tail = match slo.filter(|&v| ctx.setups.iter().all(|s| s.arg.slo_ms == v)) {
        Some(slo) => {
            let xs = levels.iter().map(|g| g[0].level.x());
            let (lo, hi) = xs.fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), x| {
                (l.min(x), h.max(x))
            });
            vec![(format!("SLO {slo} ms"), vec![(lo, slo), (hi, slo)])]
        }
        None => vec![("(SLOs differ)".to_string(), Vec::new())],
    };
    tail.extend(series(&p99));
    let names: Vec<&str> = ctx.setups.iter().map(|s| s.arg.name.as_str()).collect();
    let what = format!("{} ({})", names.join(", "), ctx.trace);
    (
        line_chart(
            &format!("netml simulate: goodput, {what}"),
            x_label,
            "answers inside the SLO per second",
            false,
            &good,
        ),
        line_chart(
            &format!("netml simulate: p99 latency, {what}"),
            x_label,
            "p99 latency, ms (all functions)",
            true,
            &tail,
        ),
    )
}
