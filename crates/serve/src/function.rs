//! One inference function's scheduler: its queue, admission control, the batching policy
//! and its instances. Pure logic: time is the caller's (ns of any monotonic clock), nothing
//! here sleeps, spawns or runs a model, so the live pipeline and the simulator drive the
//! same code.

use crate::latency::LatencyModel;
use crate::policy::Policy;
use crate::stats::{Decision, FunctionStats};
use std::collections::VecDeque;

/// What configures a function's scheduling.
#[derive(Debug, Clone, PartialEq)]
pub struct FunctionSpec {
    /// Name, for statistics.
    pub name: String,
    /// Model id in the fragment header.
    pub model: u8,
    /// Latency objective from the image's arrival (complete in the receiver) to its answer.
    pub slo_ns: u64,
    /// Engine batch sizes (a plan is built for each), ascending.
    pub batch_sizes: Vec<usize>,
    /// How batches are formed.
    pub policy: Policy,
    /// Refuse images that cannot finish inside the SLO, and drop queued ones that no longer can.
    pub admission: bool,
    /// Most images queued (memory bound; beyond it images are refused as overloaded).
    pub queue_limit: usize,
}

impl FunctionSpec {
    /// Powers of two up to `max_batch` (and `max_batch` itself).
    pub fn default_batch_sizes(max_batch: usize) -> Vec<usize> {
        let mut v: Vec<usize> = (0..usize::BITS)
            .map(|i| 1usize << i)
            .take_while(|&b| b < max_batch)
            .collect();
        v.push(max_batch.max(1));
        v
    }

    /// Largest engine batch.
    pub fn max_batch(&self) -> usize {
        self.batch_sizes.last().copied().unwrap_or(1)
    }
}

/// An image waiting in a function's queue.
#[derive(Debug)]
pub struct Queued<T> {
    /// When it arrived (complete in the receiver), ns.
    pub arrival: u64,
    /// `arrival + slo`.
    pub deadline: u64,
    /// The caller's image.
    pub item: T,
}

/// A batch to run: which instance, as which engine batch, on which images (oldest first).
#[derive(Debug)]
pub struct Batch<T> {
    /// Instance index within the function.
    pub instance: usize,
    /// Engine batch size to run (`items.len()` images, padded up to it).
    pub engine_batch: usize,
    /// The images.
    pub items: Vec<Queued<T>>,
    /// What was decided and predicted.
    pub decision: Decision,
}

/// Why an image was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// It could not finish inside its SLO (admission control): answer `overloaded`.
    Overloaded,
    /// The queue is at its bound: answer `overloaded`.
    QueueFull,
    /// No instance is left in rotation: answer `failed`.
    Unavailable,
    /// No function serves its model (from [`Server`](crate::Server)): answer `unknown_model`.
    UnknownModel,
}

/// An image that was not queued, handed back with the reason.
#[derive(Debug)]
pub struct Refused<T> {
    /// Why.
    pub reason: Refusal,
    /// The caller's image.
    pub item: T,
}

/// A dispatch decision: `(dropped, images, engine batch)`.
type Choice = (usize, usize, usize);

/// The batch an instance is running.
#[derive(Debug)]
struct Running {
    dispatched: u64,
    engine_batch: usize,
    predicted: Option<u64>,
    arrivals: Vec<u64>,
}

#[derive(Debug)]
struct Instance {
    latency: LatencyModel,
    healthy: bool,
    running: Option<Running>,
}

impl Instance {
    fn free_at(&self, now: u64) -> u64 {
        match &self.running {
            Some(r) => (r.dispatched + r.predicted.unwrap_or(0)).max(now),
            None => now,
        }
    }
}

/// Arrival rate as an exponentially weighted mean inter-arrival gap.
#[derive(Debug, Default)]
struct Rate {
    last: Option<u64>,
    mean_gap: Option<f64>,
}

