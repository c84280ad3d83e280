//! The GSLICE controller over the CPU functions' shares, live: every period it sees each
//! function's counters and learned latency and resizes its instances (threads each) through
//! their shadow instances, which switch at a batch boundary.
//!
//! The controller's latency curve per function is modelled from the instance's warm-up at
//! its starting share (taken to scale with its threads up to the whole CPU) and corrected by
//! what the scheduler measures at the current share, as in `netml simulate`.

use super::instances::{Cores, Executor};
use super::lane::Lane;
use super::Admitted;
use crate::config::{Config, ControllerSection};
use netml_serve::controller::{Controller, ControllerConfig, View};
use netml_serve::{Device, Server, ShareCurve};

/// The controller and what it acts on.
pub(crate) struct ShareControl {
    controller: Controller,
    device: Device,
    curves: Vec<ShareCurve>,
    cores: Cores,
}

impl ShareControl {
    /// `None` when the controller is off; an error when a function cannot be controlled
    /// (not on the CPU, or without shares).
    pub(crate) fn new(
        cfg: &Config,
        server: &Server<Admitted>,
        lanes: &[Lane],
        cores: Cores,
    ) -> Result<Option<ShareControl>, String> {
        let ControllerSection { enabled, period_ms } = cfg.controller;
        if !enabled {
            return Ok(None);
        }
        if !(period_ms > 0.0 && period_ms.is_finite()) {
            return Err("controller.period_ms must be positive".into());
        }
        let device = Device::cpu(cores.list().len() as u32);
        let mut shares = Vec::new();
        let mut curves = Vec::new();
        for ((f, fc), lane) in server.functions().iter().zip(&cfg.functions).zip(lanes) {
            let cpu = lane
                .instances
                .iter()
                .all(|i| matches!(i.engine, Some(Executor::Cpu(_))));
            let (Some(&units), true) = (fc.shares.first(), cpu) else {
                return Err(format!(
                    "controller: function {:?} needs CPU instances with shares",
                    fc.name
                ));
            };
            // Its warm-up at `units` threads, as if it scaled to the whole CPU.
            let at = device.fraction(units);
            let model = f.latency_model(0).expect("a function has an instance");
            let whole: Vec<(usize, f64)> = model
                .sizes()
                .iter()
                .filter_map(|&b| model.predict(b).map(|ns| (b, ns as f64 * at)))
                .collect();
            let curve = ShareCurve::new(&whole)
                .ok_or_else(|| format!("controller: function {:?} was not timed", fc.name))?;
            shares.push(units);
            curves.push(curve);
        }
        let knobs = ControllerConfig {
            period_ns: (period_ms * 1e6) as u64,
            ..ControllerConfig::default()
        };
        Ok(Some(ShareControl {
            controller: Controller::new(knobs, device, &shares),
            device,
            curves,
            cores,
        }))
    }

    /// Decides when a period is over and starts preparing the shares it changed.
    pub(crate) fn step(&mut self, now: u64, server: &Server<Admitted>, lanes: &mut [Lane]) {
        if now < self.controller.next_decision() {
            return;
        }
        let shares = self.controller.shares();
        let views: Vec<View> = server
            .functions()
            .iter()
            .zip(&self.curves)
            .zip(&shares)
            .map(|((f, curve), &units)| {
                let (spec, st) = (f.spec(), f.stats());
                let big = spec.max_batch();
                let modelled = curve.latency(big, self.device.fraction(units));
                let learned = f.predict(0, big).map_or(modelled, |p| p as f64);
                View {
                    slo_ns: spec.slo_ns,
                    batch_sizes: &spec.batch_sizes,
                    instances: f.healthy_instances(),
                    offered: st.offered,
                    answered: st.answered,
                    within_slo: st.within_slo,
                    shed: st.shed(),
                    curve,
                    correction: if modelled > 0.0 {
                        learned / modelled
                    } else {
                        1.0
                    },
                }
            })
            .collect();
        let resizes = self.controller.decide(now, &views);
        if resizes.is_empty() {
            return;
        }
        // Threads pinned per core now; a resized instance moves to the least loaded ones.
        let mut load: Vec<(usize, usize)> = self.cores.list().iter().map(|&c| (c, 0)).collect();
        for inst in lanes.iter().flat_map(|l| &l.instances) {
            if let Some(Executor::Cpu(c)) = inst.engine.as_ref() {
                count(&mut load, &c.shadow.current().share().cores, true);
            }
        }
        for r in resizes {
            for inst in &mut lanes[r.function].instances {
                let Some(Executor::Cpu(c)) = inst.engine.as_mut() else {
                    continue;
                };
                let threads = r.to as usize;
                count(&mut load, &c.shadow.current().share().cores, false);
                let cores = least_loaded(&load, threads);
                count(&mut load, &cores, true);
                let recipe = c.recipe.clone();
                if let Err(e) = c
                    .shadow
                    .resize(r.to, move || recipe.prepare(threads, cores))
                {
                    tracing::error!("function {}: resize to {threads} threads: {e}", r.function);
                }
            }
        }
    }
}

/// The `n` least loaded cores (lowest index first among equals), cycling when `n` exceeds
/// them.
fn least_loaded(load: &[(usize, usize)], n: usize) -> Vec<usize> {
    let mut by_load = load.to_vec();
    by_load.sort_by_key(|&(core, l)| (l, core));
    by_load.iter().map(|l| l.0).cycle().take(n).collect()
}

/// Adds (or removes) one thread on each of `cores` in `load`.
fn count(load: &mut [(usize, usize)], cores: &[usize], add: bool) {
    for c in cores {
        if let Some(l) = load.iter_mut().find(|l| l.0 == *c) {
            l.1 = if add { l.1 + 1 } else { l.1.saturating_sub(1) };
        }
    }
}
