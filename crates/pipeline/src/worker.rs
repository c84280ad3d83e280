//! The rx worker: one per rx queue, a poll-mode loop in the style of DPDK's l2fwd.
//!
//! burst -> classify -> (ours) verifier, holding the mbufs -> complete images to the
//! dispatch queue; (other) NF-chain action; (invalid) counted and freed. The next fragment
//! of an image in flight takes the fast path (`receive_plain`), anything else `receive`
//! and `Verifier::push`; both give the same counts.

use crate::clock::Clock;
use crate::config::ChainAction;
use crate::stats::{Shared, WorkerCounters};
use crossbeam_channel::{Receiver, Sender, TrySendError};
use netml_dpdk::{Mbuf, RxQueue, TxQueue};
use netml_gpu::SrcPtrs;
use netml_verify::{receive, receive_plain, Evicted, Image, ImageKey, Push, Rx, Verifier};
use netml_wire::frame::{self, Endpoints};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// A fragment's packet, and where in it the tensor bytes are.
pub struct Held {
    /// The packet.
    pub mbuf: Mbuf,
    /// Offset of the payload in the mbuf's data.
    pub start: u16,
    /// Payload bytes.
    pub len: u16,
    /// Address of the payload, recorded at rx while the mbuf header is in cache: the sink
    /// hands it to the ingest without reading every mbuf's header again (one cache miss per
    /// fragment on the sink's core otherwise).
    ptr: *const u8,
}

// SAFETY: `ptr` points into the data of the mbuf this handle owns and moves with it; it is
// only read (by whoever holds the handle, or an ingest the holder keeps the handle for).
unsafe impl Send for Held {}

impl Held {
    /// Holds `mbuf`, whose tensor bytes are `range` of its data.
    #[inline]
    pub fn new(mbuf: Mbuf, range: std::ops::Range<usize>) -> Held {
        let data = mbuf.data();
        debug_assert!(range.start <= range.end && range.end <= data.len());
        // Not `data[range]`: the classifier gave a range inside the frame, and the bounds
        // check is a tenth of the fast path's instructions. An address outside would only
        // be read through `payload_ptr`, whose users trust the classifier anyway.
        let ptr = data.as_ptr().wrapping_add(range.start);
        Held {
            mbuf,
            start: range.start as u16,
            len: range.len() as u16,
            ptr,
        }
    }

    /// The tensor bytes this packet carries.
    pub fn payload(&self) -> &[u8] {
        &self.mbuf.data()[self.start as usize..][..self.len as usize]
    }

    /// Address of the tensor bytes (`payload().as_ptr()` without touching the mbuf header),
    /// valid while this handle lives.
    pub fn payload_ptr(&self) -> *const u8 {
        self.ptr
    }

    /// The payload addresses of `held` as the ingest's strided sources, read in place from
    /// the handles (nothing is built per fragment).
    pub fn payload_ptrs(held: &[Held]) -> SrcPtrs<'_> {
        // SAFETY: a plain projection to the same field of every record.
        unsafe { SrcPtrs::fields(held, |h| &h.ptr) }
    }
}

/// What a worker hands the serving stage: every image it opened ends as one of these.
pub enum Complete {
    /// A complete image and its packets.
    Image(Image<Held>),
    /// An image evicted before it completed (one of its packets kept for the reply
    /// addresses): answered `incomplete`.
    Evicted(Evicted<Held>),
}

/// An image a worker could not hand over (the dispatch queue was full): what its
/// `overloaded` answer needs, small enough that a second, larger queue holds many.
#[derive(Debug, Clone, Copy)]
pub struct Refused {
    /// Identity.
    pub key: ImageKey,
    /// Where the answer goes (the reverse of fragment 0's addresses).
    pub reply_to: Option<Endpoints>,
    /// The descriptor's timestamp.
    pub sender_timestamp: u64,
    /// When its first fragment arrived.
    pub first_arrival: u64,
    /// When it completed.
    pub completed_at: u64,
}

