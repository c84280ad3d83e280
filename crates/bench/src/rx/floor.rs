//! The floor of `netml bench rx`: the least any receiver of these packets must do, measured
//! with the same feeder, ring and timing as the pipeline's worker.
//!
//! Per burst it does what no rx path can avoid: `rx_burst`, a prefetch of every packet's
//! first data line (as the worker does), a read of each packet's first 64 bytes (the
//! Ethernet + IPv4 + UDP + fragment header line, whose cache miss every classifier pays),
//! and it gives the mbufs back. Giving back is an enqueue of the burst into the feeder's
//! return ring instead of `rte_pktmbuf_free_bulk`: the feeder then stamps every packet
//! with a new image id exactly as it does the pipeline's completed images, so that in both
//! runs the rx core finds each header line freshly written by another core.

use netml_dpdk::{Mbuf, Ring, RxQueue};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Bytes of each packet the floor reads: one cache line, the whole 64-byte header stack.
const READ_BYTES: usize = 64;

/// The floor's rx loop on one rx queue.
pub(super) struct FloorWorker {
    pub(super) rxq: RxQueue,
    pub(super) burst: usize,
    /// The feeder's return ring; large enough for every mbuf in circulation.
    pub(super) returns: Ring,
    /// Cleared to stop.
    pub(super) running: Arc<AtomicBool>,
}

impl FloorWorker {
    /// Polls until `running` is cleared, calling `after_poll(n)` after every burst of `n`
    /// packets, as [`netml_pipeline::worker::Worker::run_observed`] does.
    pub(super) fn run_observed(mut self, mut after_poll: impl FnMut(usize)) {
        let mut pkts: Vec<Mbuf> = Vec::with_capacity(self.burst);
        let mut folded = 0u64;
        while self.running.load(Ordering::Relaxed) {
            let n = self.rxq.rx_burst(&mut pkts, self.burst);
            pkts.iter().for_each(Mbuf::prefetch_data);
            for m in &pkts {
                folded ^= fold_first_line(m.data());
            }
            while !pkts.is_empty() {
                // The ring holds every mbuf in circulation, so this never spins in practice.
                if self.returns.enqueue_burst(&mut pkts) == 0 {
                    std::hint::spin_loop();
                }
            }
            if n == 0 {
                std::hint::spin_loop();
            }
            after_poll(n);
        }
        std::hint::black_box(folded);
    }
}

/// XOR of the first [`READ_BYTES`] of `data` as 64-bit words (fewer when the frame is
/// shorter): a read of the whole line that the compiler cannot drop.
#[inline]
fn fold_first_line(data: &[u8]) -> u64 {
    let line = &data[..data.len().min(READ_BYTES)];
    let words = line.chunks_exact(8);
    let tail = words
        .remainder()
        .iter()
        .fold(0u64, |a, &b| a << 8 | u64::from(b));
    words
        .map(|w| u64::from_ne_bytes(w.try_into().expect("8 bytes")))
        .fold(tail, |a, w| a ^ w)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folds_only_the_first_line() {
        let mut frame = vec![0u8; 1090];
        frame[0] = 1;
        frame[63] = 2;
        frame[64..].fill(0xff);
        let first = u64::from_ne_bytes([1, 0, 0, 0, 0, 0, 0, 0]);
        let last = u64::from_ne_bytes([0, 0, 0, 0, 0, 0, 0, 2]);
        assert_eq!(fold_first_line(&frame), first ^ last);
        assert_eq!(fold_first_line(&[1, 2, 3]), 0x010203);
    }
}
