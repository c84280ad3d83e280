//! `netml simulate --sharing MODES`: every function on one device, once per sharing mode
//! (temporal, shared, mps, partitioned with the GSLICE controller) and load level, through
//! `netml_serve::sim::device`; the same table, CSV, JSON and plots as the policy comparison
//! (the mode in the policy column), then the modes' summary: goodput at equal SLO
//! attainment, partitioned over each other mode, and what the controller did.

use super::setup::Setup;
use super::trace::{self, Level, TraceSpec};
use super::{summary, FnResult, Run};
use netml_serve::controller::ControllerConfig;
use netml_serve::sim::device::{self, DeviceConfig, DeviceFunction, DeviceOutcome};
use netml_serve::{Controller, Device, Profile, ShareCurve, Sharing};
use std::fmt::Write as _;
use std::time::Instant;

/// Attainment (answers inside the SLO over images offered) at which modes are compared.
pub(super) const EQUAL_ATTAINMENT: f64 = 0.99;

/// What a sharing comparison needs beyond the policy comparison's options.
pub(super) struct Options {
    pub modes: Vec<Sharing>,
    pub device: Device,
    pub interference: f64,
    pub controller: ControllerConfig,
    pub jitter: f64,
    pub seed: u64,
}

/// Parses `--sharing`: a comma-separated list of modes, or `all`.
pub(super) fn modes(arg: &str) -> Result<Vec<Sharing>, String> {
    if arg == "all" {
        return Ok(Sharing::ALL.to_vec());
    }
    let v: Vec<Sharing> = arg
        .split(',')
        .map(|m| m.trim().parse())
        .collect::<Result<_, _>>()
        .map_err(|e| format!("--sharing: {e}"))?;
    if v.is_empty() {
        return Err("--sharing: name at least one mode".into());
    }
    Ok(v)
}

/// Each function's curve: its whole-device points and its measured share rows.
pub(super) fn curves(setups: &[Setup], profile: &Profile) -> Result<Vec<ShareCurve>, String> {
    setups
        .iter()
        .map(|s| {
            ShareCurve::from_profile(profile, &s.arg.name, &s.arg.precision)
                .ok_or_else(|| format!("{}: no profile points", s.arg.name))
        })
        .collect()
}

/// Images/s per function at which the mix fills the whole device: every function at the
/// same rate, each image at its model's best whole-device per-image time among the batches
/// that take at most the controller's fraction of its SLO.
pub(super) fn mix_capacity(setups: &[Setup], curves: &[ShareCurve], fraction: f64) -> f64 {
    let per_image_ns: f64 = setups
        .iter()
        .zip(curves)
        .map(|(s, c)| {
            let bound = s.arg.slo_ms * 1e6 * fraction;
            s.arg
                .batch_sizes
                .iter()
                .map(|&b| (b, c.whole(b)))
                .filter(|&(_, ns)| ns <= bound)
                .map(|(b, ns)| ns / b as f64)
                .fold(f64::INFINITY, f64::min)
        })
        .map(|ns| if ns.is_finite() { ns } else { 0.0 })
        .sum();
    if per_image_ns > 0.0 {
        1e9 / per_image_ns
    } else {
        0.0
    }
}

/// One mode at one level: the run (for the shared report) and the device's own outcome.
pub(super) struct ModeRun {
    pub run: Run,
    pub outcome: DeviceOutcome,
}

/// Runs every mode at every level.
pub(super) fn run_all(
    o: &Options,
    setups: &[Setup],
    levels: &[Level],
    spec: &TraceSpec,
    duration_ns: u64,
    profile: &Profile,
) -> Result<Vec<ModeRun>, String> {
    let curves = curves(setups, profile)?;
    let capacity = mix_capacity(setups, &curves, o.controller.latency_fraction);
    let duration_s = duration_ns as f64 / 1e9;
    let total = levels.len() * o.modes.len();
    let mut out = Vec::with_capacity(total);
    for (li, &level) in levels.iter().enumerate() {
        let rate = level.rate(capacity).ok_or("a capture has no load level")?;
        let rates: Vec<(u8, f64)> = setups.iter().map(|s| (s.model, rate)).collect();
        let seed = o
            .seed
            .wrapping_mul(1_000_003)
            .wrapping_add(li as u64 * 1009);
        let arrivals = trace::arrivals(spec, &rates, duration_ns, seed);
        for &mode in &o.modes {
            let started = Instant::now();
            let instances: Vec<usize> = setups.iter().map(|s| s.arg.instances).collect();
            let each = Controller::equal_shares(&o.device, &instances);
            let functions = setups
                .iter()
                .zip(&curves)
                .zip(&each)
                .map(|((s, c), &u)| DeviceFunction {
                    spec: s.sim(None, o.jitter).spec,
                    curve: c.clone(),
                    shares: vec![u; s.arg.instances],
                })
                .collect();
            let cfg = DeviceConfig {
                jitter: o.jitter,
                interference: o.interference,
                controller: (mode == Sharing::Partitioned).then_some(o.controller),
                ..DeviceConfig::new(o.device, mode)
            };
            let outcome = device::run(&cfg, functions, &arrivals, o.seed)?;
            let run = Run {
                level,
                policy: mode.to_string(),
                functions: outcome
                    .functions
                    .iter()
                    .cloned()
                    .map(|(spec, stats)| FnResult {
                        spec,
                        stats,
                        rate,
                        capacity,
                    })
                    .collect(),
                unknown_model: 0,
                duration_s,
                span_s: (outcome.span_ns as f64 / 1e9).max(duration_s),
            };
            summary::progress(out.len() + 1, total, &mode.to_string(), &run, started);
            out.push(ModeRun { run, outcome });
        }
    }
    Ok(out)
}

