//! Several inference functions on one device under a sharing mode: the real [`Server`]
//! (admission, SLAB, latency learning) with a virtual clock, batches whose speed depends on
//! the mode and on what else runs, and, when partitioned, the GSLICE [`Controller`] resizing
//! shares through shadow instances that switch at batch boundaries.
//!
//! How long a batch takes, with `t(b)` its whole-device latency and `d(b)` its demand
//! ([`ShareCurve`]):
//! - `temporal`: `t(b)` of device time; with `n` batches of different instances in flight the
//!   device time-slices between them, each progressing at `1/n`.
//! - `shared`: `t(b)` at full speed while the running batches' demands sum to at most the
//!   device; beyond it each runs at `1 / (Σd)^k`, and each other running batch costs a further
//!   `interference` (contention for memory bandwidth and caches).
//! - `partitioned` / `mps`: the curve's latency at the instance's share, whatever else runs.

use super::Arrival;
use crate::controller::{Controller, ControllerConfig, Resize, View};
use crate::function::{Function, FunctionSpec};
use crate::server::{Event, Server};
use crate::share::{Device, ShareCurve, Sharing};
use crate::stats::FunctionStats;
use netml_infer::fixtures::Rng;

/// One function on the device.
#[derive(Debug, Clone)]
pub struct DeviceFunction {
    /// Its configuration.
    pub spec: FunctionSpec,
    /// Its latency at each batch size and share (the truth, and its scheduler's seed).
    pub curve: ShareCurve,
    /// Units of each instance at the start (isolated modes; ignored by the others).
    pub shares: Vec<u32>,
}

/// The device and how it is shared.
#[derive(Debug, Clone, Copy)]
pub struct DeviceConfig {
    /// The device.
    pub device: Device,
    /// The sharing mode.
    pub sharing: Sharing,
    /// Relative standard deviation of a batch's time.
    pub jitter: f64,
    /// `shared` mode: slowdown per other running batch.
    pub interference: f64,
    /// `partitioned` mode: the controller (none: the starting shares stay).
    pub controller: Option<ControllerConfig>,
    /// Time to prepare a shadow share in the background (partition, plans, CUDA graphs), ns.
    pub prepare_ns: u64,
    /// Time from the old share's last batch to the new share's first, ns.
    pub switch_ns: u64,
}

impl DeviceConfig {
    /// `sharing` on `device` with the defaults: 5% jitter, 10% interference per co-runner in
    /// `shared` mode, the default controller when partitioned, 20 ms to prepare a shadow
    /// (green context ~1 ms plus plans and graphs), 20 µs to switch.
    pub fn new(device: Device, sharing: Sharing) -> DeviceConfig {
        DeviceConfig {
            device,
            sharing,
            jitter: 0.05,
            interference: 0.1,
            controller: (sharing == Sharing::Partitioned).then(ControllerConfig::default),
            prepare_ns: 20_000_000,
            switch_ns: 20_000,
        }
    }
}

/// A share switch that took place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Switch {
    /// When the new share took over, ns.
    pub at: u64,
    /// Function index.
    pub function: usize,
    /// Instance index.
    pub instance: usize,
    /// Units before.
    pub from: u32,
    /// Units after.
    pub to: u32,
    /// Time the instance could not start a batch, ns.
    pub downtime_ns: u64,
}

/// The outcome of a device simulation.
#[derive(Debug, Clone)]
pub struct DeviceOutcome {
    /// Per function: its configuration and statistics.
    pub functions: Vec<(FunctionSpec, FunctionStats)>,
    /// Units per instance at the end.
    pub shares: Vec<Vec<u32>>,
    /// The controller's decisions.
    pub resizes: Vec<Resize>,
    /// The switches they led to.
    pub switches: Vec<Switch>,
    /// Virtual time from the first arrival to the last answer, ns.
    pub span_ns: u64,
    /// Time at least one batch ran, ns.
    pub busy_ns: u64,
}

/// A batch in flight: device time left, at the speed of the current mix.
#[derive(Debug, Clone, Copy)]
struct InFlight {
    function: usize,
    instance: usize,
    /// ns left at speed 1.
    work: f64,
    demand: f64,
    speed: f64,
}

#[derive(Debug, Clone, Copy)]
struct Pending {
    ready_at: u64,
    to: u32,
}

struct Sim<'a> {
    cfg: &'a DeviceConfig,
    curves: Vec<ShareCurve>,
    shares: Vec<Vec<u32>>,
    pending: Vec<Vec<Option<Pending>>>,
    /// Extra time the next batch of an instance takes (a switch's cost).
    penalty: Vec<Vec<u64>>,
    flight: Vec<InFlight>,
    switches: Vec<Switch>,
    rng: Rng,
}