impl Rate {
    fn arrived(&mut self, now: u64) {
        if let Some(l) = self.last {
            let gap = now.saturating_sub(l) as f64;
            self.mean_gap = Some(match self.mean_gap {
                Some(m) => m + (gap - m) / 16.0,
                None => gap,
            });
        }
        self.last = Some(now);
    }

    /// Expected ns until the next arrival; a silence longer than the mean counts as the
    /// gap, so the estimate decays when traffic stops.
    fn gap(&self, now: u64) -> Option<f64> {
        let (m, l) = (self.mean_gap?, self.last?);
        Some(m.max(now.saturating_sub(l) as f64))
    }
}

/// One inference function: queue, policy, admission, instances, statistics.
#[derive(Debug)]
pub struct Function<T> {
    spec: FunctionSpec,
    queue: VecDeque<Queued<T>>,
    instances: Vec<Instance>,
    rate: Rate,
    stats: FunctionStats,
    /// When the policy wants to decide again without a new event (a wait that ends).
    wake: Option<u64>,
    /// Images a dispatch dropped as too late, until [`expire`](Function::expire) hands them out.
    dropped: Vec<Queued<T>>,
    /// When admission last let an image through against its estimate (see `offer`).
    last_probe: Option<u64>,
}

impl<T> Function<T> {
    /// A function with one latency model per instance (seeded or blank).
    pub fn new(mut spec: FunctionSpec, instances: Vec<LatencyModel>) -> Function<T> {
        if let Some(b) = spec.policy.required_batch() {
            spec.batch_sizes.push(b);
        }
        spec.batch_sizes.sort_unstable();
        spec.batch_sizes.dedup();
        spec.batch_sizes.retain(|&b| b > 0);
        if spec.batch_sizes.is_empty() {
            spec.batch_sizes.push(1);
        }
        let instances = instances
            .into_iter()
            .map(|m| Instance {
                latency: rebase(&m, &spec.batch_sizes),
                healthy: true,
                running: None,
            })
            .collect();
        Function {
            spec,
            queue: VecDeque::new(),
            instances,
            rate: Rate::default(),
            stats: FunctionStats::default(),
            wake: None,
            dropped: Vec::new(),
            last_probe: None,
        }
    }

    /// The configuration (batch sizes completed with the policy's).
    pub fn spec(&self) -> &FunctionSpec {
        &self.spec
    }

    /// Counters so far.
    pub fn stats(&self) -> &FunctionStats {
        &self.stats
    }

    /// Images queued now.
    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    /// Instances in rotation.
    pub fn healthy_instances(&self) -> usize {
        self.instances.iter().filter(|i| i.healthy).count()
    }

    /// The latency model of `instance` now.
    pub fn latency_model(&self, instance: usize) -> Option<&LatencyModel> {
        self.instances.get(instance).map(|i| &i.latency)
    }

    /// Instances, in or out of rotation.
    pub fn instances(&self) -> usize {
        self.instances.len()
    }

    /// Predicted latency of `engine_batch` on `instance`.
    pub fn predict(&self, instance: usize, engine_batch: usize) -> Option<u64> {
        self.instances.get(instance)?.latency.predict(engine_batch)
    }

    /// Offers an image that arrived at `now`: queued, or handed back with the reason.
    pub fn offer(&mut self, now: u64, item: T) -> Result<(), Refused<T>> {
        self.offer_arrived(now, now, item)
    }

