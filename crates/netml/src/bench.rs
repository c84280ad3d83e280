//! `netml bench`: the subcommands, each wired to its harness in `netml_bench`.

use clap::{Args as ClapArgs, Subcommand};
use netml_bench::{infer, ingest, pipeline, rx, serve};
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
    Rx(rx::Args),
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

/// Runs `netml bench ...`.
pub fn run(a: Args) -> Result<ExitCode, String> {
    match a.what {
        What::Rx(a) => rx::run(a),
        What::Infer(a) => infer::run(a),
        What::Ingest(a) => ingest::run(a),
        What::Pipeline(a) => pipeline::run(a),
        What::Serve(a) => serve::run(a),
    }
}