/// Runs `arrivals` (ascending) through `functions` sharing one device as `cfg` says.
pub fn run(
    cfg: &DeviceConfig,
    functions: Vec<DeviceFunction>,
    arrivals: &[Arrival],
    seed: u64,
) -> Result<DeviceOutcome, String> {
    let isolated = cfg.sharing.isolated();
    let d = cfg.device;
    let shares: Vec<Vec<u32>> = functions
        .iter()
        .map(|f| {
            let n = f.shares.len().max(1);
            (0..n)
                .map(|i| match isolated {
                    true => d.round(f.shares.get(i).copied().unwrap_or(d.available())),
                    false => d.total,
                })
                .collect()
        })
        .collect();
    let used: u32 = shares.iter().flatten().sum();
    if isolated && used > d.available() {
        return Err(format!(
            "the starting shares take {used} {} of the {} available",
            d.unit.label(),
            d.available()
        ));
    }
    let server_fns = functions
        .iter()
        .zip(&shares)
        .map(|(f, s)| {
            let models = s
                .iter()
                .map(|&u| f.curve.model_at(&f.spec.batch_sizes, d.fraction(u)))
                .collect();
            Function::new(f.spec.clone(), models)
        })
        .collect();
    let mut server = Server::<()>::new(server_fns)?;
    let mut controller = cfg
        .controller
        .filter(|_| cfg.sharing == Sharing::Partitioned)
        .map(|c| {
            let first: Vec<u32> = shares.iter().map(|s| s[0]).collect();
            Controller::new(c, d, &first)
        });
    let mut sim = Sim {
        cfg,
        pending: shares.iter().map(|s| vec![None; s.len()]).collect(),
        penalty: shares.iter().map(|s| vec![0; s.len()]).collect(),
        curves: functions.into_iter().map(|f| f.curve).collect(),
        shares,
        flight: Vec::new(),
        switches: Vec::new(),
        rng: Rng::new(seed),
    };
    let mut events = Vec::new();
    let mut next = 0usize;
    let start = arrivals.first().map_or(0, |a| a.at);
    let end_of_arrivals = arrivals.last().map_or(0, |a| a.at);
    let (mut now, mut busy_ns) = (start, 0u64);
    loop {
        let candidates = [
            arrivals.get(next).map(|a| a.at),
            sim.next_completion(now),
            server.next_wakeup().map(|w| w.max(now + 1)),
            controller
                .as_ref()
                .map(|c| c.next_decision())
                .filter(|&t| t <= end_of_arrivals),
            sim.next_ready(now),
        ];
        let Some(t) = candidates.into_iter().flatten().min() else {
            break;
        };
        let t = t.max(now);
        if !sim.flight.is_empty() {
            busy_ns += t - now;
        }
        sim.advance(t - now);
        now = t;
        for (f, i) in sim.finished() {
            server.complete(now, f, i);
        }
        sim.switch_ready(now, &mut server);
        while let Some(a) = arrivals.get(next).filter(|a| a.at <= now) {
            let _ = server.offer(a.at, a.model, ());
            next += 1;
        }
        if let Some(c) = controller.as_mut() {
            if now >= c.next_decision() && now <= end_of_arrivals {
                for r in c.decide(now, &views(&server, &sim)) {
                    sim.prepare(now, r, server.functions()[r.function].instances());
                }
            }
        }
        server.poll(now, &mut events);
        for e in events.drain(..) {
            if let Event::Batch { function, batch } = e {
                sim.start(function, batch.instance, batch.engine_batch);
            }
        }
        sim.rerate();
    }
    Ok(DeviceOutcome {
        functions: server
            .functions()
            .iter()
            .map(|f| (f.spec().clone(), f.stats().clone()))
            .collect(),
        shares: sim.shares,
        resizes: controller.map(|c| c.log().to_vec()).unwrap_or_default(),
        switches: sim.switches,
        span_ns: now.saturating_sub(start),
        busy_ns,
    })
}