    /// Offers at `now` an image that arrived (its SLO started) at `arrival` <= `now`.
    pub fn offer_arrived(&mut self, now: u64, arrival: u64, item: T) -> Result<(), Refused<T>> {
        let arrival = arrival.min(now);
        self.stats.offered += 1;
        self.rate.arrived(arrival);
        let refuse = |reason, item| Err(Refused { reason, item });
        if self.healthy_instances() == 0 {
            self.stats.failed += 1;
            return refuse(Refusal::Unavailable, item);
        }
        if self.queue.len() >= self.spec.queue_limit {
            self.stats.shed_queue_full += 1;
            return refuse(Refusal::QueueFull, item);
        }
        let deadline = arrival.saturating_add(self.spec.slo_ns);
        let late = match self.predict_completion(now, self.queue.len()) {
            Some(done) => done > deadline,
            // Nothing measured yet: one largest batch may wait while the first one teaches
            // the model; more would be admitted blind.
            None => self.queue.len() >= self.spec.max_batch(),
        };
        // An idle function whose estimate says no still takes one image per SLO period:
        // otherwise one slow measurement would refuse everything forever, with nothing
        // left to correct it.
        let probe = late
            && self.idle()
            && self
                .last_probe
                .is_none_or(|p| now.saturating_sub(p) >= self.spec.slo_ns);
        if probe {
            self.last_probe = Some(now);
        }
        if self.spec.admission && late && !probe {
            self.stats.shed_admission += 1;
            return refuse(Refusal::Overloaded, item);
        }
        self.stats.admitted += 1;
        self.queue.push_back(Queued {
            arrival,
            deadline,
            item,
        });
        Ok(())
    }

    /// When the image at queue position `pos` would finish if served now in order, in
    /// batches of the largest size that fits the SLO, each on the instance free first.
    /// `None` while no instance has a latency estimate.
    fn predict_completion(&self, now: u64, pos: usize) -> Option<u64> {
        let mut free: Vec<(u64, &LatencyModel)> = self
            .instances
            .iter()
            .filter(|i| i.healthy && i.latency.known())
            .map(|i| (i.free_at(now), &i.latency))
            .collect();
        if free.is_empty() {
            return None;
        }
        let best = free
            .iter()
            .map(|f| f.1)
            .min_by_key(|m| m.predict(self.spec.batch_sizes[0]))?;
        let size = self
            .spec
            .batch_sizes
            .iter()
            .copied()
            .filter(|&s| best.predict_safe(s).is_some_and(|l| l <= self.spec.slo_ns))
            .max()
            .unwrap_or(self.spec.batch_sizes[0]);
        let mut left = pos + 1;
        loop {
            let n = left.min(size);
            let engine = self.engine_for(n);
            let (i, _) = free.iter().enumerate().min_by_key(|(_, f)| f.0)?;
            let done = free[i].0 + free[i].1.predict_safe(engine)?;
            free[i].0 = done;
            left -= n;
            if left == 0 {
                return Some(done);
            }
        }
    }

    /// Smallest engine batch holding `n` images (the largest when none does).
    fn engine_for(&self, n: usize) -> usize {
        self.spec
            .batch_sizes
            .iter()
            .copied()
            .find(|&s| s >= n)
            .unwrap_or(self.spec.max_batch())
    }

    /// The predicted latency of the smallest plan on the fastest healthy instance: the
    /// earliest any queued image could still finish after now.
    fn fastest_single(&self) -> Option<u64> {
        let smallest = self.spec.batch_sizes[0];
        self.instances
            .iter()
            .filter(|i| i.healthy)
            .filter_map(|i| i.latency.predict(smallest))
            .min()
    }

    /// Removes queued images that can no longer finish inside their SLO even alone on the
    /// fastest instance (only with admission control on); the caller answers them `overloaded`.
    pub fn expire(&mut self, now: u64, out: &mut Vec<Queued<T>>) {
        out.append(&mut self.dropped);
        if !self.spec.admission {
            return;
        }
        let Some(fastest) = self.fastest_single() else {
            return;
        };
        // With every instance idle the front image runs next whatever the estimate says:
        // dropping it too would leave an estimate that refuses everything with nothing to
        // correct it (the idle probe of `offer` relies on this).
        let keep = usize::from(self.instances.iter().all(|i| i.running.is_none()));
        while self.queue.len() > keep
            && self
                .queue
                .front()
                .is_some_and(|q| q.deadline < now.saturating_add(fastest))
        {
            self.stats.shed_expired += 1;
            out.push(self.queue.pop_front().expect("front exists"));
        }
    }

