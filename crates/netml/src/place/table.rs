//! What `netml place` prints and writes: a header, one table per placement (its GPUs and
//! their instances), a summary of GPUs needed (and, evaluated, attainment and goodput) per
//! rate and strategy, and the CSV.

use super::{Context, Level};
use netml_bench::output::{append_csv, csv_field};
use netml_serve::place::{self, Placement, Strategy};
use std::fmt::Write as _;
use std::path::Path;

/// `shares modelled` or `shares measured`, for every table's title.
fn shares_label(ctx: &Context) -> &'static str {
    if ctx.modelled.is_some() {
        "shares modelled"
    } else {
        "shares measured"
    }
}

/// Whether `pl` needs more GPUs than were given.
fn over(ctx: &Context, pl: &Placement) -> bool {
    ctx.gpus.is_some_and(|n| pl.gpus.len() > n)
}

/// The header, every placement, and the summary.
pub(super) fn text(ctx: &Context, levels: &[Level]) -> String {
    let mut s = String::new();
    let p = &ctx.params;
    let _ = writeln!(
        s,
        "profile: {}; GPU: {}; co-location margin {:.0}%; planning load {:.0}%; SLO rule: 2 x batch latency <= SLO",
        ctx.profile,
        p.device,
        p.margin * 100.0,
        p.max_load * 100.0
    );
    if let Some(models) = &ctx.modelled {
        let _ = writeln!(
            s,
            "shares modelled (the profile has no share rows for {}: latency at a share from the demand-knee model fitted to the spin-kernel share measurements, not measured)",
            models.join(", ")
        );
    }
    for f in &ctx.functions {
        let rate = f
            .rate
            .map_or("the level's rate".into(), |r| format!("{r}/s"));
        let _ = writeln!(
            s,
            "function {} (model {}): SLO {} ms, {}, {rate}",
            f.name, f.model, f.slo_ms, f.precision
        );
    }
    for level in levels {
        for (pl, _) in &level.placements {
            placement(&mut s, ctx, level, pl);
        }
    }
    summary(&mut s, ctx, levels);
    s
}

/// One placement's table.
fn placement(s: &mut String, ctx: &Context, level: &Level, pl: &Placement) {
    let d = &ctx.params.device;
    let _ = writeln!(
        s,
        "\n{} at {}/s: {} GPU(s), {:.0}% of their units given{}; {}",
        pl.strategy,
        level.rate,
        pl.gpus.len(),
        pl.utilisation(d) * 100.0,
        if over(ctx, pl) {
            format!(", more than the {} given", ctx.gpus.unwrap_or(0))
        } else {
            String::new()
        },
        shares_label(ctx)
    );
    let _ = writeln!(
        s,
        "{:<4} {:<14} {:>14} {:>5} {:>10} {:>11} {:>10} {:>7}",
        "gpu", "function", "share", "batch", "rate/s", "capacity/s", "latency ms", "SLO ms"
    );
    for (g, gpu) in pl.gpus.iter().enumerate() {
        for i in &gpu.instances {
            let f = &level.demands[i.function];
            let share = format!(
                "{} {} ({:.0}%)",
                i.share,
                d.unit.label(),
                d.fraction(i.share) * 100.0
            );
            let _ = writeln!(
                s,
                "{:<4} {:<14} {:>14} {:>5} {:>10.1} {:>11.1} {:>10.2} {:>7}",
                g,
                f.name,
                share,
                i.batch,
                i.rate,
                i.capacity,
                i.latency_ns / 1e6,
                f.slo_ns as f64 / 1e6
            );
        }
    }
}

