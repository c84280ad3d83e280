//! Counters shared between the data-plane threads and the statistics printer.
//!
//! Each thread keeps its counters in plain integers and publishes a copy under an
//! uncontended mutex every few dozen bursts (and when idle), so the hot path pays no atomic
//! read-modify-writes.

use netml_verify::{Counters, RxCounters};
use std::sync::Mutex;
use std::time::Instant;

/// Counters of one rx worker.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WorkerCounters {
    /// Frame classification.
    pub rx: RxCounters,
    /// The verifier.
    pub verifier: Counters,
    /// Other traffic sent out of the chain port.
    pub chain_forwarded: u64,
    /// Other traffic dropped by the chain action.
    pub chain_dropped: u64,
    /// Other traffic dropped because the chain tx queue was full.
    pub chain_tx_full: u64,
    /// Complete images dropped because the dispatch queue was full.
    pub backpressure_images: u64,
    /// Fragments freed with those images.
    pub backpressure_fragments: u64,
    /// Of the `backpressure_images`, those whose `overloaded` answer could not be queued
    /// either (the refusal queue was full too): the only images a receiver leaves unanswered.
    pub backpressure_unanswered: u64,
    /// Incomplete images held now.
    pub in_flight: u64,
    /// Fragments held now.
    pub held_fragments: u64,
    /// CPU time of the worker's thread (`CLOCK_THREAD_CPUTIME_ID`) when it last published.
    pub cpu_ns: u64,
}

/// Counters of the gather/result stage.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SinkCounters {
    /// Images gathered into the batch buffer.
    pub images: u64,
    /// Tensor bytes gathered.
    pub bytes: u64,
    /// Images whose gathered bytes do not match the sender's CRC-32.
    pub crc_mismatch: u64,
    /// Answered `ok` (top-k classes, or the CRC-32 on a receiver serving no function).
    pub ok: u64,
    /// Answered `unknown_model`: no inference function serves the image's model.
    pub unknown_model: u64,
    /// Answered `shape_mismatch`: the tensor cannot feed the model (or exceeds the slot).
    pub shape_mismatch: u64,
    /// Answered `overloaded`: refused by admission control, a full function queue, or
    /// dropped from the queue when it could no longer finish inside its SLO.
    pub overloaded: u64,
    /// Answered `failed`: ingest failure, engine failure or stall, no instance left.
    pub failed: u64,
    /// Answered `incomplete`: the verifier evicted the image before it was complete.
    pub incomplete: u64,
    /// Instances taken out of rotation (engine failed or stalled).
    pub instances_lost: u64,
    /// CPU nanoseconds (`CLOCK_THREAD_CPUTIME_ID`) the serving stage's thread spent on turns
    /// that did something, less the
    /// ingest submissions (`gather_ns`) and the CRC checks (`crc_ns`): routing, admission,
    /// batching decisions, starting engines, collecting results, building answers. Engines
    /// run on their own threads and are not in it.
    pub serve_ns: u64,
    /// Nanoseconds spent reading slots back and computing CRC-32s (`ingest.check_crc`).
    pub crc_ns: u64,
    /// Result messages sent.
    pub results_sent: u64,
    /// Result messages dropped (tx queue full or no mbuf).
    pub results_dropped: u64,
    /// Nanoseconds the gather stage's thread spent handing batches to the ingest (the
    /// memcpy in `cpu-copy` mode; descriptors and the doorbell in `netml` mode).
    pub gather_ns: u64,
    /// Batches submitted to the ingest.
    pub batches: u64,
    /// Of the `failed` images, those lost to an ingest failure.
    pub ingest_failed: u64,
    /// Times the ingest watchdog reported a batch without progress.
    pub ingest_stalls: u64,
    /// CPU time of the gather/result thread (`CLOCK_THREAD_CPUTIME_ID`) when it last
    /// published: everything it spends, not only in `submit` (`gather_ns`).
    pub cpu_ns: u64,
}

