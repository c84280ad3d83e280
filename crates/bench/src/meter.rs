//! What the bench threads publish and how the main thread turns it into figures.
//!
//! The rx and feeder threads keep their counts in locals and store them in a meter every
//! few hundred iterations (atomics touched on every packet would cost more than the work
//! measured); the main thread samples the meters, and the threads' scheduler statistics,
//! and computes rates between two samples.

use netml_dpdk::rdtsc;
use netml_pipeline::stats::{Shared, WorkerCounters};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// Published by the rx thread every few hundred polls.
#[derive(Default)]
pub(super) struct RxMeter {
    packets: AtomicU64,
    /// TSC cycles of loop iterations that received packets.
    busy: AtomicU64,
    polls: AtomicU64,
    busy_polls: AtomicU64,
    /// Iterations with packets left out as preempted, and their packets.
    preempted: AtomicU64,
    preempted_packets: AtomicU64,
}

/// Published by the feeder every few hundred iterations.
#[derive(Default)]
pub(super) struct FeedMeter {
    pub(super) packets: AtomicU64,
    /// TSC cycles of iterations that recycled images or enqueued packets.
    pub(super) busy: AtomicU64,
    pub(super) images: AtomicU64,
    /// Enqueue attempts that found the ring full.
    pub(super) ring_full: AtomicU64,
}

/// The rx loop's observer: TSC cycles of the iterations that received packets. An
/// iteration longer than `preempted` cycles (hundreds of times a burst's normal cost) was
/// interrupted by the scheduler; it is counted apart and left out of the figures.
pub(super) fn rx_observer(meter: Arc<RxMeter>, preempted: u64) -> impl FnMut(usize) {
    let (mut packets, mut busy, mut polls, mut busy_polls) = (0u64, 0u64, 0u64, 0u64);
    let (mut skipped, mut skipped_packets) = (0u64, 0u64);
    let mut last = rdtsc();
    move |n| {
        let now = rdtsc();
        polls += 1;
        if n > 0 {
            let dt = now.wrapping_sub(last);
            if dt < preempted {
                packets += n as u64;
                busy += dt;
                busy_polls += 1;
            } else {
                skipped += 1;
                skipped_packets += n as u64;
            }
        }
        last = now;
        if polls & 0xff == 0 {
            meter.packets.store(packets, Ordering::Relaxed);
            meter.busy.store(busy, Ordering::Relaxed);
            meter.polls.store(polls, Ordering::Relaxed);
            meter.busy_polls.store(busy_polls, Ordering::Relaxed);
            meter.preempted.store(skipped, Ordering::Relaxed);
            meter
                .preempted_packets
                .store(skipped_packets, Ordering::Relaxed);
        }
    }
}

/// Everything at one moment.
#[derive(Clone)]
pub(super) struct Sample {
    at: Instant,
    tsc: u64,
    rx_packets: u64,
    rx_busy: u64,
    pub(super) rx_polls: u64,
    rx_busy_polls: u64,
    rx_preempted: u64,
    rx_preempted_packets: u64,
    feed_packets: u64,
    feed_busy: u64,
    feed_ring_full: u64,
    pub(super) worker: WorkerCounters,
    /// Scheduler statistics of the rx and feeder threads.
    rx_sched: SchedStat,
    feed_sched: SchedStat,
    /// Sum and number of ring occupancy samples.
    ring_sum: u64,
    ring_n: u64,
}

/// Where a [`Sample`] is read from.
pub(super) struct Probes {
    pub(super) rx: Arc<RxMeter>,
    pub(super) feed: Arc<FeedMeter>,
    pub(super) shared: Arc<Shared>,
    /// The rx and feeder threads' `/proc/<pid>/task/<tid>` directories.
    pub(super) rx_dir: Option<PathBuf>,
    pub(super) feed_dir: Option<PathBuf>,
}

