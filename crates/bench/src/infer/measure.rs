//! Timing one case (model x batch x precision x threads): warm-up, timed runs, latency
//! percentiles.

use crate::engines::{open_engine_threads, random_input};
use netml_infer::engine::Backend;
use netml_infer::plan::Precision;
use std::io::{IsTerminal, Write};
use std::path::Path;
use std::time::{Duration, Instant};

/// What a case is and how long to measure it.
pub(super) struct Plan<'a> {
    pub model: &'a Path,
    pub backend: Backend,
    pub batch: usize,
    pub precision: Precision,
    /// Threads the engine computes on.
    pub threads: usize,
    pub warmup: usize,
    pub runs: usize,
    /// Stop taking runs after this much measured time (at least one run is taken).
    pub cap: Option<Duration>,
    pub seed: u64,
    /// `(i, n)`: the case's number, for the progress line.
    pub index: (usize, usize),
}

/// Latency statistics of the timed runs, in ms per batch.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Stats {
    pub runs: usize,
    /// The fastest run: on a shared machine the closest to the engine's own speed.
    pub min: f64,
    pub mean: f64,
    pub p50: f64,
    pub p99: f64,
    pub max: f64,
}

impl Stats {
    /// Statistics of `ms` (not empty); percentiles by nearest rank, so each is a time that
    /// was really measured.
    pub(super) fn of(ms: &[f64]) -> Stats {
        let mut v = ms.to_vec();
        v.sort_by(f64::total_cmp);
        let rank = |q: f64| v[((q * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1];
        Stats {
            runs: v.len(),
            min: v[0],
            mean: v.iter().sum::<f64>() / v.len() as f64,
            p50: rank(0.50),
            p99: rank(0.99),
            max: v[v.len() - 1],
        }
    }
}

/// A measured case.
#[derive(Debug, Clone)]
pub(super) struct Measured {
    /// The engine's own name, e.g. `cpu (tract)`.
    pub engine: String,
    pub load_ms: f64,
    pub stats: Stats,
    /// True when `--seconds-per-case` ended the runs early.
    pub capped: bool,
    /// Runs during which the thread waited for a CPU (another process had it): on a small
    /// shared machine these make the tail, not the engine. `None`: no schedstat.
    pub waited: Option<usize>,
    /// Statistics of the runs that never waited, when there are any.
    pub quiet: Option<Stats>,
    /// The last run's output (what `--compare-ort` checks ONNX Runtime's against).
    pub output: netml_infer::Output,
}

/// Another engine run beside ours, batch for batch (`--compare-ort`), so that both see the
/// same load on a shared machine.
pub(super) trait Beside {
    /// Called once, before the first run, with the input every run is given (`shape` is
    /// `[batch, C, H, W]`).
    fn start(&mut self, shape: &[usize], input: &[f32]);
    /// Called after each of our runs, warm-up and timed, outside our timing.
    fn step(&mut self);
}

/// Opens the engine and times `runs` batches after `warmup` untimed ones, showing progress
/// on stderr; `beside` runs one batch after each of ours.
pub(super) fn measure(p: &Plan, mut beside: Option<&mut dyn Beside>) -> Result<Measured, String> {
    let (mut engine, load_ms) =
        open_engine_threads(p.model, p.backend, p.batch, p.precision, p.threads)?;
    let per: usize = engine.input_shape().iter().product();
    let input = random_input(p.seed, per * p.batch);
    let input_shape = [&[p.batch], engine.input_shape()].concat();
    if let Some(b) = beside.as_deref_mut() {
        b.start(&input_shape, &input);
    }
    let mut progress = Progress::new(p);
    for _ in 0..p.warmup {
        engine
            .run(&input, p.batch)
            .map_err(|e| format!("inference: {e}"))?;
        if let Some(b) = beside.as_deref_mut() {
            b.step();
        }
    }
    let mut ms = Vec::with_capacity(p.runs);
    let mut quiet = Vec::with_capacity(p.runs);
    let mut waited = 0;
    let sched = WaitClock::open();
    let start = Instant::now();
    let mut capped = false;
    let mut last = None;
    while ms.len() < p.runs.max(1) {
        let w0 = sched.as_ref().and_then(WaitClock::read);
        let t = Instant::now();
        let out = engine
            .run(&input, p.batch)
            .map_err(|e| format!("inference: {e}"))?;
        let dt = t.elapsed().as_secs_f64() * 1e3;
        let w1 = sched.as_ref().and_then(WaitClock::read);
        ms.push(dt);
        match w0.zip(w1) {
            Some((a, b)) if b > a => waited += 1,
            Some(_) => quiet.push(dt),
            None => {}
        }
        // Dropped outside the timed region, like a caller consuming the result would.
        last = Some(out);
        if let Some(b) = beside.as_deref_mut() {
            b.step();
        }
        progress.update(ms.len());
        if p.cap.is_some_and(|c| start.elapsed() >= c) && ms.len() < p.runs {
            capped = true;
            break;
        }
    }
    Ok(Measured {
        engine: engine.name().to_string(),
        load_ms,
        stats: Stats::of(&ms),
        capped,
        waited: sched.is_some().then_some(waited),
        quiet: (!quiet.is_empty()).then(|| Stats::of(&quiet)),
        output: last.expect("at least one run"),
    })
}

/// The calling thread's time spent waiting for a CPU (ns), from
/// `/proc/thread-self/schedstat`, read with `pread` so a sample costs one syscall.
struct WaitClock(std::fs::File);

impl WaitClock {
    fn open() -> Option<WaitClock> {
        let c = WaitClock(std::fs::File::open("/proc/thread-self/schedstat").ok()?);
        c.read().map(|_| c)
    }

    fn read(&self) -> Option<u64> {
        use std::os::unix::fs::FileExt;
        let mut buf = [0u8; 96];
        let n = self.0.read_at(&mut buf, 0).ok()?;
        let text = std::str::from_utf8(&buf[..n]).ok()?;
        text.split_whitespace().nth(1)?.parse().ok()
    }
}

/// The live `case i/n ... runs done` line: rewritten in place (at most 10 times a second)
/// on a terminal, absent otherwise so logs stay short.
struct Progress {
    label: String,
    runs: usize,
    live: bool,
    last: Instant,
}

impl Progress {
    fn new(p: &Plan) -> Progress {
        let label = format!(
            "case {}/{}: {} batch {} {} {} threads",
            p.index.0,
            p.index.1,
            super::model_name(p.model),
            p.batch,
            p.precision,
            p.threads
        );
        let live = std::io::stderr().is_terminal();
        if live {
            eprint!("\r\x1b[K{label}: warm-up ({} runs)", p.warmup);
        }
        Progress {
            label,
            runs: p.runs,
            live,
            last: Instant::now(),
        }
    }

    fn update(&mut self, done: usize) {
        if self.live && self.last.elapsed() >= Duration::from_millis(100) {
            self.last = Instant::now();
            eprint!("\r\x1b[K{}: {done}/{} runs", self.label, self.runs);
            let _ = std::io::stderr().flush();
        }
    }
}

/// Clears the line, also when the case ends in an error.
impl Drop for Progress {
    fn drop(&mut self) {
        if self.live {
            eprint!("\r\x1b[K");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Stats, WaitClock};

    #[test]
    fn wait_clock_reads_a_monotonic_counter() {
        let c = WaitClock::open().expect("/proc/thread-self/schedstat");
        let a = c.read().unwrap();
        std::thread::yield_now();
        assert!(c.read().unwrap() >= a);
    }

    #[test]
    fn percentiles_are_nearest_rank_measured_values() {
        let ms: Vec<f64> = (1..=200).rev().map(f64::from).collect();
        let s = Stats::of(&ms);
        assert_eq!((s.runs, s.p50, s.p99, s.max), (200, 100.0, 198.0, 200.0));
        assert_eq!((s.mean, s.min), (100.5, 1.0));
        let one = Stats::of(&[2.5]);
        assert_eq!((one.p50, one.p99, one.max, one.mean), (2.5, 2.5, 2.5, 2.5));
        let s = Stats::of(&[1.0, 1.0, 1.0, 9.0]);
        assert_eq!((s.p50, s.p99), (1.0, 9.0));
    }
}
