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

mod eal;
mod feeder;
mod floor;
pub(crate) mod infer;
mod ingest;
mod meter;
mod monitor;
pub(crate) mod output;
mod pipeline;
mod report;
mod rx;
mod serve;
mod traffic;

use clap::{Args as ClapArgs, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// Options of `netml bench`.
#[derive(ClapArgs)]
pub struct Args {
    #[command(subcommand)]
    what: What,
}

#[derive(Subcommand)]
enum What {
    /// Rx + classify + verify per core: the pipeline's rx worker loop on one thread, fed
    /// from a net_ring port by a feeder thread that recycles the mbufs of completed images;
    /// then the floor (rx_burst, read each packet's first 64 bytes, give back) on the same
    /// feeder and ring, and netml's ns/packet as a multiple of the floor's.
    Rx(RxArgs),
    /// Inference per model x batch x precision on one backend: ms per batch, images/s,
    /// latency p50/p99/max; optional CSV, SVG plots and a baseline to compare with.
    Infer(infer::Args),
    /// CPU per image of the three GPU ingest modes (netml, launch, cpu-copy) per batch size,
    /// images/s, GB/s, latency p50/p99; on the host or (`--target gpu`) on a GPU.
    Ingest(ingest::Args),
    /// Images/s answered vs offered through the whole pipeline (rx worker, verifier, sink,
    /// ingest, results) per ingest mode and offered rate, with each stage's CPU per image.
    Pipeline(pipeline::Args),
    /// Goodput (answers inside the SLO per second) of live inference functions on the CPU
    /// per batching policy and offered load, with the serving stage's CPU per batch.
    Serve(serve::Args),
}

/// Options of `netml bench rx`.
#[derive(ClapArgs)]
struct RxArgs {
    /// Seconds measured (after the warm-up).
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// Seconds run before measuring.
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Packets per rx burst.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u16).range(1..=512))]
    burst: u16,
    /// Flows (source ports) the images are spread over.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=1024))]
    flows: u16,
    /// Packets of one flow the feeder sends before switching to the next flow (1: every
    /// packet belongs to another image than the one before, the verifier's worst case).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..))]
    interleave: u16,
    /// Capacity of the rx ring (what a NIC rx descriptor ring would hold).
    #[arg(long, default_value_t = 4096)]
    ring: u32,
    /// Tensor shape of an image.
    #[arg(long, default_value = "1x3x224x224")]
    shape: String,
    /// Payload bytes per fragment.
    #[arg(long, default_value_t = 1024)]
    frag_size: u16,
    /// Run on hugepages (`--in-memory` instead of `--no-huge -m 2048`); configure them first
    /// with `scripts/hugepages setup`.
    #[arg(long)]
    huge: bool,
    /// Extra EAL argument (repeatable), appended to the defaults.
    #[arg(long = "eal", allow_hyphen_values = true)]
    eal: Vec<String>,
    /// Measure only the floor: a receiver that does rx_burst, reads each packet's first 64
    /// bytes and gives the mbufs back (by default the floor runs after the pipeline's worker).
    #[arg(long, conflicts_with = "no_floor")]
    floor: bool,
    /// Measure only the pipeline's worker, not the floor.
    #[arg(long)]
    no_floor: bool,
    /// Append one CSV row per receiver to this file (header written when the file is new):
    /// mode (rx-* or floor-*), mpps, ns_per_packet, images_per_s, budget_ns, target_mpps,
    /// vs_floor (netml's ns/packet over the floor's, on the rx row), target_vs_floor.
    #[arg(long)]
    csv: Option<PathBuf>,
}

impl RxArgs {
    /// The receivers to measure, in order.
    fn receivers(&self) -> Vec<rx::Receiver> {
        match (self.floor, self.no_floor) {
            (true, _) => vec![rx::Receiver::Floor],
            (false, true) => vec![rx::Receiver::Netml],
            (false, false) => vec![rx::Receiver::Netml, rx::Receiver::Floor],
        }
    }
}

/// Runs `netml bench ...`.
pub fn run(a: Args) -> Result<ExitCode, String> {
    match a.what {
        What::Rx(a) => rx::rx(a),
        What::Infer(a) => infer::run(a),
        What::Ingest(a) => ingest::run(a),
        What::Pipeline(a) => pipeline::run(a),
        What::Serve(a) => serve::run(a),
    }
}
