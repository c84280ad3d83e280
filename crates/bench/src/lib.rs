//! netml's benchmarks, gpu-check and the SVG plot writer; the `netml` binary parses the
//! arguments and calls each harness's `run`.
//!
//! `netml bench`: measurements on in-memory sources, each printing its limit beside the
//! figure: `rx` (below), `ingest` ([`ingest`]: the pipeline thread's CPU per image in each
//! ingest mode), `pipeline` ([`pipeline`]: answered vs offered images/s through the whole
//! pipeline), `serve` ([`serve`]: goodput of live inference functions per batching policy)
//! and `infer` ([`infer`]: ms per batch and p50/p99 per model).
//!
//! `netml bench rx` measures what one rx core costs per packet: `rx_burst` from a net_ring
//! port, frame classification (`netml_verify::receive`) and the completeness verifier
//! (`Verifier::push`), driven by the pipeline's own [`Worker`] loop on one thread.
//!
//! ```text
//!            rte_ring (net_ring rx queue 0)
//! feeder ---------------------------------> Worker::run_observed (rx_burst, classify, verify)
//!   ^                                              |
//!   +------------ dispatch queue (Complete) -------+
//!   rewrite image id + header checksum, re-enqueue
//! ```
//!
//! The feeder starts with enough pre-built fragment frames (real frames from the pktgen
//! fragmenter) in mbufs to keep the ring full, interleaves the flows, and recycles the mbufs
//! of every image the worker completes: it gives each a new image id (so images never
//! repeat and the verifier never sees a late fragment), fixes the fragment header checksum
//! and enqueues them again. Nothing is allocated or freed in steady state.
//!
//! The worker's own time is measured with the TSC around every loop iteration that
//! received packets (empty polls, and iterations the scheduler interrupted, are left out), so
//! the per-core figure holds whether the feeder keeps up or not; the feeder's delivered rate
//! and busy time are reported beside it. Other processes on a small machine are detected
//! through the threads' scheduler statistics (`/proc/.../schedstat`).
//!
//! The floor ([`floor`]) runs next, on the same feeder, ring and traffic: a receiver that
//! does only `rx_burst`, reads each packet's first 64 bytes and gives the mbufs back
//! through a return ring, where the feeder stamps them as it stamps completed images. The
//! report gives netml's ns/packet as a multiple of the floor's.
//!
//! The code: [`rx`] (the benchmark, in the order it runs), [`traffic`] (the frames and the
//! circulation), [`feeder`] (the feeder thread), [`floor`] (the floor's receiver),
//! [`monitor`] (the warm-up and the measured window), [`meter`] (the threads' counters and
//! the rates), [`report`] (text and CSV).
//!
//! Beside the benchmarks: [`gpu_check`] (`netml gpu-check`), [`plot`] (the SVG charts),
//! [`output`] (CSV and file helpers) and [`engines`] (opening a model, shared with
//! `netml infer`).

mod eal;
pub mod engines;
mod feeder;
mod floor;
pub mod gpu_check;
pub mod infer;
pub mod ingest;
mod meter;
mod monitor;
pub mod output;
pub mod pipeline;
pub mod plot;
mod report;
pub mod rx;
pub mod serve;
mod traffic;