    /// The next batch to run now, if the policy says so and an instance is free.
    pub fn dispatch(&mut self, now: u64) -> Option<Batch<T>> {
        self.wake = None;
        if self.queue.is_empty() {
            return None;
        }
        // Every free instance proposes; the earliest predicted completion wins.
        let mut best: Option<(usize, Choice, Option<u64>)> = None;
        for (i, inst) in self.instances.iter().enumerate() {
            if !inst.healthy || inst.running.is_some() {
                continue;
            }
            match self.decide(now, &inst.latency) {
                Ok(d) => {
                    let l = inst.latency.predict(d.2);
                    if best.is_none_or(|b| l.unwrap_or(u64::MAX) < b.2.unwrap_or(u64::MAX)) {
                        best = Some((i, d, l));
                    }
                }
                Err(Some(t)) => self.wake = Some(self.wake.map_or(t, |w| w.min(t))),
                Err(None) => {}
            }
        }
        let (instance, (dropped, take, engine), predicted) = best?;
        self.wake = None;
        self.stats.shed_expired += dropped as u64;
        self.dropped.extend(self.queue.drain(..dropped));
        if take == 0 {
            return None;
        }
        let items: Vec<Queued<T>> = self.queue.drain(..take).collect();
        let oldest_deadline = items[0].deadline;
        let decision = Decision {
            images: take,
            engine_batch: engine,
            predicted_ns: predicted.unwrap_or(0),
            measured_ns: 0,
            slack_ns: oldest_deadline as i64 - (now + predicted.unwrap_or(0)) as i64,
        };
        self.stats.record_batch(decision);
        self.instances[instance].running = Some(Running {
            dispatched: now,
            engine_batch: engine,
            predicted,
            arrivals: items.iter().map(|q| q.arrival).collect(),
        });
        Some(Batch {
            instance,
            engine_batch: engine,
            items,
            decision,
        })
    }

    /// Under a backlog: the batch that finishes the most images inside their SLO per unit
    /// of instance time. Serving the oldest first with whatever batch still fits its
    /// deadline would shrink batches exactly when throughput is needed most (and then every
    /// later image has less slack: a collapse); instead, images that would miss their
    /// deadline in the best batch are dropped (only with admission control on). Returns
    /// `(dropped, images, engine batch)`.
    fn best_throughput(&self, now: u64, l: &LatencyModel) -> Choice {
        let q = self.queue.len();
        let mut best = (
            0usize,
            q.min(self.spec.batch_sizes[0]),
            self.spec.batch_sizes[0],
        );
        let mut best_rate = -1.0;
        for &s in &self.spec.batch_sizes {
            let Some(lat) = l.predict_safe(s) else {
                continue;
            };
            let late = if self.spec.admission {
                self.queue.partition_point(|x| x.deadline < now + lat)
            } else {
                0
            };
            let n = s.min(q - late);
            let rate = n as f64 / lat.max(1) as f64;
            if n > 0 && rate > best_rate {
                best = (late, n, s);
                best_rate = rate;
            }
        }
        if best_rate < 0.0 && self.spec.admission {
            // Every queued image is past saving: drop all but the newest, which runs alone so
            // that the estimate that condemned them is measured again.
            return (q - 1, 1, self.spec.batch_sizes[0]);
        }
        best
    }

