//! The result reader of `bench pipeline` and `bench serve`: takes the result frames off the
//! port's tx ring (where a NIC would send them), checks each (status Ok, CRC-32 of what was
//! gathered equal to the sender's) and records its model and status, when it was read and
//! how long after its sender timestamp.

use super::feed::since;
use netml_dpdk::{Mbuf, Ring};
use netml_wire::frame;
use netml_wire::result::{Packet, Repr, Stage, Status};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Live counts, for the progress line and the measured window.
#[derive(Default)]
pub(crate) struct DrainStats {
    /// Results with status Ok and the right CRC-32.
    pub(crate) answered: AtomicU64,
    /// Anything else read off the ring (another status, a wrong CRC, or not a result frame).
    pub(crate) bad: AtomicU64,
    /// Of those, frames that are not result messages at all.
    pub(crate) unparsed: AtomicU64,
}

/// One result: when it was read, its latency from the sender timestamp (both ns since the
/// epoch), the part of it inside the pipeline (its stage timestamps: first fragment
/// received -> result sent), its model and status, and whether it was good (Ok, right CRC).
#[derive(Clone, Copy)]
pub(crate) struct Answer {
    pub(crate) read_ns: u64,
    pub(crate) latency_ns: u64,
    pub(crate) inside_ns: u64,
    pub(crate) model: u8,
    pub(crate) status: Status,
    pub(crate) good: bool,
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
    /// Reads until `stop` and the ring is empty; returns every result message.
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
                let a = self.check(&m, now);
                let counter = match a {
                    Some(a) if a.good => &self.stats.answered,
                    Some(_) => &self.stats.bad,
                    None => {
                        self.stats.unparsed.fetch_add(1, Ordering::Relaxed);
                        &self.stats.bad
                    }
                };
                counter.fetch_add(1, Ordering::Relaxed);
                out.extend(a);
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

    /// The result in `m`, read at `now`; none when `m` is not a result message.
    fn check(&self, m: &Mbuf, now: u64) -> Option<Answer> {
        let d = frame::parse_udp(m.data()).ok().flatten()?;
        let r = Repr::parse(&Packet::new_unchecked(&m.data()[d.payload])).ok()?;
        let inside_ns =
            r.stages[Stage::Sent as usize].saturating_sub(r.stages[Stage::RxFirst as usize]);
        Some(Answer {
            read_ns: now,
            latency_ns: now.saturating_sub(r.sender_timestamp),
            inside_ns,
            model: r.model,
            status: r.status,
            good: r.status == Status::Ok && self.crc32.is_none_or(|c| r.crc32 == c),
        })
    }
}
