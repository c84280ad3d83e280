//! A discrete-event simulator of a receiver's inference functions: the real [`Server`]
//! (routing, admission, the policies, instance choice, latency learning) driven by a virtual
//! clock, with batches that take the time a latency profile says (or a recorded run took).

pub mod trace;

use crate::function::{Function, FunctionSpec};
use crate::latency::LatencyModel;
use crate::server::{Event, Server};
use crate::stats::FunctionStats;
use netml_infer::fixtures::Rng;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
pub use trace::{Arrival, Shape};

/// How long a simulated batch takes.
#[derive(Debug, Clone)]
pub enum Service {
    /// What a latency model predicts for the engine batch on that instance (one model per
    /// instance), times a factor drawn from N(1, jitter) (clamped to [0.5, 2]).
    Profile {
        /// The true latency of each instance.
        truth: Vec<LatencyModel>,
        /// Relative standard deviation of a batch's time.
        jitter: f64,
    },
    /// The batch latencies a live run measured, in dispatch order (for replaying it).
    Recorded(VecDeque<u64>),
}

/// One simulated function.
#[derive(Debug, Clone)]
pub struct SimFunction {
    /// Its configuration.
    pub spec: FunctionSpec,
    /// What its scheduler starts from, per instance (seeded from a profile, or blank).
    pub seed: Vec<LatencyModel>,
    /// How long its batches take.
    pub service: Service,
}

/// A batch the simulation dispatched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dispatched {
    /// Virtual time, ns.
    pub at: u64,
    /// Function index.
    pub function: usize,
    /// Instance index.
    pub instance: usize,
    /// Images in it.
    pub images: usize,
    /// Engine batch it ran as.
    pub engine_batch: usize,
}

/// The outcome of a simulation.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Per function: its name, SLO and statistics.
    pub functions: Vec<(FunctionSpec, FunctionStats)>,
    /// Every batch, in dispatch order.
    pub batches: Vec<Dispatched>,
    /// Arrivals for no function.
    pub unknown_model: u64,
    /// Virtual time from the first arrival to the last answer, ns.
    pub span_ns: u64,
}

/// Runs `arrivals` (ascending) through the functions; `seed` drives the service jitter.
pub fn run(
    functions: Vec<SimFunction>,
    arrivals: &[Arrival],
    seed: u64,
) -> Result<Outcome, String> {
    let mut services: Vec<Service> = functions.iter().map(|f| f.service.clone()).collect();
    let mut server = Server::<()>::new(
        functions
            .into_iter()
            .map(|f| Function::new(f.spec, f.seed))
            .collect(),
    )?;
    let mut rng = Rng::new(seed);
    let mut done: BinaryHeap<Reverse<(u64, usize, usize)>> = BinaryHeap::new();
    let mut events = Vec::new();
    let mut batches = Vec::new();
    let (mut next, mut unknown_model) = (0usize, 0u64);
    let start = arrivals.first().map_or(0, |a| a.at);
    let mut now = start;
    loop {
        let wake = server.next_wakeup().map(|w| w.max(now + 1));
        let candidates = [
            arrivals.get(next).map(|a| a.at),
            done.peek().map(|d| d.0 .0),
            wake,
        ];
        let Some(t) = candidates.into_iter().flatten().min() else {
            break;
        };
        now = t.max(now);
        while let Some(&Reverse((at, f, i))) = done.peek() {
            if at > now {
                break;
            }
            done.pop();
            server.complete(at, f, i);
        }
        while let Some(a) = arrivals.get(next).filter(|a| a.at <= now) {
            if server.offer(a.at, a.model, ()).is_err() && server.route(a.model).is_none() {
                unknown_model += 1;
            }
            next += 1;
        }
        server.poll(now, &mut events);
        for e in events.drain(..) {
            let Event::Batch { function, batch } = e else {
                continue; // expired images are counted by their function
            };
            let took = service_time(
                &mut services[function],
                batch.instance,
                batch.engine_batch,
                &mut rng,
            )?;
            done.push(Reverse((now + took, function, batch.instance)));
            batches.push(Dispatched {
                at: now,
                function,
                instance: batch.instance,
                images: batch.items.len(),
                engine_batch: batch.engine_batch,
            });
        }
    }
    Ok(Outcome {
        functions: server
            .functions()
            .iter()
            .map(|f| (f.spec().clone(), f.stats().clone()))
            .collect(),
        batches,
        unknown_model,
        span_ns: now.saturating_sub(start),
    })
}

fn service_time(
    s: &mut Service,
    instance: usize,
    engine: usize,
    rng: &mut Rng,
) -> Result<u64, String> {
    match s {
        Service::Profile { truth, jitter } => {
            let base = truth
                .get(instance)
                .and_then(|m| m.predict(engine))
                .ok_or_else(|| format!("no latency for batch {engine} on instance {instance}"))?;
            let f = (1.0 + *jitter * rng.normal() as f64).clamp(0.5, 2.0);
            Ok((base as f64 * f) as u64)
        }
        Service::Recorded(q) => q
            .pop_front()
            .ok_or_else(|| "the recorded run has no more batches".to_string()),
    }
}