    /// The policy's decision for a free instance with latency model `l`: `Ok((dropped,
    /// images, engine batch))` to drop the `dropped` oldest (too late) and dispatch the next
    /// `images` now, or `Err(Some(t))` to wait until `t` (or an event), `Err(None)` to wait
    /// for an event.
    fn decide(&self, now: u64, l: &LatencyModel) -> Result<Choice, Option<u64>> {
        let q = self.queue.len();
        let oldest = self.queue.front().expect("decide needs a queued image");
        let sizes = &self.spec.batch_sizes;
        let take_all = |limit: usize| {
            let n = q.min(limit);
            (0, n, self.engine_for(n))
        };
        match self.spec.policy {
            Policy::Fixed(n) => {
                let due = oldest.arrival.saturating_add(self.spec.slo_ns);
                if q >= n || now >= due {
                    Ok(take_all(n))
                } else {
                    Err(Some(due))
                }
            }
            Policy::MaxDelay { max, delay_ns } => {
                let due = oldest.arrival.saturating_add(delay_ns);
                if q >= max || now >= due {
                    Ok(take_all(max))
                } else {
                    Err(Some(due))
                }
            }
            Policy::Slab => {
                if !l.known() {
                    // Nothing measured yet: the smallest plan, to learn from.
                    return Ok(take_all(sizes[0]));
                }
                let fits = |s: usize| {
                    l.predict_safe(s)
                        .is_some_and(|p| now + p <= oldest.deadline)
                };
                let s_max = sizes.iter().copied().filter(|&s| fits(s)).max();
                if s_max.is_none_or(|s| q >= s) {
                    return Ok(self.best_throughput(now, l));
                }
                let s_max = s_max.expect("checked above");
                // The batch this instance needs to keep up with its share of the arrivals.
                let share = self.healthy_instances().max(1) as f64;
                let gap = self.rate.gap(now).map(|g| g * share);
                let keeps_up = |s: usize| match (gap, l.predict(s)) {
                    (Some(g), Some(p)) => s as f64 * g >= p as f64,
                    _ => true,
                };
                let need = sizes
                    .iter()
                    .copied()
                    .filter(|&s| s <= s_max)
                    .find(|&s| keeps_up(s))
                    .unwrap_or(s_max);
                if q >= need {
                    return Ok((0, q, self.engine_for(q)));
                }
                // Wait for `need` images while the oldest still makes it with that batch.
                let latest = oldest
                    .deadline
                    .saturating_sub(l.predict_safe(need).unwrap_or(0));
                let filled = now as f64 + (need - q) as f64 * gap.unwrap_or(f64::INFINITY);
                if filled > latest as f64 || now >= latest {
                    Ok((0, q, self.engine_for(q)))
                } else {
                    Err(Some(latest))
                }
            }
        }
    }

