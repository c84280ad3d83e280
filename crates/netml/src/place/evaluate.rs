//! `--evaluate`: each GPU of a placement through the device simulator
//! (`netml_serve::sim::device`, partitioned mode, the planned shares kept: no controller),
//! with Poisson arrivals per model at the rate its instances on that GPU are planned for
//! (a model's arrivals split over its GPUs in proportion to their planned rates).
//!
//! Co-location: on a GPU holding more than one instance every batch takes `interference`
//! longer than the profile says (the latencies scaled, share rows included), which is what
//! the planning margin stands for; an instance alone on its GPU runs at the profile's speed.

use super::function::FunctionArg;
use netml_serve::place::{Demand, Params, Placement};
use netml_serve::profile::Row;
use netml_serve::sim::device::{self, DeviceConfig, DeviceFunction};
use netml_serve::sim::{Arrival, Shape};
use netml_serve::{FunctionSpec, Histogram, Policy, Profile, ShareCurve, Sharing};

/// How placements are simulated.
#[derive(Debug, Clone, Copy)]
pub(super) struct Settings {
    /// Seconds of arrivals.
    pub duration_s: f64,
    /// Relative standard deviation of a batch's time.
    pub jitter: f64,
    /// Slowdown of every batch on a GPU shared by several instances.
    pub interference: f64,
    /// Seed of the arrivals and the jitter.
    pub seed: u64,
}

impl Settings {
    /// Checks the values.
    pub fn check(&self) -> Result<(), String> {
        if !(self.duration_s.is_finite() && self.duration_s > 0.0) {
            return Err("--duration-s must be a positive number".into());
        }
        if !(self.jitter.is_finite() && (0.0..=0.5).contains(&self.jitter)) {
            return Err("--jitter must be in 0..=0.5".into());
        }
        if !(self.interference.is_finite() && (0.0..=2.0).contains(&self.interference)) {
            return Err("--interference must be in 0..=2".into());
        }
        Ok(())
    }
}

/// One model's figures over all GPUs.
#[derive(Debug, Clone)]
pub(super) struct Served {
    pub name: String,
    pub offered: u64,
    pub within_slo: u64,
    /// Arrival to answer, ns.
    pub latency: Histogram,
}

/// A placement's simulated outcome.
#[derive(Debug, Clone)]
pub(super) struct Outcome {
    /// Per model, in the order of the demands.
    pub models: Vec<Served>,
    /// Seconds of arrivals.
    pub duration_s: f64,
}

impl Outcome {
    fn total(&self, f: impl Fn(&Served) -> u64) -> u64 {
        self.models.iter().map(f).sum()
    }

    /// Images offered per second.
    pub fn offered_per_s(&self) -> f64 {
        self.total(|m| m.offered) as f64 / self.duration_s
    }

    /// Answers inside the SLO per second of arrivals.
    pub fn goodput_per_s(&self) -> f64 {
        self.total(|m| m.within_slo) as f64 / self.duration_s
    }

    /// Answers inside the SLO over images offered (a refused image counts as a miss).
    pub fn attainment(&self) -> f64 {
        self.total(|m| m.within_slo) as f64 / self.total(|m| m.offered).max(1) as f64
    }

    /// The model with the lowest attainment, and that attainment.
    pub fn worst(&self) -> (&str, f64) {
        self.models
            .iter()
            .map(|m| {
                (
                    m.name.as_str(),
                    m.within_slo as f64 / m.offered.max(1) as f64,
                )
            })
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .unwrap_or(("-", 1.0))
    }

    /// 99th percentile of arrival to answer over every model, ms.
    pub fn p99_ms(&self) -> f64 {
        let mut all = Histogram::default();
        for m in &self.models {
            all.merge(&m.latency);
        }
        all.quantile(0.99).map_or(0.0, |ns| ns as f64 / 1e6)
    }
}

/// `profile` with every latency `factor` times longer.
fn slowed(profile: &Profile, factor: f64) -> Profile {
    Profile {
        rows: profile
            .rows
            .iter()
            .map(|r| Row {
                ms: r.ms * factor,
                ..r.clone()
            })
            .collect(),
        threads: profile.threads,
    }
}

/// Simulates every GPU of `pl`.
pub(super) fn run(
    pl: &Placement,
    demands: &[Demand],
    functions: &[FunctionArg],
    params: &Params,
    profile: &Profile,
    s: &Settings,
) -> Result<Outcome, String> {
    let duration_ns = (s.duration_s * 1e9) as u64;
    let crowded = slowed(profile, 1.0 + s.interference);
    let mut models: Vec<Served> = demands
        .iter()
        .map(|d| Served {
            name: d.name.clone(),
            offered: 0,
            within_slo: 0,
            latency: Histogram::default(),
        })
        .collect();
    let cfg = DeviceConfig {
        jitter: s.jitter,
        controller: None,
        ..DeviceConfig::new(params.device, Sharing::Partitioned)
    };
    for (g, gpu) in pl.gpus.iter().enumerate() {
        let mut on_gpu: Vec<usize> = gpu.instances.iter().map(|i| i.function).collect();
        on_gpu.sort_unstable();
        on_gpu.dedup();
        let mut fns = Vec::new();
        let mut arrivals = Vec::new();
        for &f in &on_gpu {
            let (arg, d) = (&functions[f], &demands[f]);
            let mine: Vec<_> = gpu.instances.iter().filter(|i| i.function == f).collect();
            let curve = if gpu.instances.len() > 1 {
                ShareCurve::from_profile(&crowded, &arg.name, &arg.precision)
                    .ok_or_else(|| format!("{}: not in the profile", arg.name))?
            } else {
                d.curve.clone()
            };
            fns.push(DeviceFunction {
                spec: FunctionSpec {
                    name: d.name.clone(),
                    model: arg.model,
                    slo_ns: d.slo_ns,
                    batch_sizes: super::engine_batches(&params.batch_sizes),
                    policy: Policy::Slab,
                    admission: Policy::Slab.admission_by_default(),
                    queue_limit: netml_pipeline::config::FunctionConfig::default().queue_limit,
                },
                curve,
                shares: mine.iter().map(|i| i.share).collect(),
            });
            let rate: f64 = mine.iter().map(|i| i.rate).sum();
            let seed = s
                .seed
                .wrapping_mul(1_000_003)
                .wrapping_add((g * 256 + f) as u64 * 1009);
            arrivals.extend(
                Shape::Poisson { rate }
                    .times(duration_ns, seed)
                    .into_iter()
                    .map(|at| Arrival {
                        at,
                        model: arg.model,
                    }),
            );
        }
        arrivals.sort_unstable();
        let out = device::run(&cfg, fns, &arrivals, s.seed.wrapping_add(g as u64))
            .map_err(|e| format!("GPU {g}: {e}"))?;
        for ((_, st), &f) in out.functions.iter().zip(&on_gpu) {
            let m = &mut models[f];
            m.offered += st.offered;
            m.within_slo += st.within_slo;
            m.latency.merge(&st.latency);
        }
    }
    Ok(Outcome {
        models,
        duration_s: s.duration_s,
    })
}
