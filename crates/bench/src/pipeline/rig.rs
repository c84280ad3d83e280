//! The harness every live pipeline case runs in (`bench pipeline`, `bench serve`): a fresh
//! `Pipeline` on its own net_ring port, the paced sender and the result reader on their own
//! threads, a warm-up and a measured window sampled at a fixed interval, then stop, drain
//! and the mbuf leak check.

use super::drain::{Answer, Drain, DrainStats};
use super::feed::{FeedStats, Feeder, Stream};
use netml_dpdk::{ring_port, Mbuf, Mempool, Ring};
use netml_pipeline::config::Config;
use netml_pipeline::report::Report;
use netml_pipeline::Pipeline;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Capacity of the rx ring (a NIC's rx descriptor ring) and of the result ring.
const RING: u32 = 4096;

/// A running case.
pub(crate) struct Rig {
    rx: Ring,
    /// The pipeline under test.
    pub(crate) p: Pipeline,
    /// Its mempool (the sender allocates from it).
    pub(crate) pool: Mempool,
    /// What the sender and the reader publish.
    pub(crate) feed: Arc<FeedStats>,
    pub(crate) drained: Arc<DrainStats>,
    stop_feed: Arc<AtomicBool>,
    stop_drain: Arc<AtomicBool>,
    feed_thread: JoinHandle<()>,
    drain_thread: JoinHandle<Vec<Answer>>,
}

/// What a case leaves after it stopped.
pub(crate) struct Done {
    /// The pipeline's final counters.
    pub(crate) report: Report,
    /// Every result read, in the order read.
    pub(crate) answers: Vec<Answer>,
    /// Mbufs not back in the pool after stop and drain.
    pub(crate) leaked: i64,
}

impl Rig {
    /// Starts the pipeline of `cfg` on port `name` (unique in the run: the EAL outlives the
    /// case), the sender of `streams` and the result reader (`crc32`: what good results
    /// must echo; none when the sink does not check).
    pub(crate) fn start(
        name: &str,
        cfg: &Config,
        streams: Vec<Stream>,
        crc32: Option<u32>,
        epoch: Instant,
    ) -> Result<Rig, String> {
        let rx = Ring::new(&format!("{name}_rx"), RING).map_err(|e| format!("rx ring: {e}"))?;
        let tx = Ring::new(&format!("{name}_tx"), RING).map_err(|e| format!("tx ring: {e}"))?;
        let port = ring_port(name, &[&rx], &[&tx]).map_err(|e| e.to_string())?;
        let p = Pipeline::start(cfg, port, None)?;
        let pool = p.mempool().clone();
        let (stop_feed, stop_drain) = (Arc::default(), Arc::default());
        let feed = Arc::new(FeedStats::new(streams.len()));
        let drained = Arc::new(DrainStats::default());
        let feeder = Feeder {
            streams,
            pool: pool.clone(),
            ring: rx.clone(),
            epoch,
            stop: Arc::clone(&stop_feed),
            stats: feed.clone(),
        };
        let drain = Drain {
            ring: tx,
            crc32,
            epoch,
            stop: Arc::clone(&stop_drain),
            stats: drained.clone(),
        };
        let feed_thread = std::thread::Builder::new()
            .name("netml-bench-feed".into())
            .spawn(move || feeder.run())
            .map_err(|e| format!("spawning the sender: {e}"))?;
        let drain_thread = std::thread::Builder::new()
            .name("netml-bench-drain".into())
            .spawn(move || drain.run())
            .map_err(|e| format!("spawning the result reader: {e}"))?;
        Ok(Rig {
            rx,
            p,
            pool,
            feed,
            drained,
            stop_feed,
            stop_drain,
            feed_thread,
            drain_thread,
        })
    }

    /// Runs `warmup` then `seconds` (less when `interrupted`), taking a `sample` every
    /// `every` and handing each to `tick(seconds since the start, previous, this one)`;
    /// returns the samples at the start and the end of the measured window.
    pub(crate) fn measure<S: Clone>(
        &self,
        warmup: f64,
        seconds: f64,
        every: f64,
        interrupted: &AtomicBool,
        sample: impl Fn(&Rig) -> S,
        mut tick: impl FnMut(f64, &S, &S),
    ) -> (S, S) {
        let started = Instant::now();
        let mut last = sample(self);
        let mut begin = None;
        let until = warmup + seconds;
        while started.elapsed().as_secs_f64() < until && !interrupted.load(Ordering::Relaxed) {
            let t = started.elapsed().as_secs_f64();
            let next = if t < warmup { warmup } else { until }.min(t + every);
            std::thread::sleep(Duration::from_secs_f64((next - t).max(0.0)));
            let now = sample(self);
            tick(started.elapsed().as_secs_f64(), &last, &now);
            if begin.is_none() && started.elapsed().as_secs_f64() >= warmup {
                begin = Some(now.clone());
            }
            last = now;
        }
        let end = sample(self);
        (begin.unwrap_or_else(|| end.clone()), end)
    }

    /// Stops the sender, lets the pipeline take what is on the ring and answer it, stops it,
    /// reads the last results and counts the mbufs that did not come back.
    pub(crate) fn finish(mut self) -> Result<Done, String> {
        self.stop_feed.store(true, Ordering::Relaxed);
        let _ = self.feed_thread.join();
        let quiet = Instant::now();
        while self.rx.count() > 0 && quiet.elapsed() < Duration::from_secs(2) {
            std::thread::sleep(Duration::from_millis(5));
        }
        std::thread::sleep(Duration::from_millis(50));
        let report = self.p.stop();
        self.stop_drain.store(true, Ordering::Relaxed);
        let answers = self
            .drain_thread
            .join()
            .map_err(|_| "result reader panicked")?;
        let mut left = Vec::new();
        while self.rx.dequeue_burst(&mut left, 256) > 0 {
            Mbuf::free_bulk(&mut left);
        }
        let leaked = i64::from(self.pool.in_use()) - i64::from(self.p.mempool_in_use_at_start());
        Ok(Done {
            report,
            answers,
            leaked,
        })
    }
}

/// Nanoseconds from `epoch` to `at` (the clock of the sender timestamps and of the reader).
pub(crate) fn since_epoch(epoch: Instant, at: Instant) -> u64 {
    at.saturating_duration_since(epoch).as_nanos() as u64
}

/// Nearest-rank percentile of sorted values (0 when there are none).
pub(crate) fn percentile(sorted: &[u64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i] as f64
}

/// CPU time (ns on a CPU, `/proc/.../schedstat`) of this process's threads whose name
/// starts with one of `prefixes` (the pipeline publishes only its own two threads' CPU).
pub(crate) fn threads_run_ns(prefixes: &[&str]) -> u64 {
    schedstat(prefixes, 0)
}

/// Time (ns) the same threads were ready to run but waited for a CPU: on a small shared
/// machine, what a thread's wall-clock figures include beside its own work.
pub(crate) fn threads_wait_ns(prefixes: &[&str]) -> u64 {
    schedstat(prefixes, 1)
}

/// Field `field` of `/proc/self/task/*/schedstat`, summed over the threads named
/// `prefixes*`.
fn schedstat(prefixes: &[&str], field: usize) -> u64 {
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return 0;
    };
    dir.flatten()
        .filter(|e| {
            std::fs::read_to_string(e.path().join("comm"))
                .is_ok_and(|c| prefixes.iter().any(|p| c.starts_with(p)))
        })
        .filter_map(|e| {
            let text = std::fs::read_to_string(e.path().join("schedstat")).ok()?;
            text.split_whitespace().nth(field)?.parse::<u64>().ok()
        })
        .sum()
}
