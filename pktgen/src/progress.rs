//! The once-a-second progress line on stderr.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

/// Prints frames, images and the current rate every second.
#[derive(Debug)]
pub struct Progress {
    enabled: bool,
    tty: bool,
    last: Instant,
    last_frames: u64,
    last_bytes: u64,
    printed: bool,
}

impl Progress {
    /// Enabled if `forced` or stderr is a terminal.
    pub fn new(forced: bool) -> Self {
        let tty = std::io::stderr().is_terminal();
        Progress {
            enabled: forced || tty,
            tty,
            last: Instant::now(),
            last_frames: 0,
            last_bytes: 0,
            printed: false,
        }
    }

    /// Called per frame with running totals; prints at most once a second.
    pub fn tick(&mut self, frames: u64, images: u64, bytes: u64) {
        // Reading the clock every frame is cheap next to building the frame, but skip it
        // for most frames anyway.
        if !self.enabled || frames & 63 != 0 {
            return;
        }
        let dt = self.last.elapsed();
        if dt < Duration::from_secs(1) {
            return;
        }
        let secs = dt.as_secs_f64();
        let line = format!(
            "frames {frames}  images {images}  {}  {}",
            packet_rate((frames - self.last_frames) as f64 / secs),
            bit_rate((bytes - self.last_bytes) as f64 * 8.0 / secs)
        );
        let mut err = std::io::stderr().lock();
        // Progress output is best effort: a closed stderr must not stop the run.
        let _ = if self.tty {
            write!(err, "\r{line}\x1b[K")
        } else {
            writeln!(err, "{line}")
        };
        let _ = err.flush();
        self.printed = true;
        self.last = Instant::now();
        self.last_frames = frames;
        self.last_bytes = bytes;
    }

    /// Ends the progress line so that later output starts on a fresh line.
    pub fn finish(&mut self) {
        if self.printed && self.tty {
            let _ = writeln!(std::io::stderr());
        }
    }
}

/// "1.234 Mpps", "12.300 kpps" or "480 pps".
pub fn packet_rate(pps: f64) -> String {
    scaled(pps, "pps")
}

/// "9.412 Gbit/s", "3.100 Mbit/s", ...
pub fn bit_rate(bps: f64) -> String {
    scaled(bps, "bit/s")
}

fn scaled(v: f64, unit: &str) -> String {
    match v {
        v if v >= 1e9 => format!("{:.3} G{unit}", v / 1e9),
        v if v >= 1e6 => format!("{:.3} M{unit}", v / 1e6),
        v if v >= 1e3 => format!("{:.3} k{unit}", v / 1e3),
        v => format!("{v:.0} {unit}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_are_scaled() {
        assert_eq!(packet_rate(1_234_000.0), "1.234 Mpps");
        assert_eq!(packet_rate(480.0), "480 pps");
        assert_eq!(bit_rate(9.4e9), "9.400 Gbit/s");
    }
}