impl SinkCounters {
    /// Every counter with its report name, statuses first.
    pub fn fields(&self) -> [(&'static str, u64); 19] {
        [
            ("ok", self.ok),
            ("unknown_model", self.unknown_model),
            ("shape_mismatch", self.shape_mismatch),
            ("overloaded", self.overloaded),
            ("failed", self.failed),
            ("incomplete", self.incomplete),
            ("images", self.images),
            ("bytes", self.bytes),
            ("batches", self.batches),
            ("crc_mismatch", self.crc_mismatch),
            ("ingest_failed", self.ingest_failed),
            ("ingest_stalls", self.ingest_stalls),
            ("instances_lost", self.instances_lost),
            ("results_sent", self.results_sent),
            ("results_dropped", self.results_dropped),
            ("gather_ns", self.gather_ns),
            ("serve_ns", self.serve_ns),
            ("crc_ns", self.crc_ns),
            ("cpu_ns", self.cpu_ns),
        ]
    }

    /// Serving CPU per batch (ns), see `serve_ns`.
    pub fn serve_ns_per_batch(&self) -> f64 {
        self.serve_ns as f64 / self.batches.max(1) as f64
    }

    /// Images answered, every status.
    pub fn answered(&self) -> u64 {
        self.ok
            + self.unknown_model
            + self.shape_mismatch
            + self.overloaded
            + self.failed
            + self.incomplete
    }
}

/// CPU time the calling thread has used, in nanoseconds (`CLOCK_THREAD_CPUTIME_ID`). A
/// system call (a few hundred ns), so the threads read it when they publish, never per
/// packet.
pub fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid out pointer for the duration of the call.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return 0;
    }
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// One inference function's state, as the serving stage last published it.
#[derive(Debug, Clone)]
pub struct FunctionSnapshot {
    /// Name.
    pub name: String,
    /// Model id.
    pub model: u8,
    /// Latency objective, ns.
    pub slo_ns: u64,
    /// Batching policy.
    pub policy: String,
    /// Images queued now.
    pub queued: usize,
    /// Instances in rotation.
    pub instances: usize,
    /// Its counters, latency distribution and last batching decision.
    pub stats: netml_serve::FunctionStats,
    /// Its CPU instances' shares and resizes (`None`: not on CPU shares).
    pub shares: Option<SharesSnapshot>,
}

/// A function's CPU instances on their shares.
#[derive(Debug, Clone, Default)]
pub struct SharesSnapshot {
    /// Threads of each instance now.
    pub threads: Vec<u32>,
    /// Every resize so far: `(instance, what happened)`, by instance.
    pub resizes: Vec<(usize, netml_serve::exec::Resized)>,
    /// Batch-boundary gaps without a resize, over all instances (the downtimes' baseline).
    pub gaps: netml_serve::exec::shadow::Gaps,
}

/// Everything the threads publish.
pub struct Shared {
    /// One entry per rx worker.
    pub workers: Vec<Mutex<WorkerCounters>>,
    /// The gather/result stage.
    pub sink: Mutex<SinkCounters>,
    /// Per inference function, published every 100 ms.
    pub functions: Mutex<Vec<FunctionSnapshot>>,
}

impl Shared {
    /// Zeroed counters for `workers` rx workers.
    pub fn new(workers: usize) -> Self {
        Shared {
            workers: (0..workers)
                .map(|_| Mutex::new(WorkerCounters::default()))
                .collect(),
            sink: Mutex::new(SinkCounters::default()),
            functions: Mutex::new(Vec::new()),
        }
    }

    /// A consistent-enough copy of everything (each thread's part is consistent).
    pub fn snapshot(&self) -> Snapshot {
        let workers: Vec<WorkerCounters> = self
            .workers
            .iter()
            .map(|w| *w.lock().expect("stats lock"))
            .collect();
        Snapshot {
            at: Instant::now(),
            workers,
            sink: *self.sink.lock().expect("stats lock"),
            functions: self.functions.lock().expect("stats lock").clone(),
        }
    }
}

/// Counters at one moment.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// When it was taken.
    pub at: Instant,
    /// Per rx worker.
    pub workers: Vec<WorkerCounters>,
    /// Gather/result stage.
    pub sink: SinkCounters,
    /// Per inference function.
    pub functions: Vec<FunctionSnapshot>,
}

impl Snapshot {
    /// Sum over the rx workers.
    pub fn total(&self) -> WorkerCounters {
        let mut t = WorkerCounters::default();
        for w in &self.workers {
            t.rx.add(&w.rx);
            t.verifier.add(&w.verifier);
            t.chain_forwarded += w.chain_forwarded;
            t.chain_dropped += w.chain_dropped;
            t.chain_tx_full += w.chain_tx_full;
            t.backpressure_images += w.backpressure_images;
            t.backpressure_fragments += w.backpressure_fragments;
            t.backpressure_unanswered += w.backpressure_unanswered;
            t.in_flight += w.in_flight;
            t.held_fragments += w.held_fragments;
            t.cpu_ns += w.cpu_ns;
        }
        t
    }
}
