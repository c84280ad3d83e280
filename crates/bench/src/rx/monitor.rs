//! The main thread while the rx worker and the feeder run: the warm-up and the measured
//! window, sampled every 100 ms and printed every second.

use crate::meter::{Probes, Quiet, Rates, Sample};
use netml_dpdk::Ring;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// The measured window, from the end of the warm-up to the last sample.
pub(super) struct Window {
    pub(super) begin: Sample,
    pub(super) end: Sample,
    pub(super) quiet: Quiet,
    pub(super) interrupted: bool,
}

/// This thread while the others run: it samples every 100 ms (rarely, not to take a CPU
/// from the two busy threads) and prints every second.
pub(super) struct Monitor<'a> {
    probes: &'a Probes,
    ring: &'a Ring,
    stop: &'a AtomicBool,
    hz: f64,
    frags: f64,
    ring_size: u32,
    started: Instant,
    /// Seconds since `started` at the last sample.
    elapsed: f64,
    /// Sum and number of ring occupancy samples.
    ring_sum: u64,
    ring_n: u64,
    /// The last sample, and the last one printed.
    tick: Sample,
    prev: Sample,
    last_print: Instant,
    /// Where the measured window begins; none while warming up.
    measure_from: Option<Sample>,
    quiet: Quiet,
    interrupted: bool,
}

impl<'a> Monitor<'a> {
    pub(super) fn new(
        probes: &'a Probes,
        ring: &'a Ring,
        stop: &'a AtomicBool,
        hz: f64,
        frags: usize,
        ring_size: u32,
    ) -> Monitor<'a> {
        let started = Instant::now();
        let prev = probes.sample(0, 0);
        Monitor {
            probes,
            ring,
            stop,
            hz,
            frags: frags as f64,
            ring_size,
            started,
            elapsed: 0.0,
            ring_sum: 0,
            ring_n: 0,
            tick: prev.clone(),
            prev,
            last_print: Instant::now(),
            measure_from: None,
            quiet: Quiet::default(),
            interrupted: false,
        }
    }

    /// Runs until `until` seconds have passed, where the measured window begins; false
    /// when a signal stopped the run.
    pub(super) fn warm_up(&mut self, until: f64) -> bool {
        if until == 0.0 {
            self.measure_from = Some(self.tick.clone());
            return true;
        }
        while let Some(now) = self.step() {
            let warm = self.elapsed >= until;
            if warm {
                self.measure_from = Some(now.clone());
            }
            self.tick = now;
            self.print_due();
            if warm {
                return true;
            }
        }
        false
    }

    /// Runs until `until` seconds have passed, keeping the undisturbed intervals apart.
    pub(super) fn measure(&mut self, until: f64) {
        while self.elapsed < until {
            let Some(now) = self.step() else {
                return;
            };
            self.quiet.add(&self.tick, &now);
            self.tick = now;
            self.print_due();
        }
    }

    /// Sleeps 100 ms and samples; none when a signal asked to stop.
    fn step(&mut self) -> Option<Sample> {
        std::thread::sleep(Duration::from_millis(100));
        self.ring_sum += u64::from(self.ring.count());
        self.ring_n += 1;
        self.elapsed = self.started.elapsed().as_secs_f64();
        if self.stop.load(Ordering::Relaxed) {
            self.interrupted = true;
            return None;
        }
        Some(self.probes.sample(self.ring_sum, self.ring_n))
    }

    /// Prints the rates since the last line printed, once a second.
    fn print_due(&mut self) {
        if self.last_print.elapsed() >= Duration::from_secs(1) {
            let cur = self.tick.clone();
            let r = Rates::between(&self.prev, &cur, self.hz, self.frags, self.ring_size);
            let polls = cur.rx_polls - self.prev.rx_polls;
            let warming = self.measure_from.is_none();
            eprintln!("{}", r.live(self.elapsed, warming, &cur.worker, polls));
            self.prev = cur;
            self.last_print = Instant::now();
        }
    }

    /// The last sample closes the window (which begins at the last line printed if the
    /// run was stopped during the warm-up).
    pub(super) fn finish(mut self) -> Window {
        let end = self.probes.sample(self.ring_sum, self.ring_n);
        self.quiet.add(&self.tick, &end);
        Window {
            begin: self.measure_from.unwrap_or(self.prev),
            end,
            quiet: self.quiet,
            interrupted: self.interrupted,
        }
    }
}