/// Answers inside the SLO over images offered, all functions together.
pub(super) fn attainment(run: &Run) -> f64 {
    let t = summary::total(run);
    t.within_slo as f64 / t.offered.max(1) as f64
}

/// The device line and the note on where share latencies come from.
pub(super) fn header(device: &Device, curves: &[ShareCurve], interference: f64) -> String {
    let measured = curves.iter().all(ShareCurve::measured_shares);
    let source = if measured {
        "shares measured (the profile's gpu_share_pct or threads rows)".to_string()
    } else {
        format!(
            "shares MODELLED, not measured: whole-device profile latencies scaled by the demand-knee \
             model fitted to the H100 spin-kernel share measurements (exponent {:.2})",
            netml_serve::share::fitted_exponent()
        )
    };
    format!("device: {device}; {source}; shared-mode interference {interference} per co-runner")
}

/// The modes' summary: best goodput at equal attainment per mode, partitioned over the
/// others, and the controller's decisions.
pub(super) fn summary_text(runs: &[ModeRun], device: &Device) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "\nsharing modes: the highest goodput/s at >= {:.0}% attainment (inside the SLO / offered), \
         over the load levels",
        EQUAL_ATTAINMENT * 100.0
    );
    let mut modes: Vec<&str> = Vec::new();
    for r in runs {
        if !modes.contains(&r.run.policy.as_str()) {
            modes.push(&r.run.policy);
        }
    }
    let best = |m: &str| {
        runs.iter()
            .filter(|r| r.run.policy == m && attainment(&r.run) >= EQUAL_ATTAINMENT)
            .map(|r| (summary::goodput(&r.run), r.run.level.label()))
            .max_by(|a, b| a.0.total_cmp(&b.0))
    };
    for m in &modes {
        let _ = match best(m) {
            Some((g, at)) => writeln!(s, "  {m:<12} {g:>10.0}/s  (at {at})"),
            None => writeln!(s, "  {m:<12} {:>10}    (no level reached it)", "-"),
        };
    }
    if let Some((p, _)) = best("partitioned") {
        for m in modes.iter().filter(|m| **m != "partitioned") {
            if let Some((g, _)) = best(m).filter(|b| b.0 > 0.0) {
                let _ = writeln!(s, "  partitioned / {m}: {:.2}x", p / g);
            }
        }
    }
    let controlled: Vec<&ModeRun> = runs
        .iter()
        .filter(|r| r.run.policy == "partitioned")
        .collect();
    if !controlled.is_empty() {
        let _ = writeln!(
            s,
            "\ncontroller (partitioned): decisions, switches, modelled switch downtime, final {} per instance",
            device.unit.label()
        );
        for r in controlled {
            let o = &r.outcome;
            let shares: Vec<String> = o
                .functions
                .iter()
                .zip(&o.shares)
                .map(|((spec, _), u)| format!("{}={}", spec.name, u[0]))
                .collect();
            let down = o.switches.iter().map(|w| w.downtime_ns).max().unwrap_or(0);
            let _ = writeln!(
                s,
                "  {:<12} {:>4} resizes {:>4} switches  max {:>3} us  {}",
                r.run.level.label(),
                o.resizes.len(),
                o.switches.len(),
                down / 1000,
                shares.join(" ")
            );
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::simulate::setup::FunctionArg;
    use netml_serve::Profile;

    #[test]
    fn the_mix_capacity_fills_the_device_at_the_best_batches() {
        let p = Profile::parse(
            "model,precision,batch,ms\na,fp32,1,1\na,fp32,8,2\nb,fp32,1,1\nb,fp32,8,8\n",
        )
        .unwrap();
        let setups: Vec<Setup> = ["a", "b"]
            .iter()
            .enumerate()
            .map(|(i, n)| Setup::new(FunctionArg::named(n), i, &p).unwrap())
            .collect();
        let c = curves(&setups, &p).unwrap();
        // a: 0.25 ms per image at batch 8; b: 1 ms: 1.25 ms per pair -> 800/s each.
        let cap = mix_capacity(&setups, &c, 0.5);
        assert!((cap - 800.0).abs() < 1.0, "{cap}");
        assert_eq!(modes("all").unwrap().len(), 4);
        assert!(modes("temporal,mig").is_err());
    }
}
