//! Every function of a run together, and the summary per load level: each policy's goodput
//! and p99, SLAB over the best other policy, and SLAB against its targets.

use super::columns::{ms, violations};
use super::trace::Level;
use super::Run;
use netml_serve::FunctionStats;
use std::fmt::Write as _;

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

/// Prints the progress line of run `n` of `total` (`label`: its policy or sharing mode).
pub(super) fn progress(
    n: usize,
    total: usize,
    label: &str,
    run: &Run,
    started: std::time::Instant,
) {
    eprintln!(
        "run {n}/{total}: {label} at {}: {} ({:.1} s)",
        run.level.label(),
        brief(run),
        started.elapsed().as_secs_f64()
    );
}

/// How SLAB did at one level: its goodput over the best other policy's, and its targets
/// under Poisson arrivals (under capacity no admitted image late; at or over it, >= 99% of
/// the answers in time); bursts and steps exceed the capacity for a while at any load.
pub(super) struct Verdict {
    pub ratio: f64,
    pub best_other: String,
    pub target: Option<(String, bool)>,
}

/// The verdict at one level, when SLAB and another policy ran.
pub(super) fn verdict(at_level: &[&Run], poisson: bool) -> Option<Verdict> {
    let slab = at_level.iter().find(|r| r.policy == "slab")?;
    let best = at_level
        .iter()
        .filter(|r| r.policy != "slab")
        .max_by(|a, b| goodput(a).total_cmp(&goodput(b)))?;
    let t = total(slab);
    let target = match slab.level {
        _ if !poisson => None,
        Level::Load(f) if f < 1.0 => {
            Some((format!("{} late", violations(&t)), violations(&t) == 0))
        }
        Level::Load(_) => {
            // The target is on all functions together; the weakest one is shown beside it.
            let low = slab
                .functions
                .iter()
                .min_by(|a, b| a.stats.attainment().total_cmp(&b.stats.attainment()))?;
            Some((
                format!(
                    "{:.2}% in time (lowest {} {:.2}%)",
                    t.attainment() * 100.0,
                    low.spec.name,
                    low.stats.attainment() * 100.0
                ),
                t.attainment() >= 0.99,
            ))
        }
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

/// The summary table: per level, each policy's goodput/s and p99 ms (all functions).
pub(super) fn summary(s: &mut String, runs: &[Run], poisson: bool) {
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
        if let Some(v) = verdict(g, poisson) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::simulate::FnResult;
    use netml_serve::{FunctionSpec, Policy};

    /// A run of one function: `answered` images, `late` of them past the SLO, over 1 s.
    fn run(level: Level, policy: &str, answered: u64, late: u64) -> Run {
        let stats = FunctionStats {
            offered: answered,
            admitted: answered,
            answered,
            within_slo: answered - late,
            ..FunctionStats::default()
        };
        let spec = FunctionSpec {
            name: "f".into(),
            model: 1,
            slo_ns: 1,
            batch_sizes: vec![1],
            policy: Policy::Slab,
            admission: true,
            queue_limit: 1,
        };
        Run {
            level,
            policy: policy.into(),
            functions: vec![FnResult {
                spec,
                stats,
                rate: 1.0,
                capacity: 1.0,
            }],
            unknown_model: 0,
            duration_s: 1.0,
            span_s: 1.0,
        }
    }

    #[test]
    fn slab_is_compared_with_the_best_other_and_its_targets() {
        let (low, high) = (Level::Load(0.5), Level::Load(1.5));
        let runs = vec![
            run(low, "slab", 100, 1),
            run(low, "fixed:1", 50, 0),
            run(low, "fixed:32", 120, 0),
            run(high, "slab", 1000, 10),
            run(high, "fixed:32", 500, 0),
        ];
        let groups = by_level(&runs);
        assert_eq!(groups.iter().map(Vec::len).collect::<Vec<_>>(), [3, 2]);
        let v = verdict(&groups[0], true).unwrap();
        assert_eq!((v.ratio, v.best_other.as_str()), (99.0 / 120.0, "fixed:32"));
        assert_eq!(v.target, Some(("1 late".into(), false)));
        let v = verdict(&groups[1], true).unwrap();
        assert_eq!(v.ratio, 990.0 / 500.0);
        assert!(
            v.target.unwrap().1,
            "99% in time meets the target over capacity"
        );
        assert!(verdict(&groups[1], false).unwrap().target.is_none());
        assert!(verdict(&groups[1][1..], true).is_none(), "no slab run");
    }
}
