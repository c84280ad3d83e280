//! The gather and result stage: complete images become batches in the ingest's slots, and
//! every image is answered.
//!
//! ```text
//! dispatch queue -> admit (model served? fits a slot?) -> batch of up to max_batch images
//!   -> Ingest::submit(slot)   [netml: doorbell; launch: one launch; cpu-copy: memcpy + DMA]
//!   -> poll, oldest first     -> mbufs back to the pool -> read back + CRC -> result messages
//! ```
//!
//! A batch is whatever is queued when a slot is free, up to `max_batch` images, image `i` at
//! byte `i * max_image_bytes` of its slot. The mbufs of a batch stay held until the ingest
//! says its payloads are in the slot; nothing is copied by this thread except in `cpu-copy`
//! mode, where that copy is the point of the comparison.

mod batch;
mod reply;

use crate::clock::Clock;
use crate::stats::{Shared, SinkCounters};
use crate::worker::Complete;
use batch::InFlight;
use crossbeam_channel::{Receiver, RecvTimeoutError, TryRecvError};
use netml_dpdk::{Mbuf, Mempool, TxQueue};
use netml_gpu::Ingest;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

/// The gather/result stage.
pub struct Sink {
    /// Complete images from the rx workers.
    pub input: Receiver<Complete>,
    /// Queue that results leave by (`None`: results are not sent).
    pub txq: Option<TxQueue>,
    /// Pool for result frames.
    pub pool: Mempool,
    /// Model ids that are served; empty serves all.
    pub models: Vec<u8>,
    /// Published counters.
    pub shared: Arc<Shared>,
    /// Time base.
    pub clock: Clock,
    /// Where batches are gathered (GPU or host, one of the three modes).
    pub ingest: Box<dyn Ingest>,
    /// Images per batch at most.
    pub max_batch: usize,
    /// Byte stride of the images in a slot; larger images are rejected.
    pub max_image_bytes: usize,
    /// Read every batch back and check the images' CRC-32.
    pub check_crc: bool,
}

/// What the loop carries between iterations.
struct State {
    c: SinkCounters,
    /// Slots without a batch in flight.
    free: VecDeque<usize>,
    /// Submitted batches, oldest first (tickets complete in this order).
    in_flight: VecDeque<InFlight>,
    /// Result frames waiting for a tx burst.
    out: Vec<Mbuf>,
    /// Read-back buffer for the CRC check.
    readback: Vec<u8>,
    /// Every worker has exited and the queue is drained.
    disconnected: bool,
}

impl Sink {
    /// Runs until every worker has exited, the queue is drained and every batch answered.
    pub fn run(mut self) {
        let mut st = State {
            c: SinkCounters::default(),
            free: (0..self.ingest.slots()).collect(),
            in_flight: VecDeque::new(),
            out: Vec::with_capacity(reply::TX_BURST),
            readback: Vec::new(),
            disconnected: false,
        };
        let mut idle_spins = 0u32;
        loop {
            let retired = self.retire(&mut st);
            let submitted = !st.disconnected && !st.free.is_empty() && self.next_batch(&mut st);
            if st.disconnected && st.in_flight.is_empty() {
                break;
            }
            if st.out.len() >= reply::TX_BURST || (!submitted && !st.out.is_empty()) {
                self.flush(&mut st);
            }
            if retired || submitted {
                idle_spins = 0;
                self.publish(&st);
            } else if !st.in_flight.is_empty() {
                // Waiting for the ingest: spin briefly, then let other threads run.
                idle_spins = idle_spins.saturating_add(1);
                if idle_spins < 256 {
                    std::hint::spin_loop();
                } else {
                    std::thread::yield_now();
                }
            }
        }
        self.flush(&mut st);
        self.publish(&st);
    }

    /// Takes what is queued (waiting a little when nothing is in flight) and submits it as
    /// one batch. True when a batch was submitted.
    fn next_batch(&mut self, st: &mut State) -> bool {
        let first = if st.in_flight.is_empty() {
            // Results still queued go out before this thread blocks: otherwise the last
            // batch's answers would wait for the next image to arrive.
            if !st.out.is_empty() {
                self.flush(st);
            }
            match self.input.recv_timeout(Duration::from_millis(20)) {
                Ok(c) => c,
                Err(RecvTimeoutError::Timeout) => {
                    self.publish(st);
                    return false;
                }
                Err(RecvTimeoutError::Disconnected) => {
                    st.disconnected = true;
                    return false;
                }
            }
        } else {
            match self.input.try_recv() {
                Ok(c) => c,
                Err(TryRecvError::Empty) => return false,
                Err(TryRecvError::Disconnected) => {
                    st.disconnected = true;
                    return false;
                }
            }
        };
        let mut images = Vec::with_capacity(self.max_batch);
        self.admit(st, first, &mut images);
        while images.len() < self.max_batch {
            match self.input.try_recv() {
                Ok(c) => self.admit(st, c, &mut images),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    st.disconnected = true;
                    break;
                }
            }
        }
        if images.is_empty() {
            return false;
        }
        self.submit(st, images);
        true
    }

    fn publish(&self, st: &State) {
        let mut c = st.c;
        c.cpu_ns = crate::stats::thread_cpu_ns();
        *self.shared.sink.lock().expect("stats lock") = c;
    }
}
