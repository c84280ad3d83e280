//! A discrete-event simulator of a receiver's inference functions: the real [`Server`]
//! (routing, admission, the policies, instance choice, latency learning) driven by a virtual
//! clock, with batches that take the time a latency profile says (or a recorded run took).

pub mod device;
pub mod trace;

use crate::function::{Function, FunctionSpec};
use crate::latency::LatencyModel;
use crate::record::Record;
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

/// Replays a live run's [`Record`]s through a fresh server built from `functions` (each
/// with its instances' starting latency models): the recorded offers at their times, the
/// k-th batch of a function completing when the live k-th batch did, and the server polled
/// at every offer, completion and recorded deciding poll. Returns the batches
/// this server decided, as `Record::Batch`, to compare with the recorded ones; the replay
/// stops at the first batch the live run never completed.
pub fn replay(
    functions: Vec<(FunctionSpec, Vec<LatencyModel>)>,
    records: &[Record],
) -> Result<Vec<Record>, String> {
    let n = functions.len();
    let mut server = Server::<()>::new(
        functions
            .into_iter()
            .map(|(spec, models)| Function::new(spec, models))
            .collect(),
    )?;
    // When each live batch ended, per function in dispatch order.
    let mut ends: Vec<VecDeque<u64>> = vec![VecDeque::new(); n];
    let mut open: std::collections::HashMap<(usize, usize), usize> = Default::default();
    for r in records {
        match *r {
            Record::Batch {
                function, instance, ..
            } if function < n => {
                open.insert((function, instance), ends[function].len());
                ends[function].push_back(u64::MAX);
            }
            Record::Complete {
                now,
                function,
                instance,
            } if function < n => {
                if let Some(k) = open.remove(&(function, instance)) {
                    ends[function][k] = now;
                }
            }
            _ => {}
        }
    }
    let offers: Vec<(u64, u64, u8)> = records
        .iter()
        .filter_map(|r| match *r {
            Record::Offer {
                now,
                arrival,
                model,
            } => Some((now, arrival, model)),
            _ => None,
        })
        .collect();
    // The live loop's deciding polls: the replay looks when it looked (beside arrivals and
    // completions), not at its own wake-up times, which a polling loop reaches a little late.
    let polls: Vec<u64> = records
        .iter()
        .filter_map(|r| match *r {
            Record::Poll { now } => Some(now),
            _ => None,
        })
        .collect();
    let mut done: BinaryHeap<Reverse<(u64, usize, usize)>> = BinaryHeap::new();
    let (mut next, mut next_poll) = (0usize, 0usize);
    let (mut out, mut events) = (Vec::new(), Vec::new());
    let mut now = offers.first().map_or(0, |o| o.0);
    loop {
        while polls.get(next_poll).is_some_and(|&p| p < now) {
            next_poll += 1;
        }
        let candidates = [
            offers.get(next).map(|o| o.0),
            done.peek().map(|d| d.0 .0),
            polls.get(next_poll).copied(),
        ];
        let Some(t) = candidates.into_iter().flatten().min() else {
            break;
        };
        now = t.max(now);
        if polls.get(next_poll) == Some(&now) {
            next_poll += 1;
        }
        while let Some(&Reverse((at, f, i))) = done.peek() {
            if at > now {
                break;
            }
            done.pop();
            server.complete(at, f, i);
        }
        while let Some(&(at, arrival, model)) = offers.get(next).filter(|o| o.0 <= now) {
            let _ = server.offer_arrived(at, arrival, model, ());
            next += 1;
        }
        server.poll(now, &mut events);
        for e in events.drain(..) {
            let Event::Batch { function, batch } = e else {
                continue;
            };
            out.push(Record::Batch {
                now,
                function,
                instance: batch.instance,
                images: batch.items.len(),
                engine: batch.engine_batch,
            });
            match ends[function].pop_front() {
                Some(end) if end != u64::MAX => {
                    done.push(Reverse((end.max(now), function, batch.instance)))
                }
                _ => return Ok(out),
            }
        }
    }
    Ok(out)
}