/// What the controller sees of each function.
fn views<'a>(server: &'a Server<()>, sim: &'a Sim) -> Vec<View<'a>> {
    server
        .functions()
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let s = f.stats();
            let spec = f.spec();
            let f_now = sim.cfg.device.fraction(sim.shares[i][0]);
            let big = spec.max_batch();
            let modelled = sim.curves[i].latency(big, f_now);
            let learned = f.predict(0, big).map_or(modelled, |p| p as f64);
            View {
                slo_ns: spec.slo_ns,
                batch_sizes: &spec.batch_sizes,
                instances: f.instances(),
                offered: s.offered,
                answered: s.answered,
                within_slo: s.within_slo,
                shed: s.shed(),
                curve: &sim.curves[i],
                correction: if modelled > 0.0 {
                    learned / modelled
                } else {
                    1.0
                },
            }
        })
        .collect()
}

impl Sim<'_> {
    fn start(&mut self, function: usize, instance: usize, batch: usize) {
        let curve = &self.curves[function];
        let base = match self.cfg.sharing {
            Sharing::Temporal | Sharing::Shared => curve.whole(batch),
            Sharing::Partitioned | Sharing::Mps => {
                let u = self.shares[function][instance];
                curve.latency(batch, self.cfg.device.fraction(u))
            }
        };
        let jitter = (1.0 + self.cfg.jitter * self.rng.normal() as f64).clamp(0.5, 2.0);
        let penalty = std::mem::take(&mut self.penalty[function][instance]) as f64;
        self.flight.push(InFlight {
            function,
            instance,
            work: base * jitter + penalty,
            demand: curve.demand(batch),
            speed: 1.0,
        });
    }

    /// Speeds for the current mix of batches in flight.
    fn rerate(&mut self) {
        let n = self.flight.len() as f64;
        let demand: f64 = self.flight.iter().map(|b| b.demand).sum();
        for b in &mut self.flight {
            b.speed = match self.cfg.sharing {
                Sharing::Temporal => 1.0 / n,
                Sharing::Shared => {
                    let slow = self.curves[b.function].oversubscribed(demand);
                    1.0 / (slow * (1.0 + self.cfg.interference * (n - 1.0)))
                }
                Sharing::Partitioned | Sharing::Mps => 1.0,
            };
        }
    }

    fn next_completion(&self, now: u64) -> Option<u64> {
        self.flight
            .iter()
            .map(|b| now + (b.work / b.speed).ceil().max(0.0) as u64)
            .min()
    }

    fn advance(&mut self, dt: u64) {
        for b in &mut self.flight {
            b.work -= dt as f64 * b.speed;
        }
    }

    /// Batches whose work is done, removed.
    fn finished(&mut self) -> Vec<(usize, usize)> {
        let mut out = Vec::new();
        self.flight.retain(|b| {
            let done = b.work <= 0.5;
            if done {
                out.push((b.function, b.instance));
            }
            !done
        });
        out
    }

    fn busy(&self, function: usize, instance: usize) -> bool {
        self.flight
            .iter()
            .any(|b| b.function == function && b.instance == instance)
    }

    /// A decided resize: every instance of the function prepares its shadow.
    fn prepare(&mut self, now: u64, r: Resize, instances: usize) {
        for i in 0..instances.min(self.pending[r.function].len()) {
            self.pending[r.function][i] = Some(Pending {
                ready_at: now + self.cfg.prepare_ns,
                to: r.to,
            });
        }
    }

    fn next_ready(&self, now: u64) -> Option<u64> {
        self.pending
            .iter()
            .flatten()
            .flatten()
            .map(|p| p.ready_at)
            .filter(|&t| t > now)
            .min()
    }

    /// Prepared shadows of idle instances take over, growing ones only once the units are
    /// free (a shrinking neighbour switches at its own batch boundary first).
    fn switch_ready(&mut self, now: u64, server: &mut Server<()>) {
        let avail = self.cfg.device.available();
        for f in 0..self.pending.len() {
            for i in 0..self.pending[f].len() {
                let Some(p) = self.pending[f][i] else {
                    continue;
                };
                let from = self.shares[f][i];
                let used: u32 = self.shares.iter().flatten().sum();
                if p.ready_at > now || self.busy(f, i) || used - from + p.to > avail {
                    continue;
                }
                self.pending[f][i] = None;
                let d = self.cfg.device;
                let curve = &self.curves[f];
                server.function_mut(f).reshare(i, |b| {
                    curve.latency(b, d.fraction(p.to)) / curve.latency(b, d.fraction(from))
                });
                self.shares[f][i] = p.to;
                self.penalty[f][i] = self.cfg.switch_ns;
                self.switches.push(Switch {
                    at: now,
                    function: f,
                    instance: i,
                    from,
                    to: p.to,
                    downtime_ns: self.cfg.switch_ns,
                });
            }
        }
    }
}

#[cfg(test)]
mod tests;