impl Probes {
    /// Reads everything now; the ring occupancy is sampled by the caller.
    pub(super) fn sample(&self, ring_sum: u64, ring_n: u64) -> Sample {
        let (rx, feed) = (&self.rx, &self.feed);
        Sample {
            at: Instant::now(),
            tsc: rdtsc(),
            rx_packets: rx.packets.load(Ordering::Relaxed),
            rx_busy: rx.busy.load(Ordering::Relaxed),
            rx_polls: rx.polls.load(Ordering::Relaxed),
            rx_busy_polls: rx.busy_polls.load(Ordering::Relaxed),
            rx_preempted: rx.preempted.load(Ordering::Relaxed),
            rx_preempted_packets: rx.preempted_packets.load(Ordering::Relaxed),
            feed_packets: feed.packets.load(Ordering::Relaxed),
            feed_busy: feed.busy.load(Ordering::Relaxed),
            feed_ring_full: feed.ring_full.load(Ordering::Relaxed),
            worker: *self.shared.workers[0].lock().expect("stats lock"),
            rx_sched: SchedStat::read(self.rx_dir.as_deref()),
            feed_sched: SchedStat::read(self.feed_dir.as_deref()),
            ring_sum,
            ring_n,
        }
    }
}

/// A thread's `/proc/<pid>/task/<tid>/schedstat`: nanoseconds on a CPU and waiting for one.
#[derive(Clone, Copy, Default)]
struct SchedStat {
    run_ns: u64,
    wait_ns: u64,
}

impl SchedStat {
    /// Reads it for the thread whose `/proc/<pid>/task/<tid>` directory is `dir`.
    fn read(dir: Option<&Path>) -> SchedStat {
        let text = dir.and_then(|d| std::fs::read_to_string(d.join("schedstat")).ok());
        let mut it = text
            .as_deref()
            .unwrap_or("")
            .split_whitespace()
            .map(|v| v.parse::<u64>().unwrap_or(0));
        SchedStat {
            run_ns: it.next().unwrap_or(0),
            wait_ns: it.next().unwrap_or(0),
        }
    }
}

/// The rx thread's figures over the 100-ms intervals in which it did not wait for a CPU
/// (other processes on a small machine take it away now and then).
#[derive(Default)]
pub(super) struct Quiet {
    packets: u64,
    busy: u64,
    wall_s: f64,
    total_s: f64,
}

impl Quiet {
    /// Less than this fraction of an interval spent waiting for a CPU counts as undisturbed
    /// (the sampling thread itself wakes up briefly every interval).
    const MAX_WAIT: f64 = 0.005;

    pub(super) fn add(&mut self, a: &Sample, b: &Sample) {
        let wall_s = b.at.duration_since(a.at).as_secs_f64();
        self.total_s += wall_s;
        let wait = b.rx_sched.wait_ns.saturating_sub(a.rx_sched.wait_ns) as f64 / 1e9;
        if wait <= Self::MAX_WAIT * wall_s {
            self.packets += b.rx_packets.saturating_sub(a.rx_packets);
            self.busy += b.rx_busy.saturating_sub(a.rx_busy);
            self.wall_s += wall_s;
        }
    }

    pub(super) fn coverage(&self) -> f64 {
        if self.total_s > 0.0 {
            self.wall_s / self.total_s
        } else {
            0.0
        }
    }

    /// Mpps and ns/packet of the rx core in those intervals.
    pub(super) fn figures(&self, hz: f64) -> Option<(f64, f64)> {
        (self.packets > 0 && self.busy > 0).then(|| {
            let s = self.busy as f64 / hz;
            (self.packets as f64 / s / 1e6, s * 1e9 / self.packets as f64)
        })
    }
}

/// Rates between two samples.
pub(super) struct Rates {
    pub(super) wall_s: f64,
    /// Per rx core: packets over the rx thread's own time, its loop iterations that
    /// received packets (TSC), less those the scheduler interrupted.
    pub(super) mpps: f64,
    pub(super) ns_per_packet: f64,
    pub(super) images_per_s: f64,
    pub(super) rx_busy: f64,
    /// Fraction of the wall time the rx thread was on a CPU, and waiting for one.
    pub(super) rx_oncpu: f64,
    pub(super) rx_wait: f64,
    /// Iterations left out as preempted, and their packets.
    pub(super) rx_preempted: u64,
    pub(super) rx_preempted_packets: u64,
    pub(super) pkts_per_poll: f64,
    pub(super) wall_mpps: f64,
    pub(super) wall_images_per_s: f64,
    pub(super) feed_mpps: f64,
    pub(super) feed_ns_per_packet: f64,
    pub(super) feed_busy: f64,
    pub(super) feed_oncpu: f64,
    pub(super) feed_ring_full: u64,
    pub(super) ring_fill: f64,
}

