//! `netml`: the command-line interface of the netml pipeline.

// Module docs link the private modules they are built from, for readers of the source and of
// `cargo doc --document-private-items`.
#![allow(rustdoc::private_intra_doc_links)]

use clap::{Parser, Subcommand};
use netml_bench::gpu_check;
use std::process::ExitCode;

mod bench;
mod demo;
mod infer;
mod place;
mod run;
mod simulate;
mod verify_pcap;

/// netml: an NFV pipeline that reassembles tensors sent as UDP fragments and serves
/// DNN inference on them.
#[derive(Parser)]
#[command(version, about, long_about = None)]
struct Cli {
    /// Log filter (tracing env-filter syntax), e.g. `info` or `netml=debug`.
    #[arg(long, global = true, default_value = "info", env = "NETML_LOG")]
    log: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the pipeline: DPDK rx workers, verifier, host gather, results. Without a
    /// configuration it runs the built-in demo (net_ring port, generated traffic, no
    /// hugepages, no GPU).
    Run(Box<run::Args>),
    /// Reassemble a capture offline through the verifier and report every counter and, per
    /// completed image, its id and the CRC-32 of the reassembled tensor.
    VerifyPcap(verify_pcap::Args),
    /// Benchmarks that print figures next to their limits and write CSV and SVG plots: `rx`
    /// (rx + classify + verify per core), `ingest` (CPU per image of the three ingest modes),
    /// `pipeline` (answered vs offered images/s through the whole pipeline), `infer` (ms per
    /// batch, p50/p99).
    Bench(bench::Args),
    /// Run one model on an input (`.npy`, image, or seeded random) and print the top-5
    /// classes per image and the time per batch.
    Infer(infer::Args),
    /// Check a GPU machine: discovery, NVRTC compile and load of the gather kernels, copy
    /// ceilings, green contexts; prints a table and writes it to --out (exit status 3: no GPU).
    GpuCheck(gpu_check::Args),
    /// Simulate the serving scheduler (the same code as `netml run`: admission, SLAB and the
    /// baselines) with a virtual clock against a latency profile and generated or captured
    /// arrivals; prints per function and policy offered, answered, goodput, p50/p99 and SLO
    /// attainment per load, and plots goodput and p99 against the load.
    Simulate(simulate::Args),
    /// Place models at given rates and SLOs on the fewest GPUs (instances, SM shares, batch
    /// sizes), beside one model per GPU and a gpu-lets-style greedy; --evaluate simulates
    /// each placement, --write writes it as `netml run` configurations.
    Place(place::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(&cli.log))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let result = match cli.command {
        Command::Run(a) => run::run(*a),
        Command::VerifyPcap(a) => verify_pcap::run(a),
        Command::Bench(a) => bench::run(a),
        Command::Infer(a) => infer::run(a),
        Command::GpuCheck(a) => gpu_check::run(a),
        Command::Simulate(a) => simulate::run(a),
        Command::Place(a) => place::run(a),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("netml: {e}");
            ExitCode::from(2)
        }
    }
}
