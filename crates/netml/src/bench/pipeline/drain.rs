//! The result reader of `bench pipeline`: takes the result frames off the port's tx ring
//! (where a NIC would send them), checks each (status Ok, CRC-32 of what was gathered equal
//! to the sender's) and records when it was read and how long after its sender timestamp.

use super::feed::since;
use netml_dpdk::{Mbuf, Ring};
use netml_wire::frame;
use netml_wire::result::{Packet, Repr, Stage, Status};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Live counts, for the progress line and the measured window.
#[derive(Default)]
pub(super) struct DrainStats {
    /// Results with status Ok and the right CRC-32.
    pub(super) answered: AtomicU64,
    /// Anything else read off the ring (wrong status or CRC, or not a result frame).
    pub(super) bad: AtomicU64,
}

/// One good result: when it was read, its latency from the sender timestamp (both ns since
/// the epoch), and the part of it inside the pipeline (its stage timestamps: first fragment
/// received -> result sent).
#[derive(Clone, Copy)]
pub(super) struct Answer {
    pub(super) read_ns: u64,
    pub(super) latency_ns: u64,
    pub(super) inside_ns: u64,
}

/// The reader thread's state.
pub(super) struct Drain {
    pub(super) ring: Ring,
    /// CRC-32 of the tensor every image carries; none when the sink does not check it
    /// (results then carry 0).
    pub(super) crc32: Option<u32>,
    pub(super) epoch: Instant,
    pub(super) stop: Arc<AtomicBool>,
    pub(super) stats: Arc<DrainStats>,
}

impl Drain {
    /// Reads until `stop` and the ring is empty; returns every good result.
    pub(super) fn run(self) -> Vec<Answer> {
        netml_pipeline::unpin_thread();
        let _ = netml_dpdk::register_thread();
        let mut out = Vec::with_capacity(1 << 16);
        let mut burst: Vec<Mbuf> = Vec::with_capacity(64);
        loop {
            let stopping = self.stop.load(Ordering::Relaxed);
            let n = self.ring.dequeue_burst(&mut burst, 64);
            let now = since(self.epoch);
            for m in burst.drain(..) {
                match self.check(&m) {
                    Some((ts, inside_ns)) => {
                        self.stats.answered.fetch_add(1, Ordering::Relaxed);
                        out.push(Answer {
                            read_ns: now,
                            latency_ns: now.saturating_sub(ts),
                            inside_ns,
                        });
                    }
                    None => {
                        self.stats.bad.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            if n == 0 {
                if stopping {
                    break;
                }
                // Results come per batch; a short sleep leaves the CPU to the pipeline.
                std::thread::sleep(Duration::from_micros(20));
            }
        }
        out
    }

    /// The sender timestamp of a good result and its time in the pipeline; none for
    /// anything else.
    fn check(&self, m: &Mbuf) -> Option<(u64, u64)> {
        let d = frame::parse_udp(m.data()).ok().flatten()?;
        let r = Repr::parse(&Packet::new_unchecked(&m.data()[d.payload])).ok()?;
        let inside =
            r.stages[Stage::Sent as usize].saturating_sub(r.stages[Stage::RxFirst as usize]);
        (r.status == Status::Ok && self.crc32.is_none_or(|c| r.crc32 == c))
            .then_some((r.sender_timestamp, inside))
    }
}