/// Where an answer to the packet `h` goes: the reverse of its addresses.
pub(crate) fn reply_to(h: &Held) -> Option<Endpoints> {
    frame::parse_udp(h.mbuf.data())
        .ok()
        .flatten()
        .map(|d| Endpoints::from(&d).reversed())
}

impl Refused {
    fn of(image: &Image<Held>) -> Refused {
        Refused {
            key: image.key,
            reply_to: image.fragments.first().and_then(reply_to),
            sender_timestamp: image.descriptor.timestamp,
            first_arrival: image.first_arrival,
            completed_at: image.completed_at,
        }
    }
}

/// Refusals queued per rx worker at most (a few MB at most in all).
pub const REFUSED_QUEUE: usize = 65536;

/// A dispatch queue (bounded): the workers' `out`, the gather stage's input. A worker drops
/// a complete image when it is full (counted as backpressure).
pub fn dispatch_queue(capacity: usize) -> (Sender<Complete>, Receiver<Complete>) {
    crossbeam_channel::bounded(capacity)
}

/// Nanoseconds between two publications of a worker's counters (at the end of the first
/// loop iteration past the interval, busy or idle). Publishing reads the thread's CPU time,
/// a system call of microseconds on a VM: done every 64 bursts and after every empty poll,
/// as before, it took about a fifth of the rx thread's samples in `perf record` of `netml
/// bench rx`, most of them between bursts.
pub const PUBLISH_INTERVAL_NS: u64 = 10_000_000;

/// One rx queue's worker.
pub struct Worker {
    /// Index of this worker (= its rx queue).
    pub index: usize,
    /// Its rx queue.
    pub rxq: RxQueue,
    /// Where other traffic goes when the chain action forwards.
    pub chain_txq: Option<TxQueue>,
    /// The chain action.
    pub chain: ChainAction,
    /// UDP ports of the protocol.
    pub udp_ports: Vec<u16>,
    /// Packets per burst.
    pub burst: usize,
    /// Its verifier.
    pub verifier: Verifier<Held>,
    /// The dispatch queue.
    pub out: Sender<Complete>,
    /// Where images the dispatch queue refused go to be answered `overloaded` (`None`: not
    /// answered, as in the rx benchmark).
    pub refused: Option<Sender<Refused>>,
    /// Published counters.
    pub shared: Arc<Shared>,
    /// Cleared to stop.
    pub running: Arc<AtomicBool>,
    /// Time base.
    pub clock: Clock,
}

impl Worker {
    /// Polls until `running` is cleared, then evicts what is incomplete and publishes its
    /// final counters.
    pub fn run(self) {
        self.run_observed(|_| {})
    }

    /// [`Worker::run`], calling `after_poll(n)` at the end of every loop iteration, once the
    /// `n` packets of its burst (0: the poll came back empty) have been handled. `netml
    /// bench rx` times the loop with it; `run` passes a no-op, which compiles away.
    pub fn run_observed(mut self, mut after_poll: impl FnMut(usize)) {
        let mut c = WorkerCounters::default();
        let mut pkts: Vec<Mbuf> = Vec::with_capacity(self.burst);
        let mut forward: Vec<Mbuf> = Vec::with_capacity(self.burst);
        let mut next_publish = 0u64;
        while self.running.load(Ordering::Relaxed) {
            let n = self.rxq.rx_burst(&mut pkts, self.burst);
            let now = self.clock.now_ns();
            if self.verifier.expire(now) > 0 {
                self.dispatch_evicted(&mut c);
            }
            // Start every header load of the burst before parsing the first one.
            pkts.iter().for_each(Mbuf::prefetch_data);
            for mbuf in pkts.drain(..) {
                self.handle(&mut c, mbuf, now, &mut forward);
            }
            if !forward.is_empty() {
                self.flush_forward(&mut c, &mut forward);
            }
            if now >= next_publish {
                self.publish(&mut c);
                next_publish = now + PUBLISH_INTERVAL_NS;
            }
            if n == 0 {
                std::hint::spin_loop();
            }
            after_poll(n);
        }
        self.verifier.evict_all(self.clock.now_ns());
        self.dispatch_evicted(&mut c);
        self.publish(&mut c);
    }