/// GPUs needed per rate and strategy, with the evaluation when there is one.
fn summary(s: &mut String, ctx: &Context, levels: &[Level]) {
    let evaluated = levels
        .iter()
        .any(|l| l.placements.iter().any(|p| p.1.is_some()));
    let _ = writeln!(
        s,
        "\nGPUs needed ({}{})",
        shares_label(ctx),
        if evaluated {
            "; evaluated: partitioned device simulation"
        } else {
            ""
        }
    );
    let _ = write!(
        s,
        "{:>10} {:<12} {:>5} {:>9} {:>6}",
        "rate/s", "strategy", "GPUs", "instances", "units"
    );
    if evaluated {
        let _ = write!(
            s,
            " {:>10} {:>10} {:>10} {:>8} {:>16}",
            "offered/s", "goodput/s", "attainment", "p99 ms", "worst function"
        );
    }
    let _ = writeln!(s);
    for level in levels {
        for (pl, ev) in &level.placements {
            let n: usize = pl.gpus.iter().map(|g| g.instances.len()).sum();
            let _ = write!(
                s,
                "{:>10} {:<12} {:>5} {:>9} {:>5.0}%",
                level.rate,
                pl.strategy.to_string(),
                pl.gpus.len(),
                n,
                pl.utilisation(&ctx.params.device) * 100.0
            );
            if let Some(e) = ev {
                let (name, worst) = e.worst();
                let _ = write!(
                    s,
                    " {:>10.1} {:>10.1} {:>10.4} {:>8.2} {:>16}",
                    e.offered_per_s(),
                    e.goodput_per_s(),
                    e.attainment(),
                    e.p99_ms(),
                    format!("{name} {worst:.4}")
                );
            }
            let _ = writeln!(s);
        }
        ours_against_baselines(s, level);
        let _ = writeln!(
            s,
            "{:>10} work: {:.2} GPUs (each model's rate over its best whole-GPU capacity, summed)",
            "",
            work(ctx, level)
        );
    }
}

/// GPUs' worth of work at a level: each model's rate over its best capacity on a whole GPU
/// (at the planning load), summed; what a placement without fragmentation or co-location
/// margin would need.
fn work(ctx: &Context, level: &Level) -> f64 {
    let whole = [ctx.params.device.available()];
    level
        .demands
        .iter()
        .map(|d| {
            let best = place::options(d, &ctx.params, &whole)
                .iter()
                .map(|c| c.capacity)
                .fold(0.0, f64::max);
            d.rate / best.max(f64::MIN_POSITIVE)
        })
        .sum()
}

/// One line per level: our GPUs against each baseline's.
fn ours_against_baselines(s: &mut String, level: &Level) {
    let gpus = |st: Strategy| {
        level
            .placements
            .iter()
            .find(|p| p.0.strategy == st)
            .map(|p| p.0.gpus.len())
    };
    let Some(ours) = gpus(Strategy::Packed) else {
        return;
    };
    let others: Vec<String> = [Strategy::OnePerGpu, Strategy::GpuLets]
        .into_iter()
        .filter_map(|b| gpus(b).map(|n| format!("{n} ({b})")))
        .collect();
    if !others.is_empty() {
        let _ = writeln!(
            s,
            "{:>10} ours: {ours} GPU(s) against {}",
            "",
            others.join(", ")
        );
    }
}

/// The CSV columns.
const HEADER: &str = "rate_per_s,strategy,gpus_used,gpus_given,gpu,function,model,share_units,share_pct,batch,planned_per_s,capacity_per_s,latency_ms,slo_ms,shares,margin,max_load,offered_per_s,goodput_per_s,attainment,profile";

/// Appends one row per level x strategy x instance.
pub(super) fn write_csv(path: &Path, ctx: &Context, levels: &[Level]) -> Result<(), String> {
    let d = &ctx.params.device;
    let mut rows = String::new();
    for level in levels {
        for (pl, ev) in &level.placements {
            let evaluated = ev.as_ref().map_or(",,".to_string(), |e| {
                format!(
                    "{:.3},{:.3},{:.6}",
                    e.offered_per_s(),
                    e.goodput_per_s(),
                    e.attainment()
                )
            });
            for (g, gpu) in pl.gpus.iter().enumerate() {
                for i in &gpu.instances {
                    let f = &ctx.functions[i.function];
                    let _ = writeln!(
                        rows,
                        "{},{},{},{},{g},{},{},{},{:.2},{},{:.3},{:.3},{:.4},{},{},{},{},{evaluated},{}",
                        level.rate,
                        pl.strategy,
                        pl.gpus.len(),
                        ctx.gpus.map_or(String::new(), |n| n.to_string()),
                        csv_field(&f.name),
                        f.model,
                        i.share,
                        d.fraction(i.share) * 100.0,
                        i.batch,
                        i.rate,
                        i.capacity,
                        i.latency_ns / 1e6,
                        level.demands[i.function].slo_ns as f64 / 1e6,
                        shares_label(ctx).trim_start_matches("shares "),
                        ctx.params.margin,
                        ctx.params.max_load,
                        csv_field(&ctx.profile)
                    );
                }
            }
        }
    }
    append_csv(path, HEADER, &rows)
}