impl Rates {
    pub(super) fn between(
        a: &Sample,
        b: &Sample,
        hz: f64,
        frags_per_image: f64,
        ring: u32,
    ) -> Rates {
        let wall_s = b.at.duration_since(a.at).as_secs_f64().max(1e-9);
        let wall_cycles = b.tsc.saturating_sub(a.tsc).max(1) as f64;
        let pk = b.rx_packets.saturating_sub(a.rx_packets) as f64;
        let all_pk = pk
            + b.rx_preempted_packets
                .saturating_sub(a.rx_preempted_packets) as f64;
        let busy = b.rx_busy.saturating_sub(a.rx_busy) as f64;
        let run_ns = b.rx_sched.run_ns.saturating_sub(a.rx_sched.run_ns) as f64;
        let wait_ns = b.rx_sched.wait_ns.saturating_sub(a.rx_sched.wait_ns) as f64;
        let busy_s = busy / hz;
        let fpk = b.feed_packets.saturating_sub(a.feed_packets) as f64;
        let fbusy = b.feed_busy.saturating_sub(a.feed_busy) as f64;
        let mpps = if busy_s > 0.0 { pk / busy_s / 1e6 } else { 0.0 };
        let images = b
            .worker
            .verifier
            .images_completed
            .saturating_sub(a.worker.verifier.images_completed) as f64;
        let ring_n = b.ring_n.saturating_sub(a.ring_n);
        Rates {
            wall_s,
            mpps,
            ns_per_packet: if pk > 0.0 { busy_s * 1e9 / pk } else { 0.0 },
            images_per_s: mpps * 1e6 / frags_per_image,
            rx_busy: busy / wall_cycles,
            rx_oncpu: run_ns / 1e9 / wall_s,
            rx_wait: wait_ns / 1e9 / wall_s,
            rx_preempted: b.rx_preempted.saturating_sub(a.rx_preempted),
            rx_preempted_packets: b
                .rx_preempted_packets
                .saturating_sub(a.rx_preempted_packets),
            pkts_per_poll: pk / (b.rx_busy_polls.saturating_sub(a.rx_busy_polls)).max(1) as f64,
            wall_mpps: all_pk / wall_s / 1e6,
            wall_images_per_s: images / wall_s,
            feed_mpps: fpk / wall_s / 1e6,
            feed_ns_per_packet: if fpk > 0.0 {
                fbusy / hz * 1e9 / fpk
            } else {
                0.0
            },
            feed_busy: fbusy / wall_cycles,
            feed_oncpu: b.feed_sched.run_ns.saturating_sub(a.feed_sched.run_ns) as f64
                / 1e9
                / wall_s,
            feed_ring_full: b.feed_ring_full.saturating_sub(a.feed_ring_full),
            ring_fill: if ring_n > 0 {
                b.ring_sum.saturating_sub(a.ring_sum) as f64 / ring_n as f64 / f64::from(ring)
            } else {
                0.0
            },
        }
    }

    /// The once-a-second progress line.
    pub(super) fn live(
        &self,
        elapsed: f64,
        warming: bool,
        w: &WorkerCounters,
        polls: u64,
    ) -> String {
        format!(
            "[{elapsed:6.1}s{}] rx {:.2} Mpps/core {:.1} ns/pkt {:.0} img/s/core (busy {:.0}%, on CPU {:.0}%, {:.1} pkts/poll, {} polls) | wall {:.2} Mpps {:.0} img/s | feeder {:.2} Mpps {:.1} ns/pkt busy {:.0}% | ring {:.0}% full | invalid {} dropped {} backpressure {}",
            if warming { " warm-up" } else { "" },
            self.mpps,
            self.ns_per_packet,
            self.images_per_s,
            self.rx_busy * 100.0,
            self.rx_oncpu * 100.0,
            self.pkts_per_poll,
            polls,
            self.wall_mpps,
            self.wall_images_per_s,
            self.feed_mpps,
            self.feed_ns_per_packet,
            self.feed_busy * 100.0,
            self.ring_fill * 100.0,
            w.rx.invalid(),
            w.verifier.dropped(),
            w.backpressure_images,
        )
    }
}
