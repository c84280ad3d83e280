//! `netml bench pipeline`: images/s answered against images/s offered through the whole
//! pipeline, per ingest mode (ECML Fig. 4a), with the CPU each stage spends per image.
//!
//! ```text
//! sender thread --(fresh mbufs from the pipeline's pool)--> rte_ring = net_ring rx queue 0
//!   -> netml_pipeline::Pipeline: rx worker (classify, verify) -> sink (batch -> Ingest ->
//!      read back + CRC -> result message) -> net_ring tx queue = rte_ring
//!   -> result reader thread (status Ok? CRC the sender's? latency from the sender timestamp)
//! ```
//!
//! Every mode x offered rate is one case ([`case`]): a fresh `Pipeline::start` on its own
//! net_ring port (one EAL for the run: DPDK cannot initialise it twice in a process), fed
//! by a lossless, paced sender ([`feed`]), read by [`drain`], measured over a window after a
//! warm-up, stopped, drained, and checked for mbufs that did not come back to the pool (the
//! harness, [`rig`], which `bench serve` runs its cases in too). The
//! stages' CPU is what the pipeline's threads publish (`CLOCK_THREAD_CPUTIME_ID`).

mod case;
pub(super) mod drain;
pub(super) mod feed;
mod report;
pub(super) mod rig;

use super::eal::{check_huge, eal_argv};
use super::traffic::Frames;
use clap::Args as ClapArgs;
use netml_dpdk::Eal;
use netml_gpu::IngestMode;
use netml_pipeline::config::IngestTarget;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Instant;

/// Options of `netml bench pipeline`.
#[derive(ClapArgs)]
pub struct Args {
    /// Ingest modes, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "netml,launch,cpu-copy")]
    modes: Vec<IngestMode>,
    /// Where the ingest runs: `host` (host threads stand in for the GPU) or `gpu`.
    #[arg(long, default_value = "host", value_parser = ["host", "gpu"])]
    target: String,
    /// Offered images/s, comma-separated; 0: as fast as the sender can.
    #[arg(long, value_delimiter = ',', default_value = "500,1000,2000,4000,0")]
    rates: Vec<f64>,
    /// Seconds measured per case (after the warm-up).
    #[arg(long, default_value_t = 3.0)]
    seconds: f64,
    /// Seconds run before measuring, per case.
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Tensor shape of an image (f32).
    #[arg(long, default_value = "1x3x224x224")]
    shape: String,
    /// Payload bytes per fragment.
    #[arg(long, default_value_t = 1024)]
    frag_size: u16,
    /// Images per batch at most.
    #[arg(long, default_value_t = 8)]
    max_batch: usize,
    /// Flows (source ports) the images are spread over.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=1024))]
    flows: u16,
    /// Do not have the sink read every batch back and check each image's CRC-32
    /// (`ingest.check_crc = false`): results then carry no CRC and only their status is
    /// checked. The read-back and CRC are the sink's largest cost per image.
    #[arg(long)]
    no_crc: bool,
    /// Append one CSV row per case to this file (header when new).
    #[arg(long)]
    csv: Option<PathBuf>,
    /// Write an SVG plot (answered vs offered images/s, one line per mode) to this file.
    #[arg(long)]
    plot: Option<PathBuf>,
    /// Run on hugepages (`--in-memory` instead of `--no-huge -m 2048`).
    #[arg(long)]
    huge: bool,
    /// Extra EAL argument (repeatable), appended to the defaults.
    #[arg(long = "eal", allow_hyphen_values = true)]
    eal: Vec<String>,
}

/// Runs `netml bench pipeline`.
pub fn run(a: Args) -> Result<ExitCode, String> {
    if !(a.seconds > 0.0 && a.warmup >= 0.0) {
        return Err("--seconds must be positive and --warmup not negative".into());
    }
    if a.modes.is_empty() || a.rates.is_empty() || a.rates.iter().any(|r| r.is_nan() || *r < 0.0) {
        return Err("--modes and --rates need at least one value; rates >= 0".into());
    }
    if a.max_batch == 0 {
        return Err("--max-batch must be at least 1".into());
    }
    let target = match a.target.as_str() {
        "gpu" => IngestTarget::Gpu,
        _ => IngestTarget::Host,
    };
    let frames = Arc::new(Frames::build(&a.shape, a.frag_size, a.flows)?);
    check_huge(a.huge)?;
    let interrupted = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, interrupted.clone())
            .map_err(|e| format!("signal handler: {e}"))?;
    }
    let argv = eal_argv(a.huge, &a.eal);
    eprintln!("EAL: {}", argv.join(" "));
    let _eal = Eal::init(&argv).map_err(|e| format!("EAL init: {e}"))?;
    // rte_eal_init pinned this thread to one CPU; the pipeline's threads unpin themselves,
    // and the calibration below should not be confined either.
    netml_pipeline::unpin_thread();

    let mut rep = report::Report::new(&a, &frames);
    let ceiling = feed::ceiling(&frames, 0.5)?;
    rep.sender_ceiling = ceiling;
    println!("{}", rep.header());
    let epoch = Instant::now();
    let total = a.modes.len() * a.rates.len();
    let mut n = 0;
    'modes: for &mode in &a.modes {
        for &rate in &a.rates {
            if interrupted.load(std::sync::atomic::Ordering::Relaxed) {
                break 'modes;
            }
            let setup = case::Setup {
                n,
                of: total,
                mode,
                target,
                rate,
                max_batch: a.max_batch,
                check_crc: !a.no_crc,
                warmup: a.warmup,
                seconds: a.seconds,
                frames: &frames,
                epoch,
                interrupted: &interrupted,
            };
            n += 1;
            match case::run(&setup) {
                Ok(f) => {
                    println!("{}", report::case_line(&f));
                    rep.add(f);
                }
                Err(e) => {
                    eprintln!("netml bench pipeline: {mode} at {rate} images/s: {e}");
                    rep.failed += 1;
                }
            }
        }
    }
    println!("{}", rep.text().trim_end());
    rep.write_files()?;
    Ok(if rep.clean() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