    /// When the function wants [`dispatch`](Self::dispatch) called again without a new
    /// arrival or completion (a policy wait that ends, a queued image about to expire).
    pub fn wakeup(&self) -> Option<u64> {
        let expiry = if self.spec.admission {
            let fastest = self.fastest_single();
            self.queue
                .front()
                .zip(fastest)
                .map(|(q, f)| q.deadline.saturating_sub(f) + 1)
        } else {
            None
        };
        match (self.wake, expiry) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The batch on `instance` finished at `now`: learns its latency and counts its images.
    /// Returns the measured batch latency (ns).
    pub fn complete(&mut self, now: u64, instance: usize) -> u64 {
        let Some(r) = self
            .instances
            .get_mut(instance)
            .and_then(|i| i.running.take())
        else {
            return 0;
        };
        let measured = now.saturating_sub(r.dispatched);
        self.instances[instance]
            .latency
            .observe(r.engine_batch, measured);
        if let Some(p) = r.predicted {
            self.stats.prediction_error_sum +=
                (p as f64 - measured as f64).abs() / measured.max(1) as f64;
            self.stats.predicted_batches += 1;
        }
        self.stats.last.measured_ns = measured;
        self.stats.measured_sum_ns += measured;
        self.stats.completed_batches += 1;
        for a in r.arrivals {
            self.stats.answered += 1;
            let latency = now.saturating_sub(a);
            if latency <= self.spec.slo_ns {
                self.stats.within_slo += 1;
            }
            self.stats.latency.record(latency);
        }
        measured
    }

    /// Takes `instance` out of rotation (its engine failed or stalled); the caller answers
    /// its running batch `failed`. When it was the last instance, the queued images are
    /// returned for the caller to answer `failed` too.
    pub fn fail_instance(&mut self, instance: usize) -> Vec<Queued<T>> {
        let Some(inst) = self.instances.get_mut(instance) else {
            return Vec::new();
        };
        if !inst.healthy {
            return Vec::new();
        }
        inst.healthy = false;
        if let Some(r) = inst.running.take() {
            self.stats.failed += r.arrivals.len() as u64;
        }
        self.stats.instances_failed += 1;
        if self.healthy_instances() > 0 {
            return Vec::new();
        }
        self.stats.failed += self.queue.len() as u64;
        self.queue.drain(..).collect()
    }

    /// Nothing queued and no batch running.
    pub fn idle(&self) -> bool {
        self.queue.is_empty()
            && self.dropped.is_empty()
            && self.instances.iter().all(|i| i.running.is_none())
    }

    /// The running batch on `instance` ended without a result (its ingest failed): frees the
    /// instance, learns nothing, counts its images failed.
    pub fn abort(&mut self, instance: usize) {
        if let Some(r) = self
            .instances
            .get_mut(instance)
            .and_then(|i| i.running.take())
        {
            self.stats.failed += r.arrivals.len() as u64;
        }
    }

    /// `instance` moved to another compute share: its latency estimates are scaled by
    /// `factor(engine batch)` (new share's latency over the old's). Called at a batch
    /// boundary, while it runs nothing.
    pub fn reshare(&mut self, instance: usize, factor: impl Fn(usize) -> f64) {
        if let Some(i) = self.instances.get_mut(instance) {
            i.latency.rescale(factor);
        }
    }

    /// Whether `instance` runs a batch now.
    pub fn busy(&self, instance: usize) -> bool {
        self.instances
            .get(instance)
            .is_some_and(|i| i.running.is_some())
    }
}

/// `m`'s estimates carried over to `sizes` (a seed given for other sizes is interpolated).
fn rebase(m: &LatencyModel, sizes: &[usize]) -> LatencyModel {
    if m.sizes() == sizes {
        return m.clone();
    }
    let points: Vec<(usize, f64)> = m
        .sizes()
        .iter()
        .filter_map(|&s| m.predict(s).map(|p| (s, p as f64)))
        .collect();
    LatencyModel::seeded(sizes, &points)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    #[test]
    fn slab_waits_for_the_batch_the_rate_needs_but_never_past_the_oldest_slack() {
        let sizes = [1, 2, 4, 8];
        let linear: Vec<(usize, f64)> = sizes.iter().map(|&b| (b, (10 + b) as f64 * 1e6)).collect();
        let spec = FunctionSpec {
            name: "f".into(),
            model: 1,
            slo_ns: 50 * MS,
            batch_sizes: sizes.to_vec(),
            policy: Policy::Slab,
            admission: true,
            queue_limit: 100,
        };
        let mut f: Function<u32> = Function::new(spec, vec![LatencyModel::seeded(&sizes, &linear)]);
        // One image every 2 ms: batch 4 (14 ms for 8 ms of arrivals) cannot keep up, batch 8
        // (18 ms for 16 ms) can.
        let t0 = 1000 * MS;
        f.rate = Rate {
            last: Some(t0 - 2 * MS),
            mean_gap: Some(2.0 * MS as f64),
        };
        f.offer(t0, 0).unwrap();
        assert!(f.dispatch(t0).is_none(), "waits for more images");
        let latest = t0 + 50 * MS - 18 * MS;
        assert_eq!(f.wakeup(), Some(latest));
        for i in 1..8 {
            f.offer(t0 + 2 * MS * i, i as u32).unwrap();
        }
        let b = f.dispatch(t0 + 14 * MS).expect("8 queued: goes");
        assert_eq!((b.items.len(), b.engine_batch), (8, 8));
        f.complete(t0 + 32 * MS, 0);
        // A lone image whose slack runs out goes with what there is.
        f.offer(t0 + 34 * MS, 9).unwrap();
        assert!(f.dispatch(t0 + 34 * MS).is_none());
        let b = f.dispatch(t0 + 66 * MS).expect("slack ran out");
        assert_eq!((b.items.len(), b.engine_batch), (1, 1));
    }
}
