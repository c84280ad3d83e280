//! Pacing: when each frame goes out, and the timestamp it carries.
//!
//! One virtual clock serves both outputs. Live, the pacer sleeps (then spins, for
//! sub-millisecond accuracy) until a frame's slot and stamps it with the wall clock; for
//! pcap files nothing waits and the slot time itself, offset from the wall-clock start,
//! becomes the record timestamp.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Spacing of pcap records when no rate is given: 1 µs (1 Mpps), the pcap resolution.
pub const UNPACED_PCAP_NS: f64 = 1_000.0;
/// A live sender this far behind its schedule gives up on catching up, rather than sending
/// a burst at line rate after a stall.
const MAX_LAG: Duration = Duration::from_millis(10);

/// Requested rate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Rate {
    /// As fast as possible.
    Unlimited,
    /// Frames per second.
    Pps(f64),
    /// Megabits per second of Ethernet frame bytes (FCS, preamble and gap not counted,
    /// as tcpreplay counts them).
    Mbps(f64),
    /// Images per second; an image's frames are spread evenly over its slot.
    Ips(f64),
}

impl Rate {
    /// Nanoseconds a frame of `len` bytes, from an image of `image_frames` frames, takes.
    pub fn cost_ns(&self, len: usize, image_frames: u32) -> f64 {
        match *self {
            Rate::Unlimited => 0.0,
            Rate::Pps(p) => 1e9 / p,
            Rate::Mbps(m) => len as f64 * 8.0 * 1e3 / m,
            Rate::Ips(i) => 1e9 / (i * image_frames.max(1) as f64),
        }
    }

    /// Checks that the rate is positive and finite.
    pub fn validate(&self) -> crate::Result<()> {
        match *self {
            Rate::Pps(v) | Rate::Mbps(v) | Rate::Ips(v) if !(v.is_finite() && v > 0.0) => {
                crate::bail!("rates must be positive, got {v}")
            }
            _ => Ok(()),
        }
    }
}

/// Nanoseconds since the Unix epoch (CLOCK_REALTIME), as sender timestamps are defined.
pub fn realtime_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// The virtual clock.
#[derive(Debug)]
pub struct Pacer {
    rate: Rate,
    live: bool,
    start: Instant,
    start_realtime: u64,
    /// Offset of the next slot from `start`.
    next_ns: f64,
}

impl Pacer {
    /// A pacer starting now; `live` outputs wait for their slots.
    pub fn new(rate: Rate, live: bool) -> Self {
        Pacer {
            rate,
            live,
            start: Instant::now(),
            start_realtime: realtime_ns(),
            next_ns: 0.0,
        }
    }

    /// Whether [`Pacer::slot`] would wait now (live, paced, and the next slot is ahead):
    /// the moment to send what a batching output holds.
    pub fn must_wait(&self) -> bool {
        self.live
            && self.rate != Rate::Unlimited
            && Instant::now() < self.start + Duration::from_nanos(self.next_ns.round() as u64)
    }

    /// Waits for the next slot (live) and returns the frame's timestamp (ns since epoch).
    pub fn slot(&mut self) -> u64 {
        if !self.live {
            return self.file_timestamp();
        }
        if self.rate != Rate::Unlimited {
            let target = self.start + Duration::from_nanos(self.next_ns.round() as u64);
            let now = Instant::now();
            if now < target {
                let wait = target - now;
                if wait > Duration::from_micros(200) {
                    std::thread::sleep(wait - Duration::from_micros(100));
                }
                while Instant::now() < target {
                    std::hint::spin_loop();
                }
            } else if now - target > MAX_LAG {
                self.next_ns = (now - self.start).as_nanos() as f64;
            }
        }
        realtime_ns()
    }

    /// Moves the clock past a frame of `len` bytes from an image of `image_frames` frames.
    pub fn advance(&mut self, len: usize, image_frames: u32) {
        self.next_ns += match (self.rate, self.live) {
            (Rate::Unlimited, false) => UNPACED_PCAP_NS,
            (rate, _) => rate.cost_ns(len, image_frames),
        };
    }

    /// Time since start: real time live, virtual time for files.
    pub fn elapsed(&self) -> Duration {
        if self.live {
            self.start.elapsed()
        } else {
            Duration::from_nanos(self.next_ns.round() as u64)
        }
    }

    /// The timestamp the next frame would get, without waiting.
    pub fn peek(&self) -> u64 {
        if self.live {
            realtime_ns()
        } else {
            self.file_timestamp()
        }
    }

    /// pcap records hold microseconds: rounding here makes fragment 0's descriptor
    /// timestamp equal its record's timestamp exactly.
    fn file_timestamp(&self) -> u64 {
        (self.start_realtime + self.next_ns.round() as u64) / 1000 * 1000
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn virtual_clock_spacing() {
        let mut p = Pacer::new(Rate::Pps(1000.0), false);
        let t0 = p.slot();
        p.advance(100, 1);
        assert_eq!(p.slot() - t0, 1_000_000);
        let mut p = Pacer::new(Rate::Mbps(8.0), false);
        let t0 = p.slot();
        p.advance(1000, 1);
        assert_eq!(p.slot() - t0, 1_000_000);
        let mut p = Pacer::new(Rate::Ips(10.0), false);
        let t0 = p.slot();
        for _ in 0..4 {
            p.advance(100, 4);
        }
        assert_eq!(p.slot() - t0, 100_000_000);
        assert_eq!(p.elapsed(), Duration::from_millis(100));
        let mut p = Pacer::new(Rate::Unlimited, false);
        p.advance(1, 1);
        assert_eq!(p.elapsed(), Duration::from_micros(1));
        assert!(Rate::Pps(0.0).validate().is_err());
    }

    #[test]
    fn live_pacing_waits() {
        let start = Instant::now();
        let mut p = Pacer::new(Rate::Pps(2000.0), true);
        for _ in 0..21 {
            p.slot();
            p.advance(64, 1);
        }
        let e = start.elapsed();
        assert!(e >= Duration::from_millis(10), "{e:?}");
        // One frame per second: the first slot is now, the second a second ahead.
        let mut p = Pacer::new(Rate::Pps(1.0), true);
        assert!(!p.must_wait());
        p.advance(64, 1);
        assert!(p.must_wait());
        assert!(!Pacer::new(Rate::Unlimited, true).must_wait());
        assert!(!Pacer::new(Rate::Pps(1.0), false).must_wait());
    }
}
