//! `netml bench serve`: goodput (answers inside the SLO per second) of live inference
//! functions through the whole pipeline, per batching policy and offered load, with the
//! serving stage's CPU per batch beside its limit (20 us).
//!
//! ```text
//! sender (one stream per model, paced) -> net_ring rx -> Pipeline: rx worker (verify)
//!   -> sink (route, admission, batching policy, engines on their own threads, answers)
//!   -> net_ring tx -> result reader (status, model, latency from the sender timestamp)
//! ```
//!
//! First each model's CPU engine is timed alone ([`capacity`]): its best images/s over the
//! batch sizes is the function's capacity on this machine, printed, and what `--loads` are
//! fractions of. Then every policy x load is one case ([`case`]) in the harness of `bench
//! pipeline` (a fresh `Pipeline` per case, paced lossless sender, leak check); [`report`]
//! prints the tables and the summary per load, [`files`] the CSV and the plot, [`live`] the
//! progress line; [`setup`] finds the models and reads the policies.

mod capacity;
mod case;
mod files;
mod live;
mod report;
mod setup;

use super::eal::{check_huge, eal_argv};
use super::traffic::Frames;
use capacity::Capacity;
use clap::Args as ClapArgs;
use netml_dpdk::Eal;
use setup::{models_dir, policies};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// Loads offered when neither `--rates` nor `--loads` is given: up to beyond capacity.
const DEFAULT_LOADS: [f64; 5] = [0.1, 0.2, 0.35, 0.5, 1.0];

/// Options of `netml bench serve`.
#[derive(ClapArgs)]
pub struct Args {
    /// Directory of the models (default `target/netml-infer-models/small`; the seed models
    /// are written there by `scripts/models/export.py` when missing).
    #[arg(long = "models", value_name = "DIR")]
    models_dir: Option<PathBuf>,
    /// Models served, one inference function each with model ids 1, 2, ...: file stems of
    /// `.onnx` files in the models directory.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "resnet50_small,mobilenet_v2_small"
    )]
    functions: Vec<String>,
    /// Latency objective of every function, ms (image complete in the receiver -> answer).
    #[arg(long, default_value_t = 50.0)]
    slo_ms: f64,
    /// Offered images/s per function, comma-separated.
    #[arg(long, value_delimiter = ',', conflicts_with = "loads")]
    rates: Vec<f64>,
    /// Offered load as fractions of the capacity measured first (default 0.1,0.2,0.35,0.5,1):
    /// at load x function f is offered x * capacity_f / functions (the functions share the
    /// CPUs, so load 1 keeps the engines just busy).
    #[arg(long, value_delimiter = ',')]
    loads: Vec<f64>,
    /// Batching policies, comma-separated: `slab`, `fixed:N`, `max_delay:N,D_us`.
    #[arg(long, default_value = "slab,fixed:1,fixed:8,max_delay:8,5000")]
    policies: String,
    /// Largest batch of every function.
    #[arg(long, default_value_t = 8)]
    max_batch: usize,
    /// Engine instances (CPU worker threads, or GPU streams) per function.
    #[arg(long, default_value_t = 1)]
    instances: usize,
    /// Where the ingest and the engines run: `host` (CPU engines, host threads for the
    /// gather) or `gpu` (GPU 0: the ingest's slots in device memory, one graph-captured GPU
    /// engine per batch size and instance).
    #[arg(long, default_value = "host", value_parser = ["host", "gpu"])]
    target: String,
    /// Seconds measured per case (after the warm-up).
    #[arg(long, default_value_t = 3.0)]
    seconds: f64,
    /// Seconds run before measuring, per case.
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Tensor shape of an image (f32; what the models take).
    #[arg(long, default_value = "1x3x32x32")]
    shape: String,
    /// Payload bytes per fragment.
    #[arg(long, default_value_t = 1024)]
    frag_size: u16,
    /// Flows (source ports) each model's images are spread over.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=1024))]
    flows: u16,
    /// Append one CSV row per case and function to this file (header when new).
    #[arg(long)]
    csv: Option<PathBuf>,
    /// Write an SVG plot (goodput vs offered images/s, one line per policy) to this file.
    #[arg(long)]
    plot: Option<PathBuf>,
    /// Run on hugepages (`--in-memory` instead of `--no-huge -m 2048`).
    #[arg(long)]
    huge: bool,
    /// Extra EAL argument (repeatable), appended to the defaults.
    #[arg(long = "eal", allow_hyphen_values = true)]
    eal: Vec<String>,
}

