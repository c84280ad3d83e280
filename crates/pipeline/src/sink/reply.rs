//! Result messages: one per image, sent back to its sender out of the port it came in on.

use crate::clock::Clock;
use crate::stats::SinkCounters;
use crate::worker::{reply_to, Held, Refused};
use netml_dpdk::{Mbuf, Mempool, TxQueue};
use netml_verify::{Evicted, Image, ImageKey};
use netml_wire::frame::Endpoints;
use netml_wire::result::{self, Stage, Status, STAGES};

/// Result frames are sent in bursts of this many (or when the stage runs out of work).
pub(super) const TX_BURST: usize = 32;

/// What an image's result message will say.
pub(crate) struct Answer {
    key: ImageKey,
    /// Where the reply goes (the reverse of fragment 0's addresses).
    reply_to: Option<Endpoints>,
    pub(super) status: Status,
    /// CRC-32 of the tensor as gathered (0 when not checked).
    pub(super) crc32: u32,
    /// CRC-32 the sender put in the descriptor.
    pub(super) sender_crc: u32,
    sender_timestamp: u64,
    first: u64,
    pub(super) completed: u64,
    pub(super) dispatched: u64,
    pub(super) ingested: u64,
    pub(super) inferred: u64,
    /// Tensor bytes.
    pub(super) len: usize,
    /// Best classes, best first.
    pub(super) top_k: Vec<(u32, f32)>,
    /// Fragments the receiver had of an evicted image.
    arrived: u16,
}

impl Answer {
    /// Reads what the answer needs from the image, before its mbufs are freed.
    pub(super) fn new(image: &Image<Held>) -> Answer {
        let reply_to = image.fragments.first().and_then(reply_to);
        Answer {
            key: image.key,
            reply_to,
            status: Status::Ok,
            crc32: 0,
            sender_crc: image.descriptor.crc32,
            sender_timestamp: image.descriptor.timestamp,
            first: image.first_arrival,
            completed: image.completed_at,
            dispatched: 0,
            ingested: 0,
            inferred: 0,
            len: image.total_bytes as usize,
            top_k: Vec::new(),
            arrived: 0,
        }
    }

    /// The answer to an image the dispatch queue refused (`overloaded`).
    pub(super) fn refused(r: &Refused) -> Answer {
        Answer {
            key: r.key,
            reply_to: r.reply_to,
            status: Status::Overloaded,
            crc32: 0,
            sender_crc: 0,
            sender_timestamp: r.sender_timestamp,
            first: r.first_arrival,
            completed: r.completed_at,
            dispatched: 0,
            ingested: 0,
            inferred: 0,
            len: 0,
            top_k: Vec::new(),
            arrived: 0,
        }
    }

    /// The answer to an image evicted before it completed (`incomplete`), addressed from
    /// the packet the verifier kept of it.
    pub(super) fn evicted(e: &Evicted<Held>) -> Answer {
        Answer {
            key: e.key,
            reply_to: reply_to(&e.handle),
            status: Status::Incomplete,
            crc32: 0,
            sender_crc: 0,
            sender_timestamp: e.sender_timestamp.unwrap_or(0),
            first: e.first_arrival,
            completed: 0,
            dispatched: 0,
            ingested: 0,
            inferred: 0,
            len: 0,
            top_k: Vec::new(),
            arrived: e.arrived,
        }
    }
}

/// Where result frames go, and the frames waiting for a burst.
pub(crate) struct Replies {
    /// Queue that results leave by (`None`: results are not sent).
    pub(crate) txq: Option<TxQueue>,
    /// Pool for result frames.
    pub(crate) pool: Mempool,
    pub(crate) clock: Clock,
    pub(crate) out: Vec<Mbuf>,
}

impl Replies {
    /// Counts the image's outcome (one status counter per image) and queues its message.
    pub(super) fn reply(&mut self, c: &mut SinkCounters, mut a: Answer, status: Status) {
        a.status = status;
        *match status {
            Status::Ok => &mut c.ok,
            Status::Overloaded => &mut c.overloaded,
            Status::UnknownModel => &mut c.unknown_model,
            Status::Failed => &mut c.failed,
            Status::ShapeMismatch => &mut c.shape_mismatch,
            Status::Incomplete => &mut c.incomplete,
        } += 1;
        let (Some(ep), Some(_)) = (a.reply_to, self.txq.as_ref()) else {
            return;
        };
        let mut stages = [0u64; STAGES];
        stages[Stage::RxFirst as usize] = a.first;
        stages[Stage::RxComplete as usize] = a.completed;
        stages[Stage::Dispatched as usize] = a.dispatched;
        stages[Stage::Ingested as usize] = a.ingested;
        stages[Stage::Inferred as usize] = a.inferred;
        stages[Stage::Sent as usize] = self.clock.now_ns();
        let msg = result::Repr {
            model: a.key.model,
            image: a.key.image,
            status: a.status,
            arrived: a.arrived,
            crc32: a.crc32,
            sender_timestamp: a.sender_timestamp,
            stages,
            top_k: a.top_k,
        };
        let frame = ep.build(msg.buffer_len(), |b| msg.emit(b));
        match Mbuf::from_bytes(&self.pool, &frame) {
            Ok(m) => self.out.push(m),
            Err(_) => c.results_dropped += 1,
        }
    }

    /// Sends the queued result frames; what the tx queue will not take is dropped (counted).
    pub(super) fn flush(&mut self, c: &mut SinkCounters) {
        let Some(txq) = self.txq.as_mut() else {
            self.out.clear();
            return;
        };
        // A full queue gets a few chances before results are dropped.
        for _ in 0..64 {
            if self.out.is_empty() {
                break;
            }
            c.results_sent += txq.tx_burst(&mut self.out) as u64;
        }
        c.results_dropped += self.out.len() as u64;
        Mbuf::free_bulk(&mut self.out);
    }
}