    #[inline]
    fn handle(&mut self, c: &mut WorkerCounters, mbuf: Mbuf, now: u64, forward: &mut Vec<Mbuf>) {
        let ports = self.udp_ports.as_slice();
        let ours = |p: u16| is_one_of(ports, p);
        // Most packets: the next fragment of an image in flight, accepted in a few compares.
        if let Some(plain) = receive_plain(&mut self.verifier, mbuf.data(), ours) {
            let held = Held::new(mbuf, plain.payload());
            if let Push::Complete(image) = plain.accept(&mut c.rx, held, now) {
                self.dispatch(c, Complete::Image(image));
            }
            // It opened no image, so it evicted none.
            return;
        }
        match receive(&mut c.rx, mbuf.data(), (), ours) {
            Rx::Fragment(f, range) => {
                let held = Held::new(mbuf, range);
                if let Push::Complete(image) = self.verifier.push(f.with_handle(held), now) {
                    self.dispatch(c, Complete::Image(image));
                }
                // Table pressure may have evicted the oldest image to make room.
                if self.verifier.evictions_pending() {
                    self.dispatch_evicted(c);
                }
            }
            Rx::Other(()) => match self.chain {
                ChainAction::Forward if self.chain_txq.is_some() => forward.push(mbuf),
                _ => c.chain_dropped += 1,
            },
            Rx::Invalid(_) => {}
        }
    }

    fn dispatch(&mut self, c: &mut WorkerCounters, done: Complete) {
        match self.out.try_send(done) {
            Ok(()) => {}
            Err(TrySendError::Full(dropped)) | Err(TrySendError::Disconnected(dropped)) => {
                c.backpressure_images += 1;
                // An evicted image's `incomplete` answer is lost with it (counted).
                let answered = match &dropped {
                    Complete::Image(image) => self
                        .refused
                        .as_ref()
                        .is_some_and(|r| r.try_send(Refused::of(image)).is_ok()),
                    Complete::Evicted(_) => false,
                };
                if !answered {
                    c.backpressure_unanswered += 1;
                }
                c.backpressure_fragments += match &dropped {
                    Complete::Image(i) => i.fragments.len() as u64,
                    Complete::Evicted(_) => 1,
                };
            }
        }
    }

    /// Hands the images the verifier evicted (when it reports them) to the serving stage.
    fn dispatch_evicted(&mut self, c: &mut WorkerCounters) {
        let evicted: Vec<Evicted<Held>> = self.verifier.drain_evicted().collect();
        for e in evicted {
            self.dispatch(c, Complete::Evicted(e));
        }
    }

    fn flush_forward(&mut self, c: &mut WorkerCounters, forward: &mut Vec<Mbuf>) {
        let txq = self
            .chain_txq
            .as_mut()
            .expect("forwarding needs a tx queue");
        c.chain_forwarded += txq.tx_burst(forward) as u64;
        c.chain_tx_full += forward.len() as u64;
        Mbuf::free_bulk(forward);
    }

    fn publish(&self, c: &mut WorkerCounters) {
        c.verifier = *self.verifier.counters();
        c.in_flight = self.verifier.in_flight() as u64;
        c.held_fragments = self.verifier.held_fragments();
        c.cpu_ns = crate::stats::thread_cpu_ns();
        *self.shared.workers[self.index].lock().expect("stats lock") = *c;
    }
}

/// Whether `port` is one of `ports`: a loop the compiler inlines into the per-packet path,
/// where `slice::contains` stays a call.
#[inline(always)]
#[allow(clippy::manual_contains)]
fn is_one_of(ports: &[u16], port: u16) -> bool {
    // Most workers serve one port: one compare, no loop, in the common case.
    match ports.split_first() {
        Some((&first, rest)) => first == port || rest.iter().any(|&p| p == port),
        None => false,
    }
}
