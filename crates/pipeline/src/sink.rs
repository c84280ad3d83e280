//! The gather and result stage, until the GPU ingest and inference stages exist.
//!
//! Host gather (the `cpu-copy` baseline and the no-GPU path): a complete image's payloads are
//! copied from its mbufs into a batch buffer and the mbufs go back to the pool; the image is
//! answered with a result message that carries the CRC-32 of the gathered tensor, sent back
//! to its sender out of the port it came in on.

use crate::clock::Clock;
use crate::stats::{Shared, SinkCounters};
use crate::worker::Complete;
use crossbeam_channel::{Receiver, RecvTimeoutError};
use netml_dpdk::{Mbuf, Mempool, TxQueue};
use netml_wire::checksum;
use netml_wire::frame::{self, Endpoints};
use netml_wire::result::{self, Stage, Status, STAGES};
use std::sync::Arc;
use std::time::Duration;

/// Result frames are sent in bursts of this many (or when the queue runs dry).
const TX_BURST: usize = 32;

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
}

impl Sink {
    /// Runs until every worker has exited and the queue is drained.
    pub fn run(mut self) {
        let mut c = SinkCounters::default();
        let mut batch: Vec<u8> = Vec::new();
        let mut out: Vec<Mbuf> = Vec::with_capacity(TX_BURST);
        loop {
            match self.input.recv_timeout(Duration::from_millis(20)) {
                Ok(complete) => {
                    self.handle(&mut c, complete, &mut batch, &mut out);
                    if out.len() >= TX_BURST || self.input.is_empty() {
                        self.flush(&mut c, &mut out);
                    }
                }
                Err(RecvTimeoutError::Timeout) => self.flush(&mut c, &mut out),
                // Every worker has exited and the queue is drained.
                Err(RecvTimeoutError::Disconnected) => break,
            }
            *self.shared.sink.lock().expect("stats lock") = c;
        }
        self.flush(&mut c, &mut out);
        *self.shared.sink.lock().expect("stats lock") = c;
    }

    fn handle(
        &mut self,
        c: &mut SinkCounters,
        done: Complete,
        batch: &mut Vec<u8>,
        out: &mut Vec<Mbuf>,
    ) {
        let dispatched = self.clock.now_ns();
        let image = done.image;
        // The reply goes back the way fragment 0 came; read it before the mbufs are freed.
        let reply_to = frame::parse_udp(image.fragments[0].mbuf.data())
            .ok()
            .flatten()
            .map(|d| Endpoints::from(&d).reversed());
        let t0 = std::time::Instant::now();
        batch.clear();
        batch.reserve(image.total_bytes as usize);
        for f in &image.fragments {
            batch.extend_from_slice(f.payload());
        }
        c.gather_ns += t0.elapsed().as_nanos() as u64;
        let ingested = self.clock.now_ns();
        let crc32 = checksum::tensor_crc32([&batch[..]]);
        c.images += 1;
        c.bytes += batch.len() as u64;
        if crc32 != image.descriptor.crc32 {
            c.crc_mismatch += 1;
        }
        let key = image.key;
        let (first, completed, sender_ts) = (
            image.first_arrival,
            image.completed_at,
            image.descriptor.timestamp,
        );
        drop(image); // the mbufs go back to the pool now

        let status = if self.models.is_empty() || self.models.contains(&key.model) {
            Status::Ok
        } else {
            c.rejected += 1;
            Status::Rejected
        };
        let (Some(ep), Some(_)) = (reply_to, self.txq.as_ref()) else {
            return;
        };
        let mut stages = [0u64; STAGES];
        stages[Stage::RxFirst as usize] = first;
        stages[Stage::RxComplete as usize] = completed;
        stages[Stage::Dispatched as usize] = dispatched;
        stages[Stage::Ingested as usize] = ingested;
        stages[Stage::Sent as usize] = self.clock.now_ns();
        let msg = result::Repr {
            model: key.model,
            image: key.image,
            status,
            crc32,
            sender_timestamp: sender_ts,
            stages,
            top_k: Vec::new(),
        };
        let frame = ep.build(msg.buffer_len(), |b| msg.emit(b));
        match Mbuf::from_bytes(&self.pool, &frame) {
            Ok(m) => out.push(m),
            Err(_) => c.results_dropped += 1,
        }
    }

    fn flush(&mut self, c: &mut SinkCounters, out: &mut Vec<Mbuf>) {
        let Some(txq) = self.txq.as_mut() else {
            out.clear();
            return;
        };
        // A full queue gets a few chances before results are dropped.
        for _ in 0..64 {
            if out.is_empty() {
                break;
            }
            c.results_sent += txq.tx_burst(out) as u64;
        }
        c.results_dropped += out.len() as u64;
        Mbuf::free_bulk(out);
    }
}