/// An inference function of the run.
struct Function {
    name: String,
    model: u8,
    file: PathBuf,
    frames: Arc<Frames>,
    capacity: Capacity,
}

/// Runs `netml bench serve`.
pub fn run(a: Args) -> Result<ExitCode, String> {
    if !(a.seconds > 0.0 && a.warmup >= 0.0 && a.slo_ms > 0.0) {
        return Err("--seconds and --slo-ms must be positive and --warmup not negative".into());
    }
    if a.functions.is_empty() || a.functions.len() > 255 {
        return Err("--functions: 1 to 255 models".into());
    }
    if a.max_batch == 0 || a.instances == 0 {
        return Err("--max-batch and --instances must be at least 1".into());
    }
    let steps: Vec<f64> = match (&a.rates[..], &a.loads[..]) {
        ([], []) => DEFAULT_LOADS.to_vec(),
        ([], l) => l.to_vec(),
        (r, _) => r.to_vec(),
    };
    if steps.iter().any(|x| !(x.is_finite() && *x > 0.0)) {
        return Err("--rates and --loads must be positive".into());
    }
    let policies = policies(&a.policies)?;
    let dir = models_dir(&a)?;
    let sizes = netml_serve::FunctionSpec::default_batch_sizes(a.max_batch);
    let mut functions = Vec::with_capacity(a.functions.len());
    for (i, name) in a.functions.iter().enumerate() {
        let model = i as u8 + 1;
        let file = dir.join(format!("{name}.onnx"));
        eprintln!("timing {name} alone (batches {sizes:?})");
        let capacity = capacity::measure(&file, &sizes, a.target == "gpu")?;
        let frames = Frames::build_for(model, &a.shape, a.frag_size, a.flows)?;
        functions.push(Function {
            name: name.clone(),
            model,
            file,
            frames: Arc::new(frames),
            capacity,
        });
    }
    // Offered images/s per step and function.
    let by_load = a.rates.is_empty();
    let share = functions.len() as f64;
    let rates: Vec<Vec<f64>> = steps
        .iter()
        .map(|&x| {
            functions
                .iter()
                .map(|f| {
                    if by_load {
                        (x * f.capacity.best_per_s / share).max(1.0)
                    } else {
                        x
                    }
                })
                .collect()
        })
        .collect();

    check_huge(a.huge)?;
    let interrupted = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, interrupted.clone())
            .map_err(|e| format!("signal handler: {e}"))?;
    }
    let argv = eal_argv(a.huge, &a.eal);
    eprintln!("EAL: {}", argv.join(" "));
    let _eal = Eal::init(&argv).map_err(|e| format!("EAL init: {e}"))?;
    // rte_eal_init pinned this thread to one CPU; the pipeline's threads unpin themselves.
    netml_pipeline::unpin_thread();

    let mut rep = report::Report::new(&a, &functions, &steps, by_load, &rates);
    println!("{}", rep.header());
    let epoch = Instant::now();
    let total = policies.len() * steps.len();
    let mut n = 0;
    'steps: for (step, r) in rates.iter().enumerate() {
        for policy in &policies {
            if interrupted.load(Ordering::Relaxed) {
                break 'steps;
            }
            let setup = case::Setup {
                n,
                of: total,
                policy,
                step,
                rates: r.clone(),
                functions: &functions,
                slo_ms: a.slo_ms,
                max_batch: a.max_batch,
                instances: a.instances,
                gpu: a.target == "gpu",
                warmup: a.warmup,
                seconds: a.seconds,
                epoch,
                interrupted: &interrupted,
            };
            n += 1;
            match case::run(&setup) {
                Ok(f) => {
                    println!("{}", rep.case_line(&f));
                    rep.add(f);
                }
                Err(e) => {
                    eprintln!("netml bench serve: {policy} at {r:?} images/s: {e}");
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
